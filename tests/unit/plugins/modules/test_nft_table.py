# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The nft_table state machine, run as a real module process with a fake ``nft`` (and fake
``unshare`` and ``systemctl``) first on PATH: stage -> arm -> apply -> confirm; a failed apply;
a confirmation after the rollback fired; a missing or corrupted snapshot; a persist failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from ansible_collections.hostfw.nftables.plugins.modules import nft_table

HERE = os.path.dirname(os.path.abspath(__file__))
# the directory that holds ansible_collections/ (the checkout's .collections, or ansible-test's copy)
COLLECTIONS = os.path.abspath(os.path.join(os.path.dirname(nft_table.__file__), *[".."] * 5))

CANDIDATE = """table inet hostfw
delete table inet hostfw
table inet hostfw {
\tchain filter-input {
\t\ttype filter hook input priority filter; policy accept;
\t\ttcp dport 8080 drop
\t}
}
"""
PREVIOUS = CANDIDATE.replace("8080", "9090")

WRAPPERS = {
    "nft": '#!/bin/sh\nexec "%s" "%s" "$@"\n' % (sys.executable, os.path.join(HERE, "fake_nft.py")),
    "unshare": ('#!/bin/sh\nwhile [ "$1" = "-n" ] || [ "$1" = "-r" ]; do shift; done\n'
                'scratch="$(mktemp -d)"\nFAKE_NFT_STATE="$scratch/state.json" FAKE_NFT_SCRATCH=1 "$@"\n'
                'rc=$?\nrm -rf "$scratch"\nexit $rc\n'),
    "systemctl": ('#!/bin/sh\necho "$*" >> "$FAKE_NFT_STATE.systemctl"\ncase "$1" in\n'
                  '  is-enabled) grep -q "^enable " "$FAKE_NFT_STATE.systemctl" && echo enabled || '
                  '{ echo disabled; exit 1; } ;;\n  is-active) echo inactive; exit 3 ;;\nesac\nexit 0\n'),
}


