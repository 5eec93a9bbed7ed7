#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: nft_table
short_description: Stage, apply with armed rollback, confirm and persist the nftables table C(inet hostfw)
version_added: "0.1.0"
description:
  - Manages exactly one nftables table on the managed node, C(table inet hostfw). It never runs
    C(flush ruleset), never reloads the distribution's C(nftables.service) and never reads or writes
    any other table, except that O(state=inspect) lists them.
  - Every change is one atomic C(nft -f) of a file of the form C(table inet hostfw) /
    C(delete table inet hostfw) / C(table inet hostfw { ... }), which works whether or not the table exists.
  - "The rollout is a sequence of calls, one O(state) each: V(stage) -> V(arm) -> V(apply) -> new connection ->
    V(confirm) -> V(persist). The role M(hostfw.nftables.rollout) runs that sequence."
  - "B(Canonical form and hashes.) The candidate O(content) is loaded into an empty scratch network namespace
    (C(unshare -n), or C(unshare -r -n) where C(CAP_SYS_ADMIN) is missing, for example in containers) and listed
    there with C(nft -s list table inet hostfw). That stateless listing is loaded into a fresh scratch namespace and
    listed again, and so on until two consecutive listings are equal (at most 3 reloads, else the module fails
    saying so): that fixed point is the canonical candidate. nft 1.0 and newer reach it at the first reload; nft
    0.9.8 and older list some rules differently once reloaded (C(meta l4proto tcp ip saddr @s tcp dport 22) lists
    as C(meta nfproto ipv4 ip saddr @s tcp dport 22), then as C(ip saddr @s tcp dport 22)). The running table's
    listing goes through the same procedure, so after the apply of a candidate the running table has exactly the
    candidate's canonical form on every nft version. Listings are normalised (trailing blanks and blank lines
    removed), compared, and hashed with sha256: RV(sha256_before) and RV(sha256_after) are hashes of those
    canonical forms, not of O(content). They depend on the nft version: never compare them across hosts.
    The file that is applied is the preamble plus the canonical listing, never O(content) itself, so statements in
    O(content) that would touch other tables (C(flush ruleset), C(delete table ip filter), ...) cannot reach the
    host: they act only inside the scratch namespace, and the module refuses O(content) whose scratch ruleset
    holds anything but C(table inet hostfw)."
  - "B(Rollback.) V(arm) copies the snapshot of the running table (taken by V(stage)) to
    C(<state_dir>/rollback-<id>.nft) and schedules a small restore program outside the SSH session: a transient
    systemd timer C(systemd-run --on-active=<timeout> --timer-property=AccuracySec=100ms --unit hostfw-rollback-<id>)
    when systemd is PID 1, otherwise a double-forked process detached with C(setsid). When it fires it takes the
    lock, and unless V(confirm) disarmed it meanwhile, loads the snapshot in one C(nft -f): the previous table comes
    back with a byte-identical stateless listing, or our table is deleted if there was none. It touches nothing but
    C(table inet hostfw). It records what it did in C(<state_dir>/rolled-back-<id>.json), which V(status) and
    V(confirm) report."
  - All operations take an exclusive C(fcntl.flock) on C(<state_dir>/lock), so two runs on one host cannot
    interleave; the rollback program takes the same lock.
