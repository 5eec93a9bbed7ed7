# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The benchmark (bench/run.py, ``make bench``) at a tiny size.

No timing is asserted: the point is that the benchmark still runs against the current core and
writes what it promises: results.json with one well-formed run per tool and variant, table.md,
the plot (when matplotlib is installed), and one hostfw table per host.  Aerleon is measured
only when ``aclgen`` is installed (bench/requirements.txt).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN = os.path.join(ROOT, "bench", "run.py")
HOSTS = 20
POLICIES = 20
STAGED = 10


def _tool(name):
    candidate = os.path.join(os.path.dirname(sys.executable), name)
    if os.access(candidate, os.X_OK):
        return candidate
    return shutil.which(name)


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    if not _tool("ansible-playbook"):
        pytest.skip("ansible-playbook not installed next to %s or on PATH" % sys.executable)
    base = tmp_path_factory.mktemp("bench")
    results, work = base / "results", base / "work"
    cmd = [sys.executable, RUN, "--sizes", "%dx%d" % (HOSTS, POLICIES), "--repeat", "1", "--aerleon-max-hosts", str(HOSTS),
           "--vars-max-hosts", str(HOSTS), "--matrix-max-hosts", str(HOSTS), "--timeout", "120",
           "--wide-policies", "10", "--wide-addresses", "200", "--policies", str(POLICIES), "--staged", str(STAGED),
           "--staged-hosts", str(HOSTS), "--results", str(results), "--workdir", str(work)]
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env, timeout=600)
    assert proc.returncode == 0, "bench/run.py failed (%d):\n%s\n%s" % (proc.returncode, proc.stdout, proc.stderr)
    with open(results / "results.json", encoding="utf-8") as f:
        data = json.load(f)
    return {"results": results, "work": work, "data": data, "stdout": proc.stdout}


def _runs(data, tool, variant):
    return [r for r in data["runs"] if r["tool"] == tool and r["variant"] == variant]


def test_results_json_is_well_formed(bench):
    data = bench["data"]
    assert data["sizes"] == [[HOSTS, POLICIES]]
    for key in ("environment", "runs", "throughput", "fit", "targets", "wide", "started", "command"):
        assert key in data, key
    for run in data["runs"]:
        assert run["ok"], run["problems"]
        assert run["wall"] > 0 and run["maxrss"] > 0
        assert run["hosts"] == HOSTS and run["policies"] == POLICIES
        assert run["files"] == HOSTS
    assert [t["hosts"] for t in data["throughput"]] == [HOSTS]
    assert (bench["results"] / "table.md").read_text(encoding="utf-8").count("| hostfw |") >= 2


def test_hostfw_stages_are_reported(bench):
    for variant in ("manifest", "vars", "render+matrix"):
        (run,) = _runs(bench["data"], "hostfw", variant)
        stages = run["stages"]
        for key in ("until_first_task", "gather_vars", "load_inputs", "validate", "load_and_validate", "index",
                    "compile", "write", "compile_and_write", "compile_task"):
            assert isinstance(stages[key], float) and stages[key] >= 0, (variant, key, stages)
        assert run["compile"]["hosts_with_ruleset"] == HOSTS
        assert run["compile"]["proofs_failed"] == 0
    (matrix,) = _runs(bench["data"], "hostfw", "render+matrix")
    assert matrix["stages"]["matrix"] is not None and matrix["compile"]["matrix_cells"] > 0


def test_hostfw_wrote_one_table_per_host(bench):
    out = bench["work"] / ("manifest-%dx%d" % (HOSTS, POLICIES)) / "out"
    files = sorted(p.name for p in out.glob("*.nft"))
    assert files == ["h%05d.nft" % i for i in range(HOSTS)]
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    try:
        import run as bench_run  # pylint: disable=import-outside-toplevel
    finally:
        sys.path.pop(0)
    for i in range(HOSTS):
        text = (out / files[i]).read_text(encoding="utf-8")
        assert "table inet hostfw {" in text and "delete table inet hostfw" in text
        assert bench_run.check_fleet_file(str(out / files[i]), i, POLICIES) == []


def test_aerleon_run_when_installed(bench):
    runs = _runs(bench["data"], "aerleon", "aclgen")
    if not _tool("aclgen"):
        assert runs == []
        pytest.skip("aclgen (Aerleon) not installed: pip install -r bench/requirements.txt")
    (run,) = runs
    assert run["ok"] and run["files"] == HOSTS
    (tp,) = bench["data"]["throughput"]
    assert tp["ratio"] is not None and tp["ratio"] > 0


def test_wide_host_rule_count(bench):
    wide = bench["data"]["wide"]
    assert wide["policies"] == 10 and wide["addresses"] == 200
    assert wide["rules"] >= wide["policy_rules"]  # at least one rule per policy rule
    assert wide["render"]["ok"] if "ok" in wide["render"] else wide["render"]["rc"] == 0
    if os.geteuid() == 0 and shutil.which("nft") and shutil.which("unshare"):
        assert wide["load"]["error"] is None and wide["load"]["min"] > 0
    else:
        assert wide["load"] is None and "not root" in wide["load_skipped"]


def test_staged_measurement(bench):
    """The fleet with STAGED staged policies and the shadow path, against the same fleet without."""
    st = bench["data"]["staged"]
    assert st["ok"], st["problems"]
    assert (st["hosts"], st["policies"], st["staged"]) == (HOSTS, POLICIES, STAGED)
    assert len(st["walls_with"]) == len(st["walls_without"]) == 1 and st["ratio"] > 0
    # host 0 (zone 0) gets the staged new version of p0000: a shadow path on both sides
    assert st["shadow_rules_per_host"]["before"] > 0 and st["shadow_rules_per_host"]["after"] > 0
    assert st["size_with"] > st["size_without"] and st["enforced_rules_per_host"] > 0
    if os.geteuid() == 0 and shutil.which("nft") and shutil.which("unshare"):
        assert st["nft_check"] is True
    assert "<= 1.2 x without them" in (bench["results"] / "table.md").read_text(encoding="utf-8")
    assert "shadow path per host: %d rules before" % st["shadow_rules_per_host"]["before"] in bench["stdout"]


def test_plot_written_when_matplotlib_installed(bench):
    png = bench["results"] / "time_vs_hosts.png"
    if importlib.util.find_spec("matplotlib") is None:
        assert not png.exists()
        pytest.skip("matplotlib not installed")
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_report_reprints_the_tables_of_a_results_file(bench, tmp_path):
    shutil.copy(bench["results"] / "results.json", tmp_path / "results.json")
    proc = subprocess.run([sys.executable, RUN, "--report", str(tmp_path / "results.json")], capture_output=True,
                          text=True, check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr
    text = (tmp_path / "table.md").read_text(encoding="utf-8")
    assert text.startswith("Measured ") and "Targets:" in text
    assert "| hostfw | manifest | %d | %d |" % (HOSTS, POLICIES) in text
    assert proc.stdout.strip() in text
