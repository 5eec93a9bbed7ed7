# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host-protection cases of Calico Felix's functional tests (felix/fv/*_test.go), as hostfw worlds.

Every ``Case`` names the Felix test it translates (file, Describe/Context path, It or Entry), the lab
it runs in (``TWO``: two hosts with a pod each, as Felix's ``StartNNodeTopology(2)``; ``ONE``: one
host with two pods, as ``StartSingleNodeTopology``), the Calico documents of the world, and the
connections Felix's test checks, with Felix's verdict (``Some`` = allowed, ``None`` = denied).
Cases marked ``origin="extension"`` or ``"adapted"`` are not in Felix's tests:
they carry Felix's documented semantics one step further (say so in docs/felix-fv-coverage.md).

Felix's FV hosts run with Felix's compiled-in failsafe ports (hostfw's own default differs: no
tcp:5473), so every world sets them explicitly (``felix_config``).  Felix's pods have a default-allow
profile (``infra.AddDefaultAllow()``); hostfw does not enforce workload policy, so the pods' own
policy is always "allow" here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

PORT = 8055  # Felix's test workloads listen on 8055
TWO, ONE = "two", "one"
ALLOW_ALL = "projectcalico-default-allow"

# -- the labs ----------------------------------------------------------------------------------------

LABS = {
    TWO: {
        "hosts": {"n0": ["10.10.0.1", "fd10::1"], "n1": ["10.10.0.2", "fd10::2"]},
        "pods": {"w0": ("n0", ["10.65.0.2", "fd65::2"]), "w1": ("n1", ["10.65.1.2", "fd65:1::2"])},
        # ext: the API server, Typha and the external client of Felix's FV; ext2: another outsider
        "outside": {"ext": ["198.51.100.7", "2001:db8:99::7"], "ext2": ["203.0.113.9", "2001:db8:77::9"]},
        # name: (host, hook, {family: address}, target pod); Felix's createK8sServiceWithoutKubeProxy
        "services": {
            "own0": ("n0", "output", {4: "10.101.0.20", 6: "fd00:101::20"}, "w0"),
            "own1": ("n1", "output", {4: "10.101.0.21", 6: "fd00:101::21"}, "w1"),
            "remote0": ("n0", "output", {4: "10.101.10.10", 6: "fd00:101:10::10"}, "w1"),
            "remote1": ("n1", "output", {4: "10.101.10.11", 6: "fd00:101:10::11"}, "w0"),
            "pod0": ("n0", "prerouting", {4: "10.101.10.0", 6: "fd00:101:10::"}, "w1"),
            "pod1": ("n1", "prerouting", {4: "10.101.10.1", 6: "fd00:101:10::1"}, "w0"),
        },
        "nodeports": {},
    },
    ONE: {  # pre_dnat_test.go: "For variety, run this test with IPv6 disabled" (the pods are IPv4 only)
        "hosts": {"n0": ["10.10.0.1", "fd10::1"]},
        "pods": {"w0": ("n0", ["10.65.0.10"]), "w1": ("n0", ["10.65.0.11"])},
        "outside": {"ext": ["198.51.100.7", "2001:db8:99::7"]},
        "services": {},
        # pre_dnat_test.go "with node port DNATs": iptables -t nat -A PREROUTING -d POD --dport NP -j DNAT --to POD:8055
        "nodeports": {("w0", 32010): "n0", ("w1", 32011): "n0"},
    },
}

FAILSAFE_IN = ["tcp:22", "udp:68", "tcp:179", "tcp:2379", "tcp:2380", "tcp:5473", "tcp:6443", "tcp:6666", "tcp:6667"]
FAILSAFE_OUT = ["udp:53", "udp:67", "tcp:179", "tcp:2379", "tcp:2380", "tcp:5473", "tcp:6443", "tcp:6666", "tcp:6667"]


def doc(kind, name, spec, labels=None, namespace=None):
    meta = {"name": name}
    if labels:
        meta["labels"] = dict(labels)
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": "projectcalico.org/v3", "kind": kind, "metadata": meta, "spec": spec}


def felix_config(**spec):
    """FelixConfiguration default with Felix's compiled-in failsafe ports (felix/config/config_params.go)."""
    def ports(items):
        return [{"protocol": p.split(":")[0].upper(), "port": int(p.split(":")[1])} for p in items]
    body = {"failsafeInboundHostPorts": ports(FAILSAFE_IN), "failsafeOutboundHostPorts": ports(FAILSAFE_OUT)}
    body.update(spec)
    return doc("FelixConfiguration", "default", body)


def hep(name, node, iface, labels, ips=None, **spec):
    body = {"node": node}
    if iface is not None:
        body["interfaceName"] = iface
    if ips:
        body["expectedIPs"] = list(ips)
    body.update(spec)
    return doc("HostEndpoint", name, body, labels)


def gnp(name, selector, order=None, **spec):
    body = {"selector": selector}
    if order is not None:
        body["order"] = order
    body.update(spec)
    return doc("GlobalNetworkPolicy", name, body)


