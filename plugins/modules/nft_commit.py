# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# This file documents the action plugin plugins/action/nft_commit.py, which drives nft_table on the host.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nft_commit
short_description: Apply the staged table inet hostfw with an armed rollback, confirm it over a new connection, persist it
version_added: 0.2.0
description:
  - An action plugin that runs the commit-confirm part of the rollout inside one task per host, as
    M(community.general.iptables_state) does for iptables, calling M(hostfw.nftables.nft_table) on the host.
    The candidate must have been staged (M(hostfw.nftables.nft_table) O(hostfw.nftables.nft_table#module:state=stage)),
    checked and verified first; the role M(hostfw.nftables.rollout) does that.
  - "Steps: V(apply) arms the rollback (O(timeout) seconds from that moment) and loads the staged candidate in the
    same call; on a host without C(table inet hostfw) it first loads the conntrack primer and applies in a second
    call, one round trip later (see M(hostfw.nftables.nft_table) O(hostfw.nftables.nft_table#module:prime)). Then the
    connection is reset (an established session survives the change through conntrack and proves nothing), the host
    is reached over a NEW connection (retried for O(reconnect_timeout) seconds), and one V(confirm) call checks the
    running table, disarms the rollback and, with O(persist), persists the table."
  - "Because every host runs these steps inside its own task, the armed window of a host is only its own apply,
    reconnect and confirm: it does not grow with the batch (C(serial)) or with the other hosts of the batch, and a
    host that confirmed is persisted whatever happens to the others."
  - When the new connection cannot be made, the plugin waits until the rollback deadline has passed, reconnects,
    reads the rollback status and fails with C(ROLLED BACK on <host>) and what was restored, or says the host is
    still unreachable.
  - A call on a host whose running table already is the candidate, with a rollback armed by an earlier,
    interrupted run (RV(hostfw.nftables.nft_table#module:pending_confirm) of the stage), confirms it the same way.
options:
  sha256:
    description: The canonical candidate hash (RV(hostfw.nftables.nft_table#module:sha256_after) of the stage).
    type: str
    required: true
  timeout:
    description:
      - Seconds from the apply after which the rollback fires unless confirmed. Must exceed O(reconnect_timeout).
    type: int
    default: 60
  reconnect_timeout:
    description: Seconds to keep trying a new connection after the apply.
    type: int
    default: 30
  persist:
    description: Persist the confirmed table and enable C(hostfw.service) in the confirming call.
    type: bool
    default: true
  prime:
    description: Load the conntrack primer one round trip before the candidate when C(table inet hostfw) is absent.
    type: bool
    default: true
  state_dir:
    description: As M(hostfw.nftables.nft_table) O(hostfw.nftables.nft_table#module:state_dir).
    type: path
    default: /run/hostfw
  persist_path:
    description: As M(hostfw.nftables.nft_table) O(hostfw.nftables.nft_table#module:persist_path).
    type: path
    default: /etc/hostfw/hostfw.nft
  unit_path:
    description: As M(hostfw.nftables.nft_table) O(hostfw.nftables.nft_table#module:unit_path).
    type: path
    default: /etc/systemd/system/hostfw.service
  rollback_method:
    description: As M(hostfw.nftables.nft_table) O(hostfw.nftables.nft_table#module:rollback_method).
    type: str
    choices: [auto, systemd, detached]
    default: auto
  lock_timeout:
    description: As M(hostfw.nftables.nft_table) O(hostfw.nftables.nft_table#module:lock_timeout).
    type: int
    default: 60
attributes:
  check_mode:
    support: full
    description: In check mode nothing is run on the host; the task reports the change it would make.
  diff_mode:
    support: none
    description: The stage shows the diff.
  platform:
    support: full
    platforms: posix
    description: Linux hosts with nftables, reached over a connection that can be reset (SSH).
notes:
  - Run it with the linear strategy and without C(async); every host runs its own commit-confirm inside the task.
  - The rollback timeout has to cover the apply, the reconnection (at most O(reconnect_timeout)) and the confirm call.
seealso:
  - module: hostfw.nftables.nft_table
  - module: community.general.iptables_state
    description: The action plugin whose one-task commit-confirm flow this follows.
author:
  - hostfw.nftables contributors (@hostfw)
"""

EXAMPLES = r"""
- name: Stage the candidate
  hostfw.nftables.nft_table:
    state: stage
    content: "{{ lookup('ansible.builtin.file', 'out/' ~ inventory_hostname ~ '.nft') }}"
  register: staged

- name: Apply, confirm over a new connection and persist, in one task
  hostfw.nftables.nft_commit:
    sha256: "{{ staged.sha256_after }}"
    timeout: 60
    reconnect_timeout: 30
  when: staged is changed or staged.pending_confirm
"""

RETURN = r"""
applied:
  description: Whether this task loaded the candidate.
  returned: always
  type: bool
confirmed:
  description: Whether the running table was confirmed over a new connection and the rollback disarmed.
  returned: always
  type: bool
persisted:
  description: Whether the confirmed table was persisted (with O(persist)).
  returned: when confirmed
  type: bool
primed:
  description: Whether the conntrack primer was loaded first (a host without table inet hostfw).
  returned: always
  type: bool
armed:
  description: Whether a rollback is still pending after the task (false once confirmed).
  returned: always
  type: bool
rolled_back:
  description: Whether the rollback fired (the task then fails with C(ROLLED BACK on <host>)).
  returned: always
  type: bool
rollback:
  description: The rollback record (as M(hostfw.nftables.nft_table) returns it).
  returned: when a rollback was armed
  type: dict
sha256_after:
  description: The running table's hash after the task.
  returned: always
  type: str
armed_seconds:
  description:
    - Seconds the host stayed armed, from the arming to the disarming (both on the host's clock; the controller's
      RV(call_seconds) when the host did not report them).
  returned: when confirmed
  type: float
call_seconds:
  description: Controller seconds from the start of the arming call to the end of the confirming (and persisting) call.
  returned: when confirmed
  type: float
steps:
  description: Controller seconds per step (C(apply), C(prime_round_trip), C(reconnect_confirm), C(rollback_wait), C(status)).
  returned: always
  type: dict
"""
