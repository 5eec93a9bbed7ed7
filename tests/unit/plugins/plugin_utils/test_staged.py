# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Staged policies (docs/semantics.md §3.7): the pending world, pending verdicts in the matrix and
check_access, the pending failsafe proof, and the shadow path's text (its behaviour on the wire
is in tests/dataplane/test_staged.py)."""

from __future__ import annotations

import json
import os
import re
import sys

import pytest
from hypothesis import HealthCheck, given, settings

from ansible_collections.hostfw.nftables.plugins.plugin_utils import compiler, diff, errors, lint, matrix_html, render
from ansible_collections.hostfw.nftables.plugins.plugin_utils.compiler import compile_documents
from ansible_collections.hostfw.nftables.plugins.plugin_utils.matrix import to_markdown

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.abspath(os.path.join(HERE, "..", "..", "..")))
sys.path.insert(0, HERE)  # test_nft_compat (ansible-test units does not put the test's directory on the path)
from worlds import doc, gnp, hep, rich_world, worlds  # noqa: E402 pylint: disable=wrong-import-position
from test_nft_compat import problems  # noqa: E402 pylint: disable=wrong-import-position

H1 = ["10.10.0.1"]
H2 = ["10.10.0.2"]


def base(*extra):
    return [hep("h1", "n1", H1), hep("h2", "n2", H2, labels={"role": "db"}), doc("Tier", "t1", {"order": 10}),
            gnp("allow-web", tier="t1", selector="all()",
                ingress=[{"action": "Allow", "protocol": "TCP", "destination": {"ports": [80, 8080]}}],
                egress=[{"action": "Allow"}])] + list(extra)


def staged(name, **spec):
    if spec.get("stagedAction") != "Delete":
        spec.setdefault("selector", "all()")
    return doc("StagedGlobalNetworkPolicy", name, spec)


def verdict(comp, port, world="pending", host="n1", src="10.10.0.2", dst="10.10.0.1"):
    res = comp.check_access(host, src, dst, "TCP", port, world=world)
    return res["allowed"], res["reason"]


# -- the pending world -----------------------------------------------------------------------------

def test_set_adds_a_new_policy_to_its_tier():
    comp = compile_documents(base(staged("block-8080", tier="t1", order=1, ingress=[
        {"action": "Deny", "protocol": "TCP", "destination": {"ports": [8080]}}])))
    assert verdict(comp, 8080, "enforced") == (True, "tier t1 policy allow-web ingress rule 0 (Allow)")
    assert verdict(comp, 8080) == (False, "tier t1 policy staged:block-8080 ingress rule 0 (Deny)")
    assert verdict(comp, 80) == (True, "tier t1 policy allow-web ingress rule 0 (Allow)")


def test_set_replaces_the_enforced_policy_of_the_same_name_instead_of_following_it():
    """Calico's flow logs sort a staged policy next to the enforced one of the same name (the
    enforced kind first, PolKVLess): its pending verdict for 8080 would still be the enforced
    Allow.  Promoting replaces the enforced policy, and so does hostfw's pending world."""
    comp = compile_documents(base(staged("allow-web", tier="t1", egress=[{"action": "Allow"}], ingress=[
        {"action": "Allow", "protocol": "TCP", "destination": {"ports": [80]}}])))
    assert verdict(comp, 8080) == (False, "end of tier t1 (defaultAction Deny)")
    assert verdict(comp, 80) == (True, "tier t1 policy staged:allow-web ingress rule 0 (Allow)")
    tiers = comp.plan("n1", "pending").endpoints[0].tiers_for("normal", "ingress")
    assert [(t.name, [p.kind for p in t.policies]) for t in tiers] == [("t1", ["StagedGlobalNetworkPolicy"])]


def test_delete_removes_the_enforced_policy_and_an_unset_or_empty_action_is_set():
    comp = compile_documents(base(staged("allow-web", tier="t1", stagedAction="Delete")))
    assert verdict(comp, 80) == (False, "no policy applies to host endpoint h1 ingress (default deny)")
    assert verdict(comp, 80, "enforced")[0]
    for action in ({}, {"stagedAction": ""}, {"stagedAction": "Set"}):
        comp = compile_documents(base(staged("s", tier="t1", order=1, ingress=[{"action": "Deny"}], **action)))
        assert verdict(comp, 80) == (False, "tier t1 policy staged:s ingress rule 0 (Deny)"), action
        assert comp.model.staged_changes[0].action == "Set"