options:
  state:
    description:
      - The operation to run.
      - V(stage) refuses O(content) with C(include), C(flush ruleset), another table or any other statement outside
        C(table inet hostfw) before any C(nft) reads it (a scan of the text), refuses an C(nft) older than 0.9.3
        (RV(nft_version)), lists the running table (snapshot, or a
        marker that it is absent), canonicalises O(content) in scratch network namespaces, checks both files with C(nft -c -f), and writes C(candidate.nft),
        C(snapshot.nft) and C(stage.json) under O(state_dir). RV(changed) is true only if the running table
        differs from the candidate. In check mode nothing is written; the comparison is still made.
        With O(failsafe_inbound) and O(failsafe_outbound) it also returns what V(inspect) returns, in the same
        call. It reports an earlier run's outcome, RV(last_rollback) (with a warning) when the last rollout rolled
        back, and RV(pending_confirm) when a rollback armed by an earlier, interrupted run is pending and the
        running table is this candidate (the role then confirms it over a new connection).
        A run that changes nothing is cheap. When this host canonicalised exactly this O(content) before (with the
        same nft, recorded in C(canonical.json)), the running table has that canonical hash, and no rollback is
        armed or was reported, the stage only lists the running table and compares (RV(canonical_loads) 0); nothing
        is written or checked, since nothing will be applied.
      - V(arm) schedules the restore of the staged snapshot after O(timeout) seconds. Idempotent while an armed
        rollback for the same stage is pending. Refuses while a rollback of another stage is pending, and when
        O(sha256) is given and is not the staged candidate's. The armed record is written before the timer is
        scheduled; the rollback program restores only when that record is its own and the copy still has its
        recorded sha256, and writes what it did (restored or not, error, hash of the table running after it).
      - V(apply) makes sure a rollback is armed (arming one with O(timeout) if needed), then loads the staged
        candidate with one C(nft -f) and checks that the running table hashes to the candidate. Refuses if the
        running table changed since V(stage) or the staged candidate is not O(sha256). If the load fails the
        rollback is disarmed (nothing changed) and the task fails.
        With O(prime), when our table is absent (a fresh host), the call arms the rollback, loads the
        conntrack primer instead of the candidate and returns RV(primed); the next V(apply) call loads the
        candidate (see the notes).
      - V(confirm) checks that the rollback has not fired and that the running table hashes to O(sha256), then
        disarms the rollback. If the table is not the candidate the rollback stays armed and the task fails.
        With O(persist) it then persists the confirmed table as V(persist) does, in the same call.
        Run it over a new connection (the role does C(meta reset_connection) and M(ansible.builtin.wait_for_connection)).
      - V(disarm) stops a pending rollback without checking the running table (manual recovery).
      - V(status) reports whether a rollback is armed, whether it fired and restored the snapshot (RV(rolled_back))
        or fired and failed (RV(rollback_failed)), and the hash of the table running after it.
      - V(persist) writes the running table (which must hash to O(sha256) when given) to O(persist_path) in the
        atomic-replace form (a temporary file in the same directory, checked with its sha256 and C(nft -c -f) and
        fsynced before it replaces the old file; the directory must not be writable by others) and installs and
        enables the unit O(unit_path) (C(hostfw.service)), which loads only that file early at boot. Refuses while a rollback is armed (confirm first).
      - V(remove) disarms any pending rollback, deletes C(table inet hostfw), disables and removes the unit and
        O(persist_path).
      - V(inspect) is read-only. It reports the tables on the host, the SSH connection of the module (client and
        server address and port, from C(SSH_CONNECTION) of the module or of its parent processes) and RV(findings),
        the base chains of other tables on the C(prerouting)/C(input)/C(output)/C(postrouting) hooks whose
        C(policy drop) or C(drop)/C(reject) rules could block a failsafe entry (O(failsafe_inbound),
        O(failsafe_outbound)). Heuristic; meant for warnings.
    type: str
    required: true
    choices: [stage, arm, apply, confirm, disarm, status, persist, remove, inspect]
  content:
    description:
      - The candidate ruleset for O(state=stage), normally C(table inet hostfw) / C(delete table inet hostfw) /
        C(table inet hostfw { ... }) as the compiler renders it. It must define C(table inet hostfw) and nothing
        else. Interface matches must use C(iifname)/C(oifname) (C(iif)/C(oif) need the interface to exist in the
        scratch namespace).
    type: str
  sha256:
    description:
      - The expected canonical candidate hash (RV(sha256_after) of V(stage)). Checked by V(arm), V(apply),
        V(confirm) and V(persist) when given; required for V(confirm). Pass it to V(arm) too, so that one
        controller cannot arm the stage of another (the role does).
    type: str
  timeout:
    description:
      - Seconds after arming at which the rollback fires unless confirmed (V(arm), and V(apply) when it has to arm).
    type: int
    default: 60
  rollback_method:
    description:
      - How V(arm) schedules the rollback. V(auto) uses V(systemd) when systemd is PID 1, else V(detached).
    type: str
    choices: [auto, systemd, detached]
    default: auto
  state_dir:
    description:
      - Runtime directory for the lock, the staged files and the rollback records. Must be on tmpfs so that a
        reboot forgets an unconfirmed candidate.
      - It must be a directory owned by the user the module runs as (root), with mode 0700, and not a symlink; every
        directory above it must be owned by root and not writable by group or others unless sticky (like C(/tmp)).
        The module creates it (C(mkdir) 0700, then checks it) and refuses, naming the path and the fix, otherwise.
      - Files in it are opened without following symlinks, written atomically (temporary file, C(fsync), rename),
        and the sha256 of every staged file (candidate, snapshot, rollback copy) is recorded when it is written and
        checked right before each C(nft -f) or C(nft -c -f) of it. The files of the last 5 fired or disarmed
        rollbacks are kept, older ones are removed.
    type: path
    default: /run/hostfw
  persist_path:
    description: File that the boot unit loads (V(persist), V(remove)).
    type: path
    default: /etc/hostfw/hostfw.nft
  unit_path:
    description: Path of the boot unit C(hostfw.service) (V(persist), V(remove)).
    type: path
    default: /etc/systemd/system/hostfw.service
  failsafe_inbound:
    description:
      - Failsafe entries (C({protocol, port, net})) checked by V(inspect) on inbound hooks; required for V(inspect).
        Given to V(stage) with O(failsafe_outbound), the stage also inspects.
        The M(hostfw.nftables.compile) action returns each host's list (from its FelixConfiguration).
    type: list
    elements: dict
  failsafe_outbound:
    description: Failsafe entries checked by V(inspect) on outbound hooks; required for V(inspect).
    type: list
    elements: dict
  lock_timeout:
    description: Seconds to wait for the lock held by another run before failing.
    type: int
    default: 60
  prime:
    description:
      - For V(apply) when C(table inet hostfw) is absent (a fresh host), arm the rollback, then load only the
        conntrack primer, a C(table inet hostfw) that can never drop (C(policy accept), one C(ct state invalid
        counter) rule) but makes conntrack track every flow, and return RV(primed). The caller makes at least one
        round trip on its connection and calls V(apply) again, which loads the candidate. Without it, conntrack
        would pick the live SSH session up at the candidate's apply, mid-stream, as C(ct state new), and an egress
        policy would drop the server's packets.
      - The rollback restores the absent table (it deletes the primer too).
    type: bool
    default: false
  persist:
    description: For V(confirm), persist the confirmed table (as V(persist) does) in the same call.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Can run in check_mode and return changed status prediction without modifying the target.
    details:
      - V(stage) compares in check mode without writing anything; V(arm), V(apply), V(confirm), V(disarm),
        V(persist) and V(remove) change nothing and predict RV(changed).
  diff_mode:
    support: full
    description: Will return details on what has changed (or possibly needs changing in check_mode).
    details:
      - V(stage) returns the unified diff running table vs candidate (canonical listings); V(persist) the diff
        of O(persist_path).
  platform:
    support: full
    platforms: posix
    description: Linux hosts with nftables.
notes:
  - Needs root (C(CAP_NET_ADMIN)) and the C(nft) binary; the scratch namespace needs C(unshare) from util-linux.
  - In an unprivileged user namespace (the C(unshare -r -n) fallback) nftables transactions of more than a few
    hundred rules can fail with "Message too long"; real hosts have C(CAP_SYS_ADMIN) and use C(unshare -n).
  - "B(Conntrack on a fresh host.) In a network namespace where no nftables or iptables rule uses conntrack yet,
    the kernel tracks no flow: the first packet it sees of an established SSH session, once our table (which
    matches C(ct state)) is loaded, is C(ct state new), and a policy that restricts egress drops the server's
    replies. O(prime) closes this for the connection that runs the module: the primer is loaded one round trip
    before the candidate, and every packet of that round trip makes the flow C(ct state established). Residual
    risk: a connection that stays idle between the primer and the apply (another interactive SSH session, say)
    is first seen after the apply; if the host sends its next packet first, egress policy drops it until the
    client sends one (which the ingress failsafe admits, and which conntrack then tracks)."
  - Elements that the packet path adds to dynamic sets appear in the running listing and make the table compare
    as changed; the compiler does not use dynamic sets.
  - The unit has no C(ExecStop), so stopping C(hostfw.service) leaves the table loaded. It is ordered after the
    distribution's C(nftables.service) (whose C(/etc/nftables.conf) usually starts with C(flush ruleset)), which is
    never touched. C(systemctl reload nftables) at runtime still flushes every table, ours included.
seealso:
  - module: community.general.iptables_state
    description: The iptables rollback design this module follows, with the timer moved into systemd.
author:
  - hostfw.nftables contributors (@hostfw)
"""

EXAMPLES = r"""
- name: Stage the candidate (changed means the running table differs)
  hostfw.nftables.nft_table:
    state: stage
    content: "{{ lookup('ansible.builtin.file', 'out/' ~ inventory_hostname ~ '.nft') }}"
  register: staged

- name: Arm a rollback that fires in 60 s unless confirmed
  hostfw.nftables.nft_table:
    state: arm
    timeout: 60
  when: staged is changed

- name: Apply the staged candidate atomically
  hostfw.nftables.nft_table:
    state: apply
    sha256: "{{ staged.sha256_after }}"
  when: staged is changed

- name: Reach the host over a NEW connection
  ansible.builtin.meta: reset_connection

- name: Wait for the new connection
  ansible.builtin.wait_for_connection:
    timeout: 30

- name: Confirm (disarm the rollback, check the running table is the candidate)
  hostfw.nftables.nft_table:
    state: confirm
    sha256: "{{ staged.sha256_after }}"

- name: Persist the confirmed table for the next boot
  hostfw.nftables.nft_table:
    state: persist
    sha256: "{{ staged.sha256_after }}"

- name: Did a rollback fire?
  hostfw.nftables.nft_table:
    state: status
  register: rb

