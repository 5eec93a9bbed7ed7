#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: nft_report
short_description: Read the running table inet hostfw, its hashes and its counters (read-only)
version_added: "0.2.0"
description:
  - Reads, and never changes, C(table inet hostfw) on the managed node for the fleet report
    (playbook C(hostfw.nftables.report), whose controller side is M(hostfw.nftables.report)).
  - Returns the sha256 of the running table's stateless listing (C(nft -s list table inet hostfw), normalised
    exactly as M(hostfw.nftables.nft_table) hashes it), the last confirmed table's hash and times (from
    C(<state_dir>/confirmed.json), which the rollout's confirmation writes), the hash recorded in the persisted
    table (O(persist_path)), and every rule counter that carries a comment (C(nft -j list table inet hostfw)),
    that is the enforced policy rules and the staged policies' shadow counters (comments C(hostfw-pending:b ...)
    and C(hostfw-pending:a ...)).
  - With O(candidate), also the hash of the candidate as this host's C(nft) lists it, canonicalised in an empty
    scratch network namespace (C(unshare -n), or C(unshare -r -n) without C(CAP_SYS_ADMIN)) as
    M(hostfw.nftables.nft_table) does when it stages a candidate, so that running and candidate hashes compare
    (hashes differ between nft versions; compare only hashes of the same host).
  - Counters count from the moment their table was loaded. RV(counters_since) says when that was, as far as the
    host knows it (the apply time the confirmation recorded, or the boot for a table that C(hostfw.service) loaded).
  - An action plugin of the same name runs on the controller first and, unless the task gives O(candidate),
    fills it with the host's compiled candidate (as the rollout compiles it).
options:
  candidate:
    description:
      - A candidate ruleset (as M(hostfw.nftables.compile) renders it) whose canonical hash to return as
        RV(candidate_sha256). Empty for none. The action plugin fills it with the host's compiled candidate when
        the task does not set it.
    type: str
  state_dir:
    description: The runtime directory of M(hostfw.nftables.nft_table) (read only here).
    type: path
    default: /run/hostfw
  persist_path:
    description: The persisted table of M(hostfw.nftables.nft_table) (read only here).
    type: path
    default: /etc/hostfw/hostfw.nft
  unit:
    description: The boot unit that loads O(persist_path); its start time says since when the counters of a table
      it loaded run.
    type: str
    default: hostfw.service
attributes:
  check_mode:
    support: full
    description: Never changes anything; the same in check mode.
  diff_mode:
    support: none
    description: Nothing changes.
  platform:
    support: full
    platforms: posix
    description: Linux with nftables.
seealso:
  - module: hostfw.nftables.report
  - module: hostfw.nftables.nft_table
author:
  - hostfw.nftables contributors (@hostfw)
"""

EXAMPLES = r"""
- name: Read the running table (the action fills in the compiled candidate)
  hostfw.nftables.nft_report:
  register: hostfw_report_host

- name: Only the running table, no candidate
  hostfw.nftables.nft_report:
    candidate: ""
"""

RETURN = r"""
present:
  description: Whether C(table inet hostfw) exists.
  returned: always
  type: bool
sha256:
  description: sha256 of the running table's normalised stateless listing; null when absent.
  returned: always
  type: str
candidate_sha256:
  description: sha256 of O(candidate) as this host's nft lists it; null without O(candidate).
  returned: always
  type: str
candidate_error:
  description: Why the candidate could not be canonicalised (it does not load, or no scratch namespace).
  returned: when it failed
  type: str
confirmed:
  description: C(confirmed.json) of O(state_dir) (C(sha256), C(at), C(applied_at), C(id)), or null (never confirmed
    since the last boot).
  returned: always
  type: dict
persisted_sha256:
  description: The hash the persisted table's header records, or null when O(persist_path) is absent.
  returned: always
  type: str
counters:
  description: Rule comment -> C([packets, bytes]), summed over the rules with that comment and a counter.
  returned: always
  type: dict
  sample: {"t1/allow-8080 ingress[0] Allow": [20, 1200], "hostfw-pending:a t1/staged:block-8080 ingress[0] Deny": [20, 1200]}
rules:
  description: Number of rules of the running table.
  returned: always
  type: int
chains:
  description: Number of chains of the running table.
  returned: always
  type: int
counters_since:
  description:
    - Seconds since the epoch from which the counters run, or null when unknown. The apply time that the
      confirmation recorded when the running table is the confirmed one (RV(counters_since_source) C(applied);
      C(confirmed) for records without it); the start of O(unit) (or the boot) when the running table is the
      persisted one and nothing was confirmed since the boot (C(boot)).
  returned: always
  type: float
counters_since_source:
  description: C(applied), C(confirmed), C(boot) or C(unknown).
  returned: always
  type: str
now:
  description: The host's clock (seconds since the epoch).
  returned: always
  type: float
nft_version:
  description: Output of C(nft --version).
  returned: always
  type: str
