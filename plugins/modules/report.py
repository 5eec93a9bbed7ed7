# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# This file documents the action plugin plugins/action/report.py, which runs on the controller.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: report
short_description: Write the fleet report of table inet hostfw (states, hashes, rule hits, staged policies)
version_added: 0.2.0
description:
  - Runs on the controller only (an action plugin), once, after M(hostfw.nftables.nft_report) read every host; the
    playbook C(hostfw.nftables.report) runs both (C(ansible-playbook -i INV hostfw.nftables.report
    -e hostfw_output_dir=DIR)).
  - Compiles the inventory (reusing the cache of the validated policy world) and writes C(report.json) and
    C(report.md) to O(output_dir).
  - "Per host, its state: C(in sync) (the running table is the last confirmed one and the compiled candidate),
    C(pending change) (the compiled candidate differs: the next rollout changes it), C(drifted) (the running
    table is not the last confirmed one, for example after C(nft flush table inet hostfw)), C(missing) (the
    table is gone although one was confirmed or persisted), C(not rolled out), C(no ruleset) (no HostEndpoint),
    C(unreachable) or C(read failed); with the hashes of the running, last confirmed and candidate tables (each
    canonicalised by the host's own nft, so only hashes of one host compare) and since when its counters run."
  - Per enforced policy rule, its packets and bytes fleet-wide and per host; rules without a hit are listed as
    unused.
  - "Per staged policy (C(StagedGlobalNetworkPolicy)), from the shadow counters that C(hostfw_staged_counters)
    adds to a host's table: per rule, the new connections it would decide (would deny or would allow) and how many
    of them the table allows today, the hosts they came from, and one verdict line, for example
    C(promoting t1.block-8080 would have denied 1,204 new connections on 3 hosts since 2026-12-02T10:00:00Z
    (1,204 of them allowed today))."
options:
  output_dir:
    description: Directory on the controller for C(report.json) and C(report.md). Files are only rewritten when
      their content changes.
    type: path
    required: true
  register:
    description: The variable in which the hosts registered their M(hostfw.nftables.nft_report) result. A host
      without it (unreachable, or not part of the play) is reported as C(unreachable).
    type: str
    default: hostfw_report_host
  hosts:
    description: The hosts to report. Default is every host of the play (C(ansible_play_hosts_all)).
    type: list
    elements: str
attributes:
  check_mode:
    support: full
    description: In check mode nothing is written; C(changed) says whether the files would change.
  diff_mode:
    support: none
    description: The report is meant to be read, not diffed.
  platform:
    support: full
    platforms: posix
    description: Runs on the controller.
seealso:
  - module: hostfw.nftables.nft_report
  - module: hostfw.nftables.compile
author:
  - hostfw.nftables contributors (@hostfw)
"""

EXAMPLES = r"""
- name: Read every host's running table
  hostfw.nftables.nft_report:
  register: hostfw_report_host

- name: Write DIR/report.json and DIR/report.md
  hostfw.nftables.report:
    output_dir: "{{ hostfw_output_dir }}"
  run_once: true
  delegate_to: localhost
"""

RETURN = r"""
summary:
  description: Hosts per state.
  returned: always
  type: dict
  sample: {"in sync": 2, "drifted": 1}
verdicts:
  description: One line per staged policy.
  returned: always
  type: list
  elements: str
files:
  description: The files written (or that would be, in check mode).
  returned: always
  type: list
  elements: str
"""