- name: Look for other tables that could drop failsafe traffic
  hostfw.nftables.nft_table:
    state: inspect
    failsafe_inbound: [{protocol: tcp, port: 22}]
    failsafe_outbound: [{protocol: udp, port: 53}]
  register: host_fw

- name: Remove our table and boot unit
  hostfw.nftables.nft_table:
    state: remove
"""

RETURN = r"""
changed:
  description: For V(stage), whether the running table differs from the candidate; otherwise whether the host changed.
  returned: always
  type: bool
applied:
  description: Whether the candidate is now the running table because of this call (V(apply)), or was confirmed (V(confirm)).
  returned: always
  type: bool
  sample: true
rolled_back:
  description: Whether the armed rollback fired and restored the snapshot (V(status), V(confirm), V(arm), V(apply)).
  returned: always
  type: bool
  sample: false
rollback_failed:
  description:
    - Whether the armed rollback fired but did not restore the snapshot (its copy was missing or changed, or
      C(nft -f) failed); C(rollback.error) says why and C(rollback.running_sha256) what is running.
  returned: state=status or state=confirm
  type: bool
  sample: false
sha256_before:
  description: sha256 of the canonical form of the running table before the call; null when absent.
  returned: always
  type: str
  sample: 3f1c0e...
sha256_after:
  description:
    - For V(stage), the canonical candidate hash (pass it as O(sha256) to later calls). Otherwise the running table
      hash after the call; null when absent.
  returned: always
  type: str
present_before:
  description: Whether C(table inet hostfw) existed before the call.
  returned: always
  type: bool
armed:
  description: Whether a rollback is pending after the call.
  returned: always
  type: bool
rollback:
  description: The armed or fired rollback, if any.
  returned: when a rollback is or was armed
  type: dict
  contains:
    id:
      description: Rollback id; the systemd unit is C(hostfw-rollback-<id>).
      type: str
    method:
      description: V(systemd) or V(detached).
      type: str
    timeout:
      description: Seconds from arming to firing.
      type: int
    armed_at:
      description: Epoch seconds (host clock) when it was armed.
      type: float
    disarmed_at:
      description: Epoch seconds (host clock) when V(confirm) disarmed it.
      type: float
    deadline:
      description: Epoch seconds (host clock) when it fires.
      type: float
    fired:
      description: Whether it fired; then also C(restored), C(error), C(rc), C(finished), C(running_sha256) and C(restored_sha256).
      type: bool
    restored:
      description: Whether the rollback program loaded an intact copy of the snapshot (sha256 checked) successfully.
      type: bool
    error:
      description: Why the rollback did not restore the snapshot (null when it did).
      type: str
    running_sha256:
      description: Hash of the listing of C(table inet hostfw) right after the rollback program ran (null if absent).
      type: str
    restored_sha256:
      description:
        - Hash of the listing after a successful restore (equals the snapshot hash, null if the table was absent or
          the rollback failed).
      type: str
    copy_sha256:
      description: sha256 of the rollback copy C(<state_dir>/rollback-<id>.nft), checked before it is loaded.
      type: str
    snapshot_sha256:
      description: Hash of the snapshot the rollback restores (null when the table was absent).
      type: str
unified_diff:
  description: Unified diff running table vs candidate (V(stage)), empty when equal.
  returned: state=stage
  type: str
tables:
  description: All tables on the host as C(family name) (V(inspect)).
  returned: state=inspect, or state=stage with failsafe_inbound and failsafe_outbound
  type: list
  elements: str
findings:
  description: Base chains/rules of other tables that could block failsafe traffic (V(inspect)).
  returned: state=inspect, or state=stage with failsafe_inbound and failsafe_outbound
  type: list
  elements: dict
ssh_connection:
  description: The SSH connection the module runs under, or null (V(inspect)).
  returned: state=inspect, or state=stage with failsafe_inbound and failsafe_outbound
  type: dict
  sample: {client_ip: 10.89.0.1, client_port: 40964, server_ip: 10.89.0.2, server_port: 22}
canonicalised_with:
  description: The command prefix that created the scratch namespace (V(stage)).
  returned: state=stage
  type: str
  sample: unshare -n
canonical_loads:
  description:
    - How many scratch namespaces the candidate was loaded into until its listing stopped changing (V(stage)).
      2 on nft 1.0 and newer; 3 on nft 0.9.8 and older for tables whose rules list differently once reloaded;
      0 when the stage took the no-change path for content canonicalised here before.
  returned: state=stage
  type: int
  sample: 2
primed:
  description: Whether V(apply) with O(prime) loaded the conntrack primer instead of the candidate (call V(apply) again).
  returned: state=apply
  type: bool
pending_confirm:
  description:
    - A rollback armed by an earlier run is pending and the running table is already this candidate
      (the earlier run applied it but never confirmed); confirm it over a new connection, or it rolls back (V(stage)).
  returned: state=stage
  type: bool
last_rollback:
  description:
    - The rollback that fired in an earlier run, when no rollout was confirmed since (V(stage), V(status)); null otherwise.
      Keys as in RV(rollback).
  returned: state=stage or state=status
  type: dict
persisted:
  description:
    - For V(stage) when the running table is the candidate, whether O(persist_path) and the boot unit already hold it
      (V(persist) would change nothing). For V(confirm) with O(persist), whether it was persisted.
  returned: state=stage when not changed, state=confirm with persist
  type: bool
nft_missing:
  description: The call failed because there is no C(nft) binary on the host (the role then installs nftables).
  returned: when nft is missing
  type: bool
