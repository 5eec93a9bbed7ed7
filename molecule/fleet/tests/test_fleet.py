"""fleet: a batch with a shrunk rollback timeout and a first rollout that restricts egress on fresh hosts.

After converge (the first rollout) and idempotence: every host confirmed and persisted, nothing rolled
back, the conntrack primer was used. Then two more runs of the rollout playbook (once each, in this
order, each before the tests that read its outcome): one in which fl6 alone loses SSH, one that rolls
the good policy out again."""

import json
import re
import socket

import pytest

from helpers import address, ansible_playbook, get, task_results, tcp_ok

HOSTS = ["fl1", "fl2", "fl3", "fl4", "fl5", "fl6"]
testinfra_hosts = HOSTS
V3 = "projectcalico.org/v3"
GOOD = [{"apiVersion": V3, "kind": "GlobalNetworkPolicy", "metadata": {"name": "egress-dns-only"},
         "spec": {"order": 10, "selector": "role == 'node'", "types": ["Ingress", "Egress"],
                  "ingress": [{"action": "Allow"}],
                  "egress": [{"action": "Allow", "protocol": "UDP", "destination": {"ports": [53]}}]}}]
# every host's table changes (TCP 8090 denied, a new policy); fl6 alone also loses SSH
BAD = GOOD + [
    {"apiVersion": V3, "kind": "GlobalNetworkPolicy", "metadata": {"name": "deny-8090"},
     "spec": {"order": 5, "selector": "role == 'node'", "types": ["Ingress"],
              "ingress": [{"action": "Deny", "protocol": "TCP", "destination": {"ports": [8090]}}]}},
    {"apiVersion": V3, "kind": "FelixConfiguration", "metadata": {"name": "node.fl6"},
     "spec": {"failsafeInboundHostPorts": []}},
    {"apiVersion": V3, "kind": "GlobalNetworkPolicy", "metadata": {"name": "cut-ssh"},
     "spec": {"order": 1, "selector": "cut == 'yes'", "types": ["Ingress"],
              "ingress": [{"action": "Deny", "protocol": "TCP", "destination": {"ports": [22]}}]}},
]


def recap(output):
    """{host: {ok: n, changed: n, failed: n, ...}} from the PLAY RECAP."""
    found = {}
    for line in output.split("PLAY RECAP", 1)[-1].splitlines():
        match = re.match(r"^(\S+)\s+:\s+(.*)$", line.strip())
        if match:
            found[match.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(2))}
    return found


COMMIT_TASK = "Apply the candidate with an armed rollback, confirm it over a new connection and persist it"


@pytest.fixture(scope="module")
def cut_run():
    """A run in which fl6 alone loses SSH (its rollback fires); every other host's table changes too."""
    return ansible_playbook("hostfw.nftables.rollout", "-e", json.dumps({"hostfw_resources": BAD}))


@pytest.fixture(scope="module")
def again_run(cut_run):
    """After the cut run: the good policy again."""
    return ansible_playbook("hostfw.nftables.rollout")


# -- after converge + idempotence (the first rollout, egress restricted, fresh hosts) -------------
def test_first_rollout_confirmed_and_persisted_nothing_rolled_back(host):
    assert host.run("ls /run/hostfw/rolled-back-*.json").rc != 0, "no rollback fired"
    assert not host.file("/run/hostfw/armed.json").exists
    assert host.file("/run/hostfw/primer.nft").exists, "a fresh host gets the conntrack primer first"
    assert host.run("systemctl is-enabled hostfw.service").stdout.strip() == "enabled"
    persisted = host.file("/etc/hostfw/hostfw.nft").content_string
    assert "egress-dns-only" in persisted and persisted.endswith(host.run("nft -s list table inet hostfw").stdout)


def test_egress_is_really_restricted(host):
    """The policy is not a no-op: a NEW outbound connection from the host is dropped."""
    me = host.backend.get_hostname()
    peer = HOSTS[(HOSTS.index(me) + 1) % len(HOSTS)]
    assert not tcp_ok(host, address(peer), 22), "%s must not open a new connection to %s:22" % (me, peer)
    socket.create_connection((address(peer), 22), 5).close()  # the peer's sshd admits new connections
    table = host.run("nft -s list table inet hostfw").stdout
    assert "egress-dns-only" in table and "ct state established,related accept" in table


# -- a batch in which one host loses SSH ---------------------------------------------------------
def test_cut_run_fails_and_says_rolled_back_for_fl6_only(cut_run):
    out = cut_run.stdout
    assert cut_run.returncode == 2, out[-3000:]
    assert "hostfw: ROLLED BACK on fl6" in out and "identical to the snapshot: True" in out
    counts = recap(out)
    assert counts["fl6"]["failed"] == 1, counts
    for name in HOSTS[:5]:
        assert counts[name]["failed"] == 0 and counts[name]["unreachable"] == 0, (name, counts)
    commits = dict(task_results(out, COMMIT_TASK))
    assert commits["fl6"] == "fatal" and all(commits[name] == "changed" for name in HOSTS[:5]), commits


def test_cut_run_persisted_every_confirmed_host_and_left_fl6_clean(cut_run):
    for name in HOSTS[:5]:
        node = get(name)
        persisted = node.file("/etc/hostfw/hostfw.nft").content_string
        assert "deny-8090" in persisted, "%s confirmed in the batch of the rolled-back fl6 is persisted" % name
        assert persisted.endswith(node.run("nft -s list table inet hostfw").stdout), name
    fl6 = get("fl6")
    running = fl6.run("nft -s list table inet hostfw").stdout
    assert "cut-ssh" not in running and "egress-dns-only" in running, "fl6 restored its previous table"
    assert "cut-ssh" not in fl6.file("/etc/hostfw/hostfw.nft").content_string
    assert not fl6.file("/run/hostfw/armed.json").exists, "no stale armed.json after the rollback"
    last = json.loads(fl6.file("/run/hostfw/last-rollback.json").content_string)
    assert last["fired"] is True and last["restored_identical"] is True


def test_next_run_says_what_happened_last_time(again_run):
    out = again_run.stdout
    assert again_run.returncode == 0, out[-3000:]
    assert re.search(r"\[fl6\].*the last rollout on this host ROLLED BACK", out.replace("\n", " ")), out[-3000:]
    counts = recap(out)
    assert all(counts[name]["failed"] == 0 for name in HOSTS), counts
