# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reviewing a change with the render playbook: hostfw_compare_to, hostfw_fail_on, hostfw_lint_fail_on."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO = os.path.join(ROOT, "examples", "two-node-cluster")
PLAYBOOK_BIN = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
TRAP = ("selector: role == 'node' || has(k8s-app) || tier == 'control-plane'", "selector: all()")

pytestmark = pytest.mark.skipif(not os.path.exists(PLAYBOOK_BIN), reason="ansible-playbook is not installed")


def render(inventory, out, *extra):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".collections"), ANSIBLE_NOCOLOR="1",
               HOSTFW_CACHE_DIR=os.path.join(os.path.dirname(str(out)), "hostfw-cache"))
    return subprocess.run([PLAYBOOK_BIN, "-i", inventory, "hostfw.nftables.render", "-e", "hostfw_output_dir=%s" % out]
                          + list(extra), capture_output=True, text=True, env=env, check=False)


@pytest.fixture(name="trap")
def trap_inventory(tmp_path):
    inv = tmp_path / "inv"
    shutil.copytree(DEMO, inv)
    path = inv / "manifests" / "20-host-firewall.yaml"
    path.write_text(path.read_text().replace(*TRAP))
    return str(inv / "inventory.yml")


def test_the_example_renders_with_its_lint_and_no_error(tmp_path):
    proc = render(os.path.join(DEMO, "inventory.yml"), tmp_path / "out")
    assert proc.returncode == 0, proc.stdout
    lint = json.loads((tmp_path / "out" / "lint.json").read_text())
    assert [(f["code"], f["severity"]) for f in lint["findings"]] == [("HF012", "info")]
    assert "HF012 failsafe-ssh-open-to-pods (info): FelixConfiguration default" in (tmp_path / "out" / "lint.md").read_text()


def test_the_trap_fails_the_render_on_its_lint_error_after_writing_everything(tmp_path, trap):
    proc = render(trap, tmp_path / "out")
    assert proc.returncode != 0
    assert "hostfw: 1 lint finding(s) at or above error (lint_fail_on; acknowledge one with the annotation " \
           "hostfw.nftables/ignore: CODE):" in proc.stdout
    assert ("HF007 error GlobalNetworkPolicy node-host-firewall: spec.ingress[0].source: the source all() admits "
            "application pods (dev/frontend, prod/backend) to the host endpoints: a compromised pod can reach the nodes "
            "(manifests/20-host-firewall.yaml#1 line 15)") in proc.stdout
    for name in ("policy-llm-worker.nft", "matrix.json", "matrix.html", "lint.json", "lint.md"):
        assert (tmp_path / "out" / name).is_file(), name
    ok = render(trap, tmp_path / "out2", "-e", "hostfw_lint_fail_on=never")
    assert ok.returncode == 0, ok.stdout


def test_compare_to_an_output_dir_or_an_inventory_and_fail_on(tmp_path, trap):
    old = render(os.path.join(DEMO, "inventory.yml"), tmp_path / "old")
    assert old.returncode == 0, old.stdout
    for label, compare in (("a", str(tmp_path / "old")), ("b", DEMO)):
        out = tmp_path / label
        proc = render(trap, out, "-e", "hostfw_compare_to=%s" % compare, "-e", "hostfw_lint_fail_on=never")
        assert proc.returncode == 0, proc.stdout
        assert "matrix diff against %s: 3 opened, 0 closed" % compare in proc.stdout
        data = json.loads((out / "matrix-diff.json").read_text())
        assert data["summary"] == {"cells": 20, "closed": 0, "only_new": 0, "only_old": 0, "opened": 3, "unchanged": 17}
        assert [(c["source"], c["destination"], c["port"]) for c in data["changes"]] == [
            ("dev/frontend", "host/node-control-plane", 10250), ("dev/frontend", "host/node-worker", 10250),
            ("prod/backend", "host/node-control-plane", 10250)]  # prod/backend -> its own host: Drop
        assert data["groups"][0]["old_reason"] == "ingress: end of tier host-firewall (defaultAction Deny)"
        assert 'id="hostfw-diff"' in (out / "matrix.html").read_text()
        assert "## 1. opened: 3 cell(s)" in (out / "matrix-diff.md").read_text()
    gate = render(trap, tmp_path / "c", "-e", "hostfw_compare_to=%s" % (tmp_path / "old"), "-e", "hostfw_fail_on=opened",
                  "-e", "hostfw_lint_fail_on=never")
    assert gate.returncode != 0
    assert "hostfw: the change opened 3 cell(s) (fail_on: opened) against %s:" % (tmp_path / "old") in gate.stdout
    assert (tmp_path / "c" / "matrix-diff.json").is_file()
    closed_only = render(trap, tmp_path / "d", "-e", "hostfw_compare_to=%s" % (tmp_path / "old"), "-e",
                         '{"hostfw_fail_on": ["closed"]}', "-e", "hostfw_lint_fail_on=never")
    assert closed_only.returncode == 0, closed_only.stdout
