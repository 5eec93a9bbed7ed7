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
from differential import DataplaneWorld, example_hostvars, prove_cells  # noqa: E402

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
    comp = compile_inventory(example_hostvars(inv_dir), inv_dir)
    with netlab.Lab() as lab:
        world = DataplaneWorld(comp, lab, local_workloads=True)
        tables = {}
        for host in world.hosts:
            path = os.path.join(out_dir, files.host_file_name(host))
            with open(path, encoding="utf-8") as f:
                tables[host] = f.read()
        try:
            proven = prove_cells(world, matrix, tables)
        except AssertionError as exc:
            print(exc)
            return 1
        for host in world.hosts:
            print("loaded %s into namespace %s (nft -f, one transaction)" % (
                os.path.join(out_dir, files.host_file_name(host)), lab.node(host).netns))
    rows = []
    for c, r in proven:
        src, dst = (c["source"], c["destination"]) if "source" in c else ("host " + c["node"], c["workload"])
        rows.append((src, dst, c, r))
    width = max(len(row[0]) for row in rows)
    dwidth = max(len(row[1]) for row in rows)
    print()
    print("%-*s  %-*s  %-10s %-8s %-8s  %s" % (
        width, "source", dwidth, "destination", "probe", "compiled", "kernel", "reason"))
    bad = 0
    for src, dst, c, r in rows:
        ok = (c["verdict"] == "allow") == r.allowed
        bad += not ok
        print("%-*s  %-*s  %-10s %-8s %-8s  %s%s" % (
            width, src, dwidth, dst, "%s/%s" % (c["protocol"], c["port"]), c["verdict"],
            "allow" if r.allowed else "deny", c["reason"], "" if ok else "   <-- MISMATCH (%s)" % r.detail))
    cells = rows
    print()
    if bad:
        print("%d of %d cells differ between the compiled matrix and the kernel" % (bad, len(cells)))
        return 1
    print("all %d cells proven with real connections through the rendered tables" % len(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
