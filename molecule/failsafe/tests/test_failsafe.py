"""failsafe: the refused candidate changed nothing on the host."""

import os

from helpers import EPHEMERAL

testinfra_hosts = ["fs1"]


def test_ruleset_unchanged(host):
    assert host.run("nft -s list ruleset").stdout == host.file("/root/ruleset-before.nft").content_string
    assert host.run("nft list tables").stdout.strip() == ""


def test_nothing_armed_applied_or_persisted(host):
    assert not host.file("/run/hostfw/armed.json").exists
    assert host.run("systemctl list-timers --all --no-legend 'hostfw-rollback-*'").stdout.strip() == ""
    assert not host.file("/etc/hostfw/hostfw.nft").exists
    assert not host.file("/etc/systemd/system/hostfw.service").exists


def test_message_names_the_proof():
    with open(os.path.join(EPHEMERAL, "rollout.log")) as handle:
        text = handle.read()
    assert "failsafe inbound TCP 22 is dropped" in text
