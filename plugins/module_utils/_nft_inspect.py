# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Target-side inspection for ``hostfw.nftables.nft_table``: which base chains of *other* tables
could drop failsafe traffic (from ``nft -j list ruleset``).  Private; standard library only."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.hostfw.nftables.plugins.module_utils._nft import TABLE_FAMILY, TABLE_NAME


# --------------------------------------------------------------------------------------------
# inspect: other tables that could block failsafe traffic (from ``nft -j list ruleset``)
# --------------------------------------------------------------------------------------------
# Which failsafe list matters on which hook.  Forward traffic is not host traffic: failsafes
# do not apply to it, so ``forward`` chains (Docker's FORWARD policy drop) are not reported.
_HOOK_DIRECTION = {
    "prerouting": "inbound",
    "input": "inbound",
    "output": "outbound",
    "postrouting": "outbound",
}
_BLOCKING_VERDICTS = ("drop", "reject")


def failsafe_problems(entries, name):
    """Why the failsafe entries (``{protocol, port, net}``) of option ``name`` cannot be inspected: one
    message per bad entry (an empty list when they can)."""
    problems = []
    for index, entry in enumerate(entries or []):
        where = "%s[%d]" % (name, index)
        if not isinstance(entry, dict):
            problems.append("%s: a failsafe entry is a dict {protocol, port, net}, got %r" % (where, entry))
            continue
        proto = str(entry.get("protocol", "tcp")).lower()
        if proto not in ("tcp", "udp", "sctp"):
            problems.append("%s.protocol: %r is not tcp, udp or sctp" % (where, entry.get("protocol")))
        port = entry.get("port")
        if isinstance(port, bool) or not isinstance(port, (int, str)) or not str(port).isdigit() \
                or not 0 <= int(port) <= 65535:
            problems.append("%s.port: %r is not a port number 0-65535 (fix: one entry per port, as the compile "
                            "action returns them)" % (where, port))
    return problems


def _norm_failsafes(entries):
    out = []
    for entry in entries or []:
        proto = str(entry.get("protocol", "tcp")).lower()
        out.append((proto, int(entry["port"])))
    return out


def _port_values(right):
    """Ports a ``match`` right-hand side can equal: a list of ints/ranges, or None if unknown."""
    if isinstance(right, int):
        return [(right, right)]
    if isinstance(right, str):
        return None  # named set reference (@set) or symbolic service: unknown
    if isinstance(right, dict):
        if "range" in right:
            low, high = right["range"]
            if isinstance(low, int) and isinstance(high, int):
                return [(low, high)]
            return None
        if "set" in right:
            return _port_values(right["set"])
        return None
    if isinstance(right, list):
        ranges = []
        for item in right:
            values = _port_values(item)
            if values is None:
                return None
            ranges.extend(values)
        return ranges
    return None


def _rule_constraints(exprs):
    """Extract (verdict, protocols, dports, jump_target) from a JSON rule's expressions.

    protocols: set of l4 protocol names the rule is limited to, or None (any).
    dports: list of (low, high) ranges for the destination port, or None (any / unknown).
    Negated matches (``!=``) are treated as "any", which over-reports rather than hides.
    """
    verdict = None
    target = None
    protocols = None
    dports = None
    for expr in exprs or []:
        if not isinstance(expr, dict):
            continue
        for key in _BLOCKING_VERDICTS:
            if key in expr:
                verdict = key
        if "accept" in expr:
            verdict = "accept"
        for key in ("jump", "goto"):
            if key in expr and isinstance(expr[key], dict):
                verdict = key
                target = expr[key].get("target")
        match = expr.get("match")
        if not isinstance(match, dict) or match.get("op", "==") not in ("==", "in"):
            continue
        left = match.get("left")
        right = match.get("right")
        if not isinstance(left, dict):
            continue
        payload = left.get("payload")
        if isinstance(payload, dict) and payload.get("field") == "dport":
            if payload.get("protocol") in ("tcp", "udp", "sctp", "dccp"):
                protocols = {payload["protocol"]}
            values = _port_values(right)
            if values is not None:
                dports = values
        if isinstance(payload, dict) and payload.get("field") == "protocol" and isinstance(right, str):
            protocols = {right}
        meta = left.get("meta")
        if isinstance(meta, dict) and meta.get("key") == "l4proto":
            if isinstance(right, str):
                protocols = {right}
            elif isinstance(right, dict) and isinstance(right.get("set"), list):
                protocols = set(str(x) for x in right["set"])
    return verdict, protocols, dports, target


