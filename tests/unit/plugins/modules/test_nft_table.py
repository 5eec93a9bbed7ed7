# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The nft_table state machine, run as a real module process with a fake ``nft`` (and fake
``unshare`` and ``systemctl``) first on PATH: stage -> arm -> apply -> confirm; a failed apply;
a confirmation after the rollback fired; a missing or corrupted snapshot; a persist failure."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time

import ansible
import pytest

from ansible_collections.hostfw.nftables.plugins.modules import nft_table

HERE = os.path.dirname(os.path.abspath(__file__))
# the directory that holds ansible_collections/ (the checkout's .collections, or ansible-test's copy)
COLLECTIONS = os.path.abspath(os.path.join(os.path.dirname(nft_table.__file__), *[".."] * 5))
# and the ansible-core the tests run with (ansible-test units puts it on the path by PYTHONPATH)
MODULE_PATH = os.pathsep.join([COLLECTIONS, os.path.dirname(os.path.dirname(os.path.abspath(ansible.__file__)))]
                              + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])

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
                       FAKE_NFT_STATE=str(self.state_file), PYTHONPATH=MODULE_PATH)
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


def _warnings(result):
    """The warning texts of a module result (plain strings, or ansible-core 2.19's warning summaries)."""
    return [w["event"]["msg"] if isinstance(w, dict) else w for w in result.get("warnings", [])]


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
    snapshot = host.state_dir / "snapshot.nft"
    snapshot.write_text("table inet hostfw {\n\tFAKE-SYNTAX-ERROR\n}\n")
    apply = host.run(state="apply", sha256=stage["sha256_after"], timeout=30)
    assert apply["failed"] is True, apply
    assert apply["msg"].startswith("cannot arm the rollback: the staged snapshot %s changed after hostfw.nftables wrote "
                                   "it (sha256 " % snapshot), apply["msg"]
    assert "tcp dport 9090 drop" in _rule_text(host) and not (host.state_dir / "armed.json").exists()


def test_persist_failure_is_a_clear_message(host):
    stage = host.run(state="stage", content=CANDIDATE)
    host.run(state="apply", sha256=stage["sha256_after"], timeout=30)
    host.run(state="confirm", sha256=stage["sha256_after"])
    (host.tmp / "etc").write_text("a file where the directory should be\n")
    persist = host.run(state="persist", sha256=stage["sha256_after"])
    assert persist["failed"] is True
    assert persist["msg"] == ("refusing to persist to %s: %s (above %s) is not a directory (fix: remove it or choose "
                              "another path)" % (host.persist, host.tmp / "etc", host.persist)), persist["msg"]


def test_candidate_with_another_table_is_refused(host):
    bad = CANDIDATE + "table ip other {\n\tchain c {\n\t}\n}\n"
    stage = host.run(state="stage", content=bad)
    assert stage["failed"] is True
    assert stage["msg"] == ("the candidate is refused before nft reads it: line 9: `table ip other` acts outside table "
                            "inet hostfw; the candidate may only define that table (fix: remove the statement; "
                            "hostfw.nftables never touches other tables)")
    assert host.tables() == {}


# ---- fleet rollout: conntrack primer, outcomes of earlier runs, confirm + persist in one call ----
def test_first_apply_with_prime_loads_the_primer_one_round_trip_before_the_candidate(host):
    from ansible_collections.hostfw.nftables.plugins.module_utils._nft import PRIMER

    stage = host.run(state="stage", content=CANDIDATE)
    assert stage["present_before"] is False and stage["changed"] is True
    first = host.run(state="apply", sha256=stage["sha256_after"], timeout=30, prime=True)
    assert first["primed"] is True and first["applied"] is False and first["armed"] is True, first
    assert first["rollback"]["snapshot_sha256"] is None, "the rollback restores 'absent'"
    body = host.tables()["inet hostfw"]
    assert any("ct state invalid counter" in line for line in body), body
    assert not any("drop" in line for line in body), "the primer can never drop"
    assert "ct state invalid counter" in PRIMER and "policy accept" in PRIMER
    second = host.run(state="apply", sha256=stage["sha256_after"], timeout=30, prime=True)
    assert second.get("primed") is not True and second["applied"] is True, second
    assert second["rollback"]["id"] == first["rollback"]["id"], "the rollback armed before the primer is kept"
    assert "tcp dport 8080 drop" in _rule_text(host)
    confirm = host.run(state="confirm", sha256=stage["sha256_after"], persist=True)
    assert confirm["armed"] is False and confirm["persisted"] is True and confirm["changed"] is True, confirm
    assert host.persist.read_text().startswith("# hostfw.nftables: last confirmed table inet hostfw")
    assert not (host.state_dir / "primed.json").exists() and not (host.state_dir / "armed.json").exists()
    again = host.run(state="stage", content=CANDIDATE)
    assert again["changed"] is False and again["persisted"] is True and again["pending_confirm"] is False, again


