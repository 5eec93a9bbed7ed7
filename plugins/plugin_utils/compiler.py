# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compile a whole inventory, once: inputs -> world -> model -> per-host tables, proofs, matrix.

This is the one entry point used by the action plugins, the benchmark and the tests::

    comp = compile_inventory(hostvars, base_dir)      # raises HostfwError on bad input
    comp.ruleset("node1")                             # nft text, or None without a HostEndpoint
    comp.failsafe_proof("node1")                      # every failsafe entry accepted first?
    comp.check_access("node1", "10.0.0.9", "10.0.0.5", "TCP", 22)
    comp.check_access("node1", "10.0.0.9", "10.0.0.5", "TCP", 22, world="pending")
    comp.matrix(probes)
    run(comp, hostvars, options)                      # what the compile action returns

The *pending* world (docs/semantics.md §3.7) is the enforced one with every staged policy
promoted: ``comp.plan(host, "pending")``, ``failsafe_proof(..., world="pending")`` and
``check_access(..., world="pending")`` answer "what if the staged policies were promoted".
``comp.set_staged_counters(host, mode)`` (``hostfw_staged_counters``) adds the shadow path that
counts the pending world's verdicts on live traffic to that host's table (render.py).

Per-host work (plan, render) is done on demand and cached; hosts whose plans are equal share the
rendered body.  ``timings`` records the seconds spent in each stage.
"""

from __future__ import annotations

import hashlib
import os
import time
from typing import Any, Dict, List, Mapping, Optional, Sequence

from ansible_collections.hostfw.nftables.plugins.plugin_utils import (
    api, candidates, errors, felix, files, matrix_html, proofs, resources, runcache, sources)
from ansible_collections.hostfw.nftables.plugins.plugin_utils import diff as matrix_diff
from ansible_collections.hostfw.nftables.plugins.plugin_utils import lint
from ansible_collections.hostfw.nftables.plugins.plugin_utils.evaluate import Evaluator
from ansible_collections.hostfw.nftables.plugins.plugin_utils.matrix import MatrixBuilder, to_markdown
from ansible_collections.hostfw.nftables.plugins.plugin_utils.model import ENFORCED, PENDING, WORLDS, HostPlan, Model
from ansible_collections.hostfw.nftables.plugins.plugin_utils.proofs import Proof
from ansible_collections.hostfw.nftables.plugins.plugin_utils.render import (
    SHADOW_COUNT, SHADOW_LOG, Renderer, shadow_directions)

# hostfw_staged_counters values -> the shadow mode of the renderer (None: no shadow path)
STAGED_COUNTERS = {"false": None, "off": None, "no": None, "true": SHADOW_COUNT, "on": SHADOW_COUNT,
                   "yes": SHADOW_COUNT, "count": SHADOW_COUNT, "log": SHADOW_LOG}


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Compilation:
    def __init__(self, world: api.World, inventory, timings: Optional[Dict[str, float]] = None):
        self.world = world
        self.inventory = inventory
        self.timings: Dict[str, float] = dict(timings or {})
        t0 = time.perf_counter()
        self.model = Model(world, inventory.nodes, inventory.interfaces, getattr(inventory, "node_labels", {}),
                           getattr(inventory, "failsafe_defaults", {}))
        self.timings["index"] = time.perf_counter() - t0
        self.renderer = Renderer(self.model)
        self.evaluator = Evaluator(self.model)
        self._plans: Dict[str, Optional[HostPlan]] = {}
        self._pending_plans: Dict[str, Optional[HostPlan]] = {}
        self._rulesets: Dict[str, Optional[str]] = {}
        self._proven: Dict[tuple, int] = {}
        # host -> shadow mode (render.SHADOW_COUNT or SHADOW_LOG): hostfw_staged_counters
        self.staged_counters: Dict[str, str] = {}
        self.matrix_attribution: Dict[tuple, List[str]] = {}

    @property
    def hosts(self) -> List[str]:
        return sorted(self.inventory.nodes)

    @property
    def warnings(self) -> List[str]:
        return list(self.world.warnings) + list(self.model.warnings)

    def plan(self, host: str, world: str = ENFORCED) -> Optional[HostPlan]:
        if world == PENDING:
            if not self.model.has_staged:
                return self.plan(host)
            if host not in self._pending_plans:
                self._pending_plans[host] = self.model.host_plan(host, pending=True)
            return self._pending_plans[host]
        if host not in self._plans:
            self._plans[host] = self.model.host_plan(host)
        return self._plans[host]

    def pending_differs(self, host: str) -> bool:
        """Whether promoting the staged policies changes this host's plan (in the classes the
        shadow path covers)."""
        plan = self.plan(host)
        if plan is None or not self.model.has_staged:
            return False
        return bool(shadow_directions(plan, self.plan(host, PENDING)))

    def set_staged_counters(self, host: str, mode: Optional[str]) -> None:
        """Render (or not, ``mode`` None) the shadow path for ``host``: ``render.SHADOW_COUNT``
        or ``render.SHADOW_LOG``.  Call before the host's ruleset is rendered."""
        if mode is None:
            self.staged_counters.pop(host, None)
        else:
            self.staged_counters[host] = mode
        self._rulesets.pop(host, None)

    def ruleset(self, host: str) -> Optional[str]:
        if host not in self._rulesets:
            plan = self.plan(host)
            if plan is None:
                self._rulesets[host] = None
            else:
                shadow = self.staged_counters.get(host) if self.model.has_staged else None
                pending = self.plan(host, PENDING) if shadow else None
                self._rulesets[host] = self.renderer.render(plan, pending, shadow)
        return self._rulesets[host]

    def hosts_with_rulesets(self) -> List[str]:
        return [h for h in self.hosts if self.plan(h) is not None]

    # -- proofs -------------------------------------------------------------------------------

    def failsafe_proof(self, host: str, protected_inbound: Sequence[api.FailsafeEntry] = (),
                       protected_outbound: Sequence[api.FailsafeEntry] = (), world: str = ENFORCED) -> Proof:
        """:func:`proofs.failsafe_proof` of one host (``world`` pending: of its pending plan).
        Hosts whose endpoints share interfaces, tiers and profiles (the model shares the tier
        tuples of endpoints alike) and Felix settings share the outcome: a proven shape is proven
        for all of them.  Failures are recomputed per host, so that messages name the host."""
        plan = self.plan(host, world)
        if plan is None:
            return proofs.failsafe_proof(self.evaluator, plan, host)
        shape = (tuple((ep.iface, id(ep.tiers), tuple(p.name for p in ep.profiles)) for ep in plan.endpoints),
                 plan.felix, tuple(protected_inbound), tuple(protected_outbound),
                 proofs.host_families(self.evaluator, plan), tuple(proofs.covered_interfaces(self.evaluator, plan)))
        proven = self._proven.get(shape)
        if proven is not None:
            return Proof(True, [], proven)
        proof = proofs.failsafe_proof(self.evaluator, plan, host, tuple(protected_inbound),
                                      tuple(protected_outbound))
        if proof.ok:
            self._proven[shape] = proof.checked
        return proof

    def check_access(self, host: str, source: str, destination: str, protocol: str, port: Optional[int],
                     iface: Optional[str] = None, world: str = ENFORCED) -> Dict[str, Any]:
        """Would ``host`` accept a new connection from ``source`` to its ``destination``:``port``?
        ``world`` pending: would it once the staged policies are promoted?"""
        if world not in WORLDS:
            raise ValueError("world %r is not one of %s" % (world, ", ".join(WORLDS)))
        result = proofs.check_access(self.evaluator, self.plan(host, world), host,
                                     self.inventory.interfaces.get(host) or {}, source, destination, protocol, port,
                                     iface)
        result["world"] = world
        return result

    # -- matrix --------------------------------------------------------------------------------

    def matrix(self, probes: Optional[Sequence[Dict]] = None) -> Dict:
        """The policy matrix; with a staged policy in the world, every cell has its pending
        verdict (``matrix_attribution`` then says which staged policies change which cell)."""
        builder = MatrixBuilder(self.model, self.inventory.hosts_of_node)
        out = builder.build(probes if probes is not None else self.inventory.probes)
        self.matrix_attribution = builder.attribution
        return out

    def matrix_markdown(self, matrix: Dict) -> str:
        return to_markdown(matrix, self.matrix_attribution if matrix.get("staged") else None)


