# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin ``hostfw.nftables.compile``: compile the whole inventory once, on the controller.

A thin adapter: the argument spec comes from ``plugins/modules/compile.py`` (its documentation);
it gathers the hostfw variables of every inventory host (not only the play's hosts, so ``--limit``
sees the same policy world), and returns what the core's ``compiler.run`` computes.

With ``once_per_run`` (the rollout's compile task, once per batch) the first call of a run compiles
every host of the play and stores each host's result in the run's private temporary directory;
later batches load their own hosts' results without reading any host's variables, after checking
that no input changed (``plugin_utils.runcache`` says what is checked).  What only Ansible knows
(the run's temporary directory, the play, the inventory's identity, the variables set during the
run) is read here and handed to the core as plain values.
"""

from __future__ import annotations

import contextlib
import os
import time

from ansible import constants as C
from ansible.plugins.action import ActionBase

from ansible_collections.hostfw.nftables.plugins.modules.compile import DOCUMENTATION
from ansible_collections.hostfw.nftables.plugins.plugin_utils import argspec, candidates, compiler, runcache
from ansible_collections.hostfw.nftables.plugins.plugin_utils.controller import HOST_VARS, code_digest, compile_cached, gather
from ansible_collections.hostfw.nftables.plugins.plugin_utils.errors import HostfwError

ARGUMENT_SPEC = argspec.from_documentation(DOCUMENTATION)
try:  # what Ansible's VariableManager.get_vars calls for every host (see fewer_repeats)
    from ansible.inventory.group import Group
    from ansible.vars import manager as _vars_manager
except ImportError:  # pragma: no cover - another Ansible layout: no shortcut
    Group = _vars_manager = None


@contextlib.contextmanager
def fewer_repeats():
    """While this task (a forked worker, discarded afterwards) reads every host's variables,
    skip two repeats inside Ansible's ``VariableManager.get_vars`` that give the same result for
    every host: ``clean_facts`` of a host without facts (it lists every connection plugin to
    clean an empty dictionary: half of the time of a read) and the vars plugins' results for the
    same groups (``all`` and the host's groups, read again for every host).  Both return what
    they returned before; only the work is not repeated.  The host's own vars plugin results
    (host_vars files) are read as usual."""
    if _vars_manager is None or Group is None:
        yield
        return
    clean, from_sources, from_path = (_vars_manager.clean_facts, _vars_manager.get_vars_from_inventory_sources,
                                      _vars_manager.get_vars_from_path)
    memo = {}

    def for_groups(function, kind):
        def call(loader, where, entities, stage):
            if not entities or not all(isinstance(e, Group) for e in entities):
                return function(loader, where, entities, stage)
            key = (kind, id(loader), tuple(where) if isinstance(where, list) else where,
                   tuple(id(e) for e in entities), stage)
            if key not in memo:
                memo[key] = (function(loader, where, entities, stage), entities)  # entities kept: ids stay unique
            return memo[key][0]
        return call

    _vars_manager.clean_facts = lambda facts: {} if not facts else clean(facts)
    _vars_manager.get_vars_from_inventory_sources = for_groups(from_sources, "sources")
    _vars_manager.get_vars_from_path = for_groups(from_path, "path")
    try:
        yield
    finally:
        _vars_manager.clean_facts = clean
        _vars_manager.get_vars_from_inventory_sources = from_sources
        _vars_manager.get_vars_from_path = from_path


# options that write files or look at the whole world: not per-host results a later batch can reuse
NOT_ONCE_PER_RUN = ("output_dir", "matrix", "checks", "lint", "compare_to", "fail_on")


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        if args.get("candidate_dir"):
            return self._from_candidates(result, args, task_vars or {})
        if args.get("once_per_run"):
            return self._once_per_run(result, args, task_vars or {})
        started = time.perf_counter()
        try:
            with fewer_repeats():
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

    # -- a render's candidates -------------------------------------------------------------------

    def _from_candidates(self, result, args, task_vars):
        """The results of ``hosts`` read from a render's output directory: no variable is read and
        nothing is compiled (``plugin_utils.candidates``)."""
        given = [k for k in NOT_ONCE_PER_RUN + ("candidates",) if args.get(k) not in (None, [], False, "")]
        if given:
            result.update(failed=True, msg="hostfw.nftables.compile: candidate_dir returns per-host results only; it "
                          "does not take %s" % ", ".join(given))
            return result
        started = time.perf_counter()
        play_hosts = [str(h) for h in (task_vars.get("ansible_play_hosts_all") or [])]
        wanted = [str(h) for h in (args.get("hosts") or play_hosts)]
        version = runcache.collection_version()
        # the first batch checks the candidates of every host of the play, so that a problem stops the
        # rollout before any host changed; later batches check their own hosts again
        marker = None
        cache, key, dummy = self._run_cache(task_vars, {"candidate_dir": args["candidate_dir"],
                                                        "candidate_digest": args.get("candidate_digest")}, play_hosts)
        if cache is not None:
            marker = os.path.join(cache.directory, key + ".candidates-checked")
        problems = []
        if marker is None or not os.path.exists(marker):
            dummy, problems, dummy = candidates.read(args["candidate_dir"], play_hosts, version,
                                                     args.get("candidate_digest"))
            if not problems and marker is not None:
                with open(marker, "w", encoding="utf-8"):
                    pass
        entries, more, index = candidates.read(args["candidate_dir"], [] if problems else wanted, version,
                                               args.get("candidate_digest"), bool(args.get("return_content")))
        problems = problems or more
        if problems:
            result.update(failed=True, msg="hostfw: refusing the candidates, nothing was changed on any host: " +
                          " | ".join(problems), problems=problems)
            return result
        meta = {"warnings_hostfw": [], "inventory_hosts": index.get("hosts", 0), "policies": 0}
        self._finish(result, args, wanted, entries, meta, "off: the candidates come from %s" % args["candidate_dir"], 0,
                     {"load_candidates": time.perf_counter() - started})
        result["summary"] = "%d host(s) of %d taken from the render in %s (input digest %s)" % (
            result["compiled"], index.get("hosts", 0), args["candidate_dir"], str(index.get("input_digest"))[:12])
        result["input_digest"] = index.get("input_digest")
        return result

    # -- once per run ----------------------------------------------------------------------------

    def _once_per_run(self, result, args, task_vars):
        given = [k for k in NOT_ONCE_PER_RUN if args.get(k) not in (None, [], False, "")]
        if given:
            result.update(failed=True, msg="hostfw.nftables.compile: once_per_run returns per-host results only; "
                          "it does not take %s (use a separate compile task for them)" % ", ".join(given))
            return result
        started = time.perf_counter()
        play_hosts = [str(h) for h in (task_vars.get("ansible_play_hosts_all") or
                                       task_vars.get("groups", {}).get("all", []))]
        wanted = [str(h) for h in (args.get("hosts") or play_hosts)]
        options = {k: v for k, v in args.items() if k not in ("hosts", "once_per_run")}
        cache, key, why_not = self._run_cache(task_vars, options, play_hosts)
        state = "stored"
        if cache is not None:
            meta = cache.meta(key)
            if meta is not None:
                signature = self._signature(task_vars, meta["patterns"], meta["base_dir"])
                if signature is not None and signature == meta["signature"]:
                    entries = cache.load(key, wanted)
                    if entries is not None:
                        return self._finish(result, args, wanted, entries, meta, "served", 0,
                                            {"load_run_cache": time.perf_counter() - started})
                state = "stored again: an input changed since the first batch"
        report = {}
        try:
            with fewer_repeats():
                hostvars, base_dir = gather(task_vars, report)
            gathered = time.perf_counter() - started
            if report.get("templates"):
                cache = None
                more = len(report["templates"]) - 3
                why_not = "; ".join(report["templates"][:3]) + (" (and %d more)" % more if more > 0 else "")
            patterns = runcache.manifest_patterns(hostvars)
            # taken before the manifests are read: a file written while compiling is seen as changed later
            signature = self._signature(task_vars, patterns, base_dir) if cache is not None else None
            if cache is not None and signature is None:
                cache, why_not = None, "Ansible's inventory and variable objects are not readable"
            comp = compile_cached(hostvars, base_dir)
            comp.timings["gather_vars"] = gathered
            compile_hosts = wanted if cache is None else play_hosts + [h for h in wanted if h not in play_hosts]
            full = compiler.run(comp, hostvars, dict(options, hosts=compile_hosts),
                                bool(self._task.check_mode), bool(self._task.diff))
        except HostfwError as exc:
            result.update(failed=True, msg=exc.render(with_origin=True), problems=[str(p) for p in exc.problems])
            return result
        meta = {"patterns": patterns, "base_dir": base_dir, "signature": signature,
                "warnings_hostfw": full["warnings_hostfw"], "inventory_hosts": len(hostvars),
                "policies": len(comp.world.policies)}
        if cache is None:
            state = "off: %s" % why_not
        elif not cache.store(key, meta, full["hosts"]):
            state = "off: the run's cache directory could not be written"
        return self._finish(result, args, wanted, full["hosts"], meta, state, report.get("read", 0), full["timings"])

    def _finish(self, result, args, wanted, entries, meta, state, read, timings):
        hosts = {h: entries[h] for h in wanted if h in entries}
        compiled = sum(1 for e in hosts.values() if e.get("has_ruleset"))
        result.update({
            "changed": False,
            "hosts": hosts if args.get("host_details", True) else {},
            "refusals": [m for h in sorted(hosts) for m in (hosts[h].get("failsafe_proof") or {}).get("refusals", [])],
            "written": [],
            "warnings_hostfw": list(meta["warnings_hostfw"]),
            "timings": {k: round(v, 4) for k, v in sorted(timings.items())},
            "compiled": compiled,
            "summary": "%d host(s) compiled from %d inventory host(s), %d polic(ies)" % (
                compiled, meta["inventory_hosts"], meta["policies"]),
            "checks": [],
            "run_cache": state,
            "vars_read": read,
        })
        if args.get("fail_on_refusal") and result["refusals"]:
            result["failed"] = True
            result["msg"] = "hostfw: refusing, a failsafe proof failed (nothing is applied anywhere):\n" + \
                "\n".join(result["refusals"])
        for warning in result["warnings_hostfw"]:
            self._display.warning("hostfw: %s" % warning)
        return result

    def _run_cache(self, task_vars, options, play_hosts):
        """(RunCache, entry key, None) or (None, None, why there is none)."""
        directory = runcache.private_directory(getattr(C, "DEFAULT_LOCAL_TMP", None))
        if directory is None:
            return None, None, "no private per-run temporary directory (DEFAULT_LOCAL_TMP)"
        play = None
        node = self._task
        for dummy in range(64):
            node = getattr(node, "_parent", None)
            if node is None:
                break
            found = getattr(node, "_play", None)
            if found is not None:
                play = getattr(found, "_uuid", None)
                break
        if not play:
            return None, None, "the task's play is unknown"
        base_dir = task_vars.get("inventory_dir") or task_vars.get("playbook_dir") or ""
        key = runcache.digest(runcache.entry_key_parts(
            play, options, code_digest(), str(base_dir), bool(self._task.check_mode), bool(self._task.diff), play_hosts))
        return runcache.RunCache(directory), key, None

    @staticmethod
    def _signature(task_vars, patterns, base_dir):
        """What must be unchanged for a stored entry to be served (``runcache`` module docstring),
        or None when Ansible's objects do not offer it (then nothing is reused)."""
        hostvars = task_vars.get("hostvars")
        inventory = getattr(hostvars, "_inventory", None)
        manager = getattr(hostvars, "_variable_manager", None)
        hosts = getattr(inventory, "hosts", None)
        if not isinstance(hosts, dict) or manager is None:
            return None
        try:
            groups = task_vars.get("groups") or {}
            ident = runcache.digest([[str(n), str(getattr(h, "_uuid", id(h)))] for n, h in hosts.items()] +
                                    [len(getattr(inventory, "_cached_dynamic_hosts", ()) or ()),
                                     {str(g): [str(h) for h in members] for g, members in groups.items()}])
            facts = getattr(manager, "_fact_cache", None)
            stores = [("set_fact", getattr(manager, "_nonpersistent_fact_cache", {})),
                      ("include_vars", getattr(manager, "_vars_cache", {}))]
            if facts is not None:
                stores.append(("facts", {h: facts.get(h) for h in facts.keys()}))
            runtime = runcache.runtime_digest(stores, HOST_VARS)
        except Exception:  # pylint: disable=broad-except
            return None
        return runcache.inputs_signature(runcache.manifest_signature(patterns, base_dir), ident, runtime)
