# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The EXAMPLES of the plugins run.

The controller-side plugins (the selector_match filter, the compile and check_access actions) run
their EXAMPLES for real with ansible-playbook against a small inventory; the target-side module
nft_table's EXAMPLES are syntax-checked here and run for real by the molecule scenarios (the rollout
role performs exactly those operations on containers over SSH).
"""

from __future__ import annotations

import ast
import copy
import json
import os
import subprocess
import sys

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLLECTIONS = os.path.join(ROOT, ".collections")
PLAYBOOK_BIN = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")

INVENTORY = {
    "all": {
        "hosts": {
            "node1": {"ansible_host": "10.0.0.5", "hostfw_labels": {"role": "node"}},
            "node2": {"ansible_host": "10.0.0.6", "hostfw_labels": {"role": "db"}},
        },
        "vars": {
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            "hostfw_auto_host_endpoint": True,
            "hostfw_resources": [
                {"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkPolicy",
                 "metadata": {"name": "db"},
                 "spec": {"selector": "role == 'db'", "ingress": [
                     {"action": "Allow", "protocol": "TCP", "source": {"selector": "role == 'node'"},
                      "destination": {"ports": [5432]}}]}},
            ],
        },
    }
}


def examples(path):
    tree = ast.parse(open(os.path.join(ROOT, path), encoding="utf-8").read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "EXAMPLES":
            return yaml.safe_load(node.value.value)
    raise AssertionError("no EXAMPLES in %s" % path)


def run_playbook(tmp_path, tasks, hosts="all", extra=(), inventory=None):
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory or INVENTORY))
    (tmp_path / "playbook.yml").write_text(yaml.safe_dump([{"name": "EXAMPLES", "hosts": hosts,
                                                            "gather_facts": False, "tasks": tasks}]))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_STDOUT_CALLBACK="json",
               ANSIBLE_NOCOLOR="1", HOSTFW_CACHE_DIR=str(tmp_path / "cache"))
    proc = subprocess.run([PLAYBOOK_BIN, "-i", str(tmp_path / "inventory.yml"), str(tmp_path / "playbook.yml")]
                          + list(extra), capture_output=True, text=True, env=env, cwd=str(tmp_path), check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return json.loads(proc.stdout[proc.stdout.index("{"):])


def task_results(out, name):
    for play in out["plays"]:
        for task in play["tasks"]:
            if task["task"]["name"] == name:
                return task["hosts"]
    raise AssertionError("task %r did not run" % name)


pytestmark = pytest.mark.skipif(not os.path.exists(PLAYBOOK_BIN), reason="ansible-playbook is not installed")


def test_selector_match_examples_run(tmp_path):
    out = run_playbook(tmp_path, examples("plugins/filter/selector_match.py"))
    first = task_results(out, "Is this host selected by the node policy?")
    assert all(r["msg"] is True for r in first.values())
    selected = task_results(out, "Report which inventory hosts a policy selector selects")
    msgs = sorted(item["msg"] for r in selected.values() for item in r.get("results", []) if not item.get("skipped"))
    assert msgs == ["node1 is selected", "node1 is selected"]  # one loop per host, node1 only


def test_compile_examples_run(tmp_path):
    out = run_playbook(tmp_path, examples("plugins/modules/compile.py"))
    assert sorted(os.listdir(tmp_path / "out")) == ["matrix.html", "matrix.json", "matrix.md", "node1.nft", "node2.nft"]
    verdict = list(task_results(out, "Show the verdict").values())[0]["msg"]
    assert verdict == "True: failsafe inbound tcp:22"


def test_check_access_examples_run(tmp_path):
    out = run_playbook(tmp_path, examples("plugins/modules/check_access.py"), hosts="node1")
    access = task_results(out, "Would the candidate keep SSH from the controller open?")["node1"]
    assert access["allowed"] is True and access["reason"] == "failsafe inbound tcp:22"
    batch = task_results(out, "Check the SSH flows of several hosts in one task")["node1"]
    assert [(f["host"], f["allowed"], f["reason"]) for f in batch["flows"]] == [
        ("node1", True, "failsafe inbound tcp:22"), ("node2", True, "failsafe inbound tcp:22")]
    assert sorted(batch["by_host"]) == ["node1", "node2"]


def test_batch_compile_and_checks_use_per_host_settings(tmp_path):
    """One task compiles several hosts, each proven with its own protected ports (each host's
    hostfw_protected_ports and hostfw_verify_management_access); check_access flows evaluate
    several hosts' connections in one task."""
    tasks = [
        {"name": "Compile", "register": "compiled", "run_once": True, "hostfw.nftables.compile": {
            "hosts": ["node1", "node2"]}},
        {"name": "Flows", "register": "flows", "run_once": True, "hostfw.nftables.check_access": {"flows": [
            {"host": "node2", "source": "10.0.0.5", "destination": "10.0.0.6", "port": 5432},
            {"host": "node2", "source": "192.0.2.1", "destination": "10.0.0.6", "port": 5432, "protocol": "tcp"}]}},
    ]
    inventory = copy.deepcopy(INVENTORY)
    inventory["all"]["hosts"]["node2"]["hostfw_protected_ports"] = {"inbound": ["tcp:6000"]}
    inventory["all"]["hosts"]["node1"]["hostfw_verify_management_access"] = False
    out = run_playbook(tmp_path, tasks, inventory=inventory)
    compiled = task_results(out, "Compile")["node1"]["hosts"]
    assert compiled["node1"]["failsafe_proof"]["ok"] is True  # verification off, no protected ports: nothing to prove
    assert compiled["node2"]["failsafe_proof"]["ok"] is False
    assert any("6000" in m for m in compiled["node2"]["failsafe_proof"]["messages"])
    flows = task_results(out, "Flows")["node1"]["flows"]
    assert [f["allowed"] for f in flows] == [True, False]
    assert flows[0]["reason"] == "tier default policy db ingress rule 0 (Allow)"
    # by host: node2 is allowed only if all its flows are; its entry is the denied flow
    by_host = task_results(out, "Flows")["node1"]["by_host"]
    assert list(by_host) == ["node2"]
    assert (by_host["node2"]["allowed"], by_host["node2"]["source"]) == (False, "192.0.2.1")
    assert by_host["node2"]["reason"] == flows[1]["reason"]


