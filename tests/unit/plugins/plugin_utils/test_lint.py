# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lint: one fixture per code that triggers exactly it (at the marked file line) and a near miss
that does not; the lesson's trap; acknowledgements; shadowing confirmed on random flows."""

from __future__ import annotations

import os
import random
import shutil

import pytest

from ansible_collections.hostfw.nftables.plugins.plugin_utils import compiler, lint, sources
from ansible_collections.hostfw.nftables.plugins.plugin_utils.model import EGRESS

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "fixtures", "lint")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(HERE))))
EXAMPLE = os.path.join(ROOT, "examples", "two-node-cluster")
CODES = sorted(lint.CODES)


def compile_files(base_dir, patterns, hosts=("node-a", "node-b", "node-c")):
    world, inv = sources.load_world({h: {"hostfw_manifests": list(patterns)} for h in hosts}, base_dir)
    return compiler.Compilation(world, inv)


def example(base=EXAMPLE):
    hv = {h: {"hostfw_manifests": ["manifests/*.yaml"]} for h in ("policy-llm-control-plane", "policy-llm-worker")}
    return compiler.compile_inventory(hv, base)


def marked_line(path, code):
    with open(path, encoding="utf-8") as handle:
        lines = handle.read().split("\n")
    found = [i + 1 for i, line in enumerate(lines) if "<- %s" % code in line and not line.startswith("#")]
    assert len(found) == 1, path
    return found[0]


def test_every_code_has_fixtures():
    assert sorted(os.listdir(FIXTURES)) == CODES
    for code in CODES:
        assert sorted(os.listdir(os.path.join(FIXTURES, code))) == ["near-miss.yaml", "trigger.yaml"]


@pytest.mark.parametrize("code", CODES)
def test_fixture_triggers_exactly_its_code_at_its_line(code):
    rel = "%s/trigger.yaml" % code
    report = lint.run(compile_files(FIXTURES, [rel]))
    assert [f.code for f in report.findings] == [code], lint.to_markdown(report)
    f = report.findings[0]
    assert f.origin.startswith(rel + "#")
    assert f.line == marked_line(os.path.join(FIXTURES, rel), code)
    assert f.severity == lint.CODES[code][1] or code in ("HF002", "HF006", "HF007")
    assert f.message and f.consequence and f.fix and f.path.startswith("spec.")
    d = f.as_dict()
    assert {"code", "severity", "kind", "name", "path", "source", "line", "message", "consequence", "fix"} <= set(d)


@pytest.mark.parametrize("code", CODES)
def test_near_miss_finds_nothing(code):
    report = lint.run(compile_files(FIXTURES, ["%s/near-miss.yaml" % code]))
    assert report.findings == [], lint.to_markdown(report)


def test_messages_of_some_codes():
    f = lint.run(compile_files(FIXTURES, ["HF002/trigger.yaml"])).findings[0]
    assert str(f) == ("HF002 error GlobalNetworkPolicy no-ssh: spec.ingress[0]: Deny on failsafe port(s) tcp:22: the "
                      "failsafe accepts those packets before any policy, so this rule never denies them "
                      "(HF002/trigger.yaml#5 line 57)")
    assert f.consequence == "on host(s) node-a, node-b every peer still reaches tcp:22 (failsafe)"
    f = lint.run(compile_files(FIXTURES, ["HF101/trigger.yaml"])).findings[0]
    assert f.message == ("the rule is shadowed: every packet it matches is decided before it, on every endpoint it "
                         "applies to, by tier default policy block-8080 ingress rule 0 (Deny)")
    assert f.consequence == ("the Allow rule never decides a verdict on host(s) node-a, node-b; the traffic it names "
                             "gets the earlier verdict instead")


def test_two_node_example_has_no_error_and_reports_the_ssh_failsafe_as_information():
    report = lint.run(example())
    assert [(f.code, f.severity) for f in report.findings] == [("HF012", "info")]
    f = report.findings[0]
    assert f.kind == "FelixConfiguration" and f.name == "default" and f.path == "spec.failsafeInboundHostPorts"
    assert "prod/backend -> host/node-control-plane TCP/22 allow (ingress: failsafe inbound tcp:22)" in f.consequence
    assert "failsafeInboundHostPorts listing {protocol: tcp, port: 22, net: <management CIDR>}" in f.fix
    assert report.failing("error") == [] and report.failing("warning") == []


