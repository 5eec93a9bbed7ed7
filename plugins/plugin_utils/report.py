# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet report: what every host runs, what its rules counted, what the staged policies would do.

``build(comp, results, generated_at)`` takes the compilation of the inventory and one
``hostfw.nftables.nft_report`` result per host (None: not reached) and returns the report
(``report.json``); ``to_markdown(report)`` is ``report.md``.  Per host: its state (in sync, drifted,
missing, not rolled out, pending change), the hashes, since when its counters run; per enforced
policy rule its packets and bytes, per host and fleet-wide, and the rules without a hit; per staged
policy its shadow counters (render.py: ``hostfw-pending:b`` every new connection, ``hostfw-pending:a``
those the table allowed) per rule and host, and one verdict line.

Attribution of a shadow counter to a staged policy X on a host: X's own rules; the end of X's tier
where X applies to an endpoint of the host in the pending world and either makes the tier apply
there or replaces an enforced policy (shared by every such staged policy of that tier); for a
Delete of an enforced policy P, the end of P's tier, the profiles' Deny rules and the default deny
of the directions where P applied.  Every other pending deny of an
allowed connection (several staged policies together) is listed as combined.

This module imports nothing from Ansible.
"""

from __future__ import annotations

import re
import time
from typing import Any, Dict, List, Mapping, Optional, Tuple

from ansible_collections.hostfw.nftables.plugins.plugin_utils import api
from ansible_collections.hostfw.nftables.plugins.plugin_utils.evaluate import decider_key
from ansible_collections.hostfw.nftables.plugins.plugin_utils.model import (
    EGRESS, INGRESS, NORMAL, PENDING, PREDNAT, UNTRACKED, Model, StagedChange)
from ansible_collections.hostfw.nftables.plugins.plugin_utils.render import (
    PENDING_MARK, PHASE_ALL, PHASE_ALLOWED, SHADOW_CLASSES, pending_key_hash)

IN_SYNC = "in sync"
DRIFTED = "drifted"
MISSING = "missing"
NOT_ROLLED_OUT = "not rolled out"
PENDING_CHANGE = "pending change"
UNREACHABLE = "unreachable"
FAILED = "read failed"
NO_RULESET = "no ruleset"
STATES = (IN_SYNC, PENDING_CHANGE, DRIFTED, MISSING, NOT_ROLLED_OUT, NO_RULESET, UNREACHABLE, FAILED)

# An enforced rule's comment (render.py): "<tier>/<policy> <direction>[<i>] <Action>" or
# "profile <name> <direction>[<i>] <Action>", then annotations.
_RULE = re.compile(r"^(?P<owner>(?:profile \S+)|(?:[^\s/]+/\S+)) (?P<direction>ingress|egress)\[(?P<index>\d+)\] "
                   r"(?P<action>Allow|Deny|Pass|Log)\b")


def when(ts: Optional[float]) -> Optional[str]:
    """An epoch time as ``2026-12-02T13:45:07Z`` (None stays None)."""
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(ts)))


def number(n: int) -> str:
    return "{:,}".format(int(n))


def _plural(n: int, one: str, many: str) -> str:
    return one if n == 1 else many


# ----------------------------------------------------------------------------------------------
# Per host
# ----------------------------------------------------------------------------------------------

def host_state(result: Optional[Mapping[str, Any]], compiled: bool) -> Tuple[str, str]:
    """(state, why) of one host from its nft_report result."""
    if result is None or result.get("unreachable"):
        return UNREACHABLE, (result or {}).get("msg") or "the host was not reached"
    if result.get("failed"):
        return FAILED, result.get("msg") or "nft_report failed"
    running = result.get("sha256")
    confirmed = (result.get("confirmed") or {}).get("sha256")
    persisted = result.get("persisted_sha256")
    last = confirmed or persisted
    if running is None:
        if not compiled and last is None:
            return NO_RULESET, "no HostEndpoint: nothing to roll out, no table"
        if last is not None:
            return MISSING, "table inet hostfw is gone (the last confirmed table has sha256 %s)" % last[:12]
        return NOT_ROLLED_OUT, "no table inet hostfw and no confirmed or persisted one"
    if last is None:
        return DRIFTED, "a table inet hostfw runs that no rollout confirmed or persisted"
    if running != last:
        return DRIFTED, "the running table (sha256 %s) is not the last confirmed one (%s)" % (running[:12], last[:12])
    if not compiled:
        return PENDING_CHANGE, "the host has no HostEndpoint any more: the next rollout skips it, its table stays"
    candidate = result.get("candidate_sha256")
    if candidate is None:
        return IN_SYNC, "running = last confirmed; the candidate could not be compared (%s)" % (
            result.get("candidate_error") or "no candidate")
    if candidate != running:
        return PENDING_CHANGE, "the compiled candidate (sha256 %s) differs from the running table" % candidate[:12]
    return IN_SYNC, "running = last confirmed = compiled candidate"


def shadow_points(model: Model, pending_plan) -> Dict[str, Dict[str, Any]]:
    """Every deciding point the shadow path of a host can count (key -> what it is), from the
    host's pending plan; keys as :func:`evaluate.decider_key` names them."""
    out: Dict[str, Dict[str, Any]] = {}
    if pending_plan is None:
        return out
    for direction in (INGRESS, EGRESS):
        for ep in pending_plan.endpoints:
            for cls in SHADOW_CLASSES[direction]:
                for tp in ep.tiers_for(cls, direction):
                    for policy in tp.policies:
                        for rule in model.policy_rules(policy, direction):
                            if rule.action in ("Allow", "Deny"):
                                key = decider_key("rule", cls, direction, rule.action, tp.name, policy, index=rule.index)
                                out[key] = {"kind": "rule", "cls": cls, "direction": direction, "tier": tp.name,
                                            "policy": policy, "index": rule.index, "action": rule.action}
                    if tp.default_action == "Deny":
                        out[decider_key("end-of-tier", cls, direction, "Deny", tp.name)] = {
                            "kind": "end-of-tier", "cls": cls, "direction": direction, "tier": tp.name,
                            "action": "Deny"}
            for prof in ep.profiles:
                for rule in model.profile_rules(prof, direction):
                    if rule.action in ("Allow", "Deny"):
                        out[decider_key("profile", NORMAL, direction, rule.action, profile=prof.name,
                                        index=rule.index)] = {"kind": "profile", "cls": NORMAL, "direction": direction,
                                                              "profile": prof.name, "action": rule.action}
        out[decider_key("failsafe", NORMAL, direction, "Allow")] = {"kind": "failsafe", "cls": NORMAL,
                                                                    "direction": direction, "action": "Allow"}
        out[decider_key("default-deny", NORMAL, direction, "Deny")] = {"kind": "default-deny", "cls": NORMAL,
                                                                       "direction": direction, "action": "Deny"}
    return out


