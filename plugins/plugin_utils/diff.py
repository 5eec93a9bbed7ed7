# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The semantic matrix diff: which connections a change opens and closes, and why.

``diff_compilations(old, new, probes)`` compares two compiled worlds; ``diff_matrix(old_matrix, new,
probes)`` compares an earlier ``matrix.json`` with a compiled world.  Both return the
``matrix-diff.json`` data (docs/reviewing.md)::

    {"old": label, "new": label, "probes": [...],
     "summary": {"opened": n, "closed": n, "unchanged": n, "only_old": n, "only_new": n, "cells": n},
     "changes": [{"source", "destination", "protocol", "port", "change": "opened"|"closed",
                  "old": {"verdict", "reason"}, "new": {"verdict", "reason"}}],
     "groups": [{"change", "sources", "destinations", "probes", "old_reason", "new_reason", "count"}]}

A cell is the matrix's cell (``matrix.MatrixBuilder.cell``: the first packet of a new connection
from a source endpoint to a destination host endpoint, for one probe).  A cell that exists in one
world only is compared against ``absent``, which counts as deny: a new cell that allows is
*opened*, a removed cell that allowed is *closed*; a new or removed cell that denies changes no
connection and counts as unchanged (``only_old``/``only_new`` count them all).

**Equivalence classes.**  The verdict of a cell depends on the source's kind, the family and the
address-set membership of its address (every set that any rule's source side, or a failsafe net,
uses), its host's plan when it is a HostEndpoint, and on the destination's plan (shared by
identity between hosts alike), interface and the set membership of its address.  Endpoints with
equal keys behave alike, so verdicts are computed once per (source class, destination class,
probe) and per world; cells whose two endpoints are on one node (a host to itself, a pod to its
own host) are evaluated one by one.  Only the cells that change are evaluated one by one (for
their exact reasons), up to ``max_changes``.

``load_old(path, probes)`` reads what ``hostfw_compare_to`` names: an earlier output directory
(its ``matrix.json``), a ``matrix.json`` file, or an inventory (a file, or a directory holding
one of :data:`INVENTORY_NAMES`) compiled as the old world by this same core.  The inventory is
read with Ansible's own loader, ``ansible-inventory --list`` (every inventory format, group_vars
and host_vars with Ansible's precedence), run as a subprocess of the controller's Python; no
Ansible module is imported here.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from ansible_collections.hostfw.nftables.plugins.plugin_utils import api, errors, sources
from ansible_collections.hostfw.nftables.plugins.plugin_utils.addrset import family_of, parse_ip, parse_net
from ansible_collections.hostfw.nftables.plugins.plugin_utils.matrix import MatrixBuilder, matrix_endpoints, probe_label
from ansible_collections.hostfw.nftables.plugins.plugin_utils.model import DIRECTIONS

OPENED = "opened"
CLOSED = "closed"
ABSENT = "absent"
CHANGES = (OPENED, CLOSED)
DEFAULT_MAX_CHANGES = 100000
MD_CELLS_PER_GROUP = 5
MD_NAMES = 8
INVENTORY_NAMES = ("inventory.yml", "inventory.yaml", "inventory", "inventory.ini", "hosts.yml", "hosts.yaml",
                   "hosts", "hosts.ini")


def _absent(label: str) -> Dict[str, str]:
    return {"verdict": ABSENT, "reason": "no such cell in %s (an endpoint is missing, or has no address of the "
                                         "family)" % label}


def probe_key(probe: Mapping) -> Tuple[str, Any]:
    return (probe["protocol"], probe.get("port"))


# ----------------------------------------------------------------------------------------------
# One world, by equivalence classes
# ----------------------------------------------------------------------------------------------

def _ref_id(ref) -> Tuple:
    """The identity of an address-set reference that is the same in two worlds: the model names a
    selector or net-list set after its canonical key (model.AddrRef.name, .comment)."""
    return (ref.kind, ref.name, ref.comment) if hasattr(ref, "kind") else ("named", ref.name, ref.comment)


