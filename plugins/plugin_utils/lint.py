# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Calico-aware lint of a compiled world: known traps (HF001-HF012) and rule anomalies (HF101-HF102).

``run(comp, probes)`` returns a :class:`Report`; ``report.as_dict()`` is ``lint.json``
(``{"findings": [...], "summary": {...}}``) and ``to_markdown(report)`` is ``lint.md``.  Every
finding has a stable ``code``, a ``severity`` (error, warning, info), the resource ``kind``,
``name`` and field ``path``, the ``source`` (the origin the validator records, e.g.
``manifests/20-host-firewall.yaml#2``) and its ``line``, the ``message``, the ``consequence`` in
traffic terms (computed with the evaluator: which sources reach, or no longer reach, which
hosts) and the ``fix``.  docs/lint.md documents every code.

A resource acknowledges findings with the annotation ``hostfw.nftables/ignore: HF007`` (a comma
list; on a policy rule's own ``metadata.annotations`` too): the finding is kept, marked
``acknowledged``, and does not count for ``hostfw_lint_fail_on``.

Rule anomalies are computed with set operations over the compiled :class:`model.Match` variants
(a match is a union of boxes: family x protocol x source addresses x source port x destination
addresses x destination port x ICMP type/code, each an interval list), per endpoint plan and
direction, across the failsafes, the tiers in order (Pass, end-of-tier actions) and the
profiles.  A rule is reported only when it decides no packet on *every* endpoint it applies to.
Every approximation is on the safe side (a rule's own match may be over-approximated, what
covers it only under-approximated), so a reported rule never decides a verdict; a rule that is
too complex to analyse is not reported.  Plans are shared by hosts alike, so the work is per
distinct plan, not per host.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from ansible_collections.hostfw.nftables.plugins.plugin_utils import api
from ansible_collections.hostfw.nftables.plugins.plugin_utils.addrset import family_of, parse_ip, parse_net
from ansible_collections.hostfw.nftables.plugins.plugin_utils.evaluate import Packet
from ansible_collections.hostfw.nftables.plugins.plugin_utils.matrix import MatrixBuilder, matrix_endpoints, probe_label
from ansible_collections.hostfw.nftables.plugins.plugin_utils.model import (
    DIRECTIONS, EGRESS, FORWARD, INGRESS, NORMAL, PREDNAT, UNTRACKED, WILDCARD)

ERROR = "error"
WARNING = "warning"
INFO = "info"
SEVERITIES = (ERROR, WARNING, INFO)
FAIL_ON = ("error", "warning", "never")
IGNORE_ANNOTATION = "hostfw.nftables/ignore"

# code -> (name, severity)
CODES = {
    "HF001": ("log-only-applies", ERROR),
    "HF002": ("deny-on-failsafe", ERROR),
    "HF003": ("failsafe-off-no-mgmt", ERROR),
    "HF004": ("hep-no-expectedips", WARNING),
    "HF005": ("ipv6-nd-dropped", ERROR),
    "HF006": ("nets-single-family", WARNING),
    "HF007": ("pods-reach-host", ERROR),
    "HF008": ("endpoint-to-host-bypass", WARNING),
    "HF009": ("selects-nothing", WARNING),
    "HF010": ("same-order-conflict", WARNING),
    "HF011": ("nodeport-not-prednat", WARNING),
    "HF012": ("failsafe-ssh-open-to-pods", INFO),
    "HF101": ("shadowed-rule", ERROR),
    "HF102": ("redundant-rule", WARNING),
}

# Namespaces of cluster add-ons: pods there are infrastructure, not applications (HF007).
SYSTEM_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease", "calico-system", "calico-apiserver",
                     "tigera-operator")
SYSTEM_PREFIXES = ("kube-", "calico-", "tigera-")
NODE_PORTS = (30000, 32767)
MANAGEMENT_PORT = 22
MAX_PIECES = 4000
MAX_NAMED = 256
MAX_EXAMPLES = 6

# ----------------------------------------------------------------------------------------------
# Findings
# ----------------------------------------------------------------------------------------------


@dataclass
class Finding:
    code: str
    kind: str
    name: str
    path: str
    message: str
    consequence: str
    fix: str
    origin: Optional[str] = None
    severity: str = ""
    line: Optional[int] = None
    acknowledged: bool = False
    where: List[Dict[str, Any]] = field(default_factory=list)
    rule_annotations: Tuple[Tuple[str, str], ...] = ()

    def __post_init__(self):
        if not self.severity:
            self.severity = CODES[self.code][1]

    @property
    def title(self) -> str:
        return CODES[self.code][0]

    @property
    def location(self) -> str:
        if not self.origin:
            return "(no file: %s %s)" % (self.kind, self.name)
        if self.line:
            return "%s line %d" % (self.origin, self.line)
        return self.origin

    def as_dict(self) -> Dict[str, Any]:
        out = {"code": self.code, "title": self.title, "severity": self.severity, "kind": self.kind, "name": self.name,
               "path": self.path, "source": self.origin, "line": self.line, "message": self.message,
               "consequence": self.consequence, "fix": self.fix, "acknowledged": self.acknowledged}
        if self.where:
            out["where"] = self.where
        return out

    def __str__(self) -> str:
        return "%s %s %s %s: %s: %s (%s)" % (
            self.code, self.severity, self.kind, self.name, self.path, self.message, self.location)


@dataclass
class Report:
    findings: List[Finding]
    timings: Dict[str, float] = field(default_factory=dict)

    def counts(self) -> Dict[str, int]:
        out = {s: 0 for s in SEVERITIES}
        out["acknowledged"] = 0
        for f in self.findings:
            if f.acknowledged:
                out["acknowledged"] += 1
            else:
                out[f.severity] += 1
        return out

    def failing(self, fail_on: str) -> List[Finding]:
        """The unacknowledged findings at or above ``fail_on`` (error, warning; never: none)."""
        if fail_on == "never":
            return []
        levels = (ERROR,) if fail_on == ERROR else (ERROR, WARNING)
        return [f for f in self.findings if not f.acknowledged and f.severity in levels]

    def as_dict(self) -> Dict[str, Any]:
        return {"findings": [f.as_dict() for f in self.findings], "summary": self.counts()}


# ----------------------------------------------------------------------------------------------
# Boxes: the set algebra of rule matches
# ----------------------------------------------------------------------------------------------
# A box is (family, proto, sip, sport, dip, dport, icmp); every dimension after the family is a
# tuple of closed intervals.  A port of -1 stands for "no port" (ICMP...), an ICMP value of -1
# for "not ICMP"; ICMP type t code c is t*256+c.

PROTO_ALL = ((0, 255),)
PORT_ALL = ((-1, 65535),)
ICMP_ALL = ((-1, 65535),)
IP_ALL = {4: ((0, (1 << 32) - 1),), 6: ((0, (1 << 128) - 1),)}
DIMS = (1, 6, 3, 5, 2, 4)  # the order of disjointness tests: cheap dimensions first

Box = Tuple


def iv_norm(ivs: Iterable[Tuple[int, int]]) -> Tuple[Tuple[int, int], ...]:
    out: List[List[int]] = []
    for a, b in sorted(ivs):
        if a > b:
            continue
        if out and a <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return tuple((a, b) for a, b in out)


def iv_and(x, y):
    if x is y:
        return x
    out = []
    i = j = 0
    while i < len(x) and j < len(y):
        a = max(x[i][0], y[j][0])
        b = min(x[i][1], y[j][1])
        if a <= b:
            out.append((a, b))
        if x[i][1] < y[j][1]:
            i += 1
        else:
            j += 1
    return tuple(out)


def iv_sub(x, y):
    out = []
    j = 0
    for a, b in x:
        cur = a
        while j < len(y) and y[j][1] < cur:
            j += 1
        k = j
        while k < len(y) and y[k][0] <= b:
            if y[k][0] > cur:
                out.append((cur, y[k][0] - 1))
            cur = max(cur, y[k][1] + 1)
            if cur > b:
                break
            k += 1
        if cur <= b:
            out.append((cur, b))
    return tuple(out)


def box_and(p: Box, q: Box) -> Optional[Box]:
    if p[0] != q[0]:
        return None
    out = [p[0], None, None, None, None, None, None]
    for d in DIMS:
        v = iv_and(p[d], q[d])
        if not v:
            return None
        out[d] = v
    return tuple(out)


def box_sub(p: Box, q: Box) -> List[Box]:
    """p minus q, as disjoint boxes."""
    if box_and(p, q) is None:
        return [p]
    out = []
    cur = list(p)
    for d in DIMS:
        rest = iv_sub(cur[d], q[d])
        if rest:
            piece = list(cur)
            piece[d] = rest
            out.append(tuple(piece))
        cur[d] = iv_and(cur[d], q[d])
    return out


def region_sub(pieces: List[Box], q: Box) -> List[Box]:
    out = []
    for p in pieces:
        out.extend(box_sub(p, q))
    return out


def region_and(pieces: Sequence[Box], others: Sequence[Box]) -> List[Box]:
    out = []
    for p in pieces:
        for q in others:
            r = box_and(p, q)
            if r is not None:
                out.append(r)
    return out


def universe() -> List[Box]:
    return [(fam, PROTO_ALL, IP_ALL[fam], PORT_ALL, IP_ALL[fam], PORT_ALL, ICMP_ALL) for fam in (4, 6)]


def _ports(ranges) -> Tuple[Tuple[int, int], ...]:
    return iv_norm((r.first, r.last) for r in ranges)


def _icmp(m: api.ICMPMatch):
    if m.code is None:
        return ((m.type * 256, m.type * 256 + 255),)
    return ((m.type * 256 + m.code,) * 2,)


def _side(fam: int, side, exact: bool):
    """(ip intervals, port intervals, named boxes or None, exact) of one rule side."""
    ips = IP_ALL[fam]
    for ref, positive in ((side.nets, True), (side.not_nets, False), (side.sel, True), (side.not_sel, False)):
        if ref is None:
            continue
        ivs = ref.addrs.intervals if ref.addrs.family == fam else ()
        ips = iv_and(ips, ivs) if positive else iv_sub(ips, ivs)
    ports = PORT_ALL
    named = None
    if side.ports or side.named is not None:
        ports = _ports(side.ports)
        if side.named is not None:
            if len(side.named.members) > MAX_NAMED:
                if exact:
                    return None
            else:
                named = sorted(side.named.members)
    if side.not_ports:
        ports = iv_sub(ports, _ports(side.not_ports))
    return ips, ports, named


def match_boxes(m, under: bool) -> Optional[List[Box]]:
    """The boxes of one Match.  ``under``: an under-approximation (for what covers other rules);
    else an over-approximation (for the rule tested).  None when it cannot be computed."""
    fams = (m.family,) if m.family is not None else (4, 6)
    out: List[Box] = []
    for fam in fams:
        if m.protocol is not None:
            proto = ((m.protocol, m.protocol),)
        elif m.not_protocol is not None:
            proto = iv_sub(PROTO_ALL, ((m.not_protocol, m.not_protocol),))
        else:
            proto = PROTO_ALL
        icmp = ICMP_ALL
        if m.icmp is not None and m.icmp.type is not None:
            icmp = _icmp(m.icmp)
        if m.not_icmp is not None and m.not_icmp.type is not None:
            icmp = iv_sub(icmp, _icmp(m.not_icmp))
        s = _side(fam, m.src, under)
        d = _side(fam, m.dst, under)
        if s is None or d is None:
            if under:
                continue  # covers nothing (safe)
            return None
        sip, sport, snamed = s
        dip, dport, dnamed = d
        base = [(fam, proto, sip, sport, dip, dport, icmp)]
        for named, ipd, portd in ((snamed, 2, 3), (dnamed, 4, 5)):
            if named is None:
                continue
            extra = []
            for b in base:
                if b[portd]:
                    extra.append(b)
                for ip, proto_n, port in named:
                    piece = list(b)
                    piece[1] = iv_and(b[1], ((proto_n, proto_n),))
                    piece[ipd] = iv_and(b[ipd], ((ip, ip),))
                    piece[portd] = ((port, port),)
                    if piece[1] and piece[ipd]:
                        extra.append(tuple(piece))
            base = extra
        for side, ipd, portd in ((m.src, 2, 3), (m.dst, 4, 5)):
            if side.not_named is None:
                continue
            members = sorted(side.not_named.members)
            if len(members) > MAX_NAMED:
                if under:
                    base = []
                continue  # over: ignoring an exclusion only grows the match
            for ip, proto_n, port in members:
                hole = [fam, ((proto_n, proto_n),), IP_ALL[fam], PORT_ALL, IP_ALL[fam], PORT_ALL, ICMP_ALL]
                hole[ipd] = ((ip, ip),)
                hole[portd] = ((port, port),)
                base = region_sub(base, tuple(hole))
        out.extend(b for b in base if all(b[d] for d in DIMS))
    return out


def rule_boxes(rule, under: bool) -> Optional[List[Box]]:
    out: List[Box] = []
    for m in rule.variants:
        boxes = match_boxes(m, under)
        if boxes is None:
            return None
        out.extend(boxes)
    return out


def failsafe_box(entry: api.FailsafeEntry, port_dim: int, net_dim: int) -> List[Box]:
    proto = {"tcp": 6, "udp": 17}[entry.protocol]
    out = []
    for fam in (4, 6):
        b = [fam, ((proto, proto),), IP_ALL[fam], PORT_ALL, IP_ALL[fam], PORT_ALL, ICMP_ALL]
        b[port_dim] = ((entry.port, entry.port),)
        if entry.net:
            nfam, a, z = parse_net(entry.net)
            if nfam != fam:
                continue
            b[net_dim] = ((a, z),)
        out.append(tuple(b))
    return out


def sample(box: Box, rnd) -> Packet:
    """A random packet inside ``box`` (tests: random flows)."""
    def pick(ivs):
        a, b = ivs[rnd.randrange(len(ivs))]
        return rnd.randint(a, b)
    fam = box[0]
    from ipaddress import ip_address  # pylint: disable=import-outside-toplevel

    def addr(value):
        return str(ip_address(value)) if fam == 6 else "%d.%d.%d.%d" % (
            value >> 24, (value >> 16) & 255, (value >> 8) & 255, value & 255)
    proto = pick(box[1])
    src = addr(pick(box[2]))
    dst = addr(pick(box[4]))
    if proto in (6, 17, 132):
        sport, dport = pick(box[3]), pick(box[5])
        return Packet(src, dst, proto, sport=None if sport < 0 else sport, dport=None if dport < 0 else dport)
    icmp = pick(box[6])
    if proto in (1, 58) and icmp >= 0:
        return Packet(src, dst, proto, icmp_type=icmp >> 8, icmp_code=icmp & 255)
    return Packet(src, dst, proto)


# ----------------------------------------------------------------------------------------------
# Where findings come from: documents, annotations, lines
# ----------------------------------------------------------------------------------------------

_DOC_START = re.compile(r"^---(\s|$)")
_ORIGIN = re.compile(r"^(?P<file>.*)#(?P<doc>\d+)(?P<items>( items\[\d+\])*)$")


class Sources:
    """Raw documents by origin (for annotations) and line numbers (for findings only: a file is
    read and the one document composed only when a finding points into it)."""

    def __init__(self, documents: Sequence[Tuple[Any, str]], base_dir: str = ""):
        self.docs = {origin: doc for doc, origin in documents}
        self.base_dir = base_dir
        self._files: Dict[str, Optional[List[int]]] = {}

    def annotations(self, origin: Optional[str]) -> Dict[str, str]:
        doc = self.docs.get(origin) if origin else None
        meta = doc.get("metadata") if isinstance(doc, dict) else None
        ann = meta.get("annotations") if isinstance(meta, dict) else None
        return ann if isinstance(ann, dict) else {}

    def _starts(self, path: str) -> Optional[Tuple[List[int], List[str]]]:
        """(first line index of every YAML document, the lines): documents are numbered as the
        loader numbers them (sources.load_manifest_text: from 1, empty ones included)."""
        if path not in self._files:
            full = path if os.path.isabs(path) else os.path.join(self.base_dir, path)
            try:
                with open(full, encoding="utf-8-sig") as handle:
                    lines = handle.read().split("\n")
            except (OSError, UnicodeDecodeError):
                self._files[path] = None
                return None
            markers = [i for i, line in enumerate(lines) if _DOC_START.match(line)]
            head = lines[:markers[0]] if markers else lines
            starts = [0] if any(x.strip() and not x.lstrip().startswith(("#", "%")) for x in head) else []
            starts += [i + 1 for i in markers]
            self._files[path] = (starts, lines)
        return self._files[path]

    def line(self, origin: Optional[str], path: str) -> Optional[int]:
        """1-based line of ``path`` (``spec.ingress[0].source``) in the document ``origin``."""
        if not origin:
            return None
        m = _ORIGIN.match(origin)
        if m is None:
            return None
        found = self._starts(m.group("file"))
        if found is None:
            return None
        starts, lines = found
        n = int(m.group("doc"))
        if n > len(starts):
            return None
        first = starts[n - 1]
        last = starts[n] - 1 if n < len(starts) else len(lines)
        if first >= len(lines):
            return None
        import yaml  # pylint: disable=import-outside-toplevel
        try:
            node = yaml.compose("\n".join(lines[first:last]), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        except yaml.YAMLError:
            return first + 1
        steps = [int(x) for x in re.findall(r"items\[(\d+)\]", m.group("items") or "")]
        trail: List[Any] = ["items", steps[0]] if steps else []
        for step in steps[1:]:
            trail += ["items", step]
        for part in re.findall(r"[^.\[\]]+|\[\d+\]", path or ""):
            trail.append(int(part[1:-1]) if part.startswith("[") else part)
        best = node
        for n_step, step in enumerate(trail):
            nxt = None
            if isinstance(step, int) and isinstance(best, yaml.SequenceNode) and step < len(best.value):
                nxt = best.value[step]
            elif isinstance(step, str) and isinstance(best, yaml.MappingNode):
                for k, v in best.value:
                    if isinstance(k, yaml.ScalarNode) and k.value == step:
                        nxt = k if n_step == len(trail) - 1 else v
                        break
            if nxt is None:
                break
            best = nxt
        if best is None:
            return first + 1
        return first + best.start_mark.line + 1


def _codes(text: Any) -> set:
    if not isinstance(text, str):
        return set()
    return {c.strip().upper() for c in text.split(",") if c.strip()}


# ----------------------------------------------------------------------------------------------
# The lint
# ----------------------------------------------------------------------------------------------

def _is_system(namespace: str) -> bool:
    return namespace in SYSTEM_NAMESPACES or namespace.startswith(SYSTEM_PREFIXES)


def _fmt_cells(cells: Sequence[Mapping]) -> str:
    shown = ["%s -> %s %s %s (%s)" % (c["source"], c["destination"], probe_label(c), c["verdict"], c["reason"])
             for c in cells[:MAX_EXAMPLES]]
    more = len(cells) - len(shown)
    return "; ".join(shown) + ("; and %d more" % more if more > 0 else "")


def _names(names: Sequence[str], limit: int = MAX_EXAMPLES) -> str:
    names = list(names)
    text = ", ".join(names[:limit])
    if len(names) > limit:
        text += " and %d more" % (len(names) - limit)
    return text


def _rule_path(direction: str, index: int, tail: str = "") -> str:
    return "spec.%s[%d]%s" % (direction, index, tail)


def _rule_label(policy: api.Policy, direction: str, index: int, action: str, prefix: str = "") -> str:
    return "%stier %s policy %s %s rule %d (%s)" % (prefix, policy.tier, policy.name, direction, index, action)


class _Unit:
    """One analysed chain: a stage (class) and direction of one endpoint plan."""

    __slots__ = ("stage", "direction", "tiers", "profiles", "skip", "accept", "where")

    def __init__(self, stage, direction, tiers, profiles, skip, accept):
        self.stage = stage
        self.direction = direction
        self.tiers = tiers
        self.profiles = profiles
        self.skip = skip  # [(box, label)] that bypass this stage
        self.accept = accept  # [(box, label)] accepted before the tiers (failsafes)
        self.where: List[Tuple[str, str]] = []  # (host, interface)


class Linter:
    def __init__(self, comp, probes: Optional[Sequence[Mapping]] = None):
        self.comp = comp
        self.model = comp.model
        self.world = comp.model.world
        self.probes = [dict(p) for p in (probes if probes is not None else comp.inventory.probes)]
        self.evaluator = comp.evaluator
        self.builder = MatrixBuilder(self.model, comp.inventory.hosts_of_node)
        self.sources = Sources(getattr(comp.inventory, "documents", None) or [],
                               getattr(comp.inventory, "base_dir", "") or "")
        self.findings: List[Finding] = []
        srcs, dests = matrix_endpoints(self.world)
        self.matrix_sources = srcs
        self.matrix_dests = {e.obj.name: e for e in dests}
        self.plans = {}
        for host in comp.hosts_with_rulesets():
            plan = comp.plan(host)
            if plan is not None and plan.endpoints:
                self.plans[host] = plan
        # failsafe lists per host, interned: hosts alike share one token
        self.fs_token: Dict[str, int] = {}
        self.fs_values: List[Tuple] = []
        interned: Dict[Tuple, int] = {}
        by_id: Dict[int, int] = {}
        for host, plan in self.plans.items():
            token = by_id.get(id(plan.felix))
            if token is None:
                value = (tuple(plan.felix.failsafe_inbound), tuple(plan.felix.failsafe_outbound))
                token = interned.setdefault(value, len(interned))
                if token == len(self.fs_values):
                    self.fs_values.append(value)
                by_id[id(plan.felix)] = token
            self.fs_token[host] = token
        # policy key -> [(host, plan, endpoint plan, class, direction)]
        self.applies: Dict[Tuple, List[Tuple]] = {}
        for host, plan in sorted(self.plans.items()):
            for ep in plan.endpoints:
                for (cls, direction), tiers in ep.tiers:
                    for tp in tiers:
                        for p in tp.policies:
                            self.applies.setdefault(self._pkey(p), []).append((host, plan, ep, cls, direction))

    @staticmethod
    def _pkey(p: api.Policy) -> Tuple:
        return (p.kind, p.namespace, p.name)

    # -- helpers ------------------------------------------------------------------------------

    def add(self, code, obj, kind, name, path, message, consequence, fix, annotations=(), severity="", where=None):
        f = Finding(code, kind, name, path, message, consequence, fix, getattr(obj, "origin", None), severity,
                    where=list(where or [])[:20], rule_annotations=tuple(annotations))
        self.findings.append(f)
        return f

    def policy_name(self, p: api.Policy) -> str:
        return "%s/%s" % (p.namespace, p.name) if p.namespace else p.name

    def hep_dest(self, hep: api.HostEndpoint):
        return self.matrix_dests.get(hep.name)

    def cells_to(self, hep: api.HostEndpoint, sources, probes) -> List[Dict]:
        dst = self.hep_dest(hep)
        out = []
        if dst is None:
            return out
        for s in sources:
            if s.obj is hep:
                continue
            for probe in probes:
                c = self.builder.cell(s, dst, probe)
                if c is not None:
                    out.append(c)
        return out

    def hosts_of(self, entries) -> List[str]:
        return sorted({e[0] for e in entries})

    # -- HF001 --------------------------------------------------------------------------------

    def hf001(self):
        reported = set()
        for host, plan in sorted(self.plans.items()):
            for ep in plan.endpoints:
                for (cls, direction), tiers in ep.tiers:
                    for tp in tiers:
                        if tp.default_action != "Deny":
                            continue
                        rules = {self._pkey(p): self.model.policy_rules(p, direction) for p in tp.policies}
                        if any(r.action != "Log" for rs in rules.values() for r in rs):
                            continue
                        for p in tp.policies:
                            if not rules[self._pkey(p)] or (self._pkey(p), direction) in reported:
                                continue
                            reported.add((self._pkey(p), direction))
                            hosts = sorted({h for h, _pl, _e, c, d in self.applies[self._pkey(p)]
                                            if c == cls and d == direction})
                            example = self._example(plan, ep, direction)
                            self.add("HF001", p, p.kind, self.policy_name(p), "spec.%s" % direction,
                                     "the %s rules are all Log: the policy still makes tier %s apply to %d host "
                                     "endpoint(s), so every packet it logs then meets the end of tier (defaultAction "
                                     "Deny)" % (direction, tp.name, len(hosts)),
                                     "new %s connections of host(s) %s that no failsafe allows are denied%s" % (
                                         direction, _names(hosts), example),
                                     "add the rule that decides after the Log (e.g. '- action: Allow' last), or set "
                                     "the tier's defaultAction: Pass, or remove the policy (calico#3801, #4673)")

    def _example(self, plan, ep, direction) -> str:
        if direction != INGRESS:
            return ""
        cells = [c for c in self.cells_to(ep.hep, self.matrix_sources[:20], self.probes) if c["verdict"] == "deny"]
        return ": e.g. " + _fmt_cells(cells[:3]) if cells else ""

    # -- HF002, HF011 (ports) -------------------------------------------------------------------

    def _port_rules(self):
        """(policy, direction, rule, [entries applying]) for rules with explicit destination ports."""
        seen = set()
        for key, entries in sorted(self.applies.items(), key=lambda kv: kv[0][2]):
            by_dir: Dict[str, List] = {}
            for e in entries:
                if e[3] == FORWARD:
                    continue
                by_dir.setdefault(e[4], []).append(e)
            p = self.world.policies.get(key)
            if p is None:
                continue
            for direction, es in sorted(by_dir.items()):
                for rule in self.model.policy_rules(p, direction):
                    if (key, direction, rule.index) in seen:
                        continue
                    seen.add((key, direction, rule.index))
                    if any(m.dst.ports or m.dst.named is not None for m in rule.variants):
                        yield p, direction, rule, es

    def hf002_hf011(self):
        for p, direction, rule, entries in self._port_rules():
            if rule.action not in ("Deny", "Allow"):
                continue
            over = rule_boxes(rule, under=False) or []
            hits: Dict[str, List[str]] = {}
            by_config: Dict[Tuple, List[str]] = {}
            for host, plan, _ep, _cls, _d in entries:
                by_config.setdefault(self.fs_token[host], []).append(host)
            for token, hosts_fs in by_config.items():
                fs = self.fs_values[token][0 if direction == INGRESS else 1]
                for entry in fs:
                    boxes = failsafe_box(entry, 5, 2 if direction == INGRESS else 4)
                    if region_and(over, boxes):
                        hits.setdefault(str(entry), []).extend(hosts_fs)
            restricted = any(m.src.has_addresses if direction == INGRESS else m.dst.nets or m.dst.sel
                             for m in rule.variants)
            if hits and (rule.action == "Deny" or restricted):
                hosts = sorted({h for hs in hits.values() for h in hs})
                entries_text = ", ".join(sorted(hits))
                if rule.action == "Deny":
                    msg = ("Deny on failsafe port(s) %s: the failsafe accepts those packets before any policy, so "
                           "this rule never denies them" % entries_text)
                    sev = ERROR
                    fix = ("remove the port(s) from the rule, or remove the entry from the FelixConfiguration's "
                           "failsafe%sHostPorts (or narrow it with a net) if the port must be closed (calico#8632)"
                           % ("Inbound" if direction == INGRESS else "Outbound"))
                else:
                    msg = ("the Allow narrows who may use failsafe port(s) %s, but the failsafe accepts every "
                           "source first: the restriction has no effect there" % entries_text)
                    sev = WARNING
                    fix = ("narrow the failsafe itself (FelixConfiguration failsafe%sHostPorts with a net), or drop "
                           "the port from this rule" % ("Inbound" if direction == INGRESS else "Outbound"))
                self.add("HF002", p, p.kind, self.policy_name(p), _rule_path(direction, rule.index), msg,
                         "on host(s) %s every peer still %s %s (failsafe)" % (
                             _names(hosts), "reaches" if direction == INGRESS else "is reached on", entries_text),
                         fix, rule.annotations, severity=sev,
                         where=[{"host": h, "direction": direction} for h in hosts])
            if direction == INGRESS and rule.action == "Deny" and not p.pre_dnat and not p.apply_on_forward:
                nodeport = [(6, 6), (17, 17)]
                box = [(fam, tuple(nodeport), IP_ALL[fam], PORT_ALL, IP_ALL[fam], (NODE_PORTS,), ICMP_ALL)
                       for fam in (4, 6)]
                if region_and(over, box):
                    hosts = self.hosts_of(entries)
                    self.add("HF011", p, p.kind, self.policy_name(p), _rule_path(direction, rule.index, ".destination.ports"),
                             "Deny on NodePort range ports (%d-%d) in a normal ingress policy: kube-proxy DNATs NodePort "
                             "traffic to pods, so it takes the FORWARD path and this rule never sees it" % NODE_PORTS,
                             "clients still reach the NodePort services of host(s) %s" % _names(hosts),
                             "put the Deny in a policy with preDNAT: true and applyOnForward: true (calico#8109, "
                             "#873)", rule.annotations)

    # -- HF003, HF012 (failsafes) ---------------------------------------------------------------

    def _felix_resource(self, attr: str, node: str):
        best = None
        for fc in sorted(self.world.felix_configurations.values(), key=lambda f: f.name):
            if any(a == attr for a, _v in fc.values):
                if fc.name == "node.%s" % node:
                    return fc
                if best is None or fc.name == "default":
                    best = fc
        return best

    def hf003(self):
        groups: Dict[str, List[str]] = {}
        objs = {}
        for host, plan in sorted(self.plans.items()):
            if any(e.protocol == "tcp" and e.port == MANAGEMENT_PORT for e in plan.felix.failsafe_inbound):
                continue
            open_ = False
            for ep in plan.endpoints:
                unit = self.unit_for(plan, ep, NORMAL, INGRESS)
                if unit is None:
                    continue  # no policy and no profile: default deny
                allowed = self.allowed(unit)
                probe = [(fam, ((6, 6),), IP_ALL[fam], PORT_ALL, IP_ALL[fam], ((MANAGEMENT_PORT,) * 2,), ICMP_ALL)
                         for fam in (4, 6)]
                if region_and(allowed, probe):
                    open_ = True
                    break
            if open_:
                continue
            fc = self._felix_resource("failsafe_inbound", plan.node)
            key = fc.name if fc is not None else "(hostfw_failsafe_defaults)"
            objs[key] = fc
            groups.setdefault(key, []).append(host)
        for key, hosts in sorted(groups.items()):
            fc = objs[key]
            self.add("HF003", fc, api.FELIX_CONFIGURATION, key, "spec.failsafeInboundHostPorts",
                     "tcp:%d is not a failsafe port and no policy allows it: nothing keeps the management "
                     "connection open" % MANAGEMENT_PORT,
                     "no source can open SSH (tcp/%d) to host(s) %s: a policy mistake locks you out (calico#13249)"
                     % (MANAGEMENT_PORT, _names(hosts)),
                     "allow tcp/%d from your management network in a policy that selects these hosts, or keep "
                     "{protocol: tcp, port: %d, net: <management CIDR>} in failsafeInboundHostPorts" % (
                         MANAGEMENT_PORT, MANAGEMENT_PORT))

    def hf012(self):
        weps = [s for s in self.matrix_sources if s.kind == api.WORKLOAD_ENDPOINT and s.ips]
        if not weps:
            return
        groups: Dict[str, List[Tuple[str, Any]]] = {}
        objs = {}
        for host, plan in sorted(self.plans.items()):
            entries = [e for e in plan.felix.failsafe_inbound if e.protocol == "tcp" and e.port == MANAGEMENT_PORT]
            if not entries:
                continue
            fc = self._felix_resource("failsafe_inbound", plan.node)
            key = fc.name if fc is not None else "default"
            objs[key] = fc
            groups.setdefault(key, []).append((host, plan))
        probe = {"protocol": "TCP", "port": MANAGEMENT_PORT}
        for key, members in sorted(groups.items()):
            cells = []
            for _host, plan in members:
                for ep in plan.endpoints:
                    cells += [c for c in self.cells_to(ep.hep, weps[:MAX_EXAMPLES], [probe])
                              if c["verdict"] == "allow" and "failsafe" in c["reason"]]
                if len(cells) >= MAX_EXAMPLES:
                    break
            if not cells:
                continue
            hosts = [h for h, _p in members]
            self.add("HF012", objs[key], api.FELIX_CONFIGURATION, key, "spec.failsafeInboundHostPorts",
                     "the failsafe tcp:%d accepts every source, pods included" % MANAGEMENT_PORT,
                     "workloads can open SSH to host(s) %s: %s" % (_names(hosts), _fmt_cells(cells)),
                     "restrict the failsafe to your management network: a FelixConfiguration %s with "
                     "spec.failsafeInboundHostPorts listing {protocol: tcp, port: %d, net: <management CIDR>} (and the "
                     "other ports you keep)" % (key, MANAGEMENT_PORT))

    # -- HF004, HF009 (selectors) ---------------------------------------------------------------

    def _rule_selectors(self):
        """(policy, direction, rule index, side name, EntityRule) of rules with a selector, for the
        policies that apply to some endpoint."""
        for key in sorted(self.applies, key=lambda k: (k[2], k[1] or "")):
            p = self.world.policies.get(key)
            if p is None:
                continue
            for direction in DIRECTIONS:
                rules = p.ingress if direction == INGRESS else p.egress
                if (direction == INGRESS and api.INGRESS not in p.types) or (direction == EGRESS and api.EGRESS not in p.types):
                    continue
                for i, rule in enumerate(rules):
                    for side, entity in (("source", rule.source), ("destination", rule.destination)):
                        if entity.selector is not None:
                            yield p, direction, i, side, entity, rule

    def hf004_hf009(self):
        bare = [h for h in sorted(self.world.host_endpoints.values(), key=lambda h: h.name) if not h.expected_ips]
        for p, direction, i, side, entity, rule in self._rule_selectors():
            sel = entity.selector
            hits = []
            if entity.namespace_selector is None:
                for hep in bare:
                    if sel.matches(self.model.effective_labels(hep.labels, hep.profiles)):
                        hits.append(hep.name)
            empty = not any(self.model.selector_ref(fam, entity, sel, entity.not_selector).addrs for fam in (4, 6))
            path = _rule_path(direction, i, ".%s.selector" % side)
            if hits:
                self.add("HF004", p, p.kind, self.policy_name(p), path,
                         "the selector %s matches host endpoint(s) %s, which have no expectedIPs: they contribute no "
                         "address, so the rule never matches their traffic" % (sel.text, _names(hits)),
                         "traffic %s %s is not matched by this %s rule" % (
                             "from" if side == "source" else "to", _names(hits), rule.action),
                         "set spec.expectedIPs on those HostEndpoints (calico PR #4183, #2956)", rule.annotations)
            elif empty:
                self.add("HF009", p, p.kind, self.policy_name(p), path,
                         "the selector %s matches no endpoint or network set of the inventory: the rule never matches"
                         % sel.text,
                         "the %s rule has no effect%s" % (
                             rule.action, " (fails open: nothing is denied)" if rule.action == "Deny" else ""),
                         "fix the selector's labels, or add the endpoints or network sets it should match (it fails "
                         "silently, Aviator-Coding/home-ops PR #1429)", rule.annotations)
        heps = list(self.world.host_endpoints.values())
        weps = list(self.world.workload_endpoints.values())
        for p in sorted(self.world.policies.values(), key=lambda q: (q.tier, q.name)):
            if p.staged or not p.can_select_hosts or p.selector is None:
                continue
            if any(p.selector.matches(self.model.effective_labels(h.labels, h.profiles)) for h in heps):
                continue
            if any(p.selector.matches(self.model.effective_labels(w.labels, w.profiles)) for w in weps):
                continue
            self.add("HF009", p, p.kind, self.policy_name(p), "spec.selector",
                     "the selector %s matches no HostEndpoint and no workload of the inventory" % p.selector.text,
                     "the policy applies to nothing: none of its rules has any effect",
                     "fix the selector (compare it with the labels of the HostEndpoints, hostfw_labels) or remove the "
                     "policy")

    # -- HF005 --------------------------------------------------------------------------------

    def hf005(self):
        for host, plan in sorted(self.plans.items()):
            addrs = {}
            for ep in plan.endpoints:
                v6 = [ip for ip in ep.hep.expected_ips if family_of(ip) == 6]
                if not v6 and ep.iface == WILDCARD:
                    v6 = [a for ips in (self.comp.inventory.interfaces.get(host) or {}).values() for a in ips
                          if family_of(a) == 6]
                if v6:
                    addrs[ep] = v6[0]
            for ep, addr in addrs.items():
                denied = []
                for what, pkt, fn in (
                        ("neighbour solicitation in", Packet("fe80::1", addr, 58, icmp_type=135, icmp_code=0), "input"),
                        ("neighbour advertisement in", Packet("fe80::1", addr, 58, icmp_type=136, icmp_code=0), "input"),
                        ("neighbour solicitation out", Packet(addr, "fe80::1", 58, icmp_type=135, icmp_code=0), "output"),
                        ("neighbour advertisement out", Packet(addr, "fe80::1", 58, icmp_type=136, icmp_code=0), "output")):
                    v = getattr(self.evaluator, fn)(plan, ep.iface, pkt)
                    if not v.allowed:
                        denied.append("%s (%s)" % (what, v.reason))
                if denied:
                    self.add("HF005", ep.hep, api.HOST_ENDPOINT, ep.hep.name, "spec.expectedIPs",
                             "IPv6 neighbour discovery is denied on host %s (%s): Felix exempts it only for workloads, "
                             "not for host endpoints" % (host, addr),
                             "IPv6 stops working on %s within minutes (no neighbour resolution): %s" % (
                                 host, "; ".join(denied)),
                             "allow ICMPv6 types 133-136 in both directions in a policy that selects this endpoint "
                             "(e.g. '- action: Allow\\n  protocol: ICMPv6\\n  icmp: {type: 135}' and 136, 133, 134; "
                             "firewalld#594)")

    # -- HF006 --------------------------------------------------------------------------------

    def _dual_stack(self, host: str, plan) -> bool:
        fams = {family_of(ip) for ep in plan.endpoints for ip in ep.hep.expected_ips}
        fams |= {family_of(a) for ips in (self.comp.inventory.interfaces.get(host) or {}).values() for a in ips}
        return fams == {4, 6}

    def hf006(self):
        for key, entries in sorted(self.applies.items(), key=lambda kv: kv[0][2]):
            p = self.world.policies.get(key)
            if p is None:
                continue
            for direction in DIRECTIONS:
                rules = p.ingress if direction == INGRESS else p.egress
                for i, rule in enumerate(rules):
                    compiled = self.model.policy_rules(p, direction)[i]
                    nets = [n for e in (rule.source, rule.destination) for n in e.nets + e.not_nets]
                    if not nets:
                        continue
                    vanished = not compiled.variants or all(
                        any(ref is not None and ref.addrs.intervals == IP_ALL[m.family or 4]
                            for ref in (m.src.not_nets, m.dst.not_nets)) for m in compiled.variants)
                    if vanished and rule.ip_version is None:
                        self.add("HF006", p, p.kind, self.policy_name(p), _rule_path(direction, i),
                                 "the rule matches no packet of either family: its nets/notNets leave nothing (a "
                                 "negated catch-all such as notNets: [0.0.0.0/0] drops the rule for IPv4, and nets of "
                                 "one family drop it for the other)",
                                 "the %s rule never applies" % rule.action,
                                 "rewrite the rule without the negated catch-all, or split it per family (calico#9211)",
                                 rule.annotations, severity=ERROR)
                        continue
                    not_nets = [n for e in (rule.source, rule.destination) for n in e.not_nets]
                    fams_not = {family_of(n) for n in not_nets}
                    fams_pos = {family_of(n) for e in (rule.source, rule.destination) for n in e.nets}
                    if rule.ip_version is not None or len(fams_not) != 1 or (fams_pos - fams_not):
                        continue
                    hosts = sorted({h for h, plan, _ep, _c, d in entries if d == direction
                                    and self._dual_stack(h, plan)})
                    if not hosts:
                        continue
                    other = 6 if 4 in fams_not else 4
                    self.add("HF006", p, p.kind, self.policy_name(p), _rule_path(direction, i),
                             "notNets of IPv%d only: the rule has no IPv%d variant at all (Calico drops a rule whose "
                             "nets cannot match a family), so it does not apply to IPv%d" % (
                                 6 if other == 4 else 4, other, other),
                             "on the dual-stack host(s) %s, IPv%d traffic is not %s by this rule" % (
                                 _names(hosts), other, {"Deny": "denied", "Allow": "allowed"}.get(rule.action, "matched")),
                             "add the IPv%d networks to notNets too (e.g. notNets: [10.0.0.0/8, fd00::/8]) or add a "
                             "rule with ipVersion: %d" % (other, other), rule.annotations)

    # -- HF007 --------------------------------------------------------------------------------

    def hf007(self):
        weps = [s for s in self.matrix_sources if s.kind == api.WORKLOAD_ENDPOINT and s.ips]
        apps = [s for s in weps if not _is_system(s.obj.namespace)]
        for key, entries in sorted(self.applies.items(), key=lambda kv: kv[0][2]):
            p = self.world.policies.get(key)
            if p is None:
                continue
            heps = sorted({e[2].hep.name: e[2].hep for e in entries if e[4] == INGRESS}.items())
            if heps and apps:
                for rule in self.model.policy_rules(p, INGRESS):
                    if rule.action != "Allow":
                        continue
                    admitted = [s for s in apps if self._src_admits(rule, s.ips[0])]
                    if not admitted:
                        continue
                    label = _rule_label(p, INGRESS, rule.index, rule.action)
                    probes = list(self.probes)
                    for m in rule.variants:
                        for r in m.dst.ports[:1]:
                            extra = {"protocol": api.PROTOCOL_NAMES.get(m.protocol or 6, "TCP"), "port": r.first}
                            if extra["protocol"] in ("TCP", "UDP", "SCTP") and extra not in probes:
                                probes.append(extra)
                    cells = []
                    for _name, hep in heps:
                        cells += [c for c in self.cells_to(hep, admitted, probes)
                                  if c["verdict"] == "allow" and label in c["reason"]]
                    if not cells:
                        continue
                    pods = sorted({c["source"] for c in cells})
                    raw = (p.ingress[rule.index].source.selector.text if p.ingress[rule.index].source.selector is not None
                           else "its source")
                    self.add("HF007", p, p.kind, self.policy_name(p), _rule_path(INGRESS, rule.index, ".source"),
                             "the source %s admits application pods (%s) to the host endpoints: a compromised pod can "
                             "reach the nodes" % (raw, _names(pods)),
                             "pods reach the nodes: %s" % _fmt_cells(cells),
                             "narrow the source to the nodes and the cluster's add-ons (e.g. role == 'node' || "
                             "has(k8s-app)), never all() or the application namespaces", rule.annotations,
                             where=[{"source": c["source"], "destination": c["destination"],
                                     "protocol": c["protocol"], "port": c["port"]} for c in cells])
            if (p.selector is None or p.selector.is_all) and weps and heps:
                selected = list(self.world.workload_endpoints.values())
                self.add("HF007", p, p.kind, self.policy_name(p), "spec.selector",
                         "selector all() selects every workload as well as the host endpoints",
                         "the %d workload(s) of the inventory (%s) now get tier %s's policy: their traffic that this "
                         "policy does not allow meets the tier's end-of-tier Deny" % (
                             len(selected), _names(["%s/%s" % (w.namespace, w.name) for w in selected]), p.tier),
                         "select the hosts only (e.g. selector: role == 'node', or has(host-endpoint))",
                         severity=WARNING)

    def _src_admits(self, rule, ip: str) -> bool:
        fam, value = parse_ip(ip)
        for m in rule.variants:
            if m.family not in (None, fam):
                continue
            s = m.src
            ok = True
            for ref, positive in ((s.nets, True), (s.not_nets, False), (s.sel, True), (s.not_sel, False)):
                if ref is not None and (value in ref.addrs) != positive:
                    ok = False
            if ok:
                return True
        return False

    # -- HF008 --------------------------------------------------------------------------------

    def hf008(self):
        groups: Dict[str, List[str]] = {}
        objs = {}
        for host, plan in sorted(self.plans.items()):
            if plan.felix.default_endpoint_to_host_action == "Drop" or not plan.workloads:
                continue
            cells = []
            for wep in plan.workloads:
                if not wep.ip_networks:
                    continue
                src = next((s for s in self.matrix_sources if s.obj is wep), None)
                for ep in plan.endpoints:
                    dst = self.hep_dest(ep.hep)
                    if src is None or dst is None:
                        continue
                    pod_ip = src.ips[0]
                    dst_ips = [ip for ip in ep.hep.expected_ips if family_of(ip) == family_of(pod_ip)]
                    if not dst_ips:
                        continue
                    for probe in self.probes:
                        local = self.builder.cell(src, dst, probe)
                        if local is None or local["verdict"] != "allow":
                            continue
                        from ansible_collections.hostfw.nftables.plugins.plugin_utils.matrix import probe_packet  # pylint: disable=import-outside-toplevel
                        remote = self.evaluator.input(plan, ep.iface, probe_packet(pod_ip, dst_ips[0], probe))
                        if not remote.allowed:
                            cells.append(local)
            if cells:
                fc = self._felix_resource("default_endpoint_to_host_action", plan.node)
                key = fc.name if fc is not None else "default"
                objs[key] = fc
                groups.setdefault(key, []).extend(cells)
        for key, cells in sorted(groups.items()):
            self.add("HF008", objs[key], api.FELIX_CONFIGURATION, key, "spec.defaultEndpointToHostAction",
                     "defaultEndpointToHostAction is not Drop: a pod's traffic to its own node skips the host endpoint "
                     "policy that denies the same traffic from other nodes",
                     "local pods reach their node: %s" % _fmt_cells(cells),
                     "set spec.defaultEndpointToHostAction: Drop (and allow what pods need from their node in workload "
                     "policy), calico#2797, kubespray PR #1090")

    # -- HF010 --------------------------------------------------------------------------------

    def hf010(self):
        by_tier: Dict[Tuple[str, float], List[api.Policy]] = {}
        for p in self.model.host_policies:
            if p.order is not None and self._pkey(p) in self.applies:
                by_tier.setdefault((p.tier, p.order), []).append(p)
        for (_tier, order), pols in sorted(by_tier.items()):
            if len(pols) < 2:
                continue
            pols = sorted(pols, key=lambda q: q.key)
            for i, a in enumerate(pols):
                for b in pols[i + 1:]:
                    common = {(e[2].hep.name, e[3], e[4]) for e in self.applies[self._pkey(a)]} & \
                        {(e[2].hep.name, e[3], e[4]) for e in self.applies[self._pkey(b)]}
                    dirs = sorted({d for _h, _c, d in common})
                    conflict = None
                    for d in dirs:
                        for ra in self.model.policy_rules(a, d):
                            for rb in self.model.policy_rules(b, d):
                                if ra.action == rb.action or "Log" in (ra.action, rb.action):
                                    continue
                                if region_and(rule_boxes(ra, False) or [], rule_boxes(rb, False) or []):
                                    conflict = (d, ra, rb)
                                    break
                            if conflict:
                                break
                        if conflict:
                            break
                    if conflict is None:
                        continue
                    d, ra, rb = conflict
                    hosts = sorted({h for h, _c, dd in common if dd == d})
                    self.add("HF010", b, b.kind, self.policy_name(b), "spec.order",
                             "order %g is also the order of policy %s in tier %s, and their rules conflict (%s rule %d "
                             "%s vs rule %d %s): Calico breaks the tie by name, so %s decides" % (
                                 order, self.policy_name(a), a.tier, d, ra.index, ra.action, rb.index, rb.action,
                                 self.policy_name(a)),
                             "on host endpoint(s) %s, the overlap of the two rules is %sed (by %s), not %sed" % (
                                 _names(hosts), ra.action.lower().rstrip("e") if ra.action == "Allow" else "deni",
                                 self.policy_name(a), rb.action.lower()),
                             "give the two policies different orders, the one that must win lower (NCA reports this as "
                             "undefined behaviour)")

    # -- HF101, HF102: anomalies ----------------------------------------------------------------

    def unit_for(self, plan, ep, stage, direction) -> Optional[_Unit]:
        fs_in = plan.felix.failsafe_inbound
        fs_out = plan.felix.failsafe_outbound
        src_dim, dst_dim = 2, 4
        if stage == FORWARD:
            tiers = ep.tiers_for(FORWARD, direction)
            return _Unit(stage, direction, tiers, (), [], []) if tiers else None
        if stage == UNTRACKED:
            if ep.iface == WILDCARD:
                return None
            tiers = ep.tiers_for(UNTRACKED, direction)
            if not tiers:
                return None
            if direction == INGRESS:
                skip = [(b, "failsafe inbound %s" % e) for e in fs_in for b in failsafe_box(e, 5, src_dim)]
                skip += [(b, "failsafe outbound %s" % e) for e in fs_out for b in failsafe_box(e, 3, src_dim)]
            else:
                skip = [(b, "failsafe outbound %s" % e) for e in fs_out for b in failsafe_box(e, 5, dst_dim)]
                skip += [(b, "failsafe inbound %s" % e) for e in fs_in for b in failsafe_box(e, 3, dst_dim)]
            return _Unit(stage, direction, tiers, (), skip, [])
        if stage == PREDNAT:
            if direction != INGRESS:
                return None
            tiers = ep.tiers_for(PREDNAT, INGRESS)
            if not tiers:
                return None
            skip = [(b, "failsafe inbound %s" % e) for e in fs_in for b in failsafe_box(e, 5, src_dim)]
            return _Unit(stage, direction, tiers, (), skip, [])
        tiers = ep.tiers_for(NORMAL, direction)
        if not tiers and not ep.profiles:
            return None
        if direction == INGRESS:
            accept = [(b, "failsafe inbound %s" % e) for e in fs_in for b in failsafe_box(e, 5, src_dim)]
        else:
            accept = [(b, "failsafe outbound %s" % e) for e in fs_out for b in failsafe_box(e, 5, dst_dim)]
        return _Unit(stage, direction, tiers, ep.profiles, [], accept)

    def _stage_prefix(self, stage):
        return {NORMAL: "", UNTRACKED: "doNotTrack ", PREDNAT: "preDNAT ", FORWARD: "applyOnForward "}[stage]

    def walk(self, unit: _Unit, record=None) -> List[Box]:
        """Walk one chain with sets.  ``record(rule_key, rule, decides, blockers)`` is called for
        every non-Log rule; returns the over-approximated region that the chain allows."""
        pos: Optional[List[Box]] = None
        neg: List[Tuple[Box, str, str]] = [(b, label, "Allow") for b, label in unit.accept]
        neg += [(b, label, "skip") for b, label in unit.skip]
        allowed: List[Box] = [b for b, _l in unit.accept]
        reach_label = None
        prefix = self._stage_prefix(unit.stage)
        chains = [(tp.name, tp.default_action, [(p, self.model.policy_rules(p, unit.direction)) for p in tp.policies],
                   False) for tp in unit.tiers]
        for prof in unit.profiles:
            chains.append(("profile " + prof.name, "Pass", [(prof, self.model.profile_rules(prof, unit.direction))], True))
        for name, default, members, is_profile in chains:
            earlier: List[Tuple[Box, str, str]] = []
            pass_over: List[Box] = []
            for owner, rules in members:
                for rule in rules:
                    if rule.action == "Log":
                        continue
                    over = rule_boxes(rule, under=False)
                    under = rule_boxes(rule, under=True) or []
                    if is_profile:
                        label = "profile %s %s rule %d (%s)" % (owner.name, unit.direction, rule.index, rule.action)
                    else:
                        label = _rule_label(owner, unit.direction, rule.index, rule.action, prefix)
                    decides, blockers, pieces = True, [], None
                    if over:  # a rule that matches nothing at all is not an anomaly of order (HF006, HF009)
                        pieces = list(over)
                        if pos is not None:
                            kept = region_and(pieces, pos)
                            if len(kept) != len(pieces) or kept != pieces:
                                if reach_label:
                                    blockers.append(reach_label)
                            pieces = kept
                        for b, blabel, action in neg + earlier:
                            if not pieces:
                                break
                            if any(box_and(p, b) is not None for p in pieces):
                                blockers.append((blabel, action))
                                pieces = region_sub(pieces, b)
                                if len(pieces) > MAX_PIECES:
                                    pieces = None
                                    break
                        decides = pieces is None or bool(pieces)
                    if record is not None and not is_profile:
                        record((self._pkey(owner), unit.direction, rule.index), owner, rule, decides, blockers)
                    if rule.action == "Allow":
                        allowed.extend(pieces if pieces is not None else (over or []))
                    if rule.action == "Pass":
                        pass_over.extend(pieces if pieces is not None else (over if over is not None else universe()))
                    earlier.extend((b, label, rule.action) for b in under)
            if default == "Deny":
                pos = pass_over
                reach_label = ("end of %stier %s (defaultAction Deny)" % (prefix, name), "Deny")
            else:
                # Allow/Deny rules before the first Pass rule decide for good: they leave the reach
                cut = []
                for b, blabel, action in earlier:
                    if action == "Pass":
                        break
                    cut.append((b, blabel, action))
                neg = neg + cut
        return allowed

    def allowed(self, unit: _Unit) -> List[Box]:
        return self.walk(unit)

    def anomalies(self):
        state: Dict[Tuple, Dict[str, Any]] = {}
        unit_where: Dict[Tuple, List[Dict[str, Any]]] = {}
        for host, plan in sorted(self.plans.items()):
            for ep in plan.endpoints:
                for stage in (UNTRACKED, PREDNAT, NORMAL, FORWARD):
                    for direction in DIRECTIONS:
                        unit = self.unit_for(plan, ep, stage, direction)
                        if unit is None:
                            continue
                        ukey = (stage, direction, id(unit.tiers), tuple(p.name for p in unit.profiles),
                                tuple(b for b, _l in unit.skip + unit.accept))
                        where = {"host": host, "interface": ep.iface, "direction": direction, "stage": stage}
                        if ukey in unit_where:
                            unit_where[ukey].append(where)
                            continue
                        unit_where[ukey] = [where]

                        def record(key, owner, rule, decides, blockers, ukey=ukey):
                            st = state.setdefault(key, {"policy": owner, "rule": rule, "decides": False,
                                                        "blockers": [], "units": []})
                            st["units"].append(ukey)
                            if decides:
                                st["decides"] = True
                            else:
                                for b in blockers:
                                    if b not in st["blockers"]:
                                        st["blockers"].append(b)
                        self.walk(unit, record)
        for st in state.values():
            st["where"] = [w for u in st["units"] for w in unit_where[u]]
        for key, st in sorted(state.items(), key=lambda kv: (kv[0][0][2], kv[0][1], kv[0][2])):
            if st["decides"]:
                continue
            p, rule = st["policy"], st["rule"]
            blockers = st["blockers"]
            actions = {a for _l, a in blockers}
            labels = [lbl for lbl, _a in blockers]
            if actions <= {"Allow"} and rule.action == "Deny" and all(lbl.startswith("failsafe") for lbl in labels) \
                    and any(f.code == "HF002" and f.name == self.policy_name(p) and
                            f.path == _rule_path(key[1], key[2]) for f in self.findings):
                continue  # HF002 says it
            same = actions == {rule.action}
            hosts = sorted({w["host"] for w in st["where"]})
            code = "HF102" if same else "HF101"
            what = "redundant" if same else "shadowed"
            self.add(code, p, p.kind, self.policy_name(p), _rule_path(key[1], key[2]),
                     "the rule is %s: every packet it matches is decided before it, on every endpoint it applies to, "
                     "by %s" % (what, _names(labels, 4) if labels else "earlier tiers"),
                     "the %s rule never decides a verdict on host(s) %s%s" % (
                         rule.action, _names(hosts),
                         "" if same else "; the traffic it names gets the earlier verdict instead"),
                     "remove the rule%s" % (
                         "" if same else ", or move it before %s (order, or an earlier tier), or narrow that rule" % (
                             labels[0] if labels else "them")),
                     rule.annotations, where=st["where"])

    # -- all ----------------------------------------------------------------------------------

    def run(self) -> Report:
        import time  # pylint: disable=import-outside-toplevel
        timings = {}
        for check in (self.hf001, self.hf002_hf011, self.hf003, self.hf004_hf009, self.hf005, self.hf006,
                      self.hf007, self.hf008, self.hf010, self.hf012, self.anomalies):
            t0 = time.perf_counter()
            check()
            timings[check.__name__] = time.perf_counter() - t0
        for f in self.findings:
            codes = _codes(self.sources.annotations(f.origin).get(IGNORE_ANNOTATION))
            codes |= _codes(dict(f.rule_annotations).get(IGNORE_ANNOTATION))
            f.acknowledged = f.code in codes
            f.line = self.sources.line(f.origin, f.path)
        order = {s: i for i, s in enumerate(SEVERITIES)}
        self.findings.sort(key=lambda f: (order[f.severity], f.code, f.origin or "", f.line or 0, f.name, f.path))
        return Report(self.findings, timings)


def run(comp, probes: Optional[Sequence[Mapping]] = None) -> Report:
    """Lint a :class:`compiler.Compilation`."""
    return Linter(comp, probes).run()


def to_markdown(report: Report) -> str:
    counts = report.counts()
    lines = ["# hostfw lint", "",
             "%d error(s), %d warning(s), %d info, %d acknowledged (annotation %s)." % (
                 counts[ERROR], counts[WARNING], counts[INFO], counts["acknowledged"], IGNORE_ANNOTATION), ""]
    if not report.findings:
        lines.append("No findings.")
    for f in report.findings:
        heading = "## %s %s (%s)%s: %s %s" % (
            f.code, f.title, f.severity, " acknowledged" if f.acknowledged else "", f.kind, f.name)
        lines += [heading, "",
                  "- where: `%s` %s" % (f.path, f.location),
                  "- what: %s" % f.message,
                  "- consequence: %s" % f.consequence,
                  "- fix: %s" % f.fix, ""]
    return "\n".join(lines) + "\n"


def failing_text(findings: Sequence[Finding]) -> str:
    return "\n".join(str(f) for f in findings)


__all__ = ["Finding", "Report", "Linter", "run", "to_markdown", "CODES", "IGNORE_ANNOTATION", "rule_boxes",
           "match_boxes", "sample", "failing_text", "FAIL_ON"]
