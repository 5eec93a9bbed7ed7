# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The renderer: golden files, determinism, structure.

Golden files live in ``golden/``; after an intended change regenerate them with
``HOSTFW_UPDATE_GOLDEN=1 pytest tests/unit/plugins/plugin_utils/test_render.py`` and review the diff.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import sys

import pytest

from ansible_collections.hostfw.nftables.plugins.plugin_utils.compiler import compile_documents, compile_inventory

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..")))
from worlds import rich_world, rich_world_rejecting  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "golden")
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", "..", ".."))
DEMO = os.path.join(ROOT, "examples", "two-node-cluster")


def demo_compilation():
    hosts = {"policy-llm-control-plane": {"hostfw_manifests": ["manifests/*.yaml"], "ansible_host": "172.18.0.2"},
             "policy-llm-worker": {"hostfw_manifests": ["manifests/*.yaml"], "ansible_host": "172.18.0.3"}}
    return compile_inventory(hosts, DEMO)


CASES = {
    "rich-n1": lambda: compile_documents(rich_world()).ruleset("n1"),
    "rich-n2": lambda: compile_documents(rich_world()).ruleset("n2"),
    "rich-n1-reject": lambda: compile_documents(rich_world_rejecting()).ruleset("n1"),
    "demo-worker": lambda: demo_compilation().ruleset("policy-llm-worker"),
    # rich-n1 with the shadow path of its staged policy (hostfw_staged_counters: log): the enforced
    # part is rich-n1 byte for byte (test_staged), and tests/platforms loads it on nft 0.9.8 to 1.1
    "rich-n1-staged": lambda: compile_documents(rich_world(), staged_counters="log").ruleset("n1"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case):
    text = CASES[case]()
    path = os.path.join(GOLDEN, case + ".nft")
    if os.environ.get("HOSTFW_UPDATE_GOLDEN"):
        os.makedirs(GOLDEN, exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    with open(path, encoding="utf-8") as f:
        assert text == f.read(), "rendering of %s changed; see the module docstring to update goldens" % case


def test_byte_identical_whatever_the_input_order():
    docs = rich_world()
    ref = compile_documents(docs).ruleset("n1")
    rng = random.Random(7)
    for _unused in range(5):
        shuffled = list(docs)
        rng.shuffle(shuffled)
        assert compile_documents(shuffled).ruleset("n1") == ref


def test_structure_of_a_table():
    text = compile_documents(rich_world()).ruleset("n1")
    lines = text.splitlines()
    # atomic replace idiom, and nothing but our table
    body = [ln for ln in lines if not ln.startswith("#")]
    assert body[:3] == ["table inet hostfw", "delete table inet hostfw", "table inet hostfw {"]
    assert not re.search(r"^\s*(flush|table (?!inet hostfw))", text, re.M)
    assert "ip protocol" not in text  # meta l4proto only, in an inet table
    # named endpoint wins eth0, "*" is the default branch
    assert 'iifname vmap { "eth0" : goto hep-in-eth0 }' in text
    assert "goto hep-in-any-interface-at-all" in text
    # selector and net sets are named and shared
    assert len(re.findall(r"^\tset sel4_", text, re.M)) == len(set(re.findall(r"@(sel4_\w+)", text)))
    # staged policies are never rendered
    assert "deny-everything" not in text
    # every policy rule carries a counter and a comment naming tier, policy and rule
    for ln in lines:
        if re.search(r"\b(accept|drop)\b", ln) and "jump" not in ln and ("/" in ln and "comment" in ln):
            pass
    policy_rules = [ln for ln in lines if re.search(r'comment "(security|platform|default)/', ln)]
    assert policy_rules and all("counter" in ln for ln in policy_rules)
    # Log is rate-limited and names tier and policy
    assert 'limit rate 5/second log prefix "calico-packet security/block-bad: "' in text
    # doNotTrack Allow: notrack and the accept mark; the "*" endpoint gets no doNotTrack chain
    assert "notrack meta mark set meta mark | 0x00010000 accept" in text
    assert "hep-raw-in-any-interface-at-all" not in text
    # the iptables meaning of notICMP type+code
    assert "icmp type . icmp code != { 5 . 1 }" in text


def test_failsafe_sets_follow_the_felix_configuration():
    text = compile_documents(rich_world()).ruleset("n1")
    assert "tcp . 22" in text and "tcp . 2379" not in text
    assert "ip saddr 10.0.0.0/8 tcp dport 179 accept" in text
    assert "udp . 53" in text


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("unshare"),
                    reason="needs root, nft and unshare (a scratch network namespace)")
@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_files_load_twice_in_a_scratch_namespace(case):
    path = os.path.join(GOLDEN, case + ".nft")
    # Without /etc/protocols (minimal hosts and container images have none): names must be nft keywords.
    r = subprocess.run(["unshare", "-m", "-n", "sh", "-c",
                        "mount --bind /dev/null /etc/protocols; nft -c -f %s && nft -f %s && nft -f %s && nft list tables"
                        % (path, path, path)], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "table inet hostfw"


def test_protocols_are_nft_keywords_or_numbers():
    """A protocol name that is not an nft keyword (ipv6-icmp) is looked up in /etc/protocols, which
    minimal hosts and container images lack: nft -c then refuses the whole table."""
    for case in sorted(CASES):
        text = CASES[case]()
        for proto in re.findall(r"meta l4proto (?:!= )?([a-z0-9-]+)", text):
            assert proto in ("tcp", "udp", "icmp", "icmpv6", "sctp", "udplite") or proto.isdigit(), (case, proto)
    assert "meta nfproto ipv6 icmpv6 type 128" in CASES["rich-n1"]()


def _fleet_documents():
    """Many hosts alike (shared shapes), plus hosts whose names cannot use a shape: a long
    endpoint name, an odd inventory name, two endpoints, a "*" endpoint."""
    from worlds import doc  # pylint: disable=import-outside-toplevel
    docs = [doc("Tier", "t", {"order": 10, "defaultAction": "Pass"})]
    for i in range(12):
        spec = {"node": "n%d" % i, "interfaceName": "eth0", "expectedIPs": ["10.0.0.%d" % (i + 1)]}
        docs.append(doc("HostEndpoint", "hep-%d" % i, spec, {"role": "web" if i % 3 else "db", "n": str(i)}))
    docs.append(doc("HostEndpoint", "x" * 90, {"node": "n-long", "interfaceName": "eth0", "expectedIPs": ["10.0.1.1"]},
                    {"role": "web"}))
    docs.append(doc("HostEndpoint", "second-nic-of-n1", {"node": "n1", "interfaceName": "eth1", "expectedIPs": ["10.0.2.1"]},
                    {"role": "db"}))
    docs.append(doc("HostEndpoint", "all-of-n2", {"node": "n2", "interfaceName": "*", "expectedIPs": ["10.0.0.3"]},
                    {"role": "web"}))
    docs.append(doc("GlobalNetworkPolicy", "t.web", {"tier": "t", "order": 1, "selector": "role == 'web'", "ingress": [
        {"action": "Allow", "protocol": "TCP", "source": {"selector": "role == 'db'"}, "destination": {"ports": [80]}},
        {"action": "Pass"}]}))
    docs.append(doc("GlobalNetworkPolicy", "db", {"order": 2, "selector": "role == 'db'", "ingress": [
        {"action": "Allow", "protocol": "TCP", "source": {"selector": "role == 'web'"}, "destination": {"ports": [5432]}}]}))
    return docs


def test_shape_cache_renders_byte_identical_tables():
    """Hosts alike are filled into a shared shape; every table equals a direct render of that host
    alone, including hosts whose names are too long or too odd for a shape."""
    nodes = {"host-%d" % i: "n%d" % i for i in range(12)}
    nodes.update({"n-long": "n-long", 'odd "name" host': "n5", "web-01.example.com": "n7"})
    comp = compile_documents(_fleet_documents(), nodes=nodes)
    hosts = comp.hosts_with_rulesets()
    assert set(nodes) <= set(hosts)
    cached = {h: comp.ruleset(h) for h in hosts}
    fresh = compile_documents(_fleet_documents(), nodes=nodes)
    for host in hosts:
        assert cached[host] == fresh.renderer.render_direct(fresh.plan(host)), host
    shapes = comp.renderer.shapes
    assert len(shapes) < len(hosts)  # hosts alike share a shape
    assert any(s.parts is not None for s in shapes.values())
    assert "x" * 90 in cached["n-long"] and "host odd 'name' host (node n5)" in cached['odd "name" host']


def _two_nodes_with_own_felix_settings():
    from worlds import doc  # pylint: disable=import-outside-toplevel
    docs = [doc("FelixConfiguration", "default", {"logPrefix": "fleet"}),
            doc("FelixConfiguration", "node.n2", {"logPrefix": "n2-only", "logActionRateLimit": "5/second"})]
    for node in ("n1", "n2"):
        for i, iface in enumerate(("eth0", "eth1")):
            docs.append(doc("HostEndpoint", "%s-%s" % (node, iface), {
                "node": node, "interfaceName": iface, "expectedIPs": ["10.%d.0.%s" % (i, node[1])], "profiles": ["p"]},
                {"role": "x"}))
    docs.append(doc("Profile", "p", {"egress": [{"action": "Log"}, {"action": "Allow"}]}))
    docs.append(doc("GlobalNetworkPolicy", "logit", {"selector": "role == 'x'", "ingress": [
        {"action": "Log"}, {"action": "Deny", "protocol": "TCP", "destination": {"ports": [25]}}]}))
    return docs


def test_shared_rules_follow_each_nodes_felix_settings():
    """Policy chains, inlined rules and tier sections are shared between hosts, but a node's own
    FelixConfiguration (node.<name>) changes the Log rules: n2 must not get n1's log prefix."""
    both = compile_documents(_two_nodes_with_own_felix_settings())
    together = {h: both.ruleset(h) for h in ("n1", "n2")}
    for host in ("n1", "n2"):
        alone = compile_documents(_two_nodes_with_own_felix_settings()).ruleset(host)
        assert together[host] == alone, host
    assert 'log prefix "fleet default/logit: "' in together["n1"]
    assert 'limit rate 5/second log prefix "n2-only default/logit: "' in together["n2"]
    assert 'log prefix "fleet profile p: "' in together["n1"] and 'log prefix "n2-only profile p: "' in together["n2"]
    assert "n2-only" not in together["n1"] and "fleet" not in together["n2"]


def _chains_reachable_from(text, start):
    chains, name = {}, None
    for line in text.splitlines():
        m = re.match(r"\tchain (\S+) \{$", line)
        if m:
            name = m.group(1)
            chains[name] = []
        elif name is not None and line.startswith("\t\t"):
            chains[name].append(line.strip())
    seen, todo = set(), [start]
    while todo:
        chain = todo.pop()
        if chain in seen:
            continue
        seen.add(chain)
        for rule in chains[chain]:
            todo.extend(re.findall(r"\b(?:jump|goto) ([^\s,}]+)", rule))
    return {c: chains[c] for c in seen}


def test_reject_deny_action_rejects_everywhere_but_postrouting():
    """nftablesFilterDenyAction Reject: Deny rules, end-of-tier drops, final drops and the
    conntrack-invalid drop reject; the kernel refuses reject at postrouting, so the chains that
    DNAT'd host egress reaches there drop."""
    text = compile_documents(rich_world_rejecting()).ruleset("n1")
    post = _chains_reachable_from(text, "mangle-postrouting")
    assert {"hep-post-out-eth0", "hep-post-out-any-interface-at-all", "post-out/platform/admin-ssh"} <= set(post)
    assert not [r for rules in post.values() for r in rules if "reject" in r]
    assert 'counter drop comment "end of tier default (defaultAction Deny)"' in "\n".join(post["hep-post-out-eth0"])
    normal = _chains_reachable_from(text, "filter-input")
    lines = [r for rules in normal.values() for r in rules]
    assert 'ip saddr 203.0.113.0/24 counter reject comment "security/block-bad ingress[1] Deny"' in lines
    assert 'ct state invalid reject comment "conntrack state invalid"' in lines
    assert not [r for r in lines if " drop" in r and "defaultEndpointToHostAction" not in r]
    assert "reject" not in compile_documents(rich_world()).ruleset("n1")