class _Membership:
    """Which address sets (and named-port triples) of one rule side an address is in: a signature
    comparable between two worlds (sets are named by their selector or nets, not by identity)."""

    def __init__(self):
        self.sets: Dict[int, List[Tuple[Tuple, Any]]] = {4: [], 6: []}
        self._seen = set()
        self.named: Dict[Tuple[int, int], List[Tuple[Tuple, int, int]]] = {}
        self._cache: Dict[str, Tuple] = {}

    def add_set(self, ident: Tuple, addrs) -> None:
        if ident in self._seen:
            return
        self._seen.add(ident)
        self.sets[addrs.family].append((ident, addrs))

    def add_named(self, ref) -> None:
        ident = _ref_id(ref)
        if ident in self._seen:
            return
        self._seen.add(ident)
        for ip, proto, port in ref.members:
            self.named.setdefault((ref.family, ip), []).append((ident, proto, port))

    def signature(self, ip: str) -> Tuple:
        hit = self._cache.get(ip)
        if hit is None:
            fam, value = parse_ip(ip)
            inside = tuple(sorted(ident for ident, addrs in self.sets[fam] if value in addrs))
            hit = (fam, inside, tuple(sorted(self.named.get((fam, value), ()))))
            self._cache[ip] = hit
        return hit


class ClassMatrix:
    """The matrix of one compiled world, computed on equivalence classes of endpoints."""

    def __init__(self, comp, probes: Sequence[Mapping], label: str, interned: Optional[Dict[Any, int]] = None):
        self.comp = comp
        # plan shapes by value -> token; shared by the two worlds of a diff so that keys compare
        self.interned: Dict[Any, int] = interned if interned is not None else {}
        self.label = label
        self.probes = [dict(p) for p in probes]
        self.builder = MatrixBuilder(comp.model, comp.inventory.hosts_of_node)
        sources_, dests = matrix_endpoints(comp.model.world)
        self.sources = {e.name: e for e in sources_}
        self.dests = {e.name: e for e in dests}
        self._src_side = _Membership()
        self._dst_side = _Membership()
        self._collect_sets()
        self._src_keys: Dict[str, Any] = {}
        self._dst_keys: Dict[str, Any] = {}
        self._memo: Dict[Tuple, Optional[str]] = {}
        self._shapes: Dict[Tuple, Any] = {}
        self._felix_ids: Dict[int, int] = {}
        self._keep: List[Any] = []
        self.evaluated = 0

    def _collect_sets(self) -> None:
        model = self.comp.model
        rules = []
        for policy in model.host_policies:
            for direction in DIRECTIONS:
                rules.extend(model.policy_rules(policy, direction))
        for profile in model.world.profiles.values():
            for direction in DIRECTIONS:
                rules.extend(model.profile_rules(profile, direction))
        for rule in rules:
            for m in rule.variants:
                for side, member in ((m.src, self._src_side), (m.dst, self._dst_side)):
                    for ref in (side.nets, side.not_nets, side.sel, side.not_sel):
                        if ref is not None:
                            member.add_set(_ref_id(ref), ref.addrs)
                    for ref in (side.named, side.not_named):
                        if ref is not None:
                            member.add_named(ref)
        plans = [self.builder.plan_of_node(node) for node in sorted({h.node for h in model.world.host_endpoints.values()})]
        configs = {plan.felix for plan in plans if plan is not None}
        for config in configs:
            for entry in tuple(config.failsafe_inbound) + tuple(config.failsafe_outbound):
                if entry.net:
                    fam, a, b = parse_net(entry.net)
                    for member in (self._src_side, self._dst_side):
                        member.add_set(("failsafe", entry.net), _addrset(fam, a, b))

    # -- keys ---------------------------------------------------------------------------------

    def _felix_token(self, config) -> int:
        token = self._felix_ids.get(id(config))
        if token is None:
            token = self.interned.setdefault(("felix", config), len(self.interned))
            self._felix_ids[id(config)] = token
            self._keep.append(config)
        return token

    def _plan_shape(self, node: str):
        """What the evaluator reads of a node's plan, by value (equal in two worlds when the
        policies, tiers, profiles and Felix settings that apply are equal)."""
        plan = self.builder.plan_of_node(node)
        if plan is None:
            return None
        key = tuple((ep.iface, id(ep.tiers), id(ep.profiles)) for ep in plan.endpoints) + (self._felix_token(plan.felix),)
        hit = self._shapes.get(key)
        if hit is None:
            value = (tuple((ep.iface, ep.tiers, ep.profiles) for ep in plan.endpoints), plan.felix)
            hit = self.interned.setdefault(value, len(self.interned))  # a small token, equal for equal values
            self._shapes[key] = hit
            self._keep.append(plan)
        return hit

    def src_key(self, name: str):
        if name in self._src_keys:
            return self._src_keys[name]
        ep = self.sources.get(name)
        key = None
        if ep is not None and ep.ips:
            key = (ep.kind, self._src_side.signature(ep.ips[0]))
            if ep.kind == api.HOST_ENDPOINT:
                key += (self._plan_shape(ep.obj.node), MatrixBuilder._iface(ep.obj))  # pylint: disable=protected-access
        self._src_keys[name] = key
        return key

    def dst_key(self, name: str):
        if name in self._dst_keys:
            return self._dst_keys[name]
        ep = self.dests.get(name)
        key = None
        if ep is not None:
            fams = []
            for fam in (4, 6):
                ips = [ip for ip in ep.ips if family_of(ip) == fam]
                if ips:
                    fams.append(self._dst_side.signature(ips[0]))
            key = (self._plan_shape(ep.obj.node), MatrixBuilder._iface(ep.obj), tuple(fams))  # pylint: disable=protected-access
        self._dst_keys[name] = key
        return key

    def special(self, src: str, dst: str) -> bool:
        """Cells evaluated one by one: an endpoint to itself, and endpoints on one node."""
        if src == dst:
            return True
        s, d = self.sources.get(src), self.dests.get(dst)
        if s is None or d is None:
            return False
        node = getattr(s.obj, "node", "")
        return bool(node) and node == d.obj.node

    # -- verdicts -----------------------------------------------------------------------------

    def exists(self, src: str, dst: str, probe: Mapping) -> bool:
        """Whether the matrix has this cell (MatrixBuilder.cell's conditions, without evaluating)."""
        s, d = self.sources.get(src), self.dests.get(dst)
        if s is None or d is None or src == dst or not s.ips:
            return False
        fam = family_of(s.ips[0])
        if not any(family_of(ip) == fam for ip in d.ips):
            return False
        return not (probe["protocol"] == "ICMP" and fam == 6 or probe["protocol"] == "ICMPv6" and fam == 4)

    def cell(self, src: str, dst: str, probe: Mapping) -> Optional[Dict]:
        """The exact cell (MatrixBuilder.cell), or None when the world has no such cell."""
        s, d = self.sources.get(src), self.dests.get(dst)
        if s is None or d is None or src == dst:
            return None
        self.evaluated += 1
        return self.builder.cell(s, d, probe)

    def verdict(self, src: str, dst: str, pi: int) -> Optional[str]:
        """allow, deny or None (no cell), from the class memo unless the cell is special."""
        if src == dst or src not in self.sources or dst not in self.dests:
            return None
        if self.special(src, dst):
            c = self.cell(src, dst, self.probes[pi])
            return c["verdict"] if c is not None else None
        skey = self.src_key(src)
        if skey is None:
            return None
        key = (skey, self.dst_key(dst), pi)
        if key not in self._memo:
            c = self.cell(src, dst, self.probes[pi])
            self._memo[key] = c["verdict"] if c is not None else None
        return self._memo[key]


