"""rollback: the canary restored its previous table by itself and the rollout stopped there."""

import json
import os

from helpers import EPHEMERAL, get, listing

testinfra_hosts = ["rb1"]


def log():
    with open(os.path.join(EPHEMERAL, "rollout.log")) as handle:
        return handle.read()


def test_previous_table_restored_byte_identical(host):
    before = host.file("/root/hostfw-before.nft").content_string
    assert before.strip()
    assert listing(host) == before


def test_rollback_record(host):
    records = host.run("cat /run/hostfw/rolled-back-*.json").stdout.strip().splitlines()
    assert len(records) == 1
    record = json.loads(records[0])
    assert record["rc"] == 0 and record["present"]
    assert not host.file("/run/hostfw/armed.json").exists, "a fired rollback leaves no stale armed.json"
    last = json.loads(host.file("/run/hostfw/last-rollback.json").content_string)
    assert last["id"] in records[0] and last["fired"] is True and last["restored_identical"] is True
    assert host.run("systemctl list-timers --no-legend 'hostfw-rollback-*'").stdout.strip() == ""


def test_previous_table_is_the_compiled_baseline(host):
    before = host.file("/root/hostfw-before.nft").content_string
    assert "default/baseline ingress" in before and "failsafe inbound" in before
    assert "cut-ssh" not in before


def test_persisted_file_untouched(host):
    persisted = host.file("/etc/hostfw/hostfw.nft").content_string
    assert "cut-ssh" not in persisted
    assert persisted.endswith(host.file("/root/hostfw-before.nft").content_string)


def test_new_ssh_connection_works_again(host):
    assert host.run("true").rc == 0  # testinfra opens its own SSH connection


def test_play_failed_clearly():
    text = log()
    assert "ROLLED BACK on rb1" in text
    assert "identical to the snapshot: True" in text
    assert "The rollout stops here" in text


def test_rollout_stopped_at_canary():
    rb2 = get("rb2")
    assert listing(rb2) is None, "rb2 must not be touched after the canary rolled back"
    assert "rb2" not in log().split("PLAY RECAP")[0]
