"""Unit tests of the target-side helpers of hostfw.nftables.nft_table (plugins/module_utils/)."""

import hashlib
import json
import os
import subprocess
import sys

import pytest

from ansible_collections.hostfw.nftables.plugins.module_utils import _nft, _nft_inspect, _nft_rollback
from ansible_collections.hostfw.nftables.plugins.plugin_utils import felix

INBOUND = [{"protocol": e.protocol, "port": e.port} for e in felix.DEFAULT_FAILSAFE_INBOUND]
OUTBOUND = [{"protocol": e.protocol, "port": e.port} for e in felix.DEFAULT_FAILSAFE_OUTBOUND]

LISTING = ("table inet hostfw {\n\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n"
           "\t\ttcp dport 22 accept\n\t}\n}\n")


def test_normalise_listing():
    assert _nft.normalise_listing(None) == ""
    assert _nft.normalise_listing("\n\n") == ""
    messy = "\n" + LISTING.replace("\n", "  \r\n") + "\n\n"
    assert _nft.normalise_listing(messy) == LISTING
    assert _nft.normalise_listing(LISTING.rstrip("\n")) == LISTING


def test_listing_sha256():
    assert _nft.listing_sha256("") is None
    assert _nft.listing_sha256(LISTING) == hashlib.sha256(LISTING.encode()).hexdigest()
    assert _nft.listing_sha256(LISTING + "\n \n") == _nft.listing_sha256(LISTING)


def test_parse_tables_and_foreign():
    text = "table ip filter\ntable inet hostfw\ntable ip kube-proxy\n"
    tables = _nft.parse_table_list(text)
    assert tables == [("ip", "filter"), ("inet", "hostfw"), ("ip", "kube-proxy")]
    assert _nft.foreign_tables(tables) == [("ip", "filter"), ("ip", "kube-proxy")]


def test_check_listing_is_our_table():
    assert _nft.check_listing_is_our_table(LISTING) is None
    assert "does not define" in _nft.check_listing_is_our_table("")
    assert "exactly one" in _nft.check_listing_is_our_table("table ip filter {\n}\n")
    assert "exactly one" in _nft.check_listing_is_our_table(LISTING + "table ip nat {\n}\n")


def test_render_apply_file_replaces_atomically():
    text = _nft.render_apply_file(LISTING, "header\nsha256 x")
    assert text == "# header\n# sha256 x\ntable inet hostfw\ndelete table inet hostfw\n" + LISTING
    assert "flush" not in text


def test_render_restore_of_absent_table_only_deletes_ours():
    assert _nft.render_apply_file(None) == "table inet hostfw\ndelete table inet hostfw\n"


def test_unified_diff():
    assert _nft.unified_diff(LISTING, LISTING) == ""
    diff = _nft.unified_diff(LISTING, LISTING.replace("22", "2222"))
    assert "--- running: table inet hostfw" in diff and "+++ candidate: table inet hostfw" in diff
    assert "-\t\ttcp dport 22 accept" in diff and "+\t\ttcp dport 2222 accept" in diff
    added = [l for l in _nft.unified_diff(None, LISTING).splitlines() if l.startswith("+") and not l.startswith("+++")]
    assert len(added) == LISTING.count("\n")


def test_ssh_connection():
    assert _nft.parse_ssh_connection("10.0.0.1 5555 10.0.0.2 22") == {
        "client_ip": "10.0.0.1", "client_port": 5555, "server_ip": "10.0.0.2", "server_port": 22}
    assert _nft.parse_ssh_connection("") is None
    assert _nft.parse_ssh_connection("a b c") is None
    blob = b"PATH=/bin\0SSH_CONNECTION=fe80::1 40000 fe80::2 2222\0HOME=/root\0"
    assert _nft.ssh_connection_from_environ_blob(blob) == "fe80::1 40000 fe80::2 2222"


def test_unit_loads_only_our_file():
    unit = _nft.render_unit("/usr/sbin/nft", "/etc/hostfw/hostfw.nft")
    assert "ExecStart=/usr/sbin/nft -f /etc/hostfw/hostfw.nft" in unit
    assert "DefaultDependencies=no" in unit and "Before=network-pre.target" in unit
    assert "Wants=network-pre.target" in unit and "After=local-fs.target nftables.service" in unit
    assert "ExecStop" not in unit and "flush" not in unit and "/etc/nftables.conf" not in unit