ALLOW = {"action": "Allow"}
DENY = {"action": "Deny"}


def tcp_ports(action, *ports):
    return {"action": action, "protocol": "TCP", "destination": {"ports": list(ports)}}


# -- connections ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Conn:
    """Felix's ``cc.Expect(Some|None, src, dst[, port])``: a new connection from node ``src`` to node
    ``dst`` (to ``via``, a service address of the lab, when given), in each family both ends have."""

    src: str
    dst: str
    allowed: bool
    port: Optional[int] = PORT
    proto: str = "tcp"
    via: Optional[str] = None
    families: Tuple[int, ...] = (4, 6)
    ip_proto: Optional[int] = None
    phase: int = 0  # connections of a later phase start after those of earlier ones have finished

    def label(self) -> str:
        what = "ip proto %s" % self.ip_proto if self.proto == "raw" else (
            "%s/%s" % (self.proto, self.port) if self.port else self.proto)
        to = "%s(via %s)" % (self.dst, self.via) if self.via else self.dst
        return "%s -> %s %s: %s" % (self.src, to, what, "Some" if self.allowed else "None")


def some(src, dst, **kw) -> Conn:
    return Conn(src, dst, True, **kw)


def none(src, dst, **kw) -> Conn:
    return Conn(src, dst, False, **kw)


@dataclass
class Case:
    id: str
    felix: str  # "file.go: Describe > Context > It"
    lab: str
    docs: Callable[[object], List[dict]]  # world -> documents
    conns: Sequence[Conn]
    extra_tables: Dict[str, str] = field(default_factory=dict)  # host -> nft text (another firewall)
    forwarding: bool = True
    origin: str = "felix"  # "felix" | "adapted" | "extension" | "docs"
    note: str = ""


# -- shared expectations (hostendpoints_test.go's helpers) ----------------------------------------------

def host_to_host(allowed):
    return [Conn("n0", "n1", allowed), Conn("n1", "n0", allowed)]


def host_to_other_pod(allowed):
    return [Conn("n0", "w1", allowed), Conn("n1", "w0", allowed)]


def pod_to_pod(allowed=True):
    return [Conn("w0", "w1", allowed), Conn("w1", "w0", allowed)]


def host_to_own_pod(protocols=True):
    """expectHostToOwnPodTraffic: "host to own pod always allowed"; also UDP and ICMP (the pod's reply
    takes the same way back)."""
    out = [some("n0", "w0"), some("n1", "w1")]
    if protocols:
        out += [some("n0", "w0", proto="udp"), some("n0", "w0", proto="icmp", port=None)]
    return out


def host_to_own_pod_via_service():
    return [some("n0", "w0", via="own0"), some("n1", "w1", via="own1")]


def deny_host_to_remote_pod_via_service():
    return [none("n0", "w1", via="remote0"), none("n1", "w0", via="remote1")]


def local_pod_to_remote_pod_via_service():
    return [some("w0", "w1", via="pod0"), some("w1", "w0", via="pod1")]


def raw(src, dst, allowed, proto=253, phase=0):
    """Felix's raw-IP checkers (cc253/cc254): protocol 253 or 254, IPv4."""
    return Conn(src, dst, allowed, port=None, proto="raw", ip_proto=proto, families=(4,), phase=phase)


# -- hostendpoints_test.go --------------------------------------------------------------------------------

def _he_heps(iface, profiles=()):
    out = []
    for node in ("n0", "n1"):
        name = "hep-" + node
        extra = {"profiles": list(profiles)} if profiles else {}
        out.append(hep(name, node, iface, {"name": name, "hostname": node, "host-endpoint": "true"},
                       LABS[TWO]["hosts"][node], **extra))
    return out


def _pods(world):
    return [world.wep("w0", {"name": "w0"}), world.wep("w1", {"name": "w1"})]


