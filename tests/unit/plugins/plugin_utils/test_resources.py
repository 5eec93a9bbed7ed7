# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for plugins/plugin_utils/resources.py: Calico v3 validation into api objects."""

from __future__ import annotations

import ast
import copy
import glob
import os
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.hostfw.nftables.plugins.plugin_utils import api, errors, resources, selector, sources

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "invalid")
V3 = "projectcalico.org/v3"


def doc(kind, name, spec=None, namespace=None, labels=None, **meta):
    metadata = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    if labels is not None:
        metadata["labels"] = labels
    metadata.update(meta)
    out = {"apiVersion": V3, "kind": kind, "metadata": metadata}
    if spec is not None:
        out["spec"] = spec
    return out


def build(*docs):
    return resources.build_world([(d, "test#%d" % i) for i, d in enumerate(docs, 1)])


def problems(*docs):
    with pytest.raises(errors.HostfwError) as info:
        build(*docs)
    return [str(p) for p in info.value.problems]


# ----------------------------------------------------------------------------------------------
# Invalid fixtures: one malformed document per file, "# expect:" lines give the exact messages
# ----------------------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\{\{selector_error:(.*?)\}\}")


def _expand(message):
    """``{{selector_error:<python literal>}}`` is replaced by the SelectorError text of that
    selector, so the fixtures stay exact without copying the selector module's wording."""
    def repl(match):
        text = ast.literal_eval(match.group(1))
        with pytest.raises(selector.SelectorError) as info:
            selector.parse(text)
        return str(info.value)
    return _PLACEHOLDER.sub(repl, message)


def _expectations(path):
    expected = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if not line.startswith("# expect: "):
                break
            expected.append(_expand(line[len("# expect: "):].rstrip("\n")))
    return expected


FIXTURE_FILES = sorted(glob.glob(os.path.join(FIXTURES, "*.yaml")))


def test_there_are_enough_invalid_fixtures():
    assert len(FIXTURE_FILES) >= 45
    for path in FIXTURE_FILES:
        assert _expectations(path), "%s has no '# expect:' line" % path


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=[os.path.basename(p)[:-5] for p in FIXTURE_FILES])
def test_invalid_fixture(path):
    name = os.path.basename(path)
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    collector = errors.Collector()
    docs = sources.load_manifest_text(text, name, collector)
    resources.validate_documents(docs, collector)
    got = [str(p) for p in collector.problems]
    assert sorted(got) == sorted(_expectations(path))
    assert len(got) == len(set(got)), "one message per problem"
    if docs and not any(p.kind == "Manifest" for p in collector.problems):
        with pytest.raises(errors.HostfwError) as info:
            resources.build_world(docs)
        assert sorted(str(p) for p in info.value.problems) == sorted(got)
        assert all(p.origin and p.origin.startswith(name) for p in info.value.problems)


def test_message_format_is_kind_name_path_what_fix():
    for path in FIXTURE_FILES:
        for message in _expectations(path):
            assert re.match(r"^[A-Za-z]+ \S+: .+ \(.+\)$", message, re.S), message


# ----------------------------------------------------------------------------------------------
# Built-ins and defaulting
# ----------------------------------------------------------------------------------------------

def test_builtins_are_always_present():
    world = build()
    assert world.tiers["default"] == api.Tier("default", 1000000.0, "Deny", builtin=True)
    assert world.tiers["kube-admin"] == api.Tier("kube-admin", 1000.0, "Pass", builtin=True)
    assert world.tiers["kube-baseline"] == api.Tier("kube-baseline", 10000000.0, "Pass", builtin=True)
    allow = world.profiles[api.DEFAULT_ALLOW_PROFILE]
    assert allow.builtin and allow.ingress == (api.Rule("Allow"),) and allow.egress == (api.Rule("Allow"),)
    assert world.warnings == []


def test_user_copy_of_a_builtin_tier_or_profile_is_accepted():
    world = build(doc("Tier", "default", {"order": 1000000, "defaultAction": "Deny"}),
                  doc("Tier", "kube-admin", {"order": 1000, "defaultAction": "Pass"}),
                  doc("Tier", "kube-baseline", {"order": 10000000, "defaultAction": "Pass"}),
                  doc("Profile", api.DEFAULT_ALLOW_PROFILE,
                      {"ingress": [{"action": "Allow"}], "egress": [{"action": "Allow"}]}))
    assert world.tiers["default"].builtin and world.tiers["default"].order == 1000000.0
    assert world.tiers["kube-admin"].order == 1000.0
    assert world.profiles[api.DEFAULT_ALLOW_PROFILE].builtin
    # tier.go CEL / crd_validation_test.go TestCRDDefaults_Tier: the default tier's defaultAction
    # defaults to Deny, so it may be left out; its order may not.
    assert build(doc("Tier", "default", {"order": 1000000})).tiers["default"].default_action == "Deny"


