# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The evaluator: Calico's verdict, with its reason, for one packet on one host.

It interprets a :class:`~model.HostPlan` the way Felix's chains do (docs/semantics.md §3.4, §4.4,
4.5, 5.3, 6): raw (doNotTrack) -> mangle (preDNAT) -> filter (normal, applyOnForward), with
conntrack, failsafes, tiers with Pass and default actions, profiles and the final drop.  It is
used for the policy matrix, for the failsafe and management-access proofs of the rollout, and as
the oracle of the dataplane tests (the kernel must agree with it).

A plan of the pending world (``Model.host_plan(host, pending=True)``) is evaluated the same way;
a rule of a staged policy is named ``policy staged:<name>`` in reasons.  Every verdict that a tier,
a profile, a failsafe or the default deny decides carries a :class:`Decider`, whose ``key`` names
the deciding point as the would-deny counters of the rendered shadow path do (docs/semantics.md §3.7).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from ansible_collections.hostfw.nftables.plugins.plugin_utils import api
from ansible_collections.hostfw.nftables.plugins.plugin_utils.addrset import family_of, parse_ip, parse_net
from ansible_collections.hostfw.nftables.plugins.plugin_utils.model import (
    EGRESS, FORWARD, INGRESS, NORMAL, PREDNAT, UNTRACKED, CompiledRule, EndpointPlan, HostPlan, Match, Model, Side)

ALLOW = "allow"
DENY = "deny"

NEW = "new"
ESTABLISHED = "established"
RELATED = "related"
INVALID = "invalid"


@dataclass(frozen=True)
class Packet:
    """One packet.  ``protocol`` is a number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6, 132 SCTP...)."""

    src: str
    dst: str
    protocol: int
    sport: Optional[int] = None
    dport: Optional[int] = None
    icmp_type: Optional[int] = None
    icmp_code: Optional[int] = None

    @property
    def family(self) -> int:
        return family_of(self.dst)

    @property
    def src_int(self) -> int:
        return parse_ip(self.src)[1]

    @property
    def dst_int(self) -> int:
        return parse_ip(self.dst)[1]

    def describe(self) -> str:
        proto = api.PROTOCOL_NAMES.get(self.protocol, str(self.protocol))
        if self.dport is not None:
            return "%s %s -> %s:%d" % (proto, self.src, self.dst, self.dport)
        if self.icmp_type is not None:
            return "%s %s -> %s type %d" % (proto, self.src, self.dst, self.icmp_type)
        return "%s %s -> %s" % (proto, self.src, self.dst)


CLASS_KEY_PREFIX = {NORMAL: "", UNTRACKED: "doNotTrack ", PREDNAT: "preDNAT ", FORWARD: "applyOnForward "}


@dataclass(frozen=True)
class Decider:
    """What decided a verdict: ``kind`` is ``rule`` (a policy rule; ``policy`` and ``index``),
    ``end-of-tier`` (``tier``), ``profile`` (``profile`` and ``index``), ``failsafe`` or
    ``default-deny``, in class ``cls`` and ``direction``."""

    kind: str
    cls: str
    direction: str
    action: str = ""  # Allow or Deny
    tier: Optional[str] = None
    policy: Optional[api.Policy] = None
    profile: Optional[str] = None
    index: int = -1

    @property
    def verdict(self) -> str:
        return ALLOW if self.action == "Allow" else DENY

    @property
    def key(self) -> str:
        """The deciding point in words, as the rendered shadow path's counters name it:
        ``<tier>/<policy> <direction>[<i>] <Action>`` (``staged:<policy>`` for a staged policy),
        ``end-of-tier <tier> <direction>``, ``profile <name> <direction>[<i>] <Action>``,
        ``failsafe <direction>`` or ``default-deny <direction>``; doNotTrack and preDNAT
        points start with their class."""
        return decider_key(self.kind, self.cls, self.direction, self.action, self.tier, self.policy, self.profile,
                           self.index)


def policy_label(policy: api.Policy) -> str:
    """A policy's name in reasons and counter names: ``staged:<name>`` for a staged policy."""
    return "staged:" + policy.name if policy.staged else policy.name