def test_prime_is_a_no_op_when_our_table_exists(host):
    host.load(PREVIOUS)
    stage = host.run(state="stage", content=CANDIDATE)
    apply = host.run(state="apply", sha256=stage["sha256_after"], timeout=30, prime=True)
    assert apply["applied"] is True and not apply.get("primed"), apply


def test_primed_fresh_host_rolls_back_to_absent(host):
    stage = host.run(state="stage", content=CANDIDATE)
    host.run(state="apply", sha256=stage["sha256_after"], timeout=20, prime=True)
    assert host.run(state="apply", sha256=stage["sha256_after"], timeout=20, prime=True)["applied"] is True
    host.wait_for("rolled-back-*.json", timeout=40)
    assert "inet hostfw" not in host.tables(), "the rollback removed the candidate (and the primer)"


def test_apply_after_the_stage_rollback_fired_is_refused(host):
    stage = host.run(state="stage", content=CANDIDATE)
    host.run(state="apply", sha256=stage["sha256_after"], timeout=1, prime=True)
    host.wait_for("rolled-back-*.json")
    late = host.run(state="apply", sha256=stage["sha256_after"], timeout=30, prime=True)
    assert late["failed"] is True and late["rolled_back"] is True, late
    assert "armed for this stage already fired" in late["msg"] and "nothing is applied; stage again" in late["msg"]
    assert "inet hostfw" not in host.tables() and not (host.state_dir / "armed.json").exists()


def test_a_fired_rollback_leaves_the_host_clean_and_the_next_run_says_so(host):
    host.load(PREVIOUS)
    stage = host.run(state="stage", content=CANDIDATE)
    host.run(state="apply", sha256=stage["sha256_after"], timeout=1)
    host.wait_for("rolled-back-*.json")
    status = host.run(state="status")
    assert status["rolled_back"] is True and status["armed"] is False, status
    assert not (host.state_dir / "armed.json").exists(), "no stale armed.json after the rollback"
    assert status["last_rollback"]["candidate_sha256"] == stage["sha256_after"]
    again = host.run(state="stage", content=CANDIDATE)
    assert again["last_rollback"]["id"] == status["rollback"]["id"], again
    assert any("the last rollout on this host ROLLED BACK: rollback %s" % status["rollback"]["id"] in w
               for w in _warnings(again)), _warnings(again)
    host.run(state="apply", sha256=again["sha256_after"], timeout=30)
    host.run(state="confirm", sha256=again["sha256_after"])
    assert host.run(state="stage", content=CANDIDATE)["last_rollback"] is None, "a confirmed rollout clears it"


def test_stage_retires_a_fired_rollback_nobody_reported(host):
    host.load(PREVIOUS)
    stage = host.run(state="stage", content=CANDIDATE)
    host.run(state="apply", sha256=stage["sha256_after"], timeout=1)
    host.wait_for("rolled-back-*.json")
    again = host.run(state="stage", content=CANDIDATE)
    assert again["last_rollback"]["rc"] == 0 and not (host.state_dir / "armed.json").exists(), again


def test_rerun_after_an_interrupted_run_must_confirm(host):
    """Ctrl-C after the apply: the running table is the candidate, the rollback still armed."""
    host.load(PREVIOUS)
    stage = host.run(state="stage", content=CANDIDATE)
    host.run(state="apply", sha256=stage["sha256_after"], timeout=60)
    again = host.run(state="stage", content=CANDIDATE)
    assert again["changed"] is False and again["armed"] is True and again["pending_confirm"] is True, again
    assert any("never confirmed is pending" in w for w in _warnings(again)), _warnings(again)
    apply = host.run(state="apply", sha256=again["sha256_after"], timeout=60, prime=True)
    assert apply["applied"] is False and apply["armed"] is True, apply
    confirm = host.run(state="confirm", sha256=again["sha256_after"], persist=True)
    assert confirm["armed"] is False and confirm["persisted"] is True, confirm
    assert host.run(state="stage", content=CANDIDATE)["pending_confirm"] is False


