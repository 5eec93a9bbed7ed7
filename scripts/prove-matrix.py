#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prove a rendered policy matrix with real connections.

    scripts/prove-matrix.py OUTPUT_DIR INVENTORY_DIR

Loads every ``OUTPUT_DIR/<host>.nft`` that the render playbook wrote into its own network
namespace (one per host, addresses = its HostEndpoints' expectedIPs; one ``outside`` namespace
holds the workload and network-set addresses), opens a real connection for every cell of
``OUTPUT_DIR/matrix.json`` and prints the matrix with the kernel's answer next to the compiler's.
Exit status 1 if any cell differs.  Needs root, ``ip`` and ``nft``; touches nothing outside the
namespaces it creates.
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tools", "netlab"))
sys.path.insert(0, os.path.join(ROOT, ".collections"))

import netlab  # noqa: E402
from differential import OUTSIDE, DataplaneWorld  # noqa: E402

from ansible_collections.hostfw.nftables.plugins.plugin_utils.compiler import compile_inventory  # noqa: E402
from ansible_collections.hostfw.nftables.plugins.plugin_utils import files  # noqa: E402


def main(argv):
    if len(argv) != 3:
        print(__doc__)
        return 2
    out_dir, inv_dir = argv[1], argv[2]
    missing = netlab.missing_requirements()
    if missing:
        print("cannot prove the matrix with real packets here: %s" % "; ".join(missing))
        print("(run as root on a machine with iproute2 and nftables: apt-get install nftables iproute2)")
        return 3
    with open(os.path.join(out_dir, "matrix.json"), encoding="utf-8") as f:
        matrix = json.load(f)
    import yaml
    hosts = {}
    with open(os.path.join(inv_dir, "inventory.yml"), encoding="utf-8") as f:
        inv = yaml.safe_load(f)

    def walk(group):
        for name, hv in (group.get("hosts") or {}).items():
            hosts[name] = dict(hv or {})
        for child in (group.get("children") or {}).values():
            walk(child or {})
    walk(inv["all"])
    with open(os.path.join(inv_dir, "group_vars", "all.yml"), encoding="utf-8") as f:
        shared = yaml.safe_load(f) or {}
    for hv in hosts.values():
        for k, v in shared.items():
            hv.setdefault(k, v)
    comp = compile_inventory(hosts, inv_dir)

    with netlab.Lab() as lab:
        world = DataplaneWorld(comp, lab)
        for host in world.hosts:
            lab.add_node(host, world.host_ips[host])
        lab.add_node(OUTSIDE, world.outside_ips)
        world._static_neighbours()
        for host in world.hosts:
            path = os.path.join(out_dir, files.host_file_name(host))
            rc, err = lab.node(host).load_nft(path)
            if rc != 0:
                print("nft -f %s failed: %s" % (path, err))
                return 1
            print("loaded %s into namespace %s (nft -f, one transaction)" % (path, lab.node(host).netns))
        ip_node = {ip: h for h in world.hosts for ip in world.host_ips[h]}
        eps = {e["name"]: e for e in matrix["endpoints"]}
        flows, cells = [], []
        for cell in matrix["cells"]:
            src_ip, dst_ip = eps[cell["source"]]["ips"][0], eps[cell["destination"]]["ips"][0]
            proto = cell["protocol"].lower() if cell["protocol"] in ("TCP", "UDP") else "icmp"
            flows.append(netlab.Flow(ip_node.get(src_ip, OUTSIDE), src_ip, ip_node[dst_ip], dst_ip, proto,
                                     cell["port"]))
            cells.append(cell)
        results = lab.probe_many(flows)
    width = max(len(c["source"]) for c in cells)
    dwidth = max(len(c["destination"]) for c in cells)
    print()
    print("%-*s  %-*s  %-10s %-8s %-8s  %s" % (
        width, "source", dwidth, "destination", "probe", "compiled", "kernel", "reason"))
    bad = 0
    for c, r in zip(cells, results):
        ok = (c["verdict"] == "allow") == r.allowed
        bad += not ok
        print("%-*s  %-*s  %-10s %-8s %-8s  %s%s" % (
            width, c["source"], dwidth, c["destination"], "%s/%s" % (c["protocol"], c["port"]), c["verdict"],
            "allow" if r.allowed else "deny", c["reason"], "" if ok else "   <-- MISMATCH (%s)" % r.detail))
    print()
    if bad:
        print("%d of %d cells differ between the compiled matrix and the kernel" % (bad, len(cells)))
        return 1
    print("all %d cells proven with real connections through the rendered tables" % len(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
