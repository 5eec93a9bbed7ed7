# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Real packets through real nftables: the kernel decides exactly as the evaluator does.

Every world is compiled by the production pipeline, every host's rendered table is loaded with
one ``nft -f`` into its own network namespace, and real TCP/UDP/ICMP connections (IPv4 and IPv6,
from hosts, workloads, network sets and strangers, and host-to-itself over lo) are compared with
the evaluator's verdict.  Any mismatch fails with the flow, the expected reason and the kernel's
answer.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings

import netlab  # noqa: E402
from worlds import doc, gnp, hep, long_name_world, rich_world, wep, worlds  # noqa: E402
from differential import DataplaneWorld, example_hostvars, prove_cells, report  # noqa: E402

from ansible_collections.hostfw.nftables.plugins.plugin_utils.compiler import compile_documents, compile_inventory  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO = os.path.join(ROOT, "examples", "two-node-cluster")
PROTECT_HOSTS = os.path.join(ROOT, "examples", "protect-hosts")

PROBES = (("tcp", 22), ("tcp", 80), ("tcp", 443), ("tcp", 8080), ("udp", 80), ("udp", 53), ("icmp", None))
STRANGERS = ("198.51.100.7", "2001:db8:99::7")
TOTAL_FLOWS = {"count": 0}


def check_world(docs, probes=PROBES, extra=STRANGERS, self_flows=True, min_flows=1):
    comp = compile_documents(docs)
    with netlab.Lab() as lab:
        dw = DataplaneWorld(comp, lab, extra_sources=extra)
        dw.build()
        flows = dw.flows(probes, self_flows=self_flows)
        assert len(flows) >= min_flows
        mismatches, results = dw.run(flows)
        TOTAL_FLOWS["count"] += len(flows)
        assert not mismatches, report(mismatches, docs)
        return dw, flows, results


H1 = ["10.10.0.1", "fd10::1"]
H2 = ["10.10.0.2", "fd10::2"]
PODS = [wep("web", "prod", ["10.20.0.5/32", "fd20::5/128"], {"app": "web"}),
        wep("db", "prod", ["10.20.0.6/32"], {"app": "db"})]


# -- docs/semantics.md §9.4, on the wire ---------------------------------------------------------------

def test_v1_bare_host_endpoint_default_deny_and_failsafes():
    dw, flows, results = check_world([hep("h1", "n1", H1), hep("h2", "n2", H2)] + PODS)
    by = {(f.src_ip, f.dst_ip, f.protocol, f.port): r for f, r in zip(flows, results)}
    assert by[("10.20.0.5", "10.10.0.1", "tcp", 22)].allowed      # failsafe
    assert not by[("10.20.0.5", "10.10.0.1", "tcp", 80)].allowed  # default deny
    assert by[("fd20::5", "fd10::1", "tcp", 22)].allowed
    assert not by[("10.10.0.2", "10.10.0.1", "tcp", 80)].allowed  # egress denied at the source already


def test_v2_v3_v4_tiers_pass_log_and_profiles():
    docs = [hep("h1", "n1", H1, profiles=["projectcalico-default-allow"]), hep("h2", "n2", H2, labels={"role": "db"})]
    docs += PODS + [doc("Tier", "t1", {"order": 100, "defaultAction": "Deny"}),
                    gnp("p1", tier="t1", selector="role == 'node'", ingress=[
                        {"action": "Log"},
                        {"action": "Pass", "protocol": "TCP", "destination": {"ports": [80, 443]}},
                        {"action": "Allow", "protocol": "UDP", "source": {"selector": "app == 'web'"}}]),
                    gnp("d1", selector="role == 'node'", ingress=[
                        {"action": "Deny", "protocol": "TCP", "destination": {"ports": [443]}}]),
                    gnp("db-egress", selector="role == 'db'", types=["Egress"], egress=[{"action": "Allow"}])]
    check_world(docs)


def test_v5_v6_order_and_families():
    docs = [hep("h1", "n1", H1, iface="eth0"), hep("h2", "n2", H2, profiles=["projectcalico-default-allow"])] + PODS
    docs += [gnp("b", order=10, ingress=[{"action": "Deny", "source": {"notNets": ["10.20.0.0/16"]}}]),
             gnp("a", order=10, ingress=[{"action": "Allow", "source": {"nets": ["fd20::/64"]}},
                                         {"action": "Allow", "protocol": "TCP", "destination": {"ports": ["8000:8100"]}}]),
             gnp("z", ingress=[{"action": "Allow", "protocol": "ICMP"}, {"action": "Allow", "protocol": "ICMPv6"}])]
    check_world(docs)


