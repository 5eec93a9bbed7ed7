# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rollout playbook refuses timeouts that cannot hold before it touches any host (issue 14 item 8):
hostfw_rollback_timeout must exceed hostfw_reconnect_timeout."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLAYBOOK_BIN = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")

pytestmark = pytest.mark.skipif(not os.path.exists(PLAYBOOK_BIN), reason="ansible-playbook is not installed")


def rollout(tmp_path, *extra):
    inventory = tmp_path / "inventory.ini"
    # an address nothing answers on: any task that connects would fail as unreachable, not as refused
    inventory.write_text("node1 ansible_host=192.0.2.1 ansible_connection=ssh ansible_timeout=2\n")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".collections"), ANSIBLE_NOCOLOR="1",
               HOSTFW_CACHE_DIR=str(tmp_path / "cache"))
    return subprocess.run([PLAYBOOK_BIN, "-i", str(inventory), "hostfw.nftables.rollout"] + list(extra),
                          capture_output=True, text=True, env=env, check=False, timeout=300)


@pytest.mark.parametrize("rollback, reconnect", [(20, 30), (30, 30)])
def test_rollback_timeout_not_above_reconnect_timeout_is_refused_first(tmp_path, rollback, reconnect):
    proc = rollout(tmp_path, "-e", "hostfw_rollback_timeout=%d" % rollback, "-e", "hostfw_reconnect_timeout=%d" % reconnect)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert ("hostfw: hostfw_rollback_timeout (%d s) must exceed hostfw_reconnect_timeout (%d s)" % (rollback, reconnect)
            in out), out
    assert "unreachable=0" in out and "failed=1" in out, "refused on the controller, before any connection"
    assert "Stage the candidate" not in out


def test_default_timeouts_pass_the_check(tmp_path):
    proc = rollout(tmp_path)
    out = proc.stdout + proc.stderr
    assert "must exceed hostfw_reconnect_timeout" not in out
    assert "has no HostEndpoint and therefore no ruleset" in out, "the run went on past the check"