def hostendpoint_cases(iface: str) -> List[Case]:
    v = "named" if iface == "eth0" else "all"
    desc = "named host endpoints" if iface == "eth0" else "all-interfaces host endpoints"
    f = "hostendpoints_test.go: _BPF-SAFE_ %s > " % desc
    ctx1 = "_BPF-SAFE_ with no policies and no profiles on the host endpoints > "
    ctx2 = "with no policies and an allow-all profile on the host endpoints > "

    def base(*policies, profiles=()):
        return lambda w: [felix_config()] + _he_heps(iface, profiles) + _pods(w) + list(policies)

    security = doc("Tier", "security", {"order": 10})
    f0_egress = gnp("security.f0-egress", "hostname == 'n0'", tier="security", egress=[ALLOW])
    f1_ingress = gnp("security.f1-ingress", "hostname == 'n1'", tier="security", ingress=[ALLOW])
    f1_ingress_deny = gnp("security.f1-ingress", "hostname == 'n1'", tier="security", ingress=[DENY])
    proto253 = {"action": "Allow", "protocol": 253}
    cases = [
        Case("he-%s-block-raw-ip" % v, f + ctx1 + "It should block raw IP", TWO, base(),
             [raw("n0", "n1", False), raw("n1", "n0", False), raw("n0", "n1", False, 254), raw("n1", "n0", False, 254)]),
        Case("he-%s-nodes-to-apiserver" % v, f + ctx1 + "It should allow connectivity from nodes to the Kubernetes API server",
             TWO, base(), [some("n0", "ext", port=6443), some("n1", "ext", port=6443)]),
        Case("he-%s-nodes-to-typha" % v, f + ctx1 + "It should allow connectivity from nodes to Typha",
             TWO, base(), [some("n0", "ext", port=5473), some("n1", "ext", port=5473)]),
        Case("he-%s-pod-to-pod" % v, f + ctx1 + "It should allow pod-to-pod traffic", TWO, base(),
             host_to_host(False) + [some("w0", "w1")]),
        Case("he-%s-block-all-but-pod-traffic" % v,
             f + ctx1 + "It should block all traffic except pod-to-pod and host-to-own-pod traffic", TWO, base(),
             host_to_host(False) + host_to_other_pod(False) + pod_to_pod() + host_to_own_pod()
             + host_to_own_pod_via_service() + deny_host_to_remote_pod_via_service()
             + local_pod_to_remote_pod_via_service()),
        Case("he-%s-tier-egress-only" % v, f + ctx1 + "It should allow containers.Felix[0] => containers.Felix[1] traffic "
             "if ingress and egress policies are in place (step 1: security.f0-egress)", TWO,
             base(security, f0_egress),
             [none("n0", "n1"), none("n1", "w0"), none("n1", "n0")] + pod_to_pod() + host_to_own_pod()
             + [raw("n0", "n1", False), raw("n1", "n0", False)]),
        Case("he-%s-tier-egress-and-ingress" % v, f + ctx1 + "It should allow containers.Felix[0] => containers.Felix[1] "
             "traffic if ingress and egress policies are in place (step 2: + security.f1-ingress Allow)", TWO,
             base(security, f0_egress, f1_ingress),
             [some("n0", "n1"), none("n1", "n0")] + pod_to_pod() + host_to_own_pod()
             # "Need to test this first because the conntrack is symmetric for portless protocols."
             + [raw("n1", "n0", False), raw("n0", "n1", True, phase=1)]),
        Case("he-%s-tier-ingress-deny" % v, f + ctx1 + "It should allow containers.Felix[0] => containers.Felix[1] "
             "traffic if ingress and egress policies are in place (step 3: security.f1-ingress changed to Deny)", TWO,
             base(security, f0_egress, f1_ingress_deny), [none("n0", "n1")]),
        Case("he-%s-raw-ip-egress-only" % v, f + ctx1 + "It should allow raw IP with the right protocol only "
             "(step 1: f0-egress protocol 253)", TWO,
             base(gnp("f0-egress", "hostname == 'n0'", egress=[proto253])),
             [raw("n0", "n1", False), raw("n1", "n0", False), raw("n0", "n1", False, 254), raw("n1", "n0", False, 254)]),
        Case("he-%s-raw-ip-both" % v, f + ctx1 + "It should allow raw IP with the right protocol only "
             "(step 2: + f1-ingress protocol 253)", TWO,
             base(gnp("f0-egress", "hostname == 'n0'", egress=[proto253]),
                  gnp("f1-ingress", "hostname == 'n1'", ingress=[proto253])),
             [raw("n0", "n1", True), raw("n0", "n1", False, 254), raw("n1", "n0", False, 254)]),
        Case("he-%s-deny-policy-host-to-own-pod" % v, f + ctx1 + "It should not deny host-to-own pod traffic even if an "
             "apply-on-forward deny policy is applied", TWO,
             base(gnp("aof-deny", "has(host-endpoint)", ingress=[DENY], egress=[DENY])),
             host_to_host(False) + host_to_other_pod(False) + pod_to_pod() + host_to_own_pod(),
             note="Felix's policy aof-deny does not actually set applyOnForward; translated as written"),
        Case("he-%s-aof-deny-host-to-own-pod" % v, f + ctx1 + "It should not deny host-to-own pod traffic even if an "
             "apply-on-forward deny policy is applied (with applyOnForward: true)", TWO,
             base(gnp("aof-deny", "has(host-endpoint)", applyOnForward=True, ingress=[DENY], egress=[DENY])),
             host_to_host(False) + host_to_other_pod(False) + pod_to_pod(False) + host_to_own_pod()
             + host_to_own_pod_via_service() + [none("w0", "n1"), none("ext", "w0")],
             origin="extension", note="the policy the test's name describes: forwarded pod traffic is denied too"),
        Case("he-%s-allow-all-profile" % v, f + ctx2 + "It should allow all traffic", TWO, base(profiles=[ALLOW_ALL]),
             host_to_host(True) + host_to_other_pod(True) + host_to_own_pod() + pod_to_pod()),
        Case("he-%s-egress-deny-f0" % v, f + ctx2 + "It should deny felixes[0] => felixes[1] traffic if policy denies "
             "egress from felixes[0]", TWO,
             base(gnp("f0-egress", "hostname == 'n0'", egress=[DENY]), profiles=[ALLOW_ALL]),
             [none("n0", "n1"), none("n0", "w1"), some("n1", "n0"), some("n1", "w0")] + host_to_own_pod() + pod_to_pod()),
        Case("he-%s-ingress-deny-f1" % v, f + ctx2 + "with a policy denying ingress on containers.Felix[1] > It should deny "
             "felixes[0] => felixes[1] traffic if policy denies ingress on felixes[1]", TWO,
             base(gnp("f1-ingress", "hostname == 'n1'", ingress=[DENY]), profiles=[ALLOW_ALL]),
             [some("n1", "n0"), some("n1", "w0"), none("n0", "n1"), some("n0", "w1")] + host_to_own_pod() + pod_to_pod()),
        Case("he-%s-aof-deny-forwarded" % v, f + ctx2 + "It should deny forwarded traffic from felixes[0] to felixes[1] "
             "if an AOF policy denies it", TWO,
             base(gnp("aof-f1", "hostname == 'n1'", applyOnForward=True,
                      ingress=[{"action": "Allow", "source": {"selector": "name == 'w1'"}}], egress=[ALLOW]),
                  gnp("aof-f0", "hostname == 'n0'", applyOnForward=True, ingress=[ALLOW], egress=[ALLOW]),
                  profiles=[ALLOW_ALL]),
             [none("n0", "n1"), none("n0", "w1"), none("w0", "w1"), some("w1", "w0")] + host_to_own_pod()),
    ]
    return cases