def _blocked(failsafes, protocols, dports):
    hits = []
    for proto, port in failsafes:
        if protocols is not None and proto not in protocols:
            continue
        if dports is not None and not any(low <= port <= high for low, high in dports):
            continue
        hits.append("%s %d" % (proto.upper(), port))
    return hits


def inspect_ruleset(ruleset_json, failsafe_inbound, failsafe_outbound):
    """Find base chains of other tables that could block failsafe traffic.

    ``ruleset_json`` is the parsed output of ``nft -j list ruleset``.  Returns
    ``(tables, findings)``: ``tables`` lists "family name" for every table, ``findings`` one dict
    per base chain with ``policy drop`` and per ``drop``/``reject`` rule (in the base chain or a
    chain it jumps to) whose protocol/port constraints do not exclude a failsafe entry.  Only
    ``prerouting``/``input`` (inbound failsafes) and ``output``/``postrouting`` (outbound) hooks
    of ip/ip6/inet tables are considered; our own table is skipped.  Heuristic by design: it
    warns, it never fails a rollout.
    """
    inbound = _norm_failsafes(failsafe_inbound)
    outbound = _norm_failsafes(failsafe_outbound)
    items = ruleset_json.get("nftables", []) if isinstance(ruleset_json, dict) else []
    tables = []
    chains = {}
    rules = {}
    for item in items:
        if "table" in item:
            tables.append("%s %s" % (item["table"]["family"], item["table"]["name"]))
        elif "chain" in item:
            c = item["chain"]
            chains[(c["family"], c["table"], c["name"])] = c
        elif "rule" in item:
            r = item["rule"]
            rules.setdefault((r["family"], r["table"], r["chain"]), []).append(r)

    findings = []
    for key, chain in sorted(chains.items()):
        family, table, name = key
        if (family, table) == (TABLE_FAMILY, TABLE_NAME) or family not in ("ip", "ip6", "inet"):
            continue
        hook = chain.get("hook")
        direction = _HOOK_DIRECTION.get(hook)
        if direction is None:
            continue
        failsafes = inbound if direction == "inbound" else outbound
        base = {
            "table": "%s %s" % (family, table),
            "chain": name,
            "hook": hook,
            "priority": chain.get("prio"),
            "policy": chain.get("policy", "accept"),
            "direction": direction,
        }
        if chain.get("policy") == "drop":
            hits = _blocked(failsafes, None, None)
            if hits:
                finding = dict(base)
                finding.update({
                    "handle": None,
                    "via": name,
                    "ports": hits,
                    "reason": "base chain %s of table %s %s on hook %s has policy drop: %s failsafe traffic "
                              "is dropped unless that chain accepts it" % (name, family, table, hook, direction),
                })
                findings.append(finding)
        # walk the base chain and every chain reachable from it by jump/goto
        seen = set()
        todo = [name]
        while todo:
            current = todo.pop(0)
            if current in seen:
                continue
            seen.add(current)
            for rule in rules.get((family, table, current), []):
                verdict, protocols, dports, target = _rule_constraints(rule.get("expr"))
                if verdict in ("jump", "goto") and target:
                    todo.append(target)
                    continue
                if verdict not in _BLOCKING_VERDICTS:
                    continue
                hits = _blocked(failsafes, protocols, dports)
                if not hits:
                    continue
                finding = dict(base)
                finding.update({
                    "handle": rule.get("handle"),
                    "via": current,
                    "ports": hits,
                    "reason": "rule handle %s in chain %s of table %s %s (reached from base chain %s, hook %s) "
                              "%ss traffic that may include failsafe %s"
                              % (rule.get("handle"), current, family, table, name, hook, verdict,
                                 ", ".join(hits)),
                })
                if rule.get("comment"):
                    finding["comment"] = rule["comment"]
                findings.append(finding)
    return tables, findings
