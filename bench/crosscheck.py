#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Independent cross-check of the benchmark's hostfw / Aerleon throughput ratio.

A second, self-contained implementation of the fleet workload of bench/README.md (it imports nothing
from bench/run.py, bench/generate.py or bench/aerleon_gen.py), to confirm the main benchmark's ratio:

* N hosts ``h<i>`` (IPv4 10.0.0.0 + i + 1), one Calico HostEndpoint each (``hep-h<i>``, eth0, labels
  ``group: g<i%100>`` and ``zone: z<i%10>``); P GlobalNetworkPolicies in the tiers ``xa`` (order 100,
  the first half) and ``xb`` (order 200), policy j selecting ``zone == 'z<j%10>'`` and allowing TCP
  1000+j from ``group == 'g<j%100>'``.
* **hostfw**: the documents in one manifest (``hostfw_manifests``), the hosts in a YAML inventory, and
  ``ansible-playbook`` of a one-task playbook (``hostfw.nftables.compile``, matrix off, run once on
  localhost), with a fresh empty ``HOSTFW_CACHE_DIR`` for every run.
* **Aerleon**: one ``*.yaml`` policy per host (one ``nftables: inet INPUT`` filter, one term per
  selecting policy, in tier then policy order) and one definitions file (a network ``G<k>`` per
  group, a service ``TCP<port>`` per policy), rendered by ``aclgen`` (its defaults otherwise).

Each tool is timed as a whole process (wall time, and peak RSS of the largest process of its tree
from ``wait4``), writing into a fresh output directory. Both outputs are verified: one ``.nft`` file
per host, and for three sample hosts the policy ports (1000 and up) found in ``dport`` matches of each
file are exactly the ports of the policies that select the host. It prints a table, the hostfw /
Aerleon throughput ratio, and the marginal per-host cost of each tool between the smallest and the
largest size.

Run it (small sizes: Aerleon needs ~0.08 s per host on 2 cores)::

    .venv/bin/python bench/crosscheck.py --hosts 100,300 --policies 1000 [--repeat 3] [--keep]

It exits 1 when a run fails or an output does not verify.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GROUPS = 100
ZONES = 10
BASE_PORT = 1000
TIERS = (("xa", 100), ("xb", 200))
SAMPLES = 3

PLAYBOOK = """\
- name: Cross-check render (hostfw)
  hosts: all
  gather_facts: false
  tasks:
    - name: Compile every host's table once, on the controller
      hostfw.nftables.compile:
        output_dir: "{{ crosscheck_output_dir }}"
        matrix: false
        host_details: false
        fail_on_refusal: true
      run_once: true
      delegate_to: localhost
"""


# ---------------------------------------------------------------- workload

def host_ip(i: int) -> str:
    return str(ipaddress.IPv4Address(int(ipaddress.IPv4Address("10.0.0.0")) + i + 1))


def policy_tier(j: int, policies: int) -> str:
    return TIERS[0][0] if j < policies // 2 else TIERS[1][0]


def selecting_policies(i: int, policies: int) -> list[int]:
    """Policies that select host i (zone i%10), in evaluation order (tier xa, then xb; order j)."""
    return [j for j in range(policies) if j % ZONES == i % ZONES]


def group_members(hosts: int) -> dict[int, list[int]]:
    members: dict[int, list[int]] = {k: [] for k in range(GROUPS)}
    for i in range(hosts):
        members[i % GROUPS].append(i)
    return members


