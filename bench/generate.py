#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark workloads for hostfw.nftables.

The *fleet* workload of N hosts and P policies:

* host ``h<i>`` (i = 0..N-1) has one HostEndpoint ``hep-h<i>`` on ``eth0`` with one IPv4
  expectedIP (``10.0.0.0/8`` + i + 1) and the labels ``group: g<i % 100>``, ``zone: z<i % 10>``;
* P GlobalNetworkPolicies in two tiers: the first half in tier ``bench-a`` (order 100,
  defaultAction Pass), the rest in ``bench-b`` (order 200, defaultAction Deny).  Policy j selects
  ``zone == 'z<j % 10>'`` and allows TCP ``1000 + j`` from ``group == 'g<j % 100>'``, so every
  host is selected by P/10 policies with one rule each;
* variant ``manifest``: the Calico documents in ``manifests/world.yaml`` (multi-document YAML),
  the hosts in ``inventory.yml`` (hosts only) and ``hostfw_manifests`` in ``group_vars/all.yml``;
* variant ``vars``: the same world as ``hostfw_resources`` in ``group_vars/all.yml``;
* ``aerleon``: the equivalent per-host policies for Aerleon's ``aclgen``
  (see :mod:`aerleon_gen`).

The *staged* addition (``--staged S``): S StagedGlobalNetworkPolicies on top of the fleet, and
``hostfw_staged_counters: true`` for every host (the shadow path).  Staged policy k is in tier
``bench-b`` and selects ``zone == 'z<k % 10>'``: every 10th one (k % 10 == 0) is a new version of
enforced policy k (the same selector, allowing TCP 3000 + k instead), the others deny TCP
2000 + k from ``group == 'g<k % 100>'``; so every host gets S/10 staged policies.

The *wide* workload (the per-packet/size target): one host selected by P policies whose
source selectors match GlobalNetworkSets holding A addresses in total (non-adjacent /32s, so
nothing can be merged away).

Usage::

    python bench/generate.py fleet --hosts 1000 --policies 1000 --out DIR [--variant manifest|vars|aerleon|all]
    python bench/generate.py wide --policies 1000 --addresses 100000 --out DIR

Everything is written as plain text (no YAML library), deterministically.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys

TIER_A = "bench-a"
TIER_B = "bench-b"
GROUPS = 100
ZONES = 10
BASE_PORT = 1000
HOST_NET = ipaddress.IPv4Address("10.0.0.0")
WIDE_NET = ipaddress.IPv4Address("172.16.0.0")


def host_name(i: int) -> str:
    return "h%05d" % i


def host_ip(i: int) -> str:
    return str(HOST_NET + i + 1)


def policy_tier(j: int, policies: int) -> str:
    return TIER_A if j < (policies + 1) // 2 else TIER_B


def policies_of_zone(zone: int, policies: int):
    """Indices j of the policies that select hosts of ``zone``, in evaluation order."""
    return [j for j in range(policies) if j % ZONES == zone]