def test_v7_v13_selectors_and_missing_labels():
    docs = [hep("h1", "n1", H1, labels={"role": "node", "zone": "a"}), hep("h2", "n2", H2, labels={"zone": "b"}),
            hep("ghost", "n3", [], iface="eth9", labels={"role": "db"})] + PODS
    docs += [gnp("from-db", selector="zone != 'b'", ingress=[{"action": "Allow", "source": {"selector": "role == 'db' || app == 'db'"}}]),
             gnp("not-web", selector="has(zone) && zone != 'a'", ingress=[
                 {"action": "Allow", "source": {"notSelector": "app == 'web'"}, "protocol": "TCP",
                  "destination": {"ports": [80]}}]),
             gnp("egress", selector="all()", types=["Egress"], egress=[{"action": "Allow"}])]
    check_world(docs)


def test_v8_named_endpoint_wins_and_wildcard_covers_lo():
    docs = [hep("all", "n1", H1, iface="*", labels={"which": "all"}),
            hep("eth0-hep", "n1", H1, iface="eth0", labels={"which": "eth0"}),
            hep("h2", "n2", H2, profiles=["projectcalico-default-allow"])]
    docs += [gnp("eth0-only", selector="which == 'eth0'", ingress=[{"action": "Allow", "protocol": "TCP",
                                                                    "destination": {"ports": [80]}}],
                 egress=[{"action": "Allow"}]),
             gnp("all-only", selector="which == 'all'", ingress=[{"action": "Allow", "protocol": "TCP",
                                                                  "destination": {"ports": [443]}}],
                 egress=[{"action": "Allow", "protocol": "TCP", "destination": {"ports": [443]}}])]
    dw, flows, results = check_world(docs)
    by = {(f.src_ip, f.dst_ip, f.protocol, f.port): r for f, r in zip(flows, results)}
    assert by[("10.10.0.2", "10.10.0.1", "tcp", 80)].allowed       # eth0: named endpoint
    assert not by[("10.10.0.2", "10.10.0.1", "tcp", 443)].allowed
    assert by[("10.10.0.1", "10.10.0.1", "tcp", 443)].allowed      # lo: the "*" endpoint
    assert not by[("10.10.0.1", "10.10.0.1", "tcp", 80)].allowed


def test_v10_do_not_track_is_stateless_on_the_wire():
    docs = [hep("h1", "n1", H1, iface="eth0"), hep("h2", "n2", H2, profiles=["projectcalico-default-allow"])] + PODS
    docs += [gnp("untracked-in", doNotTrack=True, applyOnForward=True,
                 ingress=[{"action": "Allow", "protocol": "TCP", "destination": {"ports": [8080]}},
                          {"action": "Allow", "protocol": "UDP", "destination": {"ports": [80]}}]),
             gnp("untracked-out", doNotTrack=True, applyOnForward=True, types=["Egress"],
                 egress=[{"action": "Allow", "protocol": "UDP", "source": {"ports": [80]}}]),
             gnp("deny-raw", doNotTrack=True, applyOnForward=True, order=1,
                 ingress=[{"action": "Deny", "protocol": "TCP", "source": {"nets": ["10.20.0.6/32"]}}])]
    dw, flows, results = check_world(docs)
    by = {(f.src_ip, f.dst_ip, f.protocol, f.port): r for f, r in zip(flows, results)}
    assert not by[("10.20.0.5", "10.10.0.1", "tcp", 8080)].allowed  # the untracked reply meets egress deny
    assert by[("10.20.0.5", "10.10.0.1", "udp", 80)].allowed        # reply allowed by the untracked egress rule


