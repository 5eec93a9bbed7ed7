# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""plugins/action/compile.py fewer_repeats: reading every host's variables through Ansible's real
VariableManager gives the same values with the shortcut as without it (group_vars and host_vars
files, nested groups, inventory variables, facts, set_fact), and Ansible is left as it was."""

from __future__ import annotations

import pytest
from ansible import context
from ansible.inventory.manager import InventoryManager
from ansible.module_utils.common.collections import ImmutableDict
from ansible.parsing.dataloader import DataLoader
from ansible.vars import manager as vars_manager
from ansible.vars.hostvars import HostVars
from ansible.vars.manager import VariableManager

from ansible_collections.hostfw.nftables.plugins.action.compile import fewer_repeats
from ansible_collections.hostfw.nftables.plugins.plugin_utils.controller import gather

INVENTORY = """
all:
  vars:
    hostfw_auto_host_endpoint: true
  children:
    dc1:
      vars: {hostfw_labels: {dc: one}}
      children:
        web: {hosts: {w1: {ansible_host: 10.0.0.1}, w2: {ansible_host: 10.0.0.2, hostfw_labels: {dc: one, x: y}}}}
    db:
      hosts: {d1: {ansible_host: 10.0.0.3}}
"""


@pytest.fixture
def task_vars(tmp_path):
    context.CLIARGS = ImmutableDict(connection="local", module_path=None, forks=1, become=None, become_method=None,
                                    become_user=None, check=False, diff=False, verbosity=0)
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "host_vars").mkdir()
    (tmp_path / "group_vars" / "all.yml").write_text("hostfw_manifests: [m/*.yaml]\n")
    (tmp_path / "group_vars" / "db.yml").write_text("hostfw_labels: {role: db}\n")
    (tmp_path / "host_vars" / "w1.yml").write_text("hostfw_labels: {role: web}\nhostfw_host_ips: [10.9.9.9]\n")
    inv = tmp_path / "hosts.yml"
    inv.write_text(INVENTORY)
    loader = DataLoader()
    inventory = InventoryManager(loader=loader, sources=[str(inv)])
    manager = VariableManager(loader=loader, inventory=inventory)
    manager.set_host_facts("d1", {"hostfw_node_name": "from-facts"})
    manager.set_nonpersistent_facts("w2", {"hostfw_interfaces": {"eth0": ["10.0.0.2/24"]}})
    hostvars = HostVars(inventory=inventory, variable_manager=manager, loader=loader)
    return {"hostvars": hostvars, "groups": {"all": [h.name for h in inventory.get_hosts()]},
            "inventory_dir": str(tmp_path)}


def test_the_same_values_with_and_without_the_shortcut(task_vars):
    plain = gather(task_vars)
    before = (vars_manager.clean_facts, vars_manager.get_vars_from_inventory_sources, vars_manager.get_vars_from_path)
    with fewer_repeats():
        assert vars_manager.clean_facts is not before[0]
        fast = gather(task_vars)
    assert fast == plain
    assert plain[0]["w1"]["hostfw_labels"] == {"role": "web"} and plain[0]["w1"]["hostfw_host_ips"] == ["10.9.9.9"]
    assert plain[0]["w2"]["hostfw_labels"] == {"dc": "one", "x": "y"}
    assert plain[0]["d1"]["hostfw_labels"] == {"role": "db"} and plain[0]["d1"]["hostfw_node_name"] == "from-facts"
    assert plain[0]["w2"]["hostfw_interfaces"] == {"eth0": ["10.0.0.2/24"]}
    assert (vars_manager.clean_facts, vars_manager.get_vars_from_inventory_sources,
            vars_manager.get_vars_from_path) == before
