# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Target-side helpers for ``hostfw.nftables.nft_report`` (private; standard library only): the
counters of ``nft -j list table inet hostfw``, the hash recorded in the persisted table, the boot
time, and the scratch-namespace script that canonicalises a candidate without touching the host.

Pure functions (text in, data out), Python 2.7/3.5+ compatible like the other ``_nft*`` helpers.
Hashes are those of ``_nft.listing_sha256`` (the same normalised stateless listing that
``nft_table`` records in ``confirmed.json``), so they compare.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re

_PERSISTED_SHA = re.compile(r"^# sha256 ([0-9a-f]{64})\s*$", re.M)

# Loads the candidate ($1) into the (empty) network namespace this runs in and prints the
# stateless listing of our table after a marker; exit 3 when the candidate does not load.
SCRATCH_SCRIPT = ('"$2" -f "$1" || exit 3; echo "@@HOSTFW-TABLE@@"; "$2" -s list table inet hostfw 2>/dev/null || '
                  'true')
SCRATCH_MARK = "@@HOSTFW-TABLE@@"


def rule_counters(listing_json):
    """``{comment: [packets, bytes]}`` summed over the rules of ``nft -j list table`` output that
    carry a comment and a counter, and the number of rules and chains:
    ``(counters, rules, chains)``.  Raises ValueError on output that is not nft's JSON."""
    data = json.loads(listing_json or "{}")
    items = data.get("nftables")
    if not isinstance(items, list):
        raise ValueError("no nftables list in the JSON output")
    counters = {}
    rules = 0
    chains = 0
    for item in items:
        if not isinstance(item, dict):
            continue
        if "chain" in item:
            chains += 1
            continue
        rule = item.get("rule")
        if not isinstance(rule, dict):
            continue
        rules += 1
        packets = None
        nbytes = 0
        for expr in rule.get("expr") or ():
            if isinstance(expr, dict) and isinstance(expr.get("counter"), dict):
                packets = (packets or 0) + int(expr["counter"].get("packets", 0))
                nbytes += int(expr["counter"].get("bytes", 0))
        text = rule.get("comment")
        if text is None or packets is None:
            continue
        entry = counters.setdefault(text, [0, 0])
        entry[0] += packets
        entry[1] += nbytes
    return counters, rules, chains


def persisted_sha256(text):
    """The sha256 that ``nft_table state=persist`` wrote into the persisted table's header, or None."""
    match = _PERSISTED_SHA.search(text or "")
    return match.group(1) if match else None


def boot_time(proc_stat_text):
    """Seconds since the epoch at which the host booted (``btime`` of /proc/stat), or None."""
    for line in (proc_stat_text or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "btime":
            try:
                return int(parts[1])
            except ValueError:
                return None
    return None


def systemd_timestamp(show_output):
    """``ActiveEnterTimestampMonotonic`` (microseconds since boot) of ``systemctl show -p ...``
    output as seconds since boot, or None when the unit never became active."""
    for line in (show_output or "").splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == "ActiveEnterTimestampMonotonic":
            try:
                micro = int(value.strip())
            except ValueError:
                return None
            return micro / 1e6 if micro > 0 else None
    return None


def scratch_listing(output):
    """The listing part of SCRATCH_SCRIPT's output, or None without the marker."""
    if SCRATCH_MARK not in (output or ""):
        return None
    return output.split(SCRATCH_MARK, 1)[1].lstrip("\n")
