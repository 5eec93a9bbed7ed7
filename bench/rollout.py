# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rollout benchmark (``make bench`` runs it after the render benchmark; bench/README.md).

For each N (``--sizes``, default 10,30) it starts N containers of the project's target image
(scripts/build-image.sh: Debian with systemd, sshd, nftables) on an own podman network, reached over
SSH with pipelining, and times whole ``ansible-playbook`` processes, forks = N, one batch after the
canary (``hostfw_serial`` = N), a 50-policy world:

- ``first``      the safe rollout (hostfw.nftables.rollout) to hosts without table inet hostfw;
- ``no-change``  the same again (nothing changes);
- ``check``      ``--check`` of the same;
- ``naive``      the unsafe play: copy the rendered file and ``nft -f`` it (tables removed first);
- ``naive-2``    the naive play again;

and prints the ratios to the naive play, the per-task time breakdown (ansible.posix.profile_tasks)
and the time each host stayed armed (the role's "armed for N s" line, from the nft_commit
action) for every ``--armed-serials`` value (default 5 and N): a rollout of a changed world with
``hostfw_serial`` = S and forks = S. Writes bench/results/rollout.json and rollout.md.

Needs root and podman (run it under ``flock /tmp/hostfw-podman.lock``, as scripts/bench.sh does).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NETWORK = "hostfw-bench-rollout"
PREFIX = "hostfw-bench-r"
KEY = os.path.join(ROOT, ".cache", "ssh", "id_ed25519")
ARMED = re.compile(r"hostfw: (\S+) confirmed over a new connection.*?armed for ([0-9.]+) s")
PROFILE = re.compile(r"^(.+?) -{3,} ([0-9.]+)s\s*$")
NAIVE_PLAY = """---
- name: Naive rollout (no stage, no check, no rollback, no confirmation)
  hosts: all
  gather_facts: false
  tasks:
    - name: Copy the rendered table
      ansible.builtin.copy:
        src: "{{ bench_out }}/{{ inventory_hostname }}.nft"
        dest: /root/hostfw-naive.nft
        mode: "0600"
    - name: Load it
      ansible.builtin.command: nft -f /root/hostfw-naive.nft
      changed_when: true
"""
RESET = ("nft delete table inet hostfw 2>/dev/null; systemctl disable --quiet hostfw.service 2>/dev/null; "
         "rm -rf /run/hostfw /etc/hostfw /etc/systemd/system/hostfw.service; true")


def sh(argv, check=True, **kwargs):
    return subprocess.run(argv, check=check, universal_newlines=True, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, **kwargs)


def world(base, policies=50):
    """50 GlobalNetworkPolicies selecting every host (one ingress allow each, ports base+j)."""
    return [{"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkPolicy",
             "metadata": {"name": "bench-%03d" % j},
             "spec": {"order": 100 + j, "selector": "role == 'node'", "types": ["Ingress"],
                      "ingress": [{"action": "Allow", "protocol": "TCP", "source": {"nets": ["10.%d.0.0/16" % (j % 250)]},
                                   "destination": {"ports": [base + j]}}]}} for j in range(policies)]


