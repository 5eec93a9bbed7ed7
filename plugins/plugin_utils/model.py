# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The policy model of one inventory: indexes built once, per-host plans built on demand.

``Model(world, inventory)`` indexes every endpoint and network set once.  ``Model.host_plan(host)``
resolves one host: which HostEndpoint governs which interface (docs/semantics.md §4.2), and for each
of them the ordered tiers and policies per class (untracked, pre-DNAT, normal, forward) and
direction (§3.3), plus profiles.  Rules are compiled once per policy and direction into
:class:`Match` variants per IP family (§4.9) whose address sets are shared objects keyed by the
canonical selector (§2.4).  The evaluator interprets plans; the renderer prints them.

Two worlds share the index: the *enforced* world (what the tables enforce) and the *pending*
world (§3.7): the enforced world with every staged policy applied as its promotion would apply
it.  ``host_plan(host, pending=True)`` resolves a host in the pending world; endpoints that no
staged policy changes share the enforced plan's tier tuples (the same objects).

Cost: selectors are evaluated once per distinct label set, not per endpoint; plans and compiled
rules are cached, so hosts with the same labels and policies share all compiled work.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Dict, FrozenSet, List, Optional, Sequence, Tuple

from ansible_collections.hostfw.nftables.plugins.plugin_utils import api, selector
from ansible_collections.hostfw.nftables.plugins.plugin_utils.addrset import AddrSet, family_of, parse_net
from ansible_collections.hostfw.nftables.plugins.plugin_utils.felix import FelixConfig, for_node

UNTRACKED = "untracked"
PREDNAT = "prednat"
NORMAL = "normal"
FORWARD = "forward"
CLASSES = (UNTRACKED, PREDNAT, NORMAL, FORWARD)
INGRESS = "ingress"
EGRESS = "egress"
DIRECTIONS = (INGRESS, EGRESS)
WILDCARD = "*"
ANY_INTERFACE = "any-interface-at-all"  # Felix's name for the "*" endpoint's chains; > 15 characters

CLASS_TITLES = {UNTRACKED: "doNotTrack", PREDNAT: "preDNAT", NORMAL: "normal", FORWARD: "applyOnForward"}

LabelKey = FrozenSet[Tuple[str, str]]

ENFORCED = "enforced"
PENDING = "pending"
WORLDS = (ENFORCED, PENDING)
# The enforced kind a staged kind is promoted to.
STAGED_TWIN = {api.STAGED_GLOBAL_NETWORK_POLICY: api.GLOBAL_NETWORK_POLICY,
               api.STAGED_NETWORK_POLICY: api.NETWORK_POLICY}


def short_hash(text: str, n: int = 10) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:n]


# --------------------------------------------------------------------------------------------
# Shared match objects
# --------------------------------------------------------------------------------------------

class AddrRef:
    """An address set used by rules: a selector set, a net list, or inline nets.

    ``name`` is the nft set name when the set is named (selectors, long net lists), else None
    (a single inline CIDR).  ``comment`` says what the set stands for.
    """

    __slots__ = ("name", "addrs", "comment", "kind")

    def __init__(self, name: Optional[str], addrs: AddrSet, comment: str, kind: str):
        self.name = name
        self.addrs = addrs
        self.comment = comment
        self.kind = kind  # "selector" or "nets"

    def __repr__(self) -> str:
        return "AddrRef(%s, %r)" % (self.name, self.addrs)


class NamedPortRef:
    """(address, protocol, port) triples of one named port within a scope, for one family."""

    __slots__ = ("name", "family", "members", "comment")

    def __init__(self, name: str, family: int, members: FrozenSet[Tuple[int, int, int]], comment: str):
        self.name = name
        self.family = family
        self.members = members
        self.comment = comment


@dataclass(frozen=True)
class Side:
    """One side (source or destination) of a rule for one family."""

    nets: Optional[AddrRef] = None
    not_nets: Optional[AddrRef] = None
    sel: Optional[AddrRef] = None
    not_sel: Optional[AddrRef] = None
    ports: Tuple[api.PortRange, ...] = ()
    named: Optional[NamedPortRef] = None
    not_ports: Tuple[api.PortRange, ...] = ()
    not_named: Optional[NamedPortRef] = None

    @property
    def has_addresses(self) -> bool:
        return any(x is not None for x in (self.nets, self.not_nets, self.sel, self.not_sel, self.named, self.not_named))


