# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin ``hostfw.nftables.nft_commit``: apply (with the rollback armed in the same call),
reset the connection, confirm over a new one and persist, inside one task per host, as
community.general's ``iptables_state`` runs its commit-confirm flow.  Its argument spec is derived
from ``plugins/modules/nft_commit.py``; the work on the host is ``nft_table``'s.
"""

from __future__ import annotations

import time

from ansible.errors import AnsibleConnectionFailure
from ansible.plugins.action import ActionBase

from ansible_collections.hostfw.nftables.plugins.modules.nft_commit import DOCUMENTATION
from ansible_collections.hostfw.nftables.plugins.plugin_utils import argspec

ARGUMENT_SPEC = argspec.from_documentation(DOCUMENTATION)
MODULE = "hostfw.nftables.nft_table"
# Seconds after the rollback deadline before the host is reached again to read what the rollback did.
DEADLINE_MARGIN = 3
# Extra seconds to reach a host again after its rollback deadline (it restored a table that admitted us).
AFTER_DEADLINE_RECONNECT = 10
PASSED_THROUGH = ("state_dir", "lock_timeout")


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False

    # seams for the unit tests
    clock = staticmethod(time.monotonic)
    sleep = staticmethod(time.sleep)

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        self._vars = task_vars
        self._args = args
        host = task_vars.get("inventory_hostname", "the host")
        result.update(changed=False, applied=False, confirmed=False, primed=False, rolled_back=False, armed=False,
                      steps={})
        if args["timeout"] <= args["reconnect_timeout"]:
            return dict(result, failed=True, msg=(
                "hostfw: the rollback timeout (%d s) must exceed the reconnect timeout (%d s): the rollback would fire "
                "before the new connection can confirm; raise hostfw_rollback_timeout or lower "
                "hostfw_reconnect_timeout" % (args["timeout"], args["reconnect_timeout"])))
        if self._task.check_mode:
            return dict(result, changed=True, msg="check mode: the staged candidate would be applied, confirmed "
                        "over a new connection and persisted")
        steps = result["steps"]

        started = self.clock()
        apply_args = dict(sha256=args["sha256"], timeout=args["timeout"], prime=args["prime"],
                          rollback_method=args["rollback_method"])
        armed_by = started + 3600  # unknown until the first call returns
        try:
            apply = self._nft("apply", **apply_args)
            armed_by = self.clock()  # the rollback was armed before this moment: it fires at most timeout later
            steps["apply"] = round(armed_by - started, 3)
            if apply.get("primed"):
                # the round trip after the primer: conntrack now tracks this connection as established
                result["primed"] = True
                apply = self._nft("apply", **apply_args)
                steps["prime_round_trip"] = round(self.clock() - armed_by, 3)
        except AnsibleConnectionFailure as exc:
            # lost during the apply: whatever was armed fires by itself; wait for it and report what happened
            result["changed"] = True
            return self._after_deadline(result, host, min(armed_by, self.clock()), "the connection was lost "
                                        "during the apply: %s" % _last_line(exc), {})
        self._keep(result, apply, "applied", "rolled_back", "rollback", "sha256_after", "armed")
        result["changed"] = bool(apply.get("changed")) or result["primed"]
        if apply.get("failed"):
            return dict(result, failed=True, msg="hostfw: applying the candidate on %s failed: %s"
                        % (host, apply.get("msg")))

        reconnect_started = self.clock()
        confirm, connection_error = self._over_new_connection(
            "confirm", args["reconnect_timeout"], sha256=args["sha256"], persist=args["persist"],
            persist_path=args["persist_path"], unit_path=args["unit_path"])
        steps["reconnect_confirm"] = round(self.clock() - reconnect_started, 3)
        if confirm is not None and not confirm.get("failed"):
            self._keep(result, confirm, "rollback", "sha256_after", "persisted", "armed")
            result.update(confirmed=True, changed=result["changed"] or bool(confirm.get("changed")),
                          call_seconds=round(self.clock() - started, 3))
            info = confirm.get("rollback") or {}
            if info.get("disarmed_at") and info.get("armed_at"):
                # both on the host's clock: from the arming to the disarming
                result["armed_seconds"] = round(info["disarmed_at"] - info["armed_at"], 3)
            else:
                result["armed_seconds"] = result["call_seconds"]
            return result
        if confirm is not None and confirm.get("persisted") is False and not confirm.get("rolled_back"):
            return dict(result, confirmed=True, failed=True, persisted=False, msg="hostfw: %s" % confirm.get("msg"))
        reason = connection_error if confirm is None else confirm.get("msg")
        if confirm is not None and (confirm.get("rolled_back") or confirm.get("rollback_failed")):
            return self._report(result, host, confirm, reason)
        return self._after_deadline(result, host, armed_by, reason, apply)

    def _after_deadline(self, result, host, armed_by, reason, apply):
        """Not confirmed: let the rollback deadline pass, reach the host again, read what it did, and fail."""
        args, steps = self._args, result["steps"]
        wait = max(0.0, armed_by + args["timeout"] + DEADLINE_MARGIN - self.clock())
        steps["rollback_wait"] = round(wait, 3)
        self.sleep(wait)
        status_started = self.clock()
        status, status_error = self._over_new_connection("status", args["reconnect_timeout"] + AFTER_DEADLINE_RECONNECT)
        steps["status"] = round(self.clock() - status_started, 3)
        if status is None:
            unit = (apply.get("rollback") or {}).get("unit") or "a detached process"
            return dict(result, failed=True, unreachable_after_deadline=True, msg=(
                "hostfw: %s was not reachable over a new connection within %d s after applying the candidate "
                "(sha256 %s), and is still unreachable after the rollback deadline (%d s): %s. Check the host's "
                "console; the rollback unit is %s. The rollout stops here."
                % (host, args["reconnect_timeout"], args["sha256"], args["timeout"], status_error, unit)))
        return self._report(result, host, status, reason)

    def _report(self, result, host, status, reason):
        """Fail the host with what its rollback status says."""
        args = self._args
        self._keep(result, status, "rolled_back", "rollback_failed", "rollback", "sha256_after", "armed")
        if status.get("rollback_failed"):
            info = status.get("rollback") or {}
            return dict(result, failed=True, changed=True, msg=(
                "hostfw: ROLLBACK FAILED on %s: the candidate (sha256 %s) was applied but not confirmed over a new "
                "connection within %d s (%s); the rollback %s fired but did NOT restore the previous table inet "
                "hostfw (%s); the running table hashes to %s. Check the host now. The rollout stops here."
                % (host, args["sha256"], args["timeout"], reason or "no message", info.get("id"),
                   info.get("error") or "no error recorded", info.get("running_sha256") or status.get("sha256_after"))))
        if status.get("rolled_back"):
            info = status.get("rollback") or {}
            return dict(result, failed=True, changed=True, msg=(
                "hostfw: ROLLED BACK on %s: the candidate (sha256 %s) was applied but not confirmed over a new "
                "connection within %d s (%s); the rollback %s restored the previous table inet hostfw (sha256 %s, "
                "identical to the snapshot: %s). The rollout stops here."
                % (host, args["sha256"], args["timeout"], reason or "no message", info.get("id"),
                   info.get("restored_sha256"), info.get("restored_identical"))))
        return dict(result, failed=True, msg=(
            "hostfw: confirming the candidate on %s failed (%s) and no rollback has fired (armed: %s, running sha256 "
            "%s). The rollout stops here." % (host, reason or "no message", status.get("armed"),
                                              status.get("sha256_after"))))

    # ------------------------------------------------------------------------------------------
    def _nft(self, state, **args):
        """One nft_table call on the host (may raise AnsibleConnectionFailure)."""
        module_args = {key: self._args[key] for key in PASSED_THROUGH}
        module_args.update(args, state=state)
        return self._execute_module(module_name=MODULE, module_args=module_args, task_vars=self._vars)

    def _over_new_connection(self, state, timeout, **args):
        """(result, None) of one nft_table call over a NEW connection, retried until ``timeout`` seconds have
        passed; (None, last error) when the host could not be reached."""
        deadline = self.clock() + timeout
        error = "no attempt"
        while True:
            self._reset_connection()
            try:
                res = self._nft(state, **args)
                if not res.get("unreachable"):
                    return res, None
                error = res.get("msg") or "unreachable"
            except AnsibleConnectionFailure as exc:
                error = _last_line(exc)
            if self.clock() >= deadline:
                return None, error
            self.sleep(1)

    def _reset_connection(self):
        """Drop the connection (for SSH with ControlPersist: stop the master), so the next call opens a new one."""
        try:
            self._connection.reset()
        except (AttributeError, NotImplementedError, AnsibleConnectionFailure):
            pass

    @staticmethod
    def _keep(result, res, *keys):
        for key in keys:
            if key in res:
                result[key] = res[key]


def _last_line(exc):
    """The last line of an exception's message (ssh errors end with the reason), or its type."""
    text = str(exc).strip()
    return text.splitlines()[-1] if text else type(exc).__name__
