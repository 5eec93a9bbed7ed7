# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Differential testing: the kernel must decide every connection exactly as the evaluator does.

``DataplaneWorld(comp)`` turns a compilation into a lab: one network namespace per host with a
HostEndpoint (its expectedIPs on ``eth0``, its rendered table loaded with one ``nft -f``), and an
``outside`` namespace holding every other source address (workload endpoints, network sets,
strangers).  ``run(flows)`` sends real TCP/UDP/ICMP connections and compares each with
``expect(flow)``, the evaluator's verdict for the whole connection: the source host's egress,
the destination's ingress, and the replies (established, or new again where a doNotTrack Allow
kept the first packet out of conntrack).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)
ROOT = os.path.dirname(os.path.dirname(HERE))  # tools/netlab -> the checkout
COLLECTIONS = os.path.join(ROOT, ".collections")
if COLLECTIONS not in sys.path:
    sys.path.insert(0, COLLECTIONS)

import netlab  # noqa: E402

from ansible_collections.hostfw.nftables.plugins.plugin_utils.compiler import Compilation  # noqa: E402
from ansible_collections.hostfw.nftables.plugins.plugin_utils.evaluate import (  # noqa: E402
    ESTABLISHED, INVALID, NEW, Packet, Verdict)
from ansible_collections.hostfw.nftables.plugins.plugin_utils.model import (  # noqa: E402
    EGRESS, INGRESS, PENDING, PREDNAT, UNTRACKED)
from ansible_collections.hostfw.nftables.plugins.plugin_utils.render import (  # noqa: E402
    PENDING_MARK, PHASE_ALL, PHASE_ALLOWED, pending_comment, shadow_directions)

PROTO = {"tcp": 6, "udp": 17}
ECHO = {4: (8, 0), 6: (128, 129)}
ECHO_REPLY = {4: 0, 6: 129}
SPORT = 40000
OUTSIDE = "outside"
IFACE = "eth0"


@dataclass(frozen=True)
class Expectation:
    allowed: bool
    reason: str


@dataclass
class Mismatch:
    flow: netlab.Flow
    expected: Expectation
    kernel: netlab.ProbeResult

    def __str__(self) -> str:
        f = self.flow
        port = ":%s" % f.port if f.port else ""
        what = "%s %s(%s) -> %s(%s)%s" % (f.protocol.upper(), f.src_node, f.src_ip, f.dst_node, f.dst_ip, port)
        return "%s: evaluator %s (%s), kernel %s (%s)" % (
            what, "allow" if self.expected.allowed else "deny", self.expected.reason,
            self.kernel.verdict, self.kernel.detail)


