# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Felix's functional tests, translated: hostfw must give Felix's verdicts on real connections.

Each case of felix_fv_cases.py (one Felix ``It``/``Entry``, or one step of one) is compiled with
``compile_documents``, every host's rendered table is loaded into the host's namespace of a small
cluster (hosts, pods behind ``cali*`` veths, outside machines, service DNATs: tools/netlab/cluster.py),
and the connections Felix's test checks are made for real (TCP, UDP, ICMP echo, raw IP; IPv4 and,
where both ends have it, IPv6): ``test_felix_case[<case>]``.  Along the way, every connection the
evaluator can judge is compared with the kernel (``test_zz_evaluator_agrees_with_the_kernel``) and
with Felix's verdict (``test_zz_evaluator_gives_felix_verdicts``).  ``HOSTFW_FELIX_FV_REPORT=<path>`` writes every
connection with Felix's, the kernel's and the evaluator's verdicts as JSON.  The case list, with what
is left out and why, is docs/felix-fv-coverage.md.
"""

from __future__ import annotations

import json
import os
import re
import time
from typing import Dict, List, Optional, Tuple

import pytest

import netlab
from cluster import ClusterWorld, Disagreement
from differential import Expectation
from felix_fv_cases import LABS, Case, Conn, all_cases

from ansible_collections.hostfw.nftables.plugins.plugin_utils.compiler import compile_documents

pytestmark = pytest.mark.dataplane

CASES = {c.id: c for c in all_cases()}
# case id -> [(connection, flow, kernel result, evaluator answer or None)]
RESULTS: Dict[str, List[Tuple[Conn, netlab.Flow, netlab.ProbeResult, Optional[Expectation]]]] = {}
DISAGREEMENTS: List[Disagreement] = []
STATS = {"flows": 0, "answered": 0, "cases": 0, "seconds": 0.0}

REPORT_ENV = "HOSTFW_FELIX_FV_REPORT"  # a path: write every case's connections and verdicts there as JSON


@pytest.fixture(scope="module")
def clusters(netlab_available):  # pylint: disable=unused-argument
    """The two labs of felix_fv_cases.LABS, each built on first use and kept for the module."""
    built: Dict[str, ClusterWorld] = {}
    labs: List[netlab.Lab] = []

    def get(name: str) -> ClusterWorld:
        if name not in built:
            spec = LABS[name]
            lab = netlab.Lab()
            labs.append(lab)
            world = ClusterWorld(lab, spec["hosts"], spec["pods"], spec["outside"]).build()
            for _name, (host, hook, addrs, pod) in spec["services"].items():
                for addr in addrs.values():
                    target = next((a for a in spec["pods"][pod][1] if (":" in a) == (":" in addr)), None)
                    if target is not None:
                        lab.node(host).add_dnat(addr, 8055, target, hooks=[hook])
            for (pod, port), host in spec["nodeports"].items():
                for addr in spec["pods"][pod][1]:
                    lab.node(host).add_dnat(addr, port, addr, 8055, hooks=["prerouting"])
            built[name] = world
        return built[name]

    yield get
    for lab in labs:
        lab.close()


def flows_of(case: Case, conn: Conn) -> List[netlab.Flow]:
    spec = LABS[case.lab]
    addrs = {}
    addrs.update(spec["hosts"])
    addrs.update({n: a for n, (_h, a) in spec["pods"].items()})
    addrs.update(spec["outside"])
    out = []
    for fam in conn.families:
        def pick(items):
            return next((a for a in items if (":" in a) == (fam == 6)), None)
        src_ip = pick(addrs[conn.src])
        if conn.via is not None:
            dst_ip = spec["services"][conn.via][2].get(fam)
        else:
            dst_ip = pick(addrs[conn.dst])
        if src_ip is None or dst_ip is None:
            continue
        out.append(netlab.Flow(conn.src, src_ip, conn.dst, dst_ip, conn.proto, conn.port, ip_proto=conn.ip_proto))
    if not out:
        raise AssertionError("case %s: connection %s has no flow in lab %s" % (case.id, conn.label(), case.lab))
    return out


def run_case(case: Case, world: ClusterWorld):
    """Compile, load, probe (phase by phase), compare with the evaluator; cached per case."""
    if case.id in RESULTS:
        return RESULTS[case.id]
    started = time.monotonic()
    docs = case.docs(world)
    comp = compile_documents(docs, nodes={h: h for h in world.hosts}, interfaces=world.interfaces())
    for host in world.hosts:
        world.lab.node(host).set_forwarding(case.forwarding)
    try:
        world.load(comp, case.extra_tables)
        items = [(conn, flow) for conn in case.conns for flow in flows_of(case, conn)]
        results: List = [None] * len(items)
        for phase in sorted({conn.phase for conn, _flow in items}):
            idx = [i for i, (conn, _flow) in enumerate(items) if conn.phase == phase]
            for i, res in zip(idx, world.lab.probe_many([items[i][1] for i in idx])):
                results[i] = res
        flows = [f for _c, f in items]
        disagreements, answers = world.compare(flows, results, world=case.id)
    finally:
        if not case.forwarding:
            for host in world.hosts:
                world.lab.node(host).set_forwarding(True)
    DISAGREEMENTS.extend(disagreements)
    STATS["flows"] += len(flows)
    STATS["answered"] += sum(1 for a in answers if a is not None)
    STATS["cases"] += 1
    STATS["seconds"] += time.monotonic() - started
    RESULTS[case.id] = [(c, f, r, a) for (c, f), r, a in zip(items, results, answers)]
    return RESULTS[case.id]


@pytest.mark.parametrize("case_id", sorted(CASES))
def test_felix_case(clusters, case_id):  # pylint: disable=redefined-outer-name
    case = CASES[case_id]
    outcome = run_case(case, clusters(case.lab))
    assert outcome, "case %s has no connection" % case_id
    wrong = ["%s  [%s]  kernel: %s" % (c.label(), f, r) for c, f, r, _a in outcome if r.allowed != c.allowed]
    assert not wrong, "%s\nFelix: %s\n%s" % (case_id, case.felix, "\n".join(wrong))


def test_a_pod_is_plumbed_like_calico(clusters):  # pylint: disable=redefined-outer-name
    """The lab's pods are routed as Calico's CNI plugin does it (the cases rely on it)."""
    world = clusters("two")
    w0 = world.lab.node("w0")
    n0 = world.lab.node("n0")
    routes = w0.exec(["ip", "route"]).stdout + w0.exec(["ip", "-6", "route"]).stdout
    assert "default via 169.254.1.1 dev eth0" in routes
    assert "default via fe80::ecee:eeff:feee:eeee dev eth0" in routes
    assert "10.65.0.2/32" in w0.exec(["ip", "-4", "addr", "show", "eth0"]).stdout
    cali = w0.host_ifname
    assert cali.startswith("cali") and len(cali) == 15
    assert n0.exec(["cat", "/proc/sys/net/ipv4/conf/%s/proxy_arp" % cali]).stdout.strip() == "1"
    assert n0.exec(["cat", "/proc/sys/net/ipv6/conf/%s/proxy_ndp" % cali]).stdout.strip() == "1"
    assert "10.65.0.2 dev %s" % cali in n0.exec(["ip", "route"]).stdout
    assert "10.65.0.2 via 10.10.0.1 dev eth0 onlink" in world.lab.node("n1").exec(["ip", "route"]).stdout
    assert n0.forwarding()


def test_coverage_doc_lists_every_case():
    """docs/felix-fv-coverage.md names every case (and no case that does not exist)."""
    path = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "felix-fv-coverage.md")
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    missing = [c for c in CASES if "`[%s]`" % c not in text]
    assert not missing, "not in docs/felix-fv-coverage.md: %s" % ", ".join(missing)
    named = set(re.findall(r"`\[([a-z0-9-]+)\]`", text))
    unknown = sorted(named - set(CASES))
    assert not unknown, "docs/felix-fv-coverage.md names cases that do not exist: %s" % ", ".join(unknown)


def _ran():
    if not STATS["cases"]:
        pytest.skip("run together with the Felix cases above")


def test_zz_evaluator_agrees_with_the_kernel():
    """Every connection the evaluator can judge, over all cases run above: the kernel must agree."""
    _ran()
    print("\n%d cases, %d connections (%.1f s); the evaluator answered %d and disagreed with the kernel on %d" % (
        STATS["cases"], STATS["flows"], STATS["seconds"], STATS["answered"], len(DISAGREEMENTS)))
    for d in DISAGREEMENTS:
        print("  " + str(d))
    _write_report()
    assert STATS["answered"] >= STATS["flows"] // 2, STATS
    assert not DISAGREEMENTS, "\n".join(str(d) for d in DISAGREEMENTS)


def test_zz_evaluator_gives_felix_verdicts():
    """Where the evaluator answers, it must give Felix's verdict too."""
    _ran()
    wrong = []
    for case_id, outcome in RESULTS.items():
        for conn, flow, _res, ans in outcome:
            if ans is None or ans.allowed == conn.allowed:
                continue
            verdict = "allow" if ans.allowed else "deny"
            line = "[%s] %s [%s]: evaluator %s (%s)" % (case_id, conn.label(), flow, verdict, ans.reason)
            wrong.append(line)
    assert not wrong, "\n".join(wrong)


def _write_report():
    path = os.environ.get(REPORT_ENV)
    if not path:
        return
    cases = []
    for case_id, outcome in RESULTS.items():
        case = CASES[case_id]
        cases.append({"id": case_id, "felix": case.felix, "origin": case.origin, "lab": case.lab, "connections": [
            {"conn": c.label(), "flow": str(f), "felix": "allow" if c.allowed else "deny",
             "kernel": "%s (%s)" % (r.verdict, r.detail),
             "evaluator": None if a is None else "%s: %s" % ("allow" if a.allowed else "deny", a.reason)}
            for c, f, r, a in outcome]})
    with open(path, "w", encoding="utf-8") as fh:
        json.dump({"stats": STATS, "disagreements": [str(d) for d in DISAGREEMENTS], "cases": cases}, fh, indent=1)