"""

import json
import os
import shutil
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.hostfw.nftables.plugins.module_utils._nft import (
    TABLE_FAMILY,
    TABLE_NAME,
    listing_sha256,
    normalise_listing,
    parse_table_list,
)
from ansible_collections.hostfw.nftables.plugins.module_utils._nft_report import (
    SCRATCH_SCRIPT,
    boot_time,
    persisted_sha256,
    rule_counters,
    scratch_listing,
    systemd_timestamp,
)


def read(path):
    try:
        with open(path) as handle:
            return handle.read()
    except (IOError, OSError):
        return None


class Reporter(object):
    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.nft = module.get_bin_path("nft", required=True)

    def run(self, args, check_rc=True):
        rc, out, err = self.module.run_command(args)
        if check_rc and rc != 0:
            self.module.fail_json(msg="command failed: %s: %s" % (" ".join(args), (err or out).strip()), rc=rc)
        return rc, out, err

    def running(self):
        rc, out, err = self.run([self.nft, "list", "tables"])
        if (TABLE_FAMILY, TABLE_NAME) not in parse_table_list(out):
            return None, {}, 0, 0
        rc, listing, err = self.run([self.nft, "-s", "list", "table", TABLE_FAMILY, TABLE_NAME])
        rc, out, err = self.run([self.nft, "-j", "list", "table", TABLE_FAMILY, TABLE_NAME])
        try:
            counters, rules, chains = rule_counters(out)
        except ValueError as exc:
            self.module.fail_json(msg="cannot parse nft -j list table %s %s: %s" % (TABLE_FAMILY, TABLE_NAME, exc))
        return normalise_listing(listing), counters, rules, chains

    def candidate_sha256(self, content):
        """(hash, error) of the candidate canonicalised in an empty scratch network namespace."""
        unshare = self.module.get_bin_path("unshare")
        if not unshare:
            return None, "unshare (util-linux) is needed to canonicalise the candidate in a scratch network namespace"
        workdir = tempfile.mkdtemp(prefix="hostfw-report-")
        try:
            path = os.path.join(workdir, "candidate.nft")
            with open(path, "w") as handle:
                handle.write(content)
            errors = []
            for prefix in ([unshare, "-n"], [unshare, "-r", "-n"]):
                rc, out, err = self.run(prefix + ["/bin/sh", "-c", SCRATCH_SCRIPT, "sh", path, self.nft], False)
                listing = scratch_listing(out)
                if rc == 0 and listing is not None:
                    return listing_sha256(listing), None
                if rc == 3:
                    return None, "the candidate does not load into an empty network namespace: %s" % err.strip()
                errors.append("%s: %s" % (" ".join(prefix), err.strip()))
            return None, "no scratch network namespace: %s" % "; ".join(errors)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def loaded_at_boot(self):
        """When the boot unit loaded the table (seconds since the epoch), else the boot time."""
        booted = boot_time(read("/proc/stat"))
        systemctl = self.module.get_bin_path("systemctl")
        if systemctl and booted is not None and os.path.isdir("/run/systemd/system"):
            rc, out, err = self.run([systemctl, "show", "-p", "ActiveEnterTimestampMonotonic", self.p["unit"]], False)
            since_boot = systemd_timestamp(out) if rc == 0 else None
            if since_boot is not None:
                return booted + since_boot
        return booted

    def report(self):
        listing, counters, rules, chains = self.running()
        sha = listing_sha256(listing)
        confirmed = None
        text = read(os.path.join(self.p["state_dir"], "confirmed.json"))
        if text:
            try:
                confirmed = json.loads(text)
            except ValueError:
                confirmed = None
        persisted = persisted_sha256(read(self.p["persist_path"]))
        since, source = None, "unknown"
        if sha is not None and confirmed and confirmed.get("sha256") == sha:
            if confirmed.get("applied_at"):
                since, source = confirmed["applied_at"], "applied"
            else:
                since, source = confirmed.get("at"), "confirmed"
        elif sha is not None and not confirmed and persisted == sha:
            since, source = self.loaded_at_boot(), "boot"
        result = {
            "changed": False,
            "present": listing is not None,
            "sha256": sha,
            "candidate_sha256": None,
            "confirmed": confirmed,
            "persisted_sha256": persisted,
            "counters": counters,
            "rules": rules,
            "chains": chains,
            "counters_since": since,
            "counters_since_source": source if since is not None else "unknown",
            "now": time.time(),
        }
        if self.p["candidate"]:
            result["candidate_sha256"], error = self.candidate_sha256(self.p["candidate"])
            if error:
                result["candidate_error"] = error
        rc, version, err = self.run([self.nft, "--version"], False)
        result["nft_version"] = version.strip()
        return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            candidate=dict(type="str"),
            state_dir=dict(type="path", default="/run/hostfw"),
            persist_path=dict(type="path", default="/etc/hostfw/hostfw.nft"),
            unit=dict(type="str", default="hostfw.service"),
        ),
        supports_check_mode=True,
    )
    module.exit_json(**Reporter(module).report())


if __name__ == "__main__":
    main()
