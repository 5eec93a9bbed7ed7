# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The report playbook as users run it: ansible-playbook -i INV hostfw.nftables.report
-e hostfw_output_dir=DIR, here over local connections with the fake nft of the nft_table tests
(the real one: tests/dataplane/test_report.py and the molecule scenario staged)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLAYBOOK_BIN = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
sys.path.insert(0, os.path.join(ROOT, "tests", "unit", "plugins", "modules"))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from test_nft_table import CANDIDATE, WRAPPERS  # noqa: E402 pylint: disable=wrong-import-position
from worlds import doc, gnp, hep  # noqa: E402 pylint: disable=wrong-import-position

PERSISTED_DIR = "/etc/hostfw"  # nft_report's default persist_path is /etc/hostfw/hostfw.nft

pytestmark = pytest.mark.skipif(not os.path.exists(PLAYBOOK_BIN), reason="ansible-playbook is not installed")


def setup(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name, text in WRAPPERS.items():
        (bindir / name).write_text(text)
        (bindir / name).chmod(0o755)
    docs = [hep("h1", "n1", ["10.10.0.1"]), hep("h2", "n2", ["10.10.0.2"]), doc("Tier", "t1", {"order": 10}),
            gnp("allow", tier="t1", ingress=[{"action": "Allow"}]),
            doc("StagedGlobalNetworkPolicy", "t1.lockdown", {
                "tier": "t1", "order": 1, "selector": "all()", "ingress": [{"action": "Deny", "protocol": "TCP"}]})]
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
             "hostfw_state_dir": str(tmp_path / "run")}
    inventory = {"all": {"vars": {"hostfw_resources": docs, "hostfw_staged_counters": True},
                         "hosts": {"n1": dict(local), "n2": dict(local),
                                   "away": {"ansible_host": "127.0.0.1", "ansible_port": 1, "ansible_user": "nobody",
                                            "ansible_ssh_common_args": "-o ConnectTimeout=2 -o BatchMode=yes"}}}}
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
    return bindir


def run(tmp_path, bindir):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".collections"), ANSIBLE_NOCOLOR="1",
               PATH="%s:%s" % (bindir, os.environ.get("PATH", "")), FAKE_NFT_STATE=str(tmp_path / "ruleset.json"),
               HOSTFW_CACHE_DIR=str(tmp_path / "cache"), ANSIBLE_HOST_KEY_CHECKING="0")
    cmd = [PLAYBOOK_BIN, "-i", str(tmp_path / "inventory.yml"), "hostfw.nftables.report",
           "-e", "hostfw_output_dir=%s" % (tmp_path / "out")]
    if os.path.isdir(PERSISTED_DIR) and os.geteuid() == 0 and shutil.which("unshare"):
        # the local hosts are this machine: hide a table persisted on it (by a real rollout) from nft_report
        empty = tmp_path / "etc-hostfw"
        empty.mkdir(exist_ok=True)
        cmd = [shutil.which("unshare"), "-m", "sh", "-c", 'mount --bind "$0" %s && exec "$@"' % PERSISTED_DIR, str(empty)] + cmd
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with open(tmp_path / "out" / "report.json", encoding="utf-8") as handle:
        return json.load(handle), (tmp_path / "out" / "report.md").read_text(), proc.stdout


def test_report_playbook_states_and_staged_verdicts(tmp_path):
    bindir = setup(tmp_path)
    data, md, out = run(tmp_path, bindir)
    assert {h: e["state"] for h, e in data["hosts"].items()} == {
        "n1": "not rolled out", "n2": "not rolled out", "away": "unreachable"}
    assert data["hosts"]["n1"]["candidate_sha256"] and data["hosts"]["n1"]["running_sha256"] is None
    assert data["staged"][0]["verdict"].startswith("no host counts t1.lockdown")
    assert md.startswith("# hostfw fleet report") and "| away | unreachable |" in md
    assert "away " in out  # in the recap: the play went on without it
    # a table that nobody rolled out appears: drifted, and the candidate is hashed like the host's nft would
    subprocess.run([str(bindir / "nft"), "-f", "/dev/stdin"], input=CANDIDATE, text=True, check=True,
                   env=dict(os.environ, FAKE_NFT_STATE=str(tmp_path / "ruleset.json")))
    data, md, out = run(tmp_path, bindir)
    assert data["hosts"]["n1"]["state"] == "drifted"
    assert data["hosts"]["n1"]["why"] == "a table inet hostfw runs that no rollout confirmed or persisted"
    assert data["hosts"]["n1"]["candidate_sha256"] and data["hosts"]["n1"]["running_sha256"]
