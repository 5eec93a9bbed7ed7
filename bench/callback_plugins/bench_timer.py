# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark callback: when each task starts, and the stage timings of the compile action.

Enabled by bench/run.py with ANSIBLE_CALLBACK_PLUGINS=bench/callback_plugins and
ANSIBLE_CALLBACKS_ENABLED=bench_timer; writes JSON to $BENCH_TIMER_FILE at the end of the run:
``{"loaded": t, "playbook_start": t, "tasks": [{"name", "start"}], "end": t,
"compile": {"timings", "summary", "hosts_with_ruleset"}}`` (t = seconds since the epoch).
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: bench_timer
type: aggregate
short_description: hostfw benchmark timings
description:
  - Records the wall-clock start of every task and the C(timings) returned by hostfw.nftables.compile,
    and writes them as JSON to the file named by the environment variable C(BENCH_TIMER_FILE).
requirements:
  - enable in configuration
"""

import json
import os
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_timer"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.record = {"loaded": time.time(), "tasks": [], "compile": None, "compiles": []}

    def v2_playbook_on_start(self, playbook):
        self.record["playbook_start"] = time.time()

    def v2_playbook_on_task_start(self, task, is_conditional):
        self.record["tasks"].append({"name": task.get_name(), "start": time.time()})

    def v2_runner_on_ok(self, result):
        res = result._result  # pylint: disable=protected-access
        if isinstance(res, dict) and "timings" in res:
            # every compile call (bench/run.py --batches: one per serial batch)
            self.record["compiles"].append({"end": time.time(), "timings": dict(res["timings"]),
                                            "run_cache": res.get("run_cache"), "vars_read": res.get("vars_read"),
                                            "hosts": len(res.get("hosts") or {})})
        if isinstance(res, dict) and "timings" in res and self.record["compile"] is None:
            hosts = res.get("hosts") or {}
            compiled = res.get("compiled")
            if compiled is None:  # older compile actions: only the per-host dict
                compiled = sum(1 for e in hosts.values() if e.get("has_ruleset"))
            refusals = res.get("refusals")
            if refusals is None:
                refusals = [h for h, e in hosts.items() if not (e.get("failsafe_proof") or {"ok": True}).get("ok")]
            self.record["compile"] = {
                "timings": dict(res["timings"]),
                "summary": res.get("summary"),
                "hosts_with_ruleset": compiled,
                "proofs_failed": len(refusals),
                "written": len(res.get("written") or []),
                "matrix_cells": res.get("matrix_cells"),
                "end": time.time(),
            }

    def v2_playbook_on_stats(self, stats):
        self.record["end"] = time.time()
        path = os.environ.get("BENCH_TIMER_FILE")
        if path:
            with open(path, "w", encoding="utf-8") as f:
                json.dump(self.record, f, indent=1, sort_keys=True)
