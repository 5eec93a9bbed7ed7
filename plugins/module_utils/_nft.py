# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Target-side helpers for ``hostfw.nftables.nft_table`` (private; standard library only).

Everything here must run on Python 3.8+ managed nodes with nothing but the ``nft`` binary.
The functions at the top are pure (text in, text out) and unit-tested; the ones at the bottom
generate the files the module writes on the host (rollback program, systemd unit).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import difflib
import hashlib
import json
import re

TABLE_FAMILY = "inet"
TABLE_NAME = "hostfw"
TABLE = "table %s %s" % (TABLE_FAMILY, TABLE_NAME)

# One nft transaction that replaces our table whether or not it exists (foomuuri idiom;
# ``destroy table`` needs nft >= 1.0.8, Debian 12 has 1.0.6).
PREAMBLE = "%s\ndelete %s\n" % (TABLE, TABLE)

# Calico "Protect hosts" defaults (design.md); used by ``inspect`` when the caller gives none.
DEFAULT_FAILSAFE_INBOUND = [
    {"protocol": "tcp", "port": 22},
    {"protocol": "udp", "port": 68},
    {"protocol": "tcp", "port": 179},
    {"protocol": "tcp", "port": 2379},
    {"protocol": "tcp", "port": 2380},
    {"protocol": "tcp", "port": 6443},
    {"protocol": "tcp", "port": 6666},
    {"protocol": "tcp", "port": 6667},
]
DEFAULT_FAILSAFE_OUTBOUND = [
    {"protocol": "udp", "port": 53},
    {"protocol": "udp", "port": 67},
    {"protocol": "tcp", "port": 179},
    {"protocol": "tcp", "port": 2379},
    {"protocol": "tcp", "port": 2380},
    {"protocol": "tcp", "port": 6443},
    {"protocol": "tcp", "port": 6666},
    {"protocol": "tcp", "port": 6667},
]

_TABLE_LINE = re.compile(r"^table\s+(\S+)\s+(\S+)(?:\s*\{)?\s*$")


