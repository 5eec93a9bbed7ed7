# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The nft_commit action plugin's flow, in-process, with the host's nft_table calls scripted and a fake
clock: the order of the calls, the connection reset before the confirmation, the primer round trip, the
rollback wait and the messages."""

from __future__ import annotations

from unittest.mock import MagicMock

import pytest
import yaml
from ansible.errors import AnsibleConnectionFailure
from ansible.parsing.dataloader import DataLoader
from ansible.playbook.play_context import PlayContext

from ansible_collections.hostfw.nftables.plugins.action import nft_commit as commit_action
from ansible_collections.hostfw.nftables.plugins.modules import nft_commit as commit_doc

SHA = "c" * 64
ROLLBACK = {"id": "20260101T000000-abcd", "unit": "hostfw-rollback-20260101T000000-abcd", "timeout": 20}


class FakeHost:
    """Scripted answers per nft_table state; an answer that is an exception is raised (unreachable)."""

    def __init__(self, plugin, script):
        self.plugin = plugin
        self.script = {state: list(answers) for state, answers in script.items()}
        self.calls = []
        self.now = 1000.0
        plugin.clock = lambda: self.now
        plugin.sleep = self.sleep
        plugin._execute_module = self.execute  # pylint: disable=protected-access
        self.events = []
        plugin._connection.reset.side_effect = lambda: self.events.append("reset")  # pylint: disable=protected-access

    def sleep(self, seconds):
        self.now += seconds

    def execute(self, module_name, module_args, task_vars):
        assert module_name == "hostfw.nftables.nft_table"
        self.now += 0.5
        state = module_args["state"]
        self.calls.append((state, dict(module_args)))
        self.events.append(state)
        answers = self.script[state]
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if isinstance(answer, Exception):
            self.now += 5  # an SSH connect timeout
            raise answer
        return dict(answer)


def plugin(args, check_mode=False):
    task = MagicMock()
    task.args = dict(args)
    task.check_mode = check_mode
    task.diff = False
    task.async_val = 0
    action = commit_action.ActionModule(task=task, connection=MagicMock(), play_context=PlayContext(),
                                        loader=DataLoader(), templar=None, shared_loader_obj=None)
    action._display = MagicMock()  # pylint: disable=protected-access
    return action


def run(script, check_mode=False, **args):
    args.setdefault("sha256", SHA)
    args.setdefault("timeout", 20)
    args.setdefault("reconnect_timeout", 8)
    action = plugin(args, check_mode)
    host = FakeHost(action, script)
    result = action.run(task_vars={"inventory_hostname": "node1"})
    return result, host


APPLIED = {"changed": True, "applied": True, "armed": True, "rollback": ROLLBACK, "sha256_after": SHA}
CONFIRMED = {"changed": True, "applied": True, "armed": False, "persisted": True, "sha256_after": SHA,
             "rollback": dict(ROLLBACK, pending=False)}
UNREACHABLE = AnsibleConnectionFailure("Failed to connect to the host via ssh: Connection timed out")
ROLLED_BACK = {"rolled_back": True, "armed": False, "sha256_after": "p" * 64,
               "rollback": dict(ROLLBACK, restored_sha256="p" * 64, restored_identical=True)}


def test_argument_spec_is_the_documentation():
    options = yaml.safe_load(commit_doc.DOCUMENTATION)["options"]
    assert set(commit_action.ARGUMENT_SPEC) == set(options)
    for name, doc in options.items():
        assert commit_action.ARGUMENT_SPEC[name]["type"] == doc["type"], name
        assert commit_action.ARGUMENT_SPEC[name].get("default") == doc.get("default"), name


def test_apply_then_reset_then_confirm_and_persist_in_one_task():
    result, host = run({"apply": [APPLIED], "confirm": [CONFIRMED]})
    assert not result.get("failed"), result
    assert host.events == ["apply", "reset", "confirm"], "the confirmation goes over a new connection"
    assert result["confirmed"] is True and result["persisted"] is True and result["changed"] is True
    apply_args, confirm_args = host.calls[0][1], host.calls[1][1]
    assert apply_args["timeout"] == 20 and apply_args["prime"] is True and apply_args["sha256"] == SHA
    assert confirm_args["persist"] is True and confirm_args["sha256"] == SHA
    assert result["call_seconds"] == 1.0, "two calls of 0.5 s on the fake clock"
    assert result["armed_seconds"] == 1.0, "no host times: the controller's"


def test_armed_seconds_come_from_the_hosts_clock():
    confirmed = dict(CONFIRMED, rollback=dict(ROLLBACK, pending=False, armed_at=50.0, disarmed_at=52.25))
    result, host = run({"apply": [APPLIED], "confirm": [confirmed]})
    assert result["armed_seconds"] == 2.25 and result["call_seconds"] == 1.0


def test_a_fresh_host_is_primed_one_round_trip_before_the_apply():
    primed = {"changed": True, "primed": True, "applied": False, "armed": True, "rollback": ROLLBACK}
    result, host = run({"apply": [primed, APPLIED], "confirm": [CONFIRMED]})
    assert host.events == ["apply", "apply", "reset", "confirm"]
    assert result["primed"] is True and result["applied"] is True and result["confirmed"] is True
    assert "prime_round_trip" in result["steps"]


def test_unreachable_host_waits_for_its_own_rollback_and_says_rolled_back():
    result, host = run({"apply": [APPLIED], "confirm": [UNREACHABLE], "status": [ROLLED_BACK]})
    assert result["failed"] is True and result["rolled_back"] is True
    assert result["msg"].startswith("hostfw: ROLLED BACK on node1: the candidate (sha256 %s) was applied but not "
                                    "confirmed over a new connection within 20 s (" % SHA), result["msg"]
    assert "Connection timed out" in result["msg"] and "identical to the snapshot: True" in result["msg"]
    assert result["msg"].endswith("The rollout stops here.")
    # the status is read only after the deadline: armed before 1000.5, fires at most 20 s later, + margin
    assert host.events[-1] == "status" and result["steps"]["rollback_wait"] > 0
    assert host.now - 0.5 >= 1000.5 + 20 + commit_action.DEADLINE_MARGIN
    assert host.events.count("reset") == host.events.count("confirm") + host.events.count("status")


def test_confirm_that_finds_the_rollback_fired_fails_without_waiting():
    fired = dict(ROLLED_BACK, failed=True, msg="the rollback 20260101T000000-abcd fired at ... before the confirmation")
    result, host = run({"apply": [APPLIED], "confirm": [fired]})
    assert "ROLLED BACK on node1" in result["msg"] and "fired at ... before the confirmation" in result["msg"]
    assert "status" not in host.events and "rollback_wait" not in result["steps"]


def test_a_rollback_that_did_not_restore_is_not_called_rolled_back():
    failed = {"failed": True, "rolled_back": False, "rollback_failed": True, "sha256_after": SHA,
              "msg": "the rollback 20260101T000000-abcd fired before the confirmation but did NOT restore",
              "rollback": {"id": "20260101T000000-abcd", "restored": False, "running_sha256": SHA,
                           "error": "no intact copy of the snapshot to restore"}}
    result, host = run({"apply": [APPLIED], "confirm": [failed]})
    assert result["failed"] is True and result["rolled_back"] is False and result["rollback_failed"] is True
    assert result["msg"].startswith("hostfw: ROLLBACK FAILED on node1: the candidate (sha256 %s) was applied" % SHA)
    assert "did NOT restore the previous table inet hostfw (no intact copy of the snapshot to restore)" in result["msg"]
    assert "ROLLED BACK" not in result["msg"] and "running table hashes to %s" % SHA in result["msg"]


def test_still_unreachable_after_the_deadline_is_said():
    result, host = run({"apply": [APPLIED], "confirm": [UNREACHABLE], "status": [UNREACHABLE]})
    assert result["failed"] is True and result.get("unreachable_after_deadline") is True
    assert result["msg"].startswith("hostfw: node1 was not reachable over a new connection within 8 s after "
                                    "applying the candidate")
    assert "the rollback unit is hostfw-rollback-20260101T000000-abcd" in result["msg"]


def test_confirm_failure_without_rollback_is_reported():
    wrong = {"failed": True, "msg": "the running table inet hostfw (sha256 x) is not the candidate", "armed": True,
             "sha256_after": "x"}
    status = {"rolled_back": False, "armed": True, "sha256_after": "x"}
    result, host = run({"apply": [APPLIED], "confirm": [wrong], "status": [status]})
    assert result["msg"].startswith("hostfw: confirming the candidate on node1 failed (the running table"), result
    assert "no rollback has fired (armed: True, running sha256 x)" in result["msg"]


def test_persist_failure_after_the_confirmation_is_not_a_rollback():
    failed = {"failed": True, "persisted": False, "armed": False, "msg": "the running table inet hostfw (sha256 c) is "
              "confirmed and the rollback disarmed, but persisting it failed: cannot write"}
    result, host = run({"apply": [APPLIED], "confirm": [failed]})
    assert result["confirmed"] is True and result["persisted"] is False and result["failed"] is True
    assert "persisting it failed" in result["msg"] and "status" not in host.events


def test_apply_failure_stops_before_any_reconnection():
    result, host = run({"apply": [{"failed": True, "msg": "nft -f of the candidate failed, nothing changed"}]})
    assert result["failed"] is True and host.events == ["apply"]
    assert result["msg"] == "hostfw: applying the candidate on node1 failed: nft -f of the candidate failed, nothing changed"


@pytest.mark.parametrize("timeout, reconnect", [(30, 30), (10, 30)])
def test_rollback_timeout_must_exceed_reconnect_timeout(timeout, reconnect):
    result, host = run({}, timeout=timeout, reconnect_timeout=reconnect)
    assert result["failed"] is True and host.events == []
    assert "the rollback timeout (%d s) must exceed the reconnect timeout (%d s)" % (timeout, reconnect) in result["msg"]


def test_check_mode_runs_nothing_on_the_host():
    result, host = run({}, check_mode=True)
    assert result["changed"] is True and not result.get("failed") and host.events == []


def test_connection_lost_during_the_apply_waits_for_the_rollback_and_reports_it():
    primed = {"changed": True, "primed": True, "applied": False, "armed": True, "rollback": ROLLBACK}
    result, host = run({"apply": [primed, UNREACHABLE], "status": [ROLLED_BACK]})
    assert host.events[:2] == ["apply", "apply"] and host.events[-1] == "status" and "confirm" not in host.events
    assert result["failed"] is True and result["rolled_back"] is True
    assert "ROLLED BACK on node1" in result["msg"] and "the connection was lost during the apply" in result["msg"]
    assert host.now >= 1000.5 + 20 + commit_action.DEADLINE_MARGIN, "the status is read after the deadline"
