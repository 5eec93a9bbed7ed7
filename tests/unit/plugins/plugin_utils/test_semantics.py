# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Calico's behaviour, vector by vector (docs/semantics.md §9.4 and the sections it derives from).

Every test builds real Calico v3 documents, compiles them with the production pipeline and asks
the evaluator for a verdict and its reason.
"""

from __future__ import annotations

import pytest

from ansible_collections.hostfw.nftables.plugins.plugin_utils import errors
from ansible_collections.hostfw.nftables.plugins.plugin_utils.felix import DEFAULT_FAILSAFE_INBOUND, DEFAULT_FAILSAFE_OUTBOUND
from ansible_collections.hostfw.nftables.plugins.plugin_utils.compiler import compile_documents
from ansible_collections.hostfw.nftables.plugins.plugin_utils.evaluate import ESTABLISHED, INVALID, Packet

TCP, UDP, ICMP, ICMPV6 = 6, 17, 1, 58
HOST_IP = "10.0.0.5"
HOST_IP6 = "fd00::5"
PEER = "10.0.0.9"
PEER6 = "fd00::9"


def hep(name, iface="eth0", node="node1", labels=None, ips=(HOST_IP, HOST_IP6), profiles=(), ports=()):
    spec = {"node": node, "interfaceName": iface, "expectedIPs": list(ips)}
    if profiles:
        spec["profiles"] = list(profiles)
    if ports:
        spec["ports"] = list(ports)
    return {"apiVersion": "projectcalico.org/v3", "kind": "HostEndpoint",
            "metadata": {"name": name, "labels": labels or {"role": "node"}}, "spec": spec}


def gnp(name, kind="GlobalNetworkPolicy", **spec):
    spec.setdefault("selector", "all()")
    return {"apiVersion": "projectcalico.org/v3", "kind": kind, "metadata": {"name": name}, "spec": spec}


def tier(name, order=None, default_action=None):
    spec = {}
    if order is not None:
        spec["order"] = order
    if default_action:
        spec["defaultAction"] = default_action
    return {"apiVersion": "projectcalico.org/v3", "kind": "Tier", "metadata": {"name": name}, "spec": spec}


def felix(**spec):
    return {"apiVersion": "projectcalico.org/v3", "kind": "FelixConfiguration", "metadata": {"name": "default"},
            "spec": spec}


class World:
    def __init__(self, *docs):
        self.comp = compile_documents(list(docs))

    def plan(self, node="node1"):
        plan = self.comp.plan(node)
        assert plan is not None
        return plan

    def inbound(self, proto, port=None, src=PEER, dst=HOST_IP, iface="eth0", node="node1", ct="new", **kw):
        pkt = Packet(src, dst, proto, sport=40000 if port is not None else None, dport=port, **kw)
        return self.comp.evaluator.input(self.plan(node), iface, pkt, ct=ct)

    def outbound(self, proto, port=None, src=HOST_IP, dst=PEER, iface="eth0", node="node1", ct="new", **kw):
        pkt = Packet(src, dst, proto, sport=40000 if port is not None else None, dport=port, **kw)
        return self.comp.evaluator.output(self.plan(node), iface, pkt, ct=ct)


def allow_rule(**kw):
    rule = {"action": "Allow"}
    rule.update(kw)
    return rule


# -- 9.4 vector 1 -------------------------------------------------------------------------------

def test_v1_bare_hep_is_default_deny_except_failsafes_and_other_interfaces():
    w = World(hep("h1"))
    v = w.inbound(TCP, 80)
    assert (v.verdict, v.reason) == ("deny", "no policy applies to host endpoint h1 ingress (default deny)")
    assert w.inbound(TCP, 22).reason == "failsafe inbound tcp:22"
    assert w.inbound(TCP, 22).allowed
    assert w.outbound(UDP, 53).reason == "failsafe outbound udp:53"
    assert not w.outbound(TCP, 443).allowed
    assert w.inbound(TCP, 80, iface="eth1").reason == "interface eth1 has no host endpoint (not policed)"
    assert w.outbound(TCP, 443, iface="eth1").allowed


def test_v1_established_and_invalid():
    w = World(hep("h1"))
    assert w.inbound(TCP, 80, ct=ESTABLISHED).reason == "established connection"
    assert w.inbound(TCP, 22, ct=INVALID).verdict == "deny"


def test_v1_failsafe_defaults_are_the_protect_hosts_lists():
    w = World(hep("h1"))
    for port in (22, 179, 2379, 2380, 6443, 6666, 6667):
        assert w.inbound(TCP, port).allowed, port
    assert w.inbound(UDP, 68).allowed
    assert not w.inbound(TCP, 5473).allowed  # Typha: not in the "Protect hosts" list (hostfw's default)
    for port in (179, 2379, 2380, 6443, 6666, 6667):
        assert w.outbound(TCP, port).allowed, port
    assert w.outbound(UDP, 67).allowed
    assert not w.outbound(UDP, 68).allowed


# -- 9.4 vector 2 -------------------------------------------------------------------------------

def test_v2_ingress_policy_does_not_open_egress():
    w = World(hep("h1"), gnp("web", types=["Ingress"], ingress=[allow_rule(protocol="TCP", destination={"ports": [80]})]))
    v = w.inbound(TCP, 80)
    assert (v.verdict, v.reason) == ("allow", "tier default policy web ingress rule 0 (Allow)")
    assert w.inbound(TCP, 81).reason == "end of tier default (defaultAction Deny)"
    v = w.outbound(TCP, 443)
    assert (v.verdict, v.reason) == ("deny", "no policy applies to host endpoint h1 egress (default deny)")


# -- 9.4 vector 3 -------------------------------------------------------------------------------

def test_v3_log_only_policy_kills_the_default_allow_profile():
    base = hep("h1", profiles=["projectcalico-default-allow"])
    w = World(base)
    assert w.inbound(TCP, 80).reason == "profile projectcalico-default-allow ingress rule 0 (Allow)"
    w = World(base, gnp("log-all", ingress=[{"action": "Log"}]))
    v = w.inbound(TCP, 80)
    assert (v.verdict, v.reason) == ("deny", "end of tier default (defaultAction Deny)")
    assert w.inbound(TCP, 22).allowed
    assert w.outbound(TCP, 443).reason == "profile projectcalico-default-allow egress rule 0 (Allow)"


# -- 9.4 vector 4 -------------------------------------------------------------------------------

def test_v4_pass_continues_with_next_tier_and_tier_default_deny():
    pass80 = gnp("p1", tier="t1", ingress=[{"action": "Pass", "protocol": "TCP", "destination": {"ports": [80]}}])
    allow80 = gnp("d1", ingress=[allow_rule(protocol="TCP", destination={"ports": [80]})])
    w = World(hep("h1"), tier("t1", order=100), pass80, allow80)
    v = w.inbound(TCP, 80)
    assert (v.verdict, v.reason) == ("allow", "tier default policy d1 ingress rule 0 (Allow)")
    assert w.inbound(TCP, 81).reason == "end of tier t1 (defaultAction Deny)"
    # Pass in the last tier lands in the profiles, then the final drop.
    w = World(hep("h1"), tier("t1", order=100), pass80)
    v = w.inbound(TCP, 80)
    assert v.verdict == "deny"
    assert v.reason == "tier t1 policy p1 ingress rule 0 (Pass), then no profile allowed (default deny of host endpoint h1)"
    w = World(hep("h1", profiles=["projectcalico-default-allow"]), tier("t1", order=100), pass80)
    assert w.inbound(TCP, 80).reason == "profile projectcalico-default-allow ingress rule 0 (Allow)"
    # defaultAction Pass: 81 continues too.
    w = World(hep("h1"), tier("t1", order=100, default_action="Pass"), pass80, allow80,
              gnp("d2", ingress=[allow_rule(protocol="TCP", destination={"ports": [81]})]))
    assert w.inbound(TCP, 81).reason == "tier default policy d2 ingress rule 0 (Allow)"


def test_v4_pass_skips_the_rest_of_its_tier_only():
    w = World(hep("h1"), tier("t1", order=1),
              gnp("a-pass", tier="t1", order=1, ingress=[{"action": "Pass"}]),
              gnp("b-deny", tier="t1", order=2, ingress=[{"action": "Deny"}]),
              gnp("allow", ingress=[allow_rule()]))
    assert w.inbound(TCP, 80).reason == "tier default policy allow ingress rule 0 (Allow)"


# -- 9.4 vector 5 -------------------------------------------------------------------------------

def test_v5_policy_order_ties_by_name_and_unordered_last():
    w = World(hep("h1"), gnp("b", order=10, ingress=[{"action": "Deny"}]), gnp("a", order=10, ingress=[allow_rule()]))
    assert w.inbound(TCP, 80).reason == "tier default policy a ingress rule 0 (Allow)"
    w = World(hep("h1"), gnp("a", ingress=[allow_rule()]), gnp("z", order=1000, ingress=[{"action": "Deny"}]))
    assert w.inbound(TCP, 80).reason == "tier default policy z ingress rule 0 (Deny)"
    # Plain lexicographic order: p10 before p9.
    w = World(hep("h1"), gnp("p9", order=1, ingress=[allow_rule()]), gnp("p10", order=1, ingress=[{"action": "Deny"}]))
    assert w.inbound(TCP, 80).reason == "tier default policy p10 ingress rule 0 (Deny)"


def test_tier_order_and_names():
    w = World(hep("h1"), tier("b", order=5), tier("a", order=5), tier("c"),
              gnp("pb", tier="b", ingress=[{"action": "Deny"}]), gnp("pa", tier="a", ingress=[allow_rule()]),
              gnp("pc", tier="c", ingress=[{"action": "Deny"}]))
    assert w.inbound(TCP, 80).reason == "tier a policy pa ingress rule 0 (Allow)"
    # default (order 1e6) before an unordered tier
    w = World(hep("h1"), tier("c"), gnp("pc", tier="c", ingress=[{"action": "Deny"}]), gnp("pd", ingress=[allow_rule()]))
    assert w.inbound(TCP, 80).reason == "tier default policy pd ingress rule 0 (Allow)"


# -- 9.4 vector 6 -------------------------------------------------------------------------------

def test_v6_per_family_rule_filtering():
    w = World(hep("h1", profiles=["projectcalico-default-allow"]),
              gnp("deny-not10", ingress=[{"action": "Deny", "source": {"notNets": ["10.0.0.0/8"]}},
                                         allow_rule(source={"nets": ["fd00::/8"]}),
                                         allow_rule(source={"nets": ["10.0.0.0/8"]})]))
    assert w.inbound(TCP, 80, src="192.168.1.1").reason == "tier default policy deny-not10 ingress rule 0 (Deny)"
    assert w.inbound(TCP, 80, src="10.1.1.1").reason == "tier default policy deny-not10 ingress rule 2 (Allow)"
    v6 = w.inbound(TCP, 80, src="fd00::1", dst=HOST_IP6)
    assert v6.reason == "tier default policy deny-not10 ingress rule 1 (Allow)"
    # the IPv6 packet from outside fd00::/8 is not denied by the IPv4-only notNets rule
    assert w.inbound(TCP, 80, src="2001:db8::1", dst=HOST_IP6).reason == "end of tier default (defaultAction Deny)"


def test_ip_version_and_icmp_families():
    w = World(hep("h1"), gnp("icmp", ingress=[allow_rule(protocol="ICMP"), allow_rule(ipVersion=6, protocol="TCP")]))
    assert w.inbound(ICMP, icmp_type=8, icmp_code=0).allowed
    assert not w.inbound(ICMPV6, src=PEER6, dst=HOST_IP6, icmp_type=128, icmp_code=0).allowed
    assert w.inbound(TCP, 80, src=PEER6, dst=HOST_IP6).allowed
    assert not w.inbound(TCP, 80).allowed


# -- 9.4 vector 7 -------------------------------------------------------------------------------

def test_v7_selector_of_hep_without_expected_ips_never_matches():
    db = hep("db", node="node2", labels={"role": "db"}, ips=())
    db["spec"]["interfaceName"] = "eth0"
    w = World(hep("h1"), db, gnp("from-db", ingress=[allow_rule(source={"selector": "role == 'db'"})]))
    assert not w.inbound(TCP, 80, src="10.0.0.77").allowed
    w = World(hep("h1"), hep("db", node="node2", labels={"role": "db"}, ips=("10.0.0.77",)),
              gnp("from-db", ingress=[allow_rule(source={"selector": "role == 'db'"})]))
    assert w.inbound(TCP, 80, src="10.0.0.77").reason == "tier default policy from-db ingress rule 0 (Allow)"


# -- 9.4 vectors 8, 9 ----------------------------------------------------------------------------

def test_v8_named_endpoint_beats_wildcard():
    w = World(hep("all", iface="*", labels={"which": "all"}), hep("eth0-hep", iface="eth0", labels={"which": "eth0"}),
              gnp("eth0-only", selector="which == 'eth0'", ingress=[allow_rule(protocol="TCP", destination={"ports": [80]})]),
              gnp("all-only", selector="which == 'all'", ingress=[allow_rule(protocol="TCP", destination={"ports": [81]})]))
    assert w.inbound(TCP, 80, iface="eth0").allowed
    assert not w.inbound(TCP, 81, iface="eth0").allowed
    assert w.inbound(TCP, 81, iface="lo").allowed
    assert w.inbound(TCP, 81, iface="eth1").allowed
    assert not w.inbound(TCP, 80, iface="lo").allowed


def test_v9_smallest_hep_name_wins_an_interface():
    w = World(hep("b-eth0", labels={"n": "b"}), hep("a-eth0", labels={"n": "a"}),
              gnp("for-a", selector="n == 'a'", ingress=[allow_rule()]))
    plan = w.plan()
    assert [ep.hep.name for ep in plan.endpoints] == ["a-eth0"]
    assert any("b-eth0 is inactive on eth0" in x for x in plan.warnings)
    assert w.inbound(TCP, 80).allowed


def test_workload_interfaces_are_never_host_endpoints():
    w = World(hep("all", iface="*"))
    v = w.inbound(TCP, 80, iface="cali1234")
    assert (v.verdict, v.reason) == ("deny", "workload to host: defaultEndpointToHostAction Drop")
    assert w.outbound(TCP, 80, iface="cali1234").reason == "host to local workload (always allowed)"
    w = World(hep("all", iface="*"), felix(defaultEndpointToHostAction="Accept"))
    assert w.inbound(TCP, 80, iface="cali1234").allowed


# -- 9.4 vector 10 ------------------------------------------------------------------------------

def test_v10_do_not_track_is_stateless():
    w = World(hep("h1"), gnp("memcache", doNotTrack=True, applyOnForward=True,
                             ingress=[allow_rule(protocol="TCP", destination={"ports": [11211]})]))
    v = w.inbound(TCP, 11211)
    assert v.allowed and v.notracked
    assert v.reason == "doNotTrack tier default policy memcache ingress rule 0 (Allow)"
    # the reply leaves untracked: it is a new packet for normal egress policy (default deny)
    reply = Packet(HOST_IP, PEER, TCP, sport=11211, dport=40000)
    r = w.comp.evaluator.output(w.plan(), "eth0", reply)
    assert r.verdict == "deny"
    # doNotTrack policy on a "*" endpoint is ignored, as in Calico
    w = World(hep("h1", iface="*"), gnp("memcache", doNotTrack=True, applyOnForward=True,
                                        ingress=[allow_rule(protocol="TCP", destination={"ports": [11211]})]))
    assert not w.inbound(TCP, 11211).allowed
    assert any("doNotTrack" in x for x in w.plan().warnings)


def test_do_not_track_deny_cannot_close_failsafe():
    w = World(hep("h1"), gnp("deny-all", doNotTrack=True, applyOnForward=True, ingress=[{"action": "Deny"}]))
    assert w.inbound(TCP, 22).reason == "failsafe inbound tcp:22"
    assert w.inbound(TCP, 80).reason == "doNotTrack tier default policy deny-all ingress rule 0 (Deny)"


# -- 9.4 vector 11 ------------------------------------------------------------------------------

def test_v11_prednat_deny_is_final_and_allow_skips_normal_ingress():
    normal = gnp("normal", ingress=[allow_rule(protocol="TCP", destination={"ports": [30080]})])
    w = World(hep("h1"), normal, gnp("pre", preDNAT=True, applyOnForward=True,
                                     ingress=[{"action": "Deny", "protocol": "TCP",
                                               "source": {"nets": ["0.0.0.0/0"]}, "destination": {"ports": [30080]}}]))
    v = w.inbound(TCP, 30080)
    assert (v.verdict, v.reason) == ("deny", "preDNAT tier default policy pre ingress rule 0 (Deny)")
    w = World(hep("h1"), gnp("pre", preDNAT=True, applyOnForward=True,
                             ingress=[allow_rule(protocol="TCP", destination={"ports": [8080]})]))
    v = w.inbound(TCP, 8080)
    assert (v.verdict, v.reason) == ("allow", "preDNAT tier default policy pre ingress rule 0 (Allow)")
    # a preDNAT tier never drops at its end: other ports fall to normal policy (default deny)
    assert w.inbound(TCP, 8081).reason == "no policy applies to host endpoint h1 ingress (default deny)"


# -- 9.4 vector 12 ------------------------------------------------------------------------------

def test_v12_staged_policy_has_no_effect():
    w = World(hep("h1", profiles=["projectcalico-default-allow"]),
              gnp("deny-all", kind="StagedGlobalNetworkPolicy", ingress=[{"action": "Deny"}],
                  egress=[{"action": "Deny"}]))
    assert w.inbound(TCP, 80).reason == "profile projectcalico-default-allow ingress rule 0 (Allow)"
    assert w.outbound(TCP, 80).allowed


# -- 9.4 vector 13 ------------------------------------------------------------------------------

@pytest.mark.parametrize("selector,applies", [("a != 'x'", True), ("has(a) && a != 'x'", False),
                                              ("a not in {'x'}", True), ("!has(a)", True)])
def test_v13_missing_label_satisfies_not_equal(selector, applies):
    w = World(hep("h1", labels={"role": "node"}), gnp("p", selector=selector, ingress=[allow_rule()]))
    assert w.inbound(TCP, 80).allowed is applies


# -- more: forward, named ports, profiles, types, DNAT -------------------------------------------

def test_apply_on_forward_default_allow_until_a_forward_policy_applies():
    w = World(hep("h1"), hep("h1-eth1", iface="eth1", labels={"side": "inner"}))
    ev, plan = w.comp.evaluator, w.plan()
    pkt = Packet("192.0.2.10", "198.51.100.20", TCP, sport=40000, dport=443)
    assert ev.forward(plan, "eth0", "eth1", pkt).allowed
    w = World(hep("h1"), hep("h1-eth1", iface="eth1", labels={"side": "inner"}),
              gnp("fwd", selector="side == 'inner'", applyOnForward=True, types=["Egress"],
                  egress=[allow_rule(protocol="TCP", destination={"ports": [443]})]))
    ev, plan = w.comp.evaluator, w.plan()
    assert ev.forward(plan, "eth0", "eth1", pkt).allowed
    pkt80 = Packet("192.0.2.10", "198.51.100.20", TCP, sport=40000, dport=80)
    v = ev.forward(plan, "eth0", "eth1", pkt80)
    assert (v.verdict, v.reason) == ("deny", "applyOnForward end of tier default (defaultAction Deny)")
    # normal (host) policy never sees forwarded traffic: failsafes do not apply either
    pkt22 = Packet("192.0.2.10", "198.51.100.20", TCP, sport=40000, dport=22)
    assert not ev.forward(plan, "eth0", "eth1", pkt22).allowed


def test_named_ports_resolve_to_the_declaring_endpoints():
    web = hep("web", node="node2", labels={"app": "web"}, ips=("10.0.0.7",),
              ports=[{"name": "http-alt", "protocol": "TCP", "port": 8080}])
    me = hep("h1", ports=[{"name": "http-alt", "protocol": "TCP", "port": 8081}])
    w = World(me, web, gnp("egress-web", types=["Egress"],
                           egress=[allow_rule(protocol="TCP", destination={"ports": ["http-alt"]})]))
    assert w.outbound(TCP, 8080, dst="10.0.0.7").reason == "tier default policy egress-web egress rule 0 (Allow)"
    assert not w.outbound(TCP, 8080, dst="10.0.0.8").allowed
    assert not w.outbound(TCP, 8081, dst="10.0.0.7").allowed
    assert w.outbound(TCP, 8081, dst=HOST_IP).allowed


def test_profiles_pass_and_deny():
    prof = {"apiVersion": "projectcalico.org/v3", "kind": "Profile", "metadata": {"name": "p1"},
            "spec": {"ingress": [{"action": "Pass", "protocol": "TCP", "destination": {"ports": [80]}},
                                 {"action": "Deny", "protocol": "TCP", "destination": {"ports": [81]}}]}}
    w = World(hep("h1", profiles=["p1", "projectcalico-default-allow"]), prof)
    assert w.inbound(TCP, 80).reason == "profile projectcalico-default-allow ingress rule 0 (Allow)"
    assert w.inbound(TCP, 81).reason == "profile p1 ingress rule 1 (Deny)"


def test_egress_types_defaulting():
    w = World(hep("h1", profiles=["projectcalico-default-allow"]),
              gnp("egress-only", egress=[{"action": "Deny", "protocol": "TCP", "destination": {"ports": [25]}}]))
    assert w.inbound(TCP, 25).allowed  # types defaulted to [Egress]: ingress untouched
    assert w.outbound(TCP, 25).reason == "tier default policy egress-only egress rule 0 (Deny)"
    assert w.outbound(TCP, 26).reason == "end of tier default (defaultAction Deny)"


def test_failsafe_configuration_none_and_custom():
    w = World(hep("h1"), felix(failsafeInboundHostPorts=[], failsafeOutboundHostPorts=[]))
    assert not w.inbound(TCP, 22).allowed
    w = World(hep("h1"), felix(failsafeInboundHostPorts=[{"protocol": "TCP", "port": 5473, "net": "10.0.0.0/8"}]))
    assert w.inbound(TCP, 5473, src="10.9.9.9").reason == "failsafe inbound tcp:10.0.0.0/8:5473"
    assert not w.inbound(TCP, 5473, src="192.0.2.9").allowed
    assert not w.inbound(TCP, 22).allowed


def test_not_icmp_has_the_iptables_meaning():
    w = World(hep("h1", profiles=["projectcalico-default-allow"]),
              gnp("p", ingress=[{"action": "Deny", "protocol": "ICMP", "notICMP": {"type": 8, "code": 0}},
                                allow_rule()]))
    assert w.inbound(ICMP, icmp_type=8, icmp_code=0).allowed
    assert not w.inbound(ICMP, icmp_type=8, icmp_code=1).allowed  # NOT(type 8 AND code 0)
    assert not w.inbound(ICMP, icmp_type=0, icmp_code=0).allowed


def test_failsafe_proof_and_protected_ports():
    w = World(hep("h1"), gnp("deny-all", ingress=[{"action": "Deny"}]))
    proof = w.comp.failsafe_proof("node1", DEFAULT_FAILSAFE_INBOUND, DEFAULT_FAILSAFE_OUTBOUND)
    assert proof.ok and proof.checked > 0
    w = World(hep("h1"), gnp("deny-all", ingress=[{"action": "Deny"}]),
              felix(failsafeInboundHostPorts=[{"protocol": "TCP", "port": 2379}]))
    proof = w.comp.failsafe_proof("node1", DEFAULT_FAILSAFE_INBOUND, DEFAULT_FAILSAFE_OUTBOUND)
    assert not proof.ok
    assert any(m.startswith("protected inbound port tcp:22 (IPv4) would be closed for every source on interface eth0 "
                            "of host node1 by tier default policy deny-all ingress rule 0 (Deny)") for m in proof.messages)
    assert not any("2379" in m for m in proof.messages)


def test_rule_nets_take_cidrs_with_a_prefix_length():
    """validator.go validateRule parses rule nets with cnet.ParseCIDR: a single address is written
    /32 or /128 (a bare address is an invalid CIDR there, and an error here)."""
    w = World(hep("h1"), gnp("one", ingress=[allow_rule(source={"nets": ["10.1.1.1/32"]}),
                                             allow_rule(source={"nets": ["fd00::77/128"]})]))
    assert w.inbound(TCP, 80, src="10.1.1.1").reason == "tier default policy one ingress rule 0 (Allow)"
    assert not w.inbound(TCP, 80, src="10.1.1.2").allowed
    assert w.inbound(TCP, 80, src="fd00::77", dst=HOST_IP6).reason == "tier default policy one ingress rule 1 (Allow)"
    with pytest.raises(errors.HostfwError) as info:
        World(hep("h1"), gnp("one", ingress=[allow_rule(source={"nets": ["10.1.1.1"]})]))
    assert [str(p) for p in info.value.problems] == [
        "GlobalNetworkPolicy one: spec.ingress[0].source.nets[0]: '10.1.1.1' has no prefix length "
        "(write 10.1.1.1/32: Calico's rule nets are CIDRs)"]


def test_workload_to_host_icmpv6_allowance():
    """docs/semantics.md §6: MLD and neighbour discovery from local workloads pass before
    DefaultEndpointToHostAction (Drop by default); echo requests do not."""
    w = World(hep("all", iface="*"))
    for icmp_type in (130, 131, 132, 133, 135, 136):
        v = w.inbound(ICMPV6, src="fe80::1", dst=HOST_IP6, iface="cali1234", icmp_type=icmp_type, icmp_code=0)
        assert v.allowed, icmp_type
    assert not w.inbound(ICMPV6, src="fe80::1", dst=HOST_IP6, iface="cali1234", icmp_type=128, icmp_code=0).allowed
    assert not w.inbound(ICMPV6, src="fe80::1", dst=HOST_IP6, iface="cali1234", icmp_type=134, icmp_code=0).allowed


def test_interface_exclude_keeps_named_endpoints_off_but_wildcard_on():
    w = World(hep("all", iface="*"), hep("ipvs", iface="kube-ipvs0", labels={"x": "y"}),
              gnp("allow-x", selector="x == 'y'", ingress=[allow_rule()]))
    assert [ep.hep.name for ep in w.plan().endpoints] == ["all"]
    assert any("interfaceExclude" in x for x in w.plan().warnings)
    assert not w.inbound(TCP, 80, iface="kube-ipvs0").allowed  # the "*" endpoint covers it
    w = World(hep("all", iface="*"), hep("dummy", iface="dummy7", labels={"x": "y"}),
              gnp("allow-x", selector="x == 'y'", ingress=[allow_rule()]),
              felix(interfaceExclude="kube-ipvs0,/^dummy[0-9]+$/"))
    assert [ep.hep.name for ep in w.plan().endpoints] == ["all"]


# -- host and local workloads (§4.3, §6) ------------------------------------------------------------

def wep(name, node="node1", iface="cali0000000001", ip="10.65.0.5/32", namespace="prod"):
    return {"apiVersion": "projectcalico.org/v3", "kind": "WorkloadEndpoint",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"node": node, "interfaceName": iface, "ipNetworks": [ip]}}


@pytest.mark.parametrize("action", ["Drop", "Accept", "Return"])
@pytest.mark.parametrize("endpoint", ["*", "eth0"])
def test_host_to_own_pod_is_allowed_both_ways_under_every_endpoint_to_host_action(action, endpoint):
    """Felix's expectHostToOwnPodTraffic: the host's connection to its pod leaves through the
    workload interface (never policed) and the pod's reply is accepted by the workload chain's
    conntrack rules before DefaultEndpointToHostAction."""
    w = World(hep("h1", iface=endpoint), gnp("deny-all", ingress=[{"action": "Deny"}], egress=[{"action": "Deny"}]),
              wep("pod1"), felix(defaultEndpointToHostAction=action))
    out = w.outbound(TCP, 8080, dst="10.65.0.5", iface="cali0000000001")
    assert (out.verdict, out.reason) == ("allow", "host to local workload (always allowed)")
    back = w.inbound(TCP, src="10.65.0.5", dst=HOST_IP, iface="cali0000000001", ct=ESTABLISHED)
    assert back.allowed and back.reason.startswith("workload to host: established connection")
    first = w.inbound(TCP, 8080, src="10.65.0.5", dst=HOST_IP, iface="cali0000000001")
    assert first.allowed == (action != "Drop")
    assert first.reason == "workload to host: defaultEndpointToHostAction %s" % action


def test_workload_to_host_invalid_is_dropped_unless_the_check_is_off():
    w = World(hep("h1"), wep("pod1"), felix(defaultEndpointToHostAction="Accept"))
    v = w.inbound(TCP, 80, src="10.65.0.5", iface="cali0000000001", ct=INVALID)
    assert (v.verdict, v.reason) == ("deny", "workload to host: conntrack state invalid")
    w = World(hep("h1"), wep("pod1"), felix(defaultEndpointToHostAction="Accept", disableConntrackInvalidCheck=True))
    assert w.inbound(TCP, 80, src="10.65.0.5", iface="cali0000000001", ct=INVALID).allowed


def test_host_with_local_workloads_and_no_host_endpoint_gets_a_workload_to_host_table():
    w = World(hep("h2", node="node2"), wep("pod1", node="node1"))
    plan = w.plan("node1")
    assert plan.endpoints == () and [x.name for x in plan.workloads] == ["pod1"]
    v = w.inbound(TCP, 80, src="10.65.0.5", iface="cali0000000001")
    assert (v.verdict, v.reason) == ("deny", "workload to host: defaultEndpointToHostAction Drop")
    assert w.inbound(TCP, 80, iface="eth0").reason == "interface eth0 has no host endpoint (not policed)"
    text = w.comp.ruleset("node1")
    assert "# no HostEndpoint: only the local workloads' traffic to the host is policed" in text
    assert "# local workloads (traffic to this host: defaultEndpointToHostAction Drop): prod/pod1" in text
    chains = [line.split()[1] for line in text.splitlines() if line.startswith("\tchain ")]
    assert chains == ["filter-input"]
    assert w.comp.failsafe_proof("node1").ok
    assert w.comp.plan("node3") is None, "a host with neither stays untouched"


def test_matrix_lists_each_host_to_its_own_workloads():
    w = World(hep("h1", iface="*"), gnp("deny-all", ingress=[{"action": "Deny"}], egress=[{"action": "Deny"}]),
              wep("pod1"))
    local = w.comp.matrix([{"protocol": "TCP", "port": 8080}])["local"]
    assert [(c["node"], c["workload"], c["verdict"]) for c in local] == [("node1", "prod/pod1", "allow")]
    assert local[0]["reason"].startswith("host to local workload (always allowed); reply: workload to host: "
                                         "established connection")


# -- narrowed failsafes: the "Protect hosts" page's hardening step ---------------------------------

MGMT = "10.1.0.0/16"


def test_ssh_narrowed_to_the_management_subnet_keeps_the_default_protection():
    """The page's hardening: failsafe SSH only from the management subnet, plus a policy that
    allows SSH from it.  SSH stays open from that subnet, so the default protected ports hold."""
    inbound = [{"protocol": "TCP", "port": 22, "net": MGMT}] + [
        {"protocol": e.protocol.upper(), "port": e.port} for e in DEFAULT_FAILSAFE_INBOUND if e.port != 22]
    w = World(hep("h1", ips=(HOST_IP,)), felix(failsafeInboundHostPorts=inbound),
              gnp("k8s-worker", ingress=[allow_rule(protocol="TCP", source={"nets": [MGMT]},
                                                    destination={"ports": [22]})]))
    proof = w.comp.failsafe_proof("node1", DEFAULT_FAILSAFE_INBOUND, DEFAULT_FAILSAFE_OUTBOUND)
    assert proof.ok, proof.refusals
    assert not w.inbound(TCP, 22, src="192.0.2.7").allowed and w.inbound(TCP, 22, src="10.1.2.3").allowed
    # without the policy, the failsafe net alone keeps SSH open from the management subnet
    w = World(hep("h1", ips=(HOST_IP,)), felix(failsafeInboundHostPorts=inbound), gnp("deny", ingress=[]))
    assert w.comp.failsafe_proof("node1", DEFAULT_FAILSAFE_INBOUND, DEFAULT_FAILSAFE_OUTBOUND).ok


def test_a_protected_port_closed_for_every_source_is_refused_in_one_line():
    w = World(hep("h1", ips=(HOST_IP, HOST_IP6)), felix(failsafeInboundHostPorts=[], failsafeOutboundHostPorts=[]),
              gnp("deny", ingress=[{"action": "Deny"}], egress=[{"action": "Allow"}]))
    proof = w.comp.failsafe_proof("node1", DEFAULT_FAILSAFE_INBOUND, DEFAULT_FAILSAFE_OUTBOUND)
    assert not proof.ok
    assert len(proof.messages) == 16  # 8 inbound ports x 2 families
    assert proof.refusals == [
        "host node1: protected inbound ports tcp:22, udp:68, tcp:179, tcp:2379, tcp:2380, tcp:6443, tcp:6666, "
        "tcp:6667 (IPv4, IPv6) closed for every source on interface eth0 by tier default policy deny ingress rule 0 "
        "(Deny); fix: allow them in a policy (a failsafe net or an Allow from your management network is enough), "
        "restore the failsafe in the FelixConfiguration, or remove them from hostfw_protected_ports"]


def test_a_protected_entry_with_a_net_is_proven_from_that_net():
    from ansible_collections.hostfw.nftables.plugins.plugin_utils import proofs  # pylint: disable=import-outside-toplevel
    inbound, outbound = proofs.protected_ports("node1", {"inbound": [{"protocol": "tcp", "port": 22, "net": MGMT}]})
    assert [str(e) for e in inbound] == ["tcp:10.1.0.0/16:22"] and outbound == ()
    w = World(hep("h1", ips=(HOST_IP,)), felix(failsafeInboundHostPorts=[]),
              gnp("ssh", ingress=[allow_rule(protocol="TCP", source={"nets": ["10.2.0.0/16"]}, destination={"ports": [22]})]))
    proof = w.comp.failsafe_proof("node1", inbound, outbound)
    assert not proof.ok, "open from 10.2/16 does not keep it open from the protected net"
    assert proof.refusals[0].startswith("host node1: protected inbound port tcp:10.1.0.0/16:22 (IPv4) closed from the "
                                        "configured net on interface eth0")


def test_only_the_families_the_host_uses_are_proven():
    w = World(hep("h1", ips=(HOST_IP,)), felix(failsafeInboundHostPorts=[{"protocol": "TCP", "port": 22, "net": MGMT}]),
              gnp("deny", ingress=[]))
    assert w.comp.failsafe_proof("node1", DEFAULT_FAILSAFE_INBOUND[:1], ()).ok
    w = World(hep("h1", ips=(HOST_IP, HOST_IP6)),
              felix(failsafeInboundHostPorts=[{"protocol": "TCP", "port": 22, "net": MGMT}]), gnp("deny", ingress=[]))
    proof = w.comp.failsafe_proof("node1", DEFAULT_FAILSAFE_INBOUND[:1], ())
    assert proof.refusals == [
        "host node1: protected inbound port tcp:22 (IPv6) closed for every source on interface eth0 by end of tier "
        "default (defaultAction Deny); fix: allow it in a policy (a failsafe net or an Allow from your management "
        "network is enough), restore the failsafe in the FelixConfiguration, or remove it from hostfw_protected_ports"]


def test_an_interface_prefix_that_covers_a_host_interface_is_refused():
    """interfacePrefix 'e' makes eth0 a workload interface: the rendered table would send its
    traffic (SSH included) to the workload-to-host path before the failsafes."""
    w = World(hep("h1", iface="eth0"), felix(interfacePrefix="cali,e"))
    proof = w.comp.failsafe_proof("node1", DEFAULT_FAILSAFE_INBOUND, DEFAULT_FAILSAFE_OUTBOUND)
    assert not proof.ok
    assert proof.refusals[-1] == (
        "host node1: interfacePrefix 'e' covers interface eth0, which is a host interface (a HostEndpoint's or declared "
        "in hostfw_interfaces): its traffic to the host would take the workload-to-host path, before any failsafe, and "
        "be decided by defaultEndpointToHostAction; fix: set interfacePrefix to the prefix of the workload interfaces "
        "only (Calico's is cali)")
    w = World(hep("h1", iface="*"), felix(interfacePrefix="l"))
    assert "covers interface lo" in w.comp.failsafe_proof("node1").refusals[-1]
    assert World(hep("h1", iface="eth0"), felix(interfacePrefix="cali,tap")).comp.failsafe_proof("node1").ok