def test_check_access_flows_errors_name_the_flow(tmp_path):
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(INVENTORY))
    (tmp_path / "playbook.yml").write_text(yaml.safe_dump([{"name": "bad", "hosts": "node1", "gather_facts": False,
                                                            "tasks": [{"hostfw.nftables.check_access": {"flows": [
                                                                {"host": "node1", "source": "10.0.0.9",
                                                                 "destination": "10.0.0.5", "port": 22},
                                                                {"host": "node9", "source": "10.0.0.9",
                                                                 "destination": "10.0.0.5", "port": 22},
                                                                {"host": "node1", "source": "10.0.0.9",
                                                                 "destination": "10.0.0.5", "port": 70000},
                                                                {"host": "node1", "source": "10.0.0.9",
                                                                 "port": 22, "proto": "TCP"}]}}]}]))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_NOCOLOR="1", HOSTFW_CACHE_DIR=str(tmp_path / "c"))
    proc = subprocess.run([PLAYBOOK_BIN, "-i", str(tmp_path / "inventory.yml"), str(tmp_path / "playbook.yml")],
                          capture_output=True, text=True, env=env, check=False)
    assert proc.returncode != 0
    # every bad flow is reported at once, each named by its index; none is evaluated
    assert ("check_access: flows[1]: node9 is not an inventory host | "
            "check_access: flows[2]: port 70000 is not a port number (1-65535) | "
            "check_access: flows[3]: destination missing (each flow needs host, source, destination and port)"
            ) in proc.stdout, proc.stdout


def test_nft_table_examples_are_valid_playbook_tasks(tmp_path):
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(INVENTORY))
    (tmp_path / "playbook.yml").write_text(yaml.safe_dump([{"name": "EXAMPLES", "hosts": "all", "gather_facts": False,
                                                            "tasks": examples("plugins/modules/nft_table.py")}]))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS)
    proc = subprocess.run([PLAYBOOK_BIN, "--syntax-check", "-i", str(tmp_path / "inventory.yml"),
                           str(tmp_path / "playbook.yml")], capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
