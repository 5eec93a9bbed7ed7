# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The semantic matrix diff on real edits, its equivalence classes against the cell-by-cell
matrix, the old world from a matrix.json or an inventory, and the compile option wiring."""

from __future__ import annotations

import copy
import json
import os
import shutil

import pytest

from ansible_collections.hostfw.nftables.plugins.plugin_utils import compiler, diff, errors, matrix_html

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(HERE))))
EXAMPLE = os.path.join(ROOT, "examples", "two-node-cluster")
PROBES = ({"protocol": "TCP", "port": 22}, {"protocol": "TCP", "port": 443})


def hep(name, ip):
    return {"apiVersion": "projectcalico.org/v3", "kind": "HostEndpoint",
            "metadata": {"name": name, "labels": {"role": "node"}},
            "spec": {"node": name, "interfaceName": "*", "expectedIPs": [ip]}}


def gnp(name, ingress=None, order=None, tier=None, egress=None):
    spec = {"selector": "role == 'node'", "types": []}
    if ingress is not None:
        spec["types"].append("Ingress")
        spec["ingress"] = ingress
    if egress is not None:
        spec["types"].append("Egress")
        spec["egress"] = egress
    if order is not None:
        spec["order"] = order
    if tier:
        spec["tier"] = tier
    return {"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkPolicy", "metadata": {"name": name},
            "spec": spec}


OFFICE = {"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkSet", "metadata": {"name": "office",
          "labels": {"net": "office"}}, "spec": {"nets": ["10.2.0.0/16"]}}
BASE = [hep("node-a", "10.0.0.1"), hep("node-b", "10.1.0.2"), OFFICE, gnp("egress", egress=[{"action": "Allow"}])]


def https_from(net):
    return gnp("allow-443", [{"action": "Allow", "protocol": "TCP", "source": {"nets": [net]},
                              "destination": {"ports": [443]}}], order=10)


def run_diff(old_docs, new_docs, probes=PROBES):
    old = compiler.compile_documents(old_docs, probes=probes)
    new = compiler.compile_documents(new_docs, probes=probes)
    return diff.diff_compilations(old, new, probes, "old", "new")


def cells(d):
    return [(c["change"], c["source"], c["destination"], "%s/%s" % (c["protocol"], c["port"]), c["old"]["reason"],
             c["new"]["reason"]) for c in d["changes"]]


EGRESS_OK = "egress: tier default policy egress egress rule 0 (Allow)"


def test_narrowing_a_source_net_closes_exactly_the_cells_outside_the_new_net():
    d = run_diff(BASE + [https_from("10.0.0.0/8")], BASE + [https_from("10.1.0.0/16")])
    allow = "ingress: tier default policy allow-443 ingress rule 0 (Allow)"
    assert cells(d) == [
        ("closed", "host/node-a", "host/node-b", "TCP/443", allow + "; " + EGRESS_OK,
         "ingress: end of tier default (defaultAction Deny)"),
        ("closed", "netset/office", "host/node-a", "TCP/443", "ingress: tier default policy allow-443 ingress rule 0 "
         "(Allow)", "ingress: end of tier default (defaultAction Deny)"),
        ("closed", "netset/office", "host/node-b", "TCP/443", allow, "ingress: end of tier default (defaultAction Deny)"),
    ]
    assert d["summary"] == {"opened": 0, "closed": 3, "unchanged": 5, "only_old": 0, "only_new": 0, "cells": 8}
    assert [(g["change"], g["count"], g["sources"], g["destinations"]) for g in d["groups"]] == [
        ("closed", 2, ["netset/office"], ["host/node-a", "host/node-b"]),
        ("closed", 1, ["host/node-a"], ["host/node-b"])]
    md = diff.to_markdown(d)
    assert "3 cell(s) opened, 0 closed" not in md and "0 cell(s) opened, 3 closed, 5 unchanged, over 8 cell(s)" in md
    assert "| netset/office | host/node-a | TCP/443 | allow | deny |" in md


def test_reordering_policies_flips_the_overlap():
    allow = gnp("a-allow", [{"action": "Allow", "protocol": "TCP", "destination": {"ports": [443]}}], order=10)
    deny = gnp("b-deny", [{"action": "Deny", "protocol": "TCP", "source": {"nets": ["10.2.0.0/16"]},
                           "destination": {"ports": [443]}}], order=20)
    deny_first = copy.deepcopy(deny)
    deny_first["spec"]["order"] = 5
    d = run_diff(BASE + [allow, deny], BASE + [allow, deny_first])
    assert cells(d) == [
        ("closed", "netset/office", dst, "TCP/443", "ingress: tier default policy a-allow ingress rule 0 (Allow)",
         "ingress: tier default policy b-deny ingress rule 0 (Deny)") for dst in ("host/node-a", "host/node-b")]


def test_a_tier_default_action_change_opens_what_the_next_tier_allows():
    tier = {"apiVersion": "projectcalico.org/v3", "kind": "Tier", "metadata": {"name": "security"},
            "spec": {"order": 10, "defaultAction": "Deny"}}
    ssh = gnp("ops", [{"action": "Allow", "protocol": "TCP", "source": {"nets": ["10.0.0.0/24"]},
                       "destination": {"ports": [8443]}}], tier="security")
    later = https_from("10.0.0.0/8")
    passing = copy.deepcopy(tier)
    passing["spec"]["defaultAction"] = "Pass"
    d = run_diff(BASE + [tier, ssh, later], BASE + [passing, ssh, later])
    assert cells(d) == [
        ("opened", "host/node-a", "host/node-b", "TCP/443", "ingress: end of tier security (defaultAction Deny)",
         "ingress: tier default policy allow-443 ingress rule 0 (Allow); " + EGRESS_OK),
        ("opened", "host/node-b", "host/node-a", "TCP/443", "ingress: end of tier security (defaultAction Deny)",
         "ingress: tier default policy allow-443 ingress rule 0 (Allow); " + EGRESS_OK),
        ("opened", "netset/office", "host/node-a", "TCP/443", "ingress: end of tier security (defaultAction Deny)",
         "ingress: tier default policy allow-443 ingress rule 0 (Allow)"),
        ("opened", "netset/office", "host/node-b", "TCP/443", "ingress: end of tier security (defaultAction Deny)",
         "ingress: tier default policy allow-443 ingress rule 0 (Allow)")]


def test_a_failsafe_edit_closes_ssh():
    fc = {"apiVersion": "projectcalico.org/v3", "kind": "FelixConfiguration", "metadata": {"name": "default"},
          "spec": {"failsafeInboundHostPorts": [{"protocol": "TCP", "port": 22, "net": "10.0.0.0/16"}]}}
    d = run_diff(BASE + [https_from("10.0.0.0/8")], BASE + [https_from("10.0.0.0/8"), fc])
    assert [(c[0], c[1], c[2], c[3]) for c in cells(d)] == [
        ("closed", "host/node-b", "host/node-a", "TCP/22"), ("closed", "netset/office", "host/node-a", "TCP/22"),
        ("closed", "netset/office", "host/node-b", "TCP/22")]
    assert [c["old"]["reason"] for c in d["changes"]] == [
        "ingress: failsafe inbound tcp:22; " + EGRESS_OK, "ingress: failsafe inbound tcp:22",
        "ingress: failsafe inbound tcp:22"]
    assert {c["new"]["reason"] for c in d["changes"]} == {"ingress: end of tier default (defaultAction Deny)"}
    # node-a (10.0.0.1) is inside the narrowed failsafe's net: its SSH to node-b stays open
    assert d["summary"]["closed"] == 3 and d["summary"]["unchanged"] == 5


def test_cells_of_one_world_only_compare_against_absent():
    d = run_diff(BASE + [https_from("10.0.0.0/8")], BASE[:2] + BASE[3:] + [https_from("10.0.0.0/8")])
    assert d["summary"]["only_old"] == 4 and d["summary"]["closed"] == 4
    c = d["changes"][0]
    assert c["source"] == "netset/office" and c["new"] == {
        "verdict": "absent", "reason": "no such cell in new (an endpoint is missing, or has no address of the family)"}


def _check_classes(comp, probes):
    full = comp.matrix(probes)
    cm = diff.ClassMatrix(comp, probes, "x")
    index = {(p["protocol"], p.get("port")): i for i, p in enumerate(probes)}
    for c in full["cells"]:
        assert cm.verdict(c["source"], c["destination"], index[(c["protocol"], c["port"])]) == c["verdict"], c
    return cm


def test_equivalence_classes_give_the_cell_by_cell_verdicts(tmp_path):
    hv = {h: {"hostfw_manifests": ["manifests/*.yaml"]} for h in ("policy-llm-control-plane", "policy-llm-worker")}
    comp = compiler.compile_inventory(hv, EXAMPLE)
    _check_classes(comp, comp.inventory.probes)
    import sys  # pylint: disable=import-outside-toplevel
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    import generate  # pylint: disable=import-outside-toplevel
    generate.write_fleet_manifest(str(tmp_path), 60, 40)
    hv = {generate.host_name(i): {"hostfw_manifests": ["manifests/world.yaml"]} for i in range(60)}
    comp = compiler.compile_inventory(hv, str(tmp_path))
    probes = [{"protocol": "TCP", "port": 22}, {"protocol": "TCP", "port": 1007}, {"protocol": "ICMP"}]
    cm = _check_classes(comp, probes)
    assert cm.evaluated < 60 * 59 * 3 / 4  # far fewer evaluations than cells


def test_diff_against_matrix_json_equals_diff_against_the_world():
    old_docs = BASE + [https_from("10.0.0.0/8")]
    new_docs = BASE + [https_from("10.1.0.0/16")]
    old = compiler.compile_documents(old_docs, probes=PROBES)
    new = compiler.compile_documents(new_docs, probes=PROBES)
    a = diff.diff_compilations(old, new, PROBES, "old", "new")
    b = diff.diff_matrix(json.loads(matrix_html.json_text(old.matrix(PROBES))), new, PROBES, "old", "new")
    for key in ("summary", "changes", "groups"):
        assert a[key] == b[key], key
    matrix_html.render(matrix_html.json_text(new.matrix(PROBES)), matrix_html.json_text(a))  # the page takes it


def test_load_old_output_dir_inventory_and_errors(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "matrix.json").write_text(matrix_html.json_text({"probes": PROBES, "cells": []}))
    assert diff.load_old(str(out))[0] == "matrix"
    kind, comp = diff.load_old(EXAMPLE)
    assert kind == "world" and sorted(comp.hosts) == ["policy-llm-control-plane", "policy-llm-worker"]
    with pytest.raises(errors.HostfwError, match="does not exist"):
        diff.load_old(str(tmp_path / "nothing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(errors.HostfwError, match="neither matrix.json"):
        diff.load_old(str(tmp_path / "empty"))
    templated = {"_meta": {"hostvars": {"n1": {"hostfw_manifests": ["{{ playbook_dir }}/x.yaml"]}}}}
    (tmp_path / "inv.yml").write_text("all: {}\n")
    with pytest.raises(errors.HostfwError, match="holds a Jinja2 template"):
        diff.load_old(str(tmp_path / "inv.yml"), runner=lambda src: templated)


def test_compile_run_writes_the_diff_and_fails_on_opened(tmp_path):
    hv = {h: {"hostfw_manifests": ["manifests/*.yaml"]} for h in ("policy-llm-control-plane", "policy-llm-worker")}
    inv = tmp_path / "inv"
    shutil.copytree(EXAMPLE, inv)
    path = inv / "manifests" / "20-host-firewall.yaml"
    path.write_text(path.read_text().replace("selector: role == 'node' || has(k8s-app) || tier == 'control-plane'",
                                             "selector: all()"))
    comp = compiler.compile_inventory(hv, str(inv))
    out = tmp_path / "out"
    res = compiler.run(comp, hv, {"output_dir": str(out), "compare_to": EXAMPLE, "fail_on": ["opened"],
                                  "lint": True, "lint_fail_on": "never", "host_details": True})
    assert res["failed"] and res["msg"].startswith("hostfw: the change opened 3 cell(s) (fail_on: opened) against ")
    assert ("opened: dev/frontend -> host/node-control-plane TCP/10250 (was deny: ingress: end of tier host-firewall "
            "(defaultAction Deny); now allow: ingress: tier host-firewall policy node-host-firewall ingress rule 0 "
            "(Allow))") in res["msg"]
    for name in ("matrix-diff.json", "matrix-diff.md", "lint.json", "lint.md", "matrix.html"):
        assert (out / name).is_file(), name
    assert 'id="hostfw-diff"' in (out / "matrix.html").read_text()
    assert res["hosts"]["policy-llm-worker"]["matrix_changes"][0].startswith(
        "opened dev/frontend -> host/node-worker TCP/10250: deny (")
    res = compiler.run(comp, hv, {"output_dir": str(out), "lint": True, "lint_fail_on": "error"})
    assert res["failed"] and "HF007 error GlobalNetworkPolicy node-host-firewall: spec.ingress[0].source" in res["msg"]
    with pytest.raises(errors.HostfwError, match="fail_on: needs compare_to"):
        compiler.run(comp, hv, {"fail_on": ["closed"]})