def test_tier_status_is_accepted_and_ignored():
    """tier.go: a Tier has a status (conditions written by the tier controller), which an export carries."""
    tier = doc("Tier", "platform", {"order": 100})
    tier["status"] = {"conditions": [{"type": "Ready", "status": "True", "reason": "Ready", "message": "",
                                      "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
    assert build(tier).tiers["platform"].order == 100.0
    tier["status"] = "ready"
    assert problems(tier) == ["Tier platform: status: expected a mapping, got a string (remove status: the tier "
                              "controller writes it)"]
    hep = doc("HostEndpoint", "h", {"node": "n", "interfaceName": "eth0"})
    hep["status"] = {}
    assert problems(hep) == ["HostEndpoint h: status: unknown field (remove it; valid fields here: apiVersion, kind, "
                             "metadata, spec)"]


def test_builtin_tier_documents_need_the_fields_calico_requires():
    """tier.go CEL rules: every built-in tier names its order; kube-admin and kube-baseline also
    name defaultAction Pass, because an unset defaultAction defaults to Deny."""
    assert problems(doc("Tier", "default", {}), doc("Tier", "kube-admin", {"order": 1000}),
                    doc("Tier", "kube-baseline", {"defaultAction": "Pass"})) == [
        "Tier default: spec.order: missing: the built-in tier default has order 1000000 (set order: 1000000, or "
        "remove the Tier document)",
        "Tier kube-admin: spec.defaultAction: missing: the built-in tier kube-admin has defaultAction Pass, and an "
        "unset defaultAction is Deny (set defaultAction: Pass, or remove the Tier document)",
        "Tier kube-baseline: spec.order: missing: the built-in tier kube-baseline has order 10000000 (set order: "
        "10000000, or remove the Tier document)"]


def test_changed_builtin_profile_is_an_error():
    msgs = problems(doc("Profile", api.DEFAULT_ALLOW_PROFILE, {"ingress": [{"action": "Deny"}]}))
    assert msgs == ["Profile projectcalico-default-allow: spec: the built-in profile projectcalico-default-allow "
                    "is one Allow ingress rule and one Allow egress rule and cannot be changed (remove this "
                    "document, or give your profile another name)"]


@pytest.mark.parametrize("spec, types", [
    ({}, ("Ingress",)),
    ({"ingress": [{"action": "Allow"}]}, ("Ingress",)),
    ({"egress": [{"action": "Allow"}]}, ("Egress",)),
    ({"ingress": [{"action": "Allow"}], "egress": [{"action": "Deny"}]}, ("Ingress", "Egress")),
    ({"types": ["Egress"]}, ("Egress",)),
    ({"types": ["Egress", "Ingress"], "ingress": [{"action": "Allow"}]}, ("Ingress", "Egress")),
    ({"types": []}, ("Ingress",)),
])
def test_types_defaulting(spec, types):
    world = build(doc("GlobalNetworkPolicy", "p", spec))
    assert world.policies[("GlobalNetworkPolicy", None, "p")].types == types


def test_tier_and_order_defaults():
    world = build(doc("GlobalNetworkPolicy", "p", {}), doc("GlobalNetworkPolicy", "q", {"order": 7}))
    p = world.policies[("GlobalNetworkPolicy", None, "p")]
    assert p.tier == "default" and p.order is None and p.selector is None
    assert dict(p.labels) == {"projectcalico.org/tier": "default"}
    assert world.policies[("GlobalNetworkPolicy", None, "q")].order == 7.0


# ----------------------------------------------------------------------------------------------
# Every field of every kind
# ----------------------------------------------------------------------------------------------

def test_host_endpoint_fields():
    world = build(doc("HostEndpoint", "node1-eth0", {
        "node": "node1", "interfaceName": "eth0", "expectedIPs": ["10.0.0.1", "FD00::0001"],
        "profiles": [api.DEFAULT_ALLOW_PROFILE],
        "ports": [{"name": "ssh", "protocol": "TCP", "port": 22}, {"name": "dns", "protocol": 17, "port": 53},
                  {"name": "sctp-x", "protocol": "132", "port": 9899}],
    }, labels={"role": "worker", "example.com/zone": ""}, annotations={"note": "x"}, resourceVersion="12",
        uid="abc", creationTimestamp="2024-01-01T00:00:00Z"))
    hep = world.host_endpoints["node1-eth0"]
    assert hep == api.HostEndpoint(
        name="node1-eth0", node="node1", labels={"role": "worker", "example.com/zone": ""}, interface_name="eth0",
        expected_ips=("10.0.0.1", "fd00::1"), profiles=(api.DEFAULT_ALLOW_PROFILE,),
        ports=(api.EndpointPort("ssh", 6, 22), api.EndpointPort("dns", 17, 53), api.EndpointPort("sctp-x", 132, 9899)),
        origin="test#1")


def test_host_endpoint_wildcard_and_ip_only():
    world = build(doc("HostEndpoint", "a", {"node": "n", "interfaceName": "*"}),
                  doc("HostEndpoint", "b", {"node": "n", "expectedIPs": ["192.0.2.1"]}))
    assert world.host_endpoints["a"].interface_name == "*"
    assert world.host_endpoints["b"].interface_name == ""
    assert world.host_endpoints["b"].expected_ips == ("192.0.2.1",)


def test_global_network_policy_fields():
    spec = {
        "tier": "platform", "order": 10.5, "selector": "role == 'worker'", "types": ["Ingress", "Egress"],
        "doNotTrack": False, "preDNAT": False, "applyOnForward": True, "performanceHints": ["AssumeNeededOnEveryNode"],
        "ingress": [
            {"action": "Allow", "protocol": "TCP", "ipVersion": 4,
             "source": {"nets": ["10.0.0.0/8", "10.0.0.0/08", "192.0.2.7/32"], "notNets": ["10.1.0.0/16"],
                        "selector": "role == 'lb'", "notSelector": "env == 'dev'", "namespaceSelector": "global()"},
             "destination": {"ports": [22, "443", "8000:8080", "ssh"], "notPorts": ["9000:9001"]},
             "metadata": {"annotations": {"why": "ssh from the LBs"}}},
            {"action": "Deny", "protocol": "ICMP", "icmp": {"type": 8, "code": 0}, "notICMP": {"type": 13}},
            {"action": "Log", "notProtocol": "UDPLite", "source": {"namespaceSelector": "team == 'a'"}},
            {"action": "Pass", "protocol": 47},
            {"action": "Allow", "protocol": "58", "ipVersion": 6, "destination": {"nets": ["fd00::/8"]}},
            {"action": "Allow", "destination": {"ports": ["https"]}},
        ],
        "egress": [{"action": "Allow", "protocol": "UDP", "destination": {"ports": [53]}}],
    }
    world = build(doc("Tier", "platform", {"order": 100, "defaultAction": "Pass"}),
                  doc("GlobalNetworkPolicy", "platform.node-fw", spec, labels={"team": "net"}))
    p = world.policies[("GlobalNetworkPolicy", None, "platform.node-fw")]
    assert (p.kind, p.name, p.namespace, p.tier, p.order) == ("GlobalNetworkPolicy", "platform.node-fw", None,
                                                              "platform", 10.5)
    assert p.selector == selector.parse("role == 'worker'")
    assert p.types == ("Ingress", "Egress")
    assert (p.do_not_track, p.pre_dnat, p.apply_on_forward, p.staged_action) == (False, False, True, None)
    assert dict(p.labels) == {"team": "net", "projectcalico.org/tier": "platform"}
    assert p.origin == "test#2" and p.can_select_hosts and not p.staged
    r0, r1, r2, r3, r4, r5 = p.ingress
    assert r0 == api.Rule(
        action="Allow", ip_version=4, protocol=6,
        source=api.EntityRule(nets=("10.0.0.0/8", "192.0.2.7/32"), not_nets=("10.1.0.0/16",),
                              selector=selector.parse("role == 'lb'"), not_selector=selector.parse("env == 'dev'"),
                              namespace_selector=None, global_scope=True),
        destination=api.EntityRule(ports=(api.PortRange(22, 22), api.PortRange(443, 443), api.PortRange(8000, 8080),
                                          api.NamedPort("ssh")), not_ports=(api.PortRange(9000, 9001),)),
        annotations=(("why", "ssh from the LBs"),))
    assert r1 == api.Rule("Deny", protocol=1, icmp=api.ICMPMatch(8, 0), not_icmp=api.ICMPMatch(13, None))
    assert r2.action == "Log" and r2.not_protocol == 136 and r2.protocol is None
    assert r2.source.namespace_selector == selector.parse("team == 'a'") and not r2.source.global_scope
    assert r3 == api.Rule("Pass", protocol=47)
    assert r4.protocol == 58 and r4.ip_version == 6 and r4.destination.nets == ("fd00::/8",)
    assert r5.destination.ports == (api.NamedPort("https"),)
    assert p.egress == (api.Rule("Allow", protocol=17, destination=api.EntityRule(ports=(api.PortRange(53, 53),))),)
    assert world.tiers["platform"] == api.Tier("platform", 100.0, "Pass", origin="test#1")
    assert world.warnings == []


def test_prednat_and_donottrack_policies():
    world = build(doc("GlobalNetworkPolicy", "pre", {"preDNAT": True, "applyOnForward": True,
                                                     "ingress": [{"action": "Deny"}]}),
                  doc("GlobalNetworkPolicy", "dnt", {"doNotTrack": True, "applyOnForward": True,
                                                     "egress": [{"action": "Allow"}]}))
    pre = world.policies[("GlobalNetworkPolicy", None, "pre")]
    dnt = world.policies[("GlobalNetworkPolicy", None, "dnt")]
    assert pre.pre_dnat and pre.apply_on_forward and not pre.do_not_track and pre.types == ("Ingress",)
    assert dnt.do_not_track and dnt.types == ("Egress",)


def test_policy_selectors_that_never_select_hosts_are_accepted_with_a_warning():
    world = build(doc("GlobalNetworkPolicy", "pods", {"namespaceSelector": "team == 'a'"}),
                  doc("GlobalNetworkPolicy", "sa", {"serviceAccountSelector": "role == 'api'"}))
    pods = world.policies[("GlobalNetworkPolicy", None, "pods")]
    sa = world.policies[("GlobalNetworkPolicy", None, "sa")]
    assert pods.namespace_selector == selector.parse("team == 'a'") and not pods.can_select_hosts
    assert sa.service_account_selector == selector.parse("role == 'api'") and not sa.can_select_hosts
    assert world.warnings == [
        "GlobalNetworkPolicy pods: spec.namespaceSelector restricts the policy to workload endpoints, so it never "
        "applies to a host endpoint; hostfw accepts it and enforces nothing for it",
        "GlobalNetworkPolicy sa: spec.serviceAccountSelector restricts the policy to workload endpoints, so it "
        "never applies to a host endpoint; hostfw accepts it and enforces nothing for it"]


def test_namespaced_policies_are_accepted_with_a_warning():
    world = build(doc("NetworkPolicy", "backend", {"selector": "app == 'db'", "ingress": [{"action": "Allow"}]},
                      namespace="prod"),
                  doc("StagedNetworkPolicy", "knp.default.x", {"stagedAction": "Learn"}),
                  doc("NetworkPolicy", "tiered.name", {}, namespace="prod"))
    np = world.policies[("NetworkPolicy", "prod", "backend")]
    snp = world.policies[("StagedNetworkPolicy", "default", "knp.default.x")]
    assert np.namespace == "prod" and not np.can_select_hosts and np.types == ("Ingress",)
    assert snp.staged and snp.staged_action == "Learn" and snp.namespace == "default"
    assert world.warnings[0] == ("NetworkPolicy prod/backend: a namespaced policy selects only workload endpoints "
                                 "in its namespace and never applies to a host endpoint; hostfw validates it and "
                                 "uses it for nothing else")
    assert len(world.warnings) == 3


def test_staged_global_network_policy():
    world = build(doc("StagedGlobalNetworkPolicy", "a", {"selector": "all()", "ingress": [{"action": "Deny"}]}),
                  doc("StagedGlobalNetworkPolicy", "b", {"stagedAction": "Delete", "tier": "kube-admin"}),
                  doc("StagedGlobalNetworkPolicy", "c", {"stagedAction": "Ignore", "doNotTrack": True,
                                                         "applyOnForward": True}))
    a = world.policies[("StagedGlobalNetworkPolicy", None, "a")]
    b = world.policies[("StagedGlobalNetworkPolicy", None, "b")]
    assert a.staged and a.staged_action == "Set" and a.can_select_hosts
    assert b.staged_action == "Delete" and b.tier == "kube-admin"
    assert world.policies[("StagedGlobalNetworkPolicy", None, "c")].do_not_track


def test_global_in_a_rule_not_selector_is_all():
    """policy_common.go: the CEL rule against global( covers EntityRule.selector only; the parser
    accepts global() and it matches every label set."""
    world = build(doc("GlobalNetworkPolicy", "a", {"ingress": [{"action": "Allow",
                                                               "source": {"notSelector": "global()"}}]}))
    rule = world.policies[("GlobalNetworkPolicy", None, "a")].ingress[0]
    assert rule.source.not_selector == selector.parse("global()") and rule.source.not_selector.matches({})
    assert problems(doc("GlobalNetworkPolicy", "a", {"ingress": [{"action": "Allow",
                                                                  "source": {"selector": "global()"}}]})) == [
        "GlobalNetworkPolicy a: spec.ingress[0].source.selector: global() is only allowed as the whole "
        "namespaceSelector of a rule (remove global() from this selector)"]


def test_empty_staged_action_is_set():
    """validator_test.go "should accept an empty StagedAction value": "" is unset, i.e. Set."""
    world = build(doc("StagedGlobalNetworkPolicy", "a", {"stagedAction": "", "selector": "foo == 'bar'"}),
                  doc("StagedNetworkPolicy", "b", {"stagedAction": "", "ingress": [{"action": "Allow"}]}))
    assert world.policies[("StagedGlobalNetworkPolicy", None, "a")].staged_action == "Set"
    assert world.policies[("StagedNetworkPolicy", "default", "b")].staged_action == "Set"


def test_network_sets():
    world = build(doc("GlobalNetworkSet", "office", {"nets": ["192.0.2.7", "10.1.2.3/8", "10.0.0.0/8", "::/0",
                                                              "2001:DB8::1"]}, labels={"trusted": "yes"}),
                  doc("NetworkSet", "partners", {"nets": ["198.51.100.0/24"]}, namespace="prod",
                      labels={"kind": "partner"}),
                  doc("GlobalNetworkSet", "empty", {}))
    gns = world.network_sets[("GlobalNetworkSet", None, "office")]
    assert gns == api.NetworkSet("GlobalNetworkSet", "office", None, {"trusted": "yes"},
                                 ("192.0.2.7/32", "10.0.0.0/8", "::/0", "2001:db8::1/128"), origin="test#1")
    ns = world.network_sets[("NetworkSet", "prod", "partners")]
    assert ns.labels == {"kind": "partner", api.NAMESPACE_LABEL: "prod"} and ns.nets == ("198.51.100.0/24",)
    assert world.network_sets[("GlobalNetworkSet", None, "empty")].nets == ()


def test_workload_endpoint_fields_and_implicit_labels():
    world = build(
        doc("Profile", "kns.prod", {"labelsToApply": {"pcns.team": "a"}}),
        doc("WorkloadEndpoint", "node1-k8s-web--1-eth0", {
            "orchestrator": "k8s", "workload": "", "node": "node1", "pod": "web-1", "endpoint": "eth0",
            "containerID": "abc123", "serviceAccountName": "default", "ipNetworks": ["10.65.0.5/32", "fd00::5"],
            "ipNATs": [{"internalIP": "10.65.0.5", "externalIP": "192.0.2.5"}], "ipv4Gateway": "169.254.1.1",
            "profiles": ["kns.prod"], "interfaceName": "cali1234567890a", "mac": "ee:ee:ee:ee:ee:ee",
            "ports": [{"name": "http", "protocol": "TCP", "port": 8080, "hostPort": 0, "hostIP": ""},
                      {"name": "", "protocol": "UDP", "port": 53, "hostPort": 5353}],
            "allowSpoofedSourcePrefixes": ["10.0.0.0/8"]},
            namespace="prod", labels={"app": "web", api.NAMESPACE_LABEL: "spoofed"}))
    wep = world.workload_endpoints[("prod", "node1-k8s-web--1-eth0")]
    assert wep == api.WorkloadEndpoint(
        name="node1-k8s-web--1-eth0", namespace="prod",
        labels={"app": "web", api.NAMESPACE_LABEL: "prod", "projectcalico.org/orchestrator": "k8s"},
        ip_networks=("10.65.0.5/32", "fd00::5/128"), node="node1", interface_name="cali1234567890a",
        profiles=("kns.prod",), ports=(api.EndpointPort("http", 6, 8080),), origin="test#2")


def test_workload_endpoint_default_namespace():
    world = build(doc("WorkloadEndpoint", "w", {"interfaceName": "cali0", "ipNetworks": ["10.65.0.9"]}))
    wep = world.workload_endpoints[("default", "w")]
    assert wep.labels == {api.NAMESPACE_LABEL: "default"} and wep.ip_networks == ("10.65.0.9/32",)


def test_profile_fields():
    world = build(doc("Profile", "kns.prod", {"ingress": [{"action": "Allow", "protocol": "TCP"}],
                                              "egress": [{"action": "Deny"}],
                                              "labelsToApply": {"pcns.team": "a"}}))
    prof = world.profiles["kns.prod"]
    assert prof == api.Profile("kns.prod", (api.Rule("Allow", protocol=6),), (api.Rule("Deny"),),
                               {"pcns.team": "a"}, origin="test#1")


# ----------------------------------------------------------------------------------------------
# Cross-resource behaviour
# ----------------------------------------------------------------------------------------------

def test_identical_duplicates_are_merged_silently():
    hep = doc("HostEndpoint", "n1", {"node": "n1", "interfaceName": "eth0"})
    copy1 = copy.deepcopy(hep)
    copy1["metadata"]["resourceVersion"] = "42"  # bookkeeping does not make documents different
    gnp = doc("GlobalNetworkPolicy", "p", {"selector": "a == 'x'"})
    gnp2 = doc("GlobalNetworkPolicy", "p", {"selector": "a=='x'", "types": ["Ingress"]})
    world = build(hep, copy1, gnp, gnp2, doc("Tier", "t", {"order": 1}), doc("Tier", "t", {"order": 1.0}))
    assert list(world.host_endpoints) == ["n1"] and world.host_endpoints["n1"].origin == "test#1"
    assert list(world.policies) == [("GlobalNetworkPolicy", None, "p")]


def test_same_name_in_different_kinds_or_namespaces_is_fine():
    world = build(doc("GlobalNetworkPolicy", "p", {}), doc("StagedGlobalNetworkPolicy", "p", {}),
                  doc("NetworkSet", "s", {}, namespace="a"), doc("NetworkSet", "s", {}, namespace="b"),
                  doc("GlobalNetworkSet", "s", {}))
    assert len(world.policies) == 2 and len(world.network_sets) == 3


def test_all_problems_of_all_documents_are_reported_together():
    msgs = problems(doc("GlobalNetworkPolicy", "a", {"ingress": [{"action": "allow"}]}),
                    doc("HostEndpoint", "b", {"interfaceName": "eth0"}),
                    "not a document",
                    doc("GlobalNetworkPolicy", "c", {"tier": "nope"}))
    assert msgs == [
        "GlobalNetworkPolicy a: spec.ingress[0].action: 'allow' is not an action (use Allow)",
        "HostEndpoint b: spec.node: missing: a HostEndpoint must name its node (set spec.node to the node name of "
        "the host that owns the interface)",
        "Document <unnamed>: expected a mapping with apiVersion, kind, metadata and spec, got a string (check the "
        "indentation: each document must be one mapping)",
        "GlobalNetworkPolicy c: spec.tier: the tier 'nope' does not exist (add a Tier document named nope)"]


def test_problems_carry_their_origin():
    with pytest.raises(errors.HostfwError) as info:
        resources.build_world([(doc("HostEndpoint", "x", {}), "hosts.yaml#4")])
    assert [p.origin for p in info.value.problems] == ["hosts.yaml#4", "hosts.yaml#4"]
    assert "(from hosts.yaml#4)" in info.value.render(with_origin=True)


def test_list_documents_are_flattened():
    listdoc = {"apiVersion": "v1", "kind": "List", "items": [
        doc("GlobalNetworkSet", "a", {"nets": ["192.0.2.0/24"]}),
        {"apiVersion": V3, "kind": "GlobalNetworkPolicyList", "metadata": {"resourceVersion": "1"},
         "items": [doc("GlobalNetworkPolicy", "p", {}), doc("GlobalNetworkPolicy", "q", {"tier": "x"})]}]}
    with pytest.raises(errors.HostfwError) as info:
        resources.build_world([(listdoc, "all.yaml#1")])
    (problem,) = info.value.problems
    assert problem.origin == "all.yaml#1 items[1] items[1]"
    assert list(resources.flatten_lists(listdoc, "o")) == [
        (listdoc["items"][0], "o items[0]"), (listdoc["items"][1]["items"][0], "o items[1] items[0]"),
        (listdoc["items"][1]["items"][1], "o items[1] items[1]")]
    assert list(resources.flatten_lists({"kind": "HostEndpointList", "items": None}, "o")) == []


def test_other_calico_kinds_are_ignored_with_a_warning():
    world = build(doc("IPPool", "pool", {"cidr": "10.65.0.0/16"}), doc("BGPConfiguration", "default", {}))
    assert world.warnings == ["IPPool pool: ignored: hostfw does not use IPPool resources (test#1)",
                              "BGPConfiguration default: ignored: hostfw does not use BGPConfiguration resources "
                              "(test#2)"]


def test_null_fields_mean_absent():
    world = build({"apiVersion": V3, "kind": "GlobalNetworkPolicy",
                   "metadata": {"name": "p", "labels": None, "annotations": None},
                   "spec": {"selector": None, "ingress": None, "egress": [{"action": "Allow", "source": None,
                                                                           "destination": {"ports": None}}]}})
    p = world.policies[("GlobalNetworkPolicy", None, "p")]
    assert p.ingress == () and p.types == ("Egress",)


def test_policy_names_follow_calico_3_32():
    # The tier prefix is not required any more; one dot is allowed.
    world = build(doc("Tier", "t", {}), doc("GlobalNetworkPolicy", "other.name", {"tier": "t"}),
                  doc("GlobalNetworkPolicy", "plain", {"tier": "t"}))
    assert {k[2] for k in world.policies} == {"other.name", "plain"}


@pytest.mark.parametrize("port, expected", [
    (1, api.PortRange(1, 1)), (65535, api.PortRange(65535, 65535)), ("80", api.PortRange(80, 80)),
    ("1:65535", api.PortRange(1, 65535)), ("5:5", api.PortRange(5, 5)), ("http-alt", api.NamedPort("http-alt")),
])
def test_port_forms(port, expected):
    world = build(doc("GlobalNetworkPolicy", "p", {"ingress": [{"action": "Allow", "protocol": "TCP",
                                                                "destination": {"ports": [port]}}]}))
    assert world.policies[("GlobalNetworkPolicy", None, "p")].ingress[0].destination.ports == (expected,)


@pytest.mark.parametrize("value, message", [
    ("0:10", "'0:10' starts at port 0 (use port numbers 1-65535)"),
    ("1:70000", "'1:70000' is not a port range (use port numbers 1-65535)"),
    ("1:2:3", "'1:2:3' is not a port range (write a range as 'min:max', e.g. '8000:8080')"),
    (True, "expected a port number, a 'min:max' range or a port name, got a boolean (write e.g. 443, '8000:8080' "
           "or https)"),
    ("a--b", "'a--b' is not a port, a 'min:max' range or a port name (a port name is an IANA service name: at "
             "most 15 lower case letters, digits and '-', with at least one letter)"),
])
def test_bad_ports(value, message):
    msgs = problems(doc("GlobalNetworkPolicy", "p", {"ingress": [{"action": "Allow", "protocol": "TCP",
                                                                  "destination": {"ports": [value]}}]}))
    assert msgs == ["GlobalNetworkPolicy p: spec.ingress[0].destination.ports[0]: " + message]


def test_named_ports_need_no_protocol():
    world = build(doc("GlobalNetworkPolicy", "p", {"ingress": [{"action": "Allow",
                                                                "destination": {"notPorts": ["metrics"]}}]}))
    assert world.policies[("GlobalNetworkPolicy", None, "p")].ingress[0].destination.not_ports == (
        api.NamedPort("metrics"),)


@pytest.mark.parametrize("protocol, number", [("TCP", 6), ("UDP", 17), ("ICMP", 1), ("ICMPv6", 58), ("SCTP", 132),
                                              ("UDPLite", 136), (255, 255), ("1", 1)])
def test_protocols(protocol, number):
    world = build(doc("GlobalNetworkPolicy", "p", {"ingress": [{"action": "Allow", "protocol": protocol}]}))
    assert world.policies[("GlobalNetworkPolicy", None, "p")].ingress[0].protocol == number


def test_policy_selector_all_is_stored_as_none_but_rule_selector_all_is_kept():
    world = build(doc("GlobalNetworkPolicy", "p", {"selector": " all() ",
                                                   "ingress": [{"action": "Allow", "source": {"selector": "all()"}}]}),
                  doc("GlobalNetworkPolicy", "p", {"ingress": [{"action": "Allow",
                                                                "source": {"selector": "all()"}}]}))
    p = world.policies[("GlobalNetworkPolicy", None, "p")]
    assert p.selector is None  # and therefore the copy without a selector is identical
    assert p.ingress[0].source.selector == selector.parse("all()")


def test_selectors_are_parsed_objects():
    world = build(doc("GlobalNetworkPolicy", "p", {"selector": "b == 'x' && a in {'z', 'y'}"}))
    sel = world.policies[("GlobalNetworkPolicy", None, "p")].selector
    assert sel.canonical == selector.parse("b == 'x' && a in {'y', 'z'}").canonical
    assert sel.matches({"b": "x", "a": "y"})


def test_the_module_imports_nothing_from_ansible():
    path = resources.__file__
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    assert not re.search(r"^\s*(from|import) ansible(\.| |$)", text, re.M)


# ----------------------------------------------------------------------------------------------
# Fuzzing: junk inside otherwise valid documents never produces anything but HostfwError
# ----------------------------------------------------------------------------------------------

VALID_DOCS = [
    doc("HostEndpoint", "n1-eth0", {"node": "n1", "interfaceName": "eth0", "expectedIPs": ["10.0.0.1"],
                                    "profiles": [api.DEFAULT_ALLOW_PROFILE],
                                    "ports": [{"name": "ssh", "protocol": "TCP", "port": 22}]},
        labels={"role": "w"}),
    doc("GlobalNetworkPolicy", "p", {
        "tier": "t", "order": 1, "selector": "role == 'w'", "types": ["Ingress", "Egress"],
        "ingress": [{"action": "Allow", "protocol": "TCP", "icmp": None, "ipVersion": 4,
                     "source": {"nets": ["10.0.0.0/8"], "notNets": ["10.1.0.0/16"], "selector": "a == 'b'",
                                "namespaceSelector": "global()"},
                     "destination": {"ports": [22, "80:90", "ssh"], "notPorts": [23]},
                     "metadata": {"annotations": {"a": "b"}}},
                    {"action": "Deny", "protocol": "ICMP", "icmp": {"type": 8, "code": 0}}],
        "egress": [{"action": "Pass", "notProtocol": 17, "destination": {"notSelector": "x != 'y'"}}],
        "doNotTrack": False, "preDNAT": False, "applyOnForward": False}),
    doc("StagedGlobalNetworkPolicy", "s", {"stagedAction": "Set", "selector": "all()"}),
    doc("NetworkPolicy", "np", {"selector": "a == 'b'", "ingress": [{"action": "Allow"}]}, namespace="ns"),
    doc("Tier", "t", {"order": 10, "defaultAction": "Pass"}),
    doc("GlobalNetworkSet", "g", {"nets": ["192.0.2.0/24", "10.0.0.1"]}, labels={"a": "b"}),
    doc("NetworkSet", "n", {"nets": ["198.51.100.0/24"]}, namespace="ns"),
    doc("WorkloadEndpoint", "w", {"node": "n1", "interfaceName": "cali0", "ipNetworks": ["10.65.0.1/32"],
                                  "profiles": ["prof"], "ports": [{"name": "http", "protocol": "TCP", "port": 80}]},
        namespace="ns", labels={"app": "x"}),
    doc("Profile", "prof", {"ingress": [{"action": "Allow"}], "labelsToApply": {"a": "b"}}),
    doc("FelixConfiguration", "default", {"failsafeInboundHostPorts": [{"protocol": "TCP", "port": 22}],
                                          "failsafeOutboundHostPorts": "udp:53", "logPrefix": "x",
                                          "defaultEndpointToHostAction": "Accept", "interfaceExclude": "/^x/"}),
]

_scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2 ** 70), max_value=2 ** 70),
                     st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
                     st.sampled_from(["", "*", "all()", "global()", "TCP", "tcp", "10.0.0.0/8", "10.0.0.1/24",
                                      "::/0", "0.0.0.0/0", "Allow", "Ingress", "8000:8080", "8000-8080", "65536",
                                      "ssh", "none", "tcp:22", "node1", "a == 'b'", "a = 'b'", "Deny", "Pass",
                                      "projectcalico.org/namespace", "default", "Delete", "ICMP"]))
