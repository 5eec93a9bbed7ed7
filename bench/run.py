#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""hostfw.nftables benchmark: render time against hosts, against Aerleon.

For every size (N hosts, P policies) of the fleet workload (bench/generate.py):

* **hostfw, manifest**: ``ansible-playbook -i INV bench/playbooks/render-nomatrix.yml`` (the render
  playbook with ``matrix: false``: the matrix is quadratic in hosts) on the inventory whose policy
  is in a manifest.  Measured as a whole process: wall time and peak RSS (the largest process of
  the tree, from ``wait4``, and the sum over the tree, sampled every 50 ms).  Inside it: the time
  until the first task starts (start-up and inventory load, from the ``bench_timer`` callback),
  and the compile action's own ``timings`` (gather_vars, load_inputs: merging the variables and
  parsing the manifests, validate, index, compile, write).  The world cache (HOSTFW_CACHE_DIR) is a fresh empty directory for every
  run, so every run validates from scratch.  Each size runs ``--repeat`` times (default 3) and
  the run with the median wall time is reported: the machine is shared and single runs vary.
* **hostfw, vars**: the same world given as ``hostfw_resources`` in group_vars/all (up to
  ``--vars-max-hosts``, with a time limit).
* **hostfw, render+matrix**: the real ``hostfw.nftables.render`` playbook (matrix on), up to
  ``--matrix-max-hosts``.
* **Aerleon**: ``aclgen`` (Aerleon's CLI) on the equivalent per-host policies (bench/aerleon_gen.py),
  up to ``--aerleon-max-hosts``, with a time limit.

Per-host throughput is compared two ways: hosts per second of the whole process at each size
where both tools ran, and the marginal cost per host (the slope of wall time against hosts over
those sizes), which leaves out each tool's fixed start-up cost.

* **staged**: the manifest variant of ``--staged-hosts`` hosts with ``--staged`` staged policies added
  and ``hostfw_staged_counters: true`` (every host's table gets the shadow path that counts the
  pending world), against the same world without them, run alternately ``--repeat`` times: the
  ratio of the median wall times (target <= 1.2), and the shadow path's rule count per host.

Then the *wide* host: one host selected by ``--wide-policies`` policies whose source selectors
cover ``--wide-addresses`` addresses: rule count of its table against 1.1 x the policy rules,
and the ``nft -f`` load time in a fresh network namespace (root only).

Writes ``results.json``, ``table.md`` and ``time_vs_hosts.png`` (matplotlib, when installed)
into ``--results`` (default bench/results) and prints the table.

    bench/run.py                                  # the default sizes (about 5 minutes)
    BENCH_SIZES=100,1000 bench/run.py             # hosts (P = --policies), or NxP pairs: 1000x500
    bench/run.py --sizes 100 --aerleon-max-hosts 0 --vars-max-hosts 0 --matrix-max-hosts 0 --no-wide  # ~ staged only
    bench/run.py --sizes 20x20 --aerleon-max-hosts 20 --wide-policies 20 --wide-addresses 200 --results /tmp/r
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import aerleon_gen  # noqa: E402 pylint: disable=wrong-import-position
import generate  # noqa: E402 pylint: disable=wrong-import-position

DEFAULT_SIZES = "100,1000,2000,5000,10000"
DEFAULT_REPEAT = 3
DEFAULT_POLICIES = 1000
PLAYBOOK_NOMATRIX = os.path.join(HERE, "playbooks", "render-nomatrix.yml")
PLAYBOOK_RENDER = "hostfw.nftables.render"
PLAYBOOK_REVIEW = os.path.join(HERE, "playbooks", "render-review.yml")
PLAYBOOK_FLOOR = os.path.join(HERE, "playbooks", "floor.yml")
PLAYBOOK_BATCHES = os.path.join(HERE, "playbooks", "compile-batches.yml")
STAGES = ("until_first_task", "gather_vars", "load_inputs", "validate", "load_and_validate", "index", "compile", "write",
          "compile_and_write", "matrix", "lint", "diff", "compile_task", "after_compile")
GIB = 1024 ** 3


# ----------------------------------------------------------------------------------------------
# Running and measuring a process
# ----------------------------------------------------------------------------------------------

def tool(name):
    """A console script next to the running interpreter first (the venv), then on PATH."""
    candidate = os.path.join(os.path.dirname(sys.executable), name)
    if os.access(candidate, os.X_OK):
        return candidate
    return shutil.which(name)


def _children_map():
    kids = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry, "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # the command name may hold spaces and parentheses: split after the last ')'
        fields = stat[stat.rfind(b")") + 2:].split()
        kids.setdefault(int(fields[1]), []).append(int(entry))
    return kids


def _rss_bytes(pid):
    try:
        with open("/proc/%d/statm" % pid, "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def tree_rss(pid):
    kids = _children_map()
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += _rss_bytes(p)
        todo.extend(kids.get(p, ()))
    return total


class Sampler(threading.Thread):
    """Samples the summed RSS of a process tree (shared pages of forked workers count twice, so
    this is an upper bound; ``wait4``'s ru_maxrss is the largest single process)."""

    def __init__(self, pid, interval=0.05):
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self.done = threading.Event()

    def run(self):
        while not self.done.is_set():
            self.peak = max(self.peak, tree_rss(self.pid))
            self.done.wait(self.interval)


def measure(cmd, env=None, cwd=None, log=None, timeout=None):
    """Run ``cmd``; returns wall seconds, peak RSS (largest process and sampled tree sum, bytes),
    the start time (epoch seconds) and the exit code (None on timeout, after killing it)."""
    out = open(log, "wb") if log else subprocess.DEVNULL  # pylint: disable=consider-using-with
    try:
        start_epoch = time.time()
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,  # pylint: disable=consider-using-with
                                start_new_session=True)
        sampler = Sampler(proc.pid)
        sampler.start()
        timer = None
        timed_out = []
        if timeout:
            def kill():
                timed_out.append(True)
                try:
                    os.killpg(proc.pid, 9)
                except OSError:
                    pass
            timer = threading.Timer(timeout, kill)
            timer.start()
        pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status) if pid else -1
        if timer:
            timer.cancel()
        sampler.done.set()
        sampler.join()
    finally:
        if log:
            out.close()
    return {"wall": wall, "maxrss": usage.ru_maxrss * 1024, "tree_rss": sampler.peak, "start_epoch": start_epoch,
            "cpu": usage.ru_utime + usage.ru_stime,
            "rc": None if timed_out else proc.returncode, "timeout": bool(timed_out)}


# ----------------------------------------------------------------------------------------------
# hostfw
# ----------------------------------------------------------------------------------------------

