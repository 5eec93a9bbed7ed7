# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small Calico cluster in network namespaces: hosts, their pods, outside machines, services.

``ClusterWorld`` builds the topology once (``build()``): one namespace per host (its addresses on
``eth0``, all hosts and outside machines on one bridge), one per pod behind a ``cali*`` veth of its
host (see ``netlab.Lab.add_workload``), routes to every pod via its host, and service DNATs.  Then
any number of policy worlds are loaded into it (``load(comp)``): the rendered table of every host
that has one, replacing the previous world's table atomically (hosts without a table lose theirs),
optional extra tables (another firewall on the host), and empty conntrack tables.

``expect(flow)`` is the evaluator's verdict (``Compilation.evaluator``) for the whole connection:
every hop the first packet takes (the source host's output, a host's forward path, the destination
host's input; a pod's own traffic crosses its host's forward or input/output path through the pod's
``cali*`` interface) and every hop of the reply, with the conntrack state each host has for it.  It
is ``None`` where the evaluator cannot answer: a host on the path has local workloads but no plan
(no HostEndpoint: the evaluator has nothing to evaluate), a host on the path carries an extra table,
or the flow meets a DNAT in prerouting (the evaluator has no pre-/post-DNAT model).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import netlab
from differential import ECHO, ECHO_REPLY, PROTO, SPORT, Expectation

from ansible_collections.hostfw.nftables.plugins.plugin_utils.compiler import Compilation
from ansible_collections.hostfw.nftables.plugins.plugin_utils.evaluate import ESTABLISHED, NEW, Packet

IFACE = "eth0"
HOST, POD, OUTSIDE = "host", "pod", "outside"


@dataclass
class Disagreement:
    """The kernel and the evaluator decided one connection differently."""

    flow: netlab.Flow
    evaluator: Expectation
    kernel: netlab.ProbeResult
    world: str = ""

    def __str__(self):
        return "%s%s: evaluator %s (%s), kernel %s (%s)" % (
            "[%s] " % self.world if self.world else "", self.flow, "allow" if self.evaluator.allowed else "deny",
            self.evaluator.reason, self.kernel.verdict, self.kernel.detail)


@dataclass
class _Hop:
    host: str
    kind: str  # "in" | "out" | "fwd"
    iface: str
    out_iface: Optional[str] = None  # fwd only

    def reverse(self) -> "_Hop":
        if self.kind == "fwd":
            return _Hop(self.host, "fwd", self.out_iface, self.iface)
        return _Hop(self.host, "in" if self.kind == "out" else "out", self.iface)

    def __str__(self):
        if self.kind == "fwd":
            return "%s forward %s->%s" % (self.host, self.iface, self.out_iface)
        return "%s %s %s" % (self.host, "input on" if self.kind == "in" else "output to", self.iface)