def test_stage_with_failsafe_lists_also_inspects(host):
    host.load(PREVIOUS)
    stage = host.run(state="stage", content=CANDIDATE, failsafe_inbound=[{"protocol": "tcp", "port": 22}],
                     failsafe_outbound=[], env={"SSH_CONNECTION": "10.0.0.1 40000 10.0.0.2 22"})
    assert stage["tables"] == ["inet hostfw"] and stage["findings"] == [], stage
    assert stage["ssh_connection"] == {"client_ip": "10.0.0.1", "client_port": 40000, "server_ip": "10.0.0.2",
                                       "server_port": 22}


def test_stage_reports_an_unpersisted_running_candidate(host):
    host.load(PREVIOUS)
    stage = host.run(state="stage", content=PREVIOUS)
    assert stage["changed"] is False and stage["persisted"] is False, stage
    host.run(state="persist", sha256=stage["sha256_after"])
    assert host.run(state="stage", content=PREVIOUS)["persisted"] is True


def test_unchanged_known_content_is_compared_without_scratch_namespaces(host):
    stage = host.run(state="stage", content=CANDIDATE)
    assert stage["canonical_loads"] == 2
    host.run(state="apply", sha256=stage["sha256_after"], timeout=30)
    host.run(state="confirm", sha256=stage["sha256_after"], persist=True)
    again = host.run(state="stage", content=CANDIDATE, failsafe_inbound=[], failsafe_outbound=[])
    assert again["changed"] is False and again["canonical_loads"] == 0, again
    assert again["sha256_before"] == again["sha256_after"] == stage["sha256_after"] and again["persisted"] is True
    assert again["tables"] == ["inet hostfw"] and again["pending_confirm"] is False
    checked = host.run(check_mode=True, state="stage", content=CANDIDATE)
    assert checked["changed"] is False and checked["canonical_loads"] == 0
    # the running table changed by hand: the full stage runs and sees it
    host.load(PREVIOUS)
    drift = host.run(state="stage", content=CANDIDATE)
    assert drift["changed"] is True and drift["canonical_loads"] == 2, drift
    # other content: canonicalised again
    other = host.run(state="stage", content=PREVIOUS)
    assert other["changed"] is False and other["canonical_loads"] == 2


def test_known_content_with_a_pending_rollback_takes_the_full_stage(host):
    stage = host.run(state="stage", content=CANDIDATE)
    host.run(state="apply", sha256=stage["sha256_after"], timeout=60)
    again = host.run(state="stage", content=CANDIDATE)
    assert again["canonical_loads"] == 2 and again["pending_confirm"] is True, again


# --------------------------------------------------------------------------------------------
# issue 14: the target trusts nothing writable, outcomes are reported truthfully, housekeeping
# --------------------------------------------------------------------------------------------
EVIL = "table ip evil {\n\tchain c {\n\t}\n}\n"


def _fired(host):
    assert not list(host.state_dir.glob("rolled-back-*.json")), "the rollback fired before the test changed its files"
    host.wait_for("rolled-back-*.json", timeout=20)
    time.sleep(0.2)
    return json.loads(next(host.state_dir.glob("rolled-back-*.json")).read_text())


def test_symlinked_state_dir_is_refused_with_the_fix(host):
    elsewhere = host.tmp / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    host.state_dir.symlink_to(elsewhere)
    stage = host.run(state="stage", content=CANDIDATE)
    assert stage["failed"] is True
    assert stage["msg"] == ("the state directory %s is a symlink; hostfw.nftables does not follow it (fix: rm %s, the "
                            "module creates the directory, or set state_dir to a real directory)"
                            % (host.state_dir, host.state_dir)), stage["msg"]
    assert os.listdir(str(elsewhere)) == []


def test_state_dir_under_a_file_is_a_clear_message(host):
    (host.tmp / "afile").write_text("x\n")
    status = host.run(state="status", state_dir=str(host.tmp / "afile" / "run"))
    assert status["failed"] is True
    assert status["msg"] == ("%s (above %s) is not a directory (fix: remove it or choose another path)"
                             % (host.tmp / "afile", host.tmp / "afile" / "run")), status["msg"]


def test_state_dir_with_loose_mode_is_refused(host):
    host.state_dir.mkdir()
    host.state_dir.chmod(0o755)
    stage = host.run(state="stage", content=CANDIDATE)
    assert stage["failed"] is True and stage["msg"] == (
        "the state directory %s has mode 0755: it must be 0700, readable and writable by its owner only (fix: chmod "
        "0700 %s)" % (host.state_dir, host.state_dir)), stage["msg"]


