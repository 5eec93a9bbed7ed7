# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compile once per playbook run (``hostfw.nftables.compile: once_per_run``), through ansible-playbook.

A play with ``serial: 2`` over six hosts runs the compile task in three batches.  The witness
that a batch does not read the inventory's variables is independent of the code under test: a
test-only vars plugin (fixtures/count_vars) logs every host whose variables Ansible computes and
the process that asked; the compile runs in a worker process whose parent is ansible-playbook,
so the hosts logged by workers are the hosts the compile read.  Every batch's results must equal
those of a plain compile (no cache) of the same inputs, including after a change in the middle of
the run (set_fact on a host of a later batch, set_fact delegated to such a host, a manifest
rewritten between two batches), and a second run must never be served the first run's results.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLAYBOOK_BIN = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
COUNT_VARS = os.path.join(ROOT, "tests", "integration", "fixtures", "count_vars")

pytestmark = pytest.mark.skipif(not os.path.exists(PLAYBOOK_BIN), reason="ansible-playbook is not installed")

HOSTS = ["node1", "node2", "node3", "node4", "db1", "db2"]
DB = {"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkPolicy", "metadata": {"name": "db"},
      "spec": {"selector": "role == 'db'", "ingress": [
          {"action": "Allow", "protocol": "TCP", "source": {"selector": "role == 'node'"},
           "destination": {"ports": [5432]}}]}}
WEB = ("apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata:\n  name: web\nspec:\n"
       "  selector: role == 'node'\n  ingress:\n  - action: Allow\n    protocol: TCP\n    destination:\n"
       "      ports: [%d]\n")

PLAY = """
- name: Compile in batches
  hosts: all
  gather_facts: false
  serial: 2
  tasks:
    - name: A host of the second batch changes its labels before the compile
      ansible.builtin.set_fact:
        hostfw_labels: {role: db}
      when: change == 'set_fact' and inventory_hostname == 'node3'

    - name: The manifest is rewritten before the second batch's compile
      ansible.builtin.copy:
        content: "{{ web_changed }}"
        dest: "{{ inventory_dir }}/manifests/web.yaml"
        mode: "0644"
      delegate_to: localhost
      run_once: true
      when: change == 'manifest' and ansible_play_batch[0] == 'node3'

    - name: Compile
      hostfw.nftables.compile:
        hosts: "{{ ansible_play_batch }}"
        return_content: true
        once_per_run: "{{ once | bool }}"
      register: compiled
      run_once: true

    - name: Keep the batch's result
      ansible.builtin.copy:
        content: "{{ compiled | to_json }}"
        dest: "{{ result_dir }}/batch-{{ ansible_play_batch[0] }}.json"
        mode: "0644"
      delegate_to: localhost
      run_once: true

    - name: After its compile, the first batch changes the labels of a host of the third batch (delegated facts)
      ansible.builtin.set_fact:
        hostfw_labels: {role: node}
      delegate_to: db1
      delegate_facts: true
      run_once: true
      when: change == 'delegated' and ansible_play_batch[0] == 'node1'
"""