def test_v11_prednat_deny_is_final_and_allow_skips_normal():
    docs = [hep("h1", "n1", H1), hep("h2", "n2", H2, profiles=["projectcalico-default-allow"])] + PODS
    docs += [gnp("normal", ingress=[{"action": "Allow", "protocol": "TCP", "destination": {"ports": [80, 443]}}]),
             gnp("pre", preDNAT=True, applyOnForward=True,
                 ingress=[{"action": "Deny", "protocol": "TCP", "source": {"nets": ["10.20.0.5/32"]},
                           "destination": {"ports": [80]}},
                          {"action": "Allow", "protocol": "TCP", "destination": {"ports": [8080]}}])]
    dw, flows, results = check_world(docs)
    by = {(f.src_ip, f.dst_ip, f.protocol, f.port): r for f, r in zip(flows, results)}
    assert not by[("10.20.0.5", "10.10.0.1", "tcp", 80)].allowed
    assert by[("10.20.0.6", "10.10.0.1", "tcp", 80)].allowed
    assert by[("10.20.0.5", "10.10.0.1", "tcp", 8080)].allowed


def test_wildcard_prednat_policy_covers_a_named_endpoint_without_prednat_policy():
    """Felix's mangle dispatch lists only endpoints with preDNAT policy; the "*" endpoint is its
    default, so a named eth0 endpoint without preDNAT policy gets the "*" endpoint's preDNAT Deny
    (felix/dataplane/linux/endpoint_mgr.go updateHostEndpoints)."""
    docs = [hep("all", "n1", H1, iface="*", labels={"which": "all"}),
            hep("eth0-hep", "n1", H1, iface="eth0", labels={"which": "eth0"}, profiles=["projectcalico-default-allow"]),
            hep("h2", "n2", H2, profiles=["projectcalico-default-allow"])] + PODS
    docs += [gnp("pre-deny", selector="which == 'all'", preDNAT=True, applyOnForward=True,
                 ingress=[{"action": "Deny", "protocol": "TCP", "destination": {"ports": [30080]}}])]
    dw, flows, results = check_world(docs, probes=[("tcp", 30080), ("tcp", 80)])
    by = {(f.src_ip, f.dst_ip, f.protocol, f.port): r for f, r in zip(flows, results)}
    assert not by[("10.20.0.5", "10.10.0.1", "tcp", 30080)].allowed  # eth0 gets the "*" preDNAT Deny
    assert by[("10.20.0.5", "10.10.0.1", "tcp", 80)].allowed         # and its own normal policy


def test_v12_staged_and_failsafe_configuration():
    docs = [hep("h1", "n1", H1), hep("h2", "n2", H2, profiles=["projectcalico-default-allow"])] + PODS
    docs += [doc("StagedGlobalNetworkPolicy", "deny-all", {"selector": "all()", "ingress": [{"action": "Deny"}]}),
             doc("FelixConfiguration", "default", {"failsafeInboundHostPorts": [{"protocol": "TCP", "port": 80,
                                                                                 "net": "10.20.0.0/16"}],
                                                   "failsafeOutboundHostPorts": []})]
    check_world(docs)


@pytest.mark.parametrize("deny_action, denied_tcp", [("Drop", "timeout"), ("Reject", "refused")])
def test_deny_action_drop_times_out_and_reject_refuses(deny_action, denied_tcp):
    """nftablesFilterDenyAction: a policy Deny, a profile Deny and an end-of-tier drop reject (the
    client's connect is refused at once) or drop (it times out).  IPv6 clients are denied either
    way; with Reject, Linux reports the refusal only at the SYN's first retransmission (about 1 s,
    past the lab's probe timeout), so only IPv4 tells the two apart here."""
    docs = [doc("FelixConfiguration", "default", {"nftablesFilterDenyAction": deny_action}),
            hep("h1", "n1", H1, profiles=["deny-8080"]), hep("h2", "n2", H2, labels={"role": "db"})] + PODS
    docs += [doc("Profile", "deny-8080", {"ingress": [{"action": "Deny", "protocol": "TCP", "destination": {"ports": [8080]}},
                                                      {"action": "Allow"}]}),
             doc("Tier", "t1", {"order": 100, "defaultAction": "Deny"}),
             gnp("p1", tier="t1", selector="role == 'node'", ingress=[
                 {"action": "Deny", "protocol": "TCP", "destination": {"ports": [443]}}, {"action": "Pass"}]),
             gnp("p2", tier="t1", selector="role == 'db'", types=["Ingress"], ingress=[
                 {"action": "Allow", "protocol": "TCP", "destination": {"ports": [22]}}])]
    _dw, flows, results = check_world(docs)
    by = {(f.src_ip, f.dst_ip, f.protocol, f.port): r for f, r in zip(flows, results)}
    pod, pod6 = "10.20.0.5", "fd20::5"
    for (dst, port), why in {("10.10.0.1", 443): "policy Deny", ("10.10.0.1", 8080): "profile Deny",
                             ("10.10.0.2", 80): "end of tier t1"}.items():
        r = by[(pod, dst, "tcp", port)]
        assert (r.verdict, r.detail) == ("denied", denied_tcp), "%s: %s" % (why, r)
    assert not by[(pod6, "fd10::1", "tcp", 443)].allowed and not by[(pod6, "fd10::1", "tcp", 8080)].allowed
    assert by[(pod, "10.10.0.1", "tcp", 80)].allowed and by[(pod, "10.10.0.2", "tcp", 22)].allowed
    assert by[(pod6, "fd10::1", "tcp", 80)].allowed


