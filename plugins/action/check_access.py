# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin ``hostfw.nftables.check_access``: would a host's compiled table accept a new
connection?  A thin adapter over ``Compilation.check_access``; the validated world comes from
the compile cache (``plugin_utils.controller``), so only the hosts asked about are compiled.
``flows`` checks many hosts' connections in one task (the rollout checks a whole batch at once).
Documentation: ``plugins/modules/check_access.py``.
"""

from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.hostfw.nftables.plugins.plugin_utils.controller import compile_cached, gather
from ansible_collections.hostfw.nftables.plugins.plugin_utils.errors import HostfwError

ARGS = {
    "host": {"type": "str"},
    "source": {"type": "str"},
    "destination": {"type": "str"},
    "protocol": {"type": "str", "default": "TCP", "choices": ["TCP", "UDP", "SCTP"]},
    "port": {"type": "int"},
    "interface": {"type": "str"},
    "flows": {"type": "list", "elements": "dict"},
}
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
            argument_spec=ARGS, mutually_exclusive=[("flows", "host")], required_one_of=[("flows", "host")],
            required_by={"host": ("source", "destination", "port")})
        result["changed"] = False
        single = args.get("flows") is None
        flows = [{k: args.get(k) for k in FLOW_KEYS}] if single else args["flows"]
        hosts, base_dir = gather(task_vars)
        try:
            comp = compile_cached(hosts, base_dir)
        except HostfwError as exc:
            result.update(failed=True, msg=exc.render(with_origin=True), problems=[str(p) for p in exc.problems])
            return result
        verdicts = []
        for i, flow in enumerate(flows):
            where = "check_access" if single else "check_access: flows[%d]" % i
            missing = [k for k in ("host", "source", "destination", "port") if flow.get(k) in (None, "")]
            if missing:
                result.update(failed=True, msg="%s: %s missing (each flow needs host, source, destination and port)"
                              % (where, ", ".join(missing)))
                return result
            host = str(flow["host"])
            protocol = str(flow.get("protocol") or "TCP").upper()
            if protocol not in ("TCP", "UDP", "SCTP"):
                result.update(failed=True, msg="%s: protocol %r is not one of TCP, UDP, SCTP" % (where, flow.get("protocol")))
                return result
            try:
                port = int(flow["port"])
            except (TypeError, ValueError):
                port = 0
            if not 0 < port < 65536:
                result.update(failed=True, msg="%s: port %r is not a port number (1-65535)" % (where, flow["port"]))
                return result
            if host not in hosts:
                result.update(failed=True, msg="%s: %s is not an inventory host" % (where, host))
                return result
            try:
                verdict = comp.check_access(host, str(flow["source"]), str(flow["destination"]),
                                            protocol, port,
                                            flow.get("interface"))
            except ValueError as exc:
                result.update(failed=True, msg="%s: %s (use IP address literals for source and destination)"
                              % (where, exc))
                return result
            verdict.update({k: flow.get(k) for k in FLOW_KEYS if flow.get(k) is not None})
            verdicts.append(verdict)
        if single:
            result.update(verdicts[0])
        else:
            result["flows"] = verdicts
            result["by_host"] = {v["host"]: v for v in verdicts}
        return result
