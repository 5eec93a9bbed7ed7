# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin ``hostfw.nftables.report``: the controller side of the fleet report.

A thin adapter: the argument spec comes from ``plugins/modules/report.py`` (its documentation); it
gathers the hostfw variables of every inventory host, compiles (from the compile cache), collects
each host's registered ``hostfw.nftables.nft_report`` result and writes what the core's
``plugin_utils.report`` builds.
"""

from __future__ import annotations

import json
import os

from ansible.plugins.action import ActionBase

from ansible_collections.hostfw.nftables.plugins.modules.report import DOCUMENTATION
from ansible_collections.hostfw.nftables.plugins.plugin_utils import argspec, compiler, files, report
from ansible_collections.hostfw.nftables.plugins.plugin_utils.controller import compile_cached, gather, plain
from ansible_collections.hostfw.nftables.plugins.plugin_utils.errors import HostfwError

ARGUMENT_SPEC = argspec.from_documentation(DOCUMENTATION)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        hostvars, base_dir = gather(task_vars)
        hosts = args.get("hosts") or list(task_vars.get("ansible_play_hosts_all") or sorted(hostvars))
        all_vars = task_vars.get("hostvars", {})
        results = {}
        for host in hosts:
            value = None
            if host in all_vars:
                value = all_vars[host].get(args["register"]) if hasattr(all_vars[host], "get") else None
            results[str(host)] = plain(value) if value is not None else None
        try:
            comp = compile_cached(hostvars, base_dir)
            compiler.configure_staged_counters(comp, hostvars, [h for h in hosts if h in hostvars])
            data = report.build(comp, results)
        except HostfwError as exc:
            result.update(failed=True, msg=exc.render(with_origin=True), problems=[str(p) for p in exc.problems])
            return result
        out = args["output_dir"]
        check = bool(self._task.check_mode)
        changed = files.write_if_changed(os.path.join(out, "report.json"),
                                         json.dumps(data, indent=1, sort_keys=True) + "\n", check, None)
        changed |= files.write_if_changed(os.path.join(out, "report.md"), report.to_markdown(data), check, None)
        verdicts = [s["verdict"] for s in data["staged"]]
        result.update(changed=changed, summary=data["summary"], verdicts=verdicts,
                      files=[os.path.join(out, "report.json"), os.path.join(out, "report.md")])
        result["msg"] = "hostfw report of %d host(s) in %s: %s%s" % (
            len(hosts), out, ", ".join("%s %d" % kv for kv in data["summary"].items()),
            "".join("; " + v for v in verdicts))
        return result