def collections_path():
    """Where Ansible finds hostfw.nftables: the checkout's own ansible_collections/ parent when it
    sits in one (ansible-test), else .collections/ (with the symlink, made when missing)."""
    parts = os.path.realpath(ROOT).split(os.sep)
    if len(parts) > 3 and parts[-3] == "ansible_collections":
        return os.sep.join(parts[:-3])
    base = os.path.join(ROOT, ".collections")
    link = os.path.join(base, "ansible_collections", "hostfw", "nftables")
    if not os.path.exists(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(os.path.relpath(ROOT, os.path.dirname(link)), link)
    return base


def ansible_env(timer_file, cache_dir):
    env = dict(os.environ)
    env.update({
        "ANSIBLE_COLLECTIONS_PATH": collections_path(),
        "ANSIBLE_CALLBACK_PLUGINS": os.path.join(HERE, "callback_plugins"),
        "ANSIBLE_CALLBACKS_ENABLED": "bench_timer",
        "BENCH_TIMER_FILE": timer_file,
        "HOSTFW_CACHE_DIR": cache_dir,
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_RETRY_FILES_ENABLED": "false",
        "PATH": os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", ""),
    })
    return env


def stages_of(run, timer):
    """Stage seconds from the callback record and the compile action's timings."""
    st = {k: None for k in STAGES}
    tasks = timer.get("tasks") or []
    if tasks:
        st["until_first_task"] = tasks[0]["start"] - run["start_epoch"]
    idx = next((i for i, t in enumerate(tasks) if t["name"].lower().startswith("compile")), None)
    comp = timer.get("compile") or {}
    if idx is not None:
        end = tasks[idx + 1]["start"] if idx + 1 < len(tasks) else timer.get("end")
        if end:
            st["compile_task"] = end - tasks[idx]["start"]
            st["after_compile"] = run["start_epoch"] + run["wall"] - end
    for key, value in (comp.get("timings") or {}).items():
        if key in st or key == "load_cached":
            st[key] = value
    return st


_POLICY_RE = re.compile(r"\b(bench-[ab])\.p(\d{4})\b")


def check_fleet_file(path, host_index, policies):
    """Well-formedness of one fleet host file: the table, balanced braces, and exactly the
    policies that select the host named in it.  Returns a list of problems."""
    problems = []
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if "table inet hostfw {" not in text:
        problems.append("%s: no 'table inet hostfw {'" % path)
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    if body.count("{") != body.count("}"):
        problems.append("%s: unbalanced braces" % path)
    want = {int(j) for j in generate.policies_of_zone(host_index % generate.ZONES, policies)}
    seen = {int(m.group(2)) for m in _POLICY_RE.finditer(body)}
    if seen != want:
        problems.append("%s: policies %s expected, found %s" % (path, sorted(want)[:5], sorted(seen)[:5]))
    return problems


def nft_check(path):
    """``nft -c -f`` in a fresh network namespace: (ok, message), or None when not possible."""
    if os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("unshare"):
        return None
    r = subprocess.run(["unshare", "-n", "nft", "-c", "-f", path], capture_output=True, text=True, check=False)
    return r.returncode == 0, (r.stderr or r.stdout).strip()[:500]


def run_hostfw(inv, out_dir, work, label, playbook=PLAYBOOK_NOMATRIX, timeout=None, extra=()):
    os.makedirs(out_dir, exist_ok=True)
    timer_file = os.path.join(work, "timer-%s.json" % label)
    cache = tempfile.mkdtemp(prefix="cache-", dir=work)
    cmd = [tool("ansible-playbook"), "-i", inv, playbook, "-e", "hostfw_output_dir=%s" % out_dir] + list(extra)
    run = measure(cmd, env=ansible_env(timer_file, cache), cwd=work, log=os.path.join(work, "log-%s.txt" % label),
                  timeout=timeout)
    timer = {}
    if os.path.exists(timer_file):
        with open(timer_file, encoding="utf-8") as f:
            timer = json.load(f)
    run["stages"] = stages_of(run, timer)
    run["compile"] = timer.get("compile")
    run["files"] = len([n for n in os.listdir(out_dir) if n.endswith(".nft")])
    run["log"] = os.path.join(work, "log-%s.txt" % label)
    shutil.rmtree(cache, ignore_errors=True)
    return run


def fleet_hostfw_median(size, work, repeat):
    """The manifest variant ``repeat`` times (a fresh cache each time): the run with the median
    wall time, with every wall time in ``walls`` (the machine is shared: single runs are noisy)."""
    runs = [fleet_hostfw(size, work, "manifest", PLAYBOOK_NOMATRIX, None) for dummy in range(max(1, repeat))]
    ok = [r for r in runs if r["ok"]]
    if len(ok) < len(runs):
        return next(r for r in runs if not r["ok"])
    ok.sort(key=lambda r: r["wall"])
    chosen = ok[len(ok) // 2]
    chosen["walls"] = [r["wall"] for r in runs]
    return chosen


def fleet_hostfw(size, work, variant, playbook, timeout, staged=0):
    hosts, policies = size
    base = os.path.join(work, "%s-%dx%d" % (variant, hosts, policies))
    if variant == "vars":
        inv = generate.write_fleet_vars(base, hosts, policies)
    else:
        inv = generate.write_fleet_manifest(base, hosts, policies, staged)
    out = os.path.join(base, "out")
    run = run_hostfw(inv, out, base, variant, playbook=playbook, timeout=timeout)
    problems = []
    if run["rc"] == 0:
        if run["files"] != hosts:
            problems.append("%d host files written, %d expected" % (run["files"], hosts))
        for i in sorted({0, hosts // 2, hosts - 1}):
            path = os.path.join(out, "%s.nft" % generate.host_name(i))
            if os.path.exists(path):
                problems.extend(check_fleet_file(path, i, policies))
            else:
                problems.append("%s missing" % path)
        checked = nft_check(os.path.join(out, "%s.nft" % generate.host_name(0)))
        run["nft_check"] = None if checked is None else checked[0]
        if checked is not None and not checked[0]:
            problems.append("nft -c rejects %s.nft: %s" % (generate.host_name(0), checked[1]))
    elif run["timeout"]:
        problems.append("stopped after the time limit of %d s" % timeout)
    else:
        problems.append("ansible-playbook failed (rc %s), see %s" % (run["rc"], run["log"]))
    run.update({"tool": "hostfw", "variant": variant, "hosts": hosts, "policies": policies,
                "ok": run["rc"] == 0 and not problems, "problems": problems})
    return run


def shadow_rules(path):
    """Rules of the shadow path of one rendered table: {"before": n, "after": n} (pending-b-*, pending-a-*)."""
    counts = {"before": 0, "after": 0}
    phase = None
    with open(path, encoding="utf-8") as f:
        for line in f:
            text = line.strip()
            if text.startswith("chain "):
                phase = {"pending-b": "before", "pending-a": "after"}.get(text.split()[1][:9])
                continue
            if phase and text and not text.startswith(("#", "}", "type ")):
                counts[phase] += 1
    return counts


def staged_bench(work, hosts, policies, staged, repeat):
    """The fleet with and without ``staged`` staged policies (and the shadow path), alternately."""
    plain, with_staged = [], []
    for dummy in range(max(1, repeat)):
        plain.append(fleet_hostfw((hosts, policies), work, "manifest", PLAYBOOK_NOMATRIX, None))
        with_staged.append(fleet_hostfw((hosts, policies), work, "staged", PLAYBOOK_NOMATRIX, None, staged=staged))
    res = {"hosts": hosts, "policies": policies, "staged": staged,
           "walls_without": [r["wall"] for r in plain], "walls_with": [r["wall"] for r in with_staged],
           "ok": all(r["ok"] for r in plain + with_staged),
           "problems": [p for r in plain + with_staged for p in r["problems"]]}
    if not res["ok"]:
        return res
    a, b = (sorted(runs, key=lambda r: r["wall"])[len(runs) // 2] for runs in (plain, with_staged))
    res.update({"wall_without": a["wall"], "wall_with": b["wall"], "ratio": b["wall"] / a["wall"],
                "compile_without": a["stages"].get("compile_and_write"), "compile_with": b["stages"].get("compile_and_write")})
    out = os.path.join(work, "staged-%dx%d" % (hosts, policies), "out")
    host0 = os.path.join(out, "%s.nft" % generate.host_name(0))
    res["shadow_rules_per_host"] = shadow_rules(host0)
    plain0 = os.path.join(work, "manifest-%dx%d" % (hosts, policies), "out", "%s.nft" % generate.host_name(0))
    with open(plain0, encoding="utf-8") as f:
        res["enforced_rules_per_host"] = count_rules(f.read())["rules"]
    res["size_without"] = os.path.getsize(plain0)
    res["size_with"] = os.path.getsize(host0)
    checked = nft_check(host0)
    res["nft_check"] = None if checked is None else checked[0]
    if checked is not None and not checked[0]:
        res["ok"] = False
        res["problems"].append("nft -c rejects the staged %s.nft: %s" % (generate.host_name(0), checked[1]))
    return res


def staged_text(st):
    if not st:
        return ""
    if not st.get("ok"):
        return "\nStaged policies: PROBLEMS: %s\n" % "; ".join(st.get("problems") or ["?"])
    sh = st["shadow_rules_per_host"]
    return ("\nStaged policies (%d hosts x %d policies + %d staged, hostfw_staged_counters on, alternate runs):\n"
            "  whole process %.2f s with vs %.2f s without (medians of %s / %s): %.2fx; compile_and_write %s vs %s s\n"
            "  shadow path per host: %d rules before and %d after the filter chains (%d enforced rules); "
            "table %d vs %d bytes\n" % (
                st["hosts"], st["policies"], st["staged"], st["wall_with"], st["wall_without"],
                ", ".join("%.2f" % w for w in st["walls_with"]), ", ".join("%.2f" % w for w in st["walls_without"]),
                st["ratio"], _fmt(st["compile_with"]), _fmt(st["compile_without"]), sh["before"], sh["after"],
                st["enforced_rules_per_host"], st["size_with"], st["size_without"]))


# ----------------------------------------------------------------------------------------------
# Review: lint plus the matrix diff of a one-policy change, against the plain render
# ----------------------------------------------------------------------------------------------

def review(size, work, repeat):
    """The fleet world (old) and a copy with one policy edited (new, generate.edit_one_policy).
    ``plain``: the render of the new world without matrix and lint (render-nomatrix.yml);
    ``review``: the same plus the lint and the matrix diff against the old inventory
    (render-review.yml, hostfw_compare_to=the old inventory: ansible-inventory, the old world's
    compilation and the diff on equivalence classes).  Medians of ``repeat`` runs each."""
    hosts, policies = size
    base = os.path.join(work, "review-%dx%d" % (hosts, policies))
    old_inv = generate.write_fleet_manifest(os.path.join(base, "old"), hosts, policies)
    new_inv = generate.write_fleet_manifest(os.path.join(base, "new"), hosts, policies)
    for inv in (old_inv, new_inv):
        with open(os.path.join(os.path.dirname(inv), "group_vars", "all.yml"), "a", encoding="utf-8") as f:
            f.write(generate.review_probes())
    generate.edit_one_policy(os.path.join(base, "new", "manifests", "world.yaml"), policies)
    out = {"hosts": hosts, "policies": policies}
    for label, playbook, extra in (("plain", PLAYBOOK_NOMATRIX, ()),
                                   ("review", PLAYBOOK_REVIEW, ("-e", "hostfw_compare_to=%s" % old_inv))):
        runs = []
        for n in range(max(1, repeat)):
            run = run_hostfw(new_inv, os.path.join(base, "out-%s-%d" % (label, n)), base, "%s-%d" % (label, n),
                             playbook=playbook, extra=extra)
            runs.append(run)
        ok = [r for r in runs if r["rc"] == 0]
        ok.sort(key=lambda r: r["wall"])
        chosen = ok[len(ok) // 2] if ok else runs[0]
        out[label] = {"wall": chosen["wall"], "walls": [r["wall"] for r in runs], "ok": len(ok) == len(runs),
                      "stages": chosen["stages"], "maxrss": chosen["maxrss"], "log": os.path.basename(chosen["log"])}
        if label == "review" and ok:
            with open(os.path.join(base, "out-review-0", "matrix-diff.json"), encoding="utf-8") as f:
                data = json.load(f)
            with open(os.path.join(base, "out-review-0", "lint.json"), encoding="utf-8") as f:
                findings = json.load(f)["summary"]
            out["diff_summary"] = data["summary"]
            out["diff_groups"] = len(data["groups"])
            out["lint_summary"] = findings
    out["ratio"] = out["review"]["wall"] / out["plain"]["wall"] if out["plain"]["wall"] else None
    out["ok"] = out["plain"]["ok"] and out["review"]["ok"] and out["ratio"] is not None and out["ratio"] <= 2.0
    return out


def review_text(results):
    lines = ["| hosts | policies | plain render s (runs) | render + lint + diff s (runs) | ratio | lint s | diff s | "
             "diff: opened / closed / unchanged cells, groups | <= 2x |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        st = r["review"]["stages"] or {}
        comp = st
        s = r.get("diff_summary") or {}
        lines.append("| %d | %d | %.2f (%s) | %.2f (%s) | %.2fx | %s | %s | %s / %s / %s, %s | %s |" % (
            r["hosts"], r["policies"], r["plain"]["wall"], ", ".join("%.2f" % w for w in r["plain"]["walls"]),
            r["review"]["wall"], ", ".join("%.2f" % w for w in r["review"]["walls"]), r["ratio"] or 0,
            _fmt(comp.get("lint")), _fmt(comp.get("diff")), s.get("opened"), s.get("closed"), s.get("unchanged"),
            r.get("diff_groups"), "yes" if r["ok"] else "NO"))
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# Aerleon
# ----------------------------------------------------------------------------------------------

def aerleon_version():
    try:
        from importlib.metadata import version  # pylint: disable=import-outside-toplevel
        return version("aerleon")
    except Exception:  # pylint: disable=broad-except
        return None


def fleet_aerleon(size, work, timeout):
    hosts, policies = size
    base = os.path.join(work, "aerleon-%dx%d" % (hosts, policies))
    aerleon_gen.write(base, hosts, policies)
    os.makedirs(os.path.join(base, "out"), exist_ok=True)
    run = measure(aerleon_gen.command(tool("aclgen"), base), cwd=base, log=os.path.join(base, "log.txt"),
                  timeout=timeout)
    out = os.path.join(base, "out")
    run["files"] = len([n for n in os.listdir(out) if n.endswith(".nft")])
    problems = []
    if run["rc"] == 0:
        if run["files"] != hosts:
            problems.append("%d Aerleon files written, %d expected" % (run["files"], hosts))
        sample = os.path.join(out, "%s.nft" % generate.host_name(0))
        if os.path.exists(sample):
            with open(sample, encoding="utf-8") as f:
                text = f.read()
            if "table ip filtering_policies" not in text:
                problems.append("%s: no 'table ip filtering_policies'" % sample)
            checked = nft_check(sample)
            run["nft_check"] = None if checked is None else checked[0]
    elif run["timeout"]:
        problems.append("stopped after the time limit of %d s" % timeout)
    else:
        problems.append("aclgen failed (rc %s), see %s" % (run["rc"], os.path.join(base, "log.txt")))
    run.update({"tool": "aerleon", "variant": "aclgen", "hosts": hosts, "policies": policies, "stages": {},
                "ok": run["rc"] == 0 and not problems, "problems": problems})
    return run


# ----------------------------------------------------------------------------------------------
# The wide host: rule count and load time
# ----------------------------------------------------------------------------------------------

def count_rules(text):
    """Rules of an nft file: statements inside chains that are not ``type ...`` / ``comment ...``
    (a statement spanning lines, e.g. a verdict map, counts once).  Also: jumps, and rules that
    match a set without elements (dead rules)."""
    empty_sets, current_set, has_elements = set(), None, False
    rules, jumps, dead = 0, 0, 0
    chain, depth, stmt = None, 0, ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if chain is None and current_set is None:
            m = re.match(r"(chain|set|map)\s+(\S+)\s*\{$", line)
            if m and m.group(1) == "chain":
                chain, depth = m.group(2), 0
            elif m:
                current_set, has_elements = m.group(2), False
            continue
        if current_set is not None:
            if line.startswith("elements"):
                has_elements = True
            if line == "}":
                if not has_elements:
                    empty_sets.add(current_set)
                current_set = None
            continue
        if depth == 0 and line == "}":
            chain = None
            continue
        stmt = (stmt + " " + line) if stmt else line
        depth += line.count("{") - line.count("}")
        if depth > 0:
            continue
        depth = 0
        if not (stmt.startswith("type ") or stmt.startswith("comment ")):
            rules += 1
            if re.search(r"\b(jump|goto)\s", stmt) and "vmap" not in stmt:
                jumps += 1
            if any(("@" + s) in stmt.split() or ("@" + s + " ") in stmt for s in empty_sets):
                dead += 1
        stmt = ""
    return {"rules": rules, "jumps": jumps, "rules_on_empty_sets": dead, "empty_sets": len(empty_sets)}


def wide(work, policies, addresses, loads=3):
    base = os.path.join(work, "wide-%dx%d" % (policies, addresses))
    inv = generate.write_wide(base, policies, addresses)
    out = os.path.join(base, "out")
    run = run_hostfw(inv, out, base, "wide")
    res = {"policies": policies, "addresses": addresses, "policy_rules": policies, "render": run,
           "target_rules": 1.1 * policies}
    path = os.path.join(out, "target.nft")
    if run["rc"] != 0 or not os.path.exists(path):
        res["problem"] = "render failed, see %s" % run["log"]
        return res
    with open(path, encoding="utf-8") as f:
        text = f.read()
    res.update(count_rules(text))
    res["bytes"] = len(text.encode("utf-8"))
    res["sets"] = len(re.findall(r"^\s*set\s+\S+\s*\{", text, re.M))
    res["rules_ok"] = res["rules"] <= res["target_rules"]
    if os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("unshare"):
        res["load"] = None
        res["load_skipped"] = "not root (or nft/unshare missing): nft -f load time not measured"
        return res
    times, err = [], None
    while len(times) < loads:
        t0 = time.perf_counter()
        r = subprocess.run(["unshare", "-n", "nft", "-f", path], capture_output=True, text=True, check=False)
        times.append(time.perf_counter() - t0)
        if r.returncode != 0:
            err = (r.stderr or r.stdout).strip()[:500]
            break
    # the same in a namespace where the table already exists: the atomic replace
    r = subprocess.run(["unshare", "-n", "sh", "-c", 'nft -f "$1" && t0=$(date +%s.%N) && nft -f "$1" && '
                        't1=$(date +%s.%N) && echo "$t0 $t1"', "sh", path],
                       capture_output=True, text=True, check=False)
    replace = None
    if r.returncode == 0 and r.stdout.split():
        t0, t1 = (float(x) for x in r.stdout.split()[-2:])
        replace = t1 - t0
    res["load"] = {"runs": times, "min": min(times), "median": statistics.median(times), "replace": replace,
                   "error": err}
    return res


# ----------------------------------------------------------------------------------------------
# Reporting
# ----------------------------------------------------------------------------------------------

def linear_fit(xs, ys):
    n = len(xs)
    if n < 2:
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return None
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    intercept = my - slope * mx
    ss_res = sum((y - (intercept + slope * x)) ** 2 for x, y in zip(xs, ys))
    ss_tot = sum((y - my) ** 2 for y in ys)
    return {"slope": slope, "intercept": intercept, "r2": 1 - ss_res / ss_tot if ss_tot else 1.0, "points": n}


def _fmt(value, spec="%.2f"):
    return "-" if value is None else spec % value


def mib(value):
    return None if not value else value / 1024.0 / 1024.0


def table(runs):
    head = ("| tool | variant | hosts | policies | wall s (median of runs) | hosts/s | peak RSS MiB (largest / tree) | "
            "until 1st task | gather_vars | load manifests | validate | index | compile | write | matrix | "
            "compile task | after | ok |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in runs:
        st = r.get("stages") or {}
        ok = "yes" if r["ok"] else ("timeout" if r.get("timeout") else "NO")
        lines.append("| %s | %s | %d | %d | %s | %s | %s / %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            r["tool"], r["variant"], r["hosts"], r["policies"],
            _fmt(r["wall"]) + (" (%s)" % ", ".join("%.2f" % w for w in r["walls"]) if len(r.get("walls") or ()) > 1 else ""),
            _fmt(r["hosts"] / r["wall"] if r["ok"] else None, "%.0f"),
            _fmt(mib(r["maxrss"]), "%.0f"), _fmt(mib(r["tree_rss"]), "%.0f"),
            _fmt(st.get("until_first_task")), _fmt(st.get("gather_vars")),
            _fmt(st.get("load_inputs")), _fmt(st.get("validate")), _fmt(st.get("index")), _fmt(st.get("compile")),
            _fmt(st.get("write")),
            _fmt(st.get("matrix")), _fmt(st.get("compile_task")), _fmt(st.get("after_compile")), ok))
    return "\n".join(lines)


def summarise(runs, wide_res, main_policies, staged_res=None):
    """Throughput, ratio, linear fit and the targets."""
    def pick(tool_name, variant):
        return {r["hosts"]: r for r in runs if r["tool"] == tool_name and r["variant"] == variant and r["ok"]
                and r["policies"] == main_policies}
    hf, ae = pick("hostfw", "manifest"), pick("aerleon", "aclgen")
    throughput = []
    for n in sorted(set(hf) | set(ae)):
        h = n / hf[n]["wall"] if n in hf else None
        a = n / ae[n]["wall"] if n in ae else None
        throughput.append({"hosts": n, "hostfw_hosts_per_s": h, "aerleon_hosts_per_s": a,
                           "ratio": h / a if h and a else None})
    fit = linear_fit([float(n) for n in sorted(hf)], [hf[n]["wall"] for n in sorted(hf)])
    # Marginal cost per host (the slope of wall time against hosts, start-up excluded), each tool
    # over the sizes where both ran: the per-host throughput the target compares.
    both = sorted(set(hf) & set(ae))
    marginal = None
    if len(both) >= 2:
        hfit = linear_fit([float(n) for n in both], [hf[n]["wall"] for n in both])
        afit = linear_fit([float(n) for n in both], [ae[n]["wall"] for n in both])
        if hfit and afit and hfit["slope"] > 0:
            marginal = {"sizes": both, "hostfw_ms_per_host": hfit["slope"] * 1000, "aerleon_ms_per_host": afit["slope"] * 1000,
                        "ratio": afit["slope"] / hfit["slope"], "hostfw_intercept_s": hfit["intercept"],
                        "aerleon_intercept_s": afit["intercept"]}
    compile_fit = linear_fit([float(n) for n in sorted(hf) if hf[n]["stages"].get("compile_and_write") is not None],
                             [hf[n]["stages"]["compile_and_write"] for n in sorted(hf)
                              if hf[n]["stages"].get("compile_and_write") is not None])
    targets = []

    def target(name, want, got, met):
        targets.append({"target": name, "wanted": want, "measured": got, "met": met})

    if 1000 in hf:
        target("1,000 hosts x %d policies, whole process" % main_policies, "<= 5 s", "%.2f s" % hf[1000]["wall"],
               hf[1000]["wall"] <= 5)
    if 10000 in hf:
        r = hf[10000]
        peak = max(r["maxrss"], r["tree_rss"])
        target("10,000 hosts x %d policies, whole process" % main_policies, "<= 45 s", "%.2f s" % r["wall"],
               r["wall"] <= 45)
        target("10,000 hosts x %d policies, peak memory (largest process / tree sum)" % main_policies, "<= 2 GiB",
               "%.0f / %.0f MiB" % (mib(r["maxrss"]), mib(r["tree_rss"])), peak <= 2 * GIB)
    if marginal:
        target("per-host throughput vs Aerleon: marginal cost per host (slope over %s hosts)"
               % ", ".join("{:,}".format(n) for n in marginal["sizes"]), ">= 20x",
               "%.1fx (%.2f vs %.1f ms/host)" % (marginal["ratio"], marginal["hostfw_ms_per_host"],
                                                 marginal["aerleon_ms_per_host"]), marginal["ratio"] >= 20)
    fleet = [t for t in throughput if t["ratio"] is not None and t["hosts"] >= 1000]
    if fleet:
        worst = min(fleet, key=lambda t: t["ratio"])
        target("hosts/s vs Aerleon, whole process, every size from 1,000 hosts", ">= 20x",
               "%.1fx at %d hosts (worst)" % (worst["ratio"], worst["hosts"]), worst["ratio"] >= 20)
    if fit:
        target("time linear in hosts (least squares over %d sizes)" % fit["points"], "R^2 >= 0.99",
               "R^2 = %.4f, %.2f ms/host + %.2f s" % (fit["r2"], fit["slope"] * 1000, fit["intercept"]),
               fit["r2"] >= 0.99)
    if wide_res and "rules" in wide_res:
        target("rules of a host with %d policies over %d addresses" % (wide_res["policies"], wide_res["addresses"]),
               "<= %.0f (1.1 x %d policy rules)" % (wide_res["target_rules"], wide_res["policy_rules"]),
               "%d" % wide_res["rules"], wide_res["rules_ok"])
    if wide_res and wide_res.get("load") and not wide_res["load"].get("error"):
        ld = wide_res["load"]
        measured = "%.3f s (min %.3f, max %.3f; replace %s s)" % (
            ld["median"], ld["min"], max(ld["runs"]), _fmt(ld["replace"], "%.3f"))
        target("nft -f of that host into a fresh network namespace (median of %d)" % len(ld["runs"]), "< 1 s",
               measured, ld["median"] < 1.0)
    if staged_res and staged_res.get("ok"):
        target("render of %s hosts x %d policies + %d staged policies with the shadow path, whole process"
               % ("{:,}".format(staged_res["hosts"]), staged_res["policies"], staged_res["staged"]),
               "<= 1.2 x without them",
               "%.2fx (%.2f vs %.2f s)" % (staged_res["ratio"], staged_res["wall_with"], staged_res["wall_without"]),
               staged_res["ratio"] <= 1.2)
    return {"throughput": throughput, "fit": fit, "compile_fit": compile_fit, "marginal": marginal, "targets": targets}


def summary_text(summary, wide_res):
    lines = ["", "Per-host throughput (whole process):", "",
             "| hosts | hostfw hosts/s | Aerleon hosts/s | ratio |", "|---|---|---|---|"]
    for t in summary["throughput"]:
        lines.append("| %d | %s | %s | %s |" % (
            t["hosts"], _fmt(t["hostfw_hosts_per_s"], "%.0f"), _fmt(t["aerleon_hosts_per_s"], "%.1f"),
            _fmt(t["ratio"], "%.1fx")))
    marginal = summary.get("marginal")
    if marginal:
        lines += ["", "Marginal cost per host over %s hosts (slope of wall time; start-up excluded): hostfw %.2f ms/host "
                  "(+ %.2f s fixed), Aerleon %.1f ms/host (+ %.2f s fixed): ratio %.1fx"
                  % (", ".join(str(n) for n in marginal["sizes"]), marginal["hostfw_ms_per_host"],
                     marginal["hostfw_intercept_s"], marginal["aerleon_ms_per_host"], marginal["aerleon_intercept_s"],
                     marginal["ratio"])]
    fit = summary["fit"]
    if fit:
        lines += ["", "Linear fit of hostfw wall time against hosts: %.3f ms/host, intercept %.2f s, R^2 = %.4f"
                  % (fit["slope"] * 1000, fit["intercept"], fit["r2"])]
    cfit = summary["compile_fit"]
    if cfit:
        lines += ["Linear fit of compile_and_write against hosts: %.3f ms/host, intercept %.2f s, R^2 = %.4f"
                  % (cfit["slope"] * 1000, cfit["intercept"], cfit["r2"])]
    if wide_res:
        lines += ["", "Wide host (%d policies, %d addresses):" % (wide_res["policies"], wide_res["addresses"])]
        if "rules" in wide_res:
            lines.append("  rules %d (of which jumps %d, on empty sets %d) vs target <= %.0f; %d sets, %d bytes; "
                         "rendered in %.2f s (whole process)"
                         % (wide_res["rules"], wide_res["jumps"], wide_res["rules_on_empty_sets"],
                            wide_res["target_rules"], wide_res["sets"], wide_res["bytes"], wide_res["render"]["wall"]))
        else:
            lines.append("  " + wide_res.get("problem", "not rendered"))
        if wide_res.get("load"):
            ld = wide_res["load"]
            lines.append("  nft -f into a fresh netns: min %.3f s, median %.3f s over %d runs; replace (table exists) %s s%s"
                         % (ld["min"], ld["median"], len(ld["runs"]), _fmt(ld["replace"], "%.3f"),
                            "; ERROR: " + ld["error"] if ld["error"] else ""))
        elif wide_res.get("load_skipped"):
            lines.append("  " + wide_res["load_skipped"])
    lines += ["", "Targets:", "", "| target | wanted | measured | met |", "|---|---|---|---|"]
    for t in summary["targets"]:
        lines.append("| %s | %s | %s | %s |" % (t["target"], t["wanted"], t["measured"], "yes" if t["met"] else "NO"))
    return "\n".join(lines)


def plot(runs, summary, path):
    try:
        import matplotlib  # pylint: disable=import-outside-toplevel
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
    except ImportError:
        return "matplotlib is not installed: no plot (pip install -r bench/requirements.txt)"
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    series = [("hostfw", "manifest", "hostfw (manifest)", "o-"), ("hostfw", "vars", "hostfw (inventory vars)", "s--"),
              ("hostfw", "render+matrix", "hostfw render + matrix", "^:"), ("aerleon", "aclgen", "Aerleon aclgen", "D-")]
    for ax, log in zip(axes, (False, True)):
        for tool_name, variant, label, style in series:
            pts = sorted((r["hosts"], r["wall"]) for r in runs
                         if r["tool"] == tool_name and r["variant"] == variant and r["ok"])
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=label)
        fit = summary["fit"]
        if fit and not log:
            xs = sorted({r["hosts"] for r in runs if r["tool"] == "hostfw" and r["variant"] == "manifest" and r["ok"]})
            ax.plot([0, xs[-1]], [fit["intercept"], fit["intercept"] + fit["slope"] * xs[-1]], color="grey",
                    linewidth=0.8, label="fit: %.2f ms/host + %.1f s, R²=%.3f"
                    % (fit["slope"] * 1000, fit["intercept"], fit["r2"]))
        ax.set_xlabel("hosts")
        ax.set_ylabel("wall time, whole process (s)")
        if log:
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_title("log-log")
        else:
            ax.set_title("linear")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    policies = sorted({r["policies"] for r in runs})
    fig.suptitle("Render time against hosts (policies: %s)" % ", ".join(str(p) for p in policies))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return None


def environment():
    def version(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.strip().splitlines()[0]
        except (OSError, IndexError):
            return None
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            mem = int(f.readline().split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        mem = None

    def git(*cmd):
        try:
            r = subprocess.run(["git", "-C", ROOT] + list(cmd), capture_output=True, text=True, check=False)
            return r.stdout.strip() if r.returncode == 0 else None
        except OSError:
            return None
    dirty = git("status", "--porcelain", "--", "plugins")
    return {"cpus": os.cpu_count(), "memory_gib": round(mem / GIB, 1) if mem else None,
            "commit": git("rev-parse", "--short", "HEAD"),
            "core_modified_files": None if dirty is None else len(dirty.splitlines()),
            "load_average": os.getloadavg()[0],
            "kernel": platform.release(), "python": platform.python_version(),
            "ansible": version([tool("ansible-playbook") or "ansible-playbook", "--version"]),
            "aerleon": aerleon_version(), "nft": version(["nft", "--version"]) if shutil.which("nft") else None,
            "root": os.geteuid() == 0}


def parse_sizes(text, policies):
    sizes = []
    for item in re.split(r"[,\s]+", text.strip()):
        if not item:
            continue
        if "x" in item:
            n, p = item.split("x", 1)
            sizes.append((int(n), int(p)))
        else:
            sizes.append((int(item), policies))
    return sizes


def write_side_results(results_dir, name, started, command, sizes, env_start, text, results):
    """``<name>.md`` (the run's header and ``text``) and ``<name>.json`` of a side measurement
    (--review, --floor, --batches); the exit status: 0 when every result is ok."""
    header = header_text(started, command, sizes, env_start, os.getloadavg()[0])
    with open(os.path.join(results_dir, name + ".md"), "w", encoding="utf-8") as f:
        f.write(header + text + "\n")
    with open(os.path.join(results_dir, name + ".json"), "w", encoding="utf-8") as f:
        json.dump({"started": started.isoformat(), "command": command, "environment": env_start, "results": results},
                  f, indent=1, sort_keys=True, default=str)
        f.write("\n")
    return 0 if all(r["ok"] for r in results) else 1


def header_text(started, command, sizes, env_start, load_end):
    return ("Measured %s with `%s` (sizes %s), %s cores, %s GiB, commit %s (%s modified core files), "
            "load average %.1f at the start and %.1f at the end.\n\n" % (
                started.strftime("%Y-%m-%d %H:%M UTC"), command, ",".join("%dx%d" % tuple(s) for s in sizes),
                env_start["cpus"], env_start["memory_gib"], env_start["commit"], env_start["core_modified_files"],
                env_start["load_average"], load_end))


def report(path):
    """Re-print the tables of a results.json (after a change of the report, not of what is measured)."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    runs, wide_res, sizes, staged_res = data["runs"], data.get("wide"), data["sizes"], data.get("staged")
    policies = sorted({s[1] for s in sizes})
    main_policies = DEFAULT_POLICIES if DEFAULT_POLICIES in policies else policies[0]
    summary = summarise(runs, wide_res, main_policies, staged_res)
    text = table(runs) + "\n" + summary_text(summary, wide_res) + staged_text(staged_res)
    for note in data.get("notes") or []:
        text += "\n\nNote: " + note
    print(text)
    started = datetime.datetime.fromisoformat(data["started"])
    with open(os.path.join(os.path.dirname(os.path.abspath(path)), "table.md"), "w", encoding="utf-8") as f:
        f.write(header_text(started, data["command"], sizes, data["environment"], data["load_average_end"]) + text + "\n")
    data.update(summary)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, sort_keys=True, default=str)
        f.write("\n")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--sizes", default=os.environ.get("BENCH_SIZES") or DEFAULT_SIZES,
                        help="hosts (with --policies) or NxP pairs, comma separated (env BENCH_SIZES)")
    parser.add_argument("--policies", type=int, default=int(os.environ.get("BENCH_POLICIES") or DEFAULT_POLICIES))
    parser.add_argument("--aerleon-max-hosts", type=int, default=int(os.environ.get("BENCH_AERLEON_MAX_HOSTS") or 1000))
    parser.add_argument("--repeat", type=int, default=int(os.environ.get("BENCH_REPEAT") or DEFAULT_REPEAT),
                        help="hostfw manifest runs per size; the median is reported (env BENCH_REPEAT)")
    parser.add_argument("--vars-max-hosts", type=int, default=int(os.environ.get("BENCH_VARS_MAX_HOSTS") or 1000))
    parser.add_argument("--matrix-max-hosts", type=int, default=int(os.environ.get("BENCH_MATRIX_MAX_HOSTS") or 100))
    parser.add_argument("--timeout", type=int, default=int(os.environ.get("BENCH_TIMEOUT") or 300),
                        help="time limit (s) of one vars, matrix or Aerleon run")
    parser.add_argument("--wide-policies", type=int, default=1000)
    parser.add_argument("--wide-addresses", type=int, default=100000)
    parser.add_argument("--no-wide", action="store_true")
    parser.add_argument("--staged", type=int, default=int(os.environ.get("BENCH_STAGED") or 100),
                        help="staged policies added for the staged measurement (0: skip it)")
    parser.add_argument("--staged-hosts", type=int, default=int(os.environ.get("BENCH_STAGED_HOSTS") or 1000))
    parser.add_argument("--results", default=os.path.join(HERE, "results"))
    parser.add_argument("--workdir", default=os.environ.get("BENCH_WORKDIR"),
                        help="where workloads and outputs go (default: a temporary directory, removed)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--review", action="store_true",
                        help="measure only the review: lint plus the matrix diff of a one-policy change against the plain "
                             "render, at --sizes (default 1000x1000); writes review.json and review.md")
    parser.add_argument("--floor", action="store_true",
                        help="measure only the render playbook against Ansible's own floor (the same inventory, one trivial "
                             "task), at --sizes (default 1000x1000,10000x1000); writes floor.json and floor.md")
    parser.add_argument("--batches", action="store_true",
                        help="measure only the rollout's compile task in serial batches (--serial, default 50) at --sizes "
                             "(default 1000x1000), once per run and, for comparison, once per batch; writes batches.json/.md")
    parser.add_argument("--serial", type=int, default=int(os.environ.get("BENCH_SERIAL") or 50))
    parser.add_argument("--report", metavar="RESULTS_JSON",
                        help="measure nothing: print the tables of an earlier results.json and rewrite table.md next to it")
    args = parser.parse_args(argv)
    if args.report:
        return report(args.report)

    if args.review and not os.environ.get("BENCH_SIZES") and args.sizes == DEFAULT_SIZES:
        args.sizes = "1000x1000"
    if args.floor and not os.environ.get("BENCH_SIZES") and args.sizes == DEFAULT_SIZES:
        args.sizes = "1000x1000,10000x1000"
    if args.batches and not os.environ.get("BENCH_SIZES") and args.sizes == DEFAULT_SIZES:
        args.sizes = "1000x1000"
    sizes = parse_sizes(args.sizes, args.policies)
    if not tool("ansible-playbook"):
        print("run.py: ansible-playbook not found (make venv)", file=sys.stderr)
        return 2
    if args.review:
        return main_review(args, sizes)
    if args.floor:
        return main_floor(args, sizes)
    if args.batches:
        return main_batches(args, sizes)
    aclgen = tool("aclgen")
    work = args.workdir or tempfile.mkdtemp(prefix="hostfw-bench-")
    os.makedirs(work, exist_ok=True)
    work = os.path.realpath(work)
    os.makedirs(args.results, exist_ok=True)
    started = datetime.datetime.now(datetime.timezone.utc)
    env_start = environment()
    runs = []
    notes = []
    if not aclgen:
        notes.append("aclgen (Aerleon) not found: Aerleon not measured (pip install -r bench/requirements.txt)")

    def log(run):
        runs.append(run)
        st = run.get("stages") or {}
        print("%-7s %-13s %6d hosts x %5d policies: %8.2f s, RSS %6.0f / %6.0f MiB%s%s" % (
            run["tool"], run["variant"], run["hosts"], run["policies"], run["wall"], mib(run["maxrss"]) or 0,
            mib(run["tree_rss"]) or 0,
            "" if not st.get("compile_and_write") else ", compile_and_write %.2f s" % st["compile_and_write"],
            "" if run["ok"] else "  PROBLEMS: " + "; ".join(run["problems"])), flush=True)

    try:
        for size in sizes:
            log(fleet_hostfw_median(size, work, args.repeat))
            if size[0] <= args.vars_max_hosts:
                log(fleet_hostfw(size, work, "vars", PLAYBOOK_NOMATRIX, args.timeout))
            if size[0] <= args.matrix_max_hosts:
                log(fleet_hostfw(size, work, "render+matrix", PLAYBOOK_RENDER, args.timeout))
            if aclgen and size[0] <= args.aerleon_max_hosts:
                log(fleet_aerleon(size, work, args.timeout))
        staged_res = None
        if args.staged:
            staged_res = staged_bench(work, args.staged_hosts, args.policies, args.staged, args.repeat)
            print(staged_text(staged_res).strip(), flush=True)
        wide_res = None
        if not args.no_wide:
            wide_res = wide(work, args.wide_policies, args.wide_addresses)
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(work, ignore_errors=True)

    main_policies = args.policies if any(size[1] == args.policies for size in sizes) else sizes[0][1]
    summary = summarise(runs, wide_res, main_policies, staged_res)
    text = table(runs) + "\n" + summary_text(summary, wide_res) + staged_text(staged_res)
    for note in notes:
        text += "\n\nNote: " + note
    print()
    print(text)
    png = os.path.join(args.results, "time_vs_hosts.png")
    plot_note = plot(runs, summary, png)
    if plot_note:
        print(plot_note)
    finished = datetime.datetime.now(datetime.timezone.utc)
    command = " ".join(["%s=%s" % (k, v) for k, v in sorted(os.environ.items()) if k.startswith("BENCH_")]
                       + ["bench/run.py"] + (argv if argv is not None else sys.argv[1:]))
    header = header_text(started, command, sizes, env_start, os.getloadavg()[0])
    with open(os.path.join(args.results, "table.md"), "w", encoding="utf-8") as f:
        f.write(header + text + "\n")
    result = {"started": started.isoformat(), "finished": finished.isoformat(), "command": command,
              "environment": env_start, "load_average_end": os.getloadavg()[0], "sizes": sizes, "runs": runs, "wide": wide_res,
              "staged": staged_res, "notes": notes,
              "plot": None if plot_note else os.path.basename(png)}
    result.update(summary)
    # no paths of this machine in committed results: logs were in a temporary directory
    result["runs"] = [dict(r, log=os.path.basename(r["log"])) if r.get("log") else r for r in runs]
    with open(os.path.join(args.results, "results.json"), "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1, sort_keys=True, default=str)
        f.write("\n")
    print("\nwrote %s, %s%s" % (os.path.join(args.results, "results.json"), os.path.join(args.results, "table.md"),
                                "" if plot_note else ", " + png))
    return 0 if all(r["ok"] or r.get("timeout") for r in runs) else 1


def main_review(args, sizes) -> int:
    work = args.workdir or tempfile.mkdtemp(prefix="hostfw-bench-")
    os.makedirs(work, exist_ok=True)
    work = os.path.realpath(work)
    os.makedirs(args.results, exist_ok=True)
    started = datetime.datetime.now(datetime.timezone.utc)
    env_start = environment()
    results = []
    try:
        for size in sizes:
            res = review(size, work, args.repeat)
            print("review %d hosts x %d policies: plain %.2f s, review %.2f s (%.2fx)" % (
                size[0], size[1], res["plain"]["wall"], res["review"]["wall"], res["ratio"] or 0), flush=True)
            results.append(res)
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    text = review_text(results)
    print()
    print(text)
    command = "bench/run.py --review --sizes %s --repeat %d" % (args.sizes, args.repeat)
    return write_side_results(args.results, "review", started, command, sizes, env_start, text, results)


# ----------------------------------------------------------------------------------------------
# The render against Ansible's own floor, and the compile work per serial batch (issue 17)
# ----------------------------------------------------------------------------------------------

def floor_size(size, work, repeat):
    """Ansible's floor (bench/playbooks/floor.yml) and the render (render-nomatrix.yml: the render
    playbook with the matrix and the lint off, candidates on) on the same manifest inventory,
    alternating, ``repeat`` times each; the medians of wall and CPU seconds (user + system of the
    whole process tree) and the stage timings of the median render."""
    hosts, policies = size
    base = os.path.join(work, "floor-%dx%d" % (hosts, policies))
    inv = generate.write_fleet_manifest(base, hosts, policies)
    floors, renders = [], []
    for i in range(max(1, repeat)):
        floors.append(run_hostfw(inv, os.path.join(base, "floor-out"), base, "floor-%d" % i, playbook=PLAYBOOK_FLOOR))
        out = os.path.join(base, "out-%d" % i)
        renders.append(run_hostfw(inv, out, base, "render-%d" % i, playbook=PLAYBOOK_NOMATRIX))
        shutil.rmtree(out, ignore_errors=True)
    ok = all(r["rc"] == 0 for r in floors + renders) and all(r["files"] == 0 for r in floors)
    renders.sort(key=lambda r: r["wall"])
    median = renders[len(renders) // 2]
    res = {"hosts": hosts, "policies": policies, "ok": ok,
           "floor": {"walls": [r["wall"] for r in floors], "cpus": [r["cpu"] for r in floors],
                     "wall": statistics.median(r["wall"] for r in floors), "cpu": statistics.median(r["cpu"] for r in floors)},
           "render": {"walls": [r["wall"] for r in renders], "cpus": [r["cpu"] for r in renders],
                      "wall": statistics.median(r["wall"] for r in renders),
                      "cpu": statistics.median(r["cpu"] for r in renders), "stages": median["stages"],
                      "files": median["files"]}}
    res["ratio_wall"] = res["render"]["wall"] / res["floor"]["wall"] if res["floor"]["wall"] else None
    res["ratio_cpu"] = res["render"]["cpu"] / res["floor"]["cpu"] if res["floor"]["cpu"] else None
    return res


def floor_text(results):
    lines = ["| hosts | policies | floor wall s | render wall s | ratio (wall) | floor CPU s | render CPU s | ratio (CPU) | "
             "gather_vars | load manifests | validate | compile | write | goal <= 1.25x |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        st = r["render"]["stages"] or {}
        lines.append("| %d | %d | %.2f | %.2f | %.2fx | %.2f | %.2f | %.2fx | %s | %s | %s | %s | %s | %s |" % (
            r["hosts"], r["policies"], r["floor"]["wall"], r["render"]["wall"], r["ratio_wall"] or 0, r["floor"]["cpu"],
            r["render"]["cpu"], r["ratio_cpu"] or 0, _fmt(st.get("gather_vars")), _fmt(st.get("load_inputs")),
            _fmt(st.get("validate")), _fmt(st.get("compile")), _fmt(st.get("write")),
            "yes" if (r["ratio_wall"] or 99) <= 1.25 else "NO"))
    lines += ["", "floor: bench/playbooks/floor.yml (one run_once debug task); render: bench/playbooks/render-nomatrix.yml "
              "(the render playbook with the matrix and the lint off, the candidate files on), a fresh world cache each run; "
              "medians of the runs (wall times: %s)." % "; ".join(
                  "%d hosts floor %s render %s" % (r["hosts"], ", ".join("%.2f" % w for w in r["floor"]["walls"]),
                                                   ", ".join("%.2f" % w for w in r["render"]["walls"])) for r in results)]
    return "\n".join(lines)


def main_floor(args, sizes) -> int:
    work = args.workdir or tempfile.mkdtemp(prefix="hostfw-bench-")
    os.makedirs(work, exist_ok=True)
    work = os.path.realpath(work)
    os.makedirs(args.results, exist_ok=True)
    started = datetime.datetime.now(datetime.timezone.utc)
    env_start = environment()
    results = []
    try:
        for size in sizes:
            res = floor_size(size, work, args.repeat)
            print("floor %d hosts: floor %.2f s (CPU %.2f), render %.2f s (CPU %.2f): %.2fx wall, %.2fx CPU" % (
                size[0], res["floor"]["wall"], res["floor"]["cpu"], res["render"]["wall"], res["render"]["cpu"],
                res["ratio_wall"] or 0, res["ratio_cpu"] or 0), flush=True)
            results.append(res)
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    text = floor_text(results)
    print()
    print(text)
    command = "bench/run.py --floor --sizes %s --repeat %d" % (args.sizes, args.repeat)
    return write_side_results(args.results, "floor", started, command, sizes, env_start, text, results)


def batches_size(size, work, serial, once):
    """The rollout's compile task in batches of ``serial`` (bench/playbooks/compile-batches.yml):
    per batch, the compile task's seconds (from the bench_timer callback), how many hosts'
    variables it read and where its results came from."""
    hosts, policies = size
    base = os.path.join(work, "batches-%dx%d" % (hosts, policies))
    inv = generate.write_fleet_manifest(base, hosts, policies)
    label = "batches-%s" % ("once" if once else "every")
    run = run_hostfw(inv, os.path.join(base, "out"), base, label, playbook=PLAYBOOK_BATCHES,
                     extra=["-e", "hostfw_serial=%d" % serial, "-e", "bench_once=%s" % once])
    with open(os.path.join(base, "timer-%s.json" % label), encoding="utf-8") as f:
        timer = json.load(f)
    starts = [t["start"] for t in timer["tasks"]]
    per_batch = []
    for i, comp in enumerate(timer.get("compiles") or []):
        start = max([s for s in starts if s <= comp["end"]] or [run["start_epoch"]])
        per_batch.append({"batch": i + 1, "seconds": comp["end"] - start,
                          "run_cache": comp["run_cache"], "hosts": comp["hosts"],
                          # a compile without once_per_run reads every inventory host, every time
                          "vars_read": hosts if comp["vars_read"] is None else comp["vars_read"]})
    return {"hosts": hosts, "policies": policies, "serial": serial, "once_per_run": once, "wall": run["wall"],
            "cpu": run["cpu"], "ok": run["rc"] == 0, "batches": per_batch,
            "compile_seconds": sum(b["seconds"] for b in per_batch),
            "vars_read": sum(b["vars_read"] or 0 for b in per_batch)}


def batches_text(results):
    lines = ["| hosts | serial | compile | batches | compile task s, all batches | first batch s | later batches s "
             "(mean, max) | host variables read | whole run s |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        later = [b["seconds"] for b in r["batches"][1:]] or [0.0]
        lines.append("| %d | %d | %s | %d | %.2f | %.2f | %.3f, %.3f | %d | %.2f |" % (
            r["hosts"], r["serial"], "once per run" if r["once_per_run"] else "once per batch (before)",
            len(r["batches"]), r["compile_seconds"], r["batches"][0]["seconds"] if r["batches"] else 0,
            statistics.mean(later), max(later), r["vars_read"], r["wall"]))
    for r in results:
        lines.append("")
        label = "once per run" if r["once_per_run"] else "once per batch"
        lines.append("%s, per batch (s): %s" % (label, " ".join("%.2f" % b["seconds"] for b in r["batches"])))
    return "\n".join(lines)


def main_batches(args, sizes) -> int:
    work = args.workdir or tempfile.mkdtemp(prefix="hostfw-bench-")
    os.makedirs(work, exist_ok=True)
    work = os.path.realpath(work)
    os.makedirs(args.results, exist_ok=True)
    started = datetime.datetime.now(datetime.timezone.utc)
    env_start = environment()
    results = []
    try:
        for size in sizes:
            for once in (True, False):
                res = batches_size(size, work, args.serial, once)
                print("batches %d hosts serial %d %s: compile %.2f s in %d batches, %d host variables read" % (
                    size[0], args.serial, "once per run" if once else "once per batch", res["compile_seconds"],
                    len(res["batches"]), res["vars_read"]), flush=True)
                results.append(res)
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    text = batches_text(results)
    print()
    print(text)
    command = "bench/run.py --batches --sizes %s --serial %d" % (args.sizes, args.serial)
    return write_side_results(args.results, "batches", started, command, sizes, env_start, text, results)


if __name__ == "__main__":
    sys.exit(main())