def write(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def calico_manifest(hosts: int, policies: int) -> str:
    width = max(4, len(str(policies - 1)))
    docs = []
    for name, order in TIERS:
        docs.append("apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata:\n  name: %s\nspec:\n  order: %d\n" % (name, order))
    for i in range(hosts):
        docs.append("apiVersion: projectcalico.org/v3\nkind: HostEndpoint\nmetadata:\n  name: hep-h%d\n  labels:\n    group: g%d\n    zone: z%d\n"
                    "spec:\n  node: h%d\n  interfaceName: eth0\n  expectedIPs:\n  - %s\n" % (i, i % GROUPS, i % ZONES, i, host_ip(i)))
    for j in range(policies):
        tier = policy_tier(j, policies)
        docs.append("apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata:\n  name: %s.p%s\n"
                    "spec:\n  tier: %s\n  order: %d\n  selector: \"zone == 'z%d'\"\n  types:\n  - Ingress\n"
                    "  ingress:\n  - action: Allow\n    protocol: TCP\n    source:\n      selector: \"group == 'g%d'\"\n"
                    "    destination:\n      ports:\n      - %d\n"
                    % (tier, str(j).zfill(width), tier, j, j % ZONES, j % GROUPS, BASE_PORT + j))
    return "---\n".join(docs)


def inventory(hosts: int, manifest: str) -> str:
    lines = ["all:", "  vars:", "    hostfw_manifests: %s" % manifest, "  hosts:"]
    for i in range(hosts):
        lines.append("    h%d:\n      ansible_host: %s" % (i, host_ip(i)))
    return "\n".join(lines) + "\n"


def aerleon_definitions(hosts: int, policies: int) -> str:
    lines = ["networks:"]
    for k, members in group_members(hosts).items():
        lines.append("  G%d:\n    values:" % k)
        lines.extend("    - address: %s/32" % host_ip(i) for i in members)
    lines.append("services:")
    for j in range(policies):
        lines.append("  TCP%d:\n  - port: %d\n    protocol: tcp" % (BASE_PORT + j, BASE_PORT + j))
    return "\n".join(lines) + "\n"


def aerleon_policy(i: int, policies: int) -> str:
    width = max(4, len(str(policies - 1)))
    lines = ["filters:", "- header:", "    targets:", "      nftables: inet INPUT", "  terms:"]
    for j in selecting_policies(i, policies):
        lines.append("  - name: %s-p%0*d\n    source-address: G%d\n    destination-port: TCP%d\n    protocol: tcp\n    action: accept"
                     % (policy_tier(j, policies), width, j, j % GROUPS, BASE_PORT + j))
    return "\n".join(lines) + "\n"


def generate(root: str, hosts: int, policies: int) -> dict[str, str]:
    """Write both tools' inputs for one size under root; return their paths."""
    paths = {
        "manifest": os.path.join(root, "hostfw", "calico.yaml"),
        "inventory": os.path.join(root, "hostfw", "inventory.yml"),
        "playbook": os.path.join(root, "hostfw", "render.yml"),
        "policies": os.path.join(root, "aerleon", "policies"),
        "definitions": os.path.join(root, "aerleon", "def"),
    }
    write(paths["manifest"], calico_manifest(hosts, policies))
    write(paths["inventory"], inventory(hosts, paths["manifest"]))
    write(paths["playbook"], PLAYBOOK)
    write(os.path.join(paths["definitions"], "fleet.yaml"), aerleon_definitions(hosts, policies))
    for i in range(hosts):
        # aclgen renders the files of every directory named "pol" under --base_directory.
        write(os.path.join(paths["policies"], "pol", "h%d.yaml" % i), aerleon_policy(i, policies))
    return paths


# ---------------------------------------------------------------- measuring

def measure(argv: list[str], cwd: str, env: dict[str, str], log: str) -> dict:
    """Run argv as one process tree: wall seconds, exit code, peak RSS (MiB) of its largest process."""
    with open(log, "wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        status, usage = os.wait4(proc.pid, 0)[1:]
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"wall": wall, "rc": proc.returncode, "rss_mib": usage.ru_maxrss / 1024.0, "log": log}


def tool(name: str) -> str | None:
    beside = os.path.join(os.path.dirname(sys.executable), name)
    if os.access(beside, os.X_OK):
        return beside
    venv = os.path.join(REPO, ".venv", "bin", name)
    if os.access(venv, os.X_OK):
        return venv
    return shutil.which(name)


def run_hostfw(root: str, paths: dict[str, str], rep: int, playbook_cmd: str, collections: str) -> dict:
    out = os.path.join(root, "out-hostfw-%d" % rep)
    cache = tempfile.mkdtemp(prefix="cache-%d-" % rep, dir=root)
    os.makedirs(out)
    env = dict(os.environ)
    env.update({
        "ANSIBLE_COLLECTIONS_PATH": collections,
        "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false",
        "ANSIBLE_LOCAL_TEMP": os.path.join(root, "ansible-tmp"),
        "ANSIBLE_RETRY_FILES_ENABLED": "false",
        "ANSIBLE_NOCOLOR": "1",
        "HOSTFW_CACHE_DIR": cache,
    })
    argv = [playbook_cmd, "-i", paths["inventory"], paths["playbook"], "-e", "crosscheck_output_dir=%s" % out]
    result = measure(argv, os.path.dirname(paths["playbook"]), env, os.path.join(root, "hostfw-%d.log" % rep))
    result["out"] = out
    return result


def run_aerleon(root: str, paths: dict[str, str], rep: int, aclgen: str) -> dict:
    out = os.path.join(root, "out-aerleon-%d" % rep)
    os.makedirs(out)
    argv = [aclgen, "--base_directory=%s" % paths["policies"], "--definitions_directory=%s" % paths["definitions"], "--output_directory=%s" % out]
    result = measure(argv, os.path.dirname(paths["policies"]), dict(os.environ), os.path.join(root, "aerleon-%d.log" % rep))
    result["out"] = out
    return result


# ---------------------------------------------------------------- verifying

DPORT = re.compile(r"dport\s+(@[\w.-]+|\{[^}]*\}|[0-9][0-9-]*)")
SADDR = re.compile(r"ip saddr\s+(@[\w.-]+|\{[^}]*\}|[0-9][0-9./-]*)")
NAMED_SET = re.compile(r"set ([\w.-]+) \{[^{}]*?elements = \{([^}]*)\}", re.S)
ADDRESS = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+(?:/[0-9]+|\s*-\s*[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+)?")


def ports_of(text: str) -> set[int]:
    """Ports of an nft port expression or set elements: single ports, ranges, ``proto . port`` pairs."""
    ports: set[int] = set()
    for item in re.findall(r"[0-9]+(?:\s*-\s*[0-9]+)?", text):
        low, high = item.partition("-")[::2]
        ports.update(range(int(low), int(high or low) + 1))
    return ports


def addresses_of(text: str) -> set[str]:
    """IPv4 addresses of an nft address expression (addresses, prefixes, ranges), one by one."""
    found: set[str] = set()
    for item in ADDRESS.findall(text):
        if "-" in item:
            low, high = (ipaddress.IPv4Address(part.strip()) for part in item.split("-"))
            found.update(str(ipaddress.IPv4Address(a)) for a in range(int(low), int(high) + 1))
        else:
            found.update(str(a) for a in ipaddress.IPv4Network(item, strict=False))
    return found


def rules_by_port(text: str) -> tuple[set[int], dict[int, set[str]]]:
    """Every ``dport`` port of an nft file, and for each port the source addresses of the rules matching it."""
    named = {match.group(1): match.group(2) for match in NAMED_SET.finditer(text)}
    ports: set[int] = set()
    sources: dict[int, set[str]] = {}
    for line in text.splitlines():
        dport = DPORT.search(line)
        if not dport:
            continue
        expr = dport.group(1)
        line_ports = ports_of(named.get(expr[1:], "") if expr.startswith("@") else expr)
        ports |= line_ports
        saddr = SADDR.search(line)
        if saddr:
            expr = saddr.group(1)
            addresses = addresses_of(named.get(expr[1:], "") if expr.startswith("@") else expr)
            for port in line_ports:
                sources.setdefault(port, set()).update(addresses)
    return ports, sources


def verify(result: dict, hosts: int, policies: int) -> list[str]:
    """Problems of one run's output (empty when it verifies)."""
    name = result["tool"]
    if result["rc"] != 0:
        return ["%s exited %s (see %s)" % (name, result["rc"], result["log"])]
    problems = []
    missing = [i for i in range(hosts) if not os.path.isfile(os.path.join(result["out"], "h%d.nft" % i))]
    if missing:
        problems.append("%s: %d of %d hosts have no .nft file (first: h%d)" % (name, len(missing), hosts, missing[0]))
    members = group_members(hosts)
    policy_ports = range(BASE_PORT, BASE_PORT + policies)
    for i in sorted({0, hosts // 2, hosts - 1})[:SAMPLES]:
        path = os.path.join(result["out"], "h%d.nft" % i)
        if not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8") as handle:
            found, sources = rules_by_port(handle.read())
        expected = {BASE_PORT + j for j in selecting_policies(i, policies)}
        got = {p for p in found if p in policy_ports}
        if got != expected:
            problems.append("%s: h%d has %d policy ports, expected %d (missing %s, unexpected %s)"
                            % (name, i, len(got), len(expected), sorted(expected - got)[:5], sorted(got - expected)[:5]))
        wrong = [port for port in sorted(expected & got)
                 if sources.get(port) != {host_ip(m) for m in members[(port - BASE_PORT) % GROUPS]}]
        if wrong:
            problems.append("%s: h%d: %d ports whose rules' source addresses are not their group's (first: %d, sources %s)"
                            % (name, i, len(wrong), wrong[0], sorted(sources.get(wrong[0], set()))[:5]))
        result.setdefault("other_ports", {})["h%d" % i] = sorted(found - set(policy_ports))
    return problems


# ---------------------------------------------------------------- reporting

def parse_sizes(text: str) -> list[int]:
    sizes = sorted({int(part) for part in text.split(",") if part.strip()})
    if not sizes or sizes[0] < GROUPS:
        raise argparse.ArgumentTypeError("host counts must be >= %d (every group g0..g%d populated)" % (GROUPS, GROUPS - 1))
    return sizes


def median_run(runs: list[dict]) -> dict:
    walls = sorted(run["wall"] for run in runs)
    return {"wall": statistics.median(walls), "walls": walls, "rss_mib": max(run["rss_mib"] for run in runs)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--hosts", type=parse_sizes, default=parse_sizes("100,300"), help="comma-separated host counts (default 100,300)")
    parser.add_argument("--policies", type=int, default=1000, help="GlobalNetworkPolicies (default 1000)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each tool per size; the median wall time is reported (default 1)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (inputs, outputs, logs) and print its path")
    args = parser.parse_args(argv)
    if args.policies < ZONES or BASE_PORT + args.policies > 65536:
        parser.error("--policies must be between %d and %d" % (ZONES, 65536 - BASE_PORT))
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    playbook_cmd, aclgen = tool("ansible-playbook"), tool("aclgen")
    if not playbook_cmd or not aclgen:
        print("missing tool: %s (pip install -r bench/requirements.txt)" % ("ansible-playbook" if not playbook_cmd else "aclgen"), file=sys.stderr)
        return 2

    work = tempfile.mkdtemp(prefix="hostfw-crosscheck-")
    link = os.path.join(work, "collections", "ansible_collections", "hostfw", "nftables")
    os.makedirs(os.path.dirname(link))
    os.symlink(REPO, link)
    results: dict[tuple[str, int], dict] = {}
    problems: list[str] = []
    notes: list[str] = []
    try:
        for hosts in args.hosts:
            root = os.path.join(work, "n%d" % hosts)
            paths = generate(root, hosts, args.policies)
            runs: dict[str, list[dict]] = {"hostfw": [], "aerleon": []}
            for rep in range(args.repeat):
                for name in ("hostfw", "aerleon"):
                    if name == "hostfw":
                        result = run_hostfw(root, paths, rep, playbook_cmd, os.path.join(work, "collections"))
                    else:
                        result = run_aerleon(root, paths, rep, aclgen)
                    result["tool"] = name
                    problems.extend(verify(result, hosts, args.policies))
                    runs[name].append(result)
                    print("  %-7s %5d hosts  run %d: %.2f s, rc %s" % (name, hosts, rep + 1, result["wall"], result["rc"]), flush=True)
            for name, tool_runs in runs.items():
                results[(name, hosts)] = median_run(tool_runs)
                other = tool_runs[0].get("other_ports")
                if other:
                    notes.append("%s, %d hosts: non-policy dports in sample files: %s"
                                 % (name, hosts, "; ".join("%s %s" % (h, ports or "none") for h, ports in other.items())))
        report(results, args, notes)
        if problems:
            print("\nFAILED:")
            for problem in problems:
                print("  - " + problem)
        else:
            print("\nverified: every host has a file from both tools; in %d sample hosts' files the policy ports are exactly those of the"
                  " selecting policies, each matched from exactly its source group's addresses" % SAMPLES)
    finally:
        if args.keep:
            print("\nwork directory kept: %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 1 if problems else 0


def report(results: dict[tuple[str, int], dict], args: argparse.Namespace, notes: list[str]) -> None:
    print("\nhostfw / Aerleon cross-check: %d policies, %d run(s) per tool and size (median wall time), %d cores"
          % (args.policies, args.repeat, os.cpu_count() or 0))
    print("\n| tool | hosts | wall s | hosts/s | peak RSS MiB (largest process) | runs s |")
    print("|---|---|---|---|---|---|")
    for hosts in args.hosts:
        for name in ("hostfw", "aerleon"):
            res = results[(name, hosts)]
            print("| %s | %d | %.2f | %.1f | %.0f | %s |"
                  % (name, hosts, res["wall"], hosts / res["wall"], res["rss_mib"], ", ".join("%.2f" % w for w in res["walls"])))
    print("\nratio hostfw / Aerleon hosts per second:")
    for hosts in args.hosts:
        print("  %5d hosts: %.1fx" % (hosts, results[("aerleon", hosts)]["wall"] / results[("hostfw", hosts)]["wall"]))
    if len(args.hosts) >= 2:
        low, high = args.hosts[0], args.hosts[-1]
        print("\nmarginal cost per host, between %d and %d hosts ((t2-t1)/(n2-n1)):" % (low, high))
        marginal = {}
        for name in ("hostfw", "aerleon"):
            marginal[name] = (results[(name, high)]["wall"] - results[(name, low)]["wall"]) / (high - low)
            print("  %-7s %.2f ms/host (%.0f hosts/s)" % (name, marginal[name] * 1000, 1 / marginal[name] if marginal[name] > 0 else float("inf")))
        if marginal["hostfw"] > 0:
            print("  ratio Aerleon / hostfw marginal cost: %.1fx" % (marginal["aerleon"] / marginal["hostfw"]))
        else:
            print("  ratio: undefined (hostfw's marginal cost is not positive at these sizes)")
    if notes:
        print("\nnotes:")
        for note in notes:
            print("  - " + note)


if __name__ == "__main__":
    sys.exit(main())