JUNK = st.recursive(_scalars, lambda children: st.one_of(
    st.lists(children, max_size=4),
    st.dictionaries(st.one_of(st.text(max_size=8), st.integers(), st.sampled_from(
        ["name", "spec", "nets", "ports", "selector", "action", "protocol", "metadata", "kind", "items", "type",
         "code", "node", "labels", "types", "tier", "order", "port", "net"])), children, max_size=4)),
    max_leaves=12)


def _slots(node, out):
    """Every (container, key) where a value could be replaced."""
    if isinstance(node, dict):
        for key in list(node):
            out.append((node, key))
            _slots(node[key], out)
        out.append((node, None))  # None: add a new key
    elif isinstance(node, list):
        for i in range(len(node)):
            out.append((node, i))
            _slots(node[i], out)
    return out


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], max_examples=300)
@given(data=st.data())
def test_fuzz_junk_inside_valid_documents(data):
    docs = copy.deepcopy(VALID_DOCS)
    for _unused in range(data.draw(st.integers(min_value=1, max_value=4))):
        target = data.draw(st.sampled_from(docs))
        container, key = data.draw(st.sampled_from(_slots(target, [])))
        junk = data.draw(JUNK)
        if key is None:
            container[data.draw(st.one_of(st.text(max_size=8), st.sampled_from(
                ["spec", "metadata", "ingress", "selector", "nets", "http", "services", "stagedAction"])))] = junk
        else:
            container[key] = junk
    try:
        world = resources.build_world([(d, "fuzz#%d" % i) for i, d in enumerate(docs)])
    except errors.HostfwError as exc:
        assert exc.problems
        for p in exc.problems:
            assert "internal error" not in p.message, str(p)
            assert re.match(r"^.+ \(.+\)$", p.message, re.S), str(p)
    else:
        assert isinstance(world, api.World)


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=200)
@given(junk=st.lists(JUNK, max_size=4))
def test_fuzz_whole_documents(junk):
    try:
        resources.build_world([(j, "fuzz#%d" % i) for i, j in enumerate(junk)])
    except errors.HostfwError as exc:
        assert all("internal error" not in p.message for p in exc.problems)


def test_validate_documents_collects_without_raising():
    collector = errors.Collector()
    world = resources.validate_documents([(doc("GlobalNetworkPolicy", "p", {"order": "x"}), "o"),
                                          (doc("HostEndpoint", "h", {"node": "n", "interfaceName": "eth0"}), "o2")],
                                         collector)
    assert len(collector.problems) == 1 and "h" in world.host_endpoints