def lesson_with(tmp_path, old, new):
    inv = tmp_path / "inv"
    shutil.copytree(EXAMPLE, inv)
    path = inv / "manifests" / "20-host-firewall.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return example(str(inv))


def test_the_lessons_trap_all_as_source_names_the_pods_that_reach_the_nodes(tmp_path):
    comp = lesson_with(tmp_path, "selector: role == 'node' || has(k8s-app) || tier == 'control-plane'",
                       "selector: all()")
    report = lint.run(comp)
    errors = report.failing("error")
    assert [f.code for f in errors] == ["HF007"]
    f = errors[0]
    assert (f.kind, f.name, f.path, f.origin, f.line) == (
        "GlobalNetworkPolicy", "node-host-firewall", "spec.ingress[0].source", "manifests/20-host-firewall.yaml#1", 15)
    assert f.message == ("the source all() admits application pods (dev/frontend, prod/backend) to the host endpoints: "
                         "a compromised pod can reach the nodes")
    assert f.consequence == (
        "pods reach the nodes: dev/frontend -> host/node-control-plane TCP/10250 allow (ingress: tier host-firewall "
        "policy node-host-firewall ingress rule 0 (Allow)); prod/backend -> host/node-control-plane TCP/10250 allow "
        "(ingress: tier host-firewall policy node-host-firewall ingress rule 0 (Allow)); dev/frontend -> "
        "host/node-worker TCP/10250 allow (ingress: tier host-firewall policy node-host-firewall ingress rule 0 "
        "(Allow))")


def test_the_lessons_trap_app_namespace_as_source(tmp_path):
    comp = lesson_with(tmp_path, "selector: role == 'node' || has(k8s-app) || tier == 'control-plane'",
                       "selector: role == 'node' || has(k8s-app) || has(app)")
    errors = lint.run(comp).failing("error")
    assert [f.code for f in errors] == ["HF007"]
    assert "(dev/frontend, prod/backend)" in errors[0].message


def test_the_lessons_policy_selector_all_is_a_warning(tmp_path):
    comp = lesson_with(tmp_path, "  selector: role == 'node'\n  types:\n    - Ingress", "  selector: all()\n  types:\n    - Ingress")
    report = lint.run(comp)
    assert [(f.code, f.severity, f.path) for f in report.findings if f.code != "HF012"] == [
        ("HF007", "warning", "spec.selector")]
    assert report.findings[0].consequence.startswith("the 4 workload(s) of the inventory (calico-system/calico-node,")


def test_acknowledged_by_annotation(tmp_path):
    for code in ("HF101", "HF002"):
        shutil.copytree(os.path.join(FIXTURES, code), str(tmp_path / code))
    path = tmp_path / "HF101" / "trigger.yaml"
    path.write_text(path.read_text().replace("  name: allow-8080\n", "  name: allow-8080\n  annotations:\n"
                                             "    hostfw.nftables/ignore: HF007, hf101\n"))
    report = lint.run(compile_files(str(tmp_path), ["HF101/trigger.yaml"]))
    assert [(f.code, f.acknowledged) for f in report.findings] == [("HF101", True)]
    assert report.failing("error") == [] and report.counts()["acknowledged"] == 1
    assert "(error) acknowledged" in lint.to_markdown(report)
    # another code in the list acknowledges nothing else
    path = tmp_path / "HF002" / "trigger.yaml"
    path.write_text(path.read_text().replace("  name: no-ssh\n", "  name: no-ssh\n  annotations:\n"
                                             "    hostfw.nftables/ignore: HF101\n"))
    report = lint.run(compile_files(str(tmp_path), ["HF002/trigger.yaml"]))
    assert [(f.code, f.acknowledged) for f in report.findings] == [("HF002", False)]


def test_fail_on_levels():
    report = lint.run(compile_files(FIXTURES, ["HF004/trigger.yaml"]))
    assert report.failing("error") == [] and len(report.failing("warning")) == 1 and report.failing("never") == []


# --------------------------------------------------------------------------------------------
# Shadowing: a reported rule never decides a verdict, on random flows
# --------------------------------------------------------------------------------------------

