# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""nftables rendering: a :class:`~model.HostPlan` -> the text of ``table inet hostfw``.

The plan is first turned into a small intermediate form (:class:`Table`: named sets and chains
of ``(expression, comment)`` rules), which a Jinja2 template prints.  Layout (docs/semantics.md §7):

* base chains ``raw-prerouting``/``raw-output`` (priority raw: clear our mark bits, doNotTrack
  dispatch), ``mangle-prerouting`` (priority mangle: preDNAT dispatch), ``filter-input``,
  ``filter-output``, ``filter-forward`` (priority filter) and ``mangle-postrouting`` (priority
  mangle: egress policy of DNAT'd host traffic); all ``policy accept``: we only ever drop traffic
  of host-endpoint interfaces, and interfaces without an endpoint are not touched;
* interface dispatch through verdict maps; the ``*`` endpoint is the default branch;
* one chain per endpoint, class and direction: conntrack, failsafes, tiers, profiles, drop;
* one chain per policy, direction and mode, shared by every endpoint that uses it; Allow and
  Deny are direct verdicts, Pass sets the pass bit and returns (the endpoint chain skips the rest
  of the tier), Log logs (rate-limited) and continues;
* selectors, net lists and named ports are named sets shared by every rule that uses them.

Mark bits (``meta mark``): ACCEPT carries an Allow of doNotTrack/preDNAT policy to later hooks
(and the Allow of an applyOnForward ingress chain to the forward egress half); PASS implements
Pass; FWD tells postrouting that a packet was forwarded.

The shadow path (only when asked for, and only on a host whose pending plan differs from its
enforced plan; docs/semantics.md §3.7): base chains ``pending-b-input``/``pending-b-output`` at
priority -5 and ``pending-a-input``/``pending-a-output`` at priority 5 on the same hooks evaluate
the pending world for the first packet of each new tracked connection (``ct state new``), before
and after this table's filter chains (priority 0).  Every deciding point ends in
``counter return comment "hostfw-pending:<b|a> <key>"`` (key: :attr:`evaluate.Decider.key`);
nothing in it accepts, drops, rejects, marks or untracks a packet, and a base chain's end (or a
``return`` reached only through ``goto``) lets the packet go on to the next base chain, so the
enforced chains decide exactly as without it.  ``b`` counts every new connection, ``a`` those
this table's filter chain accepted: the report reads "would deny, allowed today" from ``a``.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import jinja2

from ansible_collections.hostfw.nftables.plugins.plugin_utils import api
from ansible_collections.hostfw.nftables.plugins.plugin_utils.addrset import family_of, int_to_ip
from ansible_collections.hostfw.nftables.plugins.plugin_utils.evaluate import decider_key, policy_label
from ansible_collections.hostfw.nftables.plugins.plugin_utils.felix import rule_text_key
from ansible_collections.hostfw.nftables.plugins.plugin_utils.model import (
    EGRESS, FORWARD, INGRESS, NORMAL, PREDNAT, UNTRACKED, WILDCARD, AddrRef, CompiledRule, EndpointPlan, HostPlan,
    Match, Model, NamedPortRef, Side, TierPlan, short_hash)

TABLE = "hostfw"
MARK_ACCEPT = 0x10000
MARK_PASS = 0x20000
MARK_FWD = 0x40000
MARK_ALL = MARK_ACCEPT | MARK_PASS | MARK_FWD
MASK_32 = 0xFFFFFFFF

# nft keywords only: other names (ipv6-icmp) are looked up in /etc/protocols, which minimal hosts lack.
PROTO_NAMES = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmpv6", 132: "sctp", 136: "udplite"}
PORT_PROTO_NAMES = {6: "tcp", 17: "udp", 132: "sctp"}
DEFAULT_LOG_LIMIT = "10/second burst 20 packets"

# Policy chain modes: how Allow is rendered in each class.
MODE_FILTER = "filter"
MODE_FORWARD = "forward"
MODE_RAW = "raw"
MODE_MANGLE = "mangle"
# Normal egress again, for DNAT'd host traffic at postrouting, where nftables cannot reject: only
# built when the deny action is Reject (otherwise postrouting reuses the normal egress chains).
MODE_POST = "post"
MODE_PREFIX = {MODE_FILTER: "", MODE_FORWARD: "fwd-", MODE_RAW: "raw-", MODE_MANGLE: "pre-", MODE_POST: "post-"}
MODE_LABEL = {MODE_FILTER: "normal", MODE_FORWARD: "applyOnForward", MODE_RAW: "doNotTrack", MODE_MANGLE: "preDNAT",
              MODE_POST: "normal, DNAT'd host traffic at postrouting"}
CLASS_MODE = {NORMAL: MODE_FILTER, FORWARD: MODE_FORWARD, UNTRACKED: MODE_RAW, PREDNAT: MODE_MANGLE}
ENDPOINT_PREFIX = {NORMAL: "hep", FORWARD: "hep-fwd", UNTRACKED: "hep-raw", PREDNAT: "hep-pre"}
ENDPOINT_LABEL = {NORMAL: "normal", FORWARD: "forwarded", UNTRACKED: "doNotTrack", PREDNAT: "preDNAT"}
DIR_SHORT = {INGRESS: "in", EGRESS: "out"}


def _mark(bits: int) -> str:
    return "0x%08x" % bits


def _usage_mode(mode: str) -> str:
    """The mode a policy's use is counted under (``_HostRenderer.usage``): the postrouting copy
    of normal egress is counted as normal egress."""
    return MODE_FILTER if mode == MODE_POST else mode


def _clear(bits: int) -> str:
    return "meta mark set meta mark & %s" % _mark(MASK_32 & ~bits)


# Control characters (C0 with NUL, DEL, C1 with U+0085), the Unicode line and paragraph
# separators and lone surrogates (not encodable as UTF-8): a comment is one line of printable text.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]+")
COMMENT_MAX = 127  # bytes of a rule comment (nft keeps at most 128 with the terminating NUL)
LOG_PREFIX_MAX = 126  # bytes of a log prefix (nft 1.0.9 refuses 127)

# The shadow path (module docstring): its counters' comments start with PENDING_MARK + phase.
PENDING_MARK = "hostfw-pending:"
PHASE_ALL = "b"  # every new connection, before this table's filter chains
PHASE_ALLOWED = "a"  # new connections this table's filter chain accepted
SHADOW_PRIORITY = {PHASE_ALL: -5, PHASE_ALLOWED: 5}
SHADOW_COUNT = "count"
SHADOW_LOG = "log"  # counters, and a rate-limited log of every would-deny of an allowed connection
PENDING_LOG_PREFIX = "hostfw-pending"


def comment(text: str, limit: Optional[int] = COMMENT_MAX) -> str:
    """The one escaping function of every comment hostfw writes, in rule comments
    (``comment "..."``) and in ``#`` comment lines: control characters and line separators become a
    space, double quotes become single quotes, and with ``limit`` the text is cut to that many
    bytes (UTF-8, never inside a character), ending in "..." when cut."""
    text = _UNPRINTABLE.sub(" ", text).replace('"', "'")
    return truncate(text, limit) if limit is not None else text