def _addrset(fam: int, a: int, b: int):
    from ansible_collections.hostfw.nftables.plugins.plugin_utils.addrset import AddrSet  # pylint: disable=import-outside-toplevel
    return AddrSet(fam, [(a, b)])


# ----------------------------------------------------------------------------------------------
# The diff
# ----------------------------------------------------------------------------------------------

def _change(old_v: Optional[str], new_v: Optional[str]) -> Optional[str]:
    old_open = old_v == "allow"
    new_open = new_v == "allow"
    if old_open == new_open:
        return None
    return OPENED if new_open else CLOSED


class _Tally:
    def __init__(self):
        self.summary = {OPENED: 0, CLOSED: 0, "unchanged": 0, "only_old": 0, "only_new": 0, "cells": 0}
        self.pending: List[Tuple[str, str, int]] = []  # changed cells to expand: (source, destination, probe index)
        self.truncated = False

    def add(self, old_v, new_v, count, cells=None, max_changes=DEFAULT_MAX_CHANGES):
        if count <= 0 or (old_v is None and new_v is None):
            return
        self.summary["cells"] += count
        if old_v is None and new_v is not None:
            self.summary["only_new"] += count
        elif new_v is None and old_v is not None:
            self.summary["only_old"] += count
        change = _change(old_v, new_v)
        if change is None:
            self.summary["unchanged"] += count
            return
        self.summary[change] += count
        for item in cells() if cells is not None else ():
            if len(self.pending) >= max_changes:
                self.truncated = True
                break
            self.pending.append(item)