@dataclass(frozen=True)
class Match:
    """The match part of one rule for one family (``family`` None = both families)."""

    family: Optional[int]
    protocol: Optional[int] = None
    not_protocol: Optional[int] = None
    src: Side = field(default_factory=Side)
    dst: Side = field(default_factory=Side)
    icmp: Optional[api.ICMPMatch] = None
    not_icmp: Optional[api.ICMPMatch] = None


@dataclass(frozen=True)
class StagedChange:
    """What promoting one staged policy does to the enforced world (docs/semantics.md §3.7):
    ``action`` is its stagedAction (Set, Delete, Learn or Ignore; unset and "" are Set);
    ``target`` is the enforced policy of the same kind twin, namespace and name that a Set
    replaces or a Delete removes (None when there is none)."""

    staged: api.Policy
    action: str
    target: Optional[api.Policy] = None

    @property
    def changes_world(self) -> bool:
        return self.action == "Set" or (self.action == "Delete" and self.target is not None)

    def as_dict(self) -> Dict[str, str]:
        name = self.staged.name if self.staged.namespace is None else "%s/%s" % (self.staged.namespace, self.staged.name)
        return {"kind": self.staged.kind, "name": name, "tier": self.staged.tier, "stagedAction": self.action}


def pending_policies(world: api.World) -> Tuple[Dict[Tuple, api.Policy], Tuple[StagedChange, ...], List[str]]:
    """The policies of the pending world, the staged changes (sorted by kind, namespace, name)
    and warnings.  A staged Set adds its policy (the staged object itself) or replaces the
    enforced policy of the same name; Delete removes that enforced policy; Learn and Ignore
    change nothing.  Identity is the name (and namespace), as for Calico: a Set of a name whose
    enforced policy is in another tier moves it there, as applying the promoted policy would."""
    enforced = {key: p for key, p in world.policies.items() if not p.staged}
    pending = dict(enforced)
    changes = []
    warnings = []
    staged = sorted((p for p in world.policies.values() if p.staged),
                    key=lambda p: (p.kind, p.namespace or "", p.name))
    for p in staged:
        action = p.staged_action or "Set"
        twin = (STAGED_TWIN[p.kind], p.namespace, p.name)
        target = enforced.get(twin)
        who = "%s %s" % (p.kind, p.name if p.namespace is None else "%s/%s" % (p.namespace, p.name))
        if action == "Set":
            pending.pop(twin, None)
            pending[(p.kind, p.namespace, p.name)] = p
            if target is not None and target.tier != p.tier:
                warnings.append("%s moves %s %s from tier %s to tier %s once promoted"
                                % (who, target.kind, target.name, target.tier, p.tier))
        elif action == "Delete":
            if target is None:
                warnings.append("%s (stagedAction Delete): there is no %s %s, so promoting it deletes nothing"
                                % (who, twin[0], p.name))
            else:
                pending.pop(twin, None)
                if p.tier != target.tier:
                    warnings.append("%s (stagedAction Delete) names tier %s, but %s %s is in tier %s: promoting it "
                                    "deletes it all the same" % (who, p.tier, target.kind, target.name, target.tier))
        changes.append(StagedChange(p, action, target))
    return pending, tuple(changes), warnings


@dataclass(frozen=True)
class CompiledRule:
    owner: str  # "tier/policy" or "profile name"
    owner_kind: str  # "policy" or "profile"
    direction: str
    index: int
    action: str
    variants: Tuple[Match, ...]
    annotations: Tuple[Tuple[str, str], ...] = ()

    @property
    def label(self) -> str:
        return "%s %s rule %d (%s)" % (self.owner, self.direction, self.index, self.action)


# --------------------------------------------------------------------------------------------
# Plans
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TierPlan:
    tier: api.Tier
    policies: Tuple[api.Policy, ...]
    default_action: str  # effective: "Deny" or "Pass" (untracked/pre-DNAT are always "Pass")

    @property
    def name(self) -> str:
        return self.tier.name