def ip_forwarding_cases() -> List[Case]:
    return [Case("he-ip-forwarding-disabled", "hostendpoints_test.go: _BPF-SAFE_ with IP forwarding disabled > It should "
                 "have host-to-host and host-to-local connectivity only", TWO, lambda w: [felix_config()] + _pods(w),
                 [Conn(*c, families=(4,)) for c in [
                     ("n0", "n1", True), ("n1", "n0", True), ("n0", "w0", True), ("n1", "w1", True),
                     ("n0", "w1", False), ("n1", "w0", False), ("w0", "w1", False), ("w1", "w0", False)]],
                 forwarding=False, note="FELIX_IPFORWARDING=Disabled and net.ipv4.ip_forward=0: IPv4, as Felix's test")]


# -- ep_to_host_action_test.go ----------------------------------------------------------------------------

# Felix's test sets the INPUT chain's policy ("iptables -P INPUT DROP", after
# "iptables -A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"): here, another table on the host.
# It keeps IPv6 neighbour discovery (Felix's own ICMPv6 rules accept it for pods in that same INPUT chain).
INPUT_DROP = """table inet host-input {
    chain input {
        type filter hook input priority 10; policy drop;
        ct state established,related accept
        meta l4proto icmpv6 icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit } accept
    }
}
"""


