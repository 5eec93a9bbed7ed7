# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet report on a real kernel: the read-only module nft_report runs inside each host's
network namespace (real nft), reads the rendered tables after real connections, and the report
says what the tables counted: the enforced rule's hits, the staged Deny's would-denies, the
states before and after a confirmation, after a reload of the same table and after a flush."""

from __future__ import annotations

import json
import os
import sys
import time

import netlab  # noqa: E402
from worlds import doc, gnp, hep  # noqa: E402
from differential import DataplaneWorld  # noqa: E402

from ansible_collections.hostfw.nftables.plugins.plugin_utils import report  # noqa: E402
from ansible_collections.hostfw.nftables.plugins.plugin_utils.compiler import compile_documents  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLLECTIONS = os.path.join(ROOT, ".collections")


def run_module(node, tmp, candidate):
    args = {"state_dir": str(tmp / node.name / "run"), "persist_path": str(tmp / node.name / "hostfw.nft"),
            "candidate": candidate}
    proc = node.exec(["env", "PYTHONPATH=%s" % COLLECTIONS, sys.executable, "-m",
                      "ansible_collections.hostfw.nftables.plugins.modules.nft_report"],
                     input_text=json.dumps({"ANSIBLE_MODULE_ARGS": args}), check=False)
    res = json.loads(proc.stdout)
    assert not res.get("failed"), res
    return res


def confirm(tmp, name, sha, at):
    run = tmp / name / "run"
    run.mkdir(parents=True, exist_ok=True)
    (run / "confirmed.json").write_text(json.dumps({"id": "test", "sha256": sha, "at": at + 1, "applied_at": at}))


def test_report_of_real_tables_after_real_connections(tmp_path):
    docs = [hep("h1", "n1", ["10.10.0.1"]), hep("h2", "n2", ["10.10.0.2"]), doc("Tier", "t1", {"order": 10}),
            gnp("allow-8080", tier="t1", ingress=[{"action": "Allow", "protocol": "TCP", "destination": {"ports": [8080]}},
                                                  {"action": "Allow", "protocol": "UDP", "destination": {"ports": [9999]}}],
                egress=[{"action": "Allow"}]),
            doc("StagedGlobalNetworkPolicy", "t1.block-8080", {
                "tier": "t1", "order": 1, "selector": "all()",
                "ingress": [{"action": "Deny", "protocol": "TCP", "destination": {"ports": [8080]}}]})]
    comp = compile_documents(docs, staged_counters="count")
    with netlab.Lab() as lab:
        dw = DataplaneWorld(comp, lab)
        dw.build()
        loaded = time.time()
        lab.node("n1").listen(tcp=[8080])
        results = lab.probe_many([netlab.Flow("n2", "10.10.0.2", "n1", "10.10.0.1", "tcp", 8080)] * 20)
        assert all(r.allowed for r in results)
        nodes = {h: lab.node(h) for h in ("n1", "n2")}
        first = {h: run_module(n, tmp_path, comp.ruleset(h)) for h, n in nodes.items()}
        for res in first.values():
            assert res["present"] and res["sha256"] == res["candidate_sha256"] and res["confirmed"] is None
        data = report.build(comp, first)
        assert {h: e["state"] for h, e in data["hosts"].items()} == {"n1": "drifted", "n2": "drifted"}
        # the rollout's confirmation records the hash and the apply time: in sync, counters since then
        for h, res in first.items():
            confirm(tmp_path, h, res["sha256"], loaded)
        second = {h: run_module(n, tmp_path, comp.ruleset(h)) for h, n in nodes.items()}
        data = report.build(comp, second)
        assert {h: e["state"] for h, e in data["hosts"].items()} == {"n1": "in sync", "n2": "in sync"}
        assert data["hosts"]["n1"]["counters_since"] == report.when(loaded)
        rules = {r["rule"]: r for r in data["policy_rules"]}
        assert rules["t1/allow-8080 ingress[0] Allow"]["hosts"]["n1"]["packets"] >= 20
        assert "t1/allow-8080 ingress[1] Allow" in data["unused_rules"]
        block = data["staged"][0]
        assert block["rules"][0]["hosts"]["n1"]["new_connections"] >= 20
        assert block["rules"][0]["hosts"]["n1"]["allowed_today"] >= 20
        assert block["hosts"] == ["n1"] and block["hosts_counting"] == ["n1", "n2"]
        assert block["verdict"].startswith("promoting t1.block-8080 would have denied %d new connections on 1 host "
                                           "since %s" % (block["would_deny"], report.when(loaded)))
        # someone flushes the table: drifted, the counters are gone
        assert nodes["n1"].nft("flush table inet hostfw").rc == 0
        third = run_module(nodes["n1"], tmp_path, comp.ruleset("n1"))
        data = report.build(comp, {"n1": third, "n2": second["n2"]})
        assert data["hosts"]["n1"]["state"] == "drifted" and data["hosts"]["n1"]["counters_since"] is None
        assert data["staged"][0]["would_deny"] == 0