def diff_compilations(old, new, probes: Sequence[Mapping], old_label: str = "old", new_label: str = "new",
                      max_changes: int = DEFAULT_MAX_CHANGES) -> Dict[str, Any]:
    """The diff of two compiled worlds (:class:`compiler.Compilation`) over ``probes``."""
    interned: Dict[Any, int] = {}
    om = ClassMatrix(old, probes, old_label, interned)
    nm = ClassMatrix(new, probes, new_label, interned)
    tally = _Tally()
    src_names = sorted(set(om.sources) | set(nm.sources))
    dst_names = sorted(set(om.dests) | set(nm.dests))
    src_classes: Dict[Tuple, List[str]] = {}
    for name in src_names:
        key = (om.src_key(name) if name in om.sources else ABSENT, nm.src_key(name) if name in nm.sources else ABSENT)
        if key == (None, None) or None in key and ABSENT in key:
            continue  # no cell in either world
        src_classes.setdefault(key, []).append(name)
    dst_classes: Dict[Tuple, List[str]] = {}
    for name in dst_names:
        key = (om.dst_key(name) if name in om.dests else ABSENT, nm.dst_key(name) if name in nm.dests else ABSENT)
        dst_classes.setdefault(key, []).append(name)
    special = set()
    for mat in (om, nm):
        dests_of_node: Dict[str, List[str]] = {}
        for dname, dep in mat.dests.items():
            dests_of_node.setdefault(dep.obj.node, []).append(dname)
        for name, ep in mat.sources.items():
            node = getattr(ep.obj, "node", "")
            for dname in dests_of_node.get(node, ()) if node else ():
                special.add((name, dname))
    dst_of = {n: k for k, names in dst_classes.items() for n in names}
    src_of = {n: k for k, names in src_classes.items() for n in names}
    excluded: Dict[Tuple, int] = {}
    for s, d in special | {(n, n) for n in src_of if n in dst_of}:
        if s in src_of and d in dst_of:
            excluded[(src_of[s], dst_of[d])] = excluded.get((src_of[s], dst_of[d]), 0) + 1
    for skey, snames in src_classes.items():
        for dkey, dnames in dst_classes.items():
            count = len(snames) * len(dnames) - excluded.get((skey, dkey), 0)
            if count <= 0:
                continue
            rep = _representative(snames, dnames, special)
            if rep is None:
                continue
            if skey[0] == skey[1] and dkey[0] == dkey[1] and skey[0] not in (None, ABSENT) and \
                    dkey[0] not in (None, ABSENT):
                # both endpoints' keys are equal by value in the two worlds: so are the verdicts
                live = sum(1 for p in probes if nm.exists(rep[0], rep[1], p))
                tally.add("same", "same", count * live)
                continue
            for pi in range(len(probes)):
                old_v = om.verdict(rep[0], rep[1], pi)
                new_v = nm.verdict(rep[0], rep[1], pi)

                def cells(snames=snames, dnames=dnames, pi=pi):
                    for s in snames:
                        for d in dnames:
                            if (s, d) not in special and s != d:
                                yield (s, d, pi)
                tally.add(old_v, new_v, count, cells, max_changes)
    for s, d in sorted(special):
        if s == d:
            continue
        for pi in range(len(probes)):
            tally.add(om.verdict(s, d, pi), nm.verdict(s, d, pi), 1, lambda s=s, d=d, pi=pi: [(s, d, pi)], max_changes)
    changes = []
    for s, d, pi in tally.pending:
        probe = probes[pi]
        oc, nc = om.cell(s, d, probe), nm.cell(s, d, probe)
        changes.append(_change_entry(s, d, probe, oc, nc, old_label, new_label))
    return _result(old_label, new_label, probes, tally, changes, {"old": om.evaluated, "new": nm.evaluated})


def _representative(snames, dnames, special) -> Optional[Tuple[str, str]]:
    for s in snames:
        for d in dnames:
            if s != d and (s, d) not in special:
                return s, d
    return None


def _change_entry(src, dst, probe, old_cell, new_cell, old_label, new_label) -> Dict[str, Any]:
    old = {"verdict": old_cell["verdict"], "reason": old_cell["reason"]} if old_cell else _absent(old_label)
    new = {"verdict": new_cell["verdict"], "reason": new_cell["reason"]} if new_cell else _absent(new_label)
    return {"source": src, "destination": dst, "protocol": probe["protocol"], "port": probe.get("port"),
            "change": _change(old_cell["verdict"] if old_cell else None, new_cell["verdict"] if new_cell else None),
            "old": old, "new": new}