class Host:
    """A fake host: its ruleset (the fake nft's state), the state directory and persist paths."""

    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        for name, text in WRAPPERS.items():
            path = self.bin / name
            path.write_text(text)
            path.chmod(0o755)
        self.state_file = tmp_path / "ruleset.json"
        self.state_dir = tmp_path / "run"
        self.persist = tmp_path / "etc" / "hostfw.nft"
        self.unit = tmp_path / "etc" / "hostfw.service"

    def run(self, check_mode=False, env=None, **args):
        args.setdefault("state_dir", str(self.state_dir))
        args.setdefault("persist_path", str(self.persist))
        args.setdefault("unit_path", str(self.unit))
        args.setdefault("rollback_method", "detached")
        args.setdefault("lock_timeout", 5)
        args["_ansible_check_mode"] = check_mode
        environ = dict(os.environ, PATH="%s:%s" % (self.bin, os.environ.get("PATH", "")),
                       FAKE_NFT_STATE=str(self.state_file), PYTHONPATH=COLLECTIONS)
        environ.pop("SSH_CONNECTION", None)
        environ.update(env or {})
        proc = subprocess.run([sys.executable, "-m", "ansible_collections.hostfw.nftables.plugins.modules.nft_table"],
                              input=json.dumps({"ANSIBLE_MODULE_ARGS": args}), capture_output=True, text=True,
                              env=environ, cwd=str(self.tmp), timeout=60, check=False)
        try:
            return json.loads(proc.stdout)
        except ValueError:
            raise AssertionError("module output is not JSON: %s %s" % (proc.stdout, proc.stderr))

    def tables(self):
        try:
            return json.loads(self.state_file.read_text())["tables"]
        except FileNotFoundError:
            return {}

    def load(self, text):
        """Put a table in place as if someone had loaded it (the previous state)."""
        staged = self.tmp / "previous.nft"
        staged.write_text(text)
        subprocess.run([str(self.bin / "nft"), "-f", str(staged)], check=True,
                       env=dict(os.environ, FAKE_NFT_STATE=str(self.state_file)))

    def wait_for(self, name, timeout=10.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if (self.state_dir / name).exists() or list(self.state_dir.glob(name)):
                return
            time.sleep(0.1)
        raise AssertionError("%s did not appear in %s" % (name, self.state_dir))


@pytest.fixture()
def host(tmp_path):
    return Host(tmp_path)


def _rule_text(host):
    return host.tables().get("inet hostfw", [])


def test_stage_arm_apply_confirm_then_restage_unchanged(host):
    host.load(PREVIOUS)
    stage = host.run(state="stage", content=CANDIDATE)
    assert stage["changed"] is True and not stage.get("failed"), stage
    assert stage["present_before"] is True and stage["sha256_before"] != stage["sha256_after"]
    assert "-\t\ttcp dport 9090 drop" in stage["unified_diff"] and "+\t\ttcp dport 8080 drop" in stage["unified_diff"]
    assert "tcp dport 9090 drop" in _rule_text(host), "stage changes nothing on the host"
    arm = host.run(state="arm", timeout=30)
    assert arm["changed"] is True and arm["armed"] is True, arm
    assert arm["rollback"]["method"] == "detached" and (host.state_dir / "armed.json").exists()
    assert host.run(state="arm", timeout=30)["changed"] is False, "arming the same stage twice is idempotent"
    apply = host.run(state="apply", sha256=stage["sha256_after"], timeout=30)
    assert apply["applied"] is True and apply["sha256_after"] == stage["sha256_after"], apply
    assert "tcp dport 8080 drop" in _rule_text(host)
    confirm = host.run(state="confirm", sha256=stage["sha256_after"])
    assert confirm["changed"] is True and confirm["armed"] is False and confirm["applied"] is True, confirm
    assert not (host.state_dir / "armed.json").exists()
    assert json.loads((host.state_dir / "confirmed.json").read_text())["sha256"] == stage["sha256_after"]
    again = host.run(state="stage", content=CANDIDATE)
    assert again["changed"] is False and again["sha256_before"] == again["sha256_after"]
    persist = host.run(state="persist", sha256=stage["sha256_after"])
    assert persist["changed"] is True, persist
    assert host.persist.read_text().startswith("# hostfw.nftables: last confirmed table inet hostfw")
    assert "ExecStart=" in host.unit.read_text()
    assert host.run(state="persist", sha256=stage["sha256_after"])["changed"] is False


def test_check_mode_changes_nothing(host):
    host.load(PREVIOUS)
    before = host.tables()
    stage = host.run(check_mode=True, state="stage", content=CANDIDATE)
    assert stage["changed"] is True
    assert host.run(check_mode=True, state="apply", sha256=stage["sha256_after"])["changed"] is True
    assert host.tables() == before
    assert not (host.state_dir / "stage.json").exists() and not (host.state_dir / "armed.json").exists()


def test_failed_apply_disarms_and_changes_nothing(host):
    host.load(PREVIOUS)
    stage = host.run(state="stage", content=CANDIDATE)
    result = host.run(state="apply", sha256=stage["sha256_after"], timeout=30, env={"FAKE_NFT_FAIL_APPLY": "1"})
    assert result["failed"] is True and result["armed"] is False
    assert result["msg"].startswith("nft -f of the candidate failed, nothing changed, rollback disarmed: Error: Could "
                                    "not process rule"), result["msg"]
    assert "tcp dport 9090 drop" in _rule_text(host)
    assert not (host.state_dir / "armed.json").exists()


def test_confirm_after_the_rollback_fired_reports_the_restore(host):
    host.load(PREVIOUS)
    stage = host.run(state="stage", content=CANDIDATE)
    apply = host.run(state="apply", sha256=stage["sha256_after"], timeout=1)
    assert apply["applied"] is True
    host.wait_for("rolled-back-*.json")
    assert "tcp dport 9090 drop" in _rule_text(host), "the rollback restored the previous table"
    confirm = host.run(state="confirm", sha256=stage["sha256_after"])
    assert confirm["failed"] is True and confirm["rolled_back"] is True
    assert "before the confirmation: table inet hostfw was restored to its previous state" in confirm["msg"]
    assert confirm["rollback"]["restored_identical"] is True
    status = host.run(state="status")
    assert status["rolled_back"] is True and status["armed"] is False


def test_rollback_of_a_first_rollout_removes_our_table(host):
    stage = host.run(state="stage", content=CANDIDATE)
    assert stage["present_before"] is False
    host.run(state="apply", sha256=stage["sha256_after"], timeout=1)
    host.wait_for("rolled-back-*.json")
    assert "inet hostfw" not in host.tables()


def test_missing_snapshot_is_a_clear_refusal(host):
    host.load(PREVIOUS)
    host.run(state="stage", content=CANDIDATE)
    (host.state_dir / "snapshot.nft").unlink()
    arm = host.run(state="arm", timeout=30)
    assert arm["failed"] is True
    assert arm["msg"] == ("the staged snapshot %s is missing: stage again (state=stage) before arming"
                          % (host.state_dir / "snapshot.nft")), arm["msg"]
    assert "tcp dport 9090 drop" in _rule_text(host) and not (host.state_dir / "armed.json").exists()


def test_corrupted_snapshot_is_refused_before_anything_changes(host):
    host.load(PREVIOUS)
    stage = host.run(state="stage", content=CANDIDATE)
    (host.state_dir / "snapshot.nft").write_text("table inet hostfw {\n\tFAKE-SYNTAX-ERROR\n}\n")
    apply = host.run(state="apply", sha256=stage["sha256_after"], timeout=30)
    assert apply["failed"] is True and "nft -c -f rejects the rollback snapshot" in apply["msg"], apply["msg"]
    assert "tcp dport 9090 drop" in _rule_text(host) and not (host.state_dir / "armed.json").exists()


def test_persist_failure_is_a_clear_message(host):
    stage = host.run(state="stage", content=CANDIDATE)
    host.run(state="apply", sha256=stage["sha256_after"], timeout=30)
    host.run(state="confirm", sha256=stage["sha256_after"])
    (host.tmp / "etc").write_text("a file where the directory should be\n")
    persist = host.run(state="persist", sha256=stage["sha256_after"])
    assert persist["failed"] is True
    assert persist["msg"].startswith("cannot write the persisted table %s: " % host.persist), persist["msg"]
    assert "Traceback" not in persist["msg"]


def test_candidate_with_another_table_is_refused(host):
    bad = CANDIDATE + "table ip other {\n\tchain c {\n\t}\n}\n"
    stage = host.run(state="stage", content=bad)
    assert stage["failed"] is True
    assert stage["msg"] == ("the candidate is refused before nft reads it: line 9: `table ip other` acts outside table "
                            "inet hostfw; the candidate may only define that table (fix: remove the statement; "
                            "hostfw.nftables never touches other tables)")
    assert host.tables() == {}


@pytest.mark.parametrize("content, problem", [
    ('include "/dev/zero"\n' + CANDIDATE, 'line 1: the candidate may not include other files (include "/dev/zero")'),
    ("flush ruleset\n" + CANDIDATE, "line 1: `flush ruleset` acts outside table inet hostfw"),
])
def test_include_and_flush_ruleset_are_refused_before_nft_reads_them(host, content, problem):
    stage = host.run(state="stage", content=content)
    assert stage["failed"] is True
    assert stage["msg"].startswith("the candidate is refused before nft reads it: " + problem), stage["msg"]
    assert host.tables() == {} and not host.state_dir.joinpath("stage.json").exists()
