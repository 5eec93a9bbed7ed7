# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Staged policies through the action plugins, run in-process as Ansible runs them: compile reads
each host's hostfw_staged_counters, check_access answers for world pending, report writes the
fleet report from registered nft_report results."""

from __future__ import annotations

import json
import os
import sys

import yaml

from ansible_collections.hostfw.nftables.plugins.action import check_access as check_access_action
from ansible_collections.hostfw.nftables.plugins.action import compile as compile_action
from ansible_collections.hostfw.nftables.plugins.action import report as report_action
from ansible_collections.hostfw.nftables.plugins.modules import report as report_doc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_compile import RESOURCES, action, task_vars  # noqa: E402 pylint: disable=wrong-import-position
from test_compile import private_cache  # noqa: E402,F401 pylint: disable=wrong-import-position,unused-import

STAGED = {"apiVersion": "projectcalico.org/v3", "kind": "StagedGlobalNetworkPolicy", "metadata": {"name": "db"},
          "spec": {"selector": "role == 'db'", "ingress": [{"action": "Deny", "protocol": "TCP",
                                                            "destination": {"ports": [5432]}}]}}


def staged_vars(tmp_path, **per_host):
    tv = task_vars(tmp_path, **per_host)
    for hv in tv["hostvars"].values():
        hv["hostfw_resources"] = RESOURCES + [STAGED]
    return tv


def test_compile_reads_hostfw_staged_counters_per_host(tmp_path):
    tv = staged_vars(tmp_path, node2={"hostfw_staged_counters": True})
    result = action(compile_action, {"hosts": ["node1", "node2"], "return_content": True}).run(task_vars=tv)
    assert not result.get("failed"), result
    node2 = result["hosts"]["node2"]
    assert node2["staged_counters"] and "chain pending-b-input" in node2["ruleset"]
    assert node2["pending_differs"] and set(node2["pending_failsafe_proof"]) == set(node2["failsafe_proof"])
    assert "pending-" not in result["hosts"]["node1"]["ruleset"]


def test_check_access_world_pending(tmp_path):
    tv = staged_vars(tmp_path)
    flow = {"host": "node2", "source": "10.0.0.5", "destination": "10.0.0.6", "port": 5432}
    enforced = action(check_access_action, dict(flow)).run(task_vars=tv)
    pending = action(check_access_action, dict(flow, world="pending")).run(task_vars=tv)
    assert (enforced["allowed"], enforced["world"]) == (True, "enforced")
    assert (pending["allowed"], pending["reason"], pending["world"]) == (
        False, "tier default policy staged:db ingress rule 0 (Deny)", "pending")
    batch = action(check_access_action, {"flows": [flow], "world": "pending"}).run(task_vars=tv)
    assert not batch["by_host"]["node2"]["allowed"]


def test_report_argument_spec_and_files(tmp_path):
    assert set(report_action.ARGUMENT_SPEC) == set(yaml.safe_load(report_doc.DOCUMENTATION)["options"])
    tv = staged_vars(tmp_path)
    tv["ansible_play_hosts_all"] = ["node1", "node2"]
    tv["hostvars"]["node1"]["hostfw_report_host"] = {"present": False, "sha256": None, "counters": {}}
    out = tmp_path / "out"
    result = action(report_action, {"output_dir": str(out)}).run(task_vars=tv)
    assert not result.get("failed"), result
    assert result["summary"] == {"not rolled out": 1, "unreachable": 1} and result["changed"]
    data = json.loads((out / "report.json").read_text())
    assert data["hosts"]["node2"]["state"] == "unreachable"
    assert result["verdicts"] == [data["staged"][0]["verdict"]]
    assert (out / "report.md").read_text().startswith("# hostfw fleet report")
