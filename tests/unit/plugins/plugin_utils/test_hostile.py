# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Hostile input stays harmless: parser limits, shared structures, names that reach files and
nft text."""

from __future__ import annotations

import os

import pytest

from ansible_collections.hostfw.nftables.plugins.plugin_utils import controller, errors, sources


def load(text):
    sink = errors.Collector()
    docs = sources.load_manifest_text(text, "evil.yaml", sink)
    return docs, [str(p) for p in sink.problems]


def test_billion_laughs_is_refused_before_it_expands():
    text = "a: &a [x, x, x, x, x, x, x, x, x]\n"
    for i in range(1, 12):
        text += "%s: &%s [*%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s]\n" % ((chr(97 + i),) * 2 + (chr(96 + i),) * 9)
    assert len(text) < 1400
    docs, problems = load(text)
    assert docs == []
    # aliases in 'b' to 'e' add 74718 values; the first alias in 'f' adds 66430 more (all of 'e')
    assert problems == ["Manifest evil.yaml: line 6, column 8: YAML aliases expand this file to more than 100000 "
                        "values (write the values out: aliases of aliases multiply, and Calico manifests never need them)"]


def test_modest_aliases_and_merge_keys_are_accepted():
    docs, problems = load("base: &b {x: 1}\nd:\n  <<: *b\n  y: 2\nl: [*b, *b]\n")
    assert problems == [] and docs[0][0]["d"] == {"x": 1, "y": 2}


def test_an_alias_cannot_smuggle_depth():
    deep = "".join(" " * (2 * i) + "k%d:\n" % i for i in range(40)) + " " * 80 + "&d v: 1\n"
    text = "a: &top\n" + "".join("  " + line + "\n" for line in deep.splitlines())
    text += "b:\n" + "".join(" " * (2 * i) + "c%d:\n" % i for i in range(1, 30)) + " " * 60 + "z: *top\n"
    docs, problems = load(text)
    assert docs == [] and len(problems) == 1 and "this alias makes the document nest deeper than 64" in problems[0], problems


def test_selectors_with_ampersands_are_not_mistaken_for_anchors():
    docs, problems = load("apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: p}\n"
                          "spec: {selector: \"a == 'x' && b == 'y'\"}\n")
    assert problems == [] and len(docs) == 1


@pytest.mark.parametrize("text", ["[" * 50000 + "]" * 50000, "a:\n" + "".join(" " * (2 * i) + "b:\n" for i in range(1, 200)),
                                  "{\"a\": " * 3000 + "1" + "}" * 3000])
def test_deep_nesting_is_refused_with_a_message(text):
    docs, problems = load(text)
    assert docs == []
    assert len(problems) == 1 and "nests deeper than 64 levels" in problems[0], problems


def test_huge_integers_and_bad_values_are_problems_not_tracebacks():
    docs, problems = load("a: " + "9" * 5000 + "\n")
    assert docs == [] and problems and problems[0].startswith("Manifest evil.yaml: document 1: cannot be read: ")
    docs, problems = load("[" + "9" * 5000 + "]")
    assert docs == [] and problems and "cannot be read" in problems[0]


def test_too_many_documents_and_too_large_files(monkeypatch):
    monkeypatch.setattr(sources, "MAX_DOCUMENTS", 3)
    docs, problems = load("---\na: 1\n---\na: 2\n---\na: 3\n---\na: 4\n")
    assert problems == ["Manifest evil.yaml: has more than 3 documents (split it into several files)"]
    monkeypatch.setattr(sources, "MAX_MANIFEST_BYTES", 10)
    docs, problems = load("a: 1\nb: 2\nc: 3\n")
    assert problems == ["Manifest evil.yaml: is 15 bytes long (at most 10: split it into several files)"]


def test_shared_inventory_structures_cannot_expand_without_bound():
    leaf = ["x"] * 10
    value = leaf
    for _level in range(30):
        value = [value, value]  # 2**30 paths through a structure of 31 lists
    assert controller.has_template(value) is False  # visits each container once
    with pytest.raises(errors.HostfwError) as info:
        controller.gather({"hostvars": {"h1": {"hostfw_resources": value}}, "groups": {"all": ["h1"]}})
    assert [str(p) for p in info.value.problems] == [
        "Host h1: hostfw_resources: shares containers (YAML aliases) that expand it to more than 100000 values "
        "(write the values out)"]


def test_modest_sharing_is_kept_and_shared_between_hosts():
    rule = {"action": "Allow", "protocol": "TCP", "destination": {"ports": [22]}}
    policy = {"kind": "GlobalNetworkPolicy", "metadata": {"name": "p"}, "spec": {"ingress": [rule, rule]}}
    hosts, _base = controller.gather({"hostvars": {"h1": {"hostfw_resources": [policy]},
                                                   "h2": {"hostfw_resources": [policy, policy]}},
                                      "groups": {"all": ["h1", "h2"]}})
    first = hosts["h1"]["hostfw_resources"][0]
    assert first["spec"]["ingress"][0] is first["spec"]["ingress"][1]
    assert hosts["h2"]["hostfw_resources"][1] is first


def test_deep_inventory_variables_are_a_problem_of_the_host():
    value = "leaf"
    for _level in range(100):
        value = {"a": value}
    with pytest.raises(errors.HostfwError) as info:
        controller.gather({"hostvars": {"h1": {"hostfw_resources": [value]}}, "groups": {"all": ["h1"]}})
    assert [str(p) for p in info.value.problems] == [
        "Host h1: hostfw_resources: nests deeper than 64 levels (Calico documents never do: check the variable)"]


def test_manifest_paths_that_are_not_regular_files_are_refused(tmp_path, monkeypatch):
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(str(fifo))  # opening it for reading would wait for a writer forever
    big = tmp_path / "big.yaml"
    big.write_text("a: 1\n" * 4)
    monkeypatch.setattr(sources, "MAX_MANIFEST_BYTES", 10)
    sink = errors.Collector()
    assert sources.load_manifests(["pipe.yaml", "big.yaml"], str(tmp_path), sink) == []
    assert [str(p) for p in sink.problems] == [
        "Manifest pipe.yaml: is not a regular file (name manifest files or directories of them)",
        "Manifest big.yaml: is 20 bytes long (at most 10: split it into several files)"]


def test_markdown_cells_stay_one_cell():
    from ansible_collections.hostfw.nftables.plugins.plugin_utils import matrix  # pylint: disable=import-outside-toplevel
    assert matrix.md("a|b\nc <img src=x> [l](u) `c` \\") == "a\\|b c \\<img src=x\\> \\[l\\](u) \\`c\\` \\\\"
