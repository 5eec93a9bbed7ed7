# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The render playbook as users run it: ansible-playbook -i INV hostfw.nftables.render."""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO = os.path.join(ROOT, "examples", "two-node-cluster")
PLAYBOOK_BIN = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")

pytestmark = pytest.mark.skipif(not os.path.exists(PLAYBOOK_BIN), reason="ansible-playbook is not installed")


def render(inventory, out, *extra):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".collections"), ANSIBLE_NOCOLOR="1",
               HOSTFW_CACHE_DIR=os.path.join(os.path.dirname(str(out)), "hostfw-cache"))
    return subprocess.run([PLAYBOOK_BIN, "-i", inventory, "hostfw.nftables.render", "-e", "hostfw_output_dir=%s" % out]
                          + list(extra), capture_output=True, text=True, env=env, check=False)


def test_limit_sees_the_same_policy_world(tmp_path):
    full = render(os.path.join(DEMO, "inventory.yml"), tmp_path / "full")
    assert full.returncode == 0, full.stdout + full.stderr
    limited = render(os.path.join(DEMO, "inventory.yml"), tmp_path / "limited", "--limit", "policy-llm-worker")
    assert limited.returncode == 0, limited.stdout + limited.stderr
    for name in ("policy-llm-worker.nft", "policy-llm-control-plane.nft", "matrix.json", "matrix.md"):
        assert filecmp.cmp(tmp_path / "full" / name, tmp_path / "limited" / name, shallow=False), name


def test_second_render_changes_nothing_and_check_mode_writes_nothing(tmp_path):
    first = render(os.path.join(DEMO, "inventory.yml"), tmp_path / "out")
    assert first.returncode == 0 and "changed=1" in first.stdout, first.stdout
    second = render(os.path.join(DEMO, "inventory.yml"), tmp_path / "out")
    assert second.returncode == 0 and "changed=0" in second.stdout, second.stdout
    checked = render(os.path.join(DEMO, "inventory.yml"), tmp_path / "never", "--check", "--diff")
    assert checked.returncode == 0, checked.stdout
    assert not (tmp_path / "never").exists()
    assert "+table inet hostfw" in checked.stdout  # the diff shows what would be written


def test_bad_input_fails_with_one_line_per_problem_and_writes_nothing(tmp_path):
    inv = tmp_path / "inv"
    shutil.copytree(DEMO, inv)
    path = inv / "manifests" / "20-host-firewall.yaml"
    text = path.read_text().replace("- action: Allow\n      source:", "- action: allow\n      protocol: tcp\n      source:", 1)
    path.write_text(text)
    proc = render(str(inv / "inventory.yml"), tmp_path / "out")
    assert proc.returncode != 0
    assert "2 problems in the hostfw input:" in proc.stdout
    assert ("GlobalNetworkPolicy node-host-firewall: spec.ingress[0].action: 'allow' is not an action (use Allow)"
            in proc.stdout), proc.stdout
    assert "GlobalNetworkPolicy node-host-firewall: spec.ingress[0].protocol: 'tcp' is not a protocol" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not (tmp_path / "out").exists()
