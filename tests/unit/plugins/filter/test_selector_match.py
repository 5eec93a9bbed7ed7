# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests of the hostfw.nftables.selector_match filter (plugins/filter/selector_match.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import OrderedDict

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.hostfw.nftables.plugins.filter import selector_match as plugin
from ansible_collections.hostfw.nftables.plugins.filter.selector_match import FilterModule, selector_match
from ansible_collections.hostfw.nftables.plugins.plugin_utils.selector import SelectorError, parse

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))


def _collections_path():
    """The directory that holds ansible_collections/hostfw/nftables: the checkout's .collections
    link (tests/conftest.py creates it), or the tree ansible-test runs in."""
    link = os.path.join(ROOT, ".collections")
    if os.path.isdir(os.path.join(link, "ansible_collections", "hostfw", "nftables", "plugins")):
        return link
    real = os.path.realpath(ROOT)
    parent = os.path.dirname(os.path.dirname(os.path.dirname(real)))
    if os.path.basename(os.path.dirname(os.path.dirname(real))) == "ansible_collections":
        return parent
    return link


COLLECTIONS = _collections_path()


def test_filter_is_registered():
    filters = FilterModule().filters()
    assert filters == {"selector_match": selector_match}


@pytest.mark.parametrize("labels, selector, expected", [
    ({"role": "node"}, "role == 'node'", True),
    ({"role": "etcd"}, "role == 'node'", False),
    ({}, "role == 'node'", False),
    ({}, 'role != "node"', True),
    ({"role": "node"}, 'role != "node"', False),
    ({}, 'zone not in {"a", "b"}', True),
    ({"zone": "a"}, 'zone not in {"a", "b"}', False),
    ({"zone": "b"}, 'zone in {"a", "b",}', True),
    ({"kubernetes.io/hostname": "n1"}, "has(kubernetes.io/hostname)", True),
    ({"a": "b"}, "", True),
    ({}, "all()", True),
    ({}, "!all()", False),
    ({"a": "x"}, "global()", True),
    ({"tier": "frontend"}, 'tier starts with "front" && tier ends with "end" && tier contains "ten"', True),
    ({"contains": "contains"}, 'contains contains "contains"', True),
    ({"a": "1", "b": "2"}, 'a == "1" || b == "3" && c == "4"', True),
    ({"b": "3"}, '(a == "1" || b == "3") && c == "4"', False),
    (OrderedDict([("a", "1")]), 'a == "1"', True),
])
def test_true_and_false(labels, selector, expected):
    assert selector_match(labels, selector) is expected


@pytest.mark.parametrize("selector, expected", [
    ('a != "x"', True),
    ('a not in {"x"}', True),
    ("!has(a)", True),
    ("", True),
    ('a == "x"', False),
    ("has(a)", False),
])
def test_none_labels_mean_no_labels(selector, expected):
    assert selector_match(None, selector) is expected


def test_agrees_with_the_core_on_many_pairs():
    selectors = ['a == "1"', 'a != "1"', 'a in {"1", "2"}', 'a not in {"1"}', "has(a)", "!has(b)",
                 'a == "1" && b starts with "x"', 'a == "2" || !b contains "y"']
    label_sets = [{}, {"a": "1"}, {"a": "2", "b": "xy"}, {"b": "yx"}]
    seen = set()
    for text in selectors:
        for labels in label_sets:
            result = selector_match(labels, text)
            assert result is parse(text).matches(labels)
            seen.add(result)
    assert seen == {True, False}


@pytest.mark.parametrize("selector, position", [
    ("role = 'node'", 5),
    ("role == node", 8),
    ('role == "node"\n', 14),
    ("has (a)", 4),
    ("()", 1),
    ('a == "b', 5),
])
def test_bad_selector_message_is_the_selector_error(selector, position):
    with pytest.raises(AnsibleFilterError) as info:
        selector_match({"role": "node"}, selector)
    with pytest.raises(SelectorError) as core:
        parse(selector)
    message = info.value.message
    assert message == str(core.value)
    assert message.startswith('invalid selector "%s": ' % selector)
    assert message.endswith(" at position %d" % position)


def test_bad_selector_is_checked_even_without_labels():
    with pytest.raises(AnsibleFilterError, match="at position 1"):
        selector_match(None, "a")