def compile_inventory(hostvars: Mapping[str, Mapping[str, Any]], base_dir: str) -> Compilation:
    """Validate and index the whole inventory.  Raises HostfwError listing every problem."""
    t0 = time.perf_counter()
    world, inventory = sources.load_world(hostvars, base_dir)
    timings = dict(getattr(inventory, "timings", {}) or {})
    timings["load_and_validate"] = time.perf_counter() - t0
    return Compilation(world, inventory, timings)


def compile_documents(documents, nodes: Optional[Dict[str, str]] = None,
                      interfaces: Optional[Dict[str, Dict[str, Sequence[str]]]] = None,
                      probes: Optional[Sequence[Dict]] = None, staged_counters: Optional[str] = None) -> Compilation:
    """Compile raw documents directly (tests and tools): hosts are the HEP nodes.
    ``staged_counters`` (render.SHADOW_COUNT or SHADOW_LOG) renders every host's shadow path."""
    world = resources.build_world([(d, "document %d" % i) if isinstance(d, dict) else d
                                   for i, d in enumerate(documents)])
    all_nodes = dict(nodes or {})
    for hep in world.host_endpoints.values():
        all_nodes.setdefault(hep.node, hep.node)
    inv = _SimpleInventory(all_nodes, interfaces or {},
                           list(probes) if probes is not None else [dict(p) for p in sources.DEFAULT_PROBES])
    comp = Compilation(world, inv)
    if staged_counters:
        for host in all_nodes:
            comp.set_staged_counters(host, staged_counters)
    return comp


