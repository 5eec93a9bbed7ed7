"""nft_table with the real nft in a network namespace: what the target must not trust (issue 14).

The module runs as Ansible runs it (a Python subprocess with its arguments on stdin) inside a
network namespace of its own (``ip netns``), with the real ``nft``, the real scratch namespaces
(``unshare -n``) and a detached rollback.  Files in its state directory are swapped as an attacker
or a careless operator would; the ruleset of the namespace shows what was loaded.
"""

import json
import os
import subprocess
import sys
import time

import pytest

from ansible_collections.hostfw.nftables.plugins.modules import nft_table

COLLECTIONS = os.path.abspath(os.path.join(os.path.dirname(nft_table.__file__), *[".."] * 5))

CANDIDATE = """table inet hostfw
delete table inet hostfw
table inet hostfw {
\tchain input {
\t\ttype filter hook input priority filter; policy accept;
\t\ttcp dport 8080 drop
\t}
}
"""
PREVIOUS = CANDIDATE.replace("8080", "9090")
EVIL = "table ip evil {\n\tchain c {\n\t\ttype filter hook input priority -500; policy accept;\n\t}\n}\n"


class NsHost:
    """A network namespace standing in for a host, and the module run inside it."""

    def __init__(self, tmp_path):
        self.name = "hostfw-trust-%d-%d" % (os.getpid(), int(time.time() * 1000) % 100000)
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        self.tmp = tmp_path
        self.state_dir = tmp_path / "run"
        self.etc = tmp_path / "etc"
        self.etc.mkdir(mode=0o755)
        # never the machine's own systemd: persist and remove talk to this stand-in
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        (self.bin / "systemctl").write_text('#!/bin/sh\necho "$*" >> "%s/systemctl.log"\n'
                                            '[ "$1" = is-enabled ] && { echo disabled; exit 1; }\nexit 0\n' % tmp_path)
        (self.bin / "systemctl").chmod(0o755)

    def close(self):
        subprocess.run(["ip", "netns", "del", self.name], check=False)

    def sh(self, *argv, **kwargs):
        return subprocess.run(["ip", "netns", "exec", self.name] + list(argv), capture_output=True, text=True,
                              timeout=60, check=False, **kwargs)

    def nft(self, *args, stdin=None):
        return self.sh("nft", *args, input=stdin)

    def tables(self):
        return sorted(line.strip() for line in self.nft("list", "tables").stdout.splitlines() if line.strip())

    def run(self, read_only=None, **args):
        args.setdefault("state_dir", str(self.state_dir))
        args.setdefault("persist_path", str(self.etc / "hostfw" / "hostfw.nft"))
        args.setdefault("unit_path", str(self.etc / "hostfw.service"))
        args.setdefault("rollback_method", "detached")
        argv = [sys.executable, "-m", "ansible_collections.hostfw.nftables.plugins.modules.nft_table"]
        if read_only:  # a private mount namespace where read_only is mounted read-only
            argv = ["unshare", "-m", "--propagation", "private", "sh", "-c",
                    'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"', str(read_only)] + argv
        proc = self.sh(*argv, input=json.dumps({"ANSIBLE_MODULE_ARGS": args}),
                       env=dict(os.environ, PYTHONPATH=COLLECTIONS,
                                PATH="%s:%s" % (self.bin, os.environ.get("PATH", ""))))
        try:
            return json.loads(proc.stdout)
        except ValueError:
            raise AssertionError("module output is not JSON: %s %s" % (proc.stdout, proc.stderr))

    def fired(self, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            found = list(self.state_dir.glob("rolled-back-*.json"))
            if found:
                time.sleep(0.3)
                return json.loads(found[0].read_text())
            time.sleep(0.2)
        raise AssertionError("the rollback did not fire")


@pytest.fixture
def nshost(tmp_path):
    host = NsHost(tmp_path)
    try:
        yield host
    finally:
        host.close()


def test_include_of_a_root_only_file_is_refused_before_nft_reads_it(nshost):
    secret = nshost.tmp / "secret.nft"
    secret.write_text("THE-FIRST-LINE-OF-A-ROOT-ONLY-FILE\n")
    secret.chmod(0o600)
    stage = nshost.run(state="stage", content=CANDIDATE.replace("\ttcp dport", '\tinclude "%s"\n\t\ttcp dport' % secret))
    assert stage["failed"] is True
    assert stage["msg"].startswith("the candidate is refused before nft reads it: line 6: the candidate may not include "
                                   "other files"), stage["msg"]
    assert "THE-FIRST-LINE" not in json.dumps(stage)
    hang = nshost.run(state="stage", content='include "/dev/zero"\n' + CANDIDATE)
    assert hang["failed"] is True and "may not include other files" in hang["msg"]
    assert nshost.tables() == []


def test_swapped_files_add_no_table_and_a_failed_rollback_is_reported(nshost):
    nshost.nft("-f", "-", stdin=PREVIOUS)
    stage = nshost.run(state="stage", content=CANDIDATE)
    assert stage["changed"] is True and not stage.get("failed"), stage
    candidate = nshost.state_dir / "candidate.nft"
    genuine = candidate.read_text()
    candidate.write_text(genuine + EVIL)
    apply = nshost.run(state="apply", sha256=stage["sha256_after"], timeout=30)
    assert apply["failed"] is True and "changed after hostfw.nftables wrote it" in apply["msg"], apply
    assert nshost.tables() == ["table inet hostfw"], "the swapped candidate's table was not loaded"
    candidate.write_text(genuine)

    apply = nshost.run(state="apply", sha256=stage["sha256_after"], timeout=6)
    assert apply["applied"] is True, apply
    copy = nshost.state_dir / ("rollback-%s.nft" % apply["rollback"]["id"])
    assert oct(copy.stat().st_mode & 0o777) == "0o600"
    copy.write_text(copy.read_text() + EVIL)
    (nshost.state_dir / "snapshot.nft").unlink()
    fired = nshost.fired()
    assert fired["restored"] is False and "no intact copy of the snapshot" in fired["error"], fired
    assert nshost.tables() == ["table inet hostfw"], "the swapped copy's table was not loaded"
    status = nshost.run(state="status")
    assert status["rolled_back"] is False and status["rollback_failed"] is True
    assert status["rollback"]["running_sha256"] == stage["sha256_after"] == status["sha256_after"]
    assert "tcp dport 8080 drop" in nshost.nft("list", "table", "inet", "hostfw").stdout


def test_an_intact_rollback_restores_and_says_so(nshost):
    nshost.nft("-f", "-", stdin=PREVIOUS)
    stage = nshost.run(state="stage", content=CANDIDATE)
    apply = nshost.run(state="apply", sha256=stage["sha256_after"], timeout=3)
    assert apply["applied"] is True, apply
    fired = nshost.fired()
    assert fired["restored"] is True and fired["error"] is None, fired
    status = nshost.run(state="status")
    assert status["rolled_back"] is True and status["rollback_failed"] is False
    assert status["rollback"]["restored_sha256"] == stage["sha256_before"] == status["sha256_after"]
    assert "tcp dport 9090 drop" in nshost.nft("list", "table", "inet", "hostfw").stdout


def test_read_only_etc_gives_clear_messages(nshost):
    stage = nshost.run(state="stage", content=CANDIDATE)
    nshost.run(state="apply", sha256=stage["sha256_after"], timeout=30)
    assert nshost.run(state="confirm", sha256=stage["sha256_after"]).get("failed") is None
    persist = nshost.run(read_only=nshost.etc, state="persist", sha256=stage["sha256_after"])
    assert persist["failed"] is True
    assert persist["msg"].startswith("cannot write the persisted table: cannot write %s/hostfw" % nshost.etc), persist
    assert persist["msg"].endswith(": Read-only file system (the file system is mounted read-only: remount it "
                                   "read-write or choose a path on a writable file system)"), persist["msg"]
    assert nshost.run(state="persist", sha256=stage["sha256_after"])["changed"] is True
    remove = nshost.run(read_only=nshost.etc, state="remove")
    assert remove["failed"] is True
    assert remove["msg"] == ("cannot remove the boot unit %s: Read-only file system (the file system is mounted "
                             "read-only: remount it read-write or choose a path on a writable file system)"
                             % (nshost.etc / "hostfw.service")), remove["msg"]