@pytest.mark.parametrize("content, problem", [
    ('include "/dev/zero"\n' + CANDIDATE, 'line 1: the candidate may not include other files (include "/dev/zero")'),
    ("flush ruleset\n" + CANDIDATE, "line 1: `flush ruleset` acts outside table inet hostfw"),
])
def test_include_and_flush_ruleset_are_refused_before_nft_reads_them(host, content, problem):
    stage = host.run(state="stage", content=content)
    assert stage["failed"] is True
    assert stage["msg"].startswith("the candidate is refused before nft reads it: " + problem), stage["msg"]
    assert host.tables() == {} and not host.state_dir.joinpath("stage.json").exists()


def test_swapped_candidate_is_not_applied(host):
    host.load(PREVIOUS)
    stage = host.run(state="stage", content=CANDIDATE)
    candidate = host.state_dir / "candidate.nft"
    candidate.write_text(candidate.read_text() + EVIL)
    apply = host.run(state="apply", sha256=stage["sha256_after"], timeout=30)
    assert apply["failed"] is True and apply["applied"] is False
    assert apply["msg"].startswith("the staged candidate %s changed after hostfw.nftables wrote it" % candidate)
    assert sorted(host.tables()) == ["inet hostfw"] and "tcp dport 9090 drop" in _rule_text(host)
    assert not (host.state_dir / "armed.json").exists(), "nothing is armed for a refused apply"


def test_arm_refuses_another_controllers_stage(host):
    host.load(PREVIOUS)
    mine = host.run(state="stage", content=CANDIDATE)
    theirs = host.run(state="stage", content=CANDIDATE.replace("8080", "7070"))
    arm = host.run(state="arm", sha256=mine["sha256_after"], timeout=30)
    assert arm["failed"] is True and arm["armed"] is False
    assert arm["msg"] == ("the staged candidate (sha256 %s) is not the expected one (%s): another run staged in "
                          "between; stage again" % (theirs["sha256_after"], mine["sha256_after"]))
    assert not (host.state_dir / "armed.json").exists()


def test_swapped_rollback_copy_is_not_loaded_the_intact_snapshot_is(host):
    host.load(PREVIOUS)
    stage = host.run(state="stage", content=CANDIDATE)
    apply = host.run(state="apply", sha256=stage["sha256_after"], timeout=5)
    copy = host.state_dir / ("rollback-%s.nft" % apply["rollback"]["id"])
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600, "rollback copies are private"
    copy.write_text(copy.read_text() + EVIL)
    fired = _fired(host)
    assert fired["restored"] is True and fired["source"] == str(host.state_dir / "snapshot.nft"), fired
    assert sorted(host.tables()) == ["inet hostfw"], "the swapped copy's table was not loaded"
    assert "tcp dport 9090 drop" in _rule_text(host)


def test_failed_rollback_is_not_reported_as_restored(host):
    host.load(PREVIOUS)
    stage = host.run(state="stage", content=CANDIDATE)
    apply = host.run(state="apply", sha256=stage["sha256_after"], timeout=5)
    rid = apply["rollback"]["id"]
    (host.state_dir / ("rollback-%s.nft" % rid)).write_text(PREVIOUS + EVIL)
    (host.state_dir / "snapshot.nft").unlink()
    fired = _fired(host)
    assert fired["restored"] is False and "no intact copy of the snapshot to restore" in fired["error"], fired
    assert sorted(host.tables()) == ["inet hostfw"] and "tcp dport 8080 drop" in _rule_text(host)
    confirm = host.run(state="confirm", sha256=stage["sha256_after"])
    assert confirm["failed"] is True and confirm["rolled_back"] is False and confirm["rollback_failed"] is True
    assert confirm["msg"].startswith("the rollback %s fired before the confirmation but did NOT restore the previous "
                                     "table: no intact copy of the snapshot to restore (" % rid), confirm["msg"]
    assert confirm["msg"].endswith("table inet hostfw now hashes to %s (the candidate)" % stage["sha256_after"])
    # confirm retired the record (no stale armed.json); status still tells the truth from last-rollback.json
    status = host.run(state="status")
    assert status["rolled_back"] is False and status["rollback_failed"] is True, status
    assert status["rollback"]["fired"] is True and status["rollback"]["restored"] is False
    assert status["rollback"]["restored_sha256"] is None
    assert status["rollback"]["running_sha256"] == stage["sha256_after"] == status["sha256_after"]


