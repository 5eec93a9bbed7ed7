# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""plugin_utils/runcache.py: the pieces of the once-per-run compile cache (tests/integration/test_run_cache.py
runs it through ansible-playbook)."""

from __future__ import annotations

import os

import pytest

from ansible_collections.hostfw.nftables.plugins.plugin_utils import runcache


def test_the_directory_must_be_private_and_ours(tmp_path):
    run_tmp = tmp_path / "ansible-local-1abc"
    run_tmp.mkdir(mode=0o700)
    path = runcache.private_directory(str(run_tmp))
    assert path == str(run_tmp / "hostfw-compile")
    assert os.stat(path).st_mode & 0o777 == 0o700
    os.chmod(path, 0o755)
    assert runcache.private_directory(str(run_tmp)) is None  # others could read or replace entries
    os.chmod(path, 0o700)
    os.chmod(str(run_tmp), 0o750)
    assert runcache.private_directory(str(run_tmp)) is None
    assert runcache.private_directory(None) is None
    os.chmod(str(run_tmp), 0o700)
    os.rmdir(path)
    os.symlink(str(tmp_path), path)
    assert runcache.private_directory(str(run_tmp)) is None  # a link is not our directory


@pytest.mark.parametrize("value, problem", [
    ({"role": "node"}, None),
    ("{{ playbook_dir }}/../manifests/*.yaml", None),
    ({"dc": "{{ inventory_hostname }}", "g": "{{ group_names | first }}"}, None),
    ("{{ my_labels }}", "a template naming my_labels"),
    (["ok", {"x": "{{ lookup('file', 'labels.yml') }}"}], "a template naming lookup"),
    ("{{ unclosed", "a template that does not parse"),
])
def test_only_templates_of_run_constant_names_are_reused(value, problem):
    assert runcache.template_reuse_problem(value) == problem


def test_a_rewritten_manifest_changes_the_signature_even_with_the_same_size(tmp_path):
    path = tmp_path / "m" / "a.yaml"
    path.parent.mkdir()
    path.write_text("port: 8080\n")
    first = runcache.manifest_signature(["m/*.yaml"], str(tmp_path))
    assert runcache.manifest_signature(["m/*.yaml"], str(tmp_path)) == first
    path.write_text("port: 9090\n")
    assert runcache.manifest_signature(["m/*.yaml"], str(tmp_path)) != first
    second = runcache.manifest_signature(["m/*.yaml"], str(tmp_path))
    (tmp_path / "m" / "b.yaml").write_text("x: 1\n")  # a new file the glob now names
    assert runcache.manifest_signature(["m/*.yaml"], str(tmp_path)) != second


def test_runtime_digest_reads_only_the_named_variables():
    stores = [("set_fact", {"h1": {"__hostfw_stage": {"changed": True}}, "h2": {}})]
    empty = runcache.runtime_digest(stores, ["hostfw_labels"])
    stores[0][1]["h1"]["__hostfw_stage"] = {"changed": False}  # registered results do not matter
    assert runcache.runtime_digest(stores, ["hostfw_labels"]) == empty
    stores[0][1]["h2"]["hostfw_labels"] = {"role": "db"}
    assert runcache.runtime_digest(stores, ["hostfw_labels"]) != empty


def test_store_and_load_per_host(tmp_path):
    cache = runcache.RunCache(str(tmp_path))
    assert cache.meta("k") is None
    assert cache.store("k", {"signature": "s"}, {"a": {"sha256": "1"}, "../b": {"sha256": "2"}})
    assert cache.meta("k")["signature"] == "s"
    assert cache.load("k", ["a", "../b", "c"]) == {"a": {"sha256": "1"}, "../b": {"sha256": "2"}}
    assert cache.store("k", {"signature": "t"}, {"a": {"sha256": "3"}})
    assert cache.load("k", ["a", "../b"]) == {"a": {"sha256": "3"}}
    assert sorted(os.listdir(str(tmp_path))) == ["k"]