def test_learn_and_ignore_change_nothing():
    for action in ("Learn", "Ignore"):
        comp = compile_documents(base(staged("allow-web", tier="t1", stagedAction=action, ingress=[{"action": "Deny"}])))
        assert verdict(comp, 80) == verdict(comp, 80, "enforced")
        assert comp.plan("n1", "pending").endpoints[0].tiers is comp.plan("n1").endpoints[0].tiers
        assert not comp.pending_differs("n1")


def test_a_tier_with_only_staged_policies_applies_in_the_pending_world_only():
    comp = compile_documents(base(doc("Tier", "t0", {"order": 1}),
                                  staged("t0-ssh", tier="t0", ingress=[{"action": "Allow", "protocol": "TCP",
                                                                        "destination": {"ports": [2222]}}])))
    assert verdict(comp, 80, "enforced")[0]
    assert verdict(comp, 80) == (False, "end of tier t0 (defaultAction Deny)")


def test_staged_network_policy_never_selects_a_host_and_warnings_name_the_odd_cases():
    docs = base(doc("StagedNetworkPolicy", "np", {"selector": "all()", "ingress": [{"action": "Deny"}]},
                    namespace="prod"),
                staged("ghost", stagedAction="Delete"),
                staged("allow-web", tier="default", ingress=[{"action": "Allow"}]))
    comp = compile_documents(docs)
    assert verdict(comp, 8080) == (True, "tier default policy staged:allow-web ingress rule 0 (Allow)")
    assert any("StagedNetworkPolicy prod/np: a namespaced policy" in w for w in comp.warnings)
    assert ("StagedGlobalNetworkPolicy ghost (stagedAction Delete): there is no GlobalNetworkPolicy ghost, so "
            "promoting it deletes nothing") in comp.warnings
    assert ("StagedGlobalNetworkPolicy allow-web moves GlobalNetworkPolicy allow-web from tier t1 to tier default "
            "once promoted") in comp.warnings
    assert [c.as_dict() for c in comp.model.staged_changes] == [
        {"kind": "StagedGlobalNetworkPolicy", "name": "allow-web", "tier": "default", "stagedAction": "Set"},
        {"kind": "StagedGlobalNetworkPolicy", "name": "ghost", "tier": "default", "stagedAction": "Delete"},
        {"kind": "StagedNetworkPolicy", "name": "prod/np", "tier": "default", "stagedAction": "Set"}]


def test_bad_staged_action_is_still_refused():
    with pytest.raises(errors.HostfwError) as exc:
        compile_documents(base(staged("s", stagedAction="Promote")))
    assert "spec.stagedAction" in exc.value.render()


# -- the matrix ----------------------------------------------------------------------------------------

def tighten():
    return staged("tighten", tier="t1", order=1, ingress=[{"action": "Deny", "protocol": "TCP",
                                                           "destination": {"ports": [80]},
                                                           "source": {"nets": ["10.10.0.2/32"]}}])


def test_every_cell_gets_a_pending_verdict_and_the_matrix_the_staged_list():
    comp = compile_documents(base(tighten()), probes=[{"protocol": "TCP", "port": 80}, {"protocol": "TCP", "port": 22}])
    m = comp.matrix()
    assert m["staged"] == [{"kind": "StagedGlobalNetworkPolicy", "name": "tighten", "tier": "t1", "stagedAction": "Set"}]
    assert all(set(c["pending"]) == {"verdict", "reason"} for c in m["cells"])
    changed = [c for c in m["cells"] if c["pending"]["verdict"] != c["verdict"]]
    assert [(c["source"], c["destination"], c["port"], c["verdict"], c["pending"]) for c in changed] == [
        ("host/h2", "host/h1", 80, "allow",
         {"verdict": "deny", "reason": "ingress: tier t1 policy staged:tighten ingress rule 0 (Deny)"})]
    assert comp.matrix_attribution == {("host/h2", "host/h1", "TCP", 80): ["tighten"]}
    md = comp.matrix_markdown(m)
    assert re.search(r"\| host/h2 \| allow \[\d+\] → DENY \[\d+\] \|", md), md
    assert "With the 1 staged policy promoted, 1 cell would change" in md
    assert "| StagedGlobalNetworkPolicy | tighten | t1 | Set | 1 |" in md
    assert ("- host/h2 → host/h1 TCP/80: allow → DENY (ingress: tier t1 policy staged:tighten ingress rule 0 (Deny))"
            in md)
    # the HTML page embeds exactly this matrix (and shows the pending view)
    text = matrix_html.json_text(m)
    assert json.loads(text) == m and "pending (staged promoted)" in matrix_html.render(text)


