# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin ``hostfw.nftables.check_access``: would a host's compiled table accept a new
connection?  A thin adapter over ``Compilation.check_access``; the validated world comes from
the compile cache (``plugin_utils.controller``), so only this host is compiled.
Documentation: ``plugins/modules/check_access.py``.
"""

from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.hostfw.nftables.plugins.plugin_utils.controller import compile_cached, gather
from ansible_collections.hostfw.nftables.plugins.plugin_utils.errors import HostfwError

ARGS = {
    "host": {"type": "str", "required": True},
    "source": {"type": "str", "required": True},
    "destination": {"type": "str", "required": True},
    "protocol": {"type": "str", "default": "TCP", "choices": ["TCP", "UDP", "SCTP"]},
    "port": {"type": "int", "required": True},
    "interface": {"type": "str"},
}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        _validation, args = self.validate_argument_spec(argument_spec=ARGS)
        hosts, base_dir = gather(task_vars)
        try:
            comp = compile_cached(hosts, base_dir)
        except HostfwError as exc:
            result.update(failed=True, msg=exc.render(with_origin=True), problems=[str(p) for p in exc.problems])
            return result
        if args["host"] not in hosts:
            result.update(failed=True, msg="check_access: %s is not an inventory host" % args["host"])
            return result
        try:
            verdict = comp.check_access(args["host"], args["source"], args["destination"], args["protocol"],
                                        args["port"], args.get("interface"))
        except ValueError as exc:
            result.update(failed=True, msg="check_access: %s (use IP address literals for source and destination)"
                          % exc)
            return result
        result.update(verdict)
        result["changed"] = False
        return result