def never_decides(comp, finding, rnd, flows=1000):
    """Sample flows inside the reported rule's match and evaluate them on every endpoint the finding
    names: the rule must never appear in the evaluator's trace (it is never reached)."""
    policy = next(p for p in comp.world.policies.values() if p.name == finding.name)
    direction = finding.path.split("[")[0].split(".")[1]
    index = int(finding.path.split("[")[1].split("]")[0])
    rule = comp.model.policy_rules(policy, direction)[index]
    label = "tier %s policy %s %s rule %d (%s)" % (policy.tier, policy.name, direction, index, rule.action)
    boxes = lint.rule_boxes(rule, under=False)
    assert boxes
    checked = 0
    for where in finding.where:
        plan = comp.plan(where["host"])
        for dummy in range(flows // max(1, len(finding.where))):
            pkt = lint.sample(boxes[rnd.randrange(len(boxes))], rnd)
            if direction == EGRESS:
                v = comp.evaluator.output(plan, where["interface"], pkt)
            else:
                v = comp.evaluator.input(plan, where["interface"], pkt)
            assert not any(t.endswith(label) for t in v.trace), (pkt, v.trace)
            checked += 1
    return checked


@pytest.mark.parametrize("code", ["HF101", "HF102"])
def test_fixture_shadowing_never_decides_on_random_flows(code):
    comp = compile_files(FIXTURES, ["%s/trigger.yaml" % code])
    finding = lint.run(comp).findings[0]
    assert never_decides(comp, finding, random.Random(13)) >= 1000


def _random_world(rnd, n):
    docs = [{"apiVersion": "projectcalico.org/v3", "kind": "Tier", "metadata": {"name": "t1"},
             "spec": {"order": 10, "defaultAction": rnd.choice(["Pass", "Deny"])}}]
    for h in ("n1", "n2"):
        docs.append({"apiVersion": "projectcalico.org/v3", "kind": "HostEndpoint",
                     "metadata": {"name": h, "labels": {"role": "node", "name": h}},
                     "spec": {"node": h, "interfaceName": "*", "expectedIPs": ["10.0.0.%d" % (1 + (h == "n2"))]}})
    nets = ["10.0.0.0/8", "10.0.0.0/16", "10.0.0.0/24", "10.1.0.0/16", "192.168.0.0/16", "0.0.0.0/0"]
    for i in range(n):
        rules = []
        for dummy in range(rnd.randint(1, 3)):
            rule = {"action": rnd.choice(["Allow", "Deny", "Pass", "Allow", "Deny"])}
            if rnd.random() < 0.8:
                rule["protocol"] = rnd.choice(["TCP", "UDP"])
                if rnd.random() < 0.8:
                    lo = rnd.choice([22, 80, 443, 8000, 8080])
                    rule["destination"] = {"ports": [lo if rnd.random() < 0.5 else "%d:%d" % (lo, lo + rnd.randint(0, 100))]}
            if rnd.random() < 0.6:
                rule.setdefault("source", {})["nets"] = [rnd.choice(nets)]
            if rnd.random() < 0.2:
                rule.setdefault("source", {})["notNets"] = [rnd.choice(nets[:4])]
            rules.append(rule)
        docs.append({"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkPolicy",
                     "metadata": {"name": "p%d" % i},
                     "spec": {"tier": rnd.choice(["t1", "default"]), "order": rnd.randint(1, 5) * 10 + i,
                              "selector": rnd.choice(["role == 'node'", "name == 'n1'"]), "types": ["Ingress"],
                              "ingress": rules}})
    return compiler.compile_documents(docs)


def test_random_worlds_every_shadowed_rule_never_decides():
    rnd = random.Random(2026)
    found = 0
    for dummy in range(40):
        comp = _random_world(rnd, rnd.randint(3, 8))
        for f in lint.run(comp).findings:
            if f.code in ("HF101", "HF102"):
                found += 1
                never_decides(comp, f, rnd, flows=1000)
    assert found >= 10  # the generator does produce shadowed and redundant rules


def test_big_world_is_clean_and_analysed_per_plan(tmp_path):
    import sys  # pylint: disable=import-outside-toplevel
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    import generate  # pylint: disable=import-outside-toplevel
    inv = generate.write_fleet_manifest(str(tmp_path), 200, 100)
    assert inv
    hv = {generate.host_name(i): {"hostfw_manifests": ["manifests/world.yaml"]} for i in range(200)}
    comp = compiler.compile_inventory(hv, str(tmp_path))
    report = lint.run(comp)
    assert report.findings == []