def decider_key(kind: str, cls: str, direction: str, action: str = "", tier: Optional[str] = None,
                policy: Optional[api.Policy] = None, profile: Optional[str] = None, index: int = -1) -> str:
    prefix = CLASS_KEY_PREFIX[cls]
    if kind == "rule":
        return "%s%s/%s %s[%d] %s" % (prefix, tier, policy_label(policy), direction, index, action)
    if kind == "end-of-tier":
        return "%send-of-tier %s %s" % (prefix, tier, direction)
    if kind == "profile":
        return "%sprofile %s %s[%d] %s" % (prefix, profile, direction, index, action)
    return "%s%s %s" % (prefix, kind, direction)


@dataclass
class Verdict:
    verdict: str  # "allow" or "deny"
    reason: str
    trace: List[str] = field(default_factory=list)
    notracked: bool = False  # an untracked (doNotTrack) Allow exempted the packet from conntrack
    decider: Optional[Decider] = None  # None: conntrack, an unpoliced interface, a workload, forwarding

    @property
    def allowed(self) -> bool:
        return self.verdict == ALLOW

    def as_dict(self):
        return {"verdict": self.verdict, "reason": self.reason}


# --------------------------------------------------------------------------------------------
# Matching
# --------------------------------------------------------------------------------------------

def _port_in(ranges, port: int) -> bool:
    for r in ranges:
        if r.first <= port <= r.last:
            return True
    return False


def _side_matches(side: Side, ip: int, proto: int, port: Optional[int]) -> bool:
    if side.nets is not None and ip not in side.nets.addrs:
        return False
    if side.not_nets is not None and ip in side.not_nets.addrs:
        return False
    if side.sel is not None and ip not in side.sel.addrs:
        return False
    if side.not_sel is not None and ip in side.not_sel.addrs:
        return False
    if side.ports or side.named is not None:
        if port is None:
            return False
        if not (_port_in(side.ports, port) or
                (side.named is not None and (ip, proto, port) in side.named.members)):
            return False
    if side.not_ports and port is not None and _port_in(side.not_ports, port):
        return False
    if side.not_named is not None and (ip, proto, port) in side.not_named.members:
        return False
    return True


def _icmp_matches(m: api.ICMPMatch, pkt: Packet) -> bool:
    if pkt.icmp_type is None or pkt.icmp_type != m.type:
        return False
    return m.code is None or pkt.icmp_code == m.code


def match_matches(m: Match, pkt: Packet) -> bool:
    if m.family is not None and m.family != pkt.family:
        return False
    if m.protocol is not None and pkt.protocol != m.protocol:
        return False
    if m.not_protocol is not None and pkt.protocol == m.not_protocol:
        return False
    if not _side_matches(m.src, pkt.src_int, pkt.protocol, pkt.sport):
        return False
    if not _side_matches(m.dst, pkt.dst_int, pkt.protocol, pkt.dport):
        return False
    if m.icmp is not None and m.icmp.type is not None and not _icmp_matches(m.icmp, pkt):
        return False
    if m.not_icmp is not None and m.not_icmp.type is not None and _icmp_matches(m.not_icmp, pkt):
        return False
    return True


def rule_matches(rule: CompiledRule, pkt: Packet) -> bool:
    return any(match_matches(m, pkt) for m in rule.variants)


def failsafe_entry(entries, pkt: Packet, *, port_of: str, net_of: str) -> Optional[api.FailsafeEntry]:
    """The first failsafe entry matching ``pkt``: protocol + (dport|sport) + optional net
    on (src|dst)."""
    proto = {6: "tcp", 17: "udp"}.get(pkt.protocol)
    if proto is None:
        return None
    port = pkt.dport if port_of == "dport" else pkt.sport
    ip = pkt.src if net_of == "src" else pkt.dst
    for e in entries:
        if e.protocol != proto or e.port != port:
            continue
        if e.net is not None:
            fam, a, b = parse_net(e.net)
            f2, v = parse_ip(ip)
            if fam != f2 or not a <= v <= b:
                continue
        return e
    return None