def split_counters(counters: Mapping[str, Any], points: Mapping[str, Dict[str, Any]]):
    """(shadow {key: {phase: packets}}, enforced rules {rule: [packets, bytes]}, other {comment: [p, b]})."""
    hashed = {pending_key_hash(k): k for k in points}
    shadow: Dict[str, Dict[str, int]] = {}
    rules: Dict[str, List[int]] = {}
    other: Dict[str, List[int]] = {}
    for text, value in counters.items():
        packets, nbytes = int(value[0]), int(value[1])
        if text.startswith(PENDING_MARK) and len(text) > len(PENDING_MARK) + 2:
            phase = text[len(PENDING_MARK)]
            key = text[len(PENDING_MARK) + 2:]
            if key.startswith("#"):
                key = hashed.get(key[1:13], key)
            entry = shadow.setdefault(key, {PHASE_ALL: 0, PHASE_ALLOWED: 0})
            entry[phase] = entry.get(phase, 0) + packets
            continue
        match = _RULE.match(text)
        if match:
            name = "%s %s[%s] %s" % (match.group("owner"), match.group("direction"), match.group("index"),
                                     match.group("action"))
            entry = rules.setdefault(name, [0, 0])
        else:
            entry = other.setdefault(text, [0, 0])
        entry[0] += packets
        entry[1] += nbytes
    return shadow, rules, other


# ----------------------------------------------------------------------------------------------
# Staged policies
# ----------------------------------------------------------------------------------------------

def _classes(policy: api.Policy, direction: str) -> List[str]:
    if policy.do_not_track:
        return [UNTRACKED]
    if policy.pre_dnat:
        return [PREDNAT] if direction == INGRESS else []
    return [NORMAL]