def diff_matrix(old_matrix: Mapping, new, probes: Sequence[Mapping], old_label: str = "old", new_label: str = "new",
                max_changes: int = DEFAULT_MAX_CHANGES) -> Dict[str, Any]:
    """The diff of an earlier matrix (``matrix.json`` data) and a compiled world, on the probes
    both have."""
    old_probes = {probe_key(p) for p in old_matrix.get("probes") or []}
    probes = [dict(p) for p in probes if probe_key(p) in old_probes]
    nm = ClassMatrix(new, probes, new_label)
    index = {probe_key(p): i for i, p in enumerate(probes)}
    old_cells = {}
    for c in old_matrix.get("cells") or []:
        pi = index.get((c.get("protocol"), c.get("port")))
        if pi is not None:
            old_cells[(c.get("source"), c.get("destination"), pi)] = c
    tally = _Tally()
    seen = set()
    for s in sorted(nm.sources):
        for d in sorted(nm.dests):
            for pi in range(len(probes)):
                new_v = nm.verdict(s, d, pi)
                oc = old_cells.get((s, d, pi))
                if new_v is None and oc is None:
                    continue
                seen.add((s, d, pi))
                tally.add(oc["verdict"] if oc else None, new_v, 1, lambda s=s, d=d, pi=pi: [(s, d, pi)], max_changes)
    for key in sorted(set(old_cells) - seen):
        tally.add(old_cells[key]["verdict"], None, 1, lambda key=key: [key], max_changes)
    changes = []
    for s, d, pi in tally.pending:
        probe = probes[pi]
        changes.append(_change_entry(s, d, probe, old_cells.get((s, d, pi)), nm.cell(s, d, probe), old_label, new_label))
    return _result(old_label, new_label, probes, tally, changes, {"new": nm.evaluated})


def _result(old_label, new_label, probes, tally, changes, evaluated) -> Dict[str, Any]:
    changes.sort(key=lambda c: (c["change"], c["source"], c["destination"], c["protocol"], c["port"] or 0))
    out = {"old": old_label, "new": new_label, "probes": [dict(p) for p in probes], "summary": dict(tally.summary),
           "changes": changes, "groups": groups(changes), "evaluated": evaluated}
    if tally.truncated:
        out["truncated"] = True
    return out


def generic_reason(reason: str, cell: Mapping) -> str:
    """``reason`` with the cell's own host endpoint names written as <source> and <destination>,
    so that cells of hosts alike group together."""
    for key in ("source", "destination"):
        name = cell[key]
        if name.startswith("host/"):
            reason = re.sub(r"host endpoint %s\b" % re.escape(name[5:]), "host endpoint <%s>" % key, reason)
    return reason


def groups(changes: Sequence[Mapping]) -> List[Dict[str, Any]]:
    """Changed cells that behave alike (same change, same old and new reasons, up to the cells' own
    host endpoint names: :func:`generic_reason`), with their endpoints and probes; the biggest
    first."""
    by_key: Dict[Tuple[str, str, str], List[Mapping]] = {}
    for c in changes:
        by_key.setdefault((c["change"], generic_reason(c["old"]["reason"], c),
                           generic_reason(c["new"]["reason"], c)), []).append(c)
    out = []
    for (change, old_reason, new_reason), cells in by_key.items():
        probes, seen = [], set()
        for c in cells:
            k = (c["protocol"], c["port"])
            if k not in seen:
                seen.add(k)
                probes.append({"protocol": c["protocol"], "port": c["port"]} if c["port"] is not None
                              else {"protocol": c["protocol"]})
        probes.sort(key=lambda p: (p["protocol"], p.get("port") or 0))
        out.append({"change": change, "sources": sorted({c["source"] for c in cells}),
                    "destinations": sorted({c["destination"] for c in cells}), "probes": probes,
                    "old_reason": old_reason, "new_reason": new_reason, "count": len(cells)})
    out.sort(key=lambda g: (-g["count"], g["change"], g["old_reason"], g["new_reason"]))
    return out


