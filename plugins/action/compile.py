# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin ``hostfw.nftables.compile``: compile the whole inventory once, on the controller.

A thin adapter: the argument spec comes from ``plugins/modules/compile.py`` (its documentation);
it gathers the hostfw variables of every inventory host (not only the play's hosts, so ``--limit``
sees the same policy world), and returns what the core's ``compiler.run`` computes.
"""

from __future__ import annotations

import time

from ansible.plugins.action import ActionBase

from ansible_collections.hostfw.nftables.plugins.modules.compile import DOCUMENTATION
from ansible_collections.hostfw.nftables.plugins.plugin_utils import argspec, compiler
from ansible_collections.hostfw.nftables.plugins.plugin_utils.controller import compile_cached, gather
from ansible_collections.hostfw.nftables.plugins.plugin_utils.errors import HostfwError

ARGUMENT_SPEC = argspec.from_documentation(DOCUMENTATION)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        started = time.perf_counter()
        try:
            hostvars, base_dir = gather(task_vars or {})
            gathered = time.perf_counter() - started
            comp = compile_cached(hostvars, base_dir)
            comp.timings["gather_vars"] = gathered
            result.update(compiler.run(comp, hostvars, args, bool(self._task.check_mode), bool(self._task.diff)))
        except HostfwError as exc:
            result.update(failed=True, msg=exc.render(with_origin=True), problems=[str(p) for p in exc.problems])
            return result
        for warning in result["warnings_hostfw"]:
            self._display.warning("hostfw: %s" % warning)
        return result