def _rule_keys(model: Model, change: StagedChange) -> List[Tuple[str, str, int, str]]:
    """(key, direction, index, action) of the staged policy's Allow and Deny rules."""
    p = change.staged
    out = []
    if change.action != "Set":
        return out
    for direction, api_dir in ((INGRESS, api.INGRESS), (EGRESS, api.EGRESS)):
        if api_dir not in p.types:
            continue
        for rule in model.policy_rules(p, direction):
            if rule.action not in ("Allow", "Deny"):
                continue
            for cls in _classes(p, direction):
                out.append((decider_key("rule", cls, direction, rule.action, p.tier, p, index=rule.index), direction,
                            rule.index, rule.action))
    return out


def _attributed(change: StagedChange, plan, pending_plan, points) -> List[str]:
    """Keys of this host's deny points (other than the policy's own rules) attributed to ``change``."""
    out = set()
    if change.action == "Set" and pending_plan is not None:
        # A policy added to a tier that applies today cannot send a connection to the tier's end (its
        # rules decide or let the evaluation go on as before): the end of the tier counts for it only
        # where it makes the tier apply, or where it replaces an enforced policy (whose rules go).
        applies_today = set()
        for ep in (plan.endpoints if plan is not None else ()):
            for (cls, direction), tiers in ep.tiers:
                applies_today.update((ep.hep.name, cls, direction, tp.name) for tp in tiers)
        for ep in pending_plan.endpoints:
            for (cls, direction), tiers in ep.tiers:
                for tp in tiers:
                    if change.staged in tp.policies and tp.default_action == "Deny" and (
                            change.target is not None or (ep.hep.name, cls, direction, tp.name) not in applies_today):
                        out.add(decider_key("end-of-tier", cls, direction, "Deny", tp.name))
    if change.action == "Delete" and change.target is not None and plan is not None:
        for ep in plan.endpoints:
            for (cls, direction), tiers in ep.tiers:
                for tp in tiers:
                    if change.target in tp.policies:
                        out.add(decider_key("end-of-tier", cls, direction, "Deny", tp.name))
                        if cls == NORMAL:
                            out.add(decider_key("default-deny", NORMAL, direction, "Deny"))
                            out.update(k for k, v in points.items()
                                       if v["kind"] == "profile" and v["action"] == "Deny" and v["direction"] == direction)
    return sorted(out)


def _staged_name(policy: api.Policy) -> str:
    return policy.name if policy.namespace is None else "%s/%s" % (policy.namespace, policy.name)


def build(comp, results: Mapping[str, Optional[Mapping[str, Any]]], generated_at: Optional[float] = None) -> Dict:
    """The report (module docstring).  ``comp``: the compilation, with each host's
    ``hostfw_staged_counters`` applied; ``results``: host -> nft_report result or None."""
    model = comp.model
    generated_at = time.time() if generated_at is None else generated_at
    hosts_out: Dict[str, Dict[str, Any]] = {}
    per_host: Dict[str, Dict[str, Any]] = {}
    fleet_rules: Dict[str, Dict[str, Any]] = {}
    for host in sorted(results):
        result = results[host]
        compiled = comp.plan(host) is not None and host in comp.inventory.nodes
        state, why = host_state(result, compiled)
        entry: Dict[str, Any] = {"state": state, "why": why}
        if result is not None and not result.get("failed") and not result.get("unreachable"):
            confirmed = result.get("confirmed") or {}
            entry.update({
                "running_sha256": result.get("sha256"),
                "confirmed_sha256": confirmed.get("sha256"),
                "confirmed_at": when(confirmed.get("at")),
                "persisted_sha256": result.get("persisted_sha256"),
                "candidate_sha256": result.get("candidate_sha256"),
                "counters_since": when(result.get("counters_since")),
                "counters_since_source": result.get("counters_since_source", "unknown"),
                "nft_version": result.get("nft_version"),
                "rules": result.get("rules", 0),
            })
            plan = comp.plan(host) if compiled else None
            pending_plan = comp.plan(host, PENDING) if compiled and model.has_staged else None
            points = shadow_points(model, pending_plan)
            shadow, rules, other = split_counters(result.get("counters") or {}, points)
            entry["shadow_counters"] = len(shadow)
            entry["shadow_rules"] = sum(1 for text in (result.get("counters") or {}) if text.startswith(PENDING_MARK))
            per_host[host] = {"plan": plan, "pending": pending_plan, "points": points, "shadow": shadow,
                              "since": result.get("counters_since")}
            for name, (packets, nbytes) in rules.items():
                fr = fleet_rules.setdefault(name, {"rule": name, "packets": 0, "bytes": 0, "hosts": {}})
                fr["packets"] += packets
                fr["bytes"] += nbytes
                fr["hosts"][host] = {"packets": packets, "bytes": nbytes}
            entry["other_counters"] = {k: {"packets": v[0], "bytes": v[1]} for k, v in sorted(other.items())}
        hosts_out[host] = entry

    staged = [_staged_entry(model, change, per_host) for change in model.staged_changes]
    combined = _combined(model, per_host)
    policy_rules = [fleet_rules[k] for k in sorted(fleet_rules)]
    summary = {s: sum(1 for e in hosts_out.values() if e["state"] == s) for s in STATES}
    return {
        "generated_at": when(generated_at),
        "summary": {k: v for k, v in summary.items() if v},
        "hosts": hosts_out,
        "policy_rules": policy_rules,
        "unused_rules": [r["rule"] for r in policy_rules if r["packets"] == 0],
        "staged": staged,
        "combined": combined,
    }


