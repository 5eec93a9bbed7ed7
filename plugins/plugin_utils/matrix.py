# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The policy matrix: who may open a connection to which host, and why.

Sources are all endpoints and network sets; destinations are all HostEndpoints with
expectedIPs; columns are the probes.  A cell is the first packet of a new connection from the
source's first address to the destination's first expectedIP of the same family: ``ingress`` is
the destination host's verdict, ``egress`` the source host's own egress verdict when the source
is a HostEndpoint (else None), and ``verdict`` is allow only if every stage allows.
Schema: README "Render: tables and the policy matrix".

When the world has a staged policy, every cell also has ``pending: {verdict, reason}``, the same
cell in the pending world (docs/semantics.md §3.7: every staged policy promoted), and the matrix a
top-level ``staged`` list (``kind``, ``name``, ``tier``, ``stagedAction``); the builder keeps, per
changed cell, the staged policies it attributes the change to (:meth:`MatrixBuilder.attribution`).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ansible_collections.hostfw.nftables.plugins.plugin_utils import api
from ansible_collections.hostfw.nftables.plugins.plugin_utils.addrset import family_of
from ansible_collections.hostfw.nftables.plugins.plugin_utils.evaluate import (
    ALLOW, DENY, ESTABLISHED, Evaluator, Packet, Verdict)
from ansible_collections.hostfw.nftables.plugins.plugin_utils.model import WILDCARD, HostPlan, Model

PROBE_SPORT = 43210
ECHO_REQUEST = {4: 8, 6: 128}
ECHO_REPLY = {4: 0, 6: 129}


def first_address(net: str) -> str:
    """The first usable address of a CIDR (the address itself for /32 and /128)."""
    n = ipaddress.ip_network(net, strict=False)
    if n.num_addresses <= 2:
        return str(n.network_address)
    return str(n.network_address + 1)


class _Endpoint:
    def __init__(self, name, kind, ips, obj):
        self.name = name
        self.kind = kind
        self.ips = ips
        self.obj = obj

    def as_dict(self):
        return {"name": self.name, "kind": self.kind, "ips": list(self.ips)}


def matrix_endpoints(world: api.World) -> Tuple[List[_Endpoint], List[_Endpoint]]:
    """(sources, destinations), each sorted by name."""
    sources: List[_Endpoint] = []
    dests: List[_Endpoint] = []
    for hep in sorted(world.host_endpoints.values(), key=lambda h: h.name):
        ep = _Endpoint("host/" + hep.name, api.HOST_ENDPOINT, list(hep.expected_ips), hep)
        sources.append(ep)
        if hep.expected_ips:
            dests.append(ep)
    for (ns, name), wep in sorted(world.workload_endpoints.items()):
        sources.append(_Endpoint("%s/%s" % (ns, name), api.WORKLOAD_ENDPOINT, [first_address(n) for n in wep.ip_networks], wep))
    for key, nset in sorted(world.network_sets.items(), key=lambda kv: (kv[0][1] or "", kv[0][2])):
        name = ("netset/%s" % nset.name) if nset.namespace is None else "%s/%s" % (nset.namespace, nset.name)
        sources.append(_Endpoint(name, nset.kind, [first_address(n) for n in nset.nets], nset))
    sources.sort(key=lambda e: e.name)
    return sources, dests


def probe_packet(src_ip: str, dst_ip: str, probe: Dict) -> Packet:
    proto = api.PROTOCOL_NUMBERS[probe["protocol"]]
    family = family_of(dst_ip)
    if proto in (1, 58):
        return Packet(src_ip, dst_ip, proto, icmp_type=ECHO_REQUEST[family], icmp_code=0)
    return Packet(src_ip, dst_ip, proto, sport=PROBE_SPORT, dport=int(probe["port"]))


def probe_label(probe: Dict) -> str:
    if probe.get("port") is None:
        return probe["protocol"]
    return "%s/%s" % (probe["protocol"], probe["port"])