@dataclass(frozen=True)
class EndpointPlan:
    hep: api.HostEndpoint
    iface: str  # interface name or "*"
    tiers: Tuple[Tuple[Tuple[str, str], Tuple[TierPlan, ...]], ...]  # ((class, direction), tiers)
    profiles: Tuple[api.Profile, ...]

    def tiers_for(self, cls: str, direction: str) -> Tuple[TierPlan, ...]:
        for key, tiers in self.tiers:
            if key == (cls, direction):
                return tiers
        return ()

    @property
    def has_forward_tiers(self) -> bool:
        return bool(self.tiers_for(FORWARD, INGRESS) or self.tiers_for(FORWARD, EGRESS))

    @property
    def chain_id(self) -> str:
        """The interface part of the endpoint's chain names.  The "*" endpoint's is longer than any
        interface name can be (15 characters), so no interface can take it over."""
        return ANY_INTERFACE if self.iface == WILDCARD else self.iface


@dataclass
class HostPlan:
    host: str
    node: str
    endpoints: Tuple[EndpointPlan, ...]  # named interfaces sorted by name, then the "*" endpoint
    felix: FelixConfig
    warnings: List[str] = field(default_factory=list)
    # WorkloadEndpoints whose spec.node is this host's node (sorted by namespace/name): their traffic
    # to the host takes Felix's workload-to-host path, with or without a HostEndpoint (§6)
    workloads: Tuple[api.WorkloadEndpoint, ...] = ()

    @property
    def wildcard(self) -> Optional[EndpointPlan]:
        for ep in self.endpoints:
            if ep.iface == WILDCARD:
                return ep
        return None

    def named(self) -> Tuple[EndpointPlan, ...]:
        return tuple(ep for ep in self.endpoints if ep.iface != WILDCARD)

    def endpoint_for_iface(self, iface: str) -> Optional[EndpointPlan]:
        """The endpoint that governs ``iface`` (None: not policed).  Workload interfaces are
        never host endpoints (they take the DefaultEndpointToHostAction path on input)."""
        for ep in self.endpoints:
            if ep.iface == iface:
                return ep
        if self.is_workload_iface(iface):
            return None
        return self.wildcard

    def is_workload_iface(self, iface: str) -> bool:
        return any(iface.startswith(p) for p in self.felix.interface_prefixes)


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------

class _Addressable:
    """Something a rule selector can select: a HEP, a WEP or a network set."""

    __slots__ = ("kind", "namespace", "labels", "nets", "ports", "obj")

    def __init__(self, kind, namespace, labels, nets, ports, obj):
        self.kind = kind  # "hep", "wep", "gns", "ns"
        self.namespace = namespace
        self.labels = labels
        self.nets = nets  # tuple of CIDR/IP strings
        self.ports = ports  # tuple of api.EndpointPort
        self.obj = obj


def _tier_sort_key(tier: api.Tier):
    return (tier.order is None, tier.order if tier.order is not None else 0.0, tier.name)


def _policy_sort_key(policy: api.Policy):
    return (policy.order is None, policy.order if policy.order is not None else 0.0, policy.key)