@pytest.mark.parametrize("labels", [["role", "node"], "role=node", 5, ("a", "b"), {"role"}])
def test_labels_must_be_a_mapping(labels):
    with pytest.raises(AnsibleFilterError) as info:
        selector_match(labels, "has(role)")
    assert "labels must be a dictionary" in info.value.message
    assert type(labels).__name__ in info.value.message


@pytest.mark.parametrize("labels, key, shown", [
    ({"port": 80}, "'port'", 'port: "80"'),
    ({"enabled": True}, "'enabled'", 'enabled: "true"'),
    ({"role": "node", "ratio": 1.5}, "'ratio'", 'ratio: "1.5"'),
    ({"empty": None}, "'empty'", 'empty: ""'),
    ({"list": ["a"]}, "'list'", "list"),
])
def test_non_string_label_values_are_refused(labels, key, shown):
    with pytest.raises(AnsibleFilterError) as info:
        selector_match(labels, "has(role)")
    message = info.value.message
    assert key in message
    assert "quote the value" in message
    assert shown in message


@pytest.mark.parametrize("labels, shown", [
    ({80: "http"}, "80"),
    ({True: "x"}, "true"),
    ({None: "x"}, "None"),
])
def test_non_string_label_names_are_refused(labels, shown):
    with pytest.raises(AnsibleFilterError) as info:
        selector_match(labels, "all()")
    message = info.value.message
    assert "label name" in message
    assert shown in message
    assert "quote" in message


@pytest.mark.parametrize("selector", [None, 5, ["has(a)"], {"a": "b"}])
def test_selector_must_be_a_string(selector):
    with pytest.raises(AnsibleFilterError, match="selector must be a string"):
        selector_match({}, selector)


def test_documentation_strings_are_complete():
    doc = yaml.safe_load(plugin.DOCUMENTATION)
    assert doc["name"] == "selector_match"
    assert doc["short_description"]
    assert doc["positional"] == "selector"
    assert str(doc["version_added"]) == "0.1.0"
    assert doc["author"]
    assert doc["options"]["_input"]["type"] == "dict"
    assert doc["options"]["_input"]["required"] is True
    assert doc["options"]["selector"]["type"] == "str"
    assert doc["options"]["selector"]["required"] is True
    examples = yaml.safe_load(plugin.EXAMPLES)
    assert isinstance(examples, list) and examples
    assert all("hostfw.nftables.selector_match" in str(task) for task in examples)
    returned = yaml.safe_load(plugin.RETURN)
    assert returned["_value"]["type"] == "bool"


def _tool(name):
    candidate = os.path.join(os.path.dirname(sys.executable), name)
    if os.access(candidate, os.X_OK):
        return candidate
    return shutil.which(name)


def _ansible_env(tmp_path):
    env = dict(os.environ)
    env.update({
        "ANSIBLE_COLLECTIONS_PATH": COLLECTIONS,
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_LOCALHOST_WARNING": "0",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"),
        "ANSIBLE_HOME": str(tmp_path / "home"),
    })
    env.pop("ANSIBLE_CONFIG", None)
    return env


@pytest.mark.slow
def test_real_ansible_run(tmp_path):
    ansible = _tool("ansible")
    if ansible is None:
        pytest.skip("ansible is not installed")
    assert os.path.isdir(os.path.join(COLLECTIONS, "ansible_collections", "hostfw", "nftables", "plugins"))
    env = _ansible_env(tmp_path)
    ok = subprocess.run(
        [ansible, "localhost", "-m", "debug", "-a",
         "msg={{ {'role':'node'} | hostfw.nftables.selector_match(\"role == 'node'\") }}"],
        cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert '"msg": true' in ok.stdout

    bad = subprocess.run(
        [ansible, "localhost", "-m", "debug", "-a",
         "msg={{ {'role':'node'} | hostfw.nftables.selector_match(\"role = 'node'\") }}"],
        cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert bad.returncode != 0
    output = bad.stdout + bad.stderr
    assert "invalid selector" in output
    assert "role = 'node'" in output
    assert "at position 5" in output


@pytest.mark.slow
def test_ansible_doc_renders_the_documentation(tmp_path):
    ansible_doc = _tool("ansible-doc")
    if ansible_doc is None:
        pytest.skip("ansible-doc is not installed")
    proc = subprocess.run(
        [ansible_doc, "-t", "filter", "hostfw.nftables.selector_match"],
        cwd=str(tmp_path), env=_ansible_env(tmp_path), capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "selector_match" in proc.stdout
    assert "POSITIONAL: selector" in proc.stdout
