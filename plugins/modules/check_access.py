# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# This file documents the action plugin plugins/action/check_access.py, which runs on the controller.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: check_access
short_description: Ask whether a host's compiled hostfw table accepts a new connection
version_added: 0.1.0
description:
  - Runs on the controller only (an action plugin). Compiles the inventory (reusing the cache of the validated
    policy world that M(hostfw.nftables.compile) filled in the same run) and evaluates one new connection against
    the table of O(host) with Calico's semantics, without touching the host.
  - The rollout role uses it to prove that the management connection Ansible uses stays open before it applies
    a candidate, and, with O(world=pending), to warn when promoting the staged policies would cut it.
options:
  host:
    description:
      - The inventory host whose table decides. With O(source), O(destination) and O(port); or use O(flows).
    type: str
  source:
    description: Source address of the connection as the host sees it (an IP address literal).
    type: str
  destination:
    description: The host's address the connection goes to (an IP address literal).
    type: str
  protocol:
    description: Transport protocol.
    type: str
    choices: [TCP, UDP, SCTP]
    default: TCP
  port:
    description: Destination port.
    type: int
  interface:
    description:
      - Interface the connection arrives on. Default is the interface of C(hostfw_interfaces) that holds
        O(destination), else the host endpoint whose expectedIPs contain it, else the all-interfaces endpoint.
    type: str
  world:
    description:
      - The policy world that decides. V(enforced) is what the compiled tables enforce.
      - V(pending) is the world once every staged policy is promoted (C(StagedGlobalNetworkPolicy) with
        C(stagedAction) C(Set) added to its tier or replacing the enforced policy of the same name, C(Delete)
        removing that policy, C(Learn) and C(Ignore) changing nothing), answering "would this connection
        survive the promotion". Without staged policies both worlds are the same.
      - Applies to every flow of O(flows).
    type: str
    choices: [enforced, pending]
    default: enforced
  flows:
    description:
      - Several connections checked in one task (one compile of the world), each a mapping with the keys
        C(host), C(source), C(destination), C(port) and optionally C(protocol) and C(interface), as the options
        of the same names. The results are in RV(flows) and RV(by_host).
      - Every bad flow is reported (its index, what is wrong) and none is evaluated when any is bad.
      - Mutually exclusive with O(host).
    type: list
    elements: dict
attributes:
  check_mode:
    support: full
    description: Never changes anything.
  diff_mode:
    support: none
    description: Nothing to show; nothing changes.
  platform:
    support: full
    platforms: posix
    description: Runs on the controller.
seealso:
  - module: hostfw.nftables.compile
author:
  - hostfw.nftables contributors (@hostfw)
"""

EXAMPLES = r"""
- name: Would the candidate keep SSH from the controller open?
  hostfw.nftables.check_access:
    host: "{{ inventory_hostname }}"
    source: 192.0.2.10
    destination: "{{ ansible_host }}"
    protocol: TCP
    port: 22
  register: access

- name: Refuse to go on if not
  ansible.builtin.assert:
    that: access.allowed
    fail_msg: "management access would be cut: {{ access.reason }}"

- name: Would the management connection survive promoting the staged policies?
  hostfw.nftables.check_access:
    host: "{{ inventory_hostname }}"
    source: 192.0.2.10
    destination: "{{ ansible_host }}"
    port: 22
    world: pending
  register: after_promotion

- name: Check the SSH flows of several hosts in one task
  hostfw.nftables.check_access:
    flows:
      - {host: node1, source: 192.0.2.10, destination: 10.0.0.1, port: 22}
      - {host: node2, source: 192.0.2.10, destination: 10.0.0.2, port: 22}
  register: batch
  run_once: true

- name: Refuse to go on if any is denied
  ansible.builtin.assert:
    that: batch.flows | rejectattr('allowed') | list | length == 0
    fail_msg: "{{ batch.flows | rejectattr('allowed') | map(attribute='reason') | list }}"
"""

RETURN = r"""
allowed:
  description: Whether the first packet of the connection is accepted.
  returned: success, with O(host)
  type: bool
  sample: true
reason:
  description: What decides, for example C(failsafe inbound tcp:22) or
    C(tier host-firewall policy node-host-firewall ingress rule 0 (Allow)) or C(end of tier host-firewall (defaultAction Deny));
    a rule of a staged policy (O(world=pending)) reads C(policy staged:<name>).
  returned: success, with O(host)
  type: str
interface:
  description: The interface the connection was evaluated on (C(*) for the all-interfaces endpoint).
  returned: success, with O(host)
  type: str
world:
  description: The policy world that decided (O(world)).
  returned: success, with O(host)
  type: str
  sample: pending
packet:
  description: The packet evaluated, in words.
  returned: success, with O(host)
  type: str
flows:
  description: With O(flows), one result per flow in the same order, each with the keys of the single-flow
    result (C(allowed), C(reason), C(interface), C(packet)) and the flow's own keys.
  returned: success, with O(flows)
  type: list
  elements: dict
by_host:
  description:
    - With O(flows), one result per host name.
    - A host is allowed only when all its flows are allowed; its entry is its first denied flow, else its first flow.
  returned: success, with O(flows)
  type: dict
"""