def test_rich_world_every_feature_at_once():
    check_world(rich_world(), probes=[("tcp", 22), ("tcp", 443), ("tcp", 8050), ("tcp", 9100), ("tcp", 30080),
                                      ("udp", 53), ("udp", 11211), ("icmp", None)],
                extra=STRANGERS + ("203.0.113.9", "192.0.2.77"))


def kernel_matrix(inv_dir, hostvars=None, probes=None):
    """Compile an example inventory, prove every matrix cell with a real connection; return the
    verdicts {(source, destination, port): (verdict, reason)} after asserting the kernel agrees."""
    comp = compile_inventory(hostvars if hostvars is not None else example_hostvars(inv_dir), inv_dir)
    matrix = comp.matrix(probes)
    with netlab.Lab() as lab:
        proven = prove_cells(DataplaneWorld(comp, lab, local_workloads=True), matrix)

    def key(c):
        return (c["source"], c["destination"], c["port"]) if "source" in c else ("host " + c["node"], c["workload"],
                                                                                 c["port"])
    wrong = ["%s -> %s port %s: matrix %s (%s), kernel %s" % (key(c) + (c["verdict"], c["reason"], r.verdict))
             for c, r in proven if (c["verdict"] == "allow") != r.allowed]
    assert not wrong, "\n".join(wrong)
    assert len(proven) == len(matrix["cells"]) + len(matrix.get("local") or ()) > 0
    return {key(c): (c["verdict"], c["reason"]) for c, dummy in proven}


def test_demo_matrix_is_what_the_kernel_does():
    hosts = {"policy-llm-control-plane": {"hostfw_manifests": ["manifests/*.yaml"], "ansible_host": "172.18.0.2"},
             "policy-llm-worker": {"hostfw_manifests": ["manifests/*.yaml"], "ansible_host": "172.18.0.3"}}
    probes = [{"protocol": "TCP", "port": 22}, {"protocol": "TCP", "port": 10250}]
    verdicts = {k: v[0] for k, v in kernel_matrix(DEMO, hosts, probes).items()}
    assert verdicts[("prod/backend", "host/node-worker", 10250)] == "deny"
    assert verdicts[("calico-system/calico-node", "host/node-worker", 10250)] == "allow"
    assert verdicts[("kube-system/kube-apiserver", "host/node-control-plane", 10250)] == "allow"
    assert verdicts[("host/node-control-plane", "host/node-worker", 10250)] == "allow"
    assert verdicts[("dev/frontend", "host/node-control-plane", 22)] == "allow"


def test_protect_hosts_example_is_what_the_kernel_does():
    """Calico's "Protect hosts" page (examples/protect-hosts): the default failsafes keep SSH open
    from anywhere on my-host although the policy allows it only from the management subnet; the
    node FelixConfiguration of my-hardened-host narrows that failsafe, so SSH from elsewhere is
    denied there, and still allowed from the management subnet by the narrowed failsafe."""
    v = kernel_matrix(PROTECT_HOSTS)
    plain, hard = "host/my-host-eth0", "host/my-hardened-host-eth0"
    assert v[("netset/elsewhere", plain, 22)] == ("allow", "ingress: failsafe inbound tcp:22")
    assert v[("netset/elsewhere", hard, 22)][0] == "deny"
    assert v[("netset/management", hard, 22)] == ("allow", "ingress: failsafe inbound tcp:172.18.0.0/24:22")
    assert v[("netset/elsewhere", hard, 10250)][0] == "allow"
    assert "k8s-worker ingress rule 2" in v[("netset/elsewhere", hard, 10250)][1]
    assert v[("netset/elsewhere", plain, 8080)][0] == "deny"
    # the egress side of the page: a host may not open SSH to the other (only etcd, DNS, DHCP out)
    assert v[(plain, hard, 22)][0] == "deny" and "egress" in v[(plain, hard, 22)][1]
    assert v[(plain, hard, 2379)][0] == "allow"