def _write(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------------------------
# Calico documents as YAML text.  `indent` shifts a document so it can be a list item.
# ----------------------------------------------------------------------------------------------

def tier_docs():
    return [
        "apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata:\n  name: %s\nspec:\n  order: 100\n"
        "  defaultAction: Pass\n" % TIER_A,
        "apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata:\n  name: %s\nspec:\n  order: 200\n"
        "  defaultAction: Deny\n" % TIER_B,
    ]


def host_endpoint_doc(i: int) -> str:
    return ("apiVersion: projectcalico.org/v3\nkind: HostEndpoint\nmetadata:\n  name: hep-%s\n  labels:\n"
            "    group: g%d\n    zone: z%d\nspec:\n  node: %s\n  interfaceName: eth0\n  expectedIPs:\n  - %s\n"
            % (host_name(i), i % GROUPS, i % ZONES, host_name(i), host_ip(i)))


def policy_doc(tier: str, j: int, selector: str, source_selector: str) -> str:
    """Policy j of ``tier``: selects ``selector``, allows TCP 1000+j from ``source_selector``."""
    return ("apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata:\n  name: %s.p%04d\nspec:\n"
            "  tier: %s\n  order: %d\n  selector: \"%s\"\n  types:\n  - Ingress\n  ingress:\n  - action: Allow\n"
            "    protocol: TCP\n    source:\n      selector: \"%s\"\n    destination:\n      ports:\n      - %d\n"
            % (tier, j, tier, j, selector, source_selector, BASE_PORT + j))


def fleet_policy_doc(j: int, policies: int) -> str:
    return policy_doc(policy_tier(j, policies), j, "zone == 'z%d'" % (j % ZONES), "group == 'g%d'" % (j % GROUPS))


def fleet_documents(hosts: int, policies: int, staged: int = 0):
    docs = tier_docs()
    docs.extend(host_endpoint_doc(i) for i in range(hosts))
    docs.extend(fleet_policy_doc(j, policies) for j in range(policies))
    docs.extend(staged_policy_doc(k, policies) for k in range(staged))
    return docs


def staged_policy_doc(k: int, policies: int) -> str:
    """Staged policy k (module docstring)."""
    if k % 10 == 0 and k < policies:
        tier = policy_tier(k, policies)
        return ("apiVersion: projectcalico.org/v3\nkind: StagedGlobalNetworkPolicy\nmetadata:\n  name: %s.p%04d\n"
                "spec:\n  tier: %s\n  order: %d\n  selector: \"zone == 'z%d'\"\n  types:\n  - Ingress\n  ingress:\n"
                "  - action: Allow\n    protocol: TCP\n    destination:\n      ports:\n      - %d\n"
                % (tier, k, tier, k, k % ZONES, 3000 + k))
    return ("apiVersion: projectcalico.org/v3\nkind: StagedGlobalNetworkPolicy\nmetadata:\n  name: %s.s%04d\nspec:\n"
            "  tier: %s\n  order: %d\n  selector: \"zone == 'z%d'\"\n  types:\n  - Ingress\n  ingress:\n"
            "  - action: Deny\n    protocol: TCP\n    source:\n      selector: \"group == 'g%d'\"\n    destination:\n"
            "      ports:\n      - %d\n" % (TIER_B, k, TIER_B, k, k % ZONES, k % GROUPS, 2000 + k))


def as_list_items(docs, indent: str = "  ") -> str:
    """Documents as items of a YAML block sequence nested under a key."""
    out = []
    for doc in docs:
        lines = doc.rstrip("\n").split("\n")
        out.append(indent + "- " + lines[0] + "\n")
        out.extend(indent + "  " + line + "\n" for line in lines[1:])
    return "".join(out)


def inventory_text(names) -> str:
    return "---\n# generated by bench/generate.py\nall:\n  hosts:\n" + "".join("    %s:\n" % n for n in names)


# ----------------------------------------------------------------------------------------------
# Workloads
# ----------------------------------------------------------------------------------------------

def write_fleet_manifest(out: str, hosts: int, policies: int, staged: int = 0) -> str:
    """Variant ``manifest`` (with ``staged`` staged policies and the shadow path): returns the inventory file."""
    _write(os.path.join(out, "manifests", "world.yaml"), "---\n".join(fleet_documents(hosts, policies, staged)))
    _write(os.path.join(out, "group_vars", "all.yml"),
           "---\n# generated by bench/generate.py\nhostfw_manifests:\n  - manifests/world.yaml\n"
           + ("hostfw_staged_counters: true\n" if staged else ""))
    inv = os.path.join(out, "inventory.yml")
    _write(inv, inventory_text(host_name(i) for i in range(hosts)))
    return inv


def write_fleet_vars(out: str, hosts: int, policies: int) -> str:
    """Variant ``vars``: the same world as hostfw_resources in group_vars/all.yml."""
    _write(os.path.join(out, "group_vars", "all.yml"),
           "---\n# generated by bench/generate.py\nhostfw_resources:\n" + as_list_items(fleet_documents(hosts, policies)))
    inv = os.path.join(out, "inventory.yml")
    _write(inv, inventory_text(host_name(i) for i in range(hosts)))
    return inv


REVIEW_POLICY = 7


def review_probes(j: int = REVIEW_POLICY) -> str:
    """group_vars text of the review benchmark's matrix probes: SSH and the edited policy's port."""
    return "hostfw_matrix_probes:\n  - {protocol: TCP, port: 22}\n  - {protocol: TCP, port: %d}\n" % (BASE_PORT + j)


def edit_one_policy(manifest: str, policies: int, j: int = REVIEW_POLICY) -> None:
    """The review benchmark's one-policy change: policy j also allows its hosts' egress to TCP
    1000+j (the world's hosts have no egress policy, so this opens cells from its zone)."""
    with open(manifest, encoding="utf-8") as f:
        text = f.read()
    name = "name: %s.p%04d\n" % (policy_tier(j, policies), j)
    start = text.index(name)
    types = "  types:\n  - Ingress\n"
    at = text.index(types, start)
    edited = ("  types:\n  - Ingress\n  - Egress\n  egress:\n  - action: Allow\n    protocol: TCP\n    destination:\n"
              "      ports:\n      - %d\n" % (BASE_PORT + j))
    _write(manifest, text[:at] + edited + text[at + len(types):])


def fleet_expectations(hosts: int, policies: int):
    """What the fleet workload should produce (used by run.py and the smoke test)."""
    return {
        "hosts": hosts,
        "policies": policies,
        "rules_per_host": {host_name(i): len(policies_of_zone(i % ZONES, policies)) for i in range(hosts)},
    }


def wide_address(k: int) -> str:
    # stride 2: no two addresses are adjacent, so no CIDR merging can shrink the sets
    return str(WIDE_NET + 2 * k + 1)


def write_wide(out: str, policies: int, addresses: int) -> str:
    """One host ``target`` selected by every policy; policy j allows TCP 1000+j from the
    GlobalNetworkSet labelled ``src: s<j>``; the sets hold ``addresses`` /32s in total."""
    docs = [tier_docs()[1]]
    docs.append("apiVersion: projectcalico.org/v3\nkind: HostEndpoint\nmetadata:\n  name: hep-target\n  labels:\n"
                "    role: target\nspec:\n  node: target\n  interfaceName: eth0\n  expectedIPs:\n  - 192.0.2.10\n")
    per = [addresses // policies + (1 if j < addresses % policies else 0) for j in range(policies)]
    k = 0
    for j in range(policies):
        nets = "".join("  - %s/32\n" % wide_address(k + n) for n in range(per[j]))
        k += per[j]
        docs.append("apiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\nmetadata:\n  name: src-%04d\n"
                    "  labels:\n    src: s%d\nspec:\n  nets:\n%s" % (j, j, nets))
    for j in range(policies):
        docs.append(policy_doc(TIER_B, j, "role == 'target'", "src == 's%d'" % j))
    _write(os.path.join(out, "manifests", "world.yaml"), "---\n".join(docs))
    _write(os.path.join(out, "group_vars", "all.yml"),
           "---\n# generated by bench/generate.py\nhostfw_manifests:\n  - manifests/world.yaml\n")
    inv = os.path.join(out, "inventory.yml")
    _write(inv, inventory_text(["target"]))
    return inv


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    sub = parser.add_subparsers(dest="workload", required=True)
    fleet = sub.add_parser("fleet", help="N hosts, P policies")
    fleet.add_argument("--hosts", type=int, required=True)
    fleet.add_argument("--policies", type=int, required=True)
    fleet.add_argument("--out", required=True)
    fleet.add_argument("--variant", choices=("manifest", "vars", "aerleon", "all"), default="all")
    fleet.add_argument("--staged", type=int, default=0, help="staged policies on top (manifest variant only)")
    wide = sub.add_parser("wide", help="one host, P policies, A addresses")
    wide.add_argument("--policies", type=int, default=1000)
    wide.add_argument("--addresses", type=int, default=100000)
    wide.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    written = {}
    if args.workload == "fleet":
        if args.variant in ("manifest", "all"):
            written["manifest"] = write_fleet_manifest(os.path.join(args.out, "manifest"), args.hosts, args.policies,
                                                       args.staged)
        if args.variant in ("vars", "all"):
            written["vars"] = write_fleet_vars(os.path.join(args.out, "vars"), args.hosts, args.policies)
        if args.variant in ("aerleon", "all"):
            sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
            import aerleon_gen  # pylint: disable=import-outside-toplevel
            written["aerleon"] = aerleon_gen.write(os.path.join(args.out, "aerleon"), args.hosts, args.policies)
    else:
        written["wide"] = write_wide(args.out, args.policies, args.addresses)
    print(json.dumps(written, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
