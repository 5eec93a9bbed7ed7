"""default: the compiled table is applied, persisted, idempotent, check mode is honest, traffic is filtered."""

import copy
import json
import os
import re
import socket

from helpers import PROJECT, address, ansible_playbook, get, listing, runner, task_results, tcp_ok

testinfra_hosts = ["node1", "node2"]

# the Debian release of the containers (scripts/molecule.sh sets it) -> the nft and python3 it must have
SUITE = os.environ.get("HOSTFW_TARGET_SUITE", "bookworm")
RELEASES = {"bullseye": ("nftables v0.9.8 ", "3.9"), "bookworm": ("nftables v1.0.6 ", "3.11"),
            "trixie": ("nftables v1.1.3 ", "3.13")}

PLAYBOOK = os.path.join(PROJECT, "molecule", "resources", "converge-rollout.yml")


def controller_tcp_ok(ip, port, timeout=2):
    """A NEW TCP connection from the controller (the host running molecule, not a node)."""
    try:
        socket.create_connection((ip, port), timeout).close()
        return True
    except OSError:
        return False


def test_table_loaded_and_persisted(host):
    text = listing(host)
    assert text is not None and "chain filter-input" in text and "chain hep-in-any-interface-at-all" in text
    assert 'comment "molecule/allow-web ingress[0] Allow"' in text
    persisted = host.file("/etc/hostfw/hostfw.nft")
    assert persisted.exists and persisted.mode == 0o600
    content = persisted.content_string
    assert "table inet hostfw\ndelete table inet hostfw\n" in content
    assert content.endswith(text if text.endswith("\n") else text + "\n")
    assert host.service("hostfw.service").is_enabled
    unit = host.file("/etc/systemd/system/hostfw.service").content_string
    assert "Before=network-pre.target" in unit and "ExecStop" not in unit and "flush" not in unit


def test_release_and_its_nft(host):
    nft, python = RELEASES[SUITE]
    assert host.run("nft --version").stdout.startswith(nft)
    assert host.run("python3 -c 'import sys; print(\"%d.%d\" % sys.version_info[:2])'").stdout.strip() == python


def test_the_role_installed_nftables_where_it_was_missing():
    node2 = get("node2")
    assert node2.file("/root/hostfw-nftables-removed").exists, "prepare removed nftables from node2"
    assert node2.package("nftables").is_installed
    assert get("node1").file("/root/hostfw-nftables-removed").exists is False


def test_no_rollback_pending(host):
    assert host.file("/run/hostfw/armed.json").exists is False
    assert host.run("systemctl list-timers --all --no-legend 'hostfw-rollback-*'").stdout.strip() == ""
    assert host.file("/run/hostfw/confirmed.json").exists


def test_boot_unit_reloads_same_table(host):
    before = listing(host)
    assert host.run("systemctl restart hostfw.service").rc == 0
    assert listing(host) == before


def test_real_connections_between_nodes():
    node1, node2 = get("node1"), get("node2")
    for src, dst in ((node2, address("node1")), (node1, address("node2"))):
        assert tcp_ok(src, dst, 22), "failsafe inbound TCP 22"
        assert tcp_ok(src, dst, 8080), "molecule/allow-web: TCP 8080 from anywhere"
        assert not tcp_ok(src, dst, 8081), "end of tier molecule (defaultAction Deny)"
        assert tcp_ok(src, dst, 8082), "molecule/allow-peers: the source has role == 'node'"


def test_real_connections_from_the_controller():
    for name in ("node1", "node2"):
        ip = address(name)
        assert controller_tcp_ok(ip, 22), "failsafe inbound TCP 22"
        assert controller_tcp_ok(ip, 8080), "molecule/allow-web: TCP 8080 from anywhere"
        assert not controller_tcp_ok(ip, 8081), "end of tier molecule (defaultAction Deny)"
        assert not controller_tcp_ok(ip, 8082), "the controller is not a role == 'node' host"


def test_check_mode_reports_no_change():
    proc = ansible_playbook("--check", "--diff", PLAYBOOK)
    assert proc.returncode == 0, proc.stdout
    recap = re.findall(r"^(\S+)\s*: ok=\d+\s+changed=(\d+)", proc.stdout, re.M)
    assert recap and all(entry[1] == "0" for entry in recap), proc.stdout
    assert "+++ after" not in proc.stdout, proc.stdout
    # each host's management connection (SSH from the controller) was noted, the batch's flows were
    # evaluated against the compiled policy in one task per batch, and neither host was refused
    noted = task_results(proc.stdout, "Note this host's management flow (the batch is checked in one task below)")
    assert sorted(noted) == [("node1", "ok"), ("node2", "ok")], proc.stdout
    evaluated = task_results(
        proc.stdout, "Evaluate the batch's management flows against the compiled policy (once per batch)")
    assert evaluated and all(entry[1] == "ok" for entry in evaluated), proc.stdout
    refused = task_results(proc.stdout, "Refuse a candidate that would cut the management connection")
    assert sorted(refused) == [("node1", "skipping"), ("node2", "skipping")], proc.stdout


def test_check_mode_shows_diff_of_a_changed_policy():
    resources = copy.deepcopy(runner().get_variables("node2")["hostfw_resources"])
    web = [r for r in resources if r["metadata"]["name"] == "allow-web"][0]
    web["spec"]["ingress"][0]["destination"]["ports"] = [8083]
    before = listing(get("node2"))
    proc = ansible_playbook("--check", "--diff", "--limit", "node2",
                            "-e", json.dumps({"hostfw_resources": resources}), PLAYBOOK)
    assert proc.returncode == 0, proc.stdout
    assert re.search(r'^-\s.*dport 8080 .*"molecule/allow-web ingress\[0\] Allow"', proc.stdout, re.M), proc.stdout
    assert re.search(r'^\+\s.*dport 8083 .*"molecule/allow-web ingress\[0\] Allow"', proc.stdout, re.M), proc.stdout
    assert re.search(r"^node2\s*: ok=\d+\s+changed=[1-9]", proc.stdout, re.M), "check mode reports the change"
    assert listing(get("node2")) == before, "check mode must not change the table"
    assert tcp_ok(get("node1"), address("node2"), 8080)
