"""The golden tables through the real nft_table module on Debian 11, 12 and 13, with each release's own
nft and python3: stage, apply, confirm, restage (unchanged), persist, the boot-time load of the persisted
file, restage (unchanged).

Debian 11's nft 0.9.8 lists some rules differently once the listing is loaded again, so the canonical
form must be the listing's fixed point (docs/platforms.md); before that, the apply of rich-n1 failed
its hash check and rolled back.  The golden tables are the renderer's own output
(tests/unit/plugins/plugin_utils/golden/*.nft), taken as they are.
"""

import glob
import hashlib
import json
import os
import re

import pytest
import yaml

from debian_target import ROOT, ansible_playbook

GOLDEN = sorted(glob.glob(os.path.join(ROOT, "tests", "unit", "plugins", "plugin_utils", "golden", "*.nft")))
PLAYBOOK = os.path.join(ROOT, "tests", "platforms", "golden-rollout.yml")
RELISTED = re.compile(r"meta l4proto \S+ ip6? [sd]addr")

# release -> (nft version line prefix, python minor); measured (docs/platforms.md)
RELEASES = {
    "bullseye": ("nftables v0.9.8 ", "3.9"),
    "bookworm": ("nftables v1.0.6 ", "3.11"),
    "trixie": ("nftables v1.1.3 ", "3.13"),
}


def normalise(text):
    lines = [line.rstrip() for line in text.replace("\r", "").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines) + "\n"


def rollout(target, tmp_path):
    inventory = {"all": {"hosts": {"platform": {
        "ansible_connection": "community.general.chroot",
        "ansible_host": target.root,
        "ansible_python_interpreter": "/usr/bin/python3",
    }}}}
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
    results = tmp_path / "results.json"
    extra = {"platform_golden_files": GOLDEN, "platform_result_file": str(results)}
    env = dict(os.environ,
               ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".collections"),
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-local"),
               ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_HOST_KEY_CHECKING="0",
               ANSIBLE_PYTHON_INTERPRETER="/usr/bin/python3")
    env.pop("ANSIBLE_CONFIG", None)
    proc = target.run([ansible_playbook(), "-i", str(tmp_path / "inventory.yml"), "-e", json.dumps(extra),
                       PLAYBOOK], env=env)
    assert proc.returncode == 0, proc.stdout[-12000:]
    with open(str(results)) as handle:
        return json.load(handle), proc.stdout


@pytest.mark.parametrize("suite", sorted(RELEASES))
def test_golden_tables_roll_out(debian, suite, tmp_path):
    assert len(GOLDEN) >= 4, GOLDEN
    version_prefix, python = RELEASES[suite]
    with debian(suite) as target:
        results, output = rollout(target, tmp_path)
        python_version = target.run(["chroot", target.root, "python3", "-c",
                                     "import sys; print('%d.%d' % sys.version_info[:2])"]).stdout.strip()
    assert python_version == python
    assert results["nft_version"].startswith(version_prefix), results["nft_version"]
    assert sorted(results["tables"]) == sorted(os.path.basename(path) for path in GOLDEN)
    loads = {}
    for name, steps in sorted(results["tables"].items()):
        stage, apply, confirm = steps["stage"], steps["apply"], steps["confirm"]
        candidate = stage["sha256_after"]
        assert stage["changed"] is True, (name, stage)
        assert stage["nft_version"] == results["nft_version"]
        loads[name] = stage["canonical_loads"]
        assert apply["applied"] is True and apply["sha256_after"] == candidate, (name, apply)
        assert apply["rolled_back"] is False and apply["armed"] is True, (name, apply)
        assert confirm["changed"] is True and confirm["armed"] is False, (name, confirm)
        assert confirm["sha256_after"] == candidate, (name, confirm)
        for step in ("restage", "after_boot"):
            again = steps[step]
            assert again["changed"] is False, (name, step, again["unified_diff"])
            assert again["sha256_before"] == again["sha256_after"] == candidate, (name, step, again)
        assert steps["persist"]["changed"] is True, (name, steps["persist"])
        # the running table is exactly the canonical candidate: its own listing hashes to the candidate
        assert hashlib.sha256(normalise(steps["listing"]).encode()).hexdigest() == candidate, name
    print("%s (%s): scratch loads to the canonical form: %s" % (suite, results["nft_version"], loads))
    # nft 0.9.8 lists `meta l4proto P ip saddr ...` differently once reloaded: tables with such a rule
    # need one more load; nft 1.0 and newer, and every table without one, reach the fixed point at once
    expected = {}
    for path in GOLDEN:
        with open(path) as handle:
            relisted = suite == "bullseye" and RELISTED.search(handle.read()) is not None
        expected[os.path.basename(path)] = 3 if relisted else 2
    assert loads == expected
    assert "ROLLED BACK" not in output