# -- random worlds -------------------------------------------------------------------------------

@settings(max_examples=14, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(worlds())
def test_random_worlds_kernel_equals_evaluator(docs):
    check_world(docs, probes=[("tcp", 22), ("tcp", 80), ("tcp", 8080), ("udp", 80), ("udp", 443), ("icmp", None)])


def test_zz_enough_random_flows_were_compared():
    """The random worlds above must have compared at least 500 flows (run in file order)."""
    if TOTAL_FLOWS["count"] == 0:
        pytest.skip("run together with the other differential tests")
    print("kernel and evaluator agreed on %d connections" % TOTAL_FLOWS["count"])
    assert TOTAL_FLOWS["count"] >= 500, TOTAL_FLOWS["count"]


FOREIGN = """table ip filter {
    chain DOCKER { }
    chain FORWARD { type filter hook forward priority filter; policy drop; jump DOCKER; }
}
table ip kube-proxy {
    set cluster-ips { type ipv4_addr; elements = { 10.96.0.1 } }
    chain filter-input { type filter hook input priority -110; policy accept; ip daddr @cluster-ips counter accept; }
}
"""


def test_rendered_tables_replace_only_their_own_table():
    """nft -f of a rendered file into a namespace that has other tables, then again over itself and
    over an older version: only table inet hostfw changes, the others stay byte-identical."""
    comp = compile_documents(rich_world())
    older = compile_documents(rich_world()[:6]).ruleset("n1")
    with netlab.Lab() as lab:
        node = lab.add_node("n1", ["10.0.0.1"])
        rc, err = node.load_nft(FOREIGN)
        assert rc == 0, err
        before = node.nft("list table ip filter").stdout + node.nft("list table ip kube-proxy").stdout
        listings = []
        for text in (older, comp.ruleset("n1"), comp.ruleset("n1")):
            rc, err = node.load_nft(text)
            assert rc == 0, err
            after = node.nft("list table ip filter").stdout + node.nft("list table ip kube-proxy").stdout
            assert after == before
            listings.append(node.list_table(stateless=True))
        assert node.nft("list tables").stdout.split("\n").count("table inet hostfw") == 1
        assert listings[0] != listings[1], "the older version must have been replaced"
        assert listings[1] == listings[2], "reloading the same file must give the same table"
        assert "in/default/node-mesh" in listings[2]


def test_an_interface_named_any_is_its_own_endpoint_and_long_names_load():
    """Linux accepts an interface named 'any': its named HostEndpoint must not take over the '*'
    endpoint's chains (they are named any-interface-at-all).  Valid Calico names whose chain names
    pass nft's 255 characters load too."""
    docs = [hep("all", "n1", ["10.10.0.1"], iface="*"),
            hep("named-any", "n1", ["10.10.0.1"], iface="any", profiles=["projectcalico-default-allow"]),
            hep("h2", "n2", ["10.10.0.2"], profiles=["projectcalico-default-allow"])]
    comp = compile_documents(docs)
    with netlab.Lab() as lab:
        n1 = lab.add_node("n1", ["10.10.0.1"], ifname="any")
        n2 = lab.add_node("n2", ["10.10.0.2"])
        for node in (n1, n2):
            rc, err = node.load_nft(comp.ruleset(node.name))
            assert rc == 0, err
        flows = [netlab.Flow("n2", "10.10.0.2", "n1", "10.10.0.1", "tcp", 8080),  # arrives on 'any': allowed
                 netlab.Flow("n1", "10.10.0.1", "n1", "10.10.0.1", "tcp", 8080)]  # over lo: the '*' endpoint
        results = lab.probe_many(flows)
        assert results[0].allowed, results[0]
        assert not results[1].allowed, results[1]
        assert comp.check_access("n1", "10.10.0.2", "10.10.0.1", "TCP", 8080, "any")["allowed"]
        rc, err = n1.load_nft(compile_documents(long_name_world()[0]).ruleset("n"))
        assert rc == 0, err