class Fleet:
    def __init__(self, n, image, workdir):
        self.n = n
        self.image = image
        self.names = ["%s%02d" % (PREFIX, i) for i in range(1, n + 1)]
        self.dir = os.path.join(workdir, "n%d" % n)
        os.makedirs(os.path.join(self.dir, "group_vars"), exist_ok=True)
        self.inventory = os.path.join(self.dir, "inventory.yml")
        self.env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".collections"), ANSIBLE_PIPELINING="1",
                        ANSIBLE_HOST_KEY_CHECKING="0", ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
                        ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks",
                        ANSIBLE_PROFILE_TASKS_TASK_OUTPUT_LIMIT="all", ANSIBLE_NOCOWS="1",
                        ANSIBLE_DISPLAY_SKIPPED_HOSTS="0", ANSIBLE_TIMEOUT="10",
                        CONTAINERS_CONF=os.path.join(ROOT, "molecule", "containers.conf"))

    def start(self):
        self.stop()
        sh(["podman", "network", "create", NETWORK])
        for name in self.names:
            sh(["podman", "run", "--detach", "--replace", "--name", name, "--hostname", name, "--network", NETWORK,
                "--systemd=always", "--cap-add=NET_ADMIN", "--cap-add=NET_RAW", self.image, "/sbin/init"], env=self.env)
        self.ips = {}
        for name in self.names:
            fmt = '{{(index .NetworkSettings.Networks "%s").IPAddress}}' % NETWORK
            self.ips[name] = sh(["podman", "inspect", "--format", fmt, name], env=self.env).stdout.strip()
        deadline = time.time() + 120
        for name, ip in self.ips.items():
            while sh(["timeout", "2", "bash", "-c", "exec 3<>/dev/tcp/%s/22" % ip], check=False).returncode != 0:
                if time.time() > deadline:
                    raise SystemExit("rollout bench: sshd of %s (%s) did not come up" % (name, ip))
                time.sleep(1)
        with open(self.inventory, "w") as handle:
            handle.write("all:\n  hosts:\n")
            for name in self.names:
                handle.write("    %s:\n      ansible_host: %s\n" % (name, self.ips[name]))
        self.set_world(20000)

    def set_world(self, base):
        data = {"ansible_user": "root", "ansible_ssh_private_key_file": KEY, "ansible_python_interpreter": "/usr/bin/python3",
                "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR",
                "hostfw_auto_host_endpoint": True, "hostfw_labels": {"role": "node"}, "hostfw_resources": world(base)}
        with open(os.path.join(self.dir, "group_vars", "all.json"), "w") as handle:
            json.dump(data, handle)

    def stop(self):
        sh(["podman", "rm", "--force", "--time", "2"] + self.names, check=False, env=self.env)
        sh(["podman", "network", "rm", "--force", NETWORK], check=False, env=self.env)

    def playbook(self, *args, forks=None):
        argv = ["ansible-playbook", "-i", self.inventory, "-f", str(forks or self.n)] + list(args)
        started = time.perf_counter()
        proc = sh(argv, check=False, env=self.env, cwd=self.dir)
        return time.perf_counter() - started, proc

    def reset(self):
        proc = sh(["ansible", "-i", self.inventory, "all", "-f", str(self.n), "-m", "ansible.builtin.shell", "-a", RESET],
                  check=False, env=self.env)
        if proc.returncode != 0:
            raise SystemExit("rollout bench: reset failed:\n%s" % proc.stdout[-3000:])


def profile(output):
    """{task name: seconds} from profile_tasks' summary."""
    tasks = {}
    summary = output.split("=" * 20)[-1]
    for line in summary.splitlines():
        match = PROFILE.match(line.strip())
        if match:
            tasks[match.group(1).strip()] = tasks.get(match.group(1).strip(), 0.0) + float(match.group(2))
    return tasks


def recap_ok(output, expect_changed=None):
    lines = [line for line in output.splitlines() if re.match(r"^\S+\s+: ok=", line)]
    if not lines or any("failed=0" not in line or "unreachable=0" not in line for line in lines):
        return False
    if expect_changed is not None:
        return all(("changed=0" in line) == (not expect_changed) for line in lines)
    return True


def armed(output):
    return {host: float(sec) for host, sec in ARMED.findall(output)}


def run_size(n, image, workdir, serials):
    fleet = Fleet(n, image, workdir)
    print("== rollout bench: N=%d containers (%s)" % (n, image), flush=True)
    fleet.start()
    result = {"n": n, "runs": {}, "armed": {}}
    try:
        def timed(name, *args, expect_changed=None, forks=None):
            seconds, proc = fleet.playbook(*args, forks=forks)
            ok = proc.returncode == 0 and recap_ok(proc.stdout, expect_changed)
            result["runs"][name] = {"seconds": round(seconds, 2), "ok": ok, "profile": profile(proc.stdout)}
            print("   %-10s %6.1f s  %s" % (name, seconds, "ok" if ok else "FAILED"), flush=True)
            if not ok:
                with open(os.path.join(fleet.dir, "%s.log" % name), "w") as handle:
                    handle.write(proc.stdout)
                print(proc.stdout[-4000:])
            return proc

        first = timed("first", "hostfw.nftables.rollout", "-e", "hostfw_serial=%d" % n, expect_changed=True)
        result["armed"][str(n)] = armed(first.stdout)
        timed("no-change", "hostfw.nftables.rollout", "-e", "hostfw_serial=%d" % n, expect_changed=False)
        timed("check", "hostfw.nftables.rollout", "-e", "hostfw_serial=%d" % n, "--check", expect_changed=False)
        for k, serial in enumerate(s for s in serials if s != n and s <= n):
            fleet.set_world(21000 + 1000 * k)
            seconds, proc = fleet.playbook("hostfw.nftables.rollout", "-e", "hostfw_serial=%d" % serial, forks=serial)
            result["armed"][str(serial)] = armed(proc.stdout)
            print("   serial %-3d %6.1f s  (armed window per host)" % (serial, seconds), flush=True)
        out = os.path.join(fleet.dir, "rendered")
        render = sh(["ansible-playbook", "-i", fleet.inventory, "hostfw.nftables.render", "-e", "hostfw_output_dir=%s" % out],
                    check=False, env=fleet.env)
        if render.returncode != 0:
            raise SystemExit("rollout bench: render failed:\n%s" % render.stdout[-3000:])
        fleet.reset()
        naive = os.path.join(fleet.dir, "naive.yml")
        with open(naive, "w") as handle:
            handle.write(NAIVE_PLAY)
        timed("naive", naive, "-e", "bench_out=%s" % out)
        timed("naive-2", naive, "-e", "bench_out=%s" % out)
    finally:
        fleet.stop()
    return result


