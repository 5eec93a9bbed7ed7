# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin ``hostfw.nftables.check_access``: would a host's compiled table accept a new
connection?  A thin adapter over ``Compilation.check_access``, its argument spec derived from
``plugins/modules/check_access.py``; the validated world comes from the compile cache
(``plugin_utils.controller``), so only the hosts asked about are compiled.  ``flows`` checks many
hosts' connections in one task (the rollout checks a whole batch at once); ``world: pending``
asks the pending world (every staged policy promoted).
"""

from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.hostfw.nftables.plugins.modules.check_access import DOCUMENTATION
from ansible_collections.hostfw.nftables.plugins.plugin_utils import argspec
from ansible_collections.hostfw.nftables.plugins.plugin_utils.controller import compile_cached, gather
from ansible_collections.hostfw.nftables.plugins.plugin_utils.errors import HostfwError

ARGUMENT_SPEC = argspec.from_documentation(DOCUMENTATION)
FLOW_KEYS = ("host", "source", "destination", "protocol", "port", "interface")


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        _validation, args = self.validate_argument_spec(
            argument_spec=ARGUMENT_SPEC, mutually_exclusive=[("flows", "host")], required_one_of=[("flows", "host")],
            required_by={"host": ("source", "destination", "port")})
        result["changed"] = False
        single = args.get("flows") is None
        flows = [{k: args.get(k) for k in FLOW_KEYS}] if single else args["flows"]
        try:
            hosts, base_dir = gather(task_vars)
            comp = compile_cached(hosts, base_dir)
        except HostfwError as exc:
            result.update(failed=True, msg=exc.render(with_origin=True), problems=[str(p) for p in exc.problems])
            return result
        problems, checked = [], []
        for i, flow in enumerate(flows):
            where = "check_access" if single else "check_access: flows[%d]" % i
            problem = _flow_problem(flow, hosts)
            if problem:
                problems.append("%s: %s" % (where, problem))
            else:
                checked.append((where, flow))
        verdicts = []
        for where, flow in [] if problems else checked:  # report bad flows before evaluating any
            try:
                verdict = comp.check_access(str(flow["host"]), str(flow["source"]), str(flow["destination"]),
                                            str(flow.get("protocol") or "TCP").upper(), int(flow["port"]),
                                            flow.get("interface"), world=args.get("world") or "enforced")
            except ValueError as exc:
                problems.append("%s: %s (use IP address literals for source and destination)" % (where, exc))
                continue
            verdict.update({k: flow.get(k) for k in FLOW_KEYS if flow.get(k) is not None})
            verdicts.append(verdict)
        if problems:
            result.update(failed=True, msg=" | ".join(problems), problems=problems)
            return result
        if single:
            result.update(verdicts[0])
        else:
            result["flows"] = verdicts
            by_host = {}
            for verdict in verdicts:
                # a host is allowed only when all its flows are: keep its first denied flow, if any
                kept = by_host.get(verdict["host"])
                if kept is None or (kept["allowed"] and not verdict["allowed"]):
                    by_host[verdict["host"]] = verdict
            result["by_host"] = by_host
        return result


def _flow_problem(flow, hosts):
    """What is wrong with one flow (a message without the flow's position), or None."""
    missing = [k for k in ("host", "source", "destination", "port") if flow.get(k) in (None, "")]
    if missing:
        return "%s missing (each flow needs host, source, destination and port)" % ", ".join(missing)
    unknown = sorted(set(flow) - set(FLOW_KEYS))
    if unknown:
        return "unknown key %s (a flow has %s)" % (", ".join(unknown), ", ".join(FLOW_KEYS))
    protocol = str(flow.get("protocol") or "TCP").upper()
    if protocol not in ("TCP", "UDP", "SCTP"):
        return "protocol %r is not one of TCP, UDP, SCTP" % flow.get("protocol")
    try:
        port = int(flow["port"])
    except (TypeError, ValueError):
        port = 0
    if not 0 < port < 65536:
        return "port %r is not a port number (1-65535)" % (flow["port"],)
    if str(flow["host"]) not in hosts:
        return "%s is not an inventory host" % flow["host"]
    return None
