# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet report (plugin_utils/report.py) from nft_report results: host states, rule hits,
unused rules, the staged policies' counters and verdict lines, report.md."""

from __future__ import annotations

import os
import sys

from ansible_collections.hostfw.nftables.plugins.plugin_utils import report
from ansible_collections.hostfw.nftables.plugins.plugin_utils.compiler import compile_documents

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.abspath(os.path.join(HERE, "..", "..", "..")))
from worlds import doc, gnp, hep  # noqa: E402 pylint: disable=wrong-import-position

SHA = {k: k * 64 for k in "abcdef"}
T0 = 1764669600.0  # 2025-12-02T10:00:00Z


def world():
    return [hep("h1", "n1", ["10.10.0.1"]), hep("h2", "n2", ["10.10.0.2"]), hep("h3", "n3", ["10.10.0.3"]),
            doc("Tier", "t1", {"order": 10}),
            gnp("allow", tier="t1", ingress=[{"action": "Allow", "protocol": "TCP", "destination": {"ports": [80, 8080]}},
                                             {"action": "Allow", "protocol": "UDP"}],
                egress=[{"action": "Allow"}]),
            doc("StagedGlobalNetworkPolicy", "t1.block-8080", {
                "tier": "t1", "order": 1, "selector": "all()",
                "ingress": [{"action": "Deny", "protocol": "TCP", "destination": {"ports": [8080]}}]}),
            doc("StagedGlobalNetworkPolicy", "allow", {"tier": "t1", "stagedAction": "Learn"})]


def result(sha, confirmed=None, candidate=None, counters=None, since=T0, persisted=None):
    return {"changed": False, "present": sha is not None, "sha256": sha, "candidate_sha256": candidate,
            "confirmed": {"sha256": confirmed, "at": since + 5, "applied_at": since} if confirmed else None,
            "persisted_sha256": persisted, "counters": counters or {}, "rules": 40, "chains": 20,
            "counters_since": since if confirmed == sha and sha else None,
            "counters_since_source": "applied" if confirmed == sha and sha else "unknown", "now": since + 3600,
            "nft_version": "nftables v1.0.6"}


BLOCK_B = "hostfw-pending:b t1/staged:t1.block-8080 ingress[0] Deny"
BLOCK_A = "hostfw-pending:a t1/staged:t1.block-8080 ingress[0] Deny"


def test_states_hashes_and_since():
    comp = compile_documents(world() + [hep("h4", "n4", ["10.10.0.4"]), hep("h5", "n5", ["10.10.0.5"])])
    results = {
        "n1": result(SHA["a"], confirmed=SHA["a"], candidate=SHA["a"]),
        "n2": result(SHA["b"], confirmed=SHA["a"], candidate=SHA["a"]),
        "n3": result(SHA["a"], confirmed=SHA["a"], candidate=SHA["c"]),
        "n4": result(None, persisted=SHA["d"]),
        "n5": result(None),
        "gone": None,
    }
    data = report.build(comp, results, T0 + 7200)
    states = {h: e["state"] for h, e in data["hosts"].items()}
    assert states == {"n1": "in sync", "n2": "drifted", "n3": "pending change", "n4": "missing",
                      "n5": "not rolled out", "gone": "unreachable"}
    assert data["hosts"]["n1"]["counters_since"] == "2025-12-02T10:00:00Z"
    assert data["hosts"]["n2"]["why"] == "the running table (sha256 bbbbbbbbbbbb) is not the last confirmed one (aaaaaaaaaaaa)"
    assert data["summary"] == {"in sync": 1, "pending change": 1, "drifted": 1, "missing": 1, "not rolled out": 1,
                               "unreachable": 1}
    assert data["generated_at"] == "2025-12-02T12:00:00Z"
    assert report.host_state({"failed": True, "msg": "nft: not found"}, True) == ("read failed", "nft: not found")
    assert report.host_state(result(None), False)[0] == "no ruleset"


