"""A Debian release in a network namespace, for tests/platforms (see conftest.py)."""

import os
import shutil
import subprocess
import sys
import tempfile
import uuid

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, "scripts", "build-image.sh")


def in_ci():
    return os.environ.get("CI", "").strip().lower() in ("true", "1")


def missing_requirements():
    reasons = []
    if os.geteuid() != 0:
        reasons.append("not running as root (network and mount namespaces, chroot)")
    for tool in ("ip", "unshare", "chroot", "mount", "debootstrap"):
        if shutil.which(tool) is None:
            reasons.append("`%s` not found" % tool)
    try:
        with open("/proc/filesystems") as handle:
            if "overlay" not in handle.read():
                reasons.append("no overlay file system in this kernel")
    except OSError as exc:
        reasons.append("cannot read /proc/filesystems: %s" % exc)
    return reasons


_ROOTFS = {}


def rootfs(suite):
    """The cached rootfs of ``suite`` (built by scripts/build-image.sh when missing)."""
    if suite not in _ROOTFS:
        proc = subprocess.run(["bash", BUILD, "--rootfs", suite], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, check=False, timeout=1200)
        if proc.returncode != 0:
            pytest.fail("scripts/build-image.sh --rootfs %s failed:\n%s" % (suite, proc.stderr[-4000:]), pytrace=False)
        _ROOTFS[suite] = proc.stdout.strip().splitlines()[-1]
    return _ROOTFS[suite]


class Target:
    """A Debian release in a network namespace: ``run(argv)`` runs a controller-side command (such as
    ansible-playbook) inside the namespace, with the release's tree mounted (overlay, private mount
    namespace) at ``self.root``."""

    def __init__(self, suite, lower):
        self.suite = suite
        self.lower = lower
        self.netns = "hostfw-plat-%s" % uuid.uuid4().hex[:8]
        self.tmp = tempfile.mkdtemp(prefix="hostfw-plat-%s-" % suite, dir="/var/tmp")
        self.root = os.path.join(self.tmp, "root")
        for name in ("upper", "work", "root"):
            os.mkdir(os.path.join(self.tmp, name))

    def __enter__(self):
        subprocess.run(["ip", "netns", "add", self.netns], check=True)
        subprocess.run(["ip", "-n", self.netns, "link", "set", "lo", "up"], check=True)
        return self

    def run(self, argv, env=None, timeout=900):
        """Run argv in the namespace, with the tree mounted; returns the CompletedProcess (output merged)."""
        script = ('set -e; mount -t overlay overlay -o "lowerdir=$1,upperdir=$2/upper,workdir=$2/work" "$3"; '
                  'mount -t proc proc "$3/proc"; shift 3; exec ip netns exec "$0" "$@"')
        cmd = ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", script,
               self.netns, self.lower, self.tmp, self.root] + list(argv)
        return subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              universal_newlines=True, check=False, timeout=timeout)

    def __exit__(self, *exc):
        # anything still running in the namespace (a rollback that was not disarmed) goes first; with it
        # goes the last user of the private mount namespace, and so the overlay
        pids = subprocess.run(["ip", "netns", "pids", self.netns], stdout=subprocess.PIPE, universal_newlines=True,
                              check=False).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), 9)
            except (OSError, ValueError):
                pass
        subprocess.run(["ip", "netns", "del", self.netns], check=False)
        subprocess.run(["rm", "-rf", "--one-file-system", self.tmp], check=False)
        return False


def ansible_playbook():
    return os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