def truncate(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` UTF-8 bytes, ending in "..." when cut."""
    raw = text.encode("utf-8")
    if len(raw) <= limit:
        return text
    return raw[:limit - 3].decode("utf-8", "ignore") + "..."


@dataclass
class NftSet:
    name: str
    type: str
    interval: bool
    comment: str
    elements: List[str]
    text: Optional[str] = None  # rendered once, shared by every host that uses the set


@dataclass
class NftRule:
    expr: str
    comment: Optional[str] = None
    _line: Optional[str] = None

    @property
    def line(self) -> str:
        """The rule as printed, formatted once (rules of shared and inlined policies are reused)."""
        if self._line is None:
            self._line = self.expr + (' comment "%s"' % self.comment if self.comment else "")
        return self._line


@dataclass
class NftChain:
    name: str
    hook: Optional[str] = None  # "type filter hook input priority filter; policy accept;"
    comment: Optional[str] = None
    rules: List[NftRule] = field(default_factory=list)
    text: Optional[str] = None  # rendered once (shared policy and profile chains)

    def add(self, expr: str, note: Optional[str] = None) -> None:
        self.rules.append(NftRule(expr, comment(note) if note else None))

    def note(self, text: str) -> None:
        """A ``#`` comment line in the chain (kept by nft -f, never loaded into the kernel)."""
        self.rules.append(NftRule("# " + comment(text)))


@dataclass
class Table:
    header: List[str]
    sets: List[NftSet]
    chains: List[NftChain]


# Sets and chains carry their description as a "#" line: nft before 0.9.8 (Ubuntu 20.04, RHEL 8)
# refuses set and chain comments; rule comments work everywhere.
SET_TEMPLATE = """\
\t# {{ s.comment }}
\tset {{ s.name }} {
\t\ttype {{ s.type }}
{%- if s.interval %}
\t\tflags interval
{%- endif %}
{%- if s.elements %}
\t\telements = {
{%- for e in s.elements %}
\t\t\t{{ e }}{{ "," if not loop.last }}
{%- endfor %}
\t\t}
{%- endif %}
\t}
"""

TABLE_TEMPLATE = """\
{% for line in header -%}
# {{ line }}
{% endfor -%}
table inet {{ name }}
delete table inet {{ name }}
table inet {{ name }} {
{{ body | join("\n") }}}
"""

_ENV = jinja2.Environment(autoescape=False, keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
_SET = _ENV.from_string(SET_TEMPLATE)
_TABLE = _ENV.from_string(TABLE_TEMPLATE)


def _addr_set(ref: AddrRef, family: int) -> NftSet:
    """An address set.  ``flags interval`` (an rbtree in the kernel) only when an element is a
    prefix: a set of single addresses is a hash set, which loads several times faster (a
    network set of 100,000 host addresses) and matches the same packets."""
    elements = ref.addrs.elements()
    interval = any("/" in e for e in elements)
    return NftSet(ref.name, "ipv4_addr" if family == 4 else "ipv6_addr", interval, comment(ref.comment, None),
                  elements)


def set_text(s: "NftSet") -> str:
    if s.text is None:
        s.text = _SET.render(s=s)
    return s.text


def chain_text(c: "NftChain") -> str:
    """A chain as printed.  Chains are the per-host part of a table, so they are joined directly
    (a template render per chain costs more than the rest of the host); the table skeleton and the
    sets, rendered once and shared, go through the Jinja2 templates."""
    if c.text is None:
        lines = ["\t# " + c.comment] if c.comment else []
        lines.append("\tchain %s {" % c.name)
        if c.hook:
            lines.append("\t\t" + c.hook)
        lines.extend("\t\t" + r.line for r in c.rules)
        lines.append("\t}\n")
        c.text = "\n".join(lines)
    return c.text


CHAIN_NAME_MAX = 255  # nft keeps 256 bytes with the terminating NUL


def chain_name(name: str) -> str:
    """``name``, or when it is longer than nft allows (a valid Calico profile of 247+ characters, a
    tiered policy of 185+), its first part and a stable hash of the whole; the chain's ``#``
    description keeps the full name."""
    if len(name) <= CHAIN_NAME_MAX:
        return name
    return name[:CHAIN_NAME_MAX - 12] + "-h" + short_hash(name, 10)


def stable_order(parts: List[str], protocol: Optional[int]) -> List[str]:
    """The match expressions of one rule in an order that every nft version from 0.9.3 lists, and
    lists again after loading its own listing, identically.  nft 0.9.8 and older list
    ``meta l4proto tcp ip saddr @s tcp dport 22`` as ``meta nfproto ipv4 ip saddr @s tcp dport 22``,
    which lists as ``ip saddr @s tcp dport 22`` once loaded again.  So ``meta l4proto P`` is left
    out where a header match of P follows (``tcp dport ...`` implies it), and otherwise comes after
    the address matches, as do protocol negations."""
    proto = [p for p in parts if p.startswith("meta l4proto ") and not p.startswith("meta l4proto .")]
    if not proto:
        return parts
    rest = [p for p in parts if p not in proto]
    name = PROTO_NAMES.get(protocol) if protocol is not None else None
    if name is not None and any(p.startswith(name + " ") for p in rest):
        proto = [p for p in proto if p != "meta l4proto " + name]
    last_address = max((i for i, p in enumerate(rest) if p.startswith(("ip ", "ip6 "))), default=-1)
    return rest[:last_address + 1] + proto + rest[last_address + 1:]


class Renderer:
    """Renders host plans of one model.  Shares policy-chain and set text across hosts."""

    def __init__(self, model: Model):
        self.model = model
        # Policy and profile chains (with the sets they use) are built once per model and shared
        # by every host: per-host work is the endpoint chains and a join of cached text.
        self.shared_chains: Dict[Tuple, Tuple[NftChain, Dict[str, NftSet]]] = {}
        self.shared_sets: Dict[str, NftSet] = {}
        self.inlined_rules: Dict[Tuple, List[NftRule]] = {}
        self.tier_sections: Dict[Tuple, Tuple] = {}
        self.shadow_exprs: Dict[Tuple, Tuple] = {}  # the shadow path's match expressions per rule
        # Hosts alike (same Felix settings, same interfaces, same tiers and profiles per
        # endpoint) have tables that differ only in the host, node and endpoint names: the table
        # is rendered once per shape with placeholders, and per host the names are joined in.
        self.shapes: Dict[Tuple, _Shape] = {}
        # The names in a shape's stand-in plan: a random token per renderer, so that no input
        # (a selector, an annotation, a name) can contain one.
        self.slot = "hfslot%s" % secrets.token_hex(8)
        self.slot_re = re.compile(self.slot + "([0-9]+)z")

    def slot_name(self, number: int) -> str:
        return "%s%dz" % (self.slot, number)

    # -- public -----------------------------------------------------------------------------

    def render(self, plan: HostPlan, pending: Optional[HostPlan] = None, shadow: Optional[str] = None) -> str:
        """The table of one host.  ``pending`` (the host's plan in the pending world) and
        ``shadow`` (SHADOW_COUNT or SHADOW_LOG) add the shadow path when the pending plan differs
        from ``plan`` (:func:`shadow_directions`); without them the table is what it always was."""
        if pending is None or shadow is None or not shadow_directions(plan, pending):
            pending = shadow = None
        key = (plan.felix, tuple((ep.iface, id(ep.tiers), id(ep.profiles)) for ep in plan.endpoints),
               tuple((w.namespace, w.name) for w in plan.workloads))
        keep = tuple((ep.tiers, ep.profiles) for ep in plan.endpoints)
        if pending is not None:
            key += (shadow, tuple(id(ep.tiers) for ep in pending.endpoints))
            keep += tuple((ep.tiers, ep.profiles) for ep in pending.endpoints)
        shape = self.shapes.get(key)
        if shape is None:
            # First host of its shape: render it directly and only remember the shape, so that a
            # fleet of all-different hosts keeps no templates.  The second one builds the template.
            self.shapes[key] = _Shape(None, -1, keep)
            return self.render_direct(plan, pending, shadow)
        if shape.budget == -1:
            shape = _Shape.of(self, plan, pending, shadow)
            self.shapes[key] = shape
        names = (plan.host, plan.node) + tuple(ep.hep.name for ep in plan.endpoints)
        text = shape.fill(names)
        return text if text is not None else self.render_direct(plan, pending, shadow)

    def render_direct(self, plan: HostPlan, pending: Optional[HostPlan] = None, shadow: Optional[str] = None) -> str:
        """The table text, built for this host alone (no shape cache)."""
        table = self.table(plan, pending, shadow)
        body = [set_text(s) for s in table.sets] + [chain_text(c) for c in table.chains]
        text = _TABLE.render(header=table.header, name=TABLE, body=body)
        if self.slot in text and plan.host != self.slot_name(0):
            # a shape placeholder leaked into a shared cache: a bug, never a table to load
            raise AssertionError("hostfw render: placeholder in the table of host %s" % plan.host)
        return text

    def table(self, plan: HostPlan, pending: Optional[HostPlan] = None, shadow: Optional[str] = None) -> Table:
        sets, chains, summary = _HostRenderer(self.model, plan, self, pending, shadow).build()
        header = ["hostfw.nftables: the firewall of host %s (node %s). Generated; do not edit." % (plan.host, plan.node),
                  "Load with: nft -f <this file>  (replaces table inet %s atomically, touches no other table)" % TABLE]
        header += summary
        return Table([comment(line, None) for line in header], sets, chains)


_COMMENT_RE = re.compile(r'comment "([^"]*)"')
_PLAIN_NAME_RE = re.compile(r"[A-Za-z0-9._:@+-]+\Z")


class _StandIn:
    """A host endpoint that is only a name (the renderer reads nothing else of it)."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name


class _Shape:
    """The table of a host shape with the names as slots: ``parts`` alternates text and slot
    numbers (0 host, 1 node, 2+i the i-th endpoint's HostEndpoint name).  ``budget`` -1: seen
    once, no template yet.

    Filling the slots gives exactly what rendering the host directly gives, because the
    renderer only formats the names into lines and comments, and ``comment()`` changes a
    comment only for control characters, double quotes and length: names are used only when
    they are plain (letters, digits, ``._:@+-``) and short enough that no rule comment holding
    one can reach the 127-byte limit (``budget``).  Any other host is rendered directly."""

    __slots__ = ("parts", "budget", "keep")

    def __init__(self, parts, budget, keep):
        self.parts = parts
        self.budget = budget
        self.keep = keep  # the tiers and profiles whose id() is in the key stay alive

    @classmethod
    def of(cls, renderer: "Renderer", plan: HostPlan, pending: Optional[HostPlan] = None,
           shadow: Optional[str] = None) -> "_Shape":
        keep = tuple((ep.tiers, ep.profiles) for ep in plan.endpoints)
        stand = HostPlan(renderer.slot_name(0), renderer.slot_name(1),
                         tuple(EndpointPlan(_StandIn(renderer.slot_name(2 + i)), ep.iface, ep.tiers, ep.profiles)
                               for i, ep in enumerate(plan.endpoints)), plan.felix, workloads=plan.workloads)
        stand_pending = None
        if pending is not None:
            keep += tuple((ep.tiers, ep.profiles) for ep in pending.endpoints)
            stand_pending = HostPlan(stand.host, stand.node, tuple(
                EndpointPlan(_StandIn(renderer.slot_name(2 + i)), ep.iface, ep.tiers, ep.profiles)
                for i, ep in enumerate(pending.endpoints)), pending.felix, workloads=pending.workloads)
        text = renderer.render_direct(stand, stand_pending, shadow)
        pieces = renderer.slot_re.split(text)
        slots = (len(pieces) - 1) // 2
        if text.count(renderer.slot) != slots:
            return cls(None, 0, keep)  # a slot cut by truncation
        budget = 1 << 30
        for m in _COMMENT_RE.finditer(text):
            body = m.group(1)
            count = body.count(renderer.slot)
            if count:
                if len(body.encode("utf-8")) >= COMMENT_MAX:
                    return cls(None, 0, keep)  # maybe truncated already: filling could differ
                fixed = len(renderer.slot_re.sub("", body).encode("utf-8"))
                budget = min(budget, (COMMENT_MAX - fixed) // count)  # never truncated when filled
        parts = [int(p) if i % 2 else p for i, p in enumerate(pieces)]
        return cls(parts, budget, keep)

    def fill(self, names: Tuple[str, ...]) -> Optional[str]:
        if self.parts is None:
            return None
        for name in names:
            if len(name) > self.budget or not _PLAIN_NAME_RE.match(name):
                return None
        return "".join([names[p] if i % 2 else p for i, p in enumerate(self.parts)])


class _HostRenderer:
    def __init__(self, model: Model, plan: HostPlan, shared: Optional[Renderer] = None,
                 pending: Optional[HostPlan] = None, shadow: Optional[str] = None):
        self.model = model
        self.shared = shared
        self.plan = plan
        self.pending = pending  # the pending plan, for the shadow path (with ``shadow``)
        self.shadow = shadow
        self.felix = plan.felix
        # The Felix settings that change the text of policy and profile rules (felix.SETTINGS
        # rule_text).  Part of every shared-cache key: hosts whose FelixConfiguration differs in
        # them (a ``node.<name>`` override) must not share rules.
        self.verdict_key = rule_text_key(plan.felix)
        # nftablesFilterDenyAction / iptablesFilterDenyAction: Felix's verdict for every Deny rule,
        # end-of-tier drop and final drop of an endpoint.
        self.reject = plan.felix.deny_action == "Reject"
        self.sets: Dict[str, NftSet] = {}
        self.policy_chains: Dict[str, NftChain] = {}
        self.profile_chains: Dict[str, NftChain] = {}
        self.endpoint_chains: List[NftChain] = []
        self.built_endpoint_chains = set()
        # How many endpoint chains of this table use each (policy, direction, mode).
        self.usage: Dict[Tuple, int] = {}
        for ep in plan.endpoints:
            for (cls, direction), tiers in ep.tiers:
                for tp in tiers:
                    for p in tp.policies:
                        key = (p.kind, p.namespace, p.name, direction, CLASS_MODE[cls])
                        self.usage[key] = self.usage.get(key, 0) + 1
        self.uses_accept_mark = False

    # -- sets -------------------------------------------------------------------------------

    def _addr(self, ref: AddrRef, family: int) -> str:
        if ref.name is None:
            return ref.addrs.elements()[0]
        if ref.name not in self.sets:
            self.sets[ref.name] = self._shared_set(ref.name, lambda: _addr_set(ref, family))
        return "@" + ref.name

    def _shared_set(self, name, make):
        if self.shared is None:
            return make()
        hit = self.shared.shared_sets.get(name)
        if hit is None:
            hit = make()
            self.shared.shared_sets[name] = hit
        return hit

    def _named(self, ref: NamedPortRef) -> str:
        if ref.name not in self.sets:
            self.sets[ref.name] = self._shared_set(ref.name, lambda: NftSet(
                ref.name, "%s . inet_proto . inet_service" % ("ipv4_addr" if ref.family == 4 else "ipv6_addr"),
                False, comment(ref.comment, None),
                ["%s . %s . %d" % (int_to_ip(ref.family, ip), PROTO_NAMES.get(proto, str(proto)), port)
                 for ip, proto, port in sorted(ref.members)]))
        return "@" + ref.name

    # -- rule expressions ---------------------------------------------------------------------

    @staticmethod
    def _ports(ranges) -> str:
        items = [str(r) for r in ranges]
        return items[0] if len(items) == 1 else "{ %s }" % ", ".join(items)

    def _side_alternatives(self, side: Side, family: Optional[int], protocol: Optional[int], which: str) -> List[List[str]]:
        """Expressions for one side; several alternatives when numeric and named ports are OR-ed.
        An alternative that needs an address in an empty set can never match and is left out."""
        if any(ref is not None and not ref.addrs for ref in (side.nets, side.sel)):
            return []
        ipk = "ip" if family == 4 else "ip6"
        addr = "%s %saddr" % (ipk, "s" if which == "src" else "d")
        port_field = "sport" if which == "src" else "dport"
        base: List[str] = []
        if side.nets is not None:
            base.append("%s %s" % (addr, self._addr(side.nets, family)))
        if side.sel is not None:
            base.append("%s %s" % (addr, self._addr(side.sel, family)))
        neg: List[str] = []
        pname = PORT_PROTO_NAMES.get(protocol, "th")
        if side.not_ports:
            neg.append("%s %s != %s" % (pname, port_field, self._ports(side.not_ports)))
        if side.not_named is not None:
            neg.append("%s . meta l4proto . th %s != %s" % (addr, port_field, self._named(side.not_named)))
        if side.not_nets is not None:
            neg.append("%s != %s" % (addr, self._addr(side.not_nets, family)))
        if side.not_sel is not None:
            neg.append("%s != %s" % (addr, self._addr(side.not_sel, family)))
        if not side.ports and side.named is None:
            return [base + neg]
        alts = []
        if side.ports:
            alts.append(base + ["%s %s %s" % (pname, port_field, self._ports(side.ports))] + neg)
        if side.named is not None and side.named.members:
            extra = ["%s %s != %s" % (pname, port_field, self._ports(side.ports))] if side.ports else []
            alts.append(base + ["%s . meta l4proto . th %s %s" % (addr, port_field, self._named(side.named))]
                        + extra + neg)
        return alts

    def match_exprs(self, m: Match) -> List[str]:
        """One or more nft match expressions (OR-ed) for a rule variant."""
        head: List[str] = []
        if m.protocol is not None:
            head.append("meta l4proto %s" % PROTO_NAMES.get(m.protocol, str(m.protocol)))
        if m.not_protocol is not None:
            head.append("meta l4proto != %s" % PROTO_NAMES.get(m.not_protocol, str(m.not_protocol)))
        icmp: List[str] = []
        icmpk = "icmpv6" if (m.protocol == 58 or m.family == 6) else "icmp"
        if m.icmp is not None and m.icmp.type is not None:
            icmp.append("%s type %d" % (icmpk, m.icmp.type))
            if m.icmp.code is not None:
                icmp.append("%s code %d" % (icmpk, m.icmp.code))
        if m.not_icmp is not None and m.not_icmp.type is not None:
            if m.not_icmp.code is None:
                icmp.append("%s type != %d" % (icmpk, m.not_icmp.type))
            else:
                icmp.append("%s type . %s code != { %d . %d }" % (icmpk, icmpk, m.not_icmp.type, m.not_icmp.code))
        out = []
        for s in self._side_alternatives(m.src, m.family, m.protocol, "src"):
            for d in self._side_alternatives(m.dst, m.family, m.protocol, "dst"):
                parts = stable_order(head + s + d + icmp, m.protocol)
                if m.family is not None and not any(p.startswith(("ip ", "ip6 ")) for p in parts):
                    parts.insert(0, "meta nfproto ipv%d" % m.family)
                out.append(" ".join(parts))
        return out

    def _log(self, owner: str) -> str:
        prefix = self.felix.log_prefix
        tier, _sep, name = owner.partition("/")
        if "%" in prefix:
            prefix = (prefix.replace("%t", tier).replace("%k", "gnp").replace("%n", name).replace("%p", name))
        else:
            prefix = "%s %s" % (prefix, owner)
        prefix = truncate(comment(prefix + ": ", None)[:120], LOG_PREFIX_MAX)
        limit = self.felix.log_action_rate_limit or DEFAULT_LOG_LIMIT
        if self.felix.log_action_rate_limit and self.felix.log_action_rate_limit_burst:
            limit = "%s burst %d packets" % (limit, self.felix.log_action_rate_limit_burst)
        return 'limit rate %s log prefix "%s" level info' % (limit, prefix)

    def _deny(self, mode: str, counter: bool = True) -> str:
        """Deny: ``reject`` (an ICMP port unreachable, as Felix's plain ``reject``) when the deny
        action is Reject, except at postrouting, where the kernel refuses ``reject``."""
        verdict = "reject" if self.reject and mode != MODE_POST else "drop"
        return "counter " + verdict if counter else verdict

    def _verdict(self, action: str, mode: str, owner: str) -> str:
        if action == "Deny":
            return self._deny(mode)
        if action == "Pass":
            return "counter meta mark set meta mark | %s return" % _mark(MARK_PASS)
        if action == "Log":
            return "counter " + self._log(owner)
        # Allow
        if mode in (MODE_FILTER, MODE_POST):
            return "counter accept"
        if mode == MODE_FORWARD:
            return "counter meta mark set meta mark | %s return" % _mark(MARK_ACCEPT)
        if mode == MODE_RAW:
            return "counter notrack meta mark set meta mark | %s accept" % _mark(MARK_ACCEPT)
        return "counter meta mark set meta mark | %s accept" % _mark(MARK_ACCEPT)

    def _rule_lines(self, chain: NftChain, rule: CompiledRule, mode: str, note: str) -> None:
        verdict = self._verdict(rule.action, mode, rule.owner)
        if not rule.variants:
            chain.rules.append(NftRule("# " + comment(note + ": omitted, it matches no IP family")))
            return
        text = note
        if rule.annotations:
            text += " " + "; ".join("%s=%s" % kv for kv in rule.annotations)
        emitted = 0
        for m in rule.variants:
            for expr in self.match_exprs(m):
                chain.add((expr + " " + verdict).strip(), text)
                emitted += 1
        if not emitted:
            chain.rules.append(NftRule("# " + comment(note + ": omitted, its selector or named-port set is empty")))

    # -- chains -------------------------------------------------------------------------------

    def _use_shared(self, key: Tuple, build, chains: Dict[str, NftChain]) -> str:
        """Build a policy/profile chain once per model; record the sets it uses for this host."""
        hit = self.shared.shared_chains.get(key) if self.shared is not None else None
        if hit is None:
            own_sets, self.sets = self.sets, {}
            try:
                chain = build()
                used = self.sets
            finally:
                self.sets = own_sets
            hit = (chain, used)
            if self.shared is not None:
                self.shared.shared_chains[key] = hit
        chain, used = hit
        for name, st in used.items():
            self.sets.setdefault(name, st)
        chains.setdefault(chain.name, chain)
        return chain.name

    def policy_chain(self, policy: api.Policy, direction: str, mode: str) -> str:
        return self._use_shared(("policy", policy.kind, policy.namespace, policy.name, direction, mode,
                                 self.verdict_key),
                                lambda: self._build_policy_chain(policy, direction, mode), self.policy_chains)

    def inline_policy(self, chain: NftChain, policy: api.Policy, direction: str, mode: str, guard: str) -> None:
        """Put a policy's rules straight into an endpoint chain (no jump, no chain of its own)."""
        key = ("policy", policy.kind, policy.namespace, policy.name, direction, mode, self.verdict_key)
        inlined: Dict[str, NftChain] = {}
        self._use_shared(key, lambda: self._build_policy_chain(policy, direction, mode), inlined)
        cache = self.shared.inlined_rules if self.shared is not None else {}
        rules = cache.get(key + (guard,))
        if rules is None:
            source = next(iter(inlined.values()))
            rules = [NftRule("# " + comment("tier %s policy %s %s (inlined: only this endpoint uses it)"
                                            % (policy.tier, policy.name, direction)))]
            for rule in source.rules:
                if guard and not rule.expr.startswith("#"):
                    rules.append(NftRule(guard + rule.expr, rule.comment))
                else:
                    rules.append(rule)
            cache[key + (guard,)] = rules
        chain.rules.extend(rules)

    def _inlinable(self, policy: api.Policy, direction: str, mode: str) -> bool:
        """Inline when this table uses the policy (in this direction and mode) from one place
        only, its verdicts are final (not applyOnForward's mark-and-return) and it has no Pass
        (Pass must leave the policy, which only a chain of its own can do)."""
        counted = _usage_mode(mode)
        if mode == MODE_FORWARD or self.usage.get((policy.kind, policy.namespace, policy.name, direction, counted)) != 1:
            return False
        return not self.model.has_pass(policy, direction)

    def _build_policy_chain(self, policy: api.Policy, direction: str, mode: str) -> NftChain:
        name = chain_name("%s%s/%s/%s" % (MODE_PREFIX[mode], DIR_SHORT[direction], policy.tier, policy.name))
        chain = NftChain(name, comment=comment("tier %s policy %s %s (%s)" % (
            policy.tier, policy.name, direction, MODE_LABEL[mode]), None))
        for rule in self.model.policy_rules(policy, direction):
            self._rule_lines(chain, rule, mode, "%s/%s %s[%d] %s" % (policy.tier, policy.name, direction,
                                                                     rule.index, rule.action))
        return chain

    def profile_chain(self, profile: api.Profile, direction: str, mode: str) -> str:
        return self._use_shared(("profile", profile.name, direction, mode, self.verdict_key),
                                lambda: self._build_profile_chain(profile, direction, mode), self.profile_chains)

    def _build_profile_chain(self, profile: api.Profile, direction: str, mode: str) -> NftChain:
        name = chain_name("%sprof-%s/%s" % (MODE_PREFIX[mode], DIR_SHORT[direction], profile.name))
        chain = NftChain(name, comment=comment("profile %s %s%s" % (
            profile.name, direction, "" if mode == MODE_FILTER else " (%s)" % MODE_LABEL[mode]), None))
        for rule in self.model.profile_rules(profile, direction):
            if rule.action == "Pass":
                # In a profile, Pass goes on with the next profile: a plain return.
                for m in rule.variants:
                    for expr in self.match_exprs(m):
                        chain.add(expr + " counter return", "profile %s %s[%d] Pass" % (profile.name, direction,
                                                                                        rule.index))
                continue
            note = "profile %s %s[%d] %s" % (profile.name, direction, rule.index, rule.action)
            self._rule_lines(chain, rule, mode, note)
        return chain

    def _uses_pass(self, tp: TierPlan, direction: str) -> bool:
        return any(self.model.has_pass(p, direction) for p in tp.policies)

    def _tiers(self, chain: NftChain, ep: EndpointPlan, cls: str, direction: str, mode: str) -> None:
        """The tier section of an endpoint chain.  Endpoints alike share their tier tuples (model),
        so the section (its rules, and the sets and policy chains it uses) is built once per tier
        tuple, class, direction and inlining decisions, and reused by every host alike."""
        tiers = ep.tiers_for(cls, direction)
        counted = _usage_mode(mode)
        key = (id(tiers), cls, direction, mode, self.verdict_key,
               tuple(self.usage.get((p.kind, p.namespace, p.name, direction, counted)) for tp in tiers
                     for p in tp.policies))
        cache = self.shared.tier_sections if self.shared is not None else {}
        hit = cache.get(key)
        if hit is None:
            start = len(chain.rules)
            own_sets, own_chains = self.sets, self.policy_chains
            self.sets, self.policy_chains = {}, {}
            try:
                self._build_tiers(chain, ep, cls, direction, mode)
                hit = (chain.rules[start:], self.sets, self.policy_chains, tiers)
            finally:
                self.sets, self.policy_chains = own_sets, own_chains
            del chain.rules[start:]
            cache[key] = hit  # keeps ``tiers`` alive, so its id() stays unique
        rules, used_sets, used_chains, _tiers_ref = hit
        chain.rules.extend(rules)
        for name, st in used_sets.items():
            self.sets.setdefault(name, st)
        for name, ch in used_chains.items():
            self.policy_chains.setdefault(name, ch)

    def _build_tiers(self, chain: NftChain, ep: EndpointPlan, cls: str, direction: str, mode: str) -> None:
        for tp in ep.tiers_for(cls, direction):
            guarded = self._uses_pass(tp, direction)
            guard = "meta mark & %s == 0 " % _mark(MARK_PASS) if guarded else ""
            if guarded:
                chain.add(_clear(MARK_PASS), "start of tier %s" % tp.name)
            for p in tp.policies:
                if self._inlinable(p, direction, mode):
                    self.inline_policy(chain, p, direction, mode, guard)
                    continue
                target = self.policy_chain(p, direction, mode)
                chain.add("%sjump %s" % (guard, target), "tier %s policy %s" % (tp.name, p.name))
                if mode == MODE_FORWARD:
                    chain.add("meta mark & %s == %s return" % (_mark(MARK_ACCEPT), _mark(MARK_ACCEPT)),
                              "policy %s allowed" % p.name)
            if tp.default_action == "Deny":
                chain.add(guard + self._deny(mode), "end of tier %s (defaultAction Deny)" % tp.name)

    def _failsafe(self, chain: NftChain, entries, port_field: str, net_field: str, what: str) -> None:
        for expr, note in self.failsafe_matches(entries, port_field, net_field, what):
            chain.add(expr + " accept", note)

    def failsafe_matches(self, entries, port_field: str, net_field: str, what: str) -> List[Tuple[str, str]]:
        """(match expression, comment) of each failsafe rule; the set of port-only entries is
        added to the table."""
        out = []
        plain = [e for e in entries if e.net is None]
        if plain:
            name = "failsafe_%s_%s" % ("in" if what.startswith("inbound") else "out", port_field)
            if name not in self.sets:
                self.sets[name] = NftSet(name, "inet_proto . inet_service", False,
                                         comment("failsafe %s (%s)" % (what, ", ".join(str(e) for e in plain))),
                                         ["%s . %d" % (e.protocol, e.port) for e in plain])
            out.append(("meta l4proto . th %s @%s" % (port_field, name), "failsafe %s" % what))
        for e in entries:
            if e.net is None:
                continue
            ipk = "ip6" if family_of(e.net) == 6 else "ip"
            out.append(("%s %s %s %s %s %d" % (ipk, net_field, e.net, e.protocol, port_field, e.port),
                        "failsafe %s %s" % (what, e)))
        return out

    def _invalid(self, chain: NftChain, mode: str) -> None:
        if not self.felix.disable_conntrack_invalid_check:
            chain.add("ct state invalid " + self._deny(mode, counter=False), "conntrack state invalid")

    def _conntrack(self, chain: NftChain, mode: str) -> None:
        chain.add("ct state established,related accept", "established or related connection")
        self._invalid(chain, mode)

    def endpoint_chain(self, ep: EndpointPlan, cls: str, direction: str, mode: Optional[str] = None) -> str:
        """The chain of one endpoint, class and direction.  ``mode`` MODE_POST: the normal egress
        chain again, for postrouting (see MODE_POST)."""
        mode = mode or CLASS_MODE[cls]
        if mode == MODE_POST:
            prefix, label = "hep-post", MODE_LABEL[MODE_POST]
        else:
            prefix, label = ENDPOINT_PREFIX[cls], ENDPOINT_LABEL[cls]
        name = "%s-%s-%s" % (prefix, DIR_SHORT[direction], ep.chain_id)
        if name in self.built_endpoint_chains:
            return name
        self.built_endpoint_chains.add(name)
        where = "interface %s" % ep.iface if ep.iface != WILDCARD else "all interfaces (*)"
        chain = NftChain(name, comment=comment("host endpoint %s, %s, %s %s" % (ep.hep.name, where, label, direction)))
        fin, fout = self.felix.failsafe_inbound, self.felix.failsafe_outbound
        if cls == UNTRACKED:
            if direction == INGRESS:
                self._failsafe(chain, fin, "dport", "saddr", "inbound")
                self._failsafe(chain, fout, "sport", "saddr", "outbound (replies)")
            else:
                self._failsafe(chain, fout, "dport", "daddr", "outbound")
                self._failsafe(chain, fin, "sport", "daddr", "inbound (replies)")
            self._tiers(chain, ep, cls, direction, mode)
        elif cls == PREDNAT:
            self._invalid(chain, mode)
            self._failsafe(chain, fin, "dport", "saddr", "inbound")
            self._tiers(chain, ep, cls, direction, mode)
        elif cls == FORWARD:
            self._conntrack(chain, mode)
            if ep.has_forward_tiers:
                chain.add(_clear(MARK_ACCEPT | MARK_PASS), "clear verdict bits")
                self._tiers(chain, ep, cls, direction, mode)
            else:
                chain.rules.append(NftRule("# no applyOnForward policy: forwarded traffic allowed"))
        else:
            self._conntrack(chain, mode)
            if direction == INGRESS:
                self._failsafe(chain, fin, "dport", "saddr", "inbound")
            else:
                self._failsafe(chain, fout, "dport", "daddr", "outbound")
            self._tiers(chain, ep, cls, direction, mode)
            deny = self._deny(mode)
            if chain.rules and chain.rules[-1].expr == deny:
                # The last tier ends in an unconditional drop: profiles are unreachable.
                self.endpoint_chains.append(chain)
                return name
            for prof in ep.profiles:
                chain.add("jump %s" % self.profile_chain(prof, direction, mode), "profile %s" % prof.name)
            if ep.profiles:
                why = "no profile allowed: default deny of host endpoint %s" % ep.hep.name
            elif ep.tiers_for(NORMAL, direction):
                why = "tiers passed and no profile: default deny of host endpoint %s" % ep.hep.name
            else:
                why = "no policy and no profile: default deny of host endpoint %s" % ep.hep.name
            chain.add(deny, why)
        self.endpoint_chains.append(chain)
        return name

    def _dispatch(self, chain: NftChain, key: str, cls: str, direction: str, verb: str, *, wildcard: bool = True,
                  cond: str = "", mode: Optional[str] = None) -> None:
        """Interface dispatch: a verdict map over named endpoints, then the "*" endpoint.  In the
        doNotTrack and preDNAT stages only endpoints with policy of that class are listed (Felix's
        raw and mangle dispatch), so a named endpoint without preDNAT policy gets the "*"
        endpoint's preDNAT policy (§7.3)."""
        entries = []
        for ep in self.plan.named():
            if ep.tiers_for(cls, direction) or cls in (NORMAL, FORWARD):
                entries.append('"%s" : %s %s' % (ep.iface, verb, self.endpoint_chain(ep, cls, direction, mode)))
        if entries:
            chain.add("%s%sname vmap { %s }" % (cond, key, ", ".join(entries)), "named host endpoints")
        wc = self.plan.wildcard
        if wildcard and wc is not None and (wc.tiers_for(cls, direction) or cls in (NORMAL, FORWARD)):
            chain.add("%s%s %s" % (cond, verb, self.endpoint_chain(wc, cls, direction, mode)),
                      "all-interfaces host endpoint %s" % wc.hep.name)

    # -- the table ---------------------------------------------------------------------------

    def build(self):
        plan = self.plan
        eps = plan.endpoints
        has_raw = {d: any(ep.tiers_for(UNTRACKED, d) for ep in plan.named()) for d in (INGRESS, EGRESS)}
        has_pre = any(ep.tiers_for(PREDNAT, INGRESS) for ep in eps)
        prefixes = plan.felix.interface_prefixes
        base: List[NftChain] = []

        raw_pre = NftChain("raw-prerouting", "type filter hook prerouting priority raw; policy accept;")
        raw_pre.add(_clear(MARK_ALL), "clear hostfw mark bits")
        if has_raw[INGRESS]:
            for p in prefixes:
                raw_pre.add('iifname "%s*" return' % p, "workload interface: no host endpoint")
            self._dispatch(raw_pre, "iif", UNTRACKED, INGRESS, "goto", wildcard=False)
        base.append(raw_pre)

        raw_out = NftChain("raw-output", "type filter hook output priority raw; policy accept;")
        raw_out.add(_clear(MARK_ALL), "clear hostfw mark bits")
        if has_raw[EGRESS]:
            self._dispatch(raw_out, "oif", UNTRACKED, EGRESS, "goto", wildcard=False)
        base.append(raw_out)

        if has_pre:
            mangle = NftChain("mangle-prerouting", "type filter hook prerouting priority mangle; policy accept;")
            mangle.add("ct state established,related accept", "established or related connection")
            if has_raw[INGRESS]:
                mangle.add("meta mark & %s == %s accept" % (_mark(MARK_ACCEPT), _mark(MARK_ACCEPT)),
                           "allowed by doNotTrack policy")
            self._dispatch(mangle, "iif", PREDNAT, INGRESS, "goto")
            base.append(mangle)

        inp = NftChain("filter-input", "type filter hook input priority filter; policy accept;")
        action = {"Drop": "drop", "Accept": "accept", "Return": "return"}[plan.felix.default_endpoint_to_host_action]
        for p in prefixes:
            # Felix's cali-wl-to-host: the ICMPv6 allowance, the workload chain's conntrack rules
            # (replies to the host's own connections to its pods are accepted here), then the action.
            inp.add('iifname "%s*" icmpv6 type { %s } accept'
                    % (p, ", ".join(str(t) for t in api.WORKLOAD_ICMPV6_TYPES)),
                    "workload to host: MLD and neighbour discovery, as Felix")
            inp.add('iifname "%s*" ct state established,related accept' % p,
                    "workload to host: established or related connection")
            if not self.felix.disable_conntrack_invalid_check:
                inp.add('iifname "%s*" ct state invalid %s' % (p, self._deny(MODE_FILTER, counter=False)),
                        "workload to host: conntrack state invalid")
            inp.add('iifname "%s*" %s' % (p, "counter " + action if action == "drop" else action),
                    "workload to host: defaultEndpointToHostAction %s" % plan.felix.default_endpoint_to_host_action)
        if has_raw[INGRESS] or has_pre:
            inp.add("meta mark & %s == %s accept" % (_mark(MARK_ACCEPT), _mark(MARK_ACCEPT)),
                    "allowed by doNotTrack or preDNAT policy")
        self._dispatch(inp, "iif", NORMAL, INGRESS, "goto")
        base.append(inp)

        out = NftChain("filter-output", "type filter hook output priority filter; policy accept;")
        if has_raw[EGRESS]:
            out.add("meta mark & %s == %s accept" % (_mark(MARK_ACCEPT), _mark(MARK_ACCEPT)),
                    "allowed by doNotTrack policy")
        for p in prefixes:
            out.add('oifname "%s*" accept' % p, "host to local workload: always allowed")
        out.add("ct status dnat return", "DNAT'd host traffic: egress policy runs at postrouting")
        self._dispatch(out, "oif", NORMAL, EGRESS, "goto")
        base.append(out)

        fwd = NftChain("filter-forward", "type filter hook forward priority filter; policy accept;")
        fwd.add("meta mark set meta mark | %s" % _mark(MARK_FWD), "forwarded: no host egress policy at postrouting")
        din = NftChain("fwd-in-dispatch", comment="forwarded traffic: ingress half, by input interface")
        self._dispatch(din, "iif", FORWARD, INGRESS, "goto")
        dout = NftChain("fwd-out-dispatch", comment="forwarded traffic: egress half, by output interface")
        self._dispatch(dout, "oif", FORWARD, EGRESS, "goto")
        accept_guard = "meta mark & %s == 0 " % _mark(MARK_ACCEPT) if (has_raw[INGRESS] or has_pre) else ""
        fwd.add("%sjump fwd-in-dispatch" % accept_guard, "not yet allowed by doNotTrack/preDNAT policy")
        fwd.add("jump fwd-out-dispatch")
        base.append(fwd)

        post = NftChain("mangle-postrouting", "type filter hook postrouting priority mangle; policy accept;")
        post.add("meta mark & %s != 0 return" % _mark(MARK_FWD | MARK_ACCEPT), "forwarded, or allowed by doNotTrack")
        post.add("ct status & dnat == 0 return", "only DNAT'd host traffic is checked here")
        for p in prefixes:
            post.add('oifname "%s*" return' % p, "host to local workload: always allowed")
        # With the Reject deny action the egress chains reject, which postrouting cannot: it gets
        # its own copies that drop (MODE_POST).
        self._dispatch(post, "oif", NORMAL, EGRESS, "goto", mode=MODE_POST if self.reject else None)
        base.append(post)

        if not eps:
            # A host with local workloads and no HostEndpoint: Felix polices only the workloads'
            # traffic to the host (§6); nothing else is touched.
            return [], [inp], self._summary()
        chains = base + [din, dout] + self.endpoint_chains + list(self.profile_chains.values()) \
            + list(self.policy_chains.values())
        summary = self._summary()
        if self.pending is not None and self.shadow:
            shadow_chains, shadow_summary = _Shadow(self).build()
            chains += shadow_chains
            summary += shadow_summary
        sets = [self.sets[k] for k in sorted(self.sets)]
        return sets, chains, summary

    def _summary(self) -> List[str]:
        lines = []
        if self.plan.workloads:
            lines.append("local workloads (traffic to this host: defaultEndpointToHostAction %s): %s"
                         % (self.felix.default_endpoint_to_host_action,
                            ", ".join("%s/%s" % (w.namespace, w.name) for w in self.plan.workloads)))
        if not self.plan.endpoints:
            lines.append("no HostEndpoint: only the local workloads' traffic to the host is policed")
        for ep in self.plan.endpoints:
            where = ep.iface if ep.iface != WILDCARD else "* (all interfaces, including lo)"
            lines.append("endpoint %s on %s" % (ep.hep.name, where))
            for (cls, direction), tiers in ep.tiers:
                pols = ", ".join("%s/%s" % (t.name, p.name) for t in tiers for p in t.policies)
                lines.append("  %s %s: %s" % (cls, direction, pols))
            if ep.profiles:
                lines.append("  profiles: %s" % ", ".join(p.name for p in ep.profiles))
        if self.plan.endpoints:
            fin = ",".join(str(e) for e in self.felix.failsafe_inbound) or "none"
            fout = ",".join(str(e) for e in self.felix.failsafe_outbound) or "none"
            lines.append("failsafe inbound: %s" % fin)
            lines.append("failsafe outbound: %s" % fout)
        return lines


# ----------------------------------------------------------------------------------------------
# The shadow path: the pending world, counted, never a verdict
# ----------------------------------------------------------------------------------------------

SHADOW_CLASSES = {INGRESS: (UNTRACKED, PREDNAT, NORMAL), EGRESS: (UNTRACKED, NORMAL)}


def _tiers_signature(tiers: Tuple[TierPlan, ...]):
    return tuple((tp.name, tp.default_action, tuple(map(id, tp.policies))) for tp in tiers)


def shadow_directions(plan: HostPlan, pending: HostPlan) -> Tuple[str, ...]:
    """The directions (ingress, egress) in which the pending plan of a host differs from its
    enforced plan, in the classes the shadow path covers (doNotTrack, preDNAT, normal).
    Forwarded traffic (applyOnForward) and DNAT'd host egress at postrouting are not shadowed."""
    out = []
    for direction in DIRECTIONS_ORDER:
        for ep, pep in zip(plan.endpoints, pending.endpoints):
            if ep.tiers is pep.tiers and ep.profiles is pep.profiles:
                continue
            if any(_tiers_signature(ep.tiers_for(cls, direction)) != _tiers_signature(pep.tiers_for(cls, direction))
                   for cls in SHADOW_CLASSES[direction]):
                out.append(direction)
                break
    return tuple(out)


DIRECTIONS_ORDER = (INGRESS, EGRESS)


def pending_comment(phase: str, key: str) -> str:
    """The comment of a shadow counter: ``hostfw-pending:<phase> <key>``; a key too long for a
    rule comment is replaced by ``#<hash>`` and the start of the key (the report maps the hash
    back with :func:`pending_key_hash`)."""
    text = "%s%s %s" % (PENDING_MARK, phase, key)
    if len(comment(text, None).encode("utf-8")) <= COMMENT_MAX:
        return comment(text)
    return comment("%s%s #%s %s" % (PENDING_MARK, phase, pending_key_hash(key), key))


def pending_key_hash(key: str) -> str:
    return short_hash(key, 12)


class _Shadow:
    """The shadow chains of one host (module docstring), for both phases."""

    def __init__(self, hr: _HostRenderer):
        self.hr = hr
        self.model = hr.model
        self.plan = hr.pending
        self.felix = hr.felix
        self.log = hr.shadow == SHADOW_LOG
        self.directions = shadow_directions(hr.plan, hr.pending)
        self.chains: List[NftChain] = []
        self.phase = PHASE_ALL
        self.rules = 0

    def build(self) -> Tuple[List[NftChain], List[str]]:
        counts = {}
        for phase in (PHASE_ALL, PHASE_ALLOWED):
            self.phase = phase
            self.rules = 0
            for direction in self.directions:
                self._base(direction)
            counts[phase] = self.rules
        summary = ["pending world (staged policies promoted) counted in a shadow path, %s: %d rules before "
                   "(%s%s, priority %d) and %d after (%s%s, priority %d) this table's filter chains; they never "
                   "change a verdict" % (", ".join(self.directions), counts[PHASE_ALL], PENDING_MARK, PHASE_ALL,
                                         SHADOW_PRIORITY[PHASE_ALL], counts[PHASE_ALLOWED], PENDING_MARK,
                                         PHASE_ALLOWED, SHADOW_PRIORITY[PHASE_ALLOWED])]
        return self.chains, summary

    # -- chains --------------------------------------------------------------------------------

    def _name(self, *parts: str) -> str:
        return "-".join(("pending", self.phase) + parts)

    def _chain(self, name: str, note: Optional[str] = None, hook: Optional[str] = None) -> NftChain:
        chain = NftChain(name, hook, comment=comment(note) if note else None)
        self.chains.append(chain)
        return chain

    def _add(self, chain: NftChain, expr: str, note: Optional[str] = None) -> None:
        chain.add(expr.strip(), note)
        self.rules += 1

    def _base(self, direction: str) -> None:
        hook = "input" if direction == INGRESS else "output"
        what = "before" if self.phase == PHASE_ALL else "after"
        chain = self._chain(self._name(hook), "shadow path, pending world, %s, %s this table's filter chain: counts "
                                              "only" % (direction, what),
                            "type filter hook %s priority %d; policy accept;" % (hook, SHADOW_PRIORITY[self.phase]))
        self._add(chain, "ct state != new return", "only the first packet of a new tracked connection")
        key = "iif" if direction == INGRESS else "oif"
        for prefix in self.felix.interface_prefixes:
            self._add(chain, '%sname "%s*" return' % (key, prefix), "workload interface: no host endpoint")
        if direction == EGRESS:
            self._add(chain, "ct status dnat return", "DNAT'd host traffic: not shadowed")
        entries = []
        for ep in self.plan.named():
            target = self._pipeline(direction, ep.iface)
            if target is not None:
                entries.append('"%s" : goto %s' % (ep.iface, target))
        if entries:
            self._add(chain, "%sname vmap { %s }" % (key, ", ".join(entries)), "named host endpoints")
        if self.plan.wildcard is not None:
            target = self._pipeline(direction, WILDCARD)
            if target is not None:
                self._add(chain, "goto " + target, "all-interfaces host endpoint %s" % self.plan.wildcard.hep.name)

    def _pipeline(self, direction: str, iface: str) -> Optional[str]:
        """The chains that evaluate the pending world for packets of ``iface`` (``*``: any
        interface without a named endpoint); returns the first chain's name."""
        plan = self.plan
        named = None
        for ep in plan.named():
            if ep.iface == iface:
                named = ep
        normal = named if named is not None else plan.wildcard
        if normal is None:
            return None
        stages = []
        if named is not None and named.tiers_for(UNTRACKED, direction):
            stages.append((UNTRACKED, named))
        if direction == INGRESS:
            pre = named if named is not None and named.tiers_for(PREDNAT, INGRESS) else plan.wildcard
            if pre is not None and pre.tiers_for(PREDNAT, INGRESS):
                stages.append((PREDNAT, pre))
        stages.append((NORMAL, normal))
        # the "*" endpoint's chains are any-interface-at-all, as the enforced ones: an interface may be named "any"
        base = "%s-%s" % (DIR_SHORT[direction], normal.chain_id)
        first = self._name(base)
        where = "interface %s" % iface if iface != WILDCARD else "all interfaces (*)"
        chain = self._chain(first, "pending world, host endpoint %s, %s, %s" % (normal.hep.name, where, direction))
        for i, (cls, ep) in enumerate(stages):
            if i:  # the stage before ends in a goto to this chain
                chain = self._chain(self._name(base, CLASS_SHORT[cls]),
                                    "pending world, %s stage, %s" % (CLASS_LABEL[cls], direction))
            following = self._name(base, CLASS_SHORT[stages[i + 1][0]]) if i + 1 < len(stages) else None
            chain = self._stage(chain, base, cls, ep, direction, following)
        return first

    def _stage(self, chain: NftChain, base: str, cls: str, ep: EndpointPlan, direction: str,
               following: Optional[str]) -> NftChain:
        """One stage (doNotTrack, preDNAT or normal) of the pending pipeline, as the evaluator
        runs it for a new connection; ``following``: the next stage's chain (doNotTrack and preDNAT
        stages go on there when nothing decided)."""
        fin, fout = self.felix.failsafe_inbound, self.felix.failsafe_outbound
        hr = self.hr
        if cls == UNTRACKED:
            if direction == INGRESS:
                skips = hr.failsafe_matches(fin, "dport", "saddr", "inbound") + \
                    hr.failsafe_matches(fout, "sport", "saddr", "outbound (replies)")
            else:
                skips = hr.failsafe_matches(fout, "dport", "daddr", "outbound") + \
                    hr.failsafe_matches(fin, "sport", "daddr", "inbound (replies)")
            for expr, note in skips:
                self._add(chain, "%s goto %s" % (expr, following), note + ": skips the doNotTrack stage")
        elif cls == PREDNAT:
            for expr, note in hr.failsafe_matches(fin, "dport", "saddr", "inbound"):
                self._add(chain, "%s goto %s" % (expr, following), note + ": skips the preDNAT stage")
        else:
            entries = (hr.failsafe_matches(fin, "dport", "saddr", "inbound") if direction == INGRESS
                       else hr.failsafe_matches(fout, "dport", "daddr", "outbound"))
            for expr, _note in entries:
                self._terminal(chain, expr, decider_key("failsafe", NORMAL, direction, "Allow"), "Allow")
        chain = self._tier_section(chain, base, cls, ep, direction)
        if chain is None:
            return None
        if cls != NORMAL:
            self._add(chain, "goto " + following)
            return chain
        chain = self._profiles(chain, base, ep, direction)
        if chain is not None:
            self._terminal(chain, "", decider_key("default-deny", NORMAL, direction, "Deny"), "Deny")
        return chain

    def _tier_section(self, chain: NftChain, base: str, cls: str, ep: EndpointPlan,
                      direction: str) -> Optional[NftChain]:
        """The tiers of one class; Pass goes to the next tier's chain.  Returns the chain in
        which evaluation goes on after the last tier (None: nothing after it is reachable)."""
        tiers = ep.tiers_for(cls, direction)
        for j, tp in enumerate(tiers):
            passes = any(self.model.has_pass(p, direction) for p in tp.policies)
            after = self._name(base, CLASS_SHORT[cls], "t%d" % (j + 1)) if passes else None
            for policy in tp.policies:
                for rule in self.model.policy_rules(policy, direction):
                    if rule.action == "Log":
                        continue
                    exprs = self._exprs(rule, ("policy", policy.kind, policy.namespace, policy.name, direction,
                                               rule.index))
                    if rule.action == "Pass":
                        for expr in exprs:
                            self._add(chain, "%s goto %s" % (expr, after),
                                      "%s/%s %s[%d] Pass" % (tp.name, policy_label(policy), direction, rule.index))
                        continue
                    key = decider_key("rule", cls, direction, rule.action, tp.name, policy, index=rule.index)
                    for expr in exprs:
                        self._terminal(chain, expr, key, rule.action)
            if tp.default_action == "Deny":
                self._terminal(chain, "", decider_key("end-of-tier", cls, direction, "Deny", tp.name), "Deny")
                if not passes:
                    return None  # an unconditional end of tier: nothing after it is reachable
            if passes:
                if tp.default_action != "Deny":
                    self._add(chain, "goto " + after)
                chain = self._chain(after, "pending world, after tier %s (%s %s)" % (
                    tp.name, CLASS_LABEL[cls], direction))
        return chain

    def _profiles(self, chain: NftChain, base: str, ep: EndpointPlan, direction: str) -> Optional[NftChain]:
        for k, prof in enumerate(ep.profiles):
            rules = self.model.profile_rules(prof, direction)
            passes = any(r.action == "Pass" for r in rules)
            after = self._name(base, "p%d" % (k + 1)) if passes else None
            for rule in rules:
                if rule.action == "Log":
                    continue
                exprs = self._exprs(rule, ("profile", prof.name, direction, rule.index))
                if rule.action == "Pass":
                    for expr in exprs:
                        self._add(chain, "%s goto %s" % (expr, after), "profile %s %s[%d] Pass" % (
                            prof.name, direction, rule.index))
                    continue
                key = decider_key("profile", NORMAL, direction, rule.action, profile=prof.name, index=rule.index)
                for expr in exprs:
                    self._terminal(chain, expr, key, rule.action)
            if passes:
                self._add(chain, "goto " + after)
                chain = self._chain(after, "pending world, after profile %s (%s)" % (prof.name, direction))
        return chain

    def _exprs(self, rule: CompiledRule, key: Tuple) -> List[str]:
        """The match expressions of a rule (OR-ed), built once per model; the sets they use are
        added to this host's table."""
        hr = self.hr
        cache = hr.shared.shadow_exprs if hr.shared is not None else {}
        key = key + (hr.verdict_key,)
        hit = cache.get(key)
        if hit is None:
            own, hr.sets = hr.sets, {}
            try:
                exprs = [expr for m in rule.variants for expr in hr.match_exprs(m)]
                hit = (exprs, hr.sets)
            finally:
                hr.sets = own
            cache[key] = hit
        for name, st in hit[1].items():
            hr.sets.setdefault(name, st)
        return hit[0]

    def _terminal(self, chain: NftChain, expr: str, key: str, action: str) -> None:
        """A deciding point: count and stop (``return`` in a chain reached only through
        ``goto`` ends the base chain, whose policy lets the packet go on)."""
        if self.log and action == "Deny" and self.phase == PHASE_ALLOWED:
            prefix = truncate(comment("%s would-deny %s: " % (PENDING_LOG_PREFIX, key), None), LOG_PREFIX_MAX)
            limit = self.felix.log_action_rate_limit or DEFAULT_LOG_LIMIT
            if self.felix.log_action_rate_limit and self.felix.log_action_rate_limit_burst:
                limit = "%s burst %d packets" % (limit, self.felix.log_action_rate_limit_burst)
            self._add(chain, '%s limit rate %s log prefix "%s" level info' % (expr, limit, prefix))
        chain.rules.append(NftRule(("%s counter return" % expr).strip(), pending_comment(self.phase, key)))
        self.rules += 1


CLASS_SHORT = {UNTRACKED: "raw", PREDNAT: "pre", NORMAL: "n"}
CLASS_LABEL = {UNTRACKED: "doNotTrack", PREDNAT: "preDNAT", NORMAL: "normal"}