def test_without_staged_policies_the_matrix_has_no_pending_data():
    comp = compile_documents(base(), probes=[{"protocol": "TCP", "port": 80}])
    m = comp.matrix()
    assert "staged" not in m and all("pending" not in c for c in m["cells"])
    md = comp.matrix_markdown(m)
    assert "→" not in md and "Staged" not in md and md == to_markdown(m)


def test_a_delete_is_attributed_to_the_staged_policy_that_deletes():
    comp = compile_documents(base(staged("allow-web", tier="t1", stagedAction="Delete"), tighten()),
                             probes=[{"protocol": "TCP", "port": 8080}])
    m = comp.matrix()
    assert set(map(tuple, comp.matrix_attribution.values())) == {("allow-web",)}
    md = comp.matrix_markdown(m)
    assert "| StagedGlobalNetworkPolicy | allow-web | t1 | Delete | 2 |" in md
    assert "| StagedGlobalNetworkPolicy | tighten | t1 | Set | 0 |" in md


# -- compile results: the pending proof -----------------------------------------------------------

def test_the_pending_failsafe_proof_warns_before_a_promotion_closes_a_protected_port():
    docs = base(doc("FelixConfiguration", "default", {"failsafeInboundHostPorts": []}),
                gnp("ssh", tier="t1", ingress=[{"action": "Allow", "protocol": "TCP", "destination": {"ports": [22]}}]),
                staged("ssh", tier="t1", stagedAction="Delete"))
    comp = compile_documents(docs)
    hostvars = {h: {"hostfw_protected_ports": {"inbound": ["tcp:22"]}} for h in comp.hosts}
    res = compiler.run(comp, hostvars, {"proof": True})
    entry = res["hosts"]["n1"]
    assert entry["failsafe_proof"]["ok"] and not entry["pending_failsafe_proof"]["ok"]
    assert entry["pending_differs"] and not entry["staged_counters"]
    assert "protected inbound port tcp:22 (IPv4) closed for every source" in entry["pending_failsafe_proof"]["refusals"][0]
    assert res["refusals"] == []  # a warning of the rollout, not a refusal


def test_hostfw_staged_counters_is_read_per_host():
    docs = base(tighten())
    comp = compile_documents(docs)
    res = compiler.run(comp, {"n1": {"hostfw_staged_counters": True}, "n2": {"hostfw_staged_counters": "log"}},
                       {"return_content": True})
    assert "chain pending-b-input" in res["hosts"]["n1"]["ruleset"]
    assert "would-deny" not in res["hosts"]["n1"]["ruleset"]
    assert res["hosts"]["n1"]["staged_counters"] and res["hosts"]["n2"]["staged_counters"]
    assert "log prefix \"hostfw-pending would-deny" in res["hosts"]["n2"]["ruleset"]
    with pytest.raises(errors.HostfwError) as exc:
        compiler.run(compile_documents(docs), {"n1": {"hostfw_staged_counters": "maybe"}}, {})
    assert "hostfw_staged_counters" in exc.value.render() and "'maybe'" in exc.value.render()
    assert compiler.staged_counters_mode("n1", False) is None and compiler.staged_counters_mode("n1", None) is None


# -- the shadow path's text ------------------------------------------------------------------------------

def strip_shadow(text):
    """The table without its shadow path: the pending-* chains, their summary line and the sets
    only they use."""
    text = re.sub(r"\t# [^\n]*\n\tchain pending-[^\n]*\{\n(?:\t\t[^\n]*\n)*\t\}\n\n?", "", text)
    text = re.sub(r"# pending world \(staged policies promoted\)[^\n]*\n", "", text)
    for name in re.findall(r"^\tset (\S+) \{", text, re.M):
        if "@" + name not in text:
            text = re.sub(r"\t# [^\n]*\n\tset %s \{\n(?:\t\t[^\n]*\n)*\t\}\n\n?" % re.escape(name), "", text)
    return text.replace("\n\n}\n", "\n}\n")


