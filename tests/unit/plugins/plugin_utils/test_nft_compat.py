# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rendered tables use only nftables syntax that every supported version (0.9.3 to 1.1)
loads and lists stably (docs/nftables-compatibility.md): golden tables and random worlds."""

from __future__ import annotations

import os
import re
import sys

import pytest
from hypothesis import HealthCheck, given, settings

from ansible_collections.hostfw.nftables.plugins.plugin_utils import render
from ansible_collections.hostfw.nftables.plugins.plugin_utils.compiler import compile_documents

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.abspath(os.path.join(HERE, "..", "..", "..")))
from worlds import doc, long_name_world, rich_world, worlds  # noqa: E402 pylint: disable=wrong-import-position

GOLDEN = os.path.join(HERE, "golden")
DOC = os.path.join(HERE, "..", "..", "..", "..", "docs", "nftables-compatibility.md")

# Constructs nft 0.9.3 refuses or lists unstably, with why.
FORBIDDEN = [
    (re.compile(r"\bdestroy\b"), "'destroy' needs nft 1.0.8 (use the table / delete table preamble)"),
    (re.compile(r"\btypeof\b"), "typeof sets need nft 0.9.4"),
    (re.compile(r"\bflush ruleset\b"), "flush ruleset would touch other tables"),
    (re.compile(r"^\s*include\b"), "include would read files of the host"),
]
PROTO_WITH_HEADER = re.compile(r"meta l4proto (tcp|udp|sctp|icmp|icmpv6)\b(?! \.)(.*)")
ADDRESS = re.compile(r"\bip6? [sd]addr\b")


def problems(text):
    out = []
    lines = text.splitlines()
    if lines[:3] != ["table inet hostfw", "delete table inet hostfw", "table inet hostfw {"] and not any(
            lines[i:i + 3] == ["table inet hostfw", "delete table inet hostfw", "table inet hostfw {"]
            for i in range(len(lines))):
        out.append("no 'table inet hostfw' / 'delete table inet hostfw' preamble")
    for n, line in enumerate(lines, 1):
        if line.lstrip().startswith("#"):
            continue
        if re.match(r'\s*comment "', line):
            out.append("line %d: a set, chain or table comment (nft < 0.9.7 refuses it: use a # line)" % n)
        code = re.sub(r'(comment|log prefix) "[^"]*"', "", line)  # what nft parses, without quoted text
        for pattern, why in FORBIDDEN:
            if pattern.search(code):
                out.append("line %d: %s: %s" % (n, why, line.strip()))
        m = PROTO_WITH_HEADER.search(code)
        if m and (re.search(r"\b%s (dport|sport|type|code)\b" % m.group(1), m.group(2)) or ADDRESS.search(m.group(2))):
            out.append("line %d: 'meta l4proto %s' before an address or %s header match lists differently on "
                       "nft <= 0.9.8: %s" % (n, m.group(1), m.group(1), line.strip()))
        for c in re.findall(r'comment "([^"]*)"', line):
            if len(c.encode("utf-8")) > render.COMMENT_MAX:
                out.append("line %d: a rule comment of %d bytes" % (n, len(c.encode("utf-8"))))
        for p in re.findall(r'log prefix "([^"]*)"', line):
            if len(p.encode("utf-8")) > render.LOG_PREFIX_MAX:
                out.append("line %d: a log prefix of %d bytes (nft 1.0.9 refuses 127)" % (n, len(p.encode("utf-8"))))
        if re.search(r"[\x00-\x08\x0b-\x1f\x7f]", line):
            out.append("line %d: a control character" % n)
    return out


@pytest.mark.parametrize("name", sorted(os.listdir(GOLDEN)))
def test_golden_tables_use_the_portable_subset(name):
    with open(os.path.join(GOLDEN, name), encoding="utf-8") as handle:
        assert problems(handle.read()) == []


def test_the_checker_catches_what_it_should():
    bad = ("table inet hostfw\ndelete table inet hostfw\ntable inet hostfw {\n\tset s {\n\t\ttype ipv4_addr\n"
           "\t\tcomment \"x\"\n\t}\n\tchain c {\n\t\tmeta l4proto tcp ip saddr @s tcp dport 22 accept\n"
           "\t\tlog prefix \"%s\"\n\t}\n}\n" % ("é" * 70))
    found = problems(bad)
    assert len(found) == 3, found


def test_long_log_prefixes_are_cut_to_126_bytes():
    docs = [doc("HostEndpoint", "h", {"node": "n", "interfaceName": "eth0", "expectedIPs": ["10.0.0.1"]}),
            doc("Tier", "t" * 60, {"order": 1}),
            doc("GlobalNetworkPolicy", "p" * 60, {"tier": "t" * 60, "ingress": [{"action": "Log"}, {"action": "Allow"}]}),
            doc("FelixConfiguration", "default", {"logPrefix": "x" * 100 + " %t %n"})]
    text = compile_documents(docs).ruleset("n")
    prefixes = re.findall(r'log prefix "([^"]*)"', text)
    assert prefixes and all(len(p.encode("utf-8")) <= render.LOG_PREFIX_MAX for p in prefixes)
    assert render.truncate("é" * 100, render.LOG_PREFIX_MAX).encode("utf-8").__len__() <= render.LOG_PREFIX_MAX


def test_comments_drop_control_characters_and_separators():
    assert render.comment('a\nb\r\x00c\x85d\u2028e\u2029f"g') == "a b c d e f'g"
    assert len(render.comment("é" * 200).encode("utf-8")) <= render.COMMENT_MAX


def test_rich_world_and_annotations_with_control_characters():
    docs = rich_world()
    docs.append(doc("GlobalNetworkPolicy", "annotated", {"selector": "all()", "ingress": [
        {"action": "Allow", "protocol": "TCP", "destination": {"ports": [7]},
         "metadata": {"annotations": {"note": "line1\nflush ruleset\n\x01\x011\x01 \u2028"}}}]}))
    comp = compile_documents(docs)
    for host in comp.hosts_with_rulesets():
        text = comp.ruleset(host)
        assert problems(text) == [], host
        assert "\nflush ruleset" not in text


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(worlds())
def test_random_worlds_use_the_portable_subset(docs):
    comp = compile_documents(docs)
    for host in comp.hosts_with_rulesets():
        assert problems(comp.ruleset(host)) == [], host


def test_the_compatibility_table_lists_every_construct_used():
    with open(DOC, encoding="utf-8") as handle:
        table = handle.read()
    texts = []
    for name in sorted(os.listdir(GOLDEN)):
        with open(os.path.join(GOLDEN, name), encoding="utf-8") as handle:
            texts.append(handle.read())
    used = "\n".join(texts)
    for construct in ("vmap", "th dport", "ip daddr . meta l4proto . th dport", "flags interval", "notrack",
                      "ct status", "ct state", "limit rate", "log prefix", "reject", "meta mark set",
                      "priority raw", "priority mangle", "priority filter", "icmpv6 type", "icmp type . icmp code"):
        if construct in used:
            assert construct in table, "docs/nftables-compatibility.md does not list %s" % construct


def test_long_calico_names_give_chain_names_nft_accepts():
    docs, profile = long_name_world()
    text = compile_documents(docs).ruleset("n")
    names = re.findall(r"^\tchain (\S+) \{", text, re.M)
    assert names and all(len(n) <= render.CHAIN_NAME_MAX for n in names), max(map(len, names))
    long_chains = [n for n in names if "-h" in n and n.startswith("prof-in/")]
    assert long_chains, names
    assert "# profile %s ingress" % profile in text, "the full name stays in the description"
    assert compile_documents(docs).ruleset("n") == text, "stable"


def test_an_interface_named_any_cannot_take_over_the_wildcard_endpoint():
    docs = [doc("HostEndpoint", "all", {"node": "n", "interfaceName": "*", "expectedIPs": ["10.0.0.1"]}),
            doc("HostEndpoint", "named-any", {"node": "n", "interfaceName": "any", "expectedIPs": ["10.0.0.1"],
                                              "profiles": ["projectcalico-default-allow"]})]
    text = compile_documents(docs).ruleset("n")
    assert '"any" : goto hep-in-any' in text and "goto hep-in-any-interface-at-all" in text
    assert text.count("chain hep-in-any {") == 1 and text.count("chain hep-in-any-interface-at-all {") == 1
