# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""controller.gather and fingerprint: un-templated reads where nothing needs templating,
Ansible's templating where something does, and one object per shared value."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from ansible_collections.hostfw.nftables.plugins.plugin_utils import controller

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..")))
from worlds import doc  # noqa: E402 pylint: disable=wrong-import-position


class FakeHostVars(Mapping):
    """Ansible's HostVars in miniature: ``raw_get`` returns the stored variables; ``[host][var]``
    'templates' (here: replaces the template by a marker) and deep-copies, and counts it."""

    def __init__(self, data):
        self.data = data
        self.templated = []

    def raw_get(self, host):
        return self.data[host]

    def __getitem__(self, host):
        outer = self

        class Vars(Mapping):
            def __getitem__(self, var):
                outer.templated.append((host, var))
                return _render(outer.data[host][var], host)

            def __iter__(self):
                return iter(outer.data[host])

            def __len__(self):
                return len(outer.data[host])

        return Vars()

    def __iter__(self):
        return iter(self.data)

    def __len__(self):
        return len(self.data)


def _render(value, host):
    if isinstance(value, str):
        return value.replace("{{ inventory_hostname }}", host)
    if isinstance(value, list):
        return [_render(v, host) for v in value]
    if isinstance(value, dict):
        return {k: _render(v, host) for k, v in value.items()}
    return value


POLICIES = [doc("GlobalNetworkPolicy", "p%d" % i, {"selector": "all()", "ingress": [{"action": "Allow"}]})
            for i in range(3)]


def _task_vars(data):
    return {"hostvars": FakeHostVars(data), "groups": {"all": list(data)}, "inventory_dir": "/inv"}


def test_shared_values_are_read_raw_once_and_stay_one_object():
    data = {"h%d" % i: {"hostfw_resources": POLICIES, "hostfw_labels": {"role": "node"}, "other": 1} for i in range(5)}
    task_vars = _task_vars(data)
    hosts, base = controller.gather(task_vars)
    assert base == "/inv"
    assert task_vars["hostvars"].templated == []
    assert hosts["h0"] == {"hostfw_resources": POLICIES, "hostfw_labels": {"role": "node"}}
    assert all(hosts[h]["hostfw_resources"] is hosts["h0"]["hostfw_resources"] for h in hosts)
    assert hosts["h0"]["hostfw_resources"] is not POLICIES  # a plain copy, not Ansible's object


def test_values_with_templates_go_through_ansible():
    data = {"h%d" % i: {"hostfw_resources": POLICIES, "hostfw_node_name": "{{ inventory_hostname }}",
                        "hostfw_labels": {"name": "{{ inventory_hostname }}"}} for i in range(3)}
    task_vars = _task_vars(data)
    hosts, _base = controller.gather(task_vars)
    assert hosts["h2"]["hostfw_node_name"] == "h2"
    assert hosts["h1"]["hostfw_labels"] == {"name": "h1"}
    assert sorted(task_vars["hostvars"].templated) == sorted(
        (h, v) for h in data for v in ("hostfw_node_name", "hostfw_labels"))


def test_hostvars_without_raw_get_are_templated():
    data = {"a": {"hostfw_node_name": "{{ inventory_hostname }}"}}
    hosts, _base = controller.gather({"hostvars": {"a": data["a"]}, "groups": {"all": ["a"]}, "playbook_dir": "/pb"})
    assert hosts == {"a": {"hostfw_node_name": "{{ inventory_hostname }}"}}  # a plain dict: read as it is


def test_has_template():
    assert controller.has_template([{"a": ["x", "{{ y }}"]}])
    assert controller.has_template({"{% if %}": 1})
    assert not controller.has_template([{"a": ["{x}", "y }}", 1, None]}])


def test_fingerprint_follows_every_value_and_ignores_sharing():
    shared = [dict(p) for p in POLICIES]
    one = {"a": {"hostfw_resources": shared}, "b": {"hostfw_resources": shared}}
    copies = {"a": {"hostfw_resources": [dict(p) for p in POLICIES]}, "b": {"hostfw_resources": [dict(p) for p in POLICIES]}}
    assert controller.fingerprint(one, "/x") == controller.fingerprint(copies, "/x")
    changed = {"a": {"hostfw_resources": shared}, "b": {"hostfw_resources": shared[:2]}}
    assert controller.fingerprint(changed, "/x") != controller.fingerprint(one, "/x")
    assert controller.fingerprint(one, "/y") != controller.fingerprint(one, "/x")
    renamed = {"a": {"hostfw_resources": shared}, "c": {"hostfw_resources": shared}}
    assert controller.fingerprint(renamed, "/x") != controller.fingerprint(one, "/x")
    moved = {"a": {"hostfw_labels": {"x": "1"}}, "b": {}}
    other = {"a": {}, "b": {"hostfw_labels": {"x": "1"}}}
    assert controller.fingerprint(moved, "/x") != controller.fingerprint(other, "/x")