def test_rollback_program_compiles_and_respects_disarm(tmp_path):
    compile(_nft_rollback.ROLLBACK_PROGRAM, "rollback.py", "exec")
    tmp_path.chmod(0o700)
    prog = tmp_path / "rollback.py"
    prog.write_text(_nft_rollback.ROLLBACK_PROGRAM)
    fake_nft = tmp_path / "nft"
    fake_nft.write_text("#!/bin/sh\necho \"$@\" >> %s/calls\n" % tmp_path)
    fake_nft.chmod(0o755)
    copy = b"table inet hostfw\ndelete table inet hostfw\n"
    (tmp_path / "rollback-x.nft").write_bytes(copy)
    (tmp_path / "armed.json").write_text(json.dumps({"id": "x", "copy_sha256": hashlib.sha256(copy).hexdigest()}))
    (tmp_path / "disarmed-x").write_text("1\n")
    subprocess.check_call([sys.executable, str(prog), str(tmp_path), "x", str(fake_nft)])
    assert not (tmp_path / "calls").exists(), "a disarmed rollback must not run nft"
    (tmp_path / "disarmed-x").unlink()
    subprocess.check_call([sys.executable, str(prog), str(tmp_path), "x", str(fake_nft)])
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls[0] == "-f %s/rollback-x.nft" % tmp_path
    assert calls[1] == "-s list table inet hostfw"
    record = json.loads((tmp_path / "rolled-back-x.json").read_text())
    assert record["id"] == "x" and record["rc"] == 0 and record["restored"] is True and record["error"] is None


def _rule(table, chain, exprs, family="ip", handle=1, comment=None):
    rule = {"family": family, "table": table, "chain": chain, "handle": handle, "expr": exprs}
    if comment:
        rule["comment"] = comment
    return {"rule": rule}


def _match(left, right, op="=="):
    return {"match": {"op": op, "left": left, "right": right}}


def _dport(proto, right):
    return _match({"payload": {"protocol": proto, "field": "dport"}}, right)