class MatrixBuilder:
    def __init__(self, model: Model, hosts_of_node: Optional[Dict[str, str]] = None, pending: Optional[bool] = None):
        self.model = model
        self.evaluator = Evaluator(model)
        self.hosts_of_node = hosts_of_node or {}
        self._plans: Dict[Tuple[str, bool], Optional[HostPlan]] = {}
        # pending verdicts: by default when the world has a staged policy
        self.pending = model.has_staged if pending is None else pending
        # (source, destination, protocol, port) -> names of the staged policies a changed cell is
        # attributed to (see _attribute)
        self.attribution: Dict[Tuple, List[str]] = {}

    def plan_of_node(self, node: str, pending: bool = False) -> Optional[HostPlan]:
        key = (node, pending)
        if key not in self._plans:
            hosts = self.hosts_of_node.get(node) or [node]
            host = sorted(hosts)[0] if isinstance(hosts, (list, tuple)) else hosts
            plan = self.model.host_plan(host, pending)
            if plan is None and host != node:
                plan = self.model.host_plan(node, pending)
            self._plans[key] = plan
        return self._plans[key]

    @staticmethod
    def _iface(hep: api.HostEndpoint) -> str:
        return hep.interface_name if hep.interface_name and hep.interface_name != WILDCARD else WILDCARD

    def _stages(self, src: _Endpoint, dst: _Endpoint, pkt: Packet, pending: bool):
        """(egress verdict or None, ingress verdict or None) of one world."""
        dhep = dst.obj
        dplan = self.plan_of_node(dhep.node, pending)
        in_iface = self._iface(dhep)
        egress = None
        if src.kind == api.HOST_ENDPOINT:
            shep = src.obj
            if shep.node == dhep.node:
                in_iface = "lo"
                out_iface = "lo"
            else:
                out_iface = self._iface(shep)
            splan = self.plan_of_node(shep.node, pending)
            if splan is not None:
                egress = self.evaluator.output(splan, out_iface, pkt)
        elif src.kind == api.WORKLOAD_ENDPOINT and src.obj.node and src.obj.node == dhep.node and dplan is not None:
            in_iface = src.obj.interface_name or (dplan.felix.interface_prefixes[0] + "0")
        ingress_v = self.evaluator.input(dplan, in_iface, pkt) if dplan is not None else None
        return egress, ingress_v

    @staticmethod
    def _combine(egress: Optional[Verdict], ingress_v: Optional[Verdict]) -> Tuple[str, str]:
        stages = []
        if egress is not None:
            stages.append(("egress", egress))
        if ingress_v is not None:
            stages.append(("ingress", ingress_v))
        denied = [(n, v) for n, v in stages if v.verdict == DENY]
        if denied:
            return DENY, "%s: %s" % (denied[0][0], denied[0][1].reason)
        return ALLOW, "; ".join("%s: %s" % (n, v.reason) for n, v in reversed(stages)) or "no host endpoint policy"

    def cell(self, src: _Endpoint, dst: _Endpoint, probe: Dict) -> Optional[Dict]:
        if not src.ips:
            return None
        src_ip = src.ips[0]
        fam = family_of(src_ip)
        dst_ips = [ip for ip in dst.ips if family_of(ip) == fam]
        if not dst_ips:
            return None
        dst_ip = dst_ips[0]
        if probe["protocol"] == "ICMP" and fam == 6 or probe["protocol"] == "ICMPv6" and fam == 4:
            return None
        pkt = probe_packet(src_ip, dst_ip, probe)
        egress, ingress_v = self._stages(src, dst, pkt, False)
        verdict, reason = self._combine(egress, ingress_v)
        out = {"source": src.name, "destination": dst.name, "protocol": probe["protocol"],
               "port": probe.get("port"), "verdict": verdict,
               "ingress": ingress_v.as_dict() if ingress_v is not None else None,
               "egress": egress.as_dict() if egress is not None else None,
               "reason": reason}
        if self.pending:
            p_egress, p_ingress = self._stages(src, dst, pkt, True)
            p_verdict, p_reason = self._combine(p_egress, p_ingress)
            out["pending"] = {"verdict": p_verdict, "reason": p_reason}
            if p_verdict != verdict:
                key = (src.name, dst.name, probe["protocol"], probe.get("port"))
                self.attribution[key] = self._attribute((egress, ingress_v), (p_egress, p_ingress))
        return out

    def _attribute(self, enforced, pending) -> List[str]:
        """The staged policies a changed cell is attributed to: the staged policy whose rule
        decides it now; else the staged policy that replaced or deleted the enforced policy
        whose rule decided it; else, for an end-of-tier verdict, the staged policies of that
        tier; else every staged policy that changes the world (together)."""
        changes = [c for c in self.model.staged_changes if c.changes_world]
        deciders = [v.decider for v in pending if v is not None and v.decider is not None]
        olds = [v.decider for v in enforced if v is not None and v.decider is not None]
        for d in deciders:
            if d.policy is not None and d.policy.staged:
                return [_staged_name(d.policy)]
        for d in olds:
            if d.policy is not None:
                hit = [_staged_name(c.staged) for c in changes if c.target is d.policy]
                if hit:
                    return hit
        for d in deciders:
            if d.kind == "end-of-tier":
                hit = [_staged_name(c.staged) for c in changes
                       if c.staged.tier == d.tier or (c.target is not None and c.target.tier == d.tier)]
                if hit:
                    return hit
        return [_staged_name(c.staged) for c in changes]

    def build(self, probes: Sequence[Dict]) -> Dict:
        sources, dests = matrix_endpoints(self.model.world)
        cells = []
        for src in sources:
            for dst in dests:
                if src is dst:
                    continue
                for probe in probes:
                    c = self.cell(src, dst, probe)
                    if c is not None:
                        cells.append(c)
        all_eps = {e.name: e for e in sources}
        out = {"probes": [dict(p) for p in probes],
               "endpoints": [e.as_dict() for e in sorted(all_eps.values(), key=lambda e: e.name)],
               "cells": cells}
        local = self.local(probes)
        if local:
            out["local"] = local
        if self.pending:
            out["staged"] = [c.as_dict() for c in self.model.staged_changes]
        return out

    def local(self, probes: Sequence[Dict]) -> List[Dict]:
        """Each host to its own workloads (WorkloadEndpoints whose spec.node is the host's node):
        the first packet leaves through the workload's interface, the workload's reply comes back
        established (Felix: always allowed, with any HostEndpoint and defaultEndpointToHostAction)."""
        out = []
        for node in sorted(self.model.workloads_by_node):
            plan = self.plan_of_node(node)
            if plan is None:
                continue
            # the host's own address: its first expectedIP of the family, else a documentation address
            host_ip = {4: "192.0.2.2", 6: "2001:db8::2"}
            for ip in reversed([ip for hep in self.model.heps_by_node.get(node, ()) for ip in hep.expected_ips]):
                host_ip[family_of(ip)] = ip
            for wep in self.model.workloads_by_node[node]:
                if not wep.ip_networks:
                    continue
                pod_ip = first_address(wep.ip_networks[0])
                iface = wep.interface_name or (plan.felix.interface_prefixes[0] + "0")
                for probe in probes:
                    if probe["protocol"] == "ICMP" and family_of(pod_ip) == 6 or \
                            probe["protocol"] == "ICMPv6" and family_of(pod_ip) == 4:
                        continue
                    pkt = probe_packet(host_ip[family_of(pod_ip)], pod_ip, probe)
                    out_v = self.evaluator.output(plan, iface, pkt)
                    reply = Packet(pkt.dst, pkt.src, pkt.protocol, sport=pkt.dport, dport=pkt.sport,
                                   icmp_type=ECHO_REPLY[family_of(pod_ip)] if pkt.icmp_type is not None else None,
                                   icmp_code=0 if pkt.icmp_type is not None else None)
                    back = self.evaluator.input(plan, iface, reply, ct=ESTABLISHED)
                    verdict = ALLOW if out_v.allowed and back.allowed else DENY
                    out.append({"node": node, "workload": "%s/%s" % (wep.namespace, wep.name),
                                "protocol": probe["protocol"], "port": probe.get("port"), "verdict": verdict,
                                "reason": "%s; reply: %s" % (out_v.reason, back.reason)})
        return out