@dataclass
class ClusterWorld:
    """``hosts``: host -> addresses; ``pods``: pod -> (host, addresses); ``outside``: machine -> addresses."""

    lab: netlab.Lab
    hosts: Dict[str, Sequence[str]]
    pods: Dict[str, Tuple[str, Sequence[str]]] = field(default_factory=dict)
    outside: Dict[str, Sequence[str]] = field(default_factory=dict)
    comp: Optional[Compilation] = None
    extra: Dict[str, List[Tuple[str, str]]] = field(default_factory=dict)  # host -> [(family, table)]
    _forwarding: Dict[str, bool] = field(default_factory=dict)  # host -> ip_forward, read once per load()

    # -- the topology ---------------------------------------------------------------------------

    def build(self) -> "ClusterWorld":
        for host, addrs in self.hosts.items():
            self.lab.add_node(host, addrs, ifname=IFACE)
        for name, addrs in self.outside.items():
            self.lab.add_node(name, addrs, ifname=IFACE)
        for name, (host, addrs) in self.pods.items():
            self.lab.add_workload(name, host, addrs)
        self.lab.static_neighbours()
        return self

    def ifname(self, pod: str) -> str:
        """The host-side (``cali*``) interface of a pod."""
        return self.lab.node(pod).host_ifname

    def wep(self, pod: str, labels: Optional[Dict[str, str]] = None, namespace: str = "default",
            **spec) -> dict:
        """The WorkloadEndpoint document of a pod of this cluster (node, interface and addresses filled in)."""
        host, addrs = self.pods[pod]
        nets = [a + ("/128" if ":" in a else "/32") for a in addrs]
        body = {"node": host, "interfaceName": self.ifname(pod), "ipNetworks": nets}
        body.update(spec)
        meta = {"name": pod, "namespace": namespace}
        if labels:
            meta["labels"] = dict(labels)
        return {"apiVersion": "projectcalico.org/v3", "kind": "WorkloadEndpoint", "metadata": meta, "spec": body}

    def interfaces(self) -> Dict[str, Dict[str, List[str]]]:
        """``compile_documents(interfaces=...)``: each host's eth0 and its addresses."""
        return {h: {IFACE: list(a)} for h, a in self.hosts.items()}

    # -- worlds -----------------------------------------------------------------------------------

    def load(self, comp: Compilation, extra_tables: Optional[Dict[str, str]] = None) -> None:
        """Load ``comp``'s table into every host that has one (and remove it where there is none),
        replace the extra tables (``{host: nft text}``), flush every conntrack table."""
        self.comp = comp
        self._forwarding = {}
        for host, tables in self.extra.items():
            for family, name in tables:
                self.lab.node(host).nft(["delete", "table", family, name])
        self.extra = {}
        for host in self.hosts:
            node = self.lab.node(host)
            text = comp.ruleset(host) if host in comp.hosts else None
            if text is None:
                node.nft(["delete", "table", "inet", "hostfw"])
                continue
            rc, err = node.load_nft(text)
            if rc:
                raise AssertionError("nft -f of %s's table failed: %s" % (host, err))
        for host, text in (extra_tables or {}).items():
            rc, err = self.lab.node(host).load_nft(text)
            if rc:
                raise AssertionError("nft -f of the extra table of %s failed: %s" % (host, err))
            self.extra[host] = re.findall(r"^table\s+(\w+)\s+(\S+)\s*\{", text, re.M)
        self.lab.conntrack_flush()

    def has_table(self, host: str) -> bool:
        return self.lab.node(host).nft(["list", "table", "inet", "hostfw"]).rc == 0

    # -- the evaluator ----------------------------------------------------------------------------

    def _where(self, name: str) -> Tuple[str, Optional[str]]:
        if name in self.hosts:
            return HOST, name
        if name in self.pods:
            return POD, self.pods[name][0]
        return OUTSIDE, None

    def _owner(self, address: str) -> Optional[str]:
        node = self.lab.node_of_address(address)
        return node.name if node is not None else None

    def _dnat(self, host: str, hook: str, flow: netlab.Flow) -> Optional[netlab.Dnat]:
        for d in self.lab.node(host).dnats:
            if hook in d.hooks and d.address == flow.dst_ip and d.protocol == flow.protocol and d.port == flow.port:
                return d
        return None

    def hops(self, src: str, dst: str) -> List[_Hop]:
        """The hops of the first packet from node ``src`` to node ``dst``."""
        skind, shost = self._where(src)
        dkind, dhost = self._where(dst)
        out: List[_Hop] = []
        if skind == HOST:
            if dkind == HOST and dhost == shost:
                return [_Hop(shost, "out", "lo"), _Hop(shost, "in", "lo")]
            if dkind == POD and dhost == shost:
                return [_Hop(shost, "out", self.ifname(dst))]
            out.append(_Hop(shost, "out", IFACE))
        elif skind == POD:
            if dkind == HOST and dhost == shost:
                return [_Hop(shost, "in", self.ifname(src))]
            if dkind == POD and dhost == shost:
                return [_Hop(shost, "fwd", self.ifname(src), self.ifname(dst))]
            out.append(_Hop(shost, "fwd", self.ifname(src), IFACE))
        if dkind == HOST:
            out.append(_Hop(dhost, "in", IFACE))
        elif dkind == POD:
            out.append(_Hop(dhost, "fwd", IFACE, self.ifname(dst)))
        return out

    @staticmethod
    def _packets(flow: netlab.Flow, dst_ip: str, port: Optional[int]) -> Tuple[Packet, Packet]:
        fam = 6 if ":" in dst_ip else 4
        if flow.protocol == "icmp":
            proto = 1 if fam == 4 else 58
            return (Packet(flow.src_ip, dst_ip, proto, icmp_type=ECHO[fam][0], icmp_code=0),
                    Packet(dst_ip, flow.src_ip, proto, icmp_type=ECHO_REPLY[fam], icmp_code=0))
        if flow.protocol == "raw":
            return Packet(flow.src_ip, dst_ip, flow.ip_proto), Packet(dst_ip, flow.src_ip, flow.ip_proto)
        proto = PROTO[flow.protocol]
        return (Packet(flow.src_ip, dst_ip, proto, sport=SPORT, dport=port),
                Packet(dst_ip, flow.src_ip, proto, sport=port, dport=SPORT))

    def _forwards(self, host: str) -> bool:
        """Whether ``host`` routes between interfaces (its ip_forward; read once per load())."""
        if host not in self._forwarding:
            self._forwarding[host] = self.lab.node(host).forwarding()
        return self._forwarding[host]

    def _judge(self, hop: _Hop, pkt: Packet, ct: str):
        ev = self.comp.evaluator
        plan = self.comp.plan(hop.host) if hop.host in self.comp.hosts else None
        if plan is None:
            return None
        if hop.kind == "in":
            return ev.input(plan, hop.iface, pkt, ct=ct)
        if hop.kind == "out":
            return ev.output(plan, hop.iface, pkt, ct=ct)
        return ev.forward(plan, hop.iface, hop.out_iface, pkt, ct=ct)

    def expect(self, flow: netlab.Flow) -> Optional[Expectation]:
        """The evaluator's verdict for the whole connection, or None where it has no answer."""
        if self.comp is None:
            raise AssertionError("load() a compilation first")
        skind, shost = self._where(flow.src_node)
        dst_node, dst_ip, port = flow.dst_node, flow.dst_ip, flow.port
        if flow.protocol in ("tcp", "udp"):
            for host in self.hosts:
                if self._dnat(host, "prerouting", flow) is not None:
                    return None  # the evaluator has no model of a DNAT in prerouting
            if skind == HOST:
                d = self._dnat(shost, "output", flow)
                if d is not None:  # the filter hooks see the translated packet
                    dst_ip, port = d.to_address, d.to_port
                    dst_node = self._owner(dst_ip) or dst_node
        hops = self.hops(flow.src_node, dst_node)
        for hop in hops:
            if hop.host in self.extra:
                return None
            if hop.kind == "fwd" and not self._forwards(hop.host):
                return None  # routing, not policy: a host with forwarding off routes nothing
            plan = self.comp.plan(hop.host) if hop.host in self.comp.hosts else None
            if plan is None and self.lab.node(hop.host).workloads:
                return None
        pkt, rep = self._packets(flow, dst_ip, port)
        reasons = []
        untracked = set()
        for hop in hops:
            v = self._judge(hop, pkt, NEW)
            if v is None:
                reasons.append("%s: no table" % hop)
                continue
            if not v.allowed:
                return Expectation(False, "%s: %s" % (hop, v.reason))
            if v.notracked:
                untracked.add(hop.host)
            reasons.append("%s: %s" % (hop, v.reason))
        if flow.protocol == "raw":  # the lab's raw probes are one-way
            return Expectation(True, "; ".join(reasons))
        for hop in [h.reverse() for h in reversed(hops)]:
            v = self._judge(hop, rep, NEW if hop.host in untracked else ESTABLISHED)
            if v is not None and not v.allowed:
                return Expectation(False, "reply, %s: %s" % (hop, v.reason))
        return Expectation(True, "; ".join(reasons))

    def compare(self, flows: Sequence[netlab.Flow], results: Sequence[netlab.ProbeResult],
                world: str = "") -> Tuple[List[Disagreement], List[Optional[Expectation]]]:
        """Disagreements between the kernel and the evaluator, and the evaluator's answer for every
        flow (None where it has none)."""
        out = []
        answers = []
        for flow, res in zip(flows, results):
            exp = self.expect(flow)
            answers.append(exp)
            if exp is not None and exp.allowed != res.allowed:
                out.append(Disagreement(flow, exp, res, world))
        return out, answers