SAMPLE = {"nftables": [
    {"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
    {"table": {"family": "ip", "name": "filter", "handle": 1}},
    {"chain": {"family": "ip", "table": "filter", "name": "INPUT", "handle": 1, "type": "filter",
               "hook": "input", "prio": 0, "policy": "accept"}},
    {"chain": {"family": "ip", "table": "filter", "name": "FORWARD", "handle": 2, "type": "filter",
               "hook": "forward", "prio": 0, "policy": "drop"}},
    {"chain": {"family": "ip", "table": "filter", "name": "DOCKER", "handle": 3}},
    _rule("filter", "FORWARD", [{"jump": {"target": "DOCKER"}}], handle=10),
    _rule("filter", "DOCKER", [{"drop": None}], handle=11),
    {"table": {"family": "ip", "name": "kube-proxy", "handle": 2}},
    {"chain": {"family": "ip", "table": "kube-proxy", "name": "filter-input", "handle": 1, "type": "filter",
               "hook": "input", "prio": -110, "policy": "accept"}},
    {"chain": {"family": "ip", "table": "kube-proxy", "name": "firewall-check", "handle": 2}},
    _rule("kube-proxy", "filter-input", [{"jump": {"target": "firewall-check"}}], handle=20),
    _rule("kube-proxy", "firewall-check", [_dport("tcp", 30000), {"reject": None}], handle=21),
    _rule("kube-proxy", "firewall-check", [_dport("tcp", {"set": [80, {"range": [6000, 6500]}]}), {"drop": None}],
          handle=22, comment="blocks 6443"),
    {"table": {"family": "inet", "name": "hostfw", "handle": 3}},
    {"chain": {"family": "inet", "table": "hostfw", "name": "input", "handle": 1, "type": "filter",
               "hook": "input", "prio": 0, "policy": "drop"}},
    {"table": {"family": "ip", "name": "strict", "handle": 4}},
    {"chain": {"family": "ip", "table": "strict", "name": "out", "handle": 1, "type": "filter",
               "hook": "output", "prio": 0, "policy": "drop"}},
    _rule("strict", "out", [_match({"meta": {"key": "l4proto"}}, "udp"), {"drop": None}], handle=30),
]}


def test_inspect_foreign_tables():
    tables, findings = _nft_inspect.inspect_ruleset(SAMPLE, INBOUND, OUTBOUND)
    assert tables == ["ip filter", "ip kube-proxy", "inet hostfw", "ip strict"]
    by = {(f["table"], f["chain"], f["via"], f["handle"]): f for f in findings}
    # Docker's FORWARD policy drop and DOCKER drop: forward hook, not host traffic -> not reported
    assert not [f for f in findings if f["table"] == "ip filter"]
    # our own table is never reported
    assert not [f for f in findings if f["table"] == "inet hostfw"]
    # reject of TCP 30000 does not hit a failsafe; the drop of 6000-6500 hits TCP 6443
    kube = by[("ip kube-proxy", "filter-input", "firewall-check", 22)]
    assert kube["ports"] == ["TCP 6443"] and kube["hook"] == "input" and kube["comment"] == "blocks 6443"
    assert ("ip kube-proxy", "filter-input", "firewall-check", 21) not in by
    # output policy drop reports every outbound failsafe; the udp drop only the UDP ones
    assert len(by[("ip strict", "out", "out", None)]["ports"]) == len(OUTBOUND)
    assert by[("ip strict", "out", "out", 30)]["ports"] == ["UDP 53", "UDP 67"]


def test_inspect_custom_failsafes_and_empty():
    tables, findings = _nft_inspect.inspect_ruleset(SAMPLE, failsafe_inbound=[{"protocol": "tcp", "port": 22}],
                                                    failsafe_outbound=[])
    assert findings == []
    assert _nft_inspect.inspect_ruleset({}, INBOUND, OUTBOUND) == ([], [])


# the pre-scan of the candidate text (issue 14, item 1 on the target)
@pytest.mark.parametrize("text, problem", [
    ('include "/etc/shadow"\n', 'line 1: the candidate may not include other files (include "/etc/shadow")'),
    ('table inet hostfw {\n\tchain c {\n\t\tinclude "/dev/zero"\n\t}\n}\n',
     'line 3: the candidate may not include other files (include "/dev/zero")'),
    ("table inet hostfw\nflush ruleset\n", "line 2: `flush ruleset` acts outside table inet hostfw"),
    ("table inet hostfw { }; table ip filter { }\n", "line 1: `table ip filter` acts outside table inet hostfw"),
    ("define T = ip\n", "line 1: `define T = ip` acts outside"),
    ("delete table ip nat\n", "line 1: `delete table ip nat` acts outside"),
    ("list ruleset\n", "line 1: `list ruleset` acts outside"),
    ('table inet hostfw {\n\tcomment "x\n}\n', "line 2: a string is not terminated"),
    ("table inet hostfw {\n", "line 1: a '{' is not closed"),
    ("table inet hostfw\x00\n", "the candidate contains a NUL byte"),
])
def test_candidate_pre_scan_refuses(text, problem):
    problems = _nft.candidate_text_problems(text)
    assert len(problems) == 1 and problems[0].startswith(problem), problems


def test_candidate_pre_scan_accepts_our_table():
    text = ('# hostfw: host "n1"\ntable inet hostfw\ndelete table inet hostfw\ntable inet hostfw {\n'
            '\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n'
            '\t\ttcp dport 22 accept comment "include # { flush ruleset"\n\t}\n}\n'
            'add rule inet hostfw input udp dport 53 accept\n')
    assert _nft.candidate_text_problems(text) == []
    golden = os.path.join(os.path.dirname(__file__), "..", "plugin_utils", "golden")
    for name in sorted(os.listdir(golden)):
        if name.endswith(".nft"):
            with open(os.path.join(golden, name)) as handle:
                assert _nft.candidate_text_problems(handle.read()) == [], name