def report(results, meta):
    head = "Measured %s, %s, %d CPUs, commit %s, load average %.1f at the end." % (
        meta["date"], meta["host"], meta["cpus"], meta["commit"], meta.get("load_average_end", 0.0))
    lines = [head, "", "| run | " + " | ".join("N = %d" % r["n"] for r in results) + " |",
             "|---|" + "---|" * len(results)]
    for name in ("first", "no-change", "check", "naive", "naive-2"):
        cells = []
        for r in results:
            run = r["runs"].get(name)
            cells.append("-" if run is None else "%.1f s%s" % (run["seconds"], "" if run["ok"] else " (FAILED)"))
        lines.append("| %s | %s |" % (name, " | ".join(cells)))
    lines += ["", "| ratio to the naive play | " + " | ".join("N = %d" % r["n"] for r in results) + " |",
              "|---|" + "---|" * len(results)]
    for name in ("first", "no-change", "check"):
        cells = []
        for r in results:
            try:
                cells.append("%.2fx" % (r["runs"][name]["seconds"] / r["runs"]["naive"]["seconds"]))
            except (KeyError, ZeroDivisionError):
                cells.append("-")
        lines.append("| %s / naive | %s |" % (name, " | ".join(cells)))
    lines += ["", "Armed window per host (seconds from the arming call to the end of the confirming call, hosts of "
              "the batches after the canary):", "", "| N | hostfw_serial (= forks) | hosts | median | max |", "|---|---|---|---|---|"]
    for r in results:
        for serial, hosts in sorted(r["armed"].items(), key=lambda kv: int(kv[0])):
            # the canary (the first host) has a batch of its own
            values = [v for h, v in hosts.items() if not h.endswith("01")] or list(hosts.values())
            if values:
                row = (r["n"], serial, len(values), statistics.median(values), max(values))
                lines.append("| %d | %s | %d | %.1f s | %.1f s |" % row)
    for r in results:
        lines += ["", "Per-task time (profile_tasks, summed over the run), N = %d:" % r["n"], "",
                  "| task | first | no-change | check |", "|---|---|---|---|"]
        names = []
        for run in ("first", "no-change", "check"):
            for task in r["runs"].get(run, {}).get("profile", {}):
                if task not in names:
                    names.append(task)
        for task in names:
            cells = ["%.2f" % r["runs"][run]["profile"][task] if task in r["runs"].get(run, {}).get("profile", {}) else "-"
                     for run in ("first", "no-change", "check")]
            lines.append("| %s | %s |" % (task.replace("|", "/"), " | ".join(cells)))
    return "\n".join(lines) + "\n"


def _commit():
    proc = sh(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], check=False)
    return proc.stdout.strip() if proc.returncode == 0 else os.environ.get("BENCH_COMMIT", "unknown")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--sizes", default=os.environ.get("BENCH_ROLLOUT_SIZES", "10,30"))
    parser.add_argument("--armed-serials", default=os.environ.get("BENCH_ROLLOUT_SERIALS", "5"),
                        help="extra hostfw_serial values for the armed window (each size's own N is always measured)")
    parser.add_argument("--results", default=os.path.join(ROOT, "bench", "results"))
    args = parser.parse_args(argv)
    if os.geteuid() != 0 or not shutil.which("podman"):
        print("rollout bench: skipped (needs root and podman)")
        return 0
    image = sh([os.path.join(ROOT, "scripts", "build-image.sh"), "--print-name"]).stdout.strip().splitlines()[-1]
    if sh(["podman", "image", "exists", image], check=False).returncode != 0:
        sh([os.path.join(ROOT, "scripts", "build-image.sh")])
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    serials = [int(s) for s in args.armed_serials.split(",") if s.strip()]
    workdir = tempfile.mkdtemp(prefix="hostfw-bench-rollout-")
    results = [run_size(n, image, workdir, serials) for n in sizes]
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "host": platform.node(), "cpus": os.cpu_count(),
            "commit": _commit(), "load_average_end": os.getloadavg()[0]}
    text = report(results, meta)
    print(text)
    os.makedirs(args.results, exist_ok=True)
    with open(os.path.join(args.results, "rollout.json"), "w") as handle:
        json.dump({"meta": meta, "results": results}, handle, indent=1)
    with open(os.path.join(args.results, "rollout.md"), "w") as handle:
        handle.write(text)
    shutil.rmtree(workdir, ignore_errors=True)
    return 0 if all(run["ok"] for r in results for run in r["runs"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