def ep_to_host_cases() -> List[Case]:
    f = "ep_to_host_action_test.go: _BPF-SAFE_ endpoint-to-host-action tests > DescribeTable endpoint to host tests > Entry "
    # Left out: the four entries INPUT=DROP, ep-to-host=Accept with connectivity Some.  In iptables, Felix's ACCEPT in
    # cali-INPUT ends the INPUT chain before its DROP policy; in nftables an accept in one table's base chain does not
    # stop another table's base chain, so "another firewall that drops" always drops (Felix's NFT mode skips this test).
    # (INPUT policy, DefaultEndpointToHostAction, HEP, HEP policy, Felix's verdict, origin)
    entries = [
        ("ACCEPT", "Accept", "none", "", True, "felix"),
        ("DROP", "Return", "none", "", False, "felix"),
        ("DROP", "Drop", "none", "", False, "felix"),
        ("ACCEPT", "Return", "none", "", True, "felix"),
        ("ACCEPT", "Drop", "none", "", False, "felix"),
        ("ACCEPT", "Return", "eth0", "Deny", True, "felix"),
        ("DROP", "Return", "eth0", "Deny", False, "felix"),
        ("DROP", "Return", "*-pre-dnat", "Allow", False, "felix"),
        ("DROP", "Drop", "*-pre-dnat", "Allow", False, "felix"),
        ("DROP", "Accept", "*-pre-dnat", "Deny", False, "felix"),
        ("DROP", "Return", "*-pre-dnat", "Deny", False, "felix"),
        ("DROP", "Drop", "*-pre-dnat", "Deny", False, "felix"),
        ("ACCEPT", "Accept", "*-pre-dnat", "Deny", False, "felix"),
        ("ACCEPT", "Return", "*-pre-dnat", "Deny", False, "felix"),
        ("ACCEPT", "Drop", "*-pre-dnat", "Deny", False, "felix"),
        ("DROP", "Return", "*", "Allow", False, "felix"),
        ("DROP", "Drop", "*", "Allow", False, "felix"),
        ("DROP", "Return", "*", "Deny", False, "felix"),
        ("DROP", "Drop", "*", "Deny", False, "felix"),
        ("ACCEPT", "Accept", "*", "Deny", True, "felix"),
        ("ACCEPT", "Return", "*", "Deny", True, "felix"),
        ("ACCEPT", "Drop", "*", "Deny", False, "felix"),
        # not in Felix's table, from its rules: both checks are enforced; a named HEP never sees pod traffic
        ("ACCEPT", "Accept", "*-pre-dnat", "Allow", True, "extension"),
        ("ACCEPT", "Return", "*-pre-dnat", "Allow", True, "extension"),
        ("ACCEPT", "Drop", "*-pre-dnat", "Allow", False, "extension"),
        ("ACCEPT", "Accept", "eth0", "Deny", True, "extension"),
        ("ACCEPT", "Drop", "eth0", "Deny", False, "extension"),
    ]
    cases = []
    for chain, action, hepcfg, hep_action, allowed, origin in entries:
        def docs(w, action=action, hepcfg=hepcfg, hep_action=hep_action):
            out = [felix_config(defaultEndpointToHostAction=action)] + _pods(w)
            if hepcfg == "none":
                return out
            out.append(gnp("default-hep-egress", "hep=='true'", egress=[ALLOW]))
            ingress = []
            spec = {}
            if hepcfg == "*-pre-dnat":
                spec = {"applyOnForward": True, "preDNAT": True}
                ingress.append({"action": "Allow", "source": {"selector": "!has(hep)"},
                                "destination": {"selector": "!has(hep)"}})
            ingress.append({"action": hep_action, "source": {"selector": "!has(hep)"}})
            out.append(gnp("default-hep", "hep=='true'", ingress=ingress, **spec))
            iface = "*" if hepcfg.startswith("*") else hepcfg
            for node in ("n0", "n1"):
                out.append(hep("hep-" + node, node, iface, {"hep": "true"}, LABS[TWO]["hosts"][node]))
            return out

        pol = ", HEP-pol=%s" % hep_action if hep_action else ", HEP-pol="
        name = "INPUT=%s, ep-to-host=%s, HEP=%s%s, expected connectivity=%s" % (
            chain, action, hepcfg, pol, "Some" if allowed else "None")
        conns = [Conn("w0", "n0", allowed), Conn("w1", "n1", allowed),
                 Conn("w0", "n0", allowed, proto="icmp", port=None)] + [some("w0", "w1")]
        cid = "ep2host-%s-%s-%s-%s" % (chain.lower(), action.lower(), hepcfg.replace("*", "all"), hep_action.lower() or "na")
        cases.append(Case(cid, f + "(%s)" % name, TWO, docs, conns,
                          extra_tables={"n0": INPUT_DROP, "n1": INPUT_DROP} if chain == "DROP" else {},
                          origin=origin))
    return cases


# -- pre_dnat_test.go -----------------------------------------------------------------------------------

def pre_dnat_cases() -> List[Case]:
    f = "pre_dnat_test.go: pre-dnat with initialized Felix, 2 workloads > with node port DNATs > "
    deny = gnp("deny-ingress", "has(host-endpoint)", order=20, preDNAT=True, applyOnForward=True, ingress=[DENY])
    eth0 = hep("felix-eth0", "n0", "eth0", {"host-endpoint": "true"})
    star = hep("felix-all", "n0", "*", {"host-endpoint": "true"})

    def pin(name, *ports):
        return gnp(name, "has(host-endpoint)", order=10, preDNAT=True, applyOnForward=True,
                   ingress=[tcp_ports("Allow", *ports)])

    def docs(*extra):
        return lambda w: [felix_config(), w.wep("w0", {"name": "w0"}), w.wep("w1", {"name": "w1"})] + list(extra)

    def np(w01, w10, e1, e0):
        return [Conn("w0", "w1", w01, port=32011), Conn("w1", "w0", w10, port=32010),
                Conn("ext", "w1", e1, port=32011), Conn("ext", "w0", e0, port=32010)]

    pdh = "with pre-DNAT policy denying all ingress > "
    return [
        Case("prednat-nodeports-open", f + "It everyone can connect to node ports", ONE, docs(), np(True, True, True, True)),
        Case("prednat-named-deny", f + pdh + "with host endpoint applying policy to eth0 > It external client cannot connect",
             ONE, docs(deny, eth0), np(True, True, False, False)),
        Case("prednat-named-pinhole-32010", f + pdh + "with host endpoint applying policy to eth0 > with pre-DNAT policy to "
             "open pinhole to 32010 > It external client can connect to 32010 but not 32011", ONE,
             docs(deny, eth0, pin("allow-ingress-32010", 32010)), np(True, True, False, True)),
        Case("prednat-named-pinhole-8055", f + pdh + "with host endpoint applying policy to eth0 > with pre-DNAT policy to "
             "open pinhole to 8055 > It external client cannot connect", ONE,
             docs(deny, eth0, pin("allow-ingress-8055", 8055, 9091)), np(True, True, False, False)),
        Case("prednat-all-deny", f + pdh + "with all-interfaces host endpoint > It no one can connect via NodePorts", ONE,
             docs(deny, star), np(False, False, False, False)),
        Case("prednat-all-pinhole-32010", f + pdh + "with all-interfaces host endpoint > with pre-DNAT policy to open "
             "pinhole via 32010 > It clients can connect to 32010 but not 32011", ONE,
             docs(deny, star, pin("allow-via-32010", 32010)), np(False, True, False, True)),
    ]


