# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin ``hostfw.nftables.nft_report``: compile the host's candidate on the controller, then
run the read-only module of the same name on the host with it.

Unless the task sets ``candidate``, the candidate is what the rollout would stage for the host
(the compile cache makes this one load of the validated world per host, ``hostfw_staged_counters``
included), so the module can hash it with the host's own nft and the report can say "pending
change".  The module then runs as any module does (one task per host).
"""

from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.hostfw.nftables.plugins.plugin_utils import compiler
from ansible_collections.hostfw.nftables.plugins.plugin_utils.controller import compile_cached, gather
from ansible_collections.hostfw.nftables.plugins.plugin_utils.errors import HostfwError


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        if "candidate" not in args:
            host = task_vars.get("inventory_hostname")
            hostvars, base_dir = gather(task_vars)
            try:
                comp = compile_cached(hostvars, base_dir)
                compiler.configure_staged_counters(comp, hostvars, [host])
                args["candidate"] = (comp.ruleset(host) or "") if host in comp.inventory.nodes else ""
            except HostfwError as exc:
                result.update(failed=True, msg=exc.render(with_origin=True), problems=[str(p) for p in exc.problems])
                return result
            result["candidate_compiled"] = bool(args["candidate"])
        result.update(self._execute_module(module_name="hostfw.nftables.nft_report", module_args=args,
                                           task_vars=task_vars))
        return result
