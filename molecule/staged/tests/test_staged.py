"""staged: the shadow path counted real connections, the report said so over SSH, and drift shows."""

import json
import os

from helpers import EPHEMERAL, get, listing

testinfra_hosts = ["st1", "st2"]
OUT = os.environ.get("HOSTFW_MOLECULE_OUT") or EPHEMERAL


def report(n):
    with open(os.path.join(OUT, "report-%d" % n, "report.json")) as handle:
        return json.load(handle)


def staged(data, name):
    return next(s for s in data["staged"] if s["name"] == name)


def test_the_table_carries_the_shadow_path_and_it_decides_nothing(host):
    if host.backend.get_hostname() != "st2":
        return  # st1's table is flushed at the end of the side effect
    text = listing(host)
    assert "chain pending-b-input" in text and "chain pending-a-input" in text
    assert 'comment "hostfw-pending:a molecule/staged:molecule.block-8080 ingress[0] Deny"' in text


def test_twenty_connections_counted_as_would_deny_of_allowed_connections():
    data = report(1)
    assert {h: e["state"] for h, e in data["hosts"].items()} == {"st1": "in sync", "st2": "in sync"}
    block = staged(data, "molecule.block-8080")
    rule = block["rules"][0]
    assert rule["rule"] == "molecule/staged:molecule.block-8080 ingress[0] Deny"
    assert rule["hosts"]["st1"]["new_connections"] >= 20 and rule["hosts"]["st1"]["allowed_today"] >= 20
    assert block["verdict"].startswith("promoting molecule.block-8080 would have denied ")
    # the SSH connections that reach the end of tier molecule are allow-ssh's (its Delete), not block-8080's
    assert block["attributed"] == [] and block["would_deny_allowed_today"] == rule["allowed_today"]
    assert " since %s" % data["hosts"]["st1"]["counters_since"] in block["verdict"]
    assert data["hosts"]["st1"]["counters_since_source"] == "applied"
    rules = {r["rule"]: r for r in data["policy_rules"]}
    assert rules["molecule/allow-web ingress[0] Allow"]["hosts"]["st1"]["packets"] >= 20
    assert "molecule/allow-web ingress[1] Allow" in data["unused_rules"]


def test_the_staged_delete_of_allow_ssh_counts_the_management_connections():
    delete = staged(report(1), "allow-ssh")
    assert delete["stagedAction"] == "Delete" and delete["would_deny_allowed_today"] >= 1
    assert {a["point"] for a in delete["attributed"]} == {"end-of-tier molecule ingress"}
    assert delete["verdict"].startswith("promoting allow-ssh would have denied ")


def test_counts_survive_an_identical_rollout():
    first, second = report(1), report(2)
    for host in ("st1", "st2"):
        assert second["hosts"][host]["state"] == "in sync"
        assert second["hosts"][host]["counters_since"] == first["hosts"][host]["counters_since"]
        assert second["hosts"][host]["running_sha256"] == first["hosts"][host]["running_sha256"]
    old = staged(first, "molecule.block-8080")["rules"][0]["hosts"]["st1"]["new_connections"]
    new = staged(second, "molecule.block-8080")["rules"][0]["hosts"]["st1"]["new_connections"]
    assert new >= old >= 20


def test_the_rollout_warned_before_the_promotion_could_cut_ssh():
    with open(os.path.join(OUT, "rollout-again.log")) as handle:
        text = handle.read()
    for host in ("st1", "st2"):
        assert ("hostfw: WARNING for %s: promoting the staged policies would cut the management connection TCP"
                % host) in text
        assert "hostfw: WARNING for %s: promoting the staged policies would close a protected port" % host in text
    assert "changed=0" in text.split("PLAY RECAP")[1]


def test_a_flushed_table_is_drifted():
    data = report(3)
    assert data["hosts"]["st1"]["state"] == "drifted"
    assert data["hosts"]["st2"]["state"] == "in sync"
    assert data["hosts"]["st1"]["counters_since"] is None
    assert os.path.exists(os.path.join(OUT, "report-3", "report.md"))
    assert get("st1").run("nft list chain inet hostfw pending-b-input").rc == 0  # flush keeps the chains