# -- donottrack_test.go ---------------------------------------------------------------------------------

def do_not_track_cases() -> List[Case]:
    f = "donottrack_test.go: _BPF-SAFE_ do-not-track policy tests; with 2 nodes > "
    sel = {n: "name == 'eth0-%s'" % n for n in ("n0", "n1")}

    def heps():
        return [hep("eth0-" + n, n, "eth0", {"name": "eth0-" + n, "host-endpoint": "true"}, LABS[TWO]["hosts"][n])
                for n in ("n0", "n1")]

    def dnt(name, me, peer, ingress=None, egress=None):
        ingress = [{"action": "Allow", "source": {"selector": sel[peer]}}] if ingress is None else ingress
        egress = [{"action": "Allow", "destination": {"selector": sel[peer]}}] if egress is None else egress
        return gnp(name, sel[me], doNotTrack=True, applyOnForward=True, types=["Ingress", "Egress"],
                   ingress=ingress, egress=egress)

    def conns(n0_n1_8055, n1_n0_8055, n0_n1_22, n1_n0_22):
        return [Conn("n0", "n1", n0_n1_8055), Conn("n1", "n0", n1_n0_8055),
                some("n0", "n1", port=2379), some("n1", "n0", port=2379),
                Conn("n0", "n1", n0_n1_22, port=22), Conn("n1", "n0", n1_n0_22, port=22),
                some("ext", "n1", port=22), some("ext", "n0", port=22)]

    full = conns(True, True, True, True)
    failsafe_only = conns(False, False, False, False)
    failsafe_only_host0 = conns(False, False, False, True)
    pols = [dnt("host-0-pol", "n0", "n1"), dnt("host-1-pol", "n1", "n0")]
    no_egress = [dnt("host-0-pol", "n0", "n1", egress=[]), pols[1]]
    deny_in = [dnt("host-0-pol", "n0", "n1", ingress=[{"action": "Deny", "destination": {"selector": sel["n0"]}}]), pols[1]]
    it = "after adding host endpoints > It should implement untracked policy correctly"
    return [
        Case("dnt-no-policy", f + "It before adding policy, should have connectivity between hosts", TWO,
             lambda w: [felix_config()], full),
        Case("dnt-failsafe-only", f + it + " (having only failsafe connectivity to start with)", TWO,
             lambda w: [felix_config()] + heps(), failsafe_only),
        Case("dnt-bidirectional", f + it + " (having connectivity after installing bidirectional policies)", TWO,
             lambda w: [felix_config()] + heps() + pols, full),
        Case("dnt-host0-no-egress", f + it + " (having only failsafe connectivity after removing host-0's egress rule)",
             TWO, lambda w: [felix_config()] + heps() + no_egress, failsafe_only_host0),
        Case("dnt-host0-ingress-deny", f + it + " (having only failsafe connectivity after replacing host-0's ingress "
             "rules with Deny)", TWO, lambda w: [felix_config()] + heps() + deny_in, failsafe_only_host0),
    ]


# -- apply_on_forward_test.go ------------------------------------------------------------------------------

def apply_on_forward_cases() -> List[Case]:
    f = "apply_on_forward_test.go: _BPF-SAFE_ apply on forward tests; with 2 nodes > "
    conns = pod_to_pod() + [some("w0", "n1"), some("w1", "n0")]
    allow = gnp("default-allow", "host-endpoint=='true'", ingress=[ALLOW], egress=[ALLOW])

    def heps(iface, prefix):
        return [hep(prefix + n, n, iface, {"name": prefix + n, "host-endpoint": "true"}, LABS[TWO]["hosts"][n])
                for n in ("n0", "n1")]

    return [
        Case("aof-no-hep", f + "It should have workload to workload/host connectivity", TWO,
             lambda w: [felix_config()] + _pods(w), conns),
        Case("aof-named-hep", f + "with host endpoints defined > with named host endpoints on eth0 > It should have workload "
             "to workload/host connectivity", TWO, lambda w: [felix_config(), allow] + heps(None, "eth0-") + _pods(w), conns,
             note="the HostEndpoints have expectedIPs and no interfaceName, as in Felix's test"),
        Case("aof-all-hep", f + "with host endpoints defined > with all-interfaces host endpoints > It should have workload "
             "to workload/host connectivity", TWO, lambda w: [felix_config(), allow] + heps("*", "all-interfaces-") + _pods(w),
             conns),
    ]


# -- host_port_test.go ----------------------------------------------------------------------------------------

