# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fast paths added for large worlds give exactly the answers of the slow ones:
IPv4 parsing without :mod:`ipaddress`, CIDR validation, the selector index by required label
value, and hash (not interval) sets for single addresses."""

from __future__ import annotations

import ipaddress
import itertools
import os
import sys
import types

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.hostfw.nftables.plugins.plugin_utils import addrset, checks, errors
from ansible_collections.hostfw.nftables.plugins.plugin_utils.compiler import compile_documents
from ansible_collections.hostfw.nftables.plugins.plugin_utils.selector import parse

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..")))
from worlds import doc  # noqa: E402 pylint: disable=wrong-import-position

# ---------------------------------------------------------------------------------------------
# IPv4 text -> integers
# ---------------------------------------------------------------------------------------------

V4_TEXT = st.one_of(
    st.builds(lambda a, p: "%s/%d" % (ipaddress.IPv4Address(a), p), st.integers(0, 2 ** 32 - 1), st.integers(0, 40)),
    st.builds(lambda a: str(ipaddress.IPv4Address(a)), st.integers(0, 2 ** 32 - 1)),
    st.text(alphabet="0123456789./ :xa\n", max_size=20),
)


def _reference(text):
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None
    return net.version, int(net.network_address), int(net.broadcast_address)


@settings(max_examples=2000, deadline=None)
@given(text=V4_TEXT)
def test_parse_v4_accepts_only_what_ipaddress_accepts(text):
    fast = addrset.parse_v4(text)
    ref = _reference(text)
    if fast is not None:
        assert ref is not None and ref[0] == 4, text
        host_bits = 32 - fast[1]
        assert (fast[0] >> host_bits << host_bits, (fast[0] >> host_bits << host_bits) | ((1 << host_bits) - 1)) \
            == ref[1:], text
    if ref is not None:
        assert addrset.parse_net(text) == ref


@pytest.mark.parametrize("text", ["01.2.3.4", "1.2.3.4/033", "256.0.0.1", "1.2.3.4/33", " 1.2.3.4", "1.2.3.4\n",
                                  "1.2.3", "::1", "1.2.3.4/"])
def test_parse_v4_leaves_everything_unusual_to_ipaddress(text):
    assert addrset.parse_v4(text) is None


@settings(max_examples=1500, deadline=None)
@given(text=V4_TEXT)
def test_cidr_validation_fast_path_matches_ipaddress(text):
    """checks.loose_cidr (network sets) and checks.strict_cidr (rule nets): same result and same
    message as the ipaddress path for every text."""
    for fn in (checks.loose_cidr, checks.strict_cidr):
        got, problems = _validate(fn, text)
        want, want_problems = _validate(fn, text, fast=False)
        assert (got, problems) == (want, want_problems), (fn.__name__, text)


def _validate(fn, text, fast=True):
    sink = errors.Collector()
    ctx = sink.scope("GlobalNetworkSet", "x", "test")
    if fast:
        value = fn(ctx, text, "spec.nets[0]")
    else:
        saved = checks.parse_v4
        checks.parse_v4 = lambda _text: None
        try:
            value = fn(ctx, text, "spec.nets[0]")
        finally:
            checks.parse_v4 = saved
    return (None if value is checks.BAD else value), [str(p) for p in sink.problems]


# ---------------------------------------------------------------------------------------------
# Selector.required and the model's index
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, required", [
    ("a == 'x'", ("a", ("x",))),
    ("a in {'y', 'x'}", ("a", ("x", "y"))),
    ("has(b) && a == 'x'", ("a", ("x",))),
    ("a != 'x' && b in {'1'}", ("b", ("1",))),
    ("a == 'x' || b == 'y'", None),
    ("!(a == 'x')", None),
    ("a not in {'x'}", None),
    ("has(a)", None),
    ("all()", None),
    ("", None),
    ("a contains 'x'", None),
    ("(a == 'x' || c == 'z') && b == 'y'", ("b", ("y",))),
    ("a in {}", ("a", ())),
])
def test_selector_required(text, required):
    assert parse(text).required == required


LABEL_VALUES = {"a": ["x", "y", None], "b": ["1", "2", None], "c": ["z", None]}
SELECTORS = ["a == 'x'", "a in {'x', 'y'}", "a == 'x' && b == '1'", "b in {'2'} && !has(c)", "a in {}",
             "a == 'nope'", "a == 'x' || b == '2'", "has(c)", "all()", "global()", "c == 'z' && a != 'y'"]


def _label_world():
    docs = [doc("HostEndpoint", "n-eth0", {"node": "n", "interfaceName": "eth0", "expectedIPs": ["10.9.0.1"]},
                {"role": "n"})]
    combos = itertools.product(*(LABEL_VALUES[k] for k in sorted(LABEL_VALUES)))
    for i, values in enumerate(combos):
        labels = {k: v for k, v in zip(sorted(LABEL_VALUES), values) if v is not None}
        docs.append(doc("GlobalNetworkSet", "gns-%d" % i, {"nets": ["10.1.%d.0/24" % i]}, labels or None))
        docs.append(doc("HostEndpoint", "h%d-eth0" % i, {"node": "h%d" % i, "interfaceName": "eth0",
                                                         "expectedIPs": ["10.2.%d.1" % i]}, labels or None))
    return compile_documents(docs)


@pytest.mark.parametrize("scope", ["all", "global"])
@pytest.mark.parametrize("text", SELECTORS)
def test_indexed_groups_select_exactly_what_a_full_scan_selects(text, scope):
    model = _label_world().model
    entity = types.SimpleNamespace(global_scope=scope == "global", namespace_selector=None)
    sel = parse(text)
    indexed = model._scope_groups(entity, sel)[0]
    everything = model._scope_groups(entity)[0]
    assert [g for g in indexed if sel.matches(g[2])] == [g for g in everything if sel.matches(g[2])]
    if sel.required is not None:
        assert len(indexed) < len(everything)


# ---------------------------------------------------------------------------------------------
# Hash sets for single addresses
# ---------------------------------------------------------------------------------------------

def _set_block(text, name):
    start = text.index("\tset %s {" % name)
    return text[start:text.index("\t}", start)]


def test_single_address_sets_are_hash_sets_and_prefix_sets_are_interval_sets():
    docs = [
        doc("HostEndpoint", "n-eth0", {"node": "n", "interfaceName": "eth0", "expectedIPs": ["10.0.0.1"]}, {"role": "n"}),
        doc("GlobalNetworkSet", "singles", {"nets": ["192.0.2.1", "192.0.2.3/32", "192.0.2.9"]}, {"k": "singles"}),
        doc("GlobalNetworkSet", "ranges", {"nets": ["198.51.100.0/24"]}, {"k": "ranges"}),
        doc("GlobalNetworkSet", "adjacent", {"nets": ["203.0.113.4", "203.0.113.5"]}, {"k": "adjacent"}),
        doc("GlobalNetworkPolicy", "p", {"selector": "role == 'n'", "ingress": [
            {"action": "Allow", "protocol": "TCP", "source": {"selector": "k == '%s'" % k}, "destination": {"ports": [p]}}
            for p, k in ((1, "singles"), (2, "ranges"), (3, "adjacent"))]}),
    ]
    comp = compile_documents(docs)
    text = comp.ruleset("n")
    blocks = {}
    for label in ("singles", "ranges", "adjacent"):
        name = comp.model.selector_ref(4, types.SimpleNamespace(global_scope=False, namespace_selector=None),
                                       parse("k == '%s'" % label), None).name
        blocks[label] = _set_block(text, name)
    assert "flags interval" not in blocks["singles"]
    assert "192.0.2.1,\n\t\t\t192.0.2.3,\n\t\t\t192.0.2.9" in blocks["singles"]
    assert "flags interval" in blocks["ranges"] and "198.51.100.0/24" in blocks["ranges"]
    # two adjacent addresses merge into a /31: an interval set
    assert "flags interval" in blocks["adjacent"] and "203.0.113.4/31" in blocks["adjacent"]