class Model:
    """Index of one inventory's world.  Build once per run; ask for host plans."""

    def __init__(self, world: api.World, nodes: Optional[Dict[str, str]] = None,
                 interfaces: Optional[Dict[str, Dict[str, Sequence[str]]]] = None,
                 node_labels: Optional[Dict[str, Dict[str, str]]] = None,
                 failsafe_defaults: Optional[Dict[str, str]] = None):
        self.world = world
        # node name -> hostfw_failsafe_defaults ("protect-hosts" when absent)
        self.failsafe_defaults = failsafe_defaults or {}
        # node name -> Calico Node labels (what FelixConfiguration nodeSelectors match)
        self.node_labels = node_labels or {}
        # inventory_hostname -> node name (identity when not given)
        self.nodes = dict(nodes) if nodes else {}
        self.interfaces = interfaces or {}
        self.warnings: List[str] = []

        self.tiers = sorted(world.tiers.values(), key=_tier_sort_key)
        self.tier_rank = {t.name: i for i, t in enumerate(self.tiers)}
        # Enforced policies that can select a host endpoint, in evaluation order.
        host_policies = [p for p in world.policies.values() if p.can_select_hosts and not p.staged]
        host_policies.sort(key=lambda p: (self.tier_rank[p.tier],) + _policy_sort_key(p))
        self.host_policies: Tuple[api.Policy, ...] = tuple(host_policies)
        # The pending world (§3.7): the enforced policies with every staged policy promoted.
        self.staged_changes: Tuple[StagedChange, ...] = ()
        self.pending_host_policies: Tuple[api.Policy, ...] = self.host_policies
        if any(p.staged for p in world.policies.values()):
            pending, self.staged_changes, staged_warnings = pending_policies(world)
            self.warnings.extend(staged_warnings)
            pols = [p for p in pending.values() if p.can_select_hosts and p.tier in self.tier_rank]
            pols.sort(key=lambda p: (self.tier_rank[p.tier],) + _policy_sort_key(p))
            self.pending_host_policies = tuple(pols)

        self.heps_by_node: Dict[str, List[api.HostEndpoint]] = {}
        for hep in sorted(world.host_endpoints.values(), key=lambda h: h.name):
            self.heps_by_node.setdefault(hep.node, []).append(hep)
        self.workloads_by_node: Dict[str, List[api.WorkloadEndpoint]] = {}
        for (_ns, _name), wep in sorted(world.workload_endpoints.items()):
            if wep.node:
                self.workloads_by_node.setdefault(wep.node, []).append(wep)

        self._labels_cache: Dict[Tuple, Dict[str, str]] = {}
        self._addressables = self._index_addressables()
        self._groups = self._group_addressables()
        # label -> value -> positions in _groups: selectors with a required label value
        # (Selector.required) test only the groups that carry it
        self._group_index: Dict[str, Dict[str, List[int]]] = {}
        for pos, group in enumerate(self._groups):
            for k, v in group[2].items():
                self._group_index.setdefault(k, {}).setdefault(v, []).append(pos)
        self._namespace_labels = self._index_namespaces()

        self._sel_cache: Dict[Tuple, AddrRef] = {}
        self._nets_cache: Dict[Tuple, AddrRef] = {}
        self._named_cache: Dict[Tuple, NamedPortRef] = {}
        self._rules_cache: Dict[Tuple, Tuple[CompiledRule, ...]] = {}
        self._policies_for_labels: Dict[Tuple[bool, LabelKey], Tuple[api.Policy, ...]] = {}
        self._endpoint_cache: Dict[Tuple, EndpointPlan] = {}
        self._plans_by_selection: Dict[Tuple, Tuple] = {}

    # -- labels ---------------------------------------------------------------------------

    def effective_labels(self, labels: Dict[str, str], profiles: Sequence[str]) -> Dict[str, str]:
        """Own labels, then labelsToApply of the profiles in order for missing keys."""
        if not profiles:
            return labels
        key = (frozenset(labels.items()), tuple(profiles))
        hit = self._labels_cache.get(key)
        if hit is not None:
            return hit
        out = dict(labels)
        for name in profiles:
            prof = self.world.profiles.get(name)
            if prof is None:
                continue
            for k, v in prof.labels_to_apply.items():
                out.setdefault(k, v)
        self._labels_cache[key] = out
        return out

    def _index_addressables(self) -> List[_Addressable]:
        out = []
        for hep in self.world.host_endpoints.values():
            out.append(_Addressable("hep", None, self.effective_labels(hep.labels, hep.profiles),
                                    hep.expected_ips, hep.ports, hep))
        for wep in self.world.workload_endpoints.values():
            out.append(_Addressable("wep", wep.namespace, self.effective_labels(wep.labels, wep.profiles),
                                    wep.ip_networks, wep.ports, wep))
        for ns in self.world.network_sets.values():
            kind = "ns" if ns.namespace else "gns"
            out.append(_Addressable(kind, ns.namespace, ns.labels, ns.nets, (), ns))
        return out

    def _group_addressables(self):
        """Group addressables by (kind, namespace, labels): selectors run once per group."""
        groups: Dict[Tuple, List[_Addressable]] = {}
        for a in self._addressables:
            groups.setdefault((a.kind, a.namespace, frozenset(a.labels.items())), []).append(a)
        return [(key[0], key[1], members[0].labels, members) for key, members in sorted(
            groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or "", sorted(kv[0][2])))]

    def _index_namespaces(self) -> Dict[str, Dict[str, str]]:
        """Namespace labels: the implicit name labels plus ``kns.<ns>`` profiles' ``pcns.`` labels."""
        names = set()
        for a in self._addressables:
            if a.namespace:
                names.add(a.namespace)
        out = {}
        for ns in names:
            labels = {"projectcalico.org/name": ns, "kubernetes.io/metadata.name": ns}
            prof = self.world.profiles.get("kns." + ns)
            if prof is not None:
                for k, v in prof.labels_to_apply.items():
                    if k.startswith("pcns."):
                        labels[k[len("pcns."):]] = v
            out[ns] = labels
        return out

    # -- rule selectors -> address sets ------------------------------------------------------

    def _scope_groups(self, entity: api.EntityRule, sel=None):
        """The addressable groups a rule selector ``sel`` of ``entity`` is evaluated against
        (§2.5), in a stable order.  When ``sel`` requires a label value, only the groups that
        carry it are returned (the others cannot match)."""
        groups = self._groups
        required = getattr(sel, "required", None)
        if required is not None:
            by_value = self._group_index.get(required[0], {})
            groups = [self._groups[pos] for pos in sorted({pos for v in required[1] for pos in by_value.get(v, ())})]
        if entity.global_scope:
            return [g for g in groups if g[0] in ("hep", "gns")], "global()"
        if entity.namespace_selector is not None:
            nssel = entity.namespace_selector
            ok = {ns for ns, labels in self._namespace_labels.items() if nssel.matches(labels)}
            return [g for g in groups if g[0] in ("wep", "ns") and g[1] in ok], "namespaceSelector " + nssel.canonical
        return groups, None

    def selector_ref(self, family: int, entity: api.EntityRule, sel, not_sel) -> AddrRef:
        """Address set for ``sel`` (and, when both are given, ``sel && !not_sel``) in the scope
        of ``entity``.  One set per canonical selector, scope and family."""
        scope_key = ("g" if entity.global_scope else
                     ("n", entity.namespace_selector.canonical) if entity.namespace_selector is not None else "a")
        key = (family, sel.canonical if sel is not None else None,
               not_sel.canonical if not_sel is not None else None, scope_key)
        ref = self._sel_cache.get(key)
        if ref is not None:
            return ref
        groups, scope_text = self._scope_groups(entity, sel)
        intervals = []
        for _kind, _ns, labels, members in groups:
            if sel is not None and not sel.matches(labels):
                continue
            if not_sel is not None and not_sel.matches(labels):
                continue
            for m in members:
                for n in m.nets:
                    fam, a, b = parse_net(n)
                    if fam == family:
                        intervals.append((a, b))
        if not_sel is not None:
            text = "(%s) && !(%s)" % (sel.canonical, not_sel.canonical)
        else:
            text = sel.canonical
        if scope_text:
            text = "%s in %s" % (text, scope_text)
        name = "sel%d_%s" % (family, short_hash(repr(key)))
        ref = AddrRef(name, AddrSet(family, intervals), "selector " + text, "selector")
        self._sel_cache[key] = ref
        return ref

    def nets_ref(self, family: int, nets: Sequence[str]) -> Optional[AddrRef]:
        fam_nets = tuple(n for n in nets if family_of(n) == family)
        if not fam_nets:
            return None
        key = (family, fam_nets)
        ref = self._nets_cache.get(key)
        if ref is None:
            addrs = AddrSet.from_nets(family, fam_nets)
            name = None if addrs.count() == 1 and len(addrs.elements()) == 1 else "net%d_%s" % (family, short_hash(repr(key)))
            ref = AddrRef(name, addrs, "nets " + ", ".join(fam_nets), "nets")
            self._nets_cache[key] = ref
        return ref

    def named_port_ref(self, family: int, entity: api.EntityRule, port_name: str, protocol: Optional[int]) -> NamedPortRef:
        """(ip, proto, port) triples for ``port_name`` on endpoints in scope that match the
        same-direction selector (§4.8)."""
        sel = entity.selector
        scope_key = ("g" if entity.global_scope else
                     ("n", entity.namespace_selector.canonical) if entity.namespace_selector is not None else "a")
        key = (family, port_name, protocol, sel.canonical if sel is not None else None, scope_key)
        ref = self._named_cache.get(key)
        if ref is not None:
            return ref
        groups, scope_text = self._scope_groups(entity, sel)
        members = set()
        for kind, _ns, labels, group in groups:
            if kind not in ("hep", "wep"):
                continue
            if sel is not None and not sel.matches(labels):
                continue
            for m in group:
                for p in m.ports:
                    if p.name != port_name or (protocol is not None and p.protocol != protocol):
                        continue
                    for n in m.nets:
                        fam, a, _b = parse_net(n)
                        if fam == family:
                            members.add((a, p.protocol, p.port))
        text = "named port %s" % port_name
        if protocol is not None:
            text += " (%s)" % api.PROTOCOL_NAMES.get(protocol, protocol)
        if sel is not None:
            text += " on %s" % sel.canonical
        if scope_text:
            text += " in " + scope_text
        ref = NamedPortRef("np%d_%s" % (family, short_hash(repr(key))), family, frozenset(members), text)
        self._named_cache[key] = ref
        return ref

    # -- rules --------------------------------------------------------------------------------

    def compiled_rules(self, owner_kind: str, owner: str, rules: Sequence[api.Rule], direction: str,
                       cache_key: Tuple) -> Tuple[CompiledRule, ...]:
        key = (cache_key, direction)
        hit = self._rules_cache.get(key)
        if hit is not None:
            return hit
        out = []
        for index, rule in enumerate(rules):
            out.append(CompiledRule(owner, owner_kind, direction, index, rule.action,
                                    self._variants(rule), rule.annotations))
        result = tuple(out)
        self._rules_cache[key] = result
        return result

    def policy_rules(self, policy: api.Policy, direction: str) -> Tuple[CompiledRule, ...]:
        rules = policy.ingress if direction == INGRESS else policy.egress
        return self.compiled_rules("policy", "%s/%s" % (policy.tier, policy.name), rules, direction,
                                   ("policy", policy.kind, policy.namespace, policy.name))

    def profile_rules(self, profile: api.Profile, direction: str) -> Tuple[CompiledRule, ...]:
        rules = profile.ingress if direction == INGRESS else profile.egress
        return self.compiled_rules("profile", "profile " + profile.name, rules, direction, ("profile", profile.name))

    def _variants(self, rule: api.Rule) -> Tuple[Match, ...]:
        """Per-family variants of a rule (§4.9); one family-less variant when nothing in the
        rule is family-specific."""
        families = []
        for fam in (4, 6):
            if rule.ip_version is not None and rule.ip_version != fam:
                continue
            if rule.protocol == 1 and fam == 6 or rule.protocol == 58 and fam == 4:
                continue  # ICMP never matches IPv6 packets and vice versa
            dropped = False
            for nets in (rule.source.nets, rule.source.not_nets, rule.destination.nets, rule.destination.not_nets):
                if nets and not any(family_of(n) == fam for n in nets):
                    dropped = True
            if not dropped:
                families.append(fam)
        if not families:
            return ()
        sides = {fam: (self._side(fam, rule.source, rule.protocol), self._side(fam, rule.destination, rule.protocol))
                 for fam in families}
        specific = any(s.has_addresses or d.has_addresses for s, d in sides.values())
        if not specific and families == [4, 6] and rule.ip_version is None:
            src, dst = sides[4]
            return (Match(None, rule.protocol, rule.not_protocol, src, dst, rule.icmp, rule.not_icmp),)
        return tuple(Match(fam, rule.protocol, rule.not_protocol, sides[fam][0], sides[fam][1], rule.icmp, rule.not_icmp)
                     for fam in families)

    def _side(self, family: int, entity: api.EntityRule, protocol: Optional[int]) -> Side:
        sel = entity.selector
        not_sel = entity.not_selector
        scoped = entity.global_scope or entity.namespace_selector is not None
        if sel is None and scoped:
            # A namespaceSelector alone selects every endpoint/set in the matched namespaces.
            sel = selector.ALL
        sel_ref = not_sel_ref = None
        if sel is not None:
            sel_ref = self.selector_ref(family, entity, sel, not_sel)
        elif not_sel is not None:
            not_sel_ref = self.selector_ref(family, entity, not_sel, None)
        ranges = tuple(p for p in entity.ports if isinstance(p, api.PortRange))
        names = [p.name for p in entity.ports if isinstance(p, api.NamedPort)]
        not_ranges = tuple(p for p in entity.not_ports if isinstance(p, api.PortRange))
        not_names = [p.name for p in entity.not_ports if isinstance(p, api.NamedPort)]
        return Side(
            nets=self.nets_ref(family, entity.nets),
            not_nets=self.nets_ref(family, entity.not_nets),
            sel=sel_ref,
            not_sel=not_sel_ref,
            ports=ranges,
            named=self._named_union(family, entity, names, protocol),
            not_ports=not_ranges,
            not_named=self._named_union(family, entity, not_names, protocol),
        )

    def _named_union(self, family, entity, names, protocol) -> Optional[NamedPortRef]:
        if not names:
            return None
        refs = [self.named_port_ref(family, entity, n, protocol) for n in sorted(set(names))]
        if len(refs) == 1:
            return refs[0]
        key = (family, tuple(r.name for r in refs))
        ref = self._named_cache.get(key)
        if ref is None:
            members = frozenset().union(*(r.members for r in refs))
            ref = NamedPortRef("np%d_%s" % (family, short_hash(repr(key))), family, members,
                               "named ports " + ", ".join(sorted(set(names))))
            self._named_cache[key] = ref
        return ref

    # -- host plans ---------------------------------------------------------------------------

    def felix_for(self, node: str) -> FelixConfig:
        """The FelixConfiguration of one node (felix.for_node, with the node's labels)."""
        return for_node(self.world.felix_configurations, node, self.node_labels.get(node, {}),
                        self.failsafe_defaults.get(node, "protect-hosts"))

    def node_of(self, host: str) -> str:
        return self.nodes.get(host, host)

    @property
    def has_staged(self) -> bool:
        """Whether the world has any staged policy (the matrix then carries pending verdicts)."""
        return bool(self.staged_changes)

    def policies_selecting(self, labels: Dict[str, str], pending: bool = False) -> Tuple[api.Policy, ...]:
        pending = pending and self.pending_host_policies is not self.host_policies
        key = (pending, frozenset(labels.items()))
        hit = self._policies_for_labels.get(key)
        if hit is None:
            pols = self.pending_host_policies if pending else self.host_policies
            hit = tuple(p for p in pols if p.selector is None or p.selector.matches(labels))
            if pending:
                # the same policies as enforced: the same tuple, so that plans are shared
                enforced = self.policies_selecting(labels)
                if tuple(map(id, enforced)) == tuple(map(id, hit)):
                    hit = enforced
            self._policies_for_labels[key] = hit
        return hit

    def endpoint_plan(self, hep: api.HostEndpoint, iface: str, pending: bool = False) -> EndpointPlan:
        """The plan of one endpoint.  The tiers depend only on the labels, the profiles and whether
        the endpoint is "*", so endpoints alike (hosts of one role) share them.  ``pending``: in
        the pending world (an endpoint no staged policy changes gets the enforced tiers object)."""
        pending = pending and self.pending_host_policies is not self.host_policies
        key = (frozenset(hep.labels.items()), hep.profiles, iface == WILDCARD, pending)
        hit = self._endpoint_cache.get(key)
        if hit is not None:
            tiers, profiles = hit
            return EndpointPlan(hep, iface, tiers, profiles)
        labels = self.effective_labels(hep.labels, hep.profiles)
        selected = self.policies_selecting(labels, pending)
        buckets: Dict[Tuple[str, str], Dict[str, List[api.Policy]]] = {}
        for p in selected:
            for cls, direction in self._placements(p):
                if cls == UNTRACKED and iface == WILDCARD:
                    continue  # Felix ignores doNotTrack policy on "*" endpoints (warned once)
                buckets.setdefault((cls, direction), {}).setdefault(p.tier, []).append(p)
        tiers = []
        for cls in CLASSES:
            for direction in DIRECTIONS:
                by_tier = buckets.get((cls, direction))
                if not by_tier:
                    continue
                plans = []
                for tier in self.tiers:
                    pols = by_tier.get(tier.name)
                    if not pols:
                        continue
                    default = "Pass" if cls in (UNTRACKED, PREDNAT) else tier.default_action
                    plans.append(TierPlan(tier, tuple(pols), default))
                tiers.append(((cls, direction), tuple(plans)))
        profiles = tuple(self.world.profiles[n] for n in hep.profiles if n in self.world.profiles)
        # Endpoints selected by the same policies share one tiers object (labels may differ):
        # the renderer caches tier sections and whole table shapes by its identity.
        ident = (tuple(map(id, selected)), iface == WILDCARD, tuple(map(id, profiles)))
        shared = self._plans_by_selection.get(ident)
        if shared is None:
            shared = (tuple(tiers), profiles)
            self._plans_by_selection[ident] = shared
        self._endpoint_cache[key] = shared
        return EndpointPlan(hep, iface, shared[0], shared[1])

    def has_pass(self, policy: api.Policy, direction: str) -> bool:
        key = ("pass", policy.kind, policy.namespace, policy.name, direction)
        hit = self._rules_cache.get(key)
        if hit is None:
            hit = any(r.action == "Pass" for r in self.policy_rules(policy, direction))
            self._rules_cache[key] = hit
        return hit

    @staticmethod
    def _placements(p: api.Policy):
        dirs = []
        if api.INGRESS in p.types:
            dirs.append(INGRESS)
        if api.EGRESS in p.types:
            dirs.append(EGRESS)
        out = []
        for d in dirs:
            if p.do_not_track:
                out.append((UNTRACKED, d))
            elif p.pre_dnat:
                if d == INGRESS:
                    out.append((PREDNAT, d))
            else:
                out.append((NORMAL, d))
                if p.apply_on_forward:
                    out.append((FORWARD, d))
        return out

    def host_plan(self, host: str, pending: bool = False) -> Optional[HostPlan]:
        """The plan of one inventory host, or None when it has neither a HostEndpoint nor a local
        workload (a WorkloadEndpoint whose spec.node is the host's node).  ``pending``: the plan
        in the pending world (§3.7)."""
        node = self.node_of(host)
        heps = self.heps_by_node.get(node) or []
        workloads = tuple(self.workloads_by_node.get(node, ()))
        if not heps and not workloads:
            return None
        felix = self.felix_for(node)
        warnings: List[str] = []

        def excluded(name: str) -> bool:
            return any(name.startswith(p) for p in felix.interface_prefixes)

        def ignored(name: str) -> bool:
            """interfaceExclude (names or /regex/): never a named host endpoint's interface (§4.1);
            the "*" endpoint still covers it (§4.2)."""
            for item in felix.interface_exclude:
                if len(item) > 1 and item.startswith("/") and item.endswith("/"):
                    if re.search(item[1:-1], name):
                        return True
                elif item == name:
                    return True
            return False

        # 4.2: named (or IP-matched) HEPs per interface, smallest HEP name wins; "*" separately.
        claims: Dict[str, List[api.HostEndpoint]] = {}
        wildcards = []
        known = self.interfaces.get(host) or {}
        for hep in heps:
            if hep.interface_name == WILDCARD:
                wildcards.append(hep)
            elif hep.interface_name:
                if excluded(hep.interface_name):
                    warnings.append("HostEndpoint %s names %s, a workload interface (interfacePrefix %s): "
                                    "it is never enforced" % (hep.name, hep.interface_name,
                                                              ",".join(felix.interface_prefixes)))
                    continue
                if ignored(hep.interface_name):
                    warnings.append("HostEndpoint %s names %s, an interface of interfaceExclude (%s): it is never "
                                    "enforced" % (hep.name, hep.interface_name, ",".join(felix.interface_exclude)))
                    continue
                claims.setdefault(hep.interface_name, []).append(hep)
            else:
                ips = set(hep.expected_ips)
                matched = [ifname for ifname, addrs in sorted(known.items())
                           if ips & {str(a).split("/", maxsplit=1)[0] for a in addrs}
                           and not excluded(ifname) and not ignored(ifname)]
                if not matched:
                    warnings.append("HostEndpoint %s has no interfaceName and none of its expectedIPs (%s) is on a "
                                    "known interface of host %s (set hostfw_interfaces): it is not enforced"
                                    % (hep.name, ", ".join(hep.expected_ips), host))
                for ifname in matched:
                    claims.setdefault(ifname, []).append(hep)
        endpoints = []
        for ifname in sorted(claims):
            cands = sorted(claims[ifname], key=lambda h: h.name)
            for loser in cands[1:]:
                warnings.append("HostEndpoint %s is inactive on %s: %s wins (smallest name)"
                                % (loser.name, ifname, cands[0].name))
            endpoints.append(self.endpoint_plan(cands[0], ifname, pending))
        if wildcards:
            wildcards.sort(key=lambda h: h.name)
            for loser in wildcards[1:]:
                warnings.append("HostEndpoint %s is inactive: %s is the all-interfaces endpoint (smallest name)"
                                % (loser.name, wildcards[0].name))
            ep = self.endpoint_plan(wildcards[0], WILDCARD, pending)
            if any(p.do_not_track for p in self.policies_selecting(
                    self.effective_labels(wildcards[0].labels, wildcards[0].profiles), pending)):
                warnings.append("doNotTrack policies selecting the all-interfaces HostEndpoint %s are ignored, "
                                "as in Calico" % wildcards[0].name)
            endpoints.append(ep)
        return HostPlan(host, node, tuple(endpoints), felix, warnings, workloads)
