# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Staged policies on the wire: the shadow path counts the pending world and changes nothing.

* the kernel fact the design rests on: an ``accept`` in one base chain does not stop the next
  base chain on the same hook, a ``drop`` does, and so does nothing else the shadow path uses;
* a staged Deny of TCP 8080 while an enforced policy allows it: every connection succeeds and the
  staged rule's counter counts each one, before and after the filter chain;
* a staged Delete of the only allowing policy: the connections still succeed and the pending
  end of tier counts them;
* on random worlds with staged policies: the kernel decides exactly as the evaluator's enforced
  verdicts (the shadow path changes no verdict), and every shadow counter equals the number of
  new connections whose pending verdict the evaluator decides at that point.
"""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings

import netlab  # noqa: E402
from worlds import doc, gnp, hep, wep, worlds  # noqa: E402
from differential import DataplaneWorld, report, shadow_report  # noqa: E402

from ansible_collections.hostfw.nftables.plugins.plugin_utils.compiler import compile_documents  # noqa: E402
from ansible_collections.hostfw.nftables.plugins.plugin_utils.render import SHADOW_COUNT, SHADOW_LOG  # noqa: E402

H1 = ["10.10.0.1", "fd10::1"]
H2 = ["10.10.0.2", "fd10::2"]
PODS = [wep("web", "prod", ["10.20.0.5/32", "fd20::5/128"], {"app": "web"})]
TOTAL = {"flows": 0, "counted": 0, "tests": set()}  # what the staged-world tests of this process compared


def two_base_chains(first_verdict):
    return ("table inet proof {\n"
            "  chain first {\n"
            "    type filter hook input priority -5; policy accept;\n"
            '    tcp dport 8080 counter %s comment "first"\n'
            "  }\n"
            "  chain second {\n"
            "    type filter hook input priority 0; policy accept;\n"
            '    tcp dport 8080 counter drop comment "second"\n'
            "  }\n"
            "}\n") % first_verdict


def test_an_accept_does_not_stop_the_next_base_chain_but_a_drop_does(lab):
    """netfilter runs every base chain of a hook in priority order: a verdict ``accept`` (or the
    end of a chain with ``policy accept``, or ``return``) ends only its own chain, and the packet
    meets the next one; only ``drop`` is final.  So a chain before the enforced one may count but
    never decide, as long as it never drops (nor rejects, which drops)."""
    client = lab.add_node("client", ["10.1.0.1"])
    server = lab.add_node("server", ["10.1.0.2"])
    server.listen(tcp=[8080])
    seen = {}
    for verdict in ("accept", "return", "drop"):
        server.nft("delete table inet proof")
        rc, err = server.load_nft(two_base_chains(verdict))
        assert rc == 0, err
        result = client.probe(server, "10.1.0.2", "tcp", 8080)
        seen[verdict] = (result.allowed, server.counters("inet", "proof"))
    # accept / return in the first chain: the second chain still runs, and its drop decides
    assert seen["accept"] == (False, {"first": 1, "second": 1}), seen
    assert seen["return"] == (False, {"first": 1, "second": 1}), seen
    # drop in the first chain: final, the second chain never sees the packet
    assert seen["drop"] == (False, {"first": 1, "second": 0}), seen
    # and with the second chain accepting, the first chain's accept lets the connection through
    server.nft("delete table inet proof")
    rc, err = server.load_nft(two_base_chains("accept").replace("counter drop", "counter accept"))
    assert rc == 0, err
    assert client.probe(server, "10.1.0.2", "tcp", 8080).allowed


SHADOW_FORBIDDEN = re.compile(r"\b(accept|drop|reject|notrack|queue|dup|fwd|masquerade|snat|dnat to|redirect|"
                              r"mark set|synproxy|tproxy)\b")


def shadow_rules(text):
    """The rules of the shadow chains (pending-*) of a rendered table, without comments."""
    out, inside = [], False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("chain "):
            inside = stripped.startswith("chain pending-")
            continue
        if inside and stripped and not stripped.startswith(("#", "}", "type ")):
            out.append(re.sub(r'(comment|log prefix) "[^"]*"', "", stripped))
    return out


def block_8080_world(extra=()):
    return [hep("h1", "n1", H1), hep("h2", "n2", H2), doc("Tier", "t1", {"order": 10})] + PODS + [
        gnp("allow-8080", tier="t1", ingress=[{"action": "Allow", "protocol": "TCP", "destination": {"ports": [8080]}}],
            egress=[{"action": "Allow"}])] + list(extra)


def run_connections(docs, mode, count=20, port=8080):
    comp = compile_documents(docs, staged_counters=mode)
    with netlab.Lab() as lab:
        dw = DataplaneWorld(comp, lab)
        dw.build()
        for host in dw.hosts:
            lab.node(host).listen(tcp=[port])
        flows = [netlab.Flow("n2", "10.10.0.2", "n1", "10.10.0.1", "tcp", port)] * count
        results = lab.probe_many(flows)
        return comp, results, lab.node("n1").counters(), lab.node("n1").list_table()


def test_a_staged_deny_of_an_allowed_port_counts_every_connection_and_blocks_none():
    staged = doc("StagedGlobalNetworkPolicy", "t1.block-8080", {
        "tier": "t1", "order": 1, "selector": "all()",
        "ingress": [{"action": "Deny", "protocol": "TCP", "destination": {"ports": [8080]}}]})
    comp, results, counters, listing = run_connections(block_8080_world([staged]), SHADOW_LOG)
    assert all(r.allowed for r in results), [str(r) for r in results if not r.allowed]
    assert counters["hostfw-pending:b t1/staged:t1.block-8080 ingress[0] Deny"] >= 20
    assert counters["hostfw-pending:a t1/staged:t1.block-8080 ingress[0] Deny"] >= 20
    assert counters["t1/allow-8080 ingress[0] Allow"] >= 20  # the enforced rule decided
    # the evaluator agrees: enforced allow, pending deny by the staged rule
    assert comp.check_access("n1", "10.10.0.2", "10.10.0.1", "TCP", 8080)["allowed"]
    pending = comp.check_access("n1", "10.10.0.2", "10.10.0.1", "TCP", 8080, world="pending")
    assert (pending["allowed"], pending["reason"]) == (False, "tier t1 policy staged:t1.block-8080 ingress rule 0 (Deny)")
    # log mode: the would-deny of an allowed connection is logged, rate-limited, naming tier, policy and rule
    assert 'log prefix "hostfw-pending would-deny t1/staged:t1.block-8080 ingress[0] Deny: "' in listing
    assert shadow_rules(listing) and not [r for r in shadow_rules(listing) if SHADOW_FORBIDDEN.search(r)]


def test_a_staged_delete_of_the_only_allowing_policy_counts_would_denies():
    staged = doc("StagedGlobalNetworkPolicy", "allow-8080", {"tier": "t1", "stagedAction": "Delete"})
    comp, results, counters, _listing = run_connections(block_8080_world([staged]), SHADOW_COUNT)
    assert all(r.allowed for r in results)
    # without allow-8080 nothing selects h1 in tier t1 any more: no tier applies, no profile, default deny
    assert counters["hostfw-pending:a default-deny ingress"] >= 20
    assert counters["t1/allow-8080 ingress[0] Allow"] >= 20
    pending = comp.check_access("n1", "10.10.0.2", "10.10.0.1", "TCP", 8080, world="pending")
    assert not pending["allowed"] and "default deny" in pending["reason"]


def test_learn_and_ignore_change_nothing_and_render_no_shadow_path():
    for action in ("Learn", "Ignore"):
        staged = doc("StagedGlobalNetworkPolicy", "allow-8080", {"tier": "t1", "stagedAction": action,
                                                                 "ingress": [{"action": "Deny"}]})
        comp = compile_documents(block_8080_world([staged]), staged_counters=SHADOW_COUNT)
        assert comp.ruleset("n1") == compile_documents(block_8080_world()).ruleset("n1")


def check_staged_world(docs, probes, test):
    comp = compile_documents(docs, staged_counters=SHADOW_COUNT)
    with netlab.Lab() as lab:
        dw = DataplaneWorld(comp, lab, extra_sources=("198.51.100.7", "2001:db8:99::7"))
        dw.build()
        flows = dw.flows(probes)
        mismatches, _results = dw.run(flows)
        assert not mismatches, report(mismatches, docs)
        expected = dw.expected_shadow_counts(flows)
        observed = dw.observed_shadow_counts()
        assert observed == expected, shadow_report(expected, observed, docs)
        TOTAL["flows"] += len(flows)
        TOTAL["counted"] += sum(expected.values())
        TOTAL["tests"].add(test)
        for host in dw.hosts:
            bad = [r for r in shadow_rules(comp.ruleset(host)) if SHADOW_FORBIDDEN.search(r)]
            assert not bad, bad


def test_staged_worlds_by_hand():
    """Pass in a staged policy, a staged policy that makes a tier apply, a replaced policy, a
    staged doNotTrack and preDNAT policy, profiles and failsafes."""
    docs = [hep("h1", "n1", H1, iface="eth0", profiles=["projectcalico-default-allow"]),
            hep("h2", "n2", H2, labels={"role": "db"})] + PODS
    docs += [doc("Tier", "t1", {"order": 10, "defaultAction": "Pass"}), doc("Tier", "t2", {"order": 20}),
             gnp("base", tier="t2", selector="all()", ingress=[{"action": "Allow", "protocol": "TCP",
                                                               "destination": {"ports": [80, 443]}}],
                 egress=[{"action": "Allow"}]),
             doc("StagedGlobalNetworkPolicy", "base", {
                 "tier": "t2", "selector": "all()", "egress": [{"action": "Allow"}],
                 "ingress": [{"action": "Allow", "protocol": "TCP", "destination": {"ports": [443]}}]}),
             doc("StagedGlobalNetworkPolicy", "screen", {
                 "tier": "t1", "selector": "role == 'node'",
                 "ingress": [{"action": "Pass", "protocol": "TCP"}, {"action": "Deny", "protocol": "UDP"}]}),
             doc("StagedGlobalNetworkPolicy", "raw-udp", {
                 "selector": "role == 'db'", "doNotTrack": True, "applyOnForward": True, "order": 1,
                 "ingress": [{"action": "Deny", "protocol": "UDP", "destination": {"ports": [53]}}]}),
             doc("StagedGlobalNetworkPolicy", "pre-8080", {
                 "selector": "all()", "preDNAT": True, "applyOnForward": True,
                 "ingress": [{"action": "Deny", "protocol": "TCP", "destination": {"ports": [8080]}}]})]
    check_staged_world(docs, [("tcp", 22), ("tcp", 80), ("tcp", 443), ("tcp", 8080), ("udp", 53), ("icmp", None)],
                       "test_staged_worlds_by_hand")


@settings(max_examples=14, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(worlds())
def test_random_staged_worlds_shadow_counts_equal_the_pending_verdicts(docs):
    check_staged_world(docs, [("tcp", 22), ("tcp", 80), ("tcp", 8080), ("udp", 80), ("icmp", None)],
                       "test_random_staged_worlds_shadow_counts_equal_the_pending_verdicts")


def test_zz_enough_connections_were_counted():
    """The worlds above compared at least 300 connections and 300 counted first packets."""
    wanted = {"test_staged_worlds_by_hand", "test_random_staged_worlds_shadow_counts_equal_the_pending_verdicts"}
    if not wanted <= TOTAL["tests"]:
        import pytest  # pylint: disable=import-outside-toplevel
        pytest.skip("needs both staged-world tests in this process (not selected, or run by another pytest -n "
                    "worker): ran %s" % (sorted(TOTAL["tests"]) or "none"))
    print("shadow paths and evaluator agreed on %d connections (%d counted packets)" % (
        TOTAL["flows"], TOTAL["counted"]))
    assert TOTAL["flows"] >= 300 and TOTAL["counted"] >= 300, TOTAL