class DataplaneWorld:
    def __init__(self, comp: Compilation, lab: netlab.Lab, extra_sources: Sequence[str] = (),
                 local_workloads: bool = False):
        """``local_workloads``: a WorkloadEndpoint whose ``spec.node`` is one of the hosts becomes a
        pod of that host (its own namespace behind its ``interfaceName`` veth, routed like Calico's)
        instead of an address in ``outside``, so that pod-to-own-host and host-to-own-pod traffic
        crosses the workload interface as on a real node."""
        self.comp = comp
        self.lab = lab
        self.hosts = comp.hosts_with_rulesets()
        # pod name in the lab -> (host, addresses, host-side interface, "namespace/name")
        self.pods: Dict[str, Tuple[str, List[str], str, str]] = {}
        self.host_ips: Dict[str, List[str]] = {}
        self.host_of_ip: Dict[str, str] = {}
        for host in self.hosts:
            plan = comp.plan(host)
            ips = []
            for hep in comp.model.heps_by_node.get(plan.node, []):
                for ip in hep.expected_ips:
                    if ip not in ips:
                        ips.append(ip)
            self.host_ips[host] = ips
            for ip in ips:
                self.host_of_ip.setdefault(ip, host)
        outside = []
        host_of_node = {comp.plan(h).node: h for h in self.hosts}
        for wep in comp.world.workload_endpoints.values():
            ips = [n.split("/")[0] for n in wep.ip_networks]
            if local_workloads and wep.node in host_of_node and ips:
                name = "pod%d" % len(self.pods)
                self.pods[name] = (host_of_node[wep.node], ips, wep.interface_name or netlab.workload_ifname(name),
                                   "%s/%s" % (wep.namespace, wep.name))
                continue
            outside += ips
        for ns in comp.world.network_sets.values():
            from ansible_collections.hostfw.nftables.plugins.plugin_utils.matrix import first_address
            outside += [first_address(n) for n in ns.nets if not n.endswith("/0")]
        outside += list(extra_sources)
        self.outside_ips = [ip for ip in dict.fromkeys(outside) if ip not in self.host_of_ip]

    # -- lab ------------------------------------------------------------------------------------

    def build(self, tables: Optional[Dict[str, str]] = None) -> None:
        """One namespace per host (its table from ``tables`` if given, else compiled) and ``outside``."""
        for host in self.hosts:
            self.lab.add_node(host, self.host_ips[host], ifname=IFACE)
        self.lab.add_node(OUTSIDE, self.outside_ips, ifname=IFACE)
        for name, (host, ips, ifname, dummy) in sorted(self.pods.items()):
            self.lab.add_workload(name, host, ips, host_ifname=ifname)
        self.lab.static_neighbours()  # Calico (and hostfw) opens no ICMPv6 ND on a default-deny endpoint
        for host in self.hosts:
            text = tables[host] if tables is not None else self.comp.ruleset(host)
            rc, err = self.lab.node(host).load_nft(text)
            if rc != 0:
                raise AssertionError("nft -f of %s's table failed: %s" % (host, err))

    # -- flows ----------------------------------------------------------------------------------

    def sources(self) -> List[Tuple[str, str]]:
        out = [(h, ip) for h in self.hosts for ip in self.host_ips[h]]
        out += [(OUTSIDE, ip) for ip in self.outside_ips]
        return out

    def flows(self, probes: Iterable[Tuple[str, Optional[int]]], self_flows: bool = True) -> List[netlab.Flow]:
        flows = []
        probes = list(probes)
        for src_node, src_ip in self.sources():
            fam = 6 if ":" in src_ip else 4
            for host in self.hosts:
                if host == src_node and not self_flows:
                    continue
                for dst_ip in self.host_ips[host]:
                    if (6 if ":" in dst_ip else 4) != fam:
                        continue
                    if host == src_node and dst_ip != src_ip:
                        continue
                    for proto, port in probes:
                        flows.append(netlab.Flow(src_node, src_ip, host, dst_ip, proto, port))
        return flows

    def _packet(self, flow: netlab.Flow, reply: bool = False) -> Packet:
        fam = 6 if ":" in flow.dst_ip else 4
        if flow.protocol == "icmp":
            proto = 1 if fam == 4 else 58
            if reply:
                return Packet(flow.dst_ip, flow.src_ip, proto, icmp_type=ECHO_REPLY[fam], icmp_code=0)
            return Packet(flow.src_ip, flow.dst_ip, proto, icmp_type=ECHO[fam][0], icmp_code=0)
        proto = PROTO[flow.protocol]
        if reply:
            return Packet(flow.dst_ip, flow.src_ip, proto, sport=flow.port, dport=SPORT)
        return Packet(flow.src_ip, flow.dst_ip, proto, sport=SPORT, dport=flow.port)

    @staticmethod
    def _untracked_reply(flow: netlab.Flow) -> str:
        """The conntrack state of a reply whose first packet this host did not track (a doNotTrack
        Allow): UDP starts a new entry; a TCP SYN-ACK or an ICMP echo reply cannot start one, so
        conntrack calls it invalid (a doNotTrack Allow of the reply itself, in the raw stage, still
        comes first)."""
        return NEW if flow.protocol == "udp" else INVALID

    def expect(self, flow: netlab.Flow) -> Expectation:
        """The evaluator's verdict for the whole connection (first packet and reply)."""
        ev = self.comp.evaluator
        src_plan = self.comp.plan(flow.src_node) if flow.src_node in self.hosts else None
        dst_plan = self.comp.plan(flow.dst_node)
        local = flow.src_node == flow.dst_node
        out_if = in_if = "lo" if local else IFACE
        pkt = self._packet(flow)
        rep = self._packet(flow, reply=True)
        stages: List[Tuple[str, Verdict]] = []
        src_out = None
        if src_plan is not None:
            src_out = ev.output(src_plan, out_if, pkt)
            stages.append(("source egress", src_out))
            if not src_out.allowed:
                return Expectation(False, "source egress: " + src_out.reason)
        dst_in = ev.input(dst_plan, in_if, pkt)
        stages.append(("destination ingress", dst_in))
        if not dst_in.allowed:
            return Expectation(False, "destination ingress: " + dst_in.reason)
        if local:
            # One conntrack entry for both hooks: the reply is established unless untracked.
            tracked = not (src_out is not None and src_out.notracked) and not dst_in.notracked
            ct = ESTABLISHED if tracked else self._untracked_reply(flow)
            r1 = ev.output(dst_plan, "lo", rep, ct=ct)
            if not r1.allowed:
                return Expectation(False, "reply (destination egress): " + r1.reason)
            r2 = ev.input(dst_plan, "lo", rep, ct=ct)
            if not r2.allowed:
                return Expectation(False, "reply (source ingress): " + r2.reason)
        else:
            r1 = ev.output(dst_plan, in_if, rep, ct=self._untracked_reply(flow) if dst_in.notracked else ESTABLISHED)
            if not r1.allowed:
                return Expectation(False, "reply (destination egress): " + r1.reason)
            if src_plan is not None:
                r2 = ev.input(src_plan, out_if, rep,
                              ct=self._untracked_reply(flow) if src_out.notracked else ESTABLISHED)
                if not r2.allowed:
                    return Expectation(False, "reply (source ingress): " + r2.reason)
        return Expectation(True, "; ".join("%s: %s" % (n, v.reason) for n, v in stages))

    def run(self, flows: Sequence[netlab.Flow]) -> Tuple[List[Mismatch], List[netlab.ProbeResult]]:
        self.lab.conntrack_flush()
        results = self.lab.probe_many(flows)
        mismatches = []
        for flow, res in zip(flows, results):
            exp = self.expect(flow)
            if exp.allowed != res.allowed:
                mismatches.append(Mismatch(flow, exp, res))
        return mismatches, results

    # -- the shadow path (staged policies) -------------------------------------------------------

    def shadow_directions(self, host: str) -> Tuple[str, ...]:
        """The directions in which ``host``'s table has a shadow path."""
        if not self.comp.staged_counters.get(host) or not self.comp.model.has_staged:
            return ()
        return shadow_directions(self.comp.plan(host), self.comp.plan(host, PENDING))

    def expected_shadow_counts(self, flows: Sequence[netlab.Flow]) -> Dict[Tuple[str, str], int]:
        """{(host, counter comment): packets} that the shadow paths must count for ``flows``, from
        the evaluator: the first packet of each flow is counted where it meets a host's shadow
        path tracked and new (not dropped or untracked by the enforced doNotTrack and preDNAT
        stages before it), at the deciding point of the pending world; phase ``a`` only when
        this table's filter chain then accepted it."""
        ev = self.comp.evaluator
        out: Dict[Tuple[str, str], int] = {}

        def count(host, direction, iface, pkt, enforced):
            if direction not in self.shadow_directions(host):
                return
            if enforced.notracked or (not enforced.allowed and enforced.decider is not None
                                      and enforced.decider.cls in (UNTRACKED, PREDNAT)):
                return  # dropped or untracked before the shadow path: no tracked new connection
            plan = self.comp.plan(host, PENDING)
            pending = ev.input(plan, iface, pkt) if direction == INGRESS else ev.output(plan, iface, pkt)
            if pending.decider is None:
                return
            phases = [PHASE_ALL] + ([PHASE_ALLOWED] if enforced.allowed else [])
            for phase in phases:
                key = (host, pending_comment(phase, pending.decider.key))
                out[key] = out.get(key, 0) + 1

        for flow in flows:
            local = flow.src_node == flow.dst_node
            iface = "lo" if local else IFACE
            pkt = self._packet(flow)
            if flow.src_node in self.hosts:
                src_out = ev.output(self.comp.plan(flow.src_node), iface, pkt)
                count(flow.src_node, EGRESS, iface, pkt, src_out)
                if not src_out.allowed:
                    continue
                if local and src_out.notracked:
                    continue  # one conntrack entry for both hooks: untracked at input too
            dst_in = ev.input(self.comp.plan(flow.dst_node), iface, pkt)
            count(flow.dst_node, INGRESS, iface, pkt, dst_in)
        return out

    def observed_shadow_counts(self) -> Dict[Tuple[str, str], int]:
        """{(host, counter comment): packets} of every shadow counter that counted something."""
        out = {}
        for host in self.hosts:
            for text, packets in self.lab.node(host).counters().items():
                if text.startswith(PENDING_MARK) and packets:
                    out[(host, text)] = packets
        return out


