# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# This file documents the action plugin plugins/action/compile.py, which runs on the controller.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: compile
short_description: Compile Calico host-protection resources of the whole inventory into nftables tables
version_added: 0.1.0
description:
  - Runs on the controller only (an action plugin); it never connects to a host.
  - Gathers the C(hostfw_*) variables of B(every) inventory host, not only the play's hosts, so a run with
    C(--limit) sees the same policy world as a full run. Inputs are C(hostfw_resources) (Calico
    C(projectcalico.org/v3) documents), C(hostfw_manifests) (paths or globs of multi-document YAML or JSON files,
    relative to the inventory directory; C(List) and C(*List) kinds as C(calicoctl get -o yaml) prints them),
    per-host C(hostfw_host_endpoints), and automatic host endpoints (C(hostfw_auto_host_endpoint)).
  - Validates every document exactly as Calico does. Invalid input fails the task with one line per problem,
    naming kind, name, field path, what is wrong and the fix; nothing is written.
  - Compiles the whole inventory once per call, with Calico Felix semantics (tiers, Pass, default deny,
    failsafes, doNotTrack, preDNAT, applyOnForward, profiles), into one C(table inet hostfw) per host that has a
    HostEndpoint.
  - Proves for every host that each failsafe entry is accepted before any policy verdict, and that each
    protected port stays open. Each host's protected ports are its own C(hostfw_protected_ports) (a mapping with
    C(inbound) and C(outbound) lists of C(tcp:PORT)/C(udp:PORT), port numbers or C({protocol, port, net}), or C([])
    for none); unset, they are the failsafe defaults, or none when the host's C(hostfw_verify_management_access)
    is false (the operator took the risk of cutting access).
  - Optionally evaluates connection checks (for example the management connection) and builds the policy
    matrix.
  - "Staged policies (C(StagedGlobalNetworkPolicy)) are never enforced. When the world has one, every matrix cell
    also gets its C(pending) verdict (the world with every staged policy promoted: C(Set) adds the policy to its
    tier or replaces the enforced policy of the same name, C(Delete) removes that policy, C(Learn) and C(Ignore)
    change nothing), and every host its C(pending_failsafe_proof) (RV(hosts))."
  - "A host whose C(hostfw_staged_counters) is C(true) (or C(log)) gets a shadow path in its table when promoting
    the staged policies would change its verdicts: base chains before and after the enforced filter chains that
    count, for the first packet of each new connection, where the pending world would decide it (comments
    C(hostfw-pending:b ...) and C(hostfw-pending:a ...)), and never accept, drop or reject anything; C(log) also
    logs (rate-limited, prefix C(hostfw-pending)) each connection allowed today that the pending world would deny.
    Default false: the table is exactly the enforced one. The playbook C(hostfw.nftables.report) reads the counts."
  - "Use it with C(run_once: true); the C(hostfw.nftables.render) playbook and the C(hostfw.nftables.rollout)
    role do."
