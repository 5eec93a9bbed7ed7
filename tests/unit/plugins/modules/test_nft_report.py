# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""nft_report, run as a real module process with the fake ``nft`` of the nft_table tests: it reads
(never changes) the running table, the confirmation record and the persisted table, hashes a
candidate like state=stage, and says since when the counters run.  Its counters on a real kernel
are in tests/dataplane/test_report.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from ansible_collections.hostfw.nftables.plugins.module_utils import _nft_report
from ansible_collections.hostfw.nftables.plugins.modules import nft_report  # noqa: F401 pylint: disable=unused-import

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_nft_table import CANDIDATE, MODULE_PATH, PREVIOUS, Host  # noqa: E402 pylint: disable=wrong-import-position


def report(host, **args):
    args.setdefault("state_dir", str(host.state_dir))
    args.setdefault("persist_path", str(host.persist))
    environ = dict(os.environ, PATH="%s:%s" % (host.bin, os.environ.get("PATH", "")),
                   FAKE_NFT_STATE=str(host.state_file), PYTHONPATH=MODULE_PATH)
    before = host.state_file.read_text() if host.state_file.exists() else None
    proc = subprocess.run([sys.executable, "-m", "ansible_collections.hostfw.nftables.plugins.modules.nft_report"],
                          input=json.dumps({"ANSIBLE_MODULE_ARGS": args}), capture_output=True, text=True, env=environ,
                          cwd=str(host.tmp), timeout=60, check=False)
    after = host.state_file.read_text() if host.state_file.exists() else None
    assert before == after, "nft_report changed the ruleset"
    assert proc.stdout.strip().startswith("{"), "module output is not JSON: %s %s" % (proc.stdout, proc.stderr)
    return json.loads(proc.stdout)


@pytest.fixture()
def host(tmp_path):
    return Host(tmp_path)


def test_no_table(host):
    res = report(host)
    assert (res["present"], res["sha256"], res["confirmed"], res["persisted_sha256"]) == (False, None, None, None)
    assert res["counters_since"] is None and res["counters_since_source"] == "unknown" and not res["changed"]


def test_confirmed_table_candidate_hash_and_apply_time(host):
    host.load(PREVIOUS)
    stage = host.run(state="stage", content=CANDIDATE)
    armed_at = time.time()
    host.run(state="apply", sha256=stage["sha256_after"], timeout=30)
    host.run(state="confirm", sha256=stage["sha256_after"])
    confirmed = json.loads((host.state_dir / "confirmed.json").read_text())
    assert armed_at <= confirmed["applied_at"] <= confirmed["at"]
    res = report(host, candidate=CANDIDATE)
    assert res["present"] and res["sha256"] == stage["sha256_after"] == res["confirmed"]["sha256"]
    assert res["candidate_sha256"] == stage["sha256_after"]
    assert res["counters_since"] == confirmed["applied_at"] and res["counters_since_source"] == "applied"
    assert report(host, candidate=PREVIOUS)["candidate_sha256"] not in (None, stage["sha256_after"])
    bad = report(host, candidate=CANDIDATE.replace("drop", "FAKE-SYNTAX-ERROR"))
    assert bad["candidate_sha256"] is None and "does not load" in bad["candidate_error"]
    # persisted, then the host reboots: /run is empty, the boot unit loaded the persisted table
    host.run(state="persist", sha256=stage["sha256_after"])
    assert report(host)["persisted_sha256"] == stage["sha256_after"]
    (host.state_dir / "confirmed.json").unlink()
    rebooted = report(host)
    assert rebooted["confirmed"] is None and rebooted["counters_since_source"] == "boot"
    assert 0 < rebooted["counters_since"] <= time.time()
    # someone changes the table: the time is unknown
    host.load(PREVIOUS)
    assert report(host)["counters_since_source"] == "unknown"


def test_pure_helpers():
    counted = [{"counter": {"packets": 2, "bytes": 80}}, {"accept": None}]
    listing = {"nftables": [{"metainfo": {"version": "1.0.6"}}, {"chain": {"name": "c"}},
                            {"rule": {"chain": "c", "comment": "x", "expr": counted}},
                            {"rule": {"chain": "c", "comment": "x", "expr": [{"counter": {"packets": 1, "bytes": 40}}]}},
                            {"rule": {"chain": "c", "expr": [{"counter": {"packets": 5, "bytes": 9}}]}},
                            {"rule": {"chain": "c", "comment": "no counter", "expr": [{"accept": None}]}}]}
    assert _nft_report.rule_counters(json.dumps(listing)) == ({"x": [3, 120]}, 4, 1)
    with pytest.raises(ValueError):
        _nft_report.rule_counters("{}")
    assert _nft_report.persisted_sha256("# hostfw\n# sha256 %s\ntable inet hostfw" % ("a" * 64)) == "a" * 64
    assert _nft_report.persisted_sha256("table inet hostfw") is None
    assert _nft_report.boot_time("cpu 1 2\nbtime 1700000000\n") == 1700000000
    assert _nft_report.systemd_timestamp("ActiveEnterTimestampMonotonic=2500000\n") == 2.5
    assert _nft_report.systemd_timestamp("ActiveEnterTimestampMonotonic=0\n") is None
    assert _nft_report.scratch_listing("x\n@@HOSTFW-TABLE@@\ntable inet hostfw {\n}\n") == "table inet hostfw {\n}\n"