SHADOW_FORBIDDEN = re.compile(r"\b(accept|drop|reject|notrack|queue|dup|fwd|masquerade|snat|dnat to|redirect|"
                              r"mark set|synproxy|tproxy|jump)\b")


def shadow_lines(text):
    out, inside = [], False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("chain "):
            inside = stripped.startswith("chain pending-")
        elif inside and stripped and not stripped.startswith(("#", "}", "type ")):
            out.append(re.sub(r'(comment|log prefix) "[^"]*"', "", stripped))
    return out


def check_shadow(docs):
    on = compile_documents(docs, staged_counters=render.SHADOW_LOG)
    off = compile_documents(docs)
    for host in off.hosts_with_rulesets():
        text_on, text_off = on.ruleset(host), off.ruleset(host)
        assert strip_shadow(text_on) == text_off, host
        assert problems(text_on) == [], host
        assert not [ln for ln in shadow_lines(text_on) if SHADOW_FORBIDDEN.search(ln)], host
        assert ("chain pending-" in text_on) == on.pending_differs(host), host


def test_the_enforced_part_is_byte_identical_with_the_shadow_path():
    check_shadow(rich_world())
    check_shadow(base(tighten(), staged("allow-web", tier="t1", stagedAction="Delete")))
    assert "chain pending-b-input" in compile_documents(rich_world(), staged_counters="count").ruleset("n1")


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(worlds())
def test_random_worlds_shadow_path_is_additive_portable_and_never_decides(docs):
    check_shadow(docs)


def test_no_shadow_without_staged_policies_or_without_a_change():
    docs = base()
    assert compile_documents(docs, staged_counters="log").ruleset("n1") == compile_documents(docs).ruleset("n1")
    docs = base(staged("x", selector="role == 'nobody'", ingress=[{"action": "Deny"}]))
    assert "pending-" not in compile_documents(docs, staged_counters="log").ruleset("n1")


def test_long_names_get_a_hashed_counter_comment():
    name = "p" * 200
    docs = base(doc("Tier", "t" * 60, {"order": 5}),
                staged(name, tier="t" * 60, ingress=[{"action": "Deny", "protocol": "TCP"}]))
    text = compile_documents(docs, staged_counters="count").ruleset("n1")
    key = "%s/staged:%s ingress[0] Deny" % ("t" * 60, name)
    hashed = render.pending_key_hash(key)
    assert 'comment "hostfw-pending:b #%s ' % hashed in text
    assert problems(text) == []


def test_shapes_fill_the_shadow_path_like_a_direct_render():
    docs = [doc("Tier", "t1", {"order": 10})]
    for i in range(6):
        docs.append(hep("hep-%d" % i, "n%d" % i, ["10.0.0.%d" % (i + 1)], iface="eth0", labels={"role": "web"}))
    docs += [gnp("web", tier="t1", selector="role == 'web'", ingress=[{"action": "Allow", "protocol": "TCP",
                                                                      "destination": {"ports": [80]}}]),
             staged("web", tier="t1", selector="role == 'web'", ingress=[{"action": "Allow", "protocol": "TCP",
                                                                         "destination": {"ports": [443]}}])]
    comp = compile_documents(docs, staged_counters="count")
    for host in comp.hosts_with_rulesets():
        text = comp.ruleset(host)
        assert text == comp.renderer.render_direct(comp.plan(host), comp.plan(host, "pending"), "count")
        assert "hep-%s" % host[1:] in text and "pending-a-in-eth0" in text


# -- the lint and the matrix diff with staged policies -----------------------------------------------

BLOCK_8080 = {"tier": "t1", "order": 1, "selector": "all()", "ingress": [
    {"action": "Deny", "protocol": "TCP", "source": {"selector": "role == 'db'"}, "destination": {"ports": [8080]}}]}
PROBES_8080 = [{"protocol": "TCP", "port": 80}, {"protocol": "TCP", "port": 8080}]


def _cells(changes):
    return sorted((c["source"], c["destination"], c["protocol"], c["port"], c["verdict"], c["pending"]["verdict"])
                  for c in changes)