def make_inventory(tmp_path, web_port=8080, labels=None):
    inv = tmp_path / "inv"
    (inv / "group_vars").mkdir(parents=True, exist_ok=True)
    (inv / "manifests").mkdir(exist_ok=True)
    (inv / "manifests" / "web.yaml").write_text(WEB % web_port)
    labels = dict({h: ("db" if h.startswith("db") else "node") for h in HOSTS}, **(labels or {}))
    hosts = {h: {"ansible_host": "10.0.0.%d" % (i + 1), "hostfw_labels": {"role": labels[h]}}
             for i, h in enumerate(HOSTS)}
    (inv / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": hosts}}, sort_keys=False))
    (inv / "group_vars" / "all.yml").write_text(yaml.safe_dump({
        "ansible_connection": "local", "hostfw_auto_host_endpoint": True, "hostfw_resources": [DB],
        "hostfw_manifests": ["manifests/*.yaml"]}))
    return inv / "hosts.yml"


def play(tmp_path, inventory, label, once=True, change="none", extra_env=None):
    """Run the play; returns (batch results by first host, hosts read per worker process)."""
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAY)
    results = tmp_path / ("results-" + label)
    results.mkdir()
    log = tmp_path / ("vars-" + label + ".log")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".collections"), ANSIBLE_NOCOLOR="1",
               HOSTFW_CACHE_DIR=str(tmp_path / "world-cache"), ANSIBLE_VARS_PLUGINS=COUNT_VARS,
               ANSIBLE_VARS_ENABLED="host_group_vars,count_vars", ANSIBLE_VARS_PLUGIN_STAGE="task",
               HOSTFW_COUNT_VARS_LOG=str(log), ANSIBLE_LOCALHOST_WARNING="false", **(extra_env or {}))
    proc = subprocess.Popen([PLAYBOOK_BIN, "-i", str(inventory), str(playbook), "-e", "once=%s" % once,  # pylint: disable=consider-using-with
                             "-e", "change=%s" % change, "-e", "result_dir=%s" % results,
                             "-e", json.dumps({"web_changed": WEB % 9090})],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    out = proc.communicate()[0]
    assert proc.returncode == 0, out
    batches = {}
    for path in glob.glob(str(results / "batch-*.json")):
        with open(path, encoding="utf-8") as handle:
            batches[os.path.basename(path)[6:-5]] = json.load(handle)
    workers = {}
    with open(log, encoding="utf-8") as handle:
        for line in handle:
            pid, ppid, host = line.split()
            if int(ppid) == proc.pid:  # a worker of this ansible-playbook
                workers.setdefault(int(pid), set()).add(host)
    return batches, workers


# hosts no task delegates to (a delegated task's worker computes the variables of its target)
NEVER_DELEGATED = [h for h in HOSTS if h != "db1"]


def reads(workers):
    """How many worker processes computed each host's variables."""
    return {h: sum(1 for hosts in workers.values() if h in hosts) for h in NEVER_DELEGATED}


def reference(dummy_tmp_path, inventory):
    """Every host's result from one plain compile (the core, no Ansible, no cache) of the same
    inputs: the variables as the inventory file and group_vars/all.yml give them."""
    from ansible_collections.hostfw.nftables.plugins.plugin_utils import compiler
    base = os.path.dirname(str(inventory))
    with open(str(inventory), encoding="utf-8") as handle:
        hosts = yaml.safe_load(handle)["all"]["hosts"]
    with open(os.path.join(base, "group_vars", "all.yml"), encoding="utf-8") as handle:
        group = yaml.safe_load(handle)
    hostvars = {h: dict(group, **hosts[h]) for h in hosts}
    for hv in hostvars.values():
        hv.pop("ansible_connection")
    comp = compiler.compile_inventory(hostvars, base)
    return json.loads(json.dumps(compiler.run(comp, hostvars, {"hosts": list(hosts), "return_content": True})["hosts"]))


def per_host(batches):
    return {host: entry for batch in batches.values() for host, entry in batch["hosts"].items()}


def test_later_batches_read_no_host_variables_and_get_the_same_results(tmp_path):
    inventory = make_inventory(tmp_path)
    batches, workers = play(tmp_path, inventory, "once")
    assert sorted(batches) == ["db1", "node1", "node3"]
    assert [batches[b]["run_cache"] for b in ("node1", "node3", "db1")] == ["stored", "served", "served"]
    assert [batches[b]["vars_read"] for b in ("node1", "node3", "db1")] == [6, 0, 0]
    # the independent witness: one worker read the six hosts' variables, no other worker read any
    assert reads(workers) == {h: 1 for h in NEVER_DELEGATED}, workers
    for first, batch in batches.items():
        assert sorted(batch["hosts"]) == sorted(HOSTS[HOSTS.index(first):HOSTS.index(first) + 2])
    assert per_host(batches) == reference(tmp_path, inventory)
    assert "10.0.0.1" in per_host(batches)["db1"]["ruleset"]  # node1's address in db1's table

    # the control: without once_per_run every batch's worker reads every host (the witness can fail)
    dummy, workers = play(tmp_path, inventory, "every-batch", once=False)
    assert reads(workers) == {h: 3 for h in NEVER_DELEGATED}, workers


@pytest.mark.parametrize("change", ["set_fact", "delegated", "manifest"])
def test_a_change_in_the_middle_of_the_run_is_seen(tmp_path, change):
    inventory = make_inventory(tmp_path)
    before = reference(tmp_path, inventory)  # the inputs as the run starts
    batches, dummy = play(tmp_path, inventory, "once", change=change)
    state = {b: batches[b]["run_cache"] for b in batches}
    assert state == {"node1": "stored", "node3": "stored again: an input changed since the first batch",
                     "db1": "served"}, state
    assert [batches[b]["vars_read"] for b in ("node1", "node3", "db1")] == [6, 6, 0]
    # what each batch got equals a plain compile of the inputs as they were at that batch
    after_inventory = make_inventory(tmp_path / "after", web_port=9090 if change == "manifest" else 8080,
                                     labels={"node3": "db"} if change == "set_fact" else
                                     {"db1": "node"} if change == "delegated" else None)
    after = reference(tmp_path, after_inventory)
    assert before != after
    for first, batch in batches.items():
        expected = before if first == "node1" else after
        for host, entry in batch["hosts"].items():
            assert entry == expected[host], (change, first, host)
    if change == "manifest":
        assert "9090" in batches["node3"]["hosts"]["node3"]["ruleset"]
        assert "9090" not in batches["node1"]["hosts"]["node1"]["ruleset"]


def test_a_run_never_sees_another_runs_results(tmp_path):
    """Two runs with the same inputs, the same playbook and a shared ANSIBLE_LOCAL_TEMP: each run
    compiles (stored) in its first batch; an input changed between the runs is seen; nothing of
    a run stays behind once it ended."""
    inventory = make_inventory(tmp_path)
    shared = tmp_path / "local-tmp"
    shared.mkdir()
    env = {"ANSIBLE_LOCAL_TEMP": str(shared)}
    first, dummy = play(tmp_path, inventory, "first", extra_env=env)
    assert first["node1"]["run_cache"] == "stored"
    assert os.listdir(str(shared)) == [], "the run's private temporary directory outlived the run"
    (tmp_path / "inv" / "manifests" / "web.yaml").write_text(WEB % 7070)
    second, dummy = play(tmp_path, inventory, "second", extra_env=env)
    assert [second[b]["run_cache"] for b in ("node1", "node3", "db1")] == ["stored", "served", "served"]
    assert "7070" in second["node1"]["hosts"]["node1"]["ruleset"] and "7070" in second["node3"]["hosts"]["node4"]["ruleset"]
    assert per_host(second) == reference(tmp_path, inventory)


def test_a_template_naming_a_variable_turns_the_reuse_off(tmp_path):
    inventory = make_inventory(tmp_path)
    with open(str(inventory), encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    data["all"]["hosts"]["node2"]["hostfw_labels"] = "{{ node2_labels }}"
    data["all"]["hosts"]["node2"]["node2_labels"] = {"role": "node"}
    data["all"]["hosts"]["node4"]["hostfw_labels"] = {"role": "node", "dc": "{{ inventory_hostname }}"}
    inventory.write_text(yaml.safe_dump(data, sort_keys=False))
    batches, workers = play(tmp_path, inventory, "templated")
    assert all(b["run_cache"] == "off: node2 hostfw_labels: a template naming node2_labels" for b in batches.values()), \
        [b["run_cache"] for b in batches.values()]
    assert reads(workers) == {h: 3 for h in NEVER_DELEGATED}, workers  # every batch reads again
    plain = make_inventory(tmp_path / "plain")
    with open(str(plain), encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    data["all"]["hosts"]["node4"]["hostfw_labels"] = {"role": "node", "dc": "node4"}
    plain.write_text(yaml.safe_dump(data, sort_keys=False))
    assert per_host(batches) == reference(tmp_path, plain)


def test_once_per_run_refuses_options_that_are_not_per_host(tmp_path):
    inventory = make_inventory(tmp_path)
    playbook = tmp_path / "bad.yml"
    playbook.write_text("- hosts: all\n  gather_facts: false\n  tasks:\n    - hostfw.nftables.compile:\n"
                        "        once_per_run: true\n        output_dir: %s\n        lint: true\n      run_once: true\n"
                        % (tmp_path / "out"))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".collections"), ANSIBLE_NOCOLOR="1",
               HOSTFW_CACHE_DIR=str(tmp_path / "world-cache"))
    proc = subprocess.run([PLAYBOOK_BIN, "-i", str(inventory), str(playbook)], capture_output=True, text=True,
                          env=env, check=False)
    assert proc.returncode != 0
    assert ("hostfw.nftables.compile: once_per_run returns per-host results only; it does not take output_dir, lint "
            "(use a separate compile task for them)") in proc.stdout, proc.stdout