def test_a_timer_without_its_record_restores_nothing(host):
    """The module died after scheduling the rollback, before (or instead of) its record: the timer
    must not restore a snapshot that a later run has made obsolete."""
    host.load(PREVIOUS)
    host.run(state="stage", content=CANDIDATE)
    arm = host.run(state="arm", timeout=5)
    (host.state_dir / "armed.json").unlink()  # as if the record had never been written
    host.load(CANDIDATE.replace("8080", "6060"))  # a later run's confirmed table
    fired = _fired(host)
    assert fired["id"] == arm["rollback"]["id"] and fired["restored"] is False and fired.get("skipped") is True
    assert fired["error"].startswith("the armed record is not this rollback's (armed: none)")
    assert "tcp dport 6060 drop" in _rule_text(host), "the old snapshot was not restored"


def test_persist_checks_the_file_before_it_replaces_the_old_one(host):
    stage = host.run(state="stage", content=CANDIDATE)
    host.run(state="apply", sha256=stage["sha256_after"], timeout=30)
    host.run(state="confirm", sha256=stage["sha256_after"])
    assert host.run(state="persist", sha256=stage["sha256_after"])["changed"] is True
    old = host.persist.read_text()
    new = host.run(state="stage", content=PREVIOUS)
    host.run(state="apply", sha256=new["sha256_after"], timeout=30)
    host.run(state="confirm", sha256=new["sha256_after"])
    persist = host.run(state="persist", sha256=new["sha256_after"], env={"FAKE_NFT_FAIL_CHECK": "/etc/.hostfw-"})
    assert persist["failed"] is True and persist["msg"].startswith("nft -c -f rejects the persisted file"), persist
    assert host.persist.read_text() == old, "the checked-and-rejected file did not replace the confirmed one"
    assert sorted(os.listdir(str(host.persist.parent))) == ["hostfw.nft", "hostfw.service"]


def test_housekeeping_keeps_the_last_five_rollbacks(host):
    for port in range(6):
        stage = host.run(state="stage", content=CANDIDATE.replace("8080", str(7000 + port)))
        host.run(state="apply", sha256=stage["sha256_after"], timeout=30)
        assert not host.run(state="confirm", sha256=stage["sha256_after"]).get("failed")
    names = sorted(os.listdir(str(host.state_dir)))
    assert len([n for n in names if n.startswith("disarmed-")]) == 5, names
    assert not [n for n in names if n.startswith("rollback-")], names


def test_paths_that_would_inject_into_the_boot_unit_are_refused(host):
    stage = host.run(state="stage", content=CANDIDATE)
    host.run(state="apply", sha256=stage["sha256_after"], timeout=30)
    host.run(state="confirm", sha256=stage["sha256_after"])
    evil = str(host.tmp / "etc" / "x.nft\nExecStartPre=/bin/sh -c id")
    persist = host.run(state="persist", sha256=stage["sha256_after"], persist_path=evil)
    assert persist["failed"] is True
    assert persist["msg"] == ("persist_path %r cannot be written into the boot unit: it must be an absolute path of "
                              "letters, digits and ._/+@:,=- only (no spaces, quotes, %%, backslashes or control "
                              "characters)" % evil), persist["msg"]
    assert not host.unit.exists()


def test_damaged_records_and_bad_failsafes_are_clear_messages(host):
    host.run(state="stage", content=CANDIDATE)
    (host.state_dir / "stage.json").write_text('{"staged_at": 1}\n')
    arm = host.run(state="arm", timeout=30)
    assert arm["msg"] == ("the stage record %s is damaged (it lacks stage_id, candidate_sha256 or snapshot_sha256): "
                          "stage again" % (host.state_dir / "stage.json")), arm
    (host.state_dir / "armed.json").write_text('{"id": "../../escape", "method": "detached"}\n')
    disarm = host.run(state="disarm")
    assert not disarm.get("failed") and not (host.tmp / "escape").exists() and not (host.tmp / "disarmed-..").exists()
    inspect = host.run(state="inspect", failsafe_inbound=[{"protocol": "tcp", "port": "22:23"}],
                       failsafe_outbound=[{"protocol": "icmp", "port": 1}])
    assert inspect["msg"] == ("failsafe_inbound[0].port: '22:23' is not a port number 0-65535 (fix: one entry per port, "
                              "as the compile action returns them); failsafe_outbound[0].protocol: 'icmp' is not tcp, "
                              "udp or sctp"), inspect