nft_version:
  description: The first line of C(nft --version) on the host (V(stage), V(inspect)).
  returned: state=stage or state=inspect
  type: str
  sample: nftables v1.0.6 (Lester Gooch #5)
"""

import hashlib
import json
import os
import shutil
import tempfile
import time
import uuid

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.hostfw.nftables.plugins.module_utils._nft import (
    PRIMER,
    TABLE,
    TABLE_FAMILY,
    TABLE_NAME,
    FixedPointError,
    candidate_text_problems,
    check_listing_is_our_table,
    foreign_tables,
    listing_fixed_point,
    listing_sha256,
    nft_version_problem,
    normalise_listing,
    parse_ssh_connection,
    parse_table_list,
    render_apply_file,
    render_unit,
    ssh_connection_from_environ_blob,
    unified_diff,
    unit_path_problem,
)
from ansible_collections.hostfw.nftables.plugins.module_utils._nft_inspect import failsafe_problems, inspect_ruleset
from ansible_collections.hostfw.nftables.plugins.module_utils._nft_rollback import Rollback
from ansible_collections.hostfw.nftables.plugins.module_utils._nft_state import (
    StateDir,
    StateError,
    check_ancestors,
    os_error_message,
    read_text,
    verify_file,
)

UNIT_NAME = "hostfw.service"


def _text_sha256(text):
    """sha256 (hex) of a text as given (not canonicalised)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _utc(epoch):
    """Epoch seconds as an ISO 8601 UTC time (for messages)."""
    if not epoch:
        return "an unknown time"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


class NftTableError(Exception):
    """A refusal or failure of one ``nft_table`` call: ``msg`` for the user, ``extra`` for the result."""

    def __init__(self, msg, **extra):
        super(NftTableError, self).__init__(msg)
        self.msg = msg
        self.extra = extra


class NftTable(object):
    """The state machine: one ``op_<state>`` method per O(state)."""

    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.check = module.check_mode
        self.state = StateDir(self.p["state_dir"])
        self.nft = module.get_bin_path("nft", required=True)
        self._scratch_prefix = None
        self._nft_version = None
        self.rollback = Rollback(self.state, self.nft, self._run_rc, module.get_bin_path, self.nft_check_file)
        self.result = {
            "changed": False,
            "applied": False,
            "rolled_back": False,
            "armed": False,
            "sha256_before": None,
            "sha256_after": None,
            "present_before": False,
        }

    # ---------------------------------------------------------------- helpers
    def run(self, args, check_rc=True, data=None):
        rc, out, err = self.module.run_command(args, data=data, binary_data=True)
        if check_rc and rc != 0:
            raise NftTableError("command failed: %s" % " ".join(args), rc=rc, stdout=out, stderr=err)
        return rc, out, err

    def _run_rc(self, args, check_rc):
        return self.run(args, check_rc=check_rc)

    def lock(self):
        if self.check and not self.state.exists():
            return
        try:
            self.state.lock(self.p["lock_timeout"])
        except StateError as exc:
            raise NftTableError(str(exc))

    def listed_table(self):
        """Stateless listing of our running table as ``nft -s list table`` prints it, or None when it is absent."""
        rc, out, err = self.run([self.nft, "list", "tables"])
        if (TABLE_FAMILY, TABLE_NAME) not in parse_table_list(out):
            return None
        rc, out, err = self.run([self.nft, "-s", "list", "table", TABLE_FAMILY, TABLE_NAME])
        return normalise_listing(out)

    def current_listing(self):
        """Canonical form of our running table (None when it is absent): the fixed point of its listing,
        reached as for the candidate (see canonicalise), so that the running table after the apply of a
        candidate has exactly the candidate's canonical form, whatever the nft version.  If the listing
        cannot be reloaded in a scratch namespace (a table changed by hand, say with ``iif``), the
        listing itself is used, with a warning."""
        return self.current_listing_expecting()

    def current_listing_expecting(self, *expected):
        """``current_listing()``, without the scratch-namespace reloads when the running table as listed already
        hashes to one of the ``expected`` canonical hashes (then the listing is that canonical form: a canonical
        form lists as itself).  The commit path uses it so that the time a host stays armed is not spent in
        scratch namespaces."""
        listing = self.listed_table()
        if listing is None:
            return None
        if listing_sha256(listing) in [sha for sha in expected if sha]:
            return listing
        try:
            return self.fixed_point(listing, "the running table inet hostfw")[0]
        except NftTableError as exc:
            self.module.warn("hostfw: the running table inet hostfw is compared as listed: %s" % exc.msg)
            return listing

    def nft_version(self):
        """The first line of ``nft --version``."""
        if self._nft_version is None:
            rc, out, err = self.run([self.nft, "--version"], check_rc=False)
            lines = (out or err or "").strip().splitlines()
            self._nft_version = lines[0].strip() if lines else ""
        return self._nft_version

    def nft_check_file(self, path, what, sha256=None):
        if sha256 is not None:
            self.verified(path, sha256, what)
        rc, out, err = self.run([self.nft, "-c", "-f", path], check_rc=False)
        if rc != 0:
            raise NftTableError("nft -c -f rejects the %s (%s): %s" % (what, path, err.strip()), rc=rc, stderr=err)

    @staticmethod
    def unlink(path, what):
        try:
            os.unlink(path)
        except OSError as exc:
            raise NftTableError(os_error_message(exc, "remove %s" % what, path))

    @staticmethod
    def verified(path, sha256, what):
        """``path`` after checking it still has the sha256 recorded when it was written."""
        try:
            return verify_file(path, sha256, what)
        except StateError as exc:
            raise NftTableError(str(exc))

    def scratch_prefixes(self):
        if self._scratch_prefix is None:
            self._scratch_prefix = self._find_scratch_prefix()
        return self._scratch_prefix

    def _find_scratch_prefix(self):
        unshare = self.module.get_bin_path("unshare")
        if not unshare:
            raise NftTableError("unshare (util-linux) is needed to canonicalise the candidate in a scratch network "
                                "namespace")
        tried = []
        for prefix in ([unshare, "-n"], [unshare, "-r", "-n"]):
            rc, out, err = self.run(prefix + [self.nft, "list", "tables"], check_rc=False)
            if rc == 0:
                return prefix
            tried.append("%s: %s" % (" ".join(prefix), err.strip()))
        raise NftTableError("cannot create a scratch network namespace to canonicalise the candidate: %s"
                            % "; ".join(tried))

    def scratch_list(self, text, what, first=True):
        """Load ``text`` into a new, empty network namespace and return the listing of table inet hostfw
        there; refuse anything that leaves other tables in that namespace."""
        prefix = self.scratch_prefixes()
        workdir = tempfile.mkdtemp(prefix="hostfw-stage-")
        try:
            cand = os.path.join(workdir, "content.nft")
            with open(cand, "w") as handle:
                handle.write(text)
            script = ('"$2" -f "$1" || exit 3; echo "@@HOSTFW-TABLES@@"; "$2" list tables || exit 4; '
                      'echo "@@HOSTFW-TABLE@@"; "$2" -s list table inet hostfw 2>/dev/null || true')
            rc, out, err = self.run(prefix + ["/bin/sh", "-c", script, "sh", cand, self.nft], check_rc=False)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        if rc == 3:
            if first:
                raise NftTableError("the candidate does not load into an empty network namespace: %s" % err.strip(),
                                    stderr=err)
            raise NftTableError("the listing of %s does not load back into an empty network namespace with %s: %s"
                                % (what, self.nft_version() or "this nft", err.strip()), stderr=err)
        if rc != 0 or "@@HOSTFW-TABLE@@" not in out:
            raise NftTableError("canonicalising %s failed (rc=%s): %s" % (what, rc, err.strip()), stderr=err)
        head, listing = out.split("@@HOSTFW-TABLE@@", 1)
        others = ["%s %s" % t for t in foreign_tables(parse_table_list(head.split("@@HOSTFW-TABLES@@", 1)[1]))]
        if others:
            raise NftTableError("the candidate may only define %s; it also defines: %s" % (TABLE, ", ".join(others)))
        problem = check_listing_is_our_table(listing)
        if problem:
            raise NftTableError(problem)
        return normalise_listing(listing)

    def fixed_point(self, listing, what):
        """(fixed point of ``listing``, relists): load it into a fresh scratch namespace and list it, again and
        again, until two consecutive listings are equal (at most MAX_RELISTS times)."""
        try:
            return listing_fixed_point(listing, lambda text: self.scratch_list(text, what, first=False), what)
        except FixedPointError as exc:
            raise NftTableError("%s (%s)" % (exc, self.nft_version() or "nft"))

    def canonicalise(self, content):
        """The canonical form of ``content``: its listing after a load into an empty scratch network namespace,
        loaded back into fresh scratch namespaces until the listing no longer changes (nft <= 0.9.8 lists some
        rules differently once reloaded).  Returns (listing, how, number of scratch loads)."""
        first = self.scratch_list(content, "the candidate")
        listing, relists = self.fixed_point(first, "the candidate")
        prefix = self.scratch_prefixes()
        how = " ".join(os.path.basename(p) if i == 0 else p for i, p in enumerate(prefix))
        return listing, how, 1 + relists

    def armed_now(self):
        """(armed.json record or None, pending, fired record or None)."""
        armed = self.state.read_json("armed.json")
        pending, fired = self.rollback.info(armed)
        return armed, pending, fired

    def do_arm(self, stage):
        armed, pending, fired = self.armed_now()
        if armed and pending:
            if armed.get("stage_id") == stage["stage_id"]:
                self.result["armed"] = True
                self.result["rollback"] = self.rollback.describe(armed, pending, fired)
                return False
            raise NftTableError("a rollback of another run is pending (id %s, fires at %s): another rollout is in "
                                "progress on this host; confirm or disarm it first" % (armed["id"], armed.get("deadline")))
        if self.check:
            return True
        if self.p["timeout"] < 1:
            raise NftTableError("timeout must be at least 1 second")
        snapshot = self.state.path("snapshot.nft")
        if not os.path.isfile(snapshot):
            raise NftTableError("the staged snapshot %s is missing: stage again (state=stage) before arming" % snapshot)
        try:
            record = self.rollback.arm(stage, self.p["timeout"], self.p["rollback_method"])
        except StateError as exc:
            raise NftTableError("cannot arm the rollback: %s" % exc)
        except (IOError, OSError) as exc:
            raise NftTableError("cannot arm the rollback: %s" % os_error_message(exc, "write", self.state.root))
        self.result["armed"] = True
        self.result["rollback"] = self.rollback.describe(record, True, None)
        return True

    # ---------------------------------------------------------------- conntrack primer
    def primed_sha(self, stage):
        """sha256 of the conntrack primer that V(apply) loaded for this stage, or None."""
        primed = self.state.read_json("primed.json")
        if primed and primed.get("stage_id") == stage.get("stage_id"):
            return primed.get("sha256")
        return None

    def load_primer(self, stage, armed):
        """Load PRIMER (our table absent, the rollback armed): conntrack starts tracking the live management
        connection, which the next call (the real apply, one round trip later) finds ``ct state established``."""
        sha = self.state.write("primer.nft", render_apply_file(PRIMER, "hostfw.nftables conntrack primer (never drops)"))
        path = self.verified(self.state.path("primer.nft"), sha, "conntrack primer")
        rc, out, err = self.run([self.nft, "-f", path], check_rc=False)
        if rc != 0:
            self.rollback.disarm(armed)
            self.result["armed"] = False
            raise NftTableError("nft -f of the conntrack primer failed, nothing changed, rollback disarmed: %s"
                                % err.strip(), rc=rc, stderr=err)
        sha = listing_sha256(self.listed_table())
        self.state.write_json("primed.json", {"stage_id": stage["stage_id"], "sha256": sha, "at": time.time()})
        self.result.update({"changed": True, "primed": True, "sha256_after": sha})

    # ---------------------------------------------------------------- outcomes of earlier runs
    def retire_fired(self, armed, fired):
        """A rollback fired: keep what happened in ``last-rollback.json`` (the next run reports it) and remove
        ``armed.json``, so that the host is left clean."""
        info = self.rollback.describe(armed, False, fired)
        info.pop("stderr", None)
        info["stderr"] = (fired.get("stderr") or "")[-2000:]
        self.state.write_json("last-rollback.json", info)
        self.state.remove("armed.json", "primed.json")

    def last_rollback(self):
        """The rollback that fired in an earlier run and was not followed by a confirmed rollout, or None."""
        last = self.state.read_json("last-rollback.json")
        if not last:
            return None
        confirmed = self.state.read_json("confirmed.json") or {}
        if confirmed.get("at", 0) > (last.get("finished") or 0):
            return None
        return last

    def inspect_into_result(self):
        """The read-only inspection of V(inspect) (other tables, the SSH connection), into the result."""
        problems = failsafe_problems(self.p["failsafe_inbound"], "failsafe_inbound") + \
            failsafe_problems(self.p["failsafe_outbound"], "failsafe_outbound")
        if problems:
            raise NftTableError("; ".join(problems))
        rc, out, err = self.run([self.nft, "-j", "list", "ruleset"])
        try:
            data = json.loads(out or "{}")
        except ValueError as exc:
            raise NftTableError("cannot parse nft -j list ruleset: %s" % exc)
        tables, findings = inspect_ruleset(data, self.p["failsafe_inbound"], self.p["failsafe_outbound"])
        self.result.update({
            "tables": tables,
            "findings": findings,
            "ssh_connection": self.find_ssh_connection(),
            "nft_version": self.nft_version(),
        })
        for finding in findings:
            self.module.warn("hostfw: another table may block failsafe traffic: %s" % finding["reason"])

    def set_listing_result(self, current):
        sha = listing_sha256(current)
        self.result.update({"sha256_before": sha, "sha256_after": sha, "present_before": current is not None})
        return sha

    # ---------------------------------------------------------------- operations
    def op_stage(self):
        content = self.p["content"]
        if content is None or not content.strip():
            raise NftTableError("state=stage needs content")
        version = self.nft_version()
        self.result["nft_version"] = version
        problem = nft_version_problem(version)
        if problem:
            raise NftTableError("refusing to stage on this host: %s (%s)" % (problem, self.nft))
        problems = candidate_text_problems(content)
        if problems:
            raise NftTableError("the candidate is refused before nft reads it: %s" % "; ".join(problems),
                                problems=problems)
        if self.stage_unchanged_known(content, version):
            return
        candidate, how, loads = self.canonicalise(content)
        current = self.current_listing()
        cur_sha = listing_sha256(current)
        cand_sha = listing_sha256(candidate)
        self.result.update({
            "present_before": current is not None,
            "sha256_before": cur_sha,
            "sha256_after": cand_sha,
            "canonicalised_with": how,
            "canonical_loads": loads,
            "changed": cur_sha != cand_sha,
        })
        workdir = None
        if self.check:
            workdir = tempfile.mkdtemp(prefix="hostfw-check-")
            cand_path = os.path.join(workdir, "candidate.nft")
            snap_path = os.path.join(workdir, "snapshot.nft")
        else:
            self.state.ensure()
            cand_path = self.state.path("candidate.nft")
            snap_path = self.state.path("snapshot.nft")
        try:
            cand_file_sha = StateDir.write_atomic(cand_path, render_apply_file(
                candidate, "hostfw.nftables candidate\nsha256 %s" % cand_sha))
            snap_file_sha = StateDir.write_atomic(snap_path, render_apply_file(
                current, "hostfw.nftables snapshot of the running table\nsha256 %s" % cur_sha))
            self.nft_check_file(cand_path, "candidate", cand_file_sha)
            self.nft_check_file(snap_path, "snapshot", snap_file_sha)
            if not self.check:
                self.state.write_json("stage.json", {
                    "stage_id": uuid.uuid4().hex,
                    "staged_at": time.time(),
                    "candidate_sha256": cand_sha,
                    "snapshot_sha256": cur_sha,
                    "snapshot_present": current is not None,
                    "candidate_file_sha256": cand_file_sha,
                    "snapshot_file_sha256": snap_file_sha,
                })
                self.result["candidate_path"] = cand_path
                self.result["snapshot_path"] = snap_path
                self.state.write_json("canonical.json", {"content_sha256": _text_sha256(content),
                                                         "candidate_sha256": cand_sha, "nft_version": version})
        finally:
            if workdir:
                shutil.rmtree(workdir, ignore_errors=True)
        self.result["unified_diff"] = unified_diff(current, candidate)
        if self.module._diff:
            self.result["diff"] = {
                "before": normalise_listing(current),
                "after": candidate,
                "before_header": "running: %s" % TABLE,
                "after_header": "candidate: %s" % TABLE,
            }
        armed, pending, fired = self.armed_now()
        if fired and not self.check:
            self.retire_fired(armed, fired)
        self.result["armed"] = pending
        self.result["pending_confirm"] = bool(pending and cur_sha == cand_sha
                                              and armed.get("candidate_sha256") in (None, cand_sha))
        if self.result["pending_confirm"]:
            self.module.warn("hostfw: a rollback (id %s, fires at %s) armed by an earlier run that never confirmed is "
                             "pending on this host, and the running table is this candidate: this run confirms it "
                             "over a new connection (or it rolls back)" % (armed["id"], _utc(armed.get("deadline"))))
        elif pending:
            self.module.warn("a rollback (id %s) is pending on this host: another rollout may be in progress" % armed["id"])
        self.result["last_rollback"] = self.last_rollback()
        if self.result["last_rollback"]:
            last = self.result["last_rollback"]
            self.module.warn("hostfw: the last rollout on this host ROLLED BACK: rollback %s fired at %s and restored "
                             "the previous table inet hostfw (sha256 %s, rc %s); candidate %s was never confirmed"
                             % (last.get("id"), _utc(last.get("finished")), last.get("restored_sha256"),
                                last.get("rc"), last.get("candidate_sha256")))
        if not self.result["changed"]:
            self.result["persisted"] = self.persist_plan(current, cur_sha)[0] == []
        if self.p["failsafe_inbound"] is not None and self.p["failsafe_outbound"] is not None:
            self.inspect_into_result()

    def stage_unchanged_known(self, content, version):
        """The no-change fast path of V(stage): this host canonicalised exactly this O(content) before, with this
        nft, into a form whose hash the running table has now, and no rollback is pending.  Then the running table
        is the candidate: nothing is canonicalised in scratch namespaces, written or checked (nothing will be
        applied), and the result is what the full stage would return.  Returns whether it applied."""
        known = self.state.read_json("canonical.json") if self.state.exists() else None
        if not known or known.get("content_sha256") != _text_sha256(content) or known.get("nft_version") != version:
            return False
        listing = self.listed_table()
        sha = listing_sha256(listing)
        if sha is None or sha != known.get("candidate_sha256"):
            return False
        if self.state.read_json("armed.json") or self.last_rollback():
            return False  # the full stage reports (and retires) what an earlier run left
        self.result.update({"present_before": True, "sha256_before": sha, "sha256_after": sha, "changed": False,
                            "canonicalised_with": "known (this content was canonicalised here before)",
                            "canonical_loads": 0, "unified_diff": "", "armed": False, "pending_confirm": False})
        if self.module._diff:
            self.result["diff"] = {"before": listing, "after": listing, "before_header": "running: %s" % TABLE,
                                   "after_header": "candidate: %s" % TABLE}
        self.result["last_rollback"] = self.last_rollback()
        self.result["persisted"] = self.persist_plan(listing, sha)[0] == []
        if self.p["failsafe_inbound"] is not None and self.p["failsafe_outbound"] is not None:
            self.inspect_into_result()
        return True

    def load_stage(self):
        stage = self.state.read_json("stage.json")
        if stage and not all(key in stage for key in ("stage_id", "candidate_sha256", "snapshot_sha256")):
            raise NftTableError("the stage record %s is damaged (it lacks stage_id, candidate_sha256 or "
                                "snapshot_sha256): stage again" % self.state.path("stage.json"))
        if not stage or not os.path.exists(self.state.path("candidate.nft")):
            raise NftTableError("nothing is staged in %s: run state=stage first" % self.state.root)
        if self.p["sha256"] and self.p["sha256"] != stage["candidate_sha256"]:
            raise NftTableError("the staged candidate (sha256 %s) is not the expected one (%s): another run staged "
                                "in between; stage again" % (stage["candidate_sha256"], self.p["sha256"]))
        return stage

    def staged_and_unchanged(self):
        """The stage record, after checking that the running table is still the staged snapshot (or
        already the candidate, or the conntrack primer this stage loaded).  Returns (stage, running sha256)."""
        stage = self.load_stage()
        primed = self.primed_sha(stage)
        cur_sha = self.set_listing_result(self.current_listing_expecting(
            stage["snapshot_sha256"], stage["candidate_sha256"], primed))
        if cur_sha is not None and cur_sha == primed:
            return stage, cur_sha
        if cur_sha not in (stage["snapshot_sha256"], stage["candidate_sha256"]):
            raise NftTableError("table inet hostfw changed since it was staged (now %s, staged snapshot %s): stage "
                                "again" % (cur_sha, stage["snapshot_sha256"]))
        return stage, cur_sha

    def op_arm(self):
        if self.check and not os.path.exists(self.state.path("stage.json")):
            self.result["changed"] = True
            return
        stage, cur_sha = self.staged_and_unchanged()
        if cur_sha != stage["snapshot_sha256"]:
            raise NftTableError("table inet hostfw changed since it was staged (now %s, staged snapshot %s): stage "
                                "again" % (cur_sha, stage["snapshot_sha256"]))
        self.result["changed"] = self.do_arm(stage)

    def op_apply(self):
        if self.check and not os.path.exists(self.state.path("stage.json")):
            self.result["changed"] = True
            return
        stage, cur_sha = self.staged_and_unchanged()
        if cur_sha == stage["candidate_sha256"]:
            self.result["armed"] = self.armed_now()[1]
            return  # already the candidate
        if self.check:
            self.result["changed"] = True
            self.result["sha256_after"] = stage["candidate_sha256"]
            return
        armed, pending, fired = self.armed_now()
        if fired and armed.get("stage_id") == stage["stage_id"]:
            self.result.update({"rolled_back": True, "rollback": self.rollback.describe(armed, pending, fired)})
            self.retire_fired(armed, fired)
            raise NftTableError("the rollback %s armed for this stage already fired (at %s), before the candidate was "
                                "applied: nothing is applied; stage again" % (armed["id"], _utc(fired.get("finished"))))
        candidate = self.verified(self.state.path("candidate.nft"), stage.get("candidate_file_sha256"), "staged candidate")
        self.do_arm(stage)
        armed = self.state.read_json("armed.json")
        if self.p["prime"] and cur_sha is None and not stage.get("snapshot_present"):
            self.load_primer(stage, armed)
            return
        try:  # again, right before nft -f
            self.verified(candidate, stage.get("candidate_file_sha256"), "staged candidate")
        except NftTableError:
            self.rollback.disarm(armed)
            self.result["armed"] = False
            raise
        rc, out, err = self.run([self.nft, "-f", candidate], check_rc=False)
        if rc != 0:
            self.rollback.disarm(armed)
            self.result["armed"] = False
            raise NftTableError("nft -f of the candidate failed, nothing changed, rollback disarmed: %s" % err.strip(),
                                rc=rc, stderr=err)
        if armed:
            # when the counters of the new table started (read back by hostfw.nftables.nft_report)
            armed["applied_at"] = time.time()
            self.state.write_json("armed.json", armed)
        after = listing_sha256(self.current_listing_expecting(stage["candidate_sha256"]))
        self.result.update({"changed": True, "applied": True, "sha256_after": after})
        if after != stage["candidate_sha256"]:
            raise NftTableError("after nft -f the running table hashes to %s, not to the candidate %s; the armed "
                                "rollback will restore the snapshot" % (after, stage["candidate_sha256"]))

    def op_confirm(self, verify=True):
        if verify and not self.p["sha256"]:
            raise NftTableError("state=confirm needs sha256 (the candidate hash returned by state=stage)")
        armed, pending, fired = self.armed_now()
        current = self.current_listing_expecting(self.p["sha256"])
        cur_sha = self.set_listing_result(current)
        if fired:
            info = self.rollback.describe(armed, pending, fired)
            self.result.update({"rolled_back": info["restored"], "rollback_failed": not info["restored"],
                                "rollback": info})
            if not self.check:
                self.retire_fired(armed, fired)
            if not info["restored"]:
                raise NftTableError("the rollback %s fired before the confirmation but did NOT restore the previous "
                                    "table: %s; table inet hostfw now hashes to %s (%s)"
                                    % (armed["id"], info.get("error") or "no error recorded", cur_sha,
                                       "the candidate" if cur_sha == self.p["sha256"] else "not the candidate"))
            raise NftTableError("the rollback %s fired at %s before the confirmation: table inet hostfw was restored "
                                "to its previous state (sha256 %s)" % (armed["id"], time.strftime(
                                    "%Y-%m-%dT%H:%M:%SZ", time.gmtime(fired.get("finished", 0))),
                                    info["restored_sha256"]))
        if verify and cur_sha != self.p["sha256"]:
            self.result["armed"] = pending
            raise NftTableError("the running table inet hostfw (sha256 %s) is not the candidate (%s); %s"
                                % (cur_sha, self.p["sha256"], "the rollback stays armed and will restore the snapshot"
                                   if pending else "no rollback is armed"))
        if not armed:
            self.result["applied"] = verify
            self.persist_after_confirm(verify, current, cur_sha)
            return
        self.result["rollback"] = self.rollback.describe(armed, pending, None)
        if self.check:
            self.result["changed"] = True
            self.result["armed"] = pending
            return
        self.rollback.disarm(armed)
        self.result["rollback"].update({"pending": False, "disarmed_at": time.time()})
        self.result.update({"changed": True, "applied": verify, "armed": False})
        self.state.write_json("confirmed.json", {"id": armed["id"], "sha256": cur_sha, "at": time.time(),
                                                 "verified": verify, "applied_at": armed.get("applied_at")})
        self.state.remove("last-rollback.json", "primed.json")
        self.persist_after_confirm(verify, current, cur_sha)

    def persist_after_confirm(self, verify, current, cur_sha):
        """O(persist) of V(confirm): persist the confirmed table in the same call, so that a confirmed host is
        persisted whatever happens to the other hosts of its batch."""
        if not (verify and self.p["persist"]):
            return
        changed = self.result["changed"]
        try:
            self.do_persist(current, cur_sha)
        except NftTableError as exc:
            self.result["persisted"] = False
            raise NftTableError("the running table inet hostfw (sha256 %s) is confirmed and the rollback disarmed, but "
                                "persisting it failed: %s" % (cur_sha, exc.msg), **exc.extra)
        self.result["persist_changed"] = self.result["changed"]
        self.result["changed"] = changed or self.result["changed"]
        self.result["persisted"] = True

    def op_status(self):
        armed, pending, fired = self.armed_now()
        self.set_listing_result(self.current_listing())
        self.result.update({"armed": pending, "rolled_back": False, "rollback_failed": False})
        if armed:
            self.result["rollback"] = self.rollback.describe(armed, pending, fired)
            if fired:
                self.result["rolled_back"] = self.result["rollback"]["restored"]
                self.result["rollback_failed"] = not self.result["rollback"]["restored"]
            if not pending and not fired:
                self.result["rollback"]["stale"] = True
        if fired and not self.check:
            self.retire_fired(armed, fired)
        self.result["confirmed"] = self.state.read_json("confirmed.json")
        self.result["last_rollback"] = self.last_rollback()
        if not armed and self.result["last_rollback"]:
            # retired by an earlier call (confirm, stage): still the latest outcome on this host
            last = self.result["last_rollback"]
            restored = last.get("restored", True)
            self.result.update({"rolled_back": restored, "rollback_failed": not restored, "rollback": last})

    def op_persist(self):
        armed, pending, fired = self.armed_now()
        if pending:
            raise NftTableError("a rollback (id %s) is armed: confirm the running table before persisting it"
                                % armed["id"])
        current = self.current_listing()
        cur_sha = self.set_listing_result(current)
        self.do_persist(current, cur_sha)

    def persist_plan(self, current, cur_sha):
        """(what persisting ``current`` would change: a list of diffs, the file text, the unit text, whether the
        unit must be enabled).  Reads only."""
        path = self.p["persist_path"]
        text = render_apply_file(current, "hostfw.nftables: last confirmed table inet hostfw, loaded by %s\nsha256 %s"
                                 % (UNIT_NAME, cur_sha))
        old = read_text(path)
        diffs = []
        if old != text:
            diffs.append({"before": old or "", "after": text, "before_header": path, "after_header": path})
        unit_text = render_unit(self.nft, path)
        unit_path = self.p["unit_path"]
        old_unit = read_text(unit_path)
        if old_unit != unit_text:
            diffs.append({"before": old_unit or "", "after": unit_text, "before_header": unit_path,
                          "after_header": unit_path})
        enable = False
        systemctl = self.module.get_bin_path("systemctl")
        if systemctl:
            rc, out, err = self.run([systemctl, "is-enabled", UNIT_NAME], check_rc=False)
            enable = out.strip() != "enabled"
        if enable and not diffs:
            diffs.append({"before": "%s disabled\n" % UNIT_NAME, "after": "%s enabled\n" % UNIT_NAME,
                          "before_header": "systemctl is-enabled", "after_header": "systemctl is-enabled"})
        return diffs, text, unit_text, enable

    def do_persist(self, current, cur_sha):
        if current is None:
            if self.check and self.p["sha256"]:
                # Check mode on a host without our table yet: the candidate would be applied first,
                # then persisted.
                self.result["changed"] = True
                return
            raise NftTableError("table inet hostfw is not loaded: nothing to persist (use state=remove to drop "
                                "persistence)")
        if self.p["sha256"] and cur_sha != self.p["sha256"]:
            if self.check:
                # the candidate was not applied in check mode: it would be persisted after apply
                self.result["changed"] = True
                return
            raise NftTableError("the running table (sha256 %s) is not the expected candidate (%s): not persisting"
                                % (cur_sha, self.p["sha256"]))
        path, unit_path = self.p["persist_path"], self.p["unit_path"]
        for option, value in (("persist_path", path), ("unit_path", unit_path), ("nft", self.nft)):
            problem = unit_path_problem(value, option)
            if problem:
                raise NftTableError(problem)
        for value in (path, unit_path):
            problem = check_ancestors(value)
            if problem:
                raise NftTableError("refusing to persist to %s: %s" % (value, problem))
        diffs, text, unit_text, enable = self.persist_plan(current, cur_sha)
        if not self.check:
            if read_text(path) != text:
                try:
                    # checked (sha256, nft -c) as the temporary file, before it replaces the old one
                    StateDir.write_atomic(path, text, 0o600,
                                          verify=lambda tmp, sha: self.nft_check_file(tmp, "persisted file", sha))
                except (IOError, OSError) as exc:
                    raise NftTableError("cannot write the persisted table: %s" % os_error_message(exc, "write", path))
            unit_changed = read_text(unit_path) != unit_text
            if unit_changed:
                try:
                    StateDir.write_atomic(unit_path, unit_text, 0o644)
                except (IOError, OSError) as exc:
                    raise NftTableError("cannot write the boot unit: %s" % os_error_message(exc, "write", unit_path))
            systemctl = self.module.get_bin_path("systemctl")
            if systemctl:
                if self.rollback.systemd_running() and unit_changed:
                    self.run([systemctl, "daemon-reload"])
                if enable:
                    self.run([systemctl, "enable", UNIT_NAME])
        if not self.module.get_bin_path("systemctl"):
            self.module.warn("systemctl not found: %s written but not enabled" % unit_path)
        self.result["changed"] = bool(diffs)
        self.result["persist_path"] = path
        self.result["unit_path"] = unit_path
        if self.module._diff and diffs:
            self.result["diff"] = diffs

    def op_remove(self):
        changed = False
        armed = self.state.read_json("armed.json")
        if armed:
            changed = True
            if not self.check:
                self.rollback.disarm(armed)
        current = self.current_listing()
        self.result.update({"sha256_before": listing_sha256(current), "present_before": current is not None})
        if current is not None:
            changed = True
            if not self.check:
                self.run([self.nft, "delete", "table", TABLE_FAMILY, TABLE_NAME])
        systemctl = self.module.get_bin_path("systemctl")
        unit_path = self.p["unit_path"]
        if os.path.exists(unit_path):
            changed = True
            if not self.check:
                if systemctl:
                    self.run([systemctl, "disable", UNIT_NAME], check_rc=False)
                self.unlink(unit_path, "the boot unit")
                if systemctl and self.rollback.systemd_running():
                    self.run([systemctl, "daemon-reload"], check_rc=False)
        if os.path.exists(self.p["persist_path"]):
            changed = True
            if not self.check:
                self.unlink(self.p["persist_path"], "the persisted table")
        if not self.check:
            self.state.remove("candidate.nft", "snapshot.nft", "stage.json", "confirmed.json")
        self.result["changed"] = changed

    def op_inspect(self):
        self.inspect_into_result()
        self.set_listing_result(self.current_listing())
        self.result["armed"] = self.armed_now()[1]

    @staticmethod
    def find_ssh_connection():
        """SSH_CONNECTION of this process or the nearest ancestor (become/sudo resets the environment)."""
        value = os.environ.get("SSH_CONNECTION")
        pid = os.getpid()
        for dummy in range(32):
            if value:
                break
            try:
                with open("/proc/%d/stat" % pid) as handle:
                    pid = int(handle.read().rsplit(")", 1)[1].split()[1])
                if pid <= 1:
                    break
                with open("/proc/%d/environ" % pid, "rb") as handle:
                    value = ssh_connection_from_environ_blob(handle.read())
            except (IOError, OSError, ValueError, IndexError):
                break
        return parse_ssh_connection(value)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", required=True,
                       choices=["stage", "arm", "apply", "confirm", "disarm", "status", "persist", "remove", "inspect"]),
            content=dict(type="str"),
            sha256=dict(type="str"),
            timeout=dict(type="int", default=60),
            rollback_method=dict(type="str", default="auto", choices=["auto", "systemd", "detached"]),
            state_dir=dict(type="path", default="/run/hostfw"),
            persist_path=dict(type="path", default="/etc/hostfw/hostfw.nft"),
            unit_path=dict(type="path", default="/etc/systemd/system/hostfw.service"),
            failsafe_inbound=dict(type="list", elements="dict"),
            failsafe_outbound=dict(type="list", elements="dict"),
            lock_timeout=dict(type="int", default=60),
            prime=dict(type="bool", default=False),
            persist=dict(type="bool", default=False),
        ),
        required_if=[("state", "stage", ["content"]), ("state", "confirm", ["sha256"]),
                     ("state", "inspect", ["failsafe_inbound", "failsafe_outbound"])],
        supports_check_mode=True,
    )
    if not module.get_bin_path("nft"):
        # the role installs nftables on this answer and stages again (hostfw_install_packages)
        module.fail_json(msg="nft (nftables) is not installed on this host (not found on PATH nor in /sbin, /usr/sbin): "
                         "install nftables 0.9.3 or newer", nft_missing=True, changed=False)
    table = NftTable(module)
    state = module.params["state"]
    try:
        if state != "inspect":
            table.lock()
        {
            "stage": table.op_stage,
            "arm": table.op_arm,
            "apply": table.op_apply,
            "confirm": table.op_confirm,
            "disarm": lambda: table.op_confirm(verify=False),
            "status": table.op_status,
            "persist": table.op_persist,
            "remove": table.op_remove,
            "inspect": table.op_inspect,
        }[state]()
    except NftTableError as exc:
        result = dict(table.result)
        result.update(exc.extra)
        module.fail_json(msg=exc.msg, **result)
    except StateError as exc:
        module.fail_json(msg=str(exc), **table.result)
    except (IOError, OSError) as exc:
        module.fail_json(msg="state=%s: %s" % (state, os_error_message(exc, "use")), **table.result)
    module.exit_json(**table.result)


if __name__ == "__main__":
    main()