def host_port_cases() -> List[Case]:
    f = "host_port_test.go: _BPF-SAFE_ host-port tests > "
    metrics = 9091

    def reach(allowed):
        return [Conn("ext", "n0", allowed, port=metrics)]

    def pred(name, port):
        return gnp(name, "host-endpoint=='true'", preDNAT=True, applyOnForward=True, ingress=[tcp_ports("Allow", port)])

    out = [
        Case("hostport-no-endpoints", f + "It with no endpoints or policy, port should be reachable", ONE,
             lambda w: [felix_config()], reach(True)),
        Case("hostport-local-workload", f + "It with a local workload, port should be reachable", ONE,
             lambda w: [felix_config(), w.wep("w0", {"name": "w0"})], reach(True)),
    ]
    for v, iface, name, ctx in (("named", "eth0", "host-endpoint-1", "with named host endpoint defined"),
                                ("all", "*", "all-interfaces-hostendpoint", "with all-interfaces host endpoint defined")):
        h = hep(name, "n0", iface, {"host-endpoint": "true"})
        out += [
            Case("hostport-%s-unreachable" % v, f + ctx + " > It port should not be reachable", ONE,
                 lambda w, h=h: [felix_config(), h], reach(False)),
            Case("hostport-%s-prednat-other-port" % v, f + ctx + " > with pre-DNAT policy defined > It should not be able to "
                 "reach the metrics port with an allow policy on another port", ONE,
                 lambda w, h=h: [felix_config(), h, pred("prednat-deny-port-123", 1234)], reach(False)),
            Case("hostport-%s-prednat-metrics-port" % v, f + ctx + " > with pre-DNAT policy defined > It should be able to "
                 "reach the metrics port once a policy allows that port", ONE,
                 lambda w, h=h: [felix_config(), h, pred("prednat-deny-port-123", 1234),
                                 pred("prednat-allow-metrics-port", metrics)], reach(True)),
        ]
    return out


# -- named_ports_test.go -----------------------------------------------------------------------------------------

def named_port_cases() -> List[Case]:
    out = []
    for v, iface, desc in (("named", "eth0", "named port, named host endpoint"),
                           ("all", "*", "named port, all-interfaces host endpoint")):
        f = "named_ports_test.go: %s > " % desc

        def heps(iface=iface):
            return [hep("host-endpoint-%d" % i, n, iface, {"host-endpoint": "true", "host": str(i)},
                        [LABS[TWO]["hosts"][n][0]], ports=[{"name": "http", "protocol": "TCP", "port": 8055}])
                    for i, n in enumerate(("n0", "n1"))]

        def egress(port):
            return gnp("test-policy", "host == '1' || host == '0'", types=["Egress"], egress=[tcp_ports("Allow", port)])

        ingress = gnp("test-policy-2", "host == '1' || host == '0'", types=["Ingress"], ingress=[tcp_ports("Allow", "http")])

        def conns(open_8055):
            return [Conn("n0", "n1", open_8055, families=(4,)), Conn("n1", "n0", open_8055, families=(4,)),
                    none("n0", "n1", port=8056, families=(4,)), none("n1", "n0", port=8056, families=(4,))]

        it = "It should have expected connectivity with named port policies"
        steps = [
            ("initial", "It should have expected initial connectivity", [], False),
            ("egress-named", it + " (step 1: egress to named port http only)", [egress("http")], False),
            ("both-named", it + " (step 2: + ingress to named port http)", [egress("http"), ingress], True),
            ("egress-80", it + " (step 3: egress to numeric port 80)", [egress(80), ingress], False),
            ("egress-8055", it + " (step 4: egress to numeric port 8055)", [egress(8055), ingress], True),
            ("egress-wrong", it + " (step 5: egress to named port wrong)", [egress("wrong"), ingress], False),
            ("egress-http", it + " (step 6: egress to named port http again)", [egress("http"), ingress], True),
        ]
        for sid, name, pols, open_8055 in steps:
            out.append(Case("namedport-%s-%s" % (v, sid), f + name, TWO,
                            lambda w, pols=pols, heps=heps: [felix_config()] + heps() + pols, conns(open_8055)))
    # tests with mixed TCP/UDP, on a host endpoint instead of a workload
    n1 = LABS[TWO]["hosts"]["n1"]
    target = hep("target", "n1", "eth0", {"name": "nginx"}, n1, profiles=[ALLOW_ALL],
                 ports=[{"name": "tcp-port", "protocol": "TCP", "port": 80}, {"name": "udp-port", "protocol": "UDP", "port": 81}])
    confused = gnp("confused", "name == 'nginx'", types=["Ingress"], ingress=[
        {"action": "Allow", "protocol": "TCP", "destination": {"ports": ["udp-port"]}},
        {"action": "Allow", "protocol": "UDP", "destination": {"ports": ["http-port"]}}])
    f = "named_ports_test.go: tests with mixed TCP/UDP > It shouldn't confuse TCP and UDP ports"
    pairs = [("tcp", 80), ("tcp", 81), ("udp", 80), ("udp", 81)]
    out += [
        Case("namedport-tcp-udp-open", f + " (before the policy)", TWO, lambda w: [felix_config(), target],
             [some("n0", "n1", port=p, proto=pr) for pr, p in pairs], origin="adapted",
             note="Felix tests this on workloads (workload policy); here the named ports are a HostEndpoint's"),
        Case("namedport-tcp-udp-confused", f + " (with the confused policy)", TWO,
             lambda w: [felix_config(), target, confused],
             [none("n0", "n1", port=p, proto=pr) for pr, p in pairs], origin="adapted",
             note="Felix tests this on workloads (workload policy); here the named ports are a HostEndpoint's"),
    ]
    return out