class _SimpleInventory:
    def __init__(self, nodes, interfaces, probes):
        self.nodes = nodes
        self.interfaces = interfaces
        self.probes = probes
        self.hosts_of_node = {}
        for host, node in sorted(nodes.items()):
            self.hosts_of_node.setdefault(node, []).append(host)


# ----------------------------------------------------------------------------------------------
# The compile action, as a function of the core
# ----------------------------------------------------------------------------------------------

def run(comp: Compilation, hostvars: Mapping[str, Mapping[str, Any]], options: Mapping[str, Any],
        check_mode: bool = False, diff: bool = False) -> Dict[str, Any]:
    """What ``hostfw.nftables.compile`` returns (its options and return values are documented in
    ``plugins/modules/compile.py``).  ``hostvars`` are the gathered hostfw variables of every
    inventory host (each host's ``hostfw_protected_ports`` and
    ``hostfw_verify_management_access`` decide its protected ports).  Writes the output files
    unless ``check_mode``.  Raises :class:`~errors.HostfwError` for bad per-host settings."""
    result: Dict[str, Any] = {}
    wanted = options.get("hosts") or comp.hosts_with_rulesets()
    configure_staged_counters(comp, hostvars, wanted)
    out_dir = options.get("output_dir")
    diffs: Optional[List[Dict[str, str]]] = [] if diff else None
    changed = False
    host_results: Dict[str, Dict[str, Any]] = {}
    t1 = time.perf_counter()
    writing = 0.0
    for host in wanted:
        text = comp.ruleset(host)
        plan = comp.plan(host)
        node = comp.model.node_of(host)
        settings = plan.felix if plan is not None else comp.model.felix_for(node)
        entry: Dict[str, Any] = {"node": node, "has_ruleset": text is not None,
                                 "warnings": list(plan.warnings) if plan is not None else [],
                                 "failsafe_inbound": proofs.entries_as_dicts(settings.failsafe_inbound),
                                 "failsafe_outbound": proofs.entries_as_dicts(settings.failsafe_outbound)}
        entry["file"] = files.host_file_name(host)
        if text is not None:
            entry["sha256"] = sha256(text)
            if options.get("return_content"):
                entry["ruleset"] = text
            if out_dir:
                path = os.path.join(out_dir, entry["file"])
                entry["path"] = path
                tw = time.perf_counter()
                changed |= files.write_if_changed(path, text, check_mode, diffs)
                writing += time.perf_counter() - tw
            if options.get("proof", True):
                hv = hostvars.get(host) or {}
                protected_in, protected_out = proofs.protected_ports(
                    host, hv.get("hostfw_protected_ports"), hv.get("hostfw_verify_management_access", True),
                    felix.FAILSAFE_DEFAULTS[comp.model.failsafe_defaults.get(node, "protect-hosts")])
                entry["failsafe_proof"] = comp.failsafe_proof(host, protected_in, protected_out).as_dict()
                if comp.model.has_staged:
                    # what promoting the staged policies would do to the same proof (a warning of the rollout)
                    entry["pending_failsafe_proof"] = comp.failsafe_proof(host, protected_in, protected_out,
                                                                          PENDING).as_dict()
            if comp.model.has_staged:
                entry["pending_differs"] = comp.pending_differs(host)
                entry["staged_counters"] = bool(comp.staged_counters.get(host)) and entry["pending_differs"]
        host_results[host] = entry
    comp.timings["compile_and_write"] = time.perf_counter() - t1
    comp.timings["write"] = writing
    comp.timings["compile"] = comp.timings["compile_and_write"] - writing

    if out_dir and options.get("candidates"):
        result["input_digest"] = getattr(comp, "fingerprint", None) or ""
        changed |= candidates.write(out_dir, comp.hosts, host_results, runcache.collection_version(),
                                    result["input_digest"], check_mode, diffs)

    result["checks"] = [_check(comp, i, check) for i, check in enumerate(options.get("checks") or [])]

    review = _review(comp, options, host_results, out_dir, check_mode, diffs)
    changed |= review.pop("changed")
    diff_text = review.pop("diff_text")

    want_matrix = options.get("matrix") if options.get("matrix") is not None else bool(out_dir)
    if want_matrix:
        t2 = time.perf_counter()
        matrix = comp.matrix(options.get("probes") or None)
        result["matrix_cells"] = len(matrix["cells"])
        if matrix.get("staged") is not None:
            result["matrix_pending_changes"] = sum(1 for c in matrix["cells"]
                                                   if c["pending"]["verdict"] != c["verdict"])
        if out_dir:
            text = matrix_html.json_text(matrix)
            changed |= files.write_if_changed(os.path.join(out_dir, "matrix.json"), text, check_mode, diffs)
            changed |= files.write_if_changed(os.path.join(out_dir, "matrix.md"), comp.matrix_markdown(matrix),
                                              check_mode, diffs)
            # the page embeds matrix.json byte for byte; too big for --diff output
            changed |= files.write_if_changed(os.path.join(out_dir, "matrix.html"), matrix_html.render(text, diff_text),
                                              check_mode, None)
        else:
            result["matrix"] = matrix
        comp.timings["matrix"] = time.perf_counter() - t2

    compiled = sum(1 for e in host_results.values() if e["has_ruleset"])
    result.update({
        "changed": changed,
        "hosts": host_results if options.get("host_details", True) else {},
        "refusals": [m for h in sorted(host_results) for m in (host_results[h].get("failsafe_proof") or {})
                     .get("refusals", [])],
        "written": sorted(os.path.basename(e["path"]) for e in host_results.values() if e.get("path")),
        "warnings_hostfw": comp.warnings,
        "timings": {k: round(v, 4) for k, v in sorted(comp.timings.items())},
        "compiled": compiled,
        "summary": "%d host(s) compiled from %d inventory host(s), %d polic(ies)" % (
            compiled, len(hostvars), len(comp.world.policies)),
    })
    if diffs:
        result["diff"] = diffs
    failures = review.pop("failures")
    result.update(review)
    if options.get("fail_on_refusal") and result["refusals"]:
        result["failed"] = True
        result["msg"] = "hostfw: refusing, a failsafe proof failed (nothing is applied anywhere):\n" + \
            "\n".join(result["refusals"])
    elif failures:
        result["failed"] = True
        result["msg"] = "\n".join(failures)
    elif out_dir:
        result["msg"] = "%s; written to %s: %d table(s)%s%s; stage timings (s): %s" % (
            result["summary"], out_dir, len(result["written"]),
            ", matrix.json, matrix.md, matrix.html (%d cells%s)" % (
                result["matrix_cells"], ", %d would change once the staged policies are promoted"
                % result["matrix_pending_changes"] if "matrix_pending_changes" in result else "")
            if "matrix_cells" in result else "", review.get("review_text", ""),
            result["timings"])
    return result