def failing(diff: Mapping, fail_on: Iterable[str]) -> List[str]:
    """One line per changed cell whose change is in ``fail_on`` (opened, closed)."""
    wanted = set(fail_on or ())
    return ["%s: %s -> %s %s (was %s: %s; now %s: %s)" % (
        c["change"], c["source"], c["destination"], probe_label(c), c["old"]["verdict"], c["old"]["reason"],
        c["new"]["verdict"], c["new"]["reason"]) for c in diff["changes"] if c["change"] in wanted]


# ----------------------------------------------------------------------------------------------
# Markdown
# ----------------------------------------------------------------------------------------------

def _names(names: Sequence[str]) -> str:
    shown = ", ".join(names[:MD_NAMES])
    if len(names) > MD_NAMES:
        shown += ", ... (%d more)" % (len(names) - MD_NAMES)
    return shown


def _cell_md(text: str) -> str:
    return text.replace("|", "\\|")


def to_markdown(diff: Mapping) -> str:
    s = diff["summary"]
    lines = ["# hostfw matrix diff: %s -> %s" % (diff["old"], diff["new"]), "",
             "%d cell(s) opened, %d closed, %d unchanged, over %d cell(s) and the probes %s." % (
                 s[OPENED], s[CLOSED], s["unchanged"], s["cells"],
                 ", ".join(probe_label(p) for p in diff["probes"]) or "(none)"),
             "A cell in one world only is compared against `absent` (counted as deny): %d cell(s) exist only in "
             "the old world, %d only in the new one." % (s["only_old"], s["only_new"]), ""]
    if diff.get("truncated"):
        lines += ["The change list is truncated at %d cells; the counts above are complete." % len(diff["changes"]),
                  ""]
    if not diff["changes"]:
        lines.append("No connection changes.")
        return "\n".join(lines) + "\n"
    for n, g in enumerate(diff["groups"], 1):
        lines += ["## %d. %s: %d cell(s)" % (n, g["change"], g["count"]), "",
                  "- was: %s" % g["old_reason"], "- now: %s" % g["new_reason"],
                  "- sources (%d): %s" % (len(g["sources"]), _names(g["sources"])),
                  "- destinations (%d): %s" % (len(g["destinations"]), _names(g["destinations"])),
                  "- probes: %s" % ", ".join(probe_label(p) for p in g["probes"]), ""]
        first = [c for c in diff["changes"] if c["change"] == g["change"] and generic_reason(c["old"]["reason"], c) ==
                 g["old_reason"] and generic_reason(c["new"]["reason"], c) == g["new_reason"]][:MD_CELLS_PER_GROUP]
        lines += ["| source | destination | probe | old | new |", "|---|---|---|---|---|"]
        for c in first:
            lines.append("| %s | %s | %s | %s | %s |" % (_cell_md(c["source"]), _cell_md(c["destination"]),
                                                         probe_label(c), c["old"]["verdict"], c["new"]["verdict"]))
        if g["count"] > len(first):
            lines.append("")
            lines.append("... and %d more cell(s) in this group (matrix-diff.json lists them all)." % (
                g["count"] - len(first)))
        lines.append("")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# What hostfw_compare_to names
# ----------------------------------------------------------------------------------------------

def _problem(path: str, message: str) -> errors.HostfwError:
    return errors.HostfwError([errors.Problem("Task", "hostfw.nftables.compile", "compare_to", "%s: %s" % (path, message))])


def ansible_inventory(source: str) -> Dict[str, Any]:
    """``ansible-inventory -i SOURCE --list`` (the controller's own Ansible), as data."""
    cmd = [sys.executable, "-m", "ansible.cli.inventory", "-i", source, "--list"]
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise _problem(source, "ansible-inventory could not run: %s (compare to an earlier output directory "
                               "instead)" % exc) from None
    if proc.returncode != 0:
        raise _problem(source, "ansible-inventory failed: %s (fix the inventory, or compare to an earlier output "
                               "directory)" % (proc.stderr.strip().splitlines() or ["exit %d" % proc.returncode])[-1])
    try:
        return json.loads(proc.stdout)
    except ValueError as exc:
        raise _problem(source, "ansible-inventory printed no JSON: %s" % exc) from None