@pytest.mark.parametrize("with_staged, promoted", [
    ([staged("block-8080", **BLOCK_8080)], [gnp("block-8080", **BLOCK_8080)]),
    ([staged("allow-web", tier="t1", stagedAction="Delete")], "drop allow-web"),
])
def test_lint_and_matrix_diff_take_staged_policies(with_staged, promoted):
    """The lint and the matrix diff read the enforced world: a staged policy changes no finding
    and no cell of the diff against the same world without it; the diff against the promoted
    world is exactly the matrix's pending changes."""
    plain = compile_documents(base(), probes=PROBES_8080)
    comp = compile_documents(base(*with_staged), probes=PROBES_8080)
    if promoted == "drop allow-web":
        after = compile_documents([d for d in base() if d["metadata"]["name"] != "allow-web"], probes=PROBES_8080)
    else:
        after = compile_documents(base(*promoted), probes=PROBES_8080)
    report, plain_report = lint.run(comp), lint.run(plain)
    assert report.as_dict()["findings"] == plain_report.as_dict()["findings"]
    assert "staged" not in lint.to_markdown(report).lower()
    same = diff.diff_compilations(plain, comp, PROBES_8080)
    assert same["changes"] == [] and same["summary"]["opened"] == same["summary"]["closed"] == 0
    matrix = json.loads(matrix_html.json_text(comp.matrix(PROBES_8080)))
    pending = [c for c in matrix["cells"] if c["pending"]["verdict"] != c["verdict"]]
    assert pending, "the staged policy changes some cell"
    for old in (diff.diff_compilations(comp, after, PROBES_8080), diff.diff_matrix(matrix, after, PROBES_8080)):
        got = sorted((c["source"], c["destination"], c["protocol"], c["port"], c["old"]["verdict"], c["new"]["verdict"])
                     for c in old["changes"])
        assert got == _cells(pending)
        assert diff.to_markdown(old)
    # the diff of a matrix.json with pending cells against the same world: nothing changed
    assert diff.diff_matrix(matrix, comp, PROBES_8080)["changes"] == []


def test_compile_run_with_lint_and_compare_to_on_a_staged_world(tmp_path):
    docs = base(staged("block-8080", **BLOCK_8080))
    old_dir = tmp_path / "old"
    comp = compile_documents(base(), probes=PROBES_8080)
    hv = {"n1": {}, "n2": {}}
    res = compiler.run(comp, hv, {"output_dir": str(old_dir)})
    assert not res.get("failed"), res
    comp = compile_documents(docs, probes=PROBES_8080)
    out = tmp_path / "out"
    res = compiler.run(comp, hv, {"output_dir": str(out), "lint": True, "lint_fail_on": "never",
                                  "compare_to": str(old_dir), "fail_on": ["opened", "closed"], "host_details": True})
    assert not res.get("failed"), res.get("msg")
    assert res["matrix_diff_summary"]["opened"] == res["matrix_diff_summary"]["closed"] == 0
    assert "would change once the staged policies are promoted" in res["msg"] and "lint: " in res["msg"]
    assert "matrix diff against" in res["msg"]
    for name in ("lint.json", "lint.md", "matrix-diff.json", "matrix-diff.md", "matrix.json", "matrix.md"):
        assert (out / name).is_file(), name
    assert "## Staged policies" in (out / "matrix.md").read_text(encoding="utf-8")


def test_an_interface_named_any_and_a_star_endpoint_get_distinct_shadow_chains():
    docs = [hep("all", "n1", H1, iface="*"), hep("named-any", "n1", H1, iface="any", labels={"role": "db"}),
            doc("Tier", "t1", {"order": 10}),
            gnp("allow-web", tier="t1", selector="all()", ingress=[{"action": "Allow", "protocol": "TCP"}],
                egress=[{"action": "Allow"}]),
            staged("block", tier="t1", order=1, ingress=[{"action": "Deny", "protocol": "TCP",
                                                          "destination": {"ports": [8080]}}])]
    text = compile_documents(docs, staged_counters="count").ruleset("n1")
    names = re.findall(r"^\tchain (\S+) \{", text, re.M)
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    assert "pending-b-in-any" in names and "pending-b-in-any-interface-at-all" in names
    assert '"any" : goto pending-b-in-any }' in text and "goto pending-b-in-any-interface-at-all" in text
    assert problems(text) == []