def staged_counters_mode(host: str, value: Any) -> Optional[str]:
    """``hostfw_staged_counters`` of one host: None (off; unset), render.SHADOW_COUNT (true) or
    render.SHADOW_LOG (``log``).  Raises HostfwError naming the host."""
    if value is None:
        return None
    text = str(value).strip().lower()
    if isinstance(value, (bool, str)) and text in STAGED_COUNTERS:
        return STAGED_COUNTERS[text]
    raise errors.HostfwError([errors.Problem(
        "Host", host, "hostfw_staged_counters", "%r is not a setting of the staged-policy counters (use true, false "
        "or log)" % (value,))])


def configure_staged_counters(comp: Compilation, hostvars: Mapping[str, Mapping[str, Any]],
                              hosts: Sequence[str]) -> None:
    """Apply each host's ``hostfw_staged_counters`` to the compilation (before rendering)."""
    for host in hosts:
        mode = staged_counters_mode(host, (hostvars.get(host) or {}).get("hostfw_staged_counters"))
        if comp.staged_counters.get(host) != mode:
            comp.set_staged_counters(host, mode)


# ----------------------------------------------------------------------------------------------
# Review: the lint and the matrix diff (docs/reviewing.md, docs/lint.md)
# ----------------------------------------------------------------------------------------------

