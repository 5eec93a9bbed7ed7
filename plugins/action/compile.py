# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin ``hostfw.nftables.compile``: compile the whole inventory once, on the controller.

A thin adapter: it gathers the hostfw_* variables of every inventory host (not only the play's
hosts, so ``--limit`` sees the same policy world), calls the pure core
(``plugin_utils.compiler``), writes the requested files and returns proofs, checks and the
matrix.  Documentation: ``plugins/modules/compile.py``.
"""

from __future__ import annotations

import json
import os
import time

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.action import ActionBase

from ansible_collections.hostfw.nftables.plugins.plugin_utils import api
from ansible_collections.hostfw.nftables.plugins.plugin_utils.compiler import sha256
from ansible_collections.hostfw.nftables.plugins.plugin_utils.controller import compile_cached, gather
from ansible_collections.hostfw.nftables.plugins.plugin_utils.errors import HostfwError

ARGS = {
    "output_dir": {"type": "path"},
    "hosts": {"type": "list", "elements": "str"},
    "matrix": {"type": "bool"},
    "probes": {"type": "list", "elements": "dict"},
    "checks": {"type": "list", "elements": "dict", "default": []},
    "proof": {"type": "bool", "default": True},
    "protected_ports": {"type": "raw"},
    "return_content": {"type": "bool", "default": False},
    "host_details": {"type": "bool", "default": True},
    "fail_on_refusal": {"type": "bool", "default": False},
    "host_settings": {"type": "dict"},
}


def parse_protected(value):
    """``hostfw_protected_ports``: None = the failsafe defaults; a dict with ``inbound`` and
    ``outbound`` lists of ``tcp:22`` strings or {protocol, port}; [] = none."""
    if value is None:
        return api.DEFAULT_FAILSAFE_INBOUND, api.DEFAULT_FAILSAFE_OUTBOUND
    if value in ([], {}, "none"):
        return (), ()
    if not isinstance(value, dict) or set(value) - {"inbound", "outbound"}:
        raise AnsibleActionFail("hostfw_protected_ports must be a mapping with 'inbound' and/or 'outbound' lists, "
                                "or [] for none")
    out = []
    for key in ("inbound", "outbound"):
        entries = []
        for item in value.get(key) or []:
            if isinstance(item, str) and ":" in item:
                proto, _sep, port = item.rpartition(":")
            elif isinstance(item, dict):
                proto, port = item.get("protocol", "tcp"), item.get("port")
            else:
                proto, port = "tcp", item
            proto = str(proto).lower()
            try:
                port = int(port)
            except (TypeError, ValueError):
                port = -1
            if proto not in ("tcp", "udp") or not 0 < port < 65536:
                raise AnsibleActionFail("hostfw_protected_ports.%s: %r is not a protected port "
                                        "(use tcp:PORT or udp:PORT)" % (key, item))
            entries.append(api.FailsafeEntry(proto, port))
        out.append(tuple(entries))
    return out[0], out[1]


def protected_ports(value, verify_management_access, where=""):
    """(inbound, outbound) protected entries from ``hostfw_protected_ports`` and
    ``hostfw_verify_management_access``.  With verification off and no explicit protected ports
    the operator takes the risk of cutting access: none are protected (configured failsafe
    entries are still proven)."""
    if value is None and str(verify_management_access).lower() in ("false", "no", "0"):
        return (), ()
    try:
        return parse_protected(value)
    except AnsibleActionFail as exc:
        raise AnsibleActionFail(where + to_native(exc)) if where else exc


def write_if_changed(path, text, check_mode, diffs):
    before = None
    if os.path.exists(path):
        with open(path, "r", encoding="utf-8") as f:
            before = f.read()
    if before == text:
        return False
    if diffs is not None:
        diffs.append({"before_header": path if before is not None else "(absent)", "after_header": path,
                      "before": before or "", "after": text})
    if not check_mode:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    return True


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        _validation, args = self.validate_argument_spec(argument_spec=ARGS)
        t0 = time.perf_counter()
        hosts, base_dir = gather(task_vars)
        inventory_hosts = list(hosts)
        gathered = time.perf_counter() - t0
        try:
            comp = compile_cached(hosts, base_dir)
        except HostfwError as exc:
            result["failed"] = True
            result["msg"] = exc.render(with_origin=True)
            result["problems"] = [str(p) for p in exc.problems]
            return result
        comp.timings["gather_vars"] = gathered

        # Protected ports: this task's hostfw_protected_ports / hostfw_verify_management_access,
        # or per host from host_settings (the rollout compiles a whole batch in one task).
        settings = args.get("host_settings") or {}
        try:
            default_protected = protected_ports(task_vars.get("hostfw_protected_ports"),
                                                task_vars.get("hostfw_verify_management_access", True))
            per_host = {str(h): protected_ports((v or {}).get("protected_ports"),
                                                (v or {}).get("verify_management_access", True), "host_settings.%s." % h)
                        for h, v in settings.items()}
        except AnsibleActionFail as exc:
            result["failed"] = True
            result["msg"] = to_native(exc)
            return result

        wanted = args.get("hosts") or comp.hosts_with_rulesets()
        out_dir = args.get("output_dir")
        check_mode = bool(self._task.check_mode)
        diffs = [] if self._task.diff else None
        changed = False
        host_results = {}
        t1 = time.perf_counter()
        writing = 0.0
        for host in wanted:
            text = comp.ruleset(host)
            entry = {"node": comp.model.node_of(host), "has_ruleset": text is not None,
                     "warnings": list(comp.plan(host).warnings) if text is not None else []}
            if text is not None:
                entry["sha256"] = sha256(text)
                if args["return_content"]:
                    entry["ruleset"] = text
                if out_dir:
                    path = os.path.join(out_dir, "%s.nft" % host)
                    entry["path"] = path
                    tw = time.perf_counter()
                    changed |= write_if_changed(path, text, check_mode, diffs)
                    writing += time.perf_counter() - tw
                if args["proof"]:
                    protected_in, protected_out = per_host.get(host, default_protected)
                    entry["failsafe_proof"] = comp.failsafe_proof(host, protected_in, protected_out).as_dict()
            host_results[host] = entry
        comp.timings["compile_and_write"] = time.perf_counter() - t1
        comp.timings["write"] = writing
        comp.timings["compile"] = comp.timings["compile_and_write"] - writing

        checks = []
        for check in args["checks"]:
            try:
                res = comp.check_access(str(check["host"]), str(check["source"]), str(check["destination"]),
                                        str(check.get("protocol", "TCP")), int(check["port"]) if check.get("port") else None)
            except (KeyError, ValueError) as exc:
                result["failed"] = True
                result["msg"] = "checks: each item needs host, source, destination, protocol and port (%s)" % to_native(exc)
                return result
            res.update({k: check.get(k) for k in ("host", "source", "destination", "protocol", "port")})
            checks.append(res)

        want_matrix = args["matrix"] if args["matrix"] is not None else bool(out_dir)
        if want_matrix:
            t2 = time.perf_counter()
            matrix = comp.matrix(args["probes"] if args["probes"] else None)
            result["matrix_cells"] = len(matrix["cells"])
            if out_dir:
                changed |= write_if_changed(os.path.join(out_dir, "matrix.json"),
                                            json.dumps(matrix, indent=2, sort_keys=True) + "\n", check_mode, diffs)
                changed |= write_if_changed(os.path.join(out_dir, "matrix.md"), comp.matrix_markdown(matrix),
                                            check_mode, diffs)
            else:
                result["matrix"] = matrix
            comp.timings["matrix"] = time.perf_counter() - t2

        result["changed"] = changed
        result["hosts"] = host_results if args["host_details"] else {}
        result["refusals"] = [m for h in sorted(host_results) for m in
                              (host_results[h].get("failsafe_proof") or {}).get("messages", [])
                              if not host_results[h]["failsafe_proof"]["ok"]]
        result["written"] = sorted(os.path.basename(e["path"]) for e in host_results.values() if e.get("path"))
        result["checks"] = checks
        result["warnings_hostfw"] = comp.warnings
        for w in comp.warnings:
            self._display.warning("hostfw: %s" % w)
        result["timings"] = {k: round(v, 4) for k, v in sorted(comp.timings.items())}
        result["compiled"] = sum(1 for e in host_results.values() if e["has_ruleset"])
        result["summary"] = "%d host(s) compiled from %d inventory host(s), %d polic(ies)" % (
            sum(1 for e in host_results.values() if e["has_ruleset"]), len(inventory_hosts), len(comp.world.policies))
        if diffs:
            result["diff"] = diffs
        if args["fail_on_refusal"] and result["refusals"]:
            result["failed"] = True
            result["msg"] = "hostfw: refusing, a failsafe proof failed (nothing is applied anywhere):\n" + \
                "\n".join(result["refusals"])
        elif out_dir:
            result["msg"] = "%s; written to %s: %d table(s)%s; stage timings (s): %s" % (
                result["summary"], out_dir, len(result["written"]),
                ", matrix.json, matrix.md (%d cells)" % result["matrix_cells"] if "matrix_cells" in result else "",
                result["timings"])
        return result