# --------------------------------------------------------------------------------------------
# pure helpers
# --------------------------------------------------------------------------------------------
def normalise_listing(text):
    """Canonical form of an ``nft -s list table`` listing used for hashing and comparing.

    nft prints listings deterministically; we only remove what may differ between two listings
    of the same table: carriage returns, trailing blanks and trailing empty lines.  An empty or
    ``None`` listing (table absent) normalises to ``""``.
    """
    if not text:
        return ""
    lines = [line.rstrip() for line in text.replace("\r", "").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    while lines and not lines[0]:
        lines.pop(0)
    if not lines:
        return ""
    return "\n".join(lines) + "\n"


def listing_sha256(text):
    """sha256 (hex) of the normalised listing; ``None`` when the table is absent."""
    norm = normalise_listing(text)
    if not norm:
        return None
    return hashlib.sha256(norm.encode("utf-8")).hexdigest()


def parse_table_list(text):
    """Parse ``nft list tables`` output into ``[(family, name), ...]``."""
    tables = []
    for line in (text or "").splitlines():
        match = _TABLE_LINE.match(line.strip())
        if match:
            tables.append((match.group(1), match.group(2)))
    return tables


def foreign_tables(tables):
    """The tables of ``parse_table_list`` that are not ours."""
    return [t for t in tables if t != (TABLE_FAMILY, TABLE_NAME)]


def check_listing_is_our_table(listing):
    """Return an error message when a listing is not exactly one ``table inet hostfw``."""
    norm = normalise_listing(listing)
    if not norm:
        return "the candidate does not define %s" % TABLE
    heads = [line for line in norm.splitlines() if line.startswith("table ")]
    if len(heads) != 1 or not norm.startswith(TABLE + " {"):
        return "the candidate listing must be exactly one %s, got: %s" % (TABLE, ", ".join(heads) or "nothing")
    return None


def render_apply_file(listing, header=None):
    """The file that makes the running table equal ``listing`` in one atomic ``nft -f``.

    ``listing`` empty/None renders the file that deletes our table (and is a no-op when it is
    absent).  The result always has the form ``table inet hostfw`` / ``delete table inet hostfw``
    [/ ``table inet hostfw { ... }``], so loading it touches no other table.
    """
    norm = normalise_listing(listing)
    parts = []
    if header:
        parts.extend("# " + line if line else "#" for line in header.splitlines())
    parts.append(PREAMBLE.rstrip("\n"))
    text = "\n".join(parts) + "\n"
    if norm:
        text += norm
    return text


def unified_diff(before, after, before_name="running: " + TABLE, after_name="candidate: " + TABLE):
    """Unified diff of two listings (normalised); ``""`` when equal."""
    a = normalise_listing(before).splitlines(True)
    b = normalise_listing(after).splitlines(True)
    return "".join(difflib.unified_diff(a, b, before_name, after_name))


def parse_ssh_connection(value):
    """``SSH_CONNECTION`` ("client_ip client_port server_ip server_port") to a dict, or None."""
    if not value:
        return None
    parts = value.split()
    if len(parts) != 4:
        return None
    try:
        return {
            "client_ip": parts[0],
            "client_port": int(parts[1]),
            "server_ip": parts[2],
            "server_port": int(parts[3]),
        }
    except ValueError:
        return None


def ssh_connection_from_environ_blob(blob):
    """Find SSH_CONNECTION in a NUL-separated ``/proc/<pid>/environ`` blob."""
    for item in (blob or b"").split(b"\0"):
        if item.startswith(b"SSH_CONNECTION="):
            return item.split(b"=", 1)[1].decode("utf-8", "replace")
    return None


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


def inspect_ruleset(ruleset_json, failsafe_inbound=None, failsafe_outbound=None):
    """Find base chains of other tables that could block failsafe traffic.

    ``ruleset_json`` is the parsed output of ``nft -j list ruleset``.  Returns
    ``(tables, findings)``: ``tables`` lists "family name" for every table, ``findings`` one dict
    per base chain with ``policy drop`` and per ``drop``/``reject`` rule (in the base chain or a
    chain it jumps to) whose protocol/port constraints do not exclude a failsafe entry.  Only
    ``prerouting``/``input`` (inbound failsafes) and ``output``/``postrouting`` (outbound) hooks
    of ip/ip6/inet tables are considered; our own table is skipped.  Heuristic by design: it
    warns, it never fails a rollout.
    """
    inbound = _norm_failsafes(DEFAULT_FAILSAFE_INBOUND if failsafe_inbound is None else failsafe_inbound)
    outbound = _norm_failsafes(DEFAULT_FAILSAFE_OUTBOUND if failsafe_outbound is None else failsafe_outbound)
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


# --------------------------------------------------------------------------------------------
# files written on the host
# --------------------------------------------------------------------------------------------
# The rollback program.  It runs outside the SSH session (systemd transient timer, or a
# detached double-forked process) with the same Python as the module.  It takes the state lock,
# gives up if the rollback was disarmed meanwhile, loads the snapshot (one atomic nft -f that
# only touches table inet hostfw) and records what it did.
ROLLBACK_PROGRAM = r'''#!/usr/bin/env python3
# hostfw.nftables rollback: restore the snapshot of table inet hostfw unless disarmed.
# Generated by hostfw.nftables.nft_table; do not edit.
import fcntl
import json
import os
import subprocess
import sys
import time


def main(argv):
    state_dir, rid, nft = argv[1], argv[2], argv[3]
    delay = float(argv[4]) if len(argv) > 4 else 0.0
    if delay > 0:
        time.sleep(delay)
    with open(os.path.join(state_dir, "lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(os.path.join(state_dir, "disarmed-%s" % rid)):
            return 0
        started = time.time()
        snap = os.path.join(state_dir, "rollback-%s.nft" % rid)
        proc = subprocess.Popen([nft, "-f", snap], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = proc.communicate()
        listing = subprocess.Popen([nft, "-s", "list", "table", "inet", "hostfw"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        lout, lerr = listing.communicate()
        record = {
            "id": rid,
            "rc": proc.returncode,
            "stderr": err.decode("utf-8", "replace"),
            "started": started,
            "finished": time.time(),
            "listing": lout.decode("utf-8", "replace") if listing.returncode == 0 else "",
            "present": listing.returncode == 0,
        }
        path = os.path.join(state_dir, "rolled-back-%s.json" % rid)
        with open(path + ".tmp", "w") as handle:
            json.dump(record, handle)
        os.rename(path + ".tmp", path)
        sys.stderr.write("hostfw: rollback %s restored the snapshot of table inet hostfw (rc=%d)\n"
                         % (rid, proc.returncode))
        return 0 if proc.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
'''


def render_unit(nft_path, persist_path):
    """Our boot unit: loads ONLY table inet hostfw, early, from the last confirmed file.

    - ``DefaultDependencies=no`` + ``Before=network-pre.target`` + ``Wants=network-pre.target``:
      the table is in place before any interface is configured.
    - ``After=nftables.service`` (ordering only; the distro unit is never touched): Debian's
      /etc/nftables.conf starts with ``flush ruleset``, so we load after it if it is enabled.
    - No ``ExecStop``: stopping the unit (or shutdown) leaves the running table alone, so a host
      is never left open by ``systemctl stop``; ``nft_table state=remove`` deletes the table.
    """
    return """# Managed by hostfw.nftables (nft_table state=persist); local changes are overwritten.
[Unit]
Description=hostfw.nftables: load nftables table inet hostfw
Documentation=https://github.com/hostfw/nftables
DefaultDependencies=no
Wants=network-pre.target
Before=network-pre.target shutdown.target
After=local-fs.target nftables.service
Conflicts=shutdown.target
ConditionPathExists={path}

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart={nft} -f {path}
ExecReload={nft} -f {path}

[Install]
WantedBy=sysinit.target
""".format(nft=nft_path, path=persist_path)


def dumps(data):
    """Stable JSON for the state files."""
    return json.dumps(data, sort_keys=True, indent=1) + "\n"