FAIL_ON_CHANGES = ("opened", "closed")


def _review(comp: Compilation, options: Mapping[str, Any], host_results: Dict[str, Dict[str, Any]],
            out_dir: Optional[str], check_mode: bool, diffs: Optional[List[Dict[str, str]]]) -> Dict[str, Any]:
    """The lint (option ``lint``: the render playbook and the rollout's check mode turn it on) and the matrix diff against
    ``compare_to``: writes lint.json/lint.md and matrix-diff.json/.md into ``output_dir``, adds
    each host's changed cells to its entry (``matrix_changes``), and says what must fail the task
    (``lint_fail_on``, ``fail_on``) once every file is written."""
    out: Dict[str, Any] = {"changed": False, "diff_text": None, "failures": []}
    notes = []
    probes = options.get("probes") or comp.inventory.probes
    fail_on = list(options.get("fail_on") or [])
    bad = [c for c in fail_on if c not in FAIL_ON_CHANGES]
    lint_fail_on = options.get("lint_fail_on") or "error"
    if bad or lint_fail_on not in lint.FAIL_ON:
        problems = []
        if bad:
            problems.append(errors.Problem("Task", "hostfw.nftables.compile", "fail_on", "%s: not a change (use a list "
                                           "of opened and closed)" % ", ".join(map(str, bad))))
        if lint_fail_on not in lint.FAIL_ON:
            problems.append(errors.Problem("Task", "hostfw.nftables.compile", "lint_fail_on", "%r: use error, warning "
                                           "or never" % (lint_fail_on,)))
        raise errors.HostfwError(problems)
    if options.get("lint"):
        t0 = time.perf_counter()
        report = lint.run(comp, probes)
        comp.timings["lint"] = time.perf_counter() - t0
        out["lint"] = report.as_dict()
        out["lint_lines"] = [str(f) + (" [acknowledged]" if f.acknowledged else "") for f in report.findings]
        counts = report.counts()
        notes.append("lint: %d error(s), %d warning(s), %d info, %d acknowledged" % (
            counts["error"], counts["warning"], counts["info"], counts["acknowledged"]))
        if out_dir:
            out["changed"] |= files.write_if_changed(os.path.join(out_dir, "lint.json"),
                                                     matrix_html.json_text(report.as_dict()), check_mode, diffs)
            out["changed"] |= files.write_if_changed(os.path.join(out_dir, "lint.md"), lint.to_markdown(report),
                                                     check_mode, diffs)
        failing = report.failing(lint_fail_on)
        if failing:
            out["failures"].append(
                "hostfw: %d lint finding(s) at or above %s (lint_fail_on; acknowledge one with the annotation %s: "
                "CODE):\n%s" % (len(failing), lint_fail_on, lint.IGNORE_ANNOTATION, lint.failing_text(failing)))
    if options.get("compare_to"):
        t0 = time.perf_counter()
        data = matrix_diff.compare(str(options["compare_to"]), comp, probes, out_dir or "candidate",
                                   int(options.get("max_changes") or matrix_diff.DEFAULT_MAX_CHANGES))
        comp.timings["diff"] = time.perf_counter() - t0
        s = data["summary"]
        out["matrix_diff_summary"] = dict(s)
        notes.append("matrix diff against %s: %d opened, %d closed" % (data["old"], s["opened"], s["closed"]))
        data.pop("evaluated", None)
        text = matrix_html.json_text(data)
        out["diff_text"] = text
        if out_dir:
            out["changed"] |= files.write_if_changed(os.path.join(out_dir, "matrix-diff.json"), text, check_mode, diffs)
            out["changed"] |= files.write_if_changed(os.path.join(out_dir, "matrix-diff.md"),
                                                     matrix_diff.to_markdown(data), check_mode, diffs)
        else:
            out["matrix_diff"] = data
        for host, entry in host_results.items():
            node = comp.model.node_of(host)
            names = ["host/" + hep.name for hep in comp.model.heps_by_node.get(node, ())]
            entry["matrix_changes"] = matrix_diff.for_host(data, names)
        lines = matrix_diff.failing(data, fail_on)
        if lines:
            shown = lines[:50] + (["... and %d more (see matrix-diff.md)" % (len(lines) - 50)] if len(lines) > 50 else [])
            out["failures"].append("hostfw: the change %s %d cell(s) (fail_on: %s) against %s:\n%s" % (
                " and ".join(sorted({line.split(":", 1)[0] for line in lines})), len(lines), ", ".join(fail_on),
                data["old"], "\n".join(shown)))
    elif fail_on:
        raise errors.HostfwError([errors.Problem("Task", "hostfw.nftables.compile", "fail_on",
                                                 "needs compare_to (what the change is compared with)")])
    if notes:
        out["review_text"] = "; " + "; ".join(notes)
    return out


def _check(comp: Compilation, index: int, check: Mapping[str, Any]) -> Dict[str, Any]:
    """One item of the ``checks`` option; a bad item raises HostfwError naming it."""
    path = "checks[%d]" % index
    missing = [k for k in ("host", "source", "destination", "port") if check.get(k) in (None, "")]
    problem = None
    if missing:
        problem = "%s missing (each check needs host, source, destination, protocol and port)" % ", ".join(missing)
    else:
        try:
            res = comp.check_access(str(check["host"]), str(check["source"]), str(check["destination"]),
                                    str(check.get("protocol", "TCP")), int(check["port"]))
        except (KeyError, ValueError) as exc:
            problem = "%s (use IP address literals, a protocol TCP, UDP or SCTP and a port number)" % exc
    if problem:
        raise errors.HostfwError([errors.Problem("Task", "hostfw.nftables.compile", path, problem)])
    res.update({k: check.get(k) for k in ("host", "source", "destination", "protocol", "port")})
    return res


__all__ = ["Compilation", "compile_inventory", "compile_documents", "configure_staged_counters", "run", "sha256",
           "staged_counters_mode"]