# --------------------------------------------------------------------------------------------
# The evaluator
# --------------------------------------------------------------------------------------------

class Evaluator:
    def __init__(self, model: Model):
        self.model = model

    # -- pieces ---------------------------------------------------------------------------

    def _tiers(self, ep: EndpointPlan, cls: str, direction: str, pkt: Packet, trace: List[str]):
        """Run the tiers of one class/direction.  Returns (action or None, reason, decider)."""
        prefix = CLASS_KEY_PREFIX[cls]
        last_reason = None
        for tp in ep.tiers_for(cls, direction):
            passed = False
            for policy in tp.policies:
                for rule in self.model.policy_rules(policy, direction):
                    if not rule_matches(rule, pkt):
                        continue
                    where = "%stier %s policy %s %s rule %d (%s)" % (
                        prefix, tp.name, policy_label(policy), direction, rule.index, rule.action)
                    trace.append(where)
                    if rule.action == "Log":
                        continue
                    if rule.action in ("Allow", "Deny"):
                        return rule.action, where, Decider("rule", cls, direction, rule.action, tp.name, policy,
                                                           index=rule.index)
                    passed = True  # Pass: leave this tier
                    last_reason = where
                    break
                if passed:
                    break
            if passed:
                continue
            if tp.default_action == "Deny":
                return ("Deny", "%send of tier %s (defaultAction Deny)" % (prefix, tp.name),
                        Decider("end-of-tier", cls, direction, "Deny", tp.name))
            last_reason = "%send of tier %s (defaultAction Pass)" % (prefix, tp.name)
            trace.append(last_reason)
        return None, last_reason, None

    def _profiles(self, ep: EndpointPlan, direction: str, pkt: Packet, trace: List[str]):
        for prof in ep.profiles:
            for rule in self.model.profile_rules(prof, direction):
                if not rule_matches(rule, pkt):
                    continue
                where = "profile %s %s rule %d (%s)" % (prof.name, direction, rule.index, rule.action)
                trace.append(where)
                if rule.action == "Log":
                    continue
                if rule.action in ("Allow", "Deny"):
                    return rule.action, where, Decider("profile", NORMAL, direction, rule.action, profile=prof.name,
                                                       index=rule.index)
                break  # Pass: next profile
        return None, None, None

    def _normal(self, plan: HostPlan, ep: EndpointPlan, direction: str, pkt: Packet, ct: str,
                trace: List[str]) -> Verdict:
        """A normal (filter) endpoint chain: conntrack, failsafe, tiers, profiles, drop."""
        if ct in (ESTABLISHED, RELATED):
            return Verdict(ALLOW, "established connection", trace)
        if ct == INVALID and not plan.felix.disable_conntrack_invalid_check:
            return Verdict(DENY, "conntrack state invalid", trace)
        if direction == INGRESS:
            fs = failsafe_entry(plan.felix.failsafe_inbound, pkt, port_of="dport", net_of="src")
            if fs is not None:
                return Verdict(ALLOW, "failsafe inbound %s" % fs, trace, decider=Decider("failsafe", NORMAL, direction,
                                                                                         "Allow"))
        else:
            fs = failsafe_entry(plan.felix.failsafe_outbound, pkt, port_of="dport", net_of="dst")
            if fs is not None:
                return Verdict(ALLOW, "failsafe outbound %s" % fs, trace, decider=Decider("failsafe", NORMAL, direction,
                                                                                          "Allow"))
        action, reason, decider = self._tiers(ep, NORMAL, direction, pkt, trace)
        if action == "Allow":
            return Verdict(ALLOW, reason, trace, decider=decider)
        if action == "Deny":
            return Verdict(DENY, reason, trace, decider=decider)
        paction, preason, pdecider = self._profiles(ep, direction, pkt, trace)
        if paction == "Allow":
            return Verdict(ALLOW, preason, trace, decider=pdecider)
        if paction == "Deny":
            return Verdict(DENY, preason, trace, decider=pdecider)
        if reason:
            why = "%s, then no profile allowed (default deny of host endpoint %s)" % (reason, ep.hep.name)
        elif ep.profiles:
            why = "no profile of host endpoint %s allowed (default deny)" % ep.hep.name
        else:
            why = "no policy applies to host endpoint %s %s (default deny)" % (ep.hep.name, direction)
        return Verdict(DENY, why, trace, decider=Decider("default-deny", NORMAL, direction, "Deny"))

    def _raw(self, plan: HostPlan, iface: str, direction: str, pkt: Packet, trace: List[str]):
        """doNotTrack stage.  Returns a final Verdict (Allow/Deny) or None to continue."""
        ep = None
        for e in plan.named():
            if e.iface == iface:
                ep = e
        if ep is None or not ep.tiers_for(UNTRACKED, direction):
            return None
        if direction == INGRESS:
            fs = (failsafe_entry(plan.felix.failsafe_inbound, pkt, port_of="dport", net_of="src")
                  or failsafe_entry(plan.felix.failsafe_outbound, pkt, port_of="sport", net_of="src"))
        else:
            fs = (failsafe_entry(plan.felix.failsafe_outbound, pkt, port_of="dport", net_of="dst")
                  or failsafe_entry(plan.felix.failsafe_inbound, pkt, port_of="sport", net_of="dst"))
        if fs is not None:
            trace.append("doNotTrack stage: failsafe %s" % fs)
            return None
        action, reason, decider = self._tiers(ep, UNTRACKED, direction, pkt, trace)
        if action == "Allow":
            return Verdict(ALLOW, reason, trace, notracked=True, decider=decider)
        if action == "Deny":
            return Verdict(DENY, reason, trace, decider=decider)
        return None

    def _prednat(self, plan: HostPlan, iface: str, pkt: Packet, ct: str, trace: List[str]):
        # Felix's mangle dispatch lists only endpoints with preDNAT policy; its default, the "*"
        # endpoint, has no workload exclusion (§4.4, §7.3).
        ep = None
        for e in plan.named():
            if e.iface == iface and e.tiers_for(PREDNAT, INGRESS):
                ep = e
        if ep is None:
            ep = plan.wildcard
        if ep is None or not ep.tiers_for(PREDNAT, INGRESS):
            return None
        if ct in (ESTABLISHED, RELATED):
            return None
        if ct == INVALID and not plan.felix.disable_conntrack_invalid_check:
            return Verdict(DENY, "preDNAT: conntrack state invalid", trace)
        fs = failsafe_entry(plan.felix.failsafe_inbound, pkt, port_of="dport", net_of="src")
        if fs is not None:
            trace.append("preDNAT stage: failsafe inbound %s" % fs)
            return None
        action, reason, decider = self._tiers(ep, PREDNAT, INGRESS, pkt, trace)
        if action == "Allow":
            return Verdict(ALLOW, reason, trace, decider=decider)
        if action == "Deny":
            return Verdict(DENY, reason, trace, decider=decider)
        return None

    # -- paths ----------------------------------------------------------------------------

    def input(self, plan: HostPlan, iface: str, pkt: Packet, ct: str = NEW) -> Verdict:
        """A packet arriving on ``iface`` for a local process."""
        trace: List[str] = []
        workload = plan.is_workload_iface(iface)
        if not workload:
            v = self._raw(plan, iface, INGRESS, pkt, trace)
            if v is not None:
                return v
        v = self._prednat(plan, iface, pkt, ct, trace)
        if v is not None and not (workload and v.allowed):
            return v
        if workload:
            # A preDNAT Allow does not skip it: Felix's filter INPUT sends cali+ to the
            # workload-to-host chain before it looks at the accept mark.
            # Felix's cali-wl-to-host: the ICMPv6 allowance, then the workload's own chain (whose
            # conntrack rules accept replies, e.g. of the host's connections to its pods, and drop
            # invalid packets), then DefaultEndpointToHostAction (§6).
            if pkt.protocol == 58 and pkt.icmp_type in api.WORKLOAD_ICMPV6_TYPES:
                return Verdict(ALLOW, "workload to host: ICMPv6 type %d (MLD or neighbour discovery) is always "
                               "allowed" % pkt.icmp_type, trace)
            if ct in (ESTABLISHED, RELATED):
                return Verdict(ALLOW, "workload to host: established connection (the workload's conntrack rules "
                               "come before defaultEndpointToHostAction)", trace)
            if ct == INVALID and not plan.felix.disable_conntrack_invalid_check:
                return Verdict(DENY, "workload to host: conntrack state invalid", trace)
            action = plan.felix.default_endpoint_to_host_action
            verdict = DENY if action == "Drop" else ALLOW
            return Verdict(verdict, "workload to host: defaultEndpointToHostAction %s" % action, trace)
        ep = plan.endpoint_for_iface(iface)
        if ep is None:
            return Verdict(ALLOW, "interface %s has no host endpoint (not policed)" % iface, trace)
        return self._normal(plan, ep, INGRESS, pkt, ct, trace)

    def output(self, plan: HostPlan, iface: str, pkt: Packet, ct: str = NEW, dnat: bool = False) -> Verdict:
        """A packet from a local process leaving through ``iface`` (``dnat``: DNAT'd by NAT
        output, e.g. to a Service; then egress policy runs at postrouting)."""
        trace: List[str] = []
        v = self._raw(plan, iface, EGRESS, pkt, trace)
        if v is not None:
            return v
        if plan.is_workload_iface(iface):
            return Verdict(ALLOW, "host to local workload (always allowed)", trace)
        ep = plan.endpoint_for_iface(iface)
        if ep is None:
            return Verdict(ALLOW, "interface %s has no host endpoint (not policed)" % iface, trace)
        return self._normal(plan, ep, EGRESS, pkt, ct, trace)

    def forward(self, plan: HostPlan, in_iface: str, out_iface: str, pkt: Packet, ct: str = NEW) -> Verdict:
        """A packet routed through the host from ``in_iface`` to ``out_iface``."""
        trace: List[str] = []
        accepted = None
        if not plan.is_workload_iface(in_iface):
            v = self._raw(plan, in_iface, INGRESS, pkt, trace)
            if v is not None and not v.allowed:
                return v
            accepted = v
        if accepted is None:
            v = self._prednat(plan, in_iface, pkt, ct, trace)
            if v is not None and not v.allowed:
                return v
            accepted = v
        reasons = []
        if accepted is None:
            ep = self._forward_ep(plan, in_iface)
            if ep is not None:
                v = self._forward_chain(plan, ep, INGRESS, pkt, ct, trace)
                if v is not None:
                    if not v.allowed or v.reason == "established connection":
                        return v
                    reasons.append(v.reason)
        else:
            reasons.append(accepted.reason)
        ep = self._forward_ep(plan, out_iface)
        if ep is not None:
            v = self._forward_chain(plan, ep, EGRESS, pkt, ct, trace)
            if v is not None:
                if not v.allowed:
                    return v
                reasons.append(v.reason)
        if not reasons:
            reasons.append("forwarded traffic not policed (no applyOnForward verdict)")
        return Verdict(ALLOW, "; ".join(reasons), trace)

    @staticmethod
    def _forward_ep(plan: HostPlan, iface: str) -> Optional[EndpointPlan]:
        for e in plan.named():
            if e.iface == iface:
                return e
        return plan.wildcard

    def _forward_chain(self, plan: HostPlan, ep: EndpointPlan, direction: str, pkt: Packet, ct: str,
                       trace: List[str]) -> Optional[Verdict]:
        if ct in (ESTABLISHED, RELATED):
            return Verdict(ALLOW, "established connection", trace)
        if ct == INVALID and not plan.felix.disable_conntrack_invalid_check:
            return Verdict(DENY, "conntrack state invalid", trace)
        if not ep.has_forward_tiers:
            return Verdict(ALLOW, "forwarded traffic allowed by default (no applyOnForward policy on %s)"
                           % ep.hep.name, trace)
        action, reason, decider = self._tiers(ep, FORWARD, direction, pkt, trace)
        if action == "Allow":
            return Verdict(ALLOW, reason, trace, decider=decider)
        if action == "Deny":
            return Verdict(DENY, reason, trace, decider=decider)
        return None