def shadow_report(expected: Dict[Tuple[str, str], int], observed: Dict[Tuple[str, str], int], docs=None) -> str:
    lines = ["the shadow paths counted differently from the evaluator's pending verdicts:"]
    for key in sorted(set(expected) | set(observed)):
        if expected.get(key, 0) != observed.get(key, 0):
            lines.append("  %s %r: evaluator %d, kernel %d" % (key[0], key[1], expected.get(key, 0), observed.get(key, 0)))
    if docs is not None:
        lines.append("world:")
        lines.append(json.dumps(docs, indent=1, sort_keys=True, default=str))
    return "\n".join(lines)


def report(mismatches: Sequence[Mismatch], docs=None, limit: int = 40) -> str:
    lines = ["%d mismatch(es) between the kernel and the evaluator:" % len(mismatches)]
    lines += ["  " + str(m) for m in mismatches[:limit]]
    if docs is not None:
        lines.append("world:")
        lines.append(json.dumps(docs, indent=1, sort_keys=True, default=str))
    return "\n".join(lines)


# -- examples: an inventory directory as the render playbook sees it, proven cell by cell -----------

def example_hostvars(inv_dir: str) -> Dict[str, Dict]:
    """The host variables of an example inventory directory (``inventory.yml`` plus
    ``group_vars/all.yml``), as Ansible would merge them for these simple layouts."""
    import yaml
    with open(os.path.join(inv_dir, "inventory.yml"), encoding="utf-8") as f:
        inv = yaml.safe_load(f)
    hosts: Dict[str, Dict] = {}

    def walk(group):
        for name, hv in (group.get("hosts") or {}).items():
            hosts[name] = dict(hv or {})
        for child in (group.get("children") or {}).values():
            walk(child or {})
    walk(inv["all"])
    shared_path = os.path.join(inv_dir, "group_vars", "all.yml")
    shared = {}
    if os.path.exists(shared_path):
        with open(shared_path, encoding="utf-8") as f:
            shared = yaml.safe_load(f) or {}
    for hv in hosts.values():
        for k, v in shared.items():
            hv.setdefault(k, v)
    return hosts


