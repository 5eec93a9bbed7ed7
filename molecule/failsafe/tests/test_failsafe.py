"""failsafe: both refused candidates changed nothing on the host, and the refusals say why."""

import os
import re

from helpers import EPHEMERAL

testinfra_hosts = ["fs1"]


def log(case):
    with open(os.path.join(EPHEMERAL, "%s.log" % case)) as handle:
        return handle.read()


def test_ruleset_unchanged(host):
    assert host.run("nft -s list ruleset").stdout == host.file("/root/ruleset-before.nft").content_string
    assert host.run("nft list tables").stdout.strip() == ""


def test_nothing_armed_applied_or_persisted(host):
    assert not host.file("/run/hostfw/armed.json").exists
    assert host.run("systemctl list-timers --all --no-legend 'hostfw-rollback-*'").stdout.strip() == ""
    assert not host.file("/etc/hostfw/hostfw.nft").exists
    assert not host.file("/etc/systemd/system/hostfw.service").exists


def test_protected_ports_refusal_names_port_tier_and_policy():
    text = log("protected-ports")
    assert "the failsafe proof failed, nothing was changed on the host" in text
    # one line per host and cause: the three ports together, the deciding rule, the one fix
    cause = ("host fs1: protected inbound ports tcp:22, tcp:179, tcp:2379 (IPv4) closed for every source on all "
             "interfaces (*) by tier lockdown policy close-control-ports ingress rule 0 (Deny); fix: allow them in a "
             "policy (a failsafe net or an Allow from your management network is enough), restore the failsafe in "
             "the FelixConfiguration, or remove them from hostfw_protected_ports")
    assert cause in text, text
    assert "would be closed" not in text
    assert "Apply the candidate with an armed rollback" not in text


def test_management_access_refusal_names_the_flow():
    text = log("management-access")
    assert "the failsafe proof failed" not in text
    match = re.search(r"the management flow TCP (\S+) -> (\S+):22 would be denied \((.*?)\)\. Nothing was changed", text)
    assert match, text
    assert match.group(3) == "end of tier lockdown (defaultAction Deny)"
    assert "Apply the candidate with an armed rollback" not in text