_MD_BREAKS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]+")


def md(text: Any) -> str:
    """``text`` as the content of one Markdown table cell or list item: one line, with ``|`` and
    the characters that start code, links or HTML escaped (an inventory host name can hold any of
    them)."""
    text = _MD_BREAKS.sub(" ", str(text))
    return re.sub(r"([\\|`\[\]<>])", r"\\\1", text)


def _staged_name(policy: api.Policy) -> str:
    return policy.name if policy.namespace is None else "%s/%s" % (policy.namespace, policy.name)


def pending_changes(matrix: Dict) -> List[Dict]:
    """The cells whose pending verdict differs from the enforced one."""
    return [c for c in matrix.get("cells", ()) if c.get("pending") and c["pending"]["verdict"] != c["verdict"]]


def _word(verdict: str) -> str:
    return "allow" if verdict == ALLOW else "DENY"


def to_markdown(matrix: Dict, attribution: Optional[Dict[Tuple, List[str]]] = None) -> str:
    """Sources as rows, destination x probe as columns, numbered reasons below the table.  With
    pending verdicts, a cell that the staged policies would change reads ``allow [1] → DENY [4]``
    and a section lists, per staged policy, the cells it changes (``attribution``, from
    :class:`MatrixBuilder`; without it a change is attributed to the staged policy its pending
    reason names, else to all of them)."""
    probes = matrix["probes"]
    dests = sorted({c["destination"] for c in matrix["cells"]})
    sources = sorted({c["source"] for c in matrix["cells"]})
    by_key = {(c["source"], c["destination"], c["protocol"], c["port"]): c for c in matrix["cells"]}
    reasons: Dict[str, int] = {}
    cols = [(d, p) for d in dests for p in probes]
    staged = matrix.get("staged") or []
    changed = pending_changes(matrix)
    lines = ["# hostfw policy matrix", "",
             "Rows are traffic sources, columns destination host endpoints and probes. "
             "`allow`/`DENY` is the verdict for the first packet of a new connection; [n] is the reason below.", ""]
    if staged:
        lines += ["With the %d staged polic%s promoted, %d cell%s would change: such a cell reads "
                  "`allow [n] → DENY [m]` (now → once promoted); see \"Staged policies\" below." % (
                      len(staged), "y" if len(staged) == 1 else "ies", len(changed), "" if len(changed) == 1 else "s"),
                  ""]
    lines.append("| source | " + " | ".join("%s %s" % (md(d), md(probe_label(p))) for d, p in cols) + " |")
    lines.append("|---|" + "---|" * len(cols))
    for s in sources:
        row = []
        for d, p in cols:
            c = by_key.get((s, d, p["protocol"], p.get("port")))
            if c is None:
                row.append("")
                continue
            n = reasons.setdefault(c["reason"], len(reasons) + 1)
            text = "%s [%d]" % (_word(c["verdict"]), n)
            pend = c.get("pending")
            if pend and pend["verdict"] != c["verdict"]:
                m = reasons.setdefault(pend["reason"], len(reasons) + 1)
                text += " → %s [%d]" % (_word(pend["verdict"]), m)
            row.append(text)
        lines.append("| %s | %s |" % (md(s), " | ".join(row)))
    lines.append("")
    lines.append("Reasons:")
    lines.append("")
    for text, n in sorted(reasons.items(), key=lambda kv: kv[1]):
        lines.append("%d. %s" % (n, md(text)))
    if staged:
        lines += _staged_section(matrix, staged, changed, attribution)
    local = matrix.get("local") or []
    if local:
        lines += ["", "## Hosts to their own workloads", "",
                  "| node | workload | probe | verdict | reason |", "|---|---|---|---|---|"]
        for c in local:
            verdict = "allow" if c["verdict"] == ALLOW else "DENY"
            cells = (md(c["node"]), md(c["workload"]), md(probe_label(c)), verdict, md(c["reason"]))
            lines.append("| %s | %s | %s | %s | %s |" % cells)
    return "\n".join(lines) + "\n"