def _staged_entry(model: Model, change: StagedChange, per_host: Dict[str, Dict[str, Any]]) -> Dict[str, Any]:
    entry = change.as_dict()
    rules = []
    hosts_counting = []
    deny_all = deny_allowed = allow_all = allow_denied = 0
    hit_hosts = set()
    for key, direction, index, action in _rule_keys(model, change):
        row = {"rule": key, "direction": direction, "index": index, "action": action,
               "new_connections": 0, "allowed_today": 0, "hosts": {}}
        for host, data in per_host.items():
            counts = data["shadow"].get(key)
            if counts is None:
                continue
            row["hosts"][host] = {"new_connections": counts.get(PHASE_ALL, 0), "allowed_today": counts.get(PHASE_ALLOWED, 0)}
            row["new_connections"] += counts.get(PHASE_ALL, 0)
            row["allowed_today"] += counts.get(PHASE_ALLOWED, 0)
            if counts.get(PHASE_ALL, 0):
                hit_hosts.add(host)
        if action == "Deny":
            deny_all += row["new_connections"]
            deny_allowed += row["allowed_today"]
        else:
            allow_all += row["new_connections"]
            allow_denied += row["new_connections"] - row["allowed_today"]
        rules.append(row)
    shared = []
    for host, data in sorted(per_host.items()):
        own = [r["rule"] for r in rules if host in r["hosts"]]
        keys = _attributed(change, data["plan"], data["pending"], data["points"])
        if own or any(k in data["shadow"] for k in keys):
            hosts_counting.append(host)
        for key in keys:
            counts = data["shadow"].get(key)
            if not counts:
                continue
            shared.append({"point": key, "host": host, "new_connections": counts.get(PHASE_ALL, 0),
                           "allowed_today": counts.get(PHASE_ALLOWED, 0)})
            deny_all += counts.get(PHASE_ALL, 0)
            deny_allowed += counts.get(PHASE_ALLOWED, 0)
            if counts.get(PHASE_ALL, 0):
                hit_hosts.add(host)
    since = [per_host[h]["since"] for h in hosts_counting if per_host[h]["since"] is not None]
    entry.update({"rules": rules, "attributed": shared, "hosts_counting": hosts_counting,
                  "hosts": sorted(hit_hosts), "would_deny": deny_all, "would_deny_allowed_today": deny_allowed,
                  "would_allow": allow_all, "would_allow_denied_today": allow_denied,
                  "since": when(min(since)) if since else None})
    entry["verdict"] = _verdict(entry, change)
    return entry


def _verdict(entry: Dict[str, Any], change: StagedChange) -> str:
    name = entry["name"]
    if change.action in ("Learn", "Ignore"):
        return "%s is staged with stagedAction %s: promoting it changes nothing" % (name, change.action)
    if change.action == "Delete" and change.target is None:
        return "%s deletes a policy that does not exist: promoting it changes nothing" % name
    counting = entry["hosts_counting"]
    if not counting:
        return ("no host counts %s (it selects no host whose table has the shadow path: set "
                "hostfw_staged_counters and roll out)" % name)
    hosts = entry["hosts"]
    since = " since %s" % entry["since"] if entry["since"] else ""
    text = "promoting %s would have denied %s new %s on %d %s%s" % (
        name, number(entry["would_deny"]), _plural(entry["would_deny"], "connection", "connections"), len(hosts),
        _plural(len(hosts), "host", "hosts"), since)
    if entry["would_deny"]:
        text += " (%s of them allowed today)" % number(entry["would_deny_allowed_today"])
    if entry["would_allow_denied_today"]:
        text += ", and allowed %s that are denied today" % number(entry["would_allow_denied_today"])
    text += "; %d %s count%s it" % (
        len(counting), _plural(len(counting), "host", "hosts"), "s" if len(counting) == 1 else "")
    return text