# -- Calico documentation (not in Felix's FV): hosts with pods, failsafes, blocklists ------------------------

def docs_cases() -> List[Case]:
    n0 = LABS[TWO]["hosts"]["n0"]
    hep0 = hep("hep-n0", "n0", "eth0", {"host-endpoint": "true"}, n0)
    hep0_all = hep("hep-n0", "n0", "*", {"host-endpoint": "true"}, n0)
    blocklist = doc("GlobalNetworkSet", "blocklist", {"nets": ["198.51.100.0/24", "2001:db8:99::/64"]}, {"blocklist": "true"})
    open_8055 = gnp("allow-8055", "has(host-endpoint)", ingress=[tcp_ports("Allow", 8055)], egress=[ALLOW])
    return [
        Case("docs-host-with-pods-no-hep", "Protect hosts: \"By default, Calico blocks all connections from a workload to "
             "its local host\" (DefaultEndpointToHostAction Drop), for a host with workloads and no HostEndpoint "
             "while another host has one", TWO, lambda w: [felix_config(), hep0] + _pods(w),
             [none("w1", "n1"), none("w1", "n1", port=22), none("w1", "n1", proto="icmp", port=None),
              some("n1", "w1"), none("w0", "n0"), none("w0", "n0", port=22), some("w1", "n0", port=22),
              none("w1", "n0"), some("w1", "w0"), some("w0", "w1")],
             origin="docs", note="failsafes do not apply to a pod's own host (workload-to-host runs before the host "
                                 "endpoint chains); from a remote pod they do"),
        Case("docs-host-with-pods-no-hep-accept", "Protect hosts: defaultEndpointToHostAction Accept, for a host with "
             "workloads and no HostEndpoint", TWO,
             lambda w: [felix_config(defaultEndpointToHostAction="Accept"), hep0] + _pods(w),
             [some("w1", "n1"), some("w0", "n0"), some("n0", "w0"), some("n1", "w1")], origin="docs"),
        Case("docs-failsafes", "Protect hosts: failsafe rules (a HostEndpoint without policy denies everything but "
             "the failsafe ports)", TWO, lambda w: [felix_config(), hep0] + _pods(w),
             [some("ext", "n0", port=22), none("ext", "n0"), some("n0", "ext", port=53, proto="udp"), none("n0", "ext"),
              some("n1", "n0", port=2379), none("n1", "n0"), none("w0", "n0", port=22), some("w1", "n0", port=22),
              some("ext", "w0"), some("n0", "w0")], origin="docs"),
        Case("docs-blocklist-prednat", "Calico docs, apply policy to forwarded traffic / GlobalNetworkSet blocklist: a "
             "preDNAT applyOnForward Deny from a network set", TWO,
             lambda w: [felix_config(), hep0_all, blocklist, open_8055,
                        gnp("blocklist", "has(host-endpoint)", order=1, preDNAT=True, applyOnForward=True,
                            ingress=[{"action": "Deny", "source": {"selector": "blocklist == 'true'"}}])] + _pods(w),
             [none("ext", "n0"), some("ext", "n0", port=22), none("ext", "w0"), some("ext2", "n0"), some("ext2", "w0"),
              some("n1", "n0"), some("w1", "w0")], origin="docs"),
        Case("docs-blocklist-donottrack", "Calico docs, defend against DoS attacks: a doNotTrack applyOnForward Deny from "
             "a GlobalNetworkSet blocklist", TWO,
             lambda w: [felix_config(), hep0, blocklist, open_8055,
                        gnp("dos-blocklist", "has(host-endpoint)", order=1, doNotTrack=True, applyOnForward=True,
                            types=["Ingress"],
                            ingress=[{"action": "Deny", "source": {"selector": "blocklist == 'true'"}}])] + _pods(w),
             [none("ext", "n0"), some("ext", "n0", port=22), none("ext", "w0"), some("ext2", "n0"), some("ext2", "w0"),
              some("n1", "n0")], origin="docs"),
    ]


def all_cases() -> List[Case]:
    out = hostendpoint_cases("eth0") + hostendpoint_cases("*") + ip_forwarding_cases() + ep_to_host_cases()
    out += pre_dnat_cases() + do_not_track_cases() + apply_on_forward_cases() + host_port_cases()
    out += named_port_cases() + docs_cases()
    ids = [c.id for c in out]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise AssertionError("duplicate case ids: %s" % ", ".join(dup))
    return out