def _staged_section(matrix: Dict, staged: List[Dict], changed: List[Dict],
                    attribution: Optional[Dict[Tuple, List[str]]]) -> List[str]:
    lines = ["", "## Staged policies", "",
             "The pending world is the enforced world with every staged policy promoted: `Set` adds the policy "
             "to its tier or replaces the enforced policy of the same name, `Delete` removes that policy, "
             "`Learn` and `Ignore` change nothing.", "",
             "| kind | name | tier | stagedAction | cells it changes |", "|---|---|---|---|---|"]
    by_policy: Dict[str, List[Dict]] = {}
    for c in changed:
        key = (c["source"], c["destination"], c["protocol"], c["port"])
        if attribution is not None:
            names = attribution.get(key) or []
        else:
            names = [s["name"] for s in staged if "staged:%s " % s["name"].rsplit("/", 1)[-1] in c["pending"]["reason"]]
            names = names or [s["name"] for s in staged]
        for name in names:
            by_policy.setdefault(name, []).append(c)
    for s in staged:
        lines.append("| %s | %s | %s | %s | %d |" % (
            s["kind"], md(s["name"]), md(s["tier"]), md(s["stagedAction"]), len(by_policy.get(s["name"], ()))))
    for s in staged:
        cells = by_policy.get(s["name"])
        if not cells:
            continue
        lines += ["", "### %s %s (%s, tier %s)" % (s["kind"], md(s["name"]), md(s["stagedAction"]), md(s["tier"])), ""]
        for c in cells:
            lines.append("- %s → %s %s: %s → %s (%s)" % (
                md(c["source"]), md(c["destination"]), md(probe_label(c)), _word(c["verdict"]),
                _word(c["pending"]["verdict"]), md(c["pending"]["reason"])))
    if not changed:
        lines += ["", "Promoting the staged policies changes no cell of this matrix."]
    return lines
