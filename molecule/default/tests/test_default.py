"""default: the table is applied, persisted, idempotent, check mode is honest, traffic is filtered."""

import os
import re

from helpers import PROJECT, address, ansible_playbook, get, listing, tcp_ok

testinfra_hosts = ["node1", "node2"]


def test_table_loaded_and_persisted(host):
    text = listing(host)
    assert text is not None and "chain input" in text
    persisted = host.file("/etc/hostfw/hostfw.nft")
    assert persisted.exists and persisted.mode == 0o600
    content = persisted.content_string
    assert "table inet hostfw\ndelete table inet hostfw\n" in content
    assert content.endswith(text if text.endswith("\n") else text + "\n")
    assert host.service("hostfw.service").is_enabled
    unit = host.file("/etc/systemd/system/hostfw.service").content_string
    assert "Before=network-pre.target" in unit and "ExecStop" not in unit and "flush" not in unit


def test_no_rollback_pending(host):
    assert host.file("/run/hostfw/armed.json").exists is False
    assert host.run("systemctl list-timers --all --no-legend 'hostfw-rollback-*'").stdout.strip() == ""
    assert host.file("/run/hostfw/confirmed.json").exists


def test_boot_unit_reloads_same_table(host):
    before = listing(host)
    assert host.run("systemctl restart hostfw.service").rc == 0
    assert listing(host) == before


def test_real_connections():
    node1, node2 = get("node1"), get("node2")
    ip1 = address("node1")
    assert tcp_ok(node2, ip1, 22)
    assert tcp_ok(node2, ip1, 8080)
    assert not tcp_ok(node2, ip1, 8081)
    assert tcp_ok(node2, ip1, 8082), "node2 is in @peers"
    ip2 = address("node2")
    assert tcp_ok(node1, ip2, 8080)
    assert not tcp_ok(node1, ip2, 8081)
    assert tcp_ok(node1, ip2, 8082)


def test_check_mode_reports_no_change():
    playbook = os.path.join(PROJECT, "molecule", "resources", "converge-rollout.yml")
    proc = ansible_playbook("--check", "--diff", playbook)
    assert proc.returncode == 0, proc.stdout
    recap = re.findall(r"^(\S+)\s*: ok=\d+\s+changed=(\d+)", proc.stdout, re.M)
    assert recap and all(changed == "0" for _, changed in recap), proc.stdout
    assert "+++ after" not in proc.stdout, proc.stdout


def test_check_mode_shows_diff_of_a_change():
    playbook = os.path.join(PROJECT, "molecule", "resources", "converge-rollout.yml")
    candidate = listing(get("node2")).replace("dport 8081", "dport 8083")
    proc = ansible_playbook("--check", "--diff", "--limit", "node2", "-e",
                            "hostfw_candidate_ruleset='%s'" % candidate.replace("'", ""), playbook)
    assert proc.returncode == 0, proc.stdout
    assert "-\t\tiifname \"eth0\" tcp dport 8081" in proc.stdout, proc.stdout
    assert "+\t\tiifname \"eth0\" tcp dport 8083" in proc.stdout, proc.stdout
    assert "8081" in listing(get("node2")), "check mode must not change the table"