options:
  output_dir:
    description:
      - Directory on the controller to write C(<inventory_hostname>.nft) for every compiled host, and
        C(matrix.json), C(matrix.md) and C(matrix.html) when O(matrix) is true, C(lint.json) and C(lint.md) when
        O(lint) is, C(matrix-diff.json) and C(matrix-diff.md) with O(compare_to). Files are only rewritten when their
        content changes.
    type: path
  hosts:
    description:
      - Inventory hosts to return (and write) results for. Default is every inventory host with a HostEndpoint.
      - The policy world is always the whole inventory.
    type: list
    elements: str
  matrix:
    description:
      - Build the policy matrix. Default is true when O(output_dir) is set.
    type: bool
  probes:
    description:
      - Matrix probes, a list of C({protocol, port}). Default is C(hostfw_matrix_probes).
    type: list
    elements: dict
  checks:
    description:
      - Connection checks to evaluate against the compiled tables, each a dict with C(host) (the inventory
        host whose table decides), C(source), C(destination) (addresses), C(protocol) (C(TCP), C(UDP), C(SCTP))
        and C(port).
    type: list
    elements: dict
    default: []
  proof:
    description:
      - Compute the failsafe proof of every returned host.
    type: bool
    default: true
  return_content:
    description:
      - Also return the text of every table in the result (large for big inventories).
    type: bool
    default: false
  fail_on_refusal:
    description:
      - Fail the task when the failsafe proof of any host fails, with every refusal message (the render playbook
        does). Files are still written, so the refused tables can be read.
    type: bool
    default: false
  lint:
    description:
      - Lint the compiled world (Calico-aware findings HF001-HF012 and the rule anomalies HF101-HF102, documented
        in the collection's C(docs/lint.md)) and return RV(lint); with O(output_dir), also write C(lint.json) and
        C(lint.md). The C(hostfw.nftables.render) playbook and the rollout's check mode turn it on.
    type: bool
    default: false
  lint_fail_on:
    description:
      - Fail the task (after every file is written) when an unacknowledged finding has this severity or a higher one;
        C(never) only reports. A resource acknowledges a finding with the annotation C(hostfw.nftables/ignore) (a comma
        list of codes).
    type: str
    choices: [error, warning, never]
    default: error
  compare_to:
    description:
      - What to compare the compiled world with, for the semantic matrix diff (C(docs/reviewing.md)) - an earlier
        O(output_dir) (its C(matrix.json)), a C(matrix.json) file, or an inventory (a file, or a directory holding
        C(inventory.yml), C(hosts.yml), C(hosts) or a similar name) that is compiled as the old world with this same
        compiler. The inventory is read with C(ansible-inventory --list) (every inventory format, C(group_vars) and
        C(host_vars)); its hostfw variables must be plain data (no Jinja2 templates), and its relative
        C(hostfw_manifests) are relative to its directory.
      - With O(output_dir), writes C(matrix-diff.json) and C(matrix-diff.md) and gives C(matrix.html) its diff view;
        without it, returns RV(matrix_diff). Every returned host gets C(matrix_changes).
      - A relative path is relative to the current directory of the C(ansible-playbook) process.
    type: str
  fail_on:
    description:
      - Fail the task (after every file is written) when the diff against O(compare_to) has a cell of these changes,
        with the list of those cells. For gates on pull requests.
    type: list
    elements: str
    default: []
  max_changes:
    description:
      - At most this many changed cells are listed (with their old and new reasons) in the diff; the counts are
        always complete.
    type: int
    default: 100000
  candidates:
    description:
      - With O(output_dir), also write what a rollout needs to take the tables from that directory instead of
        compiling (O(candidate_dir), the role's C(hostfw_candidate_dir)) - C(candidates.json) with the collection version,
        the input digest (a fingerprint of every input - variables, manifest files, code) and an entry for every
        inventory host (sha256, failsafe proof, failsafe lists, node, warnings; C(has_ruleset) false for a host without
        a HostEndpoint). The C(hostfw.nftables.render) playbook turns it on.
    type: bool
    default: false
  candidate_dir:
    description:
      - Do not compile - return the results of O(hosts) from the candidate files a render wrote into this directory
        (O(candidates)), as a compile of the whole inventory gave them, without reading any host's variables. A job
        that sees only part of the inventory (an AWX slice) so gets the tables of the whole one.
      - Fails, naming the problem, for a directory rendered by another collection version, a host without a candidate
        entry, a table changed after the render, or another render than
        O(candidate_digest).
      - Returns per-host results only (like O(once_per_run)).
    type: path
  candidate_digest:
    description:
      - With O(candidate_dir), the input digest the render reported (RV(input_digest)); a directory holding another
        render is refused. An AWX workflow passes it from the render job to the rollout jobs.
    type: str
  once_per_run:
    description:
      - Compile once per playbook run and let later calls of the same task reuse the results (the rollout's compile
        task, which runs once per C(serial) batch). The first call compiles every host of the play
        (C(ansible_play_hosts_all)) and keeps each host's result in a directory inside the run's own private
        temporary directory (C(DEFAULT_LOCAL_TMP), mode 0700, removed by C(ansible-playbook) at exit); a later call
        returns its O(hosts) from there without reading any host's variables, so the compile work of a whole rollout
        grows with the number of hosts, not with hosts times batches.
      - A result is served only to the same run, play, options and code (collection version and sources), and only
        when no input changed - the manifest files (size, times, inode), the inventory (hosts, groups, C(add_host),
        C(refresh_inventory)) and every hostfw input variable set during the run (C(set_fact), C(include_vars),
        facts); otherwise the call compiles again. A hostfw variable that is a Jinja2 template naming anything but
        run-constant variables (C(playbook_dir), C(inventory_dir), C(inventory_hostname), C(group_names), ...)
        turns the reuse off (RV(run_cache) says why).
      - Returns per-host results only, so it does not take O(output_dir), O(matrix), O(checks), O(lint),
        O(compare_to) or O(fail_on).
    type: bool
    default: false
  host_details:
    description:
      - Return RV(hosts), the per-host results. Turn it off for big inventories when only the files, RV(refusals)
        and RV(written) matter, as the render playbook does, since Ansible handles a result of thousands of
        entries slowly.
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    description: In check mode nothing is written; C(changed) and the diff say what would change.
  diff_mode:
    support: full
    description: Shows the changes of every output file.
  platform:
    support: full
    platforms: posix
    description: Runs on the controller.
notes:
  - Relative C(hostfw_manifests) paths are resolved against the inventory directory.
  - Large fleets should keep policy in manifests (parsed with PyYAML's C loader) rather than in inventory
    variables, which Ansible loads slowly.
seealso:
  - module: hostfw.nftables.nft_table
author:
  - hostfw.nftables contributors (@hostfw)
"""

EXAMPLES = r"""
- name: Compile every host's table and the matrix into a directory
  hostfw.nftables.compile:
    output_dir: "{{ playbook_dir }}/out"
    matrix: true
  run_once: true
  delegate_to: localhost

- name: Would node1 accept the management connection from 192.0.2.10 to 10.0.0.5:22?
  hostfw.nftables.compile:
    hosts: [node1]
    checks:
      - {host: node1, source: 192.0.2.10, destination: 10.0.0.5, protocol: TCP, port: 22}
  run_once: true
  delegate_to: localhost
  register: access

- name: Show the verdict
  ansible.builtin.debug:
    msg: "{{ access.checks[0].allowed }}: {{ access.checks[0].reason }}"
"""

RETURN = r"""
hosts:
  description:
    - Per inventory host results (empty when O(host_details) is false). C(failsafe_inbound) and
      C(failsafe_outbound) are the host's failsafe entries, from its FelixConfiguration.
    - With a staged policy in the world, C(pending_failsafe_proof) is the same proof once the staged policies are
      promoted (the rollout warns when it fails), C(pending_differs) whether promoting them changes the host, and
      C(staged_counters) whether its table carries the shadow path.
    - C(file) is the name of the host's table file in O(output_dir) (C(path) when written). It is the host name
      and C(.nft) for a plain name (letters, digits, C(_.@+-), at most 128 characters, no leading dot), else the name
      made safe and unique with a hash (C(../x) becomes C(_x-<12 hex digits>.nft)).
  returned: always
  type: dict
  sample:
    node1:
      node: node1
      has_ruleset: true
      sha256: 0f4c...
      file: node1.nft
      path: /tmp/out/node1.nft
      warnings: []
      failsafe_proof: {ok: true, messages: [], checked: 32}
      failsafe_inbound: [{protocol: tcp, port: 22, net: null}]
      failsafe_outbound: [{protocol: udp, port: 53, net: null}]
      pending_failsafe_proof: {ok: true, messages: [], checked: 32}
      pending_differs: true
      staged_counters: false
checks:
  description: One result per item of O(checks), with C(allowed), C(reason), C(interface) and C(packet).
  returned: always
  type: list
  elements: dict
  sample: [{host: node1, allowed: true, reason: "failsafe inbound tcp:22", interface: "*"}]
matrix:
  description: The policy matrix (schema in the collection's design notes) when O(matrix) is true and
    O(output_dir) is not set.
  returned: when requested
  type: dict
matrix_cells:
  description: Number of matrix cells.
  returned: when the matrix is built
  type: int
matrix_pending_changes:
  description: Number of matrix cells whose verdict changes once the staged policies are promoted.
  returned: when the matrix is built and the world has a staged policy
  type: int
compiled:
  description: Number of hosts that got a table.
  returned: always
  type: int
refusals:
  description:
    - Why a host's failsafe proof failed, one line per host and cause (the ports and families one cause closes,
      the deciding tier, policy and rule, the fix); empty when every host is proven. Each host's
      C(failsafe_proof.messages) has the full list, one line per entry, family and interface.
  returned: always
  type: list
  elements: str
written:
  description: The table files written to O(output_dir) (or that would be, in check mode), one per host.
  returned: always
  type: list
  elements: str
summary:
  description: One line saying how many hosts and policies were compiled.
  returned: always
  type: str
timings:
  description:
    - Seconds spent in each stage. C(gather_vars) (reading every host's variables), C(load_inputs) (merging them and
      parsing the manifests), C(validate), C(load_and_validate) (both), C(index), C(compile) and C(write) with their
      sum C(compile_and_write), C(matrix); C(load_cached) instead of the loading stages when the validated world came
      from the cache.
  returned: always
  type: dict
lint:
  description:
    - The lint report, C({findings, summary}). Each finding has C(code), C(title), C(severity) (error, warning,
      info), C(kind), C(name), C(path) (the field), C(source) (file and document, as validation errors name them),
      C(line), C(message), C(consequence) (in traffic terms), C(fix), C(acknowledged) and, for some codes, C(where).
      C(summary) counts the unacknowledged findings per severity, and the acknowledged ones.
  returned: when O(lint) is true
  type: dict
  sample:
    findings:
      - code: HF007
        title: pods-reach-host
        severity: error
        kind: GlobalNetworkPolicy
        name: node-host-firewall
        path: spec.ingress[0].source
        source: manifests/20-host-firewall.yaml#1
        line: 15
        message: "the source all() admits application pods (dev/frontend, prod/backend) to the host endpoints: ..."
        consequence: "pods reach the nodes: prod/backend -> host/node-worker TCP/10250 allow (...)"
        fix: "narrow the source to the nodes and the cluster's add-ons ..."
        acknowledged: false
    summary: {error: 1, warning: 0, info: 1, acknowledged: 0}
lint_lines:
  description: One line per lint finding (code, severity, kind, name, field path, message, source), for display.
  returned: when O(lint) is true
  type: list
  elements: str
matrix_diff_summary:
  description: The counts of the diff against O(compare_to) - C(opened), C(closed), C(unchanged), C(only_old),
    C(only_new) and C(cells).
  returned: when O(compare_to) is set
  type: dict
  sample: {opened: 4, closed: 0, unchanged: 16, only_old: 0, only_new: 0, cells: 20}
matrix_diff:
  description:
    - The whole diff (the C(matrix-diff.json) schema - C(old), C(new), C(probes), C(summary), C(changes) with the
      old and new verdict and reason of every changed cell, C(groups)) when O(compare_to) is set and O(output_dir)
      is not.
    - Each host of RV(hosts) also gets C(matrix_changes), the changed cells whose source or destination is one of its
      host endpoints, one line each.
  returned: when O(compare_to) is set and O(output_dir) is not
  type: dict
input_digest:
  description:
    - The digest of every input of the compile (the variables, the manifest files, the code); with O(candidate_dir),
      the one of the render the candidates come from.
  returned: with O(output_dir) and O(candidates), or O(candidate_dir)
  type: str
run_cache:
  description:
    - "With O(once_per_run) - C(stored) (this call compiled the play's hosts and kept the results), C(served) (the
      results came from the run's cache, no variable was read), C(stored again: ...) (an input changed since the
      results were stored) or C(off: <why>) (nothing is reused, each call compiles)."
  returned: when O(once_per_run) is true
  type: str
  sample: served
vars_read:
  description: With O(once_per_run) - how many inventory hosts' variables this call read (0 when served).
  returned: when O(once_per_run) is true
  type: int
warnings_hostfw:
  description: Warnings of the compilation (inactive host endpoints, policies that never apply to hosts, ...).
  returned: always
  type: list
  elements: str
"""
