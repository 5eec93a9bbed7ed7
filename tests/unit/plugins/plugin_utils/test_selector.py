# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests of plugins/plugin_utils/selector.py against docs/semantics.md §2.

The tables encode Calico's behaviour (parser_test.go / tokenizer_test.go cases plus our own).  The
property tests compare the module with two independent oracles written here: a generator that
knows which canonical form and which verdict each printed selector must have, and a direct port
of the *algorithm* of Calico's tokenizer and recursive-descent parser (tokenize everything first,
then parse), used on random token soup.
"""

from __future__ import annotations

import copy
import pickle
from collections.abc import Mapping

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ansible_collections.hostfw.nftables.plugins.plugin_utils import selector as selmod
from ansible_collections.hostfw.nftables.plugins.plugin_utils.selector import ALL, Selector, SelectorError, parse


def _examples(count):
    """``count`` examples, fewer under a hypothesis profile that asks for fewer than the default
    100 (tests/unit/conftest.py "quick")."""
    return max(10, min(count, count * settings.default.max_examples // 100))


LONG_512 = "l" * 512
LONG_513 = "l" * 513

# ---------------------------------------------------------------------------------------------
# Match table: (selector, labels, expected)
# ---------------------------------------------------------------------------------------------

MATCH_CASES = [
    # == : present and equal, exact and case-sensitive
    ('a == "b"', {"a": "b"}, True),
    ('a == "b"', {"a": "b", "c": "d"}, True),
    ('a == "b"', {}, False),
    ('a == "b"', {"a": "c"}, False),
    ('a == "b"', {"c": "b"}, False),
    ('a == "b"', {"a": "B"}, False),
    ('a == "b"', {"A": "b"}, False),
    ('a == "b"', {"a": "b "}, False),
    ('a == "b"', {"a": " b"}, False),
    ('a == "b"', {"a": ""}, False),
    ('a == ""', {"a": ""}, True),
    ('a == ""', {}, False),
    ('a == ""', {"a": "x"}, False),
    ("a == 'b'", {"a": "b"}, True),
    ("a == 'b'", {"a": "'b'"}, False),
    ('a=="b"', {"a": "b"}, True),
    ('a\t==\t"b"', {"a": "b"}, True),
    ('   a == "b"   ', {"a": "b"}, True),
    ('\ta == "b"\t', {"a": "b"}, True),
    ('a == "it\'s"', {"a": "it's"}, True),
    ("a == 'say \"hi\"'", {"a": 'say "hi"'}, True),
    ('a == "x y"', {"a": "x y"}, True),
    ('a == "x y"', {"a": "x"}, False),
    ('a == "line1\nline2"', {"a": "line1\nline2"}, True),  # a newline inside a literal is fine
    ('a == "\\n"', {"a": "\\n"}, True),  # no escapes: backslash and n
    ('a == "\\n"', {"a": "\n"}, False),
    ('a == "\\"', {"a": "\\"}, True),
    ('a == "é"', {"a": "é"}, True),
    ('a == "é"', {"a": "e"}, False),
    ('a == " "', {"a": " "}, True),
    ('a == " "', {"a": ""}, False),
    ('a == "\t"', {"a": "\t"}, True),
    ('a == "&&"', {"a": "&&"}, True),
    ('a == "||"', {"a": "||"}, True),
    ('a == ")"', {"a": ")"}, True),
    ('a == "}"', {"a": "}"}, True),
    ('a == "!"', {"a": "!"}, True),
    ('a == "has(b)"', {"a": "has(b)"}, True),
    ('a == "has(b)"', {"b": ""}, False),
    ('a == "=="', {"a": "=="}, True),
    # != : a missing label satisfies it
    ('a != "b"', {}, True),
    ('a != "b"', {"a": "b"}, False),
    ('a != "b"', {"a": "c"}, True),
    ('a != "b"', {"a": ""}, True),
    ('a != "b"', {"a": "B"}, True),
    ('a != "b"', {"b": "b"}, True),
    ('a != ""', {"a": ""}, False),
    ('a != ""', {}, True),
    ('a!="b"', {"a": "c"}, True),
    ("a != 'b'", {"a": "b"}, False),
    ('a\t!=\t"b"', {"a": "b"}, False),
    ('!a == "b"', {}, True),
    ('!a == "b"', {"a": "b"}, False),
    ('!a == "b"', {"a": "c"}, True),
    ('!a != "b"', {}, False),
    ('!a != "b"', {"a": "b"}, True),
    ('!a != "b"', {"a": "c"}, False),
    ('has(a) && a != "b"', {}, False),
    ('has(a) && a != "b"', {"a": "c"}, True),
    ('has(a) && a != "b"', {"a": "b"}, False),
    # in
    ('a in {"x", "y"}', {"a": "x"}, True),
    ('a in {"x", "y"}', {"a": "y"}, True),
    ('a in {"x", "y"}', {"a": "z"}, False),
    ('a in {"x", "y"}', {}, False),
    ('a in {"x", "y"}', {"a": ""}, False),
    ('a in {"x", "y"}', {"a": "xy"}, False),
    ('a in {"x", "y"}', {"b": "x"}, False),
    ('a in {}', {"a": ""}, False),
    ('a in {}', {}, False),
    ('a in {"x",}', {"a": "x"}, True),
    ('a in {"x", "y",}', {"a": "y"}, True),
    ('a in {""}', {"a": ""}, True),
    ('a in {""}', {}, False),
    ('a in {"\'", \'"\', "c"}', {"a": '"'}, True),
    ('a in {"\'", \'"\', "c"}', {"a": "'"}, True),
    ('a in {"\'", \'"\', "c"}', {"a": "c"}, True),
    ('a in {"\'", \'"\', "c"}', {"a": "e"}, False),
    ('a in {"\'", \'"\', "c"}', {}, False),
    ('a in{"x"}', {"a": "x"}, True),
    ("a in {'x'}", {"a": "x"}, True),
    ('a in {"x","x"}', {"a": "x"}, True),
    ('a in { "x" , "y" }', {"a": "y"}, True),
    ('a in\t{\t"x"\t}', {"a": "x"}, True),
    ('a in {"}", ","}', {"a": ","}, True),
    ('a in {"}", ","}', {"a": "}"}, True),
    ('a in {"}", ","}', {"a": '"}", ","'}, False),
    ('a in {"x"}', {"a": "X"}, False),
    # not in: a missing label satisfies it
    ('a not in {"x", "y"}', {}, True),
    ('a not in {"x", "y"}', {"a": "x"}, False),
    ('a not in {"x", "y"}', {"a": "y"}, False),
    ('a not in {"x", "y"}', {"a": "z"}, True),
    ('a not in {"x", "y"}', {"a": ""}, True),
    ('a not in {}', {}, True),
    ('a not in {}', {"a": "x"}, True),
    ('a not in {}', {"a": ""}, True),
    ('a notin {"x"}', {"a": "x"}, False),
    ('a notin {"x"}', {"a": "y"}, True),
    ('a not  in {"x"}', {"a": "x"}, False),
    ('a not\tin {"x"}', {"a": "x"}, False),
    ('a notin{"x"}', {"a": "y"}, True),
    ('a not in {"\'", \'"\', "c"}', {}, True),
    ('a not in {"\'", \'"\', "c"}', {"a": "e"}, True),
    ('a not in {"\'", \'"\', "c"}', {"a": '"'}, False),
    ('!a in {"x"}', {}, True),
    ('!a in {"x"}', {"a": "x"}, False),
    ('!a in {"x"}', {"a": "b"}, True),
    ('!a not in {"x"}', {}, False),
    ('!a not in {"x"}', {"a": "x"}, True),
    ('!a not in {"x"}', {"a": "y"}, False),
    ('has(a) && a not in {"x"}', {}, False),
    # has()
    ("has(a)", {"a": ""}, True),
    ("has(a)", {"a": "b"}, True),
    ("has(a)", {}, False),
    ("has(a)", {"b": "a"}, False),
    ("has(a)", {"A": "x"}, False),
    ("has( a )", {"a": "x"}, True),
    ("has(\ta\t)", {"a": "x"}, True),
    ("has(a )", {"a": "x"}, True),
    ("has(  a)", {}, False),
    ("!has(a)", {}, True),
    ("!has(a)", {"a": ""}, False),
    ("!has(a)", {"b": "b"}, True),
    ("has(k8s.io/role)", {"k8s.io/role": "x"}, True),
    ("has(calico/k8s_NS-.1/role)", {"calico/k8s_NS-.1/role": ""}, True),
    ("has(calico/k8s_NS-.1/role)", {"calico/k8s_ns-.1/role": ""}, False),
    # contains / starts with / ends with
    ('a contains "b"', {"a": "abc"}, True),
    ('a contains "b"', {"a": "b"}, True),
    ('a contains "b"', {"a": "ac"}, False),
    ('a contains "b"', {}, False),
    ('a contains "b"', {"b": "b"}, False),
    ('a contains "B"', {"a": "abc"}, False),
    ('a contains ""', {"a": ""}, True),
    ('a contains ""', {"a": "x"}, True),
    ('a contains ""', {}, False),
    ('a contains"b"', {"a": "abc"}, True),
    ("a contains 'bc'", {"a": "abcd"}, True),
    ("a contains '\"'", {"a": 'x"y'}, True),
    ("a contains '\"'", {"a": "x'y"}, False),
    ('a starts with "ab"', {"a": "abc"}, True),
    ('a starts with "ab"', {"a": "ab"}, True),
    ('a starts with "ab"', {"a": "a"}, False),
    ('a starts with "ab"', {"a": "cab"}, False),
    ('a starts with "ab"', {}, False),
    ('a startswith "ab"', {"a": "abx"}, True),
    ('a starts  with "ab"', {"a": "abx"}, True),
    ('a starts\twith "ab"', {"a": "abx"}, True),
    ('a starts with"ab"', {"a": "abx"}, True),
    ('a starts with ""', {"a": ""}, True),
    ('a starts with ""', {}, False),
    ('a starts with "\'"', {"a": "'x"}, True),
    ('a ends with "bc"', {"a": "abc"}, True),
    ('a ends with "bc"', {"a": "bc"}, True),
    ('a ends with "bc"', {"a": "bca"}, False),
    ('a ends with "bc"', {}, False),
    ('a endswith "bc"', {"a": "xbc"}, True),
    ('a ends \t with "bc"', {"a": "xbc"}, True),
    ('a ends with ""', {"a": "x"}, True),
    ('a ends with ""', {}, False),
    ('!a contains "b"', {}, True),
    ('!a contains "b"', {"a": "b"}, False),
    ('!a starts with "b"', {}, True),
    ('!a starts with "b"', {"a": "bx"}, False),
    ('!a ends with "b"', {}, True),
    ('!a ends with "b"', {"a": "xb"}, False),
    # empty selector, all(), global()
    ("", {}, True),
    ("", {"a": "b"}, True),
    (" ", {}, True),
    ("\t", {"a": "b"}, True),
    (" \t ", {}, True),
    ("all()", {}, True),
    ("all()", {"a": "b"}, True),
    ("all( )", {}, True),
    ("all(\t)", {}, True),
    (" all()", {"a": "b"}, True),
    (" (all() )", {}, True),
    ("!all()", {}, False),
    ("!all()", {"a": "b"}, False),
    ("!!all()", {}, True),
    ("global()", {}, True),
    (" global()", {"a": "b"}, True),
    ("global( \t)", {}, True),
    ("!global()", {}, False),
    ('all() && a == "b"', {"a": "b"}, True),
    ('all() && a == "b"', {}, False),
    ("!all() || has(a)", {"a": ""}, True),
    ("!all() || has(a)", {}, False),
    ("all() || !all()", {}, True),
    # precedence: ! > && > ||
    ('a == "1" || b == "1" && c == "1"', {"a": "1"}, True),
    ('a == "1" || b == "1" && c == "1"', {"b": "1"}, False),
    ('a == "1" || b == "1" && c == "1"', {"b": "1", "c": "1"}, True),
    ('b == "1" && c == "1" || a == "1"', {"a": "1"}, True),
    ('(a == "1" || b == "1") && c == "1"', {"a": "1"}, False),
    ('(a == "1" || b == "1") && c == "1"', {"a": "1", "c": "1"}, True),
    ("!has(a) && has(b)", {"b": ""}, True),
    ("!has(a) && has(b)", {"a": "", "b": ""}, False),
    ("!(has(a) && has(b))", {"a": ""}, True),
    ("!(has(a) && has(b))", {"a": "", "b": ""}, False),
    ("!(has(a) && has(b))", {}, True),
    ("!has(a) || has(b)", {"a": ""}, False),
    ("!has(a) || has(b)", {}, True),
    ("!has(a) || has(b)", {"a": "", "b": ""}, True),
    ("!(has(a) || has(b))", {}, True),
    ("!(has(a) || has(b))", {"b": ""}, False),
    ("! a == 'a1' || ! b == 'b1'", {"a": "a1", "b": "b1"}, False),
    ("! a == 'a1' || ! b == 'b1'", {"a": "a1"}, True),
    ("a != 'a1' && !b == 'b1'", {"a": "a1", "b": "b1"}, False),
    ("a != 'a1' && !b == 'b1'", {"a": "a2", "b": "b2"}, True),
    ("!!has(a)", {"a": ""}, True),
    ("!!has(a)", {}, False),
    ("!!!has(a)", {}, True),
    ("!!!has(a)", {"a": "b"}, False),
    ("! ! ! has(a)", {"a": "b"}, False),
    ("!! ! has(a)", {"a": "b"}, False),
    ("! !!has(a)", {}, True),
    ("!(!has(a))", {"a": ""}, True),
    ("!(!has(a))", {}, False),
    ("!(!(has(a)))", {"a": ""}, True),
    ("!(has(b) || !has(a))", {"a": "a"}, True),
    ("!(!has(a) || has(b))", {"a": "a"}, True),
    ("!(!has(a) || has(b))", {"a": "a", "b": ""}, False),
    ("has(a) && has(b) || has(c) && has(d)", {"a": "", "b": ""}, True),
    ("has(a) && has(b) || has(c) && has(d)", {"c": "", "d": ""}, True),
    ("has(a) && has(b) || has(c) && has(d)", {"a": "", "c": ""}, False),
    ("has(a) && (has(b) || has(c)) && has(d)", {"a": "", "c": "", "d": ""}, True),
    ("has(a) && (has(b) || has(c)) && has(d)", {"a": "", "d": ""}, False),
    ("((((has(a)))))", {"a": ""}, True),
    ("((((has(a)))))", {}, False),
    ("(has(a))&&(has(b))", {"a": "", "b": ""}, True),
    ("(has(a))&&(has(b))", {"a": ""}, False),
    ("has(a)||has(b)", {"b": ""}, True),
    ("has(a)||has(b)", {}, False),
    ('a == "x" && a == "y"', {"a": "x"}, False),
    ('a == "x" || a == "y"', {"a": "y"}, True),
    ('a != "x" && a != "y"', {}, True),
    ('a != "x" && a != "y"', {"a": "x"}, False),
    ('a != "x" && a != "y"', {"a": "z"}, True),
    ('(a == "x")', {"a": "x"}, True),
    ('!(a == "x")', {}, True),
    ('!(a in {"x"})', {}, True),
    ('a=="1"&&b=="2"||c=="3"', {"c": "3"}, True),
    ('a=="1"&&(b=="2"||c=="3")', {"c": "3"}, False),
    # labels spelled like keywords (keywords are contextual)
    ('contains contains "contains"', {"contains": "xcontainsx"}, True),
    ('contains contains "contains"', {"contains": "x"}, False),
    ("contains contains 'contains'", {"contains": "contains"}, True),
    ('in in {"in"}', {"in": "in"}, True),
    ('in in {"in"}', {"in": "out"}, False),
    ('in in{}', {"in": "x"}, False),
    ('not in {"x"}', {"not": "x"}, True),
    ('not in {"x"}', {}, False),
    ('not not in {"x"}', {}, True),
    ('not not in {"x"}', {"not": "x"}, False),
    ('notin notin {"x"}', {"notin": "y"}, True),
    ('has == "x"', {"has": "x"}, True),
    ('has == "x"', {}, False),
    ("has(has)", {"has": ""}, True),
    ("has( all )", {"all": ""}, True),
    ('all == "x"', {"all": "x"}, True),
    ('all == "x"', {}, False),
    ('global == "x"', {"global": "x"}, True),
    ('starts starts with "s"', {"starts": "sx"}, True),
    ('startswith starts with "value"', {"startswith": "value1"}, True),
    ('endswith ends with "v"', {"endswith": "xv"}, True),
    ('ends ends with "e"', {"ends": "e"}, True),
    ('with == "w"', {"with": "w"}, True),
    ('in == "x"', {"in": "x"}, True),
    ('not == "x"', {"not": "x"}, True),
    ('not != "x"', {}, True),
    ('a == "x" && not in {"y"}', {"a": "x", "not": "y"}, True),
    ('a == "x" && not in {"y"}', {"a": "x"}, False),
    ("has(in) && has(not)", {"in": "", "not": ""}, True),
    ('all(  ) && all == "1"', {"all": "1"}, True),
    ('a == "x" && contains contains "c"', {"a": "x", "contains": "abc"}, True),
    ('a in {"in", "not in"}', {"a": "not in"}, True),
    # odd identifiers
    ('k8s.io/role == "x"', {"k8s.io/role": "x"}, True),
    ('calico/k8s_ns == "kube-system" && k8s-app == "kube-dns"',
     {"calico/k8s_ns": "kube-system", "k8s-app": "kube-dns"}, True),
    ('calico/k8s_ns == "kube-system" && k8s-app == "kube-dns"', {"calico/k8s_ns": "kube-system"}, False),
    ('-a == "x"', {"-a": "x"}, True),
    ('. == "x"', {".": "x"}, True),
    ('/ in {"x"}', {"/": "x"}, True),
    ('a.b/c-d_e == "1"', {"a.b/c-d_e": "1"}, True),
    ('0 == "0"', {"0": "0"}, True),
    ('A == "1"', {"a": "1"}, False),
    ('_ != "1"', {}, True),
    ('node-role.kubernetes.io/control-plane == ""', {"node-role.kubernetes.io/control-plane": ""}, True),
    ("has(node-role.kubernetes.io/control-plane)", {"node-role.kubernetes.io/worker": ""}, False),
    ('projectcalico.org/namespace == "default"', {"projectcalico.org/namespace": "default"}, True),
    (LONG_512 + ' == "x"', {LONG_512: "x"}, True),
    ("has(" + LONG_512 + ")", {LONG_512: ""}, True),
    # whitespace between every token
    ('\ta\t==\t"b"\t&&\thas(c)\t', {"a": "b", "c": ""}, True),
    ('( a == "b" ) || ( ! has( c ) )', {}, True),
    ('(a=="b")||(!has(c))', {"c": ""}, False),
]


@pytest.mark.parametrize("text, labels, expected", MATCH_CASES)
def test_match_table(text, labels, expected):
    sel = parse(text)
    assert sel.matches(labels) is expected
    # The canonical form selects the same label sets.
    assert parse(sel.canonical).matches(labels) is expected


def test_match_table_is_big_enough():
    assert len(MATCH_CASES) >= 200
    # Every operator and function occurs in the table.
    texts = " ".join(case[0] for case in MATCH_CASES)
    for word in ("==", "!=", " in ", "not in", "notin", "contains", "starts with", "startswith", "ends with",
                 "endswith", "has(", "all()", "global()", "!", "&&", "||", "(", "{}"):
        assert word in texts, word


# ---------------------------------------------------------------------------------------------
# Canonical form
# ---------------------------------------------------------------------------------------------

CANONICAL_CASES = [
    # Calico's canonicalisationTests (parser_test.go) and semantics 2.6.
    ("", "all()"),
    (" all() ", "all()"),
    (" (all() )", "all()"),
    ("! (has( b)||! has(a ))", "!(has(b) || !has(a))"),
    ('! (a == "b"&&! c != "d")', '!(a == "b" && !c != "d")'),
    ('a == "\'"', 'a == "\'"'),
    ("a == '\"'", "a == '\"'"),
    ("a contains '\"'", "a contains '\"'"),
    ('a contains "\'"', 'a contains "\'"'),
    ("a startswith '\"'", "a starts with '\"'"),
    ('a endswith "\'"', 'a ends with "\'"'),
    ("a!='\"'", "a != '\"'"),
    ('a in {"d"}', 'a in {"d"}'),
    ('a in {"a", "b"}', 'a in {"a", "b"}'),
    ('a in {"d", "a", "b"}', 'a in {"a", "b", "d"}'),
    ('a in {"z", "x", "y", "a"}', 'a in {"a", "x", "y", "z"}'),
    ('a in {"z", "z", "x", "y", "x", "a"}', 'a in {"a", "x", "y", "z"}'),
    # Calico's visitor test input, without the visitor.
    ("!(!(k == 'v' && has(t) || all()) && (a in {'b', 'c'}))",
     '!(!((k == "v" && has(t)) || all()) && a in {"b", "c"})'),
    ("k == 'v' && x == 'y'", '(k == "v" && x == "y")'),
    ("k == 'v' || has(x)", '(k == "v" || has(x))'),
    ("!(k == 'v')", '!k == "v"'),
    ("k not in {'v'}", 'k not in {"v"}'),
    # Our own.
    ("\t", "all()"),
    ("all(\t)", "all()"),
    ("!!all()", "all()"),
    ("!all()", "!all()"),
    ("global( )", "global()"),
    ("!global()", "!global()"),
    ("has(\ta )", "has(a)"),
    ("!!has(a)", "has(a)"),
    ("!!!has(a)", "!has(a)"),
    ("! ! ! ! has(a)", "has(a)"),
    ("!(!has(a))", "!!has(a)"),  # Calico collapses "!" runs only before one operand
    ("!!(!has(a))", "!has(a)"),
    ("!(!(!has(a)))", "!!!has(a)"),
    ("(((has(a))))", "has(a)"),
    ("!((has(a)))", "!has(a)"),
    ("a==\"b\"", 'a == "b"'),
    ("a == 'b'", 'a == "b"'),
    ("a != 'b'", 'a != "b"'),
    ("a contains 'b'", 'a contains "b"'),
    ("a starts  with 'b'", 'a starts with "b"'),
    ("a starts\twith 'b'", 'a starts with "b"'),
    ("a ends\t\twith 'b'", 'a ends with "b"'),
    ("a notin {}", "a not in {}"),
    ("a not in {'x',}", 'a not in {"x"}'),
    ("a in {}", "a in {}"),
    ("a in {'\"', \"'\", 'c'}", "a in {'\"', \"'\", \"c\"}"),
    ("a in {\"'\", '\"', \"c\"}", "a in {'\"', \"'\", \"c\"}"),
    ("a in {'b', 'B', 'a', 'A', '', '_'}", 'a in {"", "A", "B", "_", "a", "b"}'),
    ("a in {'é', 'z', 'e'}", 'a in {"e", "z", "é"}'),
    ('a == "1" && b == "2" && c == "3"', '(a == "1" && b == "2" && c == "3")'),
    ('(a == "1" && b == "2") && c == "3"', '((a == "1" && b == "2") && c == "3")'),
    ('a == "1" && (b == "2" && c == "3")', '(a == "1" && (b == "2" && c == "3"))'),
    ('a == "1" || b == "2" || c == "3"', '(a == "1" || b == "2" || c == "3")'),
    ('a == "1" || b == "2" && c == "3"', '(a == "1" || (b == "2" && c == "3"))'),
    ('(a == "1" || b == "2") && c == "3"', '((a == "1" || b == "2") && c == "3")'),
    ('!(a == "1" || b == "2") && !c == "3"', '(!(a == "1" || b == "2") && !c == "3")'),
    ("has(a) && all()", "(has(a) && all())"),
    ("all() && all()", "(all() && all())"),
    ("global() || has(x)", "(global() || has(x))"),
    ('contains contains "contains"', 'contains contains "contains"'),
    ('in in {"in"}', 'in in {"in"}'),
    ('not not in {"not"}', 'not not in {"not"}'),
    ("has(has)", "has(has)"),
    ('k8s.io/role==\'x\'&&-a!="y"', '(k8s.io/role == "x" && -a != "y")'),
    ('a == "x y"', 'a == "x y"'),
    ('a == "has(b) && c"', 'a == "has(b) && c"'),
    ('a == "x\ny"', 'a == "x\ny"'),
]


@pytest.mark.parametrize("text, canonical", CANONICAL_CASES)
def test_canonical_form(text, canonical):
    sel = parse(text)
    assert sel.canonical == canonical
    assert str(sel) == canonical


@pytest.mark.parametrize("text, canonical", CANONICAL_CASES)
def test_canonical_form_round_trips(text, canonical):
    once = parse(canonical).canonical
    if "!!" in canonical:
        # Calico's canonical form is not a fixed point when it prints a double negation that came
        # from parentheses ("!(!x)" -> "!!x" -> "x"); the second round is.
        assert parse(once).canonical == once
    else:
        assert once == canonical


def test_double_negation_through_parentheses_is_kept_like_calico():
    sel = parse("!(!has(a))")
    assert sel.canonical == "!!has(a)"
    assert parse(sel.canonical).canonical == "has(a)"
    assert sel != parse("has(a)")  # different canonical strings, as in Calico (different IP sets)
    for labels in ({}, {"a": ""}):
        assert sel.matches(labels) == parse("has(a)").matches(labels)


# ---------------------------------------------------------------------------------------------
# Errors: (selector, position)
# ---------------------------------------------------------------------------------------------

ERROR_CASES = [
    # Calico's badSelectors (parser_test.go) and tokenizer failures (tokenizer_test.go).
    ("b == b", 5),
    ("b contains b", 11),
    ("b starts with b", 14),
    ("b ends with b", 12),
    ("'b1' == b", 0),
    ("b", 1),
    ("a b", 2),
    ("!", 1),
    ('foo == "bar" &', 13),
    ('foo == "bar" |', 13),
    ("foo != ||", 7),
    ('foo in {"", ||', 12),
    ('foo in ""', 7),
    ('"FOO', 0),
    ('"FOO\'', 0),
    ("'FOO", 0),
    ("(", 1),
    ('(a == "foo"', 11),
    (")", 0),
    ("()", 1),
    ("%", 0),
    ('a == "b" && %', 12),
    ('a == "b" || %', 12),
    ("a ", 2),
    ("has(foo) &&", 11),
    ('label starts foo "value"', 6),
    ('label ends foo "value"', 6),
    ('label squiggles "value"', 6),
    ("thing=hello &", 5),
    # whitespace other than space and tab
    ('a == "b"\n', 8),
    ('\na == "b"', 0),
    ('a == "b"\r\n', 8),
    ('a\n== "b"', 1),
    ('a ==\n"b"', 4),
    ('a == "b" \x0b', 9),
    ('a\u00a0== "b"', 1),
    ('a == "b" &&\u3000has(c)', 11),
    # function tokens
    ("has (a)", 4),
    ("all ()", 4),
    ("global ()", 7),
    ("has()", 4),
    ("has( )", 5),
    ("has(a", 5),
    ("has(a b)", 6),
    ("has(a,b)", 5),
    ("has('a')", 4),
    ("all(x)", 4),
    ("all(", 4),
    ("global(", 7),
    ("has(a) has(b)", 7),
    ("all() all()", 6),
    ("allx()", 4),
    # labels and literals
    (LONG_513 + ' == "x"', 0),
    ("has(" + LONG_513 + ")", 4),
    ('a == "x" && ' + LONG_513 + ' == "x"', 12),
    ('a == \'b', 5),
    ('a == "b', 5),
    ("a == \u201cb\u201d", 5),
    ('a == "b" "c"', 9),
    ('a == "b" && "c"', 12),
    ('("a" == b)', 1),
    ('a == ("b")', 5),
    ("a == 1", 5),
    ("a == b.c", 5),
    # single-character operators and stray punctuation
    ('a = "b"', 2),
    ('a === "b"', 4),
    ('a == "b" & has(c)', 9),
    ('a == "b" | has(c)', 9),
    ('a ! = "b"', 2),
    ('a =! "b"', 2),
    ('a == "b" ; c == "d"', 9),
    ('a == "b",', 8),
    ("a ,", 2),
    ("{}", 0),
    ('a == "b" #comment', 9),
    # keyword operators: word boundaries and spelling
    ('a inx {"b"}', 2),
    ('a in-x {"b"}', 2),
    ('a not {"b"}', 2),
    ('a not inx {"b"}', 2),
    ('a starts "b"', 2),
    ('a ends "b"', 2),
    ('a ends withs "b"', 2),
    ('a containsx "b"', 2),
    ('a Contains "b"', 2),
    ('a IN {"b"}', 2),
    ('a starts with x', 14),
    ("a not in b", 9),
    ('a has(b)', 2),
    # sets
    ('a in "b"', 5),
    ("a in b", 5),
    ('a in ("b")', 5),
    ('a in {"b" "c"}', 10),
    ('a in {"b",,}', 10),
    ('a in {,}', 6),
    ('a in {"b"', 9),
    ("a in {", 6),
    ("a in {x}", 6),
    ('a in {{"x"}}', 6),
    ('a in {"x"}}', 10),
    ('a not in {"x", b}', 15),
    # incomplete expressions
    ("a ==", 4),
    ("a in", 4),
    ("a not in", 8),
    ("a contains", 10),
    ("a starts with", 13),
    ('a == "b" &&', 11),
    ('a == "b" ||', 11),
    ('a == "b" && !', 13),
    ("!!", 2),
    ("!()", 2),
    ('a == "b" && ()', 13),
    # operators in the wrong place
    ('&& a == "b"', 0),
    ('|| a == "b"', 0),
    ('a == "b" && || c == "d"', 12),
    ('a == "b" || && c == "d"', 12),
    ('a == "b" c == "d"', 9),
    ('a in {"x"} b', 11),
    # parentheses
    ('a == "b")', 8),
    ('((a == "b")', 11),
    ('(a == "b"))', 10),
    ('(a == "b" c)', 10),
    ('(a == "b") (c == "d")', 11),
    ('(( has(a) ) || (has(b)', 22),
]


@pytest.mark.parametrize("text, position", ERROR_CASES)
def test_error_table(text, position):
    with pytest.raises(SelectorError) as info:
        parse(text)
    err = info.value
    assert err.selector == text
    assert err.position == position, err.reason
    assert 0 <= err.position <= len(text)
    assert str(err) == 'invalid selector "%s": %s at position %d' % (text, err.reason, position)
    assert err.reason


def test_error_table_is_big_enough():
    assert len(ERROR_CASES) >= 40


@pytest.mark.parametrize("text, fragment", [
    ("a == b", "expected a string literal after '=='"),
    ("a != ", "expected a string literal after '!='"),
    ("a contains b", "expected a string literal after 'contains'"),
    ("a starts with b", "expected a string literal after 'starts with'"),
    ('a in "b"', "expected '{' after 'in'"),
    ('a not in "b"', "expected '{' after 'not in'"),
    ('(a == "foo"', "')'"),
    ('a == "b" c', "unexpected content at end of selector"),
    ('a == "b")', "unexpected ')'"),
    ('a == "b"\n', "newline"),
    ('a\r== "b"', "carriage return"),
    (LONG_513 + ' == "x"', "label too long"),
    ('"FOO', "unterminated string literal"),
    ('a = "b"', "'=='"),
    ('a == "b" & c', "'&&'"),
    ('a == "b" | c', "'||'"),
    ("has()", "label name after 'has('"),
    ("has(a", "')'"),
    ("()", "empty parentheses"),
    ('a b == "c"', "expected an operator"),
    ('a in {"b" "c"}', "expected ',' or '}'"),
    ("a in {,}", "expected a string literal or '}'"),
    ("%", "unexpected character '%'"),
    ("has (a)", "after label 'has', found '('"),
    ("a inx {}", "after label 'a', found 'inx'"),
    ("!", "the end of the selector"),
])
def test_error_reasons(text, fragment):
    with pytest.raises(SelectorError) as info:
        parse(text)
    assert fragment in info.value.reason
    assert fragment in str(info.value)


def test_error_message_format_and_attributes():
    with pytest.raises(SelectorError) as info:
        parse('role == node')
    err = info.value
    assert isinstance(err, ValueError)
    assert (err.selector, err.position) == ("role == node", 8)
    assert err.reason == "expected a string literal after '==', found label 'node'"
    assert str(err) == ('invalid selector "role == node": expected a string literal after \'==\', '
                        "found label 'node' at position 8")


def test_selector_error_pickles():
    err = SelectorError("a ==", 4, "boom")
    again = pickle.loads(pickle.dumps(err))
    assert (again.selector, again.position, again.reason) == ("a ==", 4, "boom")
    assert str(again) == str(err)


@pytest.mark.parametrize("value", [None, 1, 1.5, b"has(a)", ["has(a)"], {"a": "b"}, True])
def test_non_string_input_raises_selector_error(value):
    with pytest.raises(SelectorError) as info:
        parse(value)
    assert info.value.position == 0
    assert "must be a string" in info.value.reason


# ---------------------------------------------------------------------------------------------
# The Selector object
# ---------------------------------------------------------------------------------------------


def test_parse_is_memoised():
    text = 'memo == "x" && has(y)'
    assert parse(text) is parse(text)
    assert parse.cache_info().maxsize >= 65536


def test_str_subclass_input():
    class Tagged(str):
        def __str__(self):
            return "not the text"

    sel = parse(Tagged('a == "b"'))
    assert sel.text.__class__ is str
    assert sel.text == 'a == "b"'
    assert sel.canonical == 'a == "b"'


def test_equality_and_hash_by_canonical_form():
    a = parse('a == "x" && b in {"2", "1", "1"}')
    b = parse("a=='x'&&b in{'1','2',}")
    assert a is not b
    assert a == b
    assert hash(a) == hash(b)
    assert len({a, b}) == 1
    assert a != parse('b in {"1", "2"} && a == "x"')  # operand order is kept, as in Calico
    assert a != a.canonical  # a Selector is not its string
    assert (a == a.canonical) is False


def test_immutable():
    sel = parse("has(a)")
    with pytest.raises(AttributeError):
        sel.canonical = "x"
    with pytest.raises(AttributeError):
        sel.matches = None
    with pytest.raises(AttributeError):
        del sel.is_all
    with pytest.raises(AttributeError):
        sel.extra = 1


def test_copy_and_pickle():
    sel = parse("!(!has(a)) && b notin {'x'}")
    assert copy.copy(sel) is sel
    assert copy.deepcopy(sel) is sel
    again = pickle.loads(pickle.dumps(sel))
    assert again == sel
    assert again.canonical == "(!!has(a) && b not in {\"x\"})"
    assert again.matches({"a": ""}) and not again.matches({"a": "", "b": "x"})


@pytest.mark.parametrize("text, is_all", [
    ("", True), ("  ", True), ("all()", True), ("(all())", True), ("!!all()", True), ("all( )", True),
    ("global()", False), ("!all()", False), ("has(a)", False), ("all() && all()", False),
    ('all == "x"', False),
])
def test_is_all(text, is_all):
    assert parse(text).is_all is is_all


@pytest.mark.parametrize("text, uses_global", [
    ("global()", True), (" global( ) ", True), ("!global()", True), ("!!global()", True),
    ("has(a) || global()", True), ("(has(a) && (has(b) || !global()))", True),
    ("", False), ("all()", False), ('a == "global()"', False), ("has(global)", False),
    ('global == "x"', False), ('a in {"global()"}', False),
])
def test_uses_global(text, uses_global):
    assert parse(text).uses_global is uses_global


def test_all_constant():
    assert isinstance(ALL, Selector)
    assert ALL.canonical == "all()"
    assert ALL.is_all and not ALL.uses_global
    assert ALL == parse("")
    assert ALL.matches({}) and ALL.matches({"a": "b"})
    assert repr(ALL) == "Selector('all()')"


def test_matches_accepts_any_mapping():
    class Labels(Mapping):
        def __init__(self, data):
            self._data = data

        def __getitem__(self, key):
            return self._data[key]

        def __iter__(self):
            return iter(self._data)

        def __len__(self):
            return len(self._data)

    sel = parse('a == "1" && b != "2" && has(c) && d not in {"x"} && e contains "y"')
    assert sel.matches(Labels({"a": "1", "c": "", "e": "xyz"}))
    assert not sel.matches(Labels({"a": "1", "c": "", "e": "xyz", "d": "x"}))


def test_deep_nesting_is_not_limited_by_recursion():
    depth = 5000
    sel = parse("(" * depth + 'a == "b"' + ")" * depth)
    assert sel.canonical == 'a == "b"'
    assert sel.matches({"a": "b"}) and not sel.matches({})

    negs = parse('!(' * depth + 'a == "b"' + ")" * depth)  # 5000 negations: even
    assert negs.canonical == "!" * depth + 'a == "b"'
    assert negs.matches({"a": "b"}) and not negs.matches({"a": "c"})

    # Alternating && / || nested 3000 deep: has(a) && (has(b) || (has(a) && (has(b) || ... has(z))))
    text = "has(z)"
    for i in range(3000):
        text = ("has(a) && (%s)" if i % 2 else "has(b) || (%s)") % text
    deep = parse(text)
    assert deep.canonical.count("(") == deep.canonical.count(")")
    assert deep.matches({"a": "", "b": ""})
    assert not deep.matches({"b": ""})          # the outermost && needs a
    assert deep.matches({"a": "", "z": ""})     # a at every && level, z at the bottom
    assert not deep.matches({"a": ""})
    assert parse(deep.canonical) == deep

    with pytest.raises(SelectorError) as info:
        parse("(" * depth + 'a == "b"' + ")" * (depth - 1))
    assert info.value.position == 2 * depth + 7  # the end: a ')' is missing


def test_simplified_matchers_keep_semantics():
    # The compiler folds constants, negations and single-item sets; spot-check those paths.
    cases = [
        ('!a in {"x"}', [({}, True), ({"a": "x"}, False), ({"a": "y"}, True)]),
        ('!a not in {"x", "y"}', [({}, False), ({"a": "x"}, True), ({"a": "z"}, False)]),
        ('!(a != "x")', [({}, False), ({"a": "x"}, True)]),
        ("!(has(a) || all())", [({}, False), ({"a": ""}, False)]),
        ("!(has(a) && all())", [({}, True), ({"a": ""}, False)]),
        ("!(has(a) && !all())", [({}, True), ({"a": ""}, True)]),
        ("has(a) || !global()", [({}, False), ({"a": ""}, True)]),
        ('a in {} || b not in {}', [({}, True)]),
        ('a in {} && has(b)', [({"b": ""}, False)]),
        ("!(has(a) && (has(b) && !has(c)))", [({"a": "", "b": ""}, False), ({"a": "", "b": "", "c": ""}, True)]),
        ("!(has(a) || has(b) || has(c) || has(d))", [({}, True), ({"d": ""}, False)]),
        ("has(a) && has(b) && has(c) && has(d)", [({"a": "", "b": "", "c": "", "d": ""}, True),
                                                  ({"a": "", "b": "", "c": ""}, False)]),
        ('!a contains "x"', [({}, True), ({"a": "yxy"}, False), ({"a": "y"}, True)]),
    ]
    for text, expectations in cases:
        sel = parse(text)
        for labels, expected in expectations:
            assert sel.matches(labels) is expected, (text, labels)


def test_core_module_imports_nothing_from_ansible():
    with open(selmod.__file__, encoding="utf-8") as handle:
        source = handle.read()
    assert "import ansible" not in source
    assert "from ansible" not in source


# ---------------------------------------------------------------------------------------------
# Oracle 1: random syntax trees printed in random ways
# ---------------------------------------------------------------------------------------------
# Tree shapes: ("has", l) ("all",) ("global",) ("cmp", op, l, v) ("set", op, l, [v...])
#              ("not", t) ("and", [t...]) ("or", [t...])

LABEL_POOL = ["a", "b", "c", "in", "not", "contains", "has", "all", "global", "starts", "ends", "with",
              "notin", "startswith", "k8s.io/role", "-x", "a.b/c-d_e", "0"]
VALUE_POOL = ["", "x", "y", "xy", "yx", "in", '"', "'", "x y", "&&", ")", "é", "\n", "\t", "!", "}", ","]

labels_st = st.sampled_from(LABEL_POOL)
values_st = st.one_of(
    st.sampled_from(VALUE_POOL),
    st.text(alphabet="xy\"' ", max_size=3),
    st.text(max_size=3),
).filter(lambda v: not ('"' in v and "'" in v))

leaf_st = st.one_of(
    st.tuples(st.just("has"), labels_st),
    st.just(("all",)),
    st.just(("global",)),
    st.tuples(st.just("cmp"), st.sampled_from(["==", "!=", "contains", "starts with", "ends with"]), labels_st,
              values_st),
    st.tuples(st.just("set"), st.sampled_from(["in", "not in"]), labels_st, st.lists(values_st, max_size=4)),
)
tree_st = st.recursive(
    leaf_st,
    lambda inner: st.one_of(
        st.tuples(st.just("not"), inner),
        st.tuples(st.just("and"), st.lists(inner, min_size=2, max_size=4)),
        st.tuples(st.just("or"), st.lists(inner, min_size=2, max_size=4)),
    ),
    max_leaves=14,
)
label_map_st = st.dictionaries(labels_st, st.sampled_from(VALUE_POOL + ["xyz", "yxx", "a"]), max_size=6)

WS = st.sampled_from(["", "", " ", "\t", "  ", " \t "])
WS1 = st.sampled_from([" ", "\t", "  ", "\t \t"])


def ref_eval(tree, labels):
    kind = tree[0]
    if kind == "has":
        return tree[1] in labels
    if kind in ("all", "global"):
        return True
    if kind == "cmp":
        op, label, value = tree[1:]
        present = label in labels
        got = labels.get(label)
        if op == "==":
            return present and got == value
        if op == "!=":
            return not present or got != value
        if op == "contains":
            return present and value in got
        if op == "starts with":
            return present and got.startswith(value)
        return present and got.endswith(value)
    if kind == "set":
        op, label, values = tree[1:]
        if op == "in":
            return label in labels and labels[label] in values
        return label not in labels or labels[label] not in values
    if kind == "not":
        return not ref_eval(tree[1], labels)
    if kind == "and":
        return all(ref_eval(t, labels) for t in tree[1])
    return any(ref_eval(t, labels) for t in tree[1])


def ref_quote(value):
    return "'" + value + "'" if '"' in value else '"' + value + '"'


def ref_canonical(tree):
    kind = tree[0]
    if kind == "has":
        return "has(%s)" % tree[1]
    if kind in ("all", "global"):
        return kind + "()"
    if kind == "cmp":
        return "%s %s %s" % (tree[2], tree[1], ref_quote(tree[3]))
    if kind == "set":
        return "%s %s {%s}" % (tree[2], tree[1], ", ".join(ref_quote(v) for v in sorted(set(tree[3]))))
    if kind == "not":
        return "!" + ref_canonical(tree[1])
    sep = " && " if kind == "and" else " || "
    return "(" + sep.join(ref_canonical(t) for t in tree[1]) + ")"


class Printer:
    """Prints a tree with random blanks, quotes, operator spellings, redundant parentheses and
    double negations, and computes the canonical form Calico gives to exactly that text."""

    def __init__(self, draw):
        self.draw = draw

    def ws(self):
        return self.draw(WS)

    def ws1(self):
        return self.draw(WS1)

    def literal(self, value):
        if '"' in value:
            return "'" + value + "'"
        if "'" in value:
            return '"' + value + '"'
        quote = self.draw(st.sampled_from(['"', "'"]))
        return quote + value + quote

    def leaf(self, tree):
        kind = tree[0]
        if kind == "has":
            return "has(" + self.ws() + tree[1] + self.ws() + ")"
        if kind in ("all", "global"):
            return kind + "(" + self.ws() + ")"
        if kind == "cmp":
            op, label, value = tree[1:]
            if op in ("==", "!="):
                text = label + self.ws() + op
            elif op == "contains":
                text = label + self.ws1() + "contains"
            else:
                text = label + self.ws1() + op.split()[0] + self.ws() + "with"
            return text + self.ws() + self.literal(value)
        op, label, values = tree[1:]
        text = label + self.ws1() + ("in" if op == "in" else "not" + self.ws() + "in") + self.ws() + "{"
        items = [self.ws() + self.literal(v) + self.ws() for v in values]
        text += ",".join(items)
        if items and self.draw(st.booleans()):
            text += ","
        return text + self.ws() + "}"

    def bangs(self, count, core):
        return "".join("!" + self.ws() for unused in range(count)) + core

    def unary(self, tree):
        """-> (number of leading '!', core text, canonical of the core)"""
        kind = tree[0]
        if kind == "not":
            count, core, canon = self.unary(tree[1])
            if self.draw(st.booleans()):
                result = (count + 1, core, canon)  # "!" merges with the operand's own "!"s
            else:
                inner = ("!" if count % 2 else "") + canon
                result = (1, "(" + self.ws() + self.bangs(count, core) + self.ws() + ")", inner)
        elif kind in ("and", "or"):
            text, canon = self.expr(tree)
            result = (0, "(" + self.ws() + text + self.ws() + ")", canon)
        else:
            result = (0, self.leaf(tree), ref_canonical(tree))
        decoration = self.draw(st.integers(0, 5))
        if decoration == 0:  # redundant "!!"
            result = (result[0] + 2, result[1], result[2])
        elif decoration == 1:  # redundant parentheses
            count, core, canon = result
            result = (0, "(" + self.ws() + self.bangs(count, core) + self.ws() + ")",
                      ("!" if count % 2 else "") + canon)
        return result

    def operand(self, tree):
        count, core, canon = self.unary(tree)
        return self.bangs(count, core), ("!" if count % 2 else "") + canon

    def parts(self, tree):
        """Texts and canonical operand strings of an and/or node printed without outer parentheses."""
        kind = tree[0]
        texts, canons = [], []
        for child in tree[1]:
            if child[0] == kind and self.draw(st.booleans()):
                sub_texts, sub_canons = self.parts(child)  # same operator without parentheses: flattened
                texts.extend(sub_texts)
                canons.extend(sub_canons)
            elif kind == "or" and child[0] == "and" and self.draw(st.booleans()):
                text, canon = self.expr(child)  # && binds tighter: no parentheses needed
                texts.append(text)
                canons.append(canon)
            else:
                text, canon = self.operand(child)
                texts.append(text)
                canons.append(canon)
        return texts, canons

    def expr(self, tree):
        texts, canons = self.parts(tree)
        op = "&&" if tree[0] == "and" else "||"
        text = texts[0]
        for item in texts[1:]:
            text += self.ws() + op + self.ws() + item
        return text, "(" + (" %s " % op).join(canons) + ")"

    def top(self, tree):
        if tree[0] in ("and", "or") and self.draw(st.booleans()):
            text, canon = self.expr(tree)
        else:
            text, canon = self.operand(tree)
        return self.ws() + text + self.ws(), canon


@settings(max_examples=_examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=tree_st, data=st.data(), label_maps=st.lists(label_map_st, min_size=1, max_size=8))
def test_printed_trees_parse_evaluate_and_canonicalise_like_calico(tree, data, label_maps):
    text, expected_canonical = Printer(data.draw).top(tree)
    sel = parse(text)
    assert sel.canonical == expected_canonical
    again = parse(sel.canonical)
    if "!!" not in sel.canonical:
        assert again.canonical == sel.canonical
    else:
        assert parse(again.canonical).canonical == again.canonical
    for labels in label_maps:
        expected = ref_eval(tree, labels)
        assert sel.matches(labels) is expected
        assert again.matches(labels) is expected


# ---------------------------------------------------------------------------------------------
# Oracle 2: Calico's algorithm (tokenize all, then recursive descent) on random text
# ---------------------------------------------------------------------------------------------

IDENT = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./-")


class RefError(Exception):
    pass


def ref_ident(text):
    end = 0
    while end < len(text) and text[end] in IDENT:
        end += 1
    if end == 0 or end > 512:
        raise RefError("identifier")
    return text[:end], text[end:]


def ref_tokenize(text):
    tokens = []
    while True:
        text = text.lstrip(" \t")
        if not text:
            tokens.append(("eof",))
            return tokens
        last = tokens[-1][0] if tokens else None
        c = text[0]
        if c in "(){},":
            tokens.append((c,))
            text = text[1:]
        elif c in "\"'":
            end = text.find(c, 1)
            if end < 0:
                raise RefError("unterminated")
            tokens.append(("str", text[1:end]))
            text = text[end + 1:]
        elif c in "=&|":
            if text[1:2] != c:
                raise RefError("single " + c)
            tokens.append((c * 2,))
            text = text[2:]
        elif c == "!":
            if text[1:2] == "=":
                tokens.append(("!=",))
                text = text[2:]
            else:
                tokens.append(("!",))
                text = text[1:]
        elif last == "label":
            for name, words in (("contains", ["contains"]), ("starts with", ["starts", "with"]),
                                ("ends with", ["ends", "with"]), ("not in", ["not", "in"]), ("in", ["in"])):
                rest = text
                for word in words:
                    if not rest.startswith(word):
                        break
                    rest = rest[len(word):]
                    if len(words) > 1:
                        rest = rest.lstrip(" \t")  # Calico trims after each word of a two-word operator
                else:
                    if not rest or rest[0] not in IDENT:
                        tokens.append((name,))
                        text = rest
                        break
            else:
                raise RefError("operator")
        elif text.startswith("has("):
            label, rest = ref_ident(text[4:].lstrip(" \t"))
            rest = rest.lstrip(" \t")
            if not rest.startswith(")"):
                raise RefError("has")
            tokens.append(("has", label))
            text = rest[1:]
        elif text.startswith("all(") or text.startswith("global("):
            name = text[:text.index("(")]
            rest = text[len(name) + 1:].lstrip(" \t")
            if not rest.startswith(")"):
                raise RefError(name)
            tokens.append((name,))
            text = rest[1:]
        else:
            label, text = ref_ident(text)
            tokens.append(("label", label))


def ref_parse(text):
    tokens = ref_tokenize(text)
    if tokens[0][0] == "eof":
        return ("all",)
    tree, i = ref_or(tokens, 0)
    if tokens[i][0] != "eof":
        raise RefError("trailing")
    return tree


def ref_or(tokens, i):
    operands = []
    tree, i = ref_and(tokens, i)
    operands.append(tree)
    while tokens[i][0] == "||":
        tree, i = ref_and(tokens, i + 1)
        operands.append(tree)
    return (operands[0] if len(operands) == 1 else ("or", operands)), i


def ref_and(tokens, i):
    operands = []
    tree, i = ref_op(tokens, i)
    operands.append(tree)
    while tokens[i][0] == "&&":
        tree, i = ref_op(tokens, i + 1)
        operands.append(tree)
    return (operands[0] if len(operands) == 1 else ("and", operands)), i


def ref_op(tokens, i):
    negated = False
    while tokens[i][0] == "!":
        negated = not negated
        i += 1
    kind = tokens[i][0]
    if kind == "has":
        tree, i = ("has", tokens[i][1]), i + 1
    elif kind in ("all", "global"):
        tree, i = (kind,), i + 1
    elif kind == "(":
        tree, i = ref_or(tokens, i + 1)
        if tokens[i][0] != ")":
            raise RefError("expected )")
        i += 1
    elif kind == "label":
        op = tokens[i + 1][0]
        if op in ("==", "!=", "contains", "starts with", "ends with"):
            if tokens[i + 2][0] != "str":
                raise RefError("expected string")
            tree, i = ("cmp", op, tokens[i][1], tokens[i + 2][1]), i + 3
        elif op in ("in", "not in"):
            if tokens[i + 2][0] != "{":
                raise RefError("expected set")
            j = i + 3
            values = []
            while tokens[j][0] == "str":
                values.append(tokens[j][1])
                j += 1
                if tokens[j][0] != ",":
                    break
                j += 1
            if tokens[j][0] != "}":
                raise RefError("expected }")
            tree, i = ("set", op, tokens[i][1], values), j + 1
        else:
            raise RefError("expected operator")
    else:
        raise RefError("unexpected token")
    return (("not", tree) if negated else tree), i


FRAGMENTS = ["a", "b", "in", "not", "contains", "starts", "ends", "with", "startswith", "notin", "has", "all",
             "global", "has(a)", "has( b )", "has(", "all()", "all(", "global()", "==", "!=", "=", "!", "&&", "||",
             "&", "|", "(", ")", "{", "}", ",", '"x"', "'y'", '""', '"', "'", " ", " ", " ", "\t", "\n", "inx",
             "%", "é", "-", ".", "/", "x", "{}", "()"]


def check_against_reference(text, label_maps):
    try:
        expected = ref_parse(text)
    except RefError:
        expected = None
    try:
        sel = parse(text)
    except SelectorError as err:
        assert expected is None, "Calico accepts %r, we reject it: %s" % (text, err)
        assert err.selector == text
        assert 0 <= err.position <= len(text)
        assert str(err).startswith('invalid selector "%s": ' % text)
        return
    assert expected is not None, "Calico rejects %r, we accept it as %s" % (text, sel.canonical)
    assert sel.canonical == ref_canonical(expected)
    for labels in label_maps:
        assert sel.matches(labels) is ref_eval(expected, labels)


@settings(max_examples=_examples(1200), deadline=None)
@given(parts=st.lists(st.sampled_from(FRAGMENTS), max_size=14),
       label_maps=st.lists(st.dictionaries(st.sampled_from(["a", "b", "in", "not", "has", "all"]),
                                           st.sampled_from(["x", "y", ""]), max_size=3), max_size=3))
def test_token_soup_agrees_with_calico_algorithm(parts, label_maps):
    check_against_reference("".join(parts), label_maps)


@settings(max_examples=_examples(600), deadline=None)
@given(text=st.text(alphabet=st.one_of(st.sampled_from(list(" \t\n\r\x0b\x0c\x00\"'(){},=!&|%#ainotshlgbcex_./-")),
                                       st.characters()), max_size=40))
def test_random_text_only_raises_selector_error(text):
    check_against_reference(text, [{}, {"a": "x"}])


@settings(max_examples=_examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=tree_st, data=st.data())
def test_valid_selectors_with_one_corruption_agree_with_calico_algorithm(tree, data):
    text = Printer(data.draw).top(tree)[0]
    position = data.draw(st.integers(0, len(text)))
    insert = data.draw(st.sampled_from(["\n", "(", ")", "!", "&", "=", "'", '"', ",", "{", "}", " x ", "in ", "%"]))
    mutated = text[:position] + insert + text[position + 1:] if data.draw(st.booleans()) \
        else text[:position] + insert + text[position:]
    assume(mutated != text)
    check_against_reference(mutated, [{}, {"a": "x", "in": ""}])


@pytest.mark.parametrize("text", [case[0] for case in MATCH_CASES + CANONICAL_CASES + ERROR_CASES])
def test_tables_agree_with_calico_algorithm(text):
    check_against_reference(text, [{}, {"a": "b"}, {"a": "x", "b": "1", "c": ""}])