def prove_cells(world: "DataplaneWorld", matrix: Dict, tables: Optional[Dict[str, str]] = None):
    """Build the lab (each host's table from ``tables`` if given, else compiled), open one real
    connection per matrix cell and per cell of the matrix's ``local`` section (a host to its own
    pod: needs ``DataplaneWorld(local_workloads=True)``), return ``[(cell, ProbeResult)]`` in the
    matrix's order, local cells last (they have ``node`` and ``workload`` instead of source and
    destination)."""
    world.build(tables)
    lab = world.lab
    ip_node = {ip: h for h in world.hosts for ip in world.host_ips[h]}
    pod_of = {}
    for name, (dummy, ips, dummy_if, label) in world.pods.items():
        pod_of[label] = name
        for ip in ips:
            ip_node[ip] = name
    eps = {e["name"]: e for e in matrix["endpoints"]}
    flows, cells = [], []

    def proto_of(cell):
        return cell["protocol"].lower() if cell["protocol"] in ("TCP", "UDP") else "icmp"

    for cell in matrix["cells"]:
        src_ip, dst_ip = eps[cell["source"]]["ips"][0], eps[cell["destination"]]["ips"][0]
        flows.append(netlab.Flow(ip_node.get(src_ip, OUTSIDE), src_ip, ip_node[dst_ip], dst_ip, proto_of(cell),
                                 cell["port"]))
        cells.append(cell)
    host_of_node = {world.comp.plan(h).node: h for h in world.hosts}
    for cell in matrix.get("local") or ():
        pod = pod_of.get(cell["workload"])
        if pod is None:
            raise AssertionError("local cell %s -> %s: the pod is not in the lab (DataplaneWorld(local_workloads=True))"
                                 % (cell["node"], cell["workload"]))
        host = host_of_node[cell["node"]]
        pod_ip = world.pods[pod][1][0]
        fam = 6 if ":" in pod_ip else 4
        host_ip = next((ip for ip in world.host_ips[host] if (6 if ":" in ip else 4) == fam), None)
        if host_ip is None:
            raise AssertionError("local cell %s -> %s: the host has no IPv%d address" % (host, pod, fam))
        flows.append(netlab.Flow(host, host_ip, pod, pod_ip, proto_of(cell), cell["port"]))
        cells.append(cell)
    return list(zip(cells, lab.probe_many(flows)))