def _combined(model: Model, per_host: Dict[str, Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Pending denies of allowed connections at points no single staged policy is attributed."""
    out = []
    for host, data in sorted(per_host.items()):
        own = set()
        for change in model.staged_changes:
            own.update(k for k, _d, _i, _a in _rule_keys(model, change))
            own.update(_attributed(change, data["plan"], data["pending"], data["points"]))
        for key, counts in sorted(data["shadow"].items()):
            meta = data["points"].get(key)
            if meta is not None:
                denies = meta["action"] == "Deny"
            else:  # a point of an older table: read the key
                denies = key.endswith(" Deny") or "end-of-tier " in key or "default-deny " in key
            if key in own or not denies or not counts.get(PHASE_ALLOWED):
                continue
            out.append({"point": key, "host": host, "allowed_today": counts.get(PHASE_ALLOWED, 0),
                        "new_connections": counts.get(PHASE_ALL, 0), "known": meta is not None})
    return out


# ----------------------------------------------------------------------------------------------
# report.md
# ----------------------------------------------------------------------------------------------

def _short(sha: Optional[str]) -> str:
    return sha[:12] if sha else "-"


def to_markdown(report: Dict) -> str:
    hosts = report["hosts"]
    lines = ["# hostfw fleet report", "",
             "Generated %s from %d %s (every number is in report.json). Counters count since their table was "
             "loaded; a rollout that changes nothing does not reload it." % (
                 report["generated_at"], len(hosts), _plural(len(hosts), "host", "hosts")), ""]
    lines.append("States: " + ", ".join("%s %d" % (k, v) for k, v in report["summary"].items()) + ".")
    lines += ["", "## Hosts", "",
              "| host | state | running | last confirmed | candidate | counters since | shadow counters | why |",
              "|---|---|---|---|---|---|---|---|"]
    for host, e in hosts.items():
        confirmed = e.get("confirmed_sha256") or e.get("persisted_sha256")
        since = e.get("counters_since") or "-"
        if e.get("counters_since"):
            since += " (%s)" % e.get("counters_since_source")
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
            host, e["state"], _short(e.get("running_sha256")), _short(confirmed), _short(e.get("candidate_sha256")),
            since, e.get("shadow_rules", "-"), e["why"]))
    if report["staged"]:
        lines += ["", "## Staged policies", ""]
        for s in report["staged"]:
            lines.append("- **%s**" % s["verdict"])
        lines += ["", "| staged policy | counter | new connections | of them allowed today | hosts |", "|---|---|---|---|---|"]
        for s in report["staged"]:
            for r in s["rules"]:
                lines.append("| %s | %s | %s | %s | %s |" % (
                    s["name"], r["rule"], number(r["new_connections"]), number(r["allowed_today"]),
                    ", ".join("%s (%s)" % (h, number(c["new_connections"])) for h, c in sorted(r["hosts"].items()))
                    or "-"))
            for a in s["attributed"]:
                lines.append("| %s | %s | %s | %s | %s |" % (
                    s["name"], a["point"], number(a["new_connections"]), number(a["allowed_today"]), a["host"]))
        if report["combined"]:
            lines += ["", "Pending denies of allowed connections caused by several staged policies together:", ""]
            for c in report["combined"]:
                lines.append("- %s on %s: %s (of %s new connections)" % (
                    c["point"], c["host"], number(c["allowed_today"]), number(c["new_connections"])))
    lines += ["", "## Enforced policy rules", "",
              "| rule | packets | bytes | per host (packets) |", "|---|---|---|---|"]
    for r in report["policy_rules"]:
        per_host = ", ".join("%s %s" % (h, number(c["packets"])) for h, c in sorted(r["hosts"].items()))
        lines.append("| %s | %s | %s | %s |" % (r["rule"], number(r["packets"]), number(r["bytes"]), per_host))
    lines += ["", "## Unused rules", ""]
    if report["unused_rules"]:
        lines.append("No hit on any host since its table was loaded:")
        lines.append("")
        lines += ["- %s" % r for r in report["unused_rules"]]
    else:
        lines.append("Every enforced rule has hits.")
    return "\n".join(lines) + "\n"
