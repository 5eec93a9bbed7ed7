# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The compile and check_access action plugins, run in-process as Ansible runs them (a task, its
args, task_vars with hostvars and groups), as ansible.utils tests its actions."""

from __future__ import annotations

import os
from unittest.mock import MagicMock

import pytest
import yaml
from ansible.errors import AnsibleActionFail
from ansible.parsing.dataloader import DataLoader
from ansible.playbook.play_context import PlayContext

from ansible_collections.hostfw.nftables.plugins.action import check_access as check_access_action
from ansible_collections.hostfw.nftables.plugins.action import compile as compile_action
from ansible_collections.hostfw.nftables.plugins.modules import check_access as check_access_doc
from ansible_collections.hostfw.nftables.plugins.modules import compile as compile_doc

V3 = "projectcalico.org/v3"
RESOURCES = [
    {"apiVersion": V3, "kind": "GlobalNetworkPolicy", "metadata": {"name": "db"},
     "spec": {"selector": "role == 'db'", "ingress": [
         {"action": "Allow", "protocol": "TCP", "source": {"selector": "role == 'node'"},
          "destination": {"ports": [5432]}}]}},
    {"apiVersion": V3, "kind": "FelixConfiguration", "metadata": {"name": "node.node2"},
     "spec": {"failsafeInboundHostPorts": [{"protocol": "TCP", "port": 2222}]}},
]


def task_vars(tmp_path, **per_host):
    shared = {"hostfw_auto_host_endpoint": True, "hostfw_resources": RESOURCES}
    hosts = {"node1": dict(shared, ansible_host="10.0.0.5", hostfw_labels={"role": "node"}),
             "node2": dict(shared, ansible_host="10.0.0.6", hostfw_labels={"role": "db"})}
    for host, extra in per_host.items():
        hosts[host].update(extra)
    return {"hostvars": hosts, "groups": {"all": sorted(hosts)}, "inventory_dir": str(tmp_path)}


def action(module, args, check_mode=False):
    task = MagicMock()
    task.args = args
    task.check_mode = check_mode
    task.diff = False
    task.async_val = 0
    plugin = module.ActionModule(task=task, connection=MagicMock(), play_context=PlayContext(), loader=DataLoader(),
                                 templar=None, shared_loader_obj=None)
    plugin._display = MagicMock()  # pylint: disable=protected-access
    return plugin


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HOSTFW_CACHE_DIR", str(tmp_path / "cache"))


def test_argument_spec_is_the_documentation():
    options = yaml.safe_load(compile_doc.DOCUMENTATION)["options"]
    assert set(compile_action.ARGUMENT_SPEC) == set(options)
    for name, doc in options.items():
        assert compile_action.ARGUMENT_SPEC[name]["type"] == doc["type"], name
        assert compile_action.ARGUMENT_SPEC[name].get("default") == doc.get("default"), name
    assert set(check_access_action.ARGUMENT_SPEC) == set(yaml.safe_load(check_access_doc.DOCUMENTATION)["options"])


def test_unknown_option_is_refused(tmp_path):
    with pytest.raises(AnsibleActionFail) as info:
        action(compile_action, {"outptu_dir": "x"}).run(task_vars=task_vars(tmp_path))
    assert "outptu_dir" in str(info.value)


def test_compile_returns_each_hosts_failsafes_from_its_felix_configuration(tmp_path):
    result = action(compile_action, {"hosts": ["node1", "node2"]}).run(task_vars=task_vars(tmp_path))
    assert not result.get("failed"), result
    hosts = result["hosts"]
    assert hosts["node2"]["failsafe_inbound"] == [{"protocol": "tcp", "port": 2222, "net": None}]
    assert {"protocol": "tcp", "port": 22, "net": None} in hosts["node1"]["failsafe_inbound"]
    assert hosts["node1"]["failsafe_outbound"][0] == {"protocol": "udp", "port": 53, "net": None}
    assert hosts["node1"]["has_ruleset"] and hosts["node1"]["sha256"] and "ruleset" not in hosts["node1"]
    # node2's FelixConfiguration drops SSH from the failsafes: the default protection refuses it
    assert hosts["node2"]["failsafe_proof"]["ok"] is False
    assert result["refusals"] == hosts["node2"]["failsafe_proof"]["refusals"] == [
        "host node2: protected inbound ports tcp:22, udp:68, tcp:179, tcp:2379, tcp:2380, tcp:6443, tcp:6666, tcp:6667 "
        "(IPv4) closed for every source on all interfaces (*) by end of tier default (defaultAction Deny); fix: allow "
        "them in a policy (a failsafe net or an Allow from your management network is enough), restore the failsafe in "
        "the FelixConfiguration, or remove them from hostfw_protected_ports"]
    assert len(hosts["node2"]["failsafe_proof"]["messages"]) == 8
    assert result["compiled"] == 2 and result["summary"].startswith("2 host(s) compiled from 2 inventory host(s)")


def test_each_host_is_proven_with_its_own_protected_ports(tmp_path):
    tv = task_vars(tmp_path, node2={"hostfw_protected_ports": {"inbound": ["tcp:2222", "tcp:5432"]}},
                   node1={"hostfw_verify_management_access": "false"})
    hosts = action(compile_action, {}).run(task_vars=tv)["hosts"]
    assert hosts["node2"]["failsafe_proof"]["ok"] is True
    assert hosts["node1"]["failsafe_proof"]["ok"] is True


def test_bad_protected_ports_name_the_host(tmp_path):
    tv = task_vars(tmp_path, node2={"hostfw_protected_ports": {"inbound": ["icmp:0"]}})
    result = action(compile_action, {}).run(task_vars=tv)
    assert result["failed"] is True
    assert result["problems"] == ["Host node2: hostfw_protected_ports.inbound[0]: 'icmp:0' is not a failsafe entry: "
                                  "the protocol must be tcp or udp (use tcp:0 or udp:0)"]


def test_invalid_policy_fails_with_one_line_per_problem(tmp_path):
    tv = task_vars(tmp_path)
    bad = [dict(RESOURCES[0], spec={"selector": "role == 'db'", "ingress": [{"action": "allow"}]})]
    for host in tv["hostvars"].values():
        host["hostfw_resources"] = bad
    result = action(compile_action, {}).run(task_vars=tv)
    assert result["failed"] is True
    assert result["problems"] == ["GlobalNetworkPolicy db: spec.ingress[0].action: 'allow' is not an action (use Allow)"]
    assert result["msg"].splitlines()[0] == "1 problem in the hostfw input:"


def test_output_dir_is_written_and_check_mode_writes_nothing(tmp_path):
    out = tmp_path / "out"
    result = action(compile_action, {"output_dir": str(out)}, check_mode=True).run(task_vars=task_vars(tmp_path))
    assert result["changed"] is True and not out.exists()
    assert result["written"] == ["node1.nft", "node2.nft"]
    result = action(compile_action, {"output_dir": str(out)}).run(task_vars=task_vars(tmp_path))
    assert result["changed"] is True
    assert sorted(os.listdir(out)) == ["matrix.html", "matrix.json", "matrix.md", "node1.nft", "node2.nft"]
    again = action(compile_action, {"output_dir": str(out)}).run(task_vars=task_vars(tmp_path))
    assert again["changed"] is False


def test_a_bad_check_is_named(tmp_path):
    result = action(compile_action, {"checks": [{"host": "node1", "source": "10.0.0.9", "port": 22}]}).run(
        task_vars=task_vars(tmp_path))
    assert result["failed"] is True
    assert result["problems"] == ["Task hostfw.nftables.compile: checks[0]: destination missing (each check needs "
                                  "host, source, destination, protocol and port)"]


def test_check_access_single_and_flows(tmp_path):
    single = action(check_access_action, {"host": "node2", "source": "10.0.0.5", "destination": "10.0.0.6",
                                          "port": 5432}).run(task_vars=task_vars(tmp_path))
    assert single["allowed"] is True and single["reason"] == "tier default policy db ingress rule 0 (Allow)"
    flows = action(check_access_action, {"flows": [
        {"host": "node2", "source": "10.0.0.5", "destination": "10.0.0.6", "port": 5432},
        {"host": "node2", "source": "192.0.2.1", "destination": "10.0.0.6", "port": 5432}]}).run(
        task_vars=task_vars(tmp_path))
    assert [f["allowed"] for f in flows["flows"]] == [True, False]
    assert flows["by_host"]["node2"]["source"] == "192.0.2.1"


HOSTILE_HOSTS = {
    "../../escape": "_.._escape-",  # a path that would leave output_dir
    ".hidden": "hidden-",
    "a/b": "a_b-",
    "line\nbreak\ninclude \"/etc/shadow\"": "line_break_include___etc_shadow_-",
    "x\ud800y": "x_y-",  # a lone surrogate (JSON inventories can carry one)
    "n" * 300: "n" * 64 + "-",
    "plain-name_1.example": None,  # kept as it is
    "pipe|in `name` <b>": "pipe_in__name___b_-",
}


def test_hostile_host_names_stay_inside_output_dir_and_out_of_the_nft_text(tmp_path):
    hosts = {}
    for i, name in enumerate(HOSTILE_HOSTS):
        hosts[name] = {"hostfw_auto_host_endpoint": True, "hostfw_resources": RESOURCES,
                       "hostfw_node_name": "node%d" % i, "ansible_host": "10.0.1.%d" % (i + 1)}
    tv = {"hostvars": hosts, "groups": {"all": list(hosts)}, "inventory_dir": str(tmp_path)}
    out = tmp_path / "out"
    result = action(compile_action, {"output_dir": str(out), "return_content": True}).run(task_vars=tv)
    assert not result.get("failed"), result.get("msg")
    written = sorted(n for n in os.listdir(str(out)) if not n.startswith("matrix."))
    assert len(written) == len(HOSTILE_HOSTS) and written == sorted(result["written"])
    assert "host/node7-auto-hep" in (out / "matrix.md").read_text()  # the matrix names endpoints, not hosts
    for name, prefix in HOSTILE_HOSTS.items():
        entry = result["hosts"][name]
        if prefix is None:
            assert entry["file"] == name + ".nft"
        else:
            assert entry["file"].startswith(prefix) and len(entry["file"]) == len(prefix) + 12 + 4, entry["file"]
        assert os.path.dirname(entry["path"]) == str(out) and os.path.isfile(entry["path"])
        text = entry["ruleset"]
        # the name is in the header, on one '#' line: never a line nft would read as a statement
        code = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
        assert not any("include" in line or "shadow" in line for line in code)
        assert text.encode("utf-8")  # no lone surrogate reaches the file
    assert not (tmp_path / "escape").exists() and not (tmp_path.parent / "escape").exists()