def test_rule_hits_unused_rules_and_the_staged_verdict():
    comp = compile_documents(world(), staged_counters="count")
    c1 = {"t1/allow ingress[0] Allow": [1204, 72240], "t1/allow ingress[1] Allow": [0, 0],
          "t1/allow egress[0] Allow": [7, 420], "failsafe inbound": [3, 180],
          BLOCK_B: [1200, 72000], BLOCK_A: [1100, 66000],
          "hostfw-pending:b t1/allow ingress[0] Allow": [4, 240], "hostfw-pending:a t1/allow ingress[0] Allow": [4, 240]}
    c2 = {"t1/allow ingress[0] Allow": [4, 240], "t1/allow ingress[1] Allow": [0, 0], BLOCK_B: [4, 240],
          BLOCK_A: [4, 240]}
    results = {"n1": result(SHA["a"], SHA["a"], SHA["a"], c1, since=T0),
               "n2": result(SHA["b"], SHA["b"], SHA["b"], c2, since=T0 + 60),
               "n3": result(SHA["c"], SHA["c"], SHA["c"], {"t1/allow ingress[1] Allow": [0, 0]})}
    data = report.build(comp, results, T0 + 7200)
    rules = {r["rule"]: r for r in data["policy_rules"]}
    assert rules["t1/allow ingress[0] Allow"]["packets"] == 1208 and rules["t1/allow ingress[0] Allow"]["bytes"] == 72480
    assert rules["t1/allow ingress[0] Allow"]["hosts"] == {"n1": {"packets": 1204, "bytes": 72240},
                                                           "n2": {"packets": 4, "bytes": 240}}
    assert data["unused_rules"] == ["t1/allow ingress[1] Allow"]
    assert data["hosts"]["n1"]["other_counters"] == {"failsafe inbound": {"packets": 3, "bytes": 180}}
    block = next(s for s in data["staged"] if s["name"] == "t1.block-8080")
    assert block["rules"][0]["hosts"] == {"n1": {"new_connections": 1200, "allowed_today": 1100},
                                          "n2": {"new_connections": 4, "allowed_today": 4}}
    assert block["verdict"] == ("promoting t1.block-8080 would have denied 1,204 new connections on 2 hosts since "
                                "2025-12-02T10:00:00Z (1,104 of them allowed today); 2 hosts count it")
    learn = next(s for s in data["staged"] if s["name"] == "allow")
    assert learn["verdict"] == "allow is staged with stagedAction Learn: promoting it changes nothing"
    md = report.to_markdown(data)
    assert "- **promoting t1.block-8080 would have denied 1,204 new connections" in md
    assert "| t1.block-8080 | t1/staged:t1.block-8080 ingress[0] Deny | 1,204 | 1,104 | n1 (1,200), n2 (4) |" in md
    assert "| t1/allow ingress[0] Allow | 1,208 | 72,480 | n1 1,204, n2 4 |" in md
    assert "- t1/allow ingress[1] Allow" in md


def test_a_delete_is_credited_with_the_denies_it_causes_and_hashed_counters_resolve():
    docs = world()[:5] + [doc("StagedGlobalNetworkPolicy", "allow", {"tier": "t1", "stagedAction": "Delete"})]
    comp = compile_documents(docs, staged_counters="count")
    counters = {"hostfw-pending:b default-deny ingress": [20, 1200], "hostfw-pending:a default-deny ingress": [20, 1200],
                "hostfw-pending:a #%s whatever" % report.pending_key_hash("failsafe ingress"): [2, 120]}
    data = report.build(comp, {"n1": result(SHA["a"], SHA["a"], SHA["a"], counters)}, T0)
    entry = data["staged"][0]
    assert entry["attributed"] == [{"point": "default-deny ingress", "host": "n1", "new_connections": 20,
                                    "allowed_today": 20}]
    assert entry["verdict"].startswith("promoting allow would have denied 20 new connections on 1 host since")
    assert data["combined"] == []


def test_no_host_counts_a_staged_policy_without_the_shadow_path():
    comp = compile_documents(world())
    data = report.build(comp, {"n1": result(SHA["a"], SHA["a"], SHA["a"], {})}, T0)
    block = next(s for s in data["staged"] if s["name"] == "t1.block-8080")
    assert block["verdict"].startswith("no host counts t1.block-8080")


def test_the_end_of_a_tier_counts_for_the_staged_policies_that_can_send_a_connection_there():
    """A staged policy added to a tier that applies today cannot send a connection to the tier's end:
    that count belongs to a Delete of the tier's policy (molecule scenario staged), to a new
    version that replaces an enforced one, and to a staged policy that makes its tier apply."""
    eot = {"hostfw-pending:b end-of-tier t1 ingress": [3, 180], "hostfw-pending:a end-of-tier t1 ingress": [3, 180],
           "hostfw-pending:b end-of-tier t2 ingress": [5, 300], "hostfw-pending:a end-of-tier t2 ingress": [5, 300]}
    docs = world()[:6] + [
        doc("StagedGlobalNetworkPolicy", "allow", {"tier": "t1", "stagedAction": "Delete"}),
        doc("GlobalNetworkPolicy", "web", {"tier": "t1", "order": 50, "selector": "all()",
                                           "ingress": [{"action": "Allow", "protocol": "TCP",
                                                        "destination": {"ports": [443]}}]}),
        doc("Tier", "t2", {"order": 20}),
        doc("StagedGlobalNetworkPolicy", "t2.only-ssh", {"tier": "t2", "selector": "all()", "ingress": [
            {"action": "Allow", "protocol": "TCP", "destination": {"ports": [22]}}]}),
        doc("StagedGlobalNetworkPolicy", "web", {"tier": "t1", "order": 50, "selector": "all()",
                                                 "ingress": [{"action": "Allow", "protocol": "TCP",
                                                              "destination": {"ports": [8443]}}]})]
    comp = compile_documents(docs, staged_counters="count")
    data = report.build(comp, {"n1": result(SHA["a"], SHA["a"], SHA["a"], eot)}, T0)
    points = {s["name"]: sorted(a["point"] for a in s["attributed"]) for s in data["staged"]}
    assert points == {"allow": ["end-of-tier t1 ingress"],  # Delete of a policy of t1
                      "t1.block-8080": [],  # added to t1, which applies today
                      "t2.only-ssh": ["end-of-tier t2 ingress"],  # makes t2 apply
                      "web": ["end-of-tier t1 ingress"]}  # replaces the enforced web
    block = next(s for s in data["staged"] if s["name"] == "t1.block-8080")
    assert block["would_deny_allowed_today"] == 0