def inventory_hostvars(data: Mapping[str, Any], source: str) -> Dict[str, Dict[str, Any]]:
    """Every host of ``ansible-inventory --list`` output with its hostfw variables.  A value that
    holds a Jinja2 template cannot be resolved outside a play: a problem, with the fix."""
    from ansible_collections.hostfw.nftables.plugins.plugin_utils.controller import has_template  # pylint: disable=import-outside-toplevel
    meta = (data.get("_meta") or {}).get("hostvars") or {}
    names = set(meta)
    for group, body in data.items():
        if group != "_meta" and isinstance(body, Mapping):
            names.update(body.get("hosts") or ())
    out: Dict[str, Dict[str, Any]] = {}
    problems = []
    for host in sorted(names):
        hv = meta.get(host) or {}
        values = {}
        for var in sources.HOST_VARS:
            if var in hv:
                if has_template(hv[var]):
                    problems.append(errors.Problem(
                        "Host", host, var, "holds a Jinja2 template, which the old world cannot resolve outside a play "
                        "(compare to an earlier output directory instead: render the old inventory with "
                        "hostfw.nftables.render and give its hostfw_output_dir)", source))
                values[var] = hv[var]
        out[host] = values
    if problems:
        raise errors.HostfwError(problems)
    return out


def find_inventory(directory: str) -> Optional[str]:
    for name in INVENTORY_NAMES:
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path
    return None


def load_old(path: str, runner: Callable[[str], Mapping[str, Any]] = ansible_inventory):
    """What ``hostfw_compare_to`` names: ``("matrix", data)`` or ``("world", Compilation)``.
    Raises HostfwError with the fix when it names neither."""
    from ansible_collections.hostfw.nftables.plugins.plugin_utils import compiler  # pylint: disable=import-outside-toplevel
    full = os.path.abspath(os.path.expanduser(path))
    matrix_file = None
    inventory = None
    if os.path.isdir(full):
        if os.path.isfile(os.path.join(full, "matrix.json")):
            matrix_file = os.path.join(full, "matrix.json")
        else:
            inventory = find_inventory(full)
            if inventory is None:
                raise _problem(path, "is a directory with neither matrix.json (an earlier hostfw_output_dir) nor an "
                                     "inventory file (%s): give one of them" % ", ".join(INVENTORY_NAMES))
    elif os.path.isfile(full):
        if full.endswith(".json"):
            matrix_file = full
        else:
            inventory = full
    else:
        raise _problem(path, "does not exist (give an earlier hostfw_output_dir, its matrix.json, or an inventory)")
    if matrix_file is not None:
        try:
            with open(matrix_file, encoding="utf-8") as handle:
                data = json.load(handle)
        except (OSError, ValueError) as exc:
            raise _problem(path, "cannot read %s: %s" % (matrix_file, exc)) from None
        if isinstance(data, dict) and isinstance(data.get("cells"), list) and isinstance(data.get("probes"), list):
            return "matrix", data
        if isinstance(data, dict) and "_meta" in data:
            inventory_data = data
            inventory = matrix_file
        else:
            raise _problem(path, "%s is not a hostfw matrix.json (no cells and probes)" % matrix_file)
    else:
        inventory_data = runner(inventory)
    hostvars = inventory_hostvars(inventory_data, inventory)
    world, inv = sources.load_world(hostvars, os.path.dirname(inventory))
    return "world", compiler.Compilation(world, inv)


def compare(spec: str, new, probes: Sequence[Mapping], new_label: str,
            max_changes: int = DEFAULT_MAX_CHANGES, runner: Callable[[str], Mapping[str, Any]] = ansible_inventory):
    """The diff of ``new`` against what ``spec`` (hostfw_compare_to) names."""
    kind, old = load_old(spec, runner)
    if kind == "matrix":
        return diff_matrix(old, new, probes, spec, new_label, max_changes)
    return diff_compilations(old, new, probes, spec, new_label, max_changes)


def for_host(diff: Mapping, endpoints: Iterable[str]) -> List[str]:
    """The changed cells of one host (whose matrix names are ``endpoints``: ``host/<hep>``), as
    lines: ingress (the host is the destination) and egress (the host is the source)."""
    names = set(endpoints)
    out = []
    for c in diff["changes"]:
        if c["destination"] in names or c["source"] in names:
            out.append("%s %s -> %s %s: %s (%s) -> %s (%s)" % (
                c["change"], c["source"], c["destination"], probe_label(c), c["old"]["verdict"], c["old"]["reason"],
                c["new"]["verdict"], c["new"]["reason"]))
    return out


__all__ = ["ClassMatrix", "diff_compilations", "diff_matrix", "groups", "failing", "to_markdown", "load_old",
           "compare", "for_host", "ansible_inventory", "inventory_hostvars", "find_inventory"]
