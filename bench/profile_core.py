#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Profile the compiler core on a generated workload, without Ansible.

Does what the compile action does after gathering the variables: ``compile_inventory``, then for
every host ``ruleset`` + ``sha256`` + ``failsafe_proof`` (and writes nothing).  Prints the stage
times and the functions with the largest share of the time (cProfile, cumulative and own time).

    python bench/profile_core.py --hosts 1000 --policies 1000 [--top 25] [--variant manifest|vars]
    python bench/profile_core.py --variant wide --policies 1000 --addresses 100000
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, ".collections"))

import generate  # noqa: E402 pylint: disable=wrong-import-position


def hostvars_of(variant: str, out: str, hosts: int, policies: int, addresses: int = 0):
    names = [generate.host_name(i) for i in range(hosts)]
    if variant == "wide":
        inv = generate.write_wide(out, policies, addresses)
        return {"target": {"hostfw_manifests": ["manifests/world.yaml"]}}, os.path.dirname(inv)
    if variant == "manifest":
        inv = generate.write_fleet_manifest(out, hosts, policies)
        return {n: {"hostfw_manifests": ["manifests/world.yaml"]} for n in names}, os.path.dirname(inv)
    import yaml  # pylint: disable=import-outside-toplevel
    inv = generate.write_fleet_vars(out, hosts, policies)
    with open(os.path.join(out, "group_vars", "all.yml"), encoding="utf-8") as f:
        resources = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))["hostfw_resources"]
    # group_vars/all: every host carries the same list object, as Ansible hands it over
    return {n: {"hostfw_resources": resources} for n in names}, os.path.dirname(inv)


def run_core(hostvars, base_dir):
    from ansible_collections.hostfw.nftables.plugins.plugin_utils.compiler import (  # pylint: disable=import-outside-toplevel
        compile_inventory, sha256)
    comp = compile_inventory(hostvars, base_dir)
    t1 = time.perf_counter()
    n = 0
    for host in comp.hosts_with_rulesets():
        text = comp.ruleset(host)
        sha256(text)
        comp.failsafe_proof(host)
        n += 1
    comp.timings["compile_and_proof"] = time.perf_counter() - t1
    return comp, n


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--policies", type=int, default=1000)
    parser.add_argument("--variant", choices=("manifest", "vars", "wide"), default="manifest")
    parser.add_argument("--addresses", type=int, default=100000, help="wide: addresses in total")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="hostfw-profile-") as out:
        hostvars, base_dir = hostvars_of(args.variant, out, args.hosts, args.policies, args.addresses)
        prof = cProfile.Profile()
        t0 = time.perf_counter()
        prof.enable()
        comp, n = run_core(hostvars, base_dir)
        prof.disable()
        total = time.perf_counter() - t0
    print("%d hosts compiled in %.2f s (profiled); stages: %s" % (
        n, total, ", ".join("%s %.2f" % kv for kv in sorted(comp.timings.items()))))
    for key, title in (("cumulative", "cumulative time"), ("tottime", "own time")):
        buf = io.StringIO()
        stats = pstats.Stats(prof, stream=buf)
        stats.sort_stats(key).print_stats(args.top)
        print("---- top %d by %s ----" % (args.top, title))
        print(buf.getvalue().split("\n", 6)[-1] if "ncalls" in buf.getvalue() else buf.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
