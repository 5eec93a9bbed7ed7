"""Self-tests of the dataplane lab: hand-written rulesets, real packets, exact verdicts.

Every assertion on "allowed" has a matching "denied" (and the other way round) so that a lab that
always answers the same cannot pass.
"""

import os
import sys
import subprocess
import threading
import time

import pytest

import netlab
from netlab import Flow, Lab, LabError

pytestmark = pytest.mark.dataplane

# node addresses: several subnets on one bridge, on-link routing only
A4, A4_POD, A6, A6_POD = "172.18.0.2", "10.244.1.5", "fd00::2", "fd00:244::5"
B4, B6 = "172.18.0.3", "fd00::3"
C4, C6 = "172.18.0.4", "fd00::4"

SERVER_RULESET = """
table inet hostfw {
    chain input {
        type filter hook input priority 0; policy accept;
        ct state established,related accept
        iifname "lo" accept
        tcp dport 22 counter accept comment "ssh"
        ip saddr 10.244.1.5 tcp dport 80 counter accept comment "http from pod"
        ip6 saddr fd00::2 tcp dport 80 counter accept comment "http6 from a"
        tcp dport 80 counter drop comment "http drop"
        tcp dport 8080 counter reject with tcp reset comment "http-alt reject"
        ip saddr 172.18.0.4 icmp type echo-request counter drop comment "icmp from c"
        ip6 saddr fd00::4 icmpv6 type echo-request counter drop comment "icmp6 from c"
        udp dport 5353 counter drop comment "mdns drop"
    }
    chain output {
        type filter hook output priority 0; policy accept;
        ct state established,related accept
        ip daddr 172.18.0.4 udp dport 53 counter drop comment "dns to c"
        ip6 daddr fd00::4 udp dport 53 counter drop comment "dns6 to c"
    }
}
"""


@pytest.fixture(scope="module")
def trio(netlab_available):  # pylint: disable=unused-argument
    """a (client with pod addresses), b (server, interface ens3), c (client) on one bridge."""
    with Lab() as lab:
        lab.add_node("a", [A4, A4_POD, A6, A6_POD])
        lab.add_node("b", [B4, B6], ifname="ens3")
        lab.add_node("c", [C4, C6])
        yield lab


@pytest.fixture
def topo(trio):  # pylint: disable=redefined-outer-name
    """The shared three-node lab with no ruleset anywhere and empty conntrack tables."""
    for node in trio.nodes.values():
        node.nft("delete table inet hostfw")
        node.nft("delete table ip other")
        assert "table" not in node.ruleset()
    trio.conntrack_flush()
    return trio


def verdicts(lab, flows):
    return [r.verdict for r in lab.probe_many(flows)]


def test_no_ruleset_everything_passes(topo):
    flows = [Flow(s, sip, d, dip, proto, port)
             for (s, sip, d, dip) in [("a", A4, "b", B4), ("a", A6_POD, "b", B6), ("c", C4, "a", A4_POD),
                                      ("b", B6, "c", C6)]
             for (proto, port) in [("tcp", 80), ("udp", 53), ("icmp", None)]]
    results = topo.probe_many(flows)
    assert all(r.allowed for r in results), [str(r) for r in results if not r.allowed]
    assert {r.detail for r in results} == {"established", "reply"}


def test_input_rules_decide_per_source_address_and_family(topo):
    b = topo.nodes["b"]
    rc, err = b.load_nft(SERVER_RULESET)
    assert rc == 0, err
    cases = [
        # TCP 22 open to everyone
        (Flow("a", A4, "b", B4, "tcp", 22), "allowed"),
        (Flow("a", A4_POD, "b", B4, "tcp", 22), "allowed"),
        (Flow("a", A6_POD, "b", B6, "tcp", 22), "allowed"),
        (Flow("c", C6, "b", B6, "tcp", 22), "allowed"),
        # TCP 80 only from 10.244.1.5 and fd00::2
        (Flow("a", A4_POD, "b", B4, "tcp", 80), "allowed"),
        (Flow("a", A4, "b", B4, "tcp", 80), "denied"),
        (Flow("c", C4, "b", B4, "tcp", 80), "denied"),
        (Flow("a", A6, "b", B6, "tcp", 80), "allowed"),
        (Flow("a", A6_POD, "b", B6, "tcp", 80), "denied"),
        (Flow("c", C6, "b", B6, "tcp", 80), "denied"),
        # UDP: 5353 dropped, 53 echoed (its reply is not "to port 53")
        (Flow("a", A4, "b", B4, "udp", 5353), "denied"),
        (Flow("a", A6, "b", B6, "udp", 5353), "denied"),
        (Flow("a", A4, "b", B4, "udp", 53), "allowed"),
        (Flow("c", C6, "b", B6, "udp", 53), "allowed"),
        # ICMP echo: dropped from c only
        (Flow("a", A4, "b", B4, "icmp"), "allowed"),
        (Flow("a", A6_POD, "b", B6, "icmp"), "allowed"),
        (Flow("c", C4, "b", B4, "icmp"), "denied"),
        (Flow("c", C6, "b", B6, "icmp"), "denied"),
        # the ruleset is on b only: a and c talk freely
        (Flow("c", C4, "a", A4, "tcp", 80), "allowed"),
        (Flow("a", A6_POD, "c", C6, "udp", 5353), "allowed"),
    ]
    results = topo.probe_many([f for f, _unused in cases])
    wrong = ["%s, expected %s" % (r, want) for r, (_unused, want) in zip(results, cases) if r.verdict != want]
    assert not wrong, "\n".join(wrong)
    for r in results:
        if not r.allowed:
            assert r.detail == "timeout", str(r)
            assert r.elapsed >= 0.4, str(r)
        else:
            assert r.elapsed < 0.4, str(r)


def test_reject_is_denied_but_distinguished(topo):
    b = topo.nodes["b"]
    assert b.load_nft(SERVER_RULESET)[0] == 0
    r4, r6, ok = topo.probe_many([Flow("a", A4, "b", B4, "tcp", 8080), Flow("a", A6, "b", B6, "tcp", 8080),
                                  Flow("a", A4, "b", B4, "tcp", 8081)])
    assert (r4.verdict, r4.detail) == ("denied", "refused")
    assert (r6.verdict, r6.detail) == ("denied", "refused")
    assert ok.allowed  # the lab listens on every probed port: "refused" is never a closed port
    assert r4.elapsed < 0.4


def test_output_rule_on_the_sender(topo):
    b = topo.nodes["b"]
    assert b.load_nft(SERVER_RULESET)[0] == 0
    cases = [
        (Flow("b", B4, "c", C4, "udp", 53), "denied"),
        (Flow("b", B6, "c", C6, "udp", 53), "denied"),
        (Flow("b", B4, "a", A4, "udp", 53), "allowed"),
        (Flow("b", B6, "a", A6_POD, "udp", 53), "allowed"),
        (Flow("b", B4, "c", C4, "udp", 54), "allowed"),
        (Flow("b", B4, "c", C4, "tcp", 53), "allowed"),
    ]
    results = topo.probe_many([f for f, _unused in cases])
    assert [r.verdict for r in results] == [want for _unused, want in cases], [str(r) for r in results]
    # a local output drop is reported at send time
    assert results[0].detail == "eperm" and results[1].detail == "eperm"


def test_counters_count_exactly_the_probes(topo):
    b = topo.nodes["b"]
    assert b.load_nft(SERVER_RULESET)[0] == 0
    flows = ([Flow("a", A4, "b", B4, "tcp", 80)] * 7 + [Flow("c", C6, "b", B6, "tcp", 22)] * 5
             + [Flow("c", C4, "b", B4, "icmp")] * 3 + [Flow("b", B4, "c", C4, "udp", 53)] * 2)
    results = topo.probe_many(flows)
    assert [r.verdict for r in results] == ["denied"] * 7 + ["allowed"] * 5 + ["denied"] * 5
    counters = b.counters()
    # established packets are accepted before the counted rules; a dropped SYN is sent once in 0.5 s
    assert counters["http drop"] == 7
    assert counters["ssh"] == 5
    assert counters["icmp from c"] == 3
    assert counters["dns to c"] == 2
    assert counters["http from pod"] == 0
    assert counters["dns6 to c"] == 0
    assert set(counters) == {"ssh", "http from pod", "http6 from a", "http drop", "http-alt reject",
                             "icmp from c", "icmp6 from c", "mdns drop", "dns to c", "dns6 to c"}
    with pytest.raises(LabError, match="nft -j list table inet nosuch"):
        b.counters(table="nosuch")


CLIENT_STRICT = """
table inet hostfw {
    chain input {
        type filter hook input priority 0; policy drop;
        %s
    }
    chain output {
        type filter hook output priority 0; policy drop;
        ct state new,established,related accept
        icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept
    }
}
"""
SERVER_STRICT = """
table inet hostfw {
    chain input {
        type filter hook input priority 0; policy drop;
        ct state new tcp dport 443 accept
        ct state new udp dport 443 accept
        ct state new icmp type echo-request accept
        ct state new icmpv6 type echo-request accept
        icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept
    }
    chain output {
        type filter hook output priority 0; policy drop;
        %s
    }
}
"""
CT = "ct state established,related accept"
REPLACE = "table inet hostfw\ndelete table inet hostfw\n"  # a plain `table inet hostfw {}` would merge
ND = "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept"


def test_replies_of_allowed_connections_pass_through_conntrack(topo):
    """Default-drop both ways: the replies get through only via `ct state established`."""
    a, b = topo.nodes["a"], topo.nodes["b"]
    flows = [Flow("a", A4, "b", B4, "tcp", 443), Flow("a", A6, "b", B6, "tcp", 443),
             Flow("a", A4_POD, "b", B4, "udp", 443), Flow("a", A6_POD, "b", B6, "udp", 443),
             Flow("a", A4, "b", B4, "icmp"), Flow("a", A6, "b", B6, "icmp")]
    # control: without the conntrack rules the replies are dropped, on either side
    assert a.load_nft(REPLACE + CLIENT_STRICT % ND)[0] == 0
    assert b.load_nft(REPLACE + SERVER_STRICT % (CT + "\n" + ND))[0] == 0
    assert verdicts(topo, flows) == ["denied"] * 6
    assert a.load_nft(REPLACE + CLIENT_STRICT % (CT + "\n" + ND))[0] == 0
    assert b.load_nft(REPLACE + SERVER_STRICT % ND)[0] == 0
    assert verdicts(topo, flows) == ["denied"] * 6
    # with them, the same flows are allowed, and other ports still are not
    assert b.load_nft(REPLACE + SERVER_STRICT % (CT + "\n" + ND))[0] == 0
    assert verdicts(topo, flows) == ["allowed"] * 6
    assert verdicts(topo, [Flow("a", A4, "b", B4, "tcp", 444), Flow("a", A6, "b", B6, "udp", 444)]) == [
        "denied", "denied"]
    # the conntrack tables hold the connections; flushing empties them
    assert b.conntrack_count() > 0 and a.conntrack_count() > 0
    topo.conntrack_flush()
    assert b.conntrack_count() == 0 and a.conntrack_count() == 0


def test_non_echo_icmp_types_are_judged_at_the_receiver(topo):
    b = topo.nodes["b"]
    rules = """
    table inet hostfw {
        chain input {
            type filter hook input priority 0; policy accept;
            icmp type timestamp-request counter drop comment "ts drop"
            icmpv6 type 200 counter drop comment "private drop"
        }
    }"""
    assert b.load_nft(rules)[0] == 0
    results = topo.probe_many([
        Flow("a", A4, "b", B4, "icmp", icmp_type=13),  # timestamp request
        Flow("a", A4, "b", B4, "icmp", icmp_type=15),  # information request
        Flow("a", A6, "b", B6, "icmp", icmp_type=200, icmp_code=3),
        Flow("a", A6, "b", B6, "icmp", icmp_type=201),
    ])
    assert [(r.verdict, r.detail) for r in results] == [
        ("denied", "timeout"), ("allowed", "seen"), ("denied", "timeout"), ("allowed", "seen")]
    assert b.counters() == {"ts drop": 1, "private drop": 1}


OTHER = """
table ip other {
    set blocked {
        type ipv4_addr
        flags interval
        elements = { 192.0.2.0/24, 198.51.100.7 }
    }
    chain keep {
        ip saddr @blocked drop comment "not ours"
        tcp dport 9 accept
    }
}
"""
HOSTFW_V1 = """table inet hostfw
delete table inet hostfw
table inet hostfw {
    chain input {
        type filter hook input priority 0; policy accept;
        tcp dport 80 counter drop comment "v1 drop 80"
        tcp dport 81 counter accept comment "v1 accept 81"
    }
}
"""
HOSTFW_V2 = HOSTFW_V1.replace("v1", "v2").replace("dport 80 counter drop", "dport 80 counter accept") \
    .replace("dport 81 counter accept", "dport 81 counter drop")


def test_replace_file_is_atomic_and_leaves_other_tables_alone(topo):
    b = topo.nodes["b"]
    assert b.load_nft(OTHER) == (0, "")
    other_before = b.list_table("ip", "other")
    web = [Flow("a", A4, "b", B4, "tcp", 80), Flow("a", A6, "b", B6, "tcp", 81)]
    # the replace form works when the table does not exist yet ...
    assert b.load_nft(HOSTFW_V1) == (0, "")
    assert verdicts(topo, web) == ["denied", "allowed"]
    # ... and when it does: the old chains and rules are gone, the new ones decide
    assert b.load_nft(HOSTFW_V2) == (0, "")
    assert verdicts(topo, web) == ["allowed", "denied"]
    listing = b.list_table(stateless=True)
    assert "v2 drop 80" in listing and "v1" not in listing
    # a candidate that fails half way leaves the previous table untouched
    broken = HOSTFW_V1.replace('comment "v1 accept 81"', 'comment "v1 accept 81"\n        jump nosuchchain')
    rc, err = b.load_nft(broken)
    assert rc != 0 and "nosuchchain" in err
    assert b.list_table(stateless=True) == listing
    assert verdicts(topo, web) == ["allowed", "denied"]
    # -c checks without changing anything
    assert b.check_nft(HOSTFW_V1) == (0, "")
    assert b.list_table(stateless=True) == listing
    # the other table is byte-identical after all of this
    assert b.list_table("ip", "other") == other_before
    assert b.nft("list tables").stdout.split("\n").count("table ip other") == 1


def test_replace_never_opens_a_window(topo):
    """Reload the table 30 times while probing a dropped port: the drop never lapses."""
    b = topo.nodes["b"]
    assert b.load_nft(HOSTFW_V1) == (0, "")
    path = os.path.join(topo.tmpdir, "v1.nft")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(HOSTFW_V1)
    stop = threading.Event()
    leaks = []

    def prober():
        while not stop.is_set():
            for r in topo.probe_many([Flow("a", A4, "b", B4, "tcp", 80)] * 50, timeout=0.2):
                if r.allowed:
                    leaks.append(r)

    thread = threading.Thread(target=prober)
    thread.start()
    try:
        for _unused in range(30):
            assert b.load_nft(path) == (0, "")
    finally:
        stop.set()
        thread.join()
    assert not leaks
    # control: two separate commands (delete, then load) do open a window, and the lab sees it
    assert b.nft("delete table inet hostfw").rc == 0
    assert topo.probe(Flow("a", A4, "b", B4, "tcp", 80)).allowed


def test_nft_command_helpers(topo):
    b = topo.nodes["b"]
    res = b.nft("list table inet hostfw")
    assert res.rc != 0 and "No such file or directory" in res.stderr
    with pytest.raises(LabError, match="list table inet hostfw"):
        b.list_table()
    rc, err = b.load_nft("table inet hostfw { chain input { type filter hook input priority 0; bogus } }")
    assert rc != 0 and "bogus" in err
    assert b.nft(["-c", "-f", "/dev/null"]).rc == 0
    assert b.load_nft(SERVER_RULESET) == (0, "")
    assert 'comment "http drop"' in b.nft("list table inet hostfw").stdout
    # the ruleset lives in b's namespace only
    assert "hostfw" not in topo.nodes["a"].ruleset()


def test_two_interfaces_on_two_bridges(lab):
    """x has eth0 on br0 and eth1 on br1; a rule on iifname eth1 applies to br1 traffic only."""
    x = lab.add_node("x", ["172.18.0.10", "fd00::10"])
    x.add_interface("eth1", ["192.168.50.10", "fd50::10"], bridge="br1")
    y = lab.add_node("y", ["192.168.50.20", "fd50::20"], bridge="br1")
    w = lab.add_node("w", ["172.18.0.30", "10.1.2.3", "fd00::30"], bridge="br0", ifname="ens3")
    rc, err = x.load_nft("""
    table inet hostfw {
        chain input {
            type filter hook input priority 0; policy accept;
            iifname "eth1" tcp dport 80 counter drop comment "eth1 80"
        }
    }""")
    assert rc == 0, err
    cases = [
        (Flow("y", "192.168.50.20", "x", "192.168.50.10", "tcp", 80), "denied"),
        (Flow("y", "fd50::20", "x", "fd50::10", "tcp", 80), "denied"),
        (Flow("y", "192.168.50.20", "x", "192.168.50.10", "tcp", 81), "allowed"),
        (Flow("w", "172.18.0.30", "x", "172.18.0.10", "tcp", 80), "allowed"),
        (Flow("w", "10.1.2.3", "x", "172.18.0.10", "tcp", 80), "allowed"),
        (Flow("w", "fd00::30", "x", "fd00::10", "tcp", 80), "allowed"),
        # x's eth1 address is reached from br0 through eth0 (weak host model): not eth1
        (Flow("w", "172.18.0.30", "x", "192.168.50.10", "tcp", 80), "allowed"),
        # x as a client picks the interface by destination (IPv4: any source works, ARP answers for
        # every local address on every interface; IPv6 neighbour discovery does not, so the source must
        # sit on the interface facing the destination)
        (Flow("x", "172.18.0.10", "y", "192.168.50.20", "tcp", 80), "allowed"),
        (Flow("x", "fd50::10", "y", "fd50::20", "icmp"), "allowed"),
        (Flow("y", "fd50::20", "x", "fd50::10", "icmp"), "allowed"),
        # y and w share no bridge
        (Flow("y", "192.168.50.20", "w", "172.18.0.30", "tcp", 80), "denied"),
    ]
    results = lab.probe_many([f for f, _unused in cases])
    wrong = ["%s, expected %s" % (r, want) for r, (_unused, want) in zip(results, cases) if r.verdict != want]
    assert not wrong, "\n".join(wrong)
    assert x.counters() == {"eth1 80": 2}
    assert x.exec(["ip", "-br", "link", "show", "eth1"]).stdout.startswith("eth1@")
    assert w.exec(["ip", "-br", "link", "show", "ens3"]).stdout.startswith("ens3@")


def test_extra_source_addresses(lab):
    pods = lab.add_node("pods", ["10.244.0.1"])
    pod_ips = ["10.244.%d.%d" % (i // 200, i % 200 + 10) for i in range(60)]
    pod_ips += ["fd00:244::%x" % i for i in range(1, 21)]
    pods.add_addresses(pod_ips)
    host = lab.add_node("host", ["172.18.0.2", "fd00::2"])
    rc, err = host.load_nft("""
    table inet hostfw {
        set pods { type ipv4_addr; flags interval; elements = { 10.244.0.0/24 } }
        chain input {
            type filter hook input priority 0; policy accept;
            tcp dport 10250 ip saddr @pods counter drop comment "pods"
        }
    }""")
    assert rc == 0, err
    flows = [Flow("pods", ip, "host", "fd00::2" if ":" in ip else "172.18.0.2", "tcp", 10250) for ip in pod_ips]
    results = lab.probe_many(flows)
    want = ["denied" if ip.startswith("10.244.0.") else "allowed" for ip in pod_ips]
    assert [r.verdict for r in results] == want
    assert host.counters()["pods"] == want.count("denied")
    with pytest.raises(LabError, match="not an address of node pods"):
        lab.probe(Flow("pods", "10.99.0.1", "host", "172.18.0.2", "tcp", 1))


def test_500_probes_are_fast(topo, capsys):
    b = topo.nodes["b"]
    assert b.load_nft(SERVER_RULESET)[0] == 0
    base = [(Flow("a", A4_POD, "b", B4, "tcp", 80), "allowed"), (Flow("a", A4, "b", B4, "tcp", 80), "denied"),
            (Flow("c", C6, "b", B6, "tcp", 22), "allowed"), (Flow("a", A6_POD, "b", B6, "tcp", 80), "denied"),
            (Flow("a", A4, "b", B4, "udp", 53), "allowed"), (Flow("c", C4, "b", B4, "udp", 5353), "denied"),
            (Flow("a", A6, "b", B6, "icmp"), "allowed"), (Flow("c", C4, "b", B4, "icmp"), "denied"),
            (Flow("b", B4, "c", C4, "udp", 53), "denied"), (Flow("b", B6, "a", A6, "tcp", 1234), "allowed")]
    cases = [base[i % len(base)] for i in range(500)]
    start = time.monotonic()
    results = topo.probe_many([f for f, _unused in cases])
    took = time.monotonic() - start
    wrong = ["%s, expected %s" % (r, want) for r, (_unused, want) in zip(results, cases) if r.verdict != want]
    assert not wrong, "%d wrong:\n%s" % (len(wrong), "\n".join(wrong[:20]))
    with capsys.disabled():
        print("\n500 probes (half dropped) through nftables: %.2f s" % took)
    assert took < 30


# ------------------------------------------------------------------------------ workloads, DNAT, raw IP

POD_RULES = """
table inet hostfw {
    chain input {
        type filter hook input priority 0; policy accept;
        ct state established,related accept
        iifname "cali*" meta l4proto icmpv6 accept
        iifname "cali*" tcp dport 22 counter drop comment "pod to host ssh"
    }
    chain forward {
        type filter hook forward priority 0; policy accept;
        ct state established,related accept
        iifname "cali*" oifname "eth0" tcp dport 80 counter drop comment "pod out http"
    }
}
"""


def test_workloads_are_routed_like_calico_pods(lab):
    """Pods on two hosts and an outside machine reach each other through their hosts; rules on the host
    police them on its input and forward paths (each allowed flow has a denied twin)."""
    lab.add_node("h1", ["172.18.0.2", "fd00::2"])
    lab.add_node("h2", ["172.18.0.3", "fd00::3"])
    lab.add_node("out", ["198.51.100.7", "2001:db8::7"])
    p1 = lab.add_workload("p1", "h1", ["10.65.0.2", "fd65::2"])
    p2 = lab.add_workload("p2", "h2", ["10.65.1.2", "fd65:1::2"])
    assert p1.host_ifname.startswith("cali") and len(p1.host_ifname) == 15 and p1.host_ifname != p2.host_ifname
    assert lab.node_of_address("10.65.1.2") is p2 and lab.node_of_address("192.0.2.99") is None
    lab.static_neighbours()
    pairs = [("p1", "10.65.0.2", "h1", "172.18.0.2"), ("p1", "fd65::2", "h1", "fd00::2"),
             ("h1", "172.18.0.2", "p1", "10.65.0.2"), ("p1", "10.65.0.2", "p2", "10.65.1.2"),
             ("p2", "fd65:1::2", "p1", "fd65::2"), ("out", "198.51.100.7", "p2", "10.65.1.2"),
             ("p1", "fd65::2", "out", "2001:db8::7"), ("h2", "fd00::3", "p1", "fd65::2")]
    flows = [Flow(s, sip, d, dip, proto, port) for s, sip, d, dip in pairs
             for proto, port in (("tcp", 22), ("tcp", 80), ("udp", 53), ("icmp", None))]
    results = lab.probe_many(flows)
    assert all(r.allowed for r in results), [str(r) for r in results if not r.allowed]
    h1 = lab.node("h1")
    assert h1.load_nft(POD_RULES)[0] == 0
    results = lab.probe_many(flows)
    denied = {str(r.flow) for r in results if not r.allowed}
    assert denied == {"p1[10.65.0.2] -> h1[172.18.0.2] tcp/22", "p1[fd65::2] -> h1[fd00::2] tcp/22",
                      "p1[10.65.0.2] -> p2[10.65.1.2] tcp/80", "p1[fd65::2] -> out[2001:db8::7] tcp/80"}, denied
    assert h1.counters() == {"pod to host ssh": 2, "pod out http": 2}
    with pytest.raises(LabError, match="exactly one interface"):
        p1.add_interface("eth1")
    with pytest.raises(LabError, match="cannot run inside workload p1"):
        lab.add_workload("p3", "p1", ["10.65.0.3"])
    with pytest.raises(LabError, match="node h1 already has interface %s" % p1.host_ifname):
        lab.add_workload("p4", "h1", ["10.65.0.4"], host_ifname=p1.host_ifname)
    with pytest.raises(LabError, match="needs at least one address"):
        lab.add_workload("p5", "h1", [])


def test_forwarding_off_keeps_pods_reachable_from_their_host(lab):
    h1 = lab.add_node("h1", ["172.18.0.2"])
    lab.add_node("h2", ["172.18.0.3"])
    lab.add_workload("p1", "h1", ["10.65.0.2"])
    lab.add_workload("p2", "h2", ["10.65.1.2"])
    flows = [Flow("h1", "172.18.0.2", "p1", "10.65.0.2", "tcp", 80), Flow("p1", "10.65.0.2", "h1", "172.18.0.2", "tcp", 80),
             Flow("p1", "10.65.0.2", "p2", "10.65.1.2", "tcp", 80), Flow("h2", "172.18.0.3", "p1", "10.65.0.2", "tcp", 80)]
    assert h1.forwarding()
    assert [r.allowed for r in lab.probe_many(flows)] == [True, True, True, True]
    h1.set_forwarding(False)
    assert not h1.forwarding()
    assert [r.allowed for r in lab.probe_many(flows)] == [True, True, False, False]
    h1.set_forwarding(True)
    assert [r.allowed for r in lab.probe_many(flows)] == [True, True, True, True]


def test_dnat_rewrites_and_a_missed_dnat_does_not_connect(lab):
    h1 = lab.add_node("h1", ["172.18.0.2", "fd00::2"])
    lab.add_workload("p1", "h1", ["10.65.0.2", "fd65::2"])
    lab.add_workload("p2", "h1", ["10.65.0.3"])
    h1.add_dnat("10.96.0.10", 80, "10.65.0.2", 8080, hooks=["output"])
    h1.add_dnat("fd96::10", 80, "fd65::2", 8080, hooks=["output", "prerouting"])
    h1.add_dnat("10.96.0.11", 53, "10.65.0.2", protocol="udp", hooks=["prerouting"])
    assert "ip daddr 10.96.0.10 tcp dport 80 dnat to 10.65.0.2:8080" in h1.nft("list table ip svc").stdout
    flows = [Flow("h1", "172.18.0.2", "p1", "10.96.0.10", "tcp", 80),   # output DNAT
             Flow("h1", "fd00::2", "p1", "fd96::10", "tcp", 80),
             Flow("p2", "10.65.0.3", "p1", "10.96.0.11", "udp", 53),    # prerouting DNAT
             Flow("p2", "10.65.0.3", "p1", "10.96.0.10", "tcp", 80)]    # no prerouting DNAT for this one
    assert [r.allowed for r in lab.probe_many(flows)] == [True, True, True, False]
    h1.clear_dnats()
    assert h1.nft("list table ip svc").rc != 0
    assert [r.allowed for r in lab.probe_many(flows)] == [False, False, False, False]
    with pytest.raises(LabError, match="hooks must be output and/or prerouting, not input"):
        h1.add_dnat("10.96.0.12", 80, "10.65.0.2", hooks=["input"])
    with pytest.raises(LabError, match="mixes address families"):
        h1.add_dnat("10.96.0.12", 80, "fd65::2")
    with pytest.raises(LabError, match="must be tcp or udp"):
        h1.add_dnat("10.96.0.12", 80, "10.65.0.2", protocol="sctp")


def test_raw_ip_probes_are_judged_at_the_receiver(topo):
    b = topo.nodes["b"]
    rc, err = b.load_nft("table inet hostfw {\n chain input {\n type filter hook input priority 0; policy accept;\n"
                         " meta l4proto 253 counter drop comment \"253\"\n }\n}\n")
    assert rc == 0, err
    flows = [Flow("a", A4, "b", B4, "raw", ip_proto=253), Flow("a", A6, "b", B6, "raw", ip_proto=253),
             Flow("a", A4, "b", B4, "raw", ip_proto=254), Flow("c", C6, "b", B6, "raw", ip_proto=254)]
    results = topo.probe_many(flows)
    want = [("denied", "timeout"), ("denied", "timeout"), ("allowed", "seen"), ("allowed", "seen")]
    assert [(r.verdict, r.detail) for r in results] == want
    assert b.counters() == {"253": 2}
    assert str(flows[0]) == "a[172.18.0.2] -> b[172.18.0.3] ip proto 253"
    with pytest.raises(LabError, match="ip_proto goes with protocol raw"):
        topo.probe(Flow("a", A4, "b", B4, "raw"))


# ---------------------------------------------------------------------------------- lab hygiene


def test_lab_leaves_nothing_behind(netlab_available):  # pylint: disable=unused-argument
    with Lab() as lab:
        lab.add_node("n1", ["192.0.2.1"])
        lab.add_node("n2", ["192.0.2.2"])
        prefix = lab.prefix
        agents = [n.agent.proc for n in lab.nodes.values()]
        assert len(Lab.list_namespaces(prefix)) == 3
        assert lab.probe(Flow("n1", "192.0.2.1", "n2", "192.0.2.2", "tcp", 5)).allowed
    assert Lab.list_namespaces(prefix) == []
    assert all(p.poll() is not None for p in agents)
    assert not os.path.exists(lab.tmpdir)
    lab.close()  # idempotent


def test_cleanup_after_an_exception(netlab_available):  # pylint: disable=unused-argument
    with pytest.raises(ZeroDivisionError):
        with Lab() as lab:
            lab.add_node("n1", ["192.0.2.1"])
            prefix = lab.prefix
            _unused = 1 / 0
    assert Lab.list_namespaces(prefix) == []


def test_failed_setup_step_names_command_and_stderr(lab):
    node = lab.add_node("n1", ["192.0.2.1"])
    with pytest.raises(LabError) as info:
        node.add_addresses(["192.0.2.1"])
    assert "addr add 192.0.2.1/32 dev eth0" in str(info.value)
    assert "already assigned" in str(info.value)  # ip's stderr
    with pytest.raises(LabError, match="longer than 15"):
        node.add_interface("averyveryverylongname")
    with pytest.raises(LabError, match="node n1 exists"):
        lab.add_node("n1")


def test_a_dead_agent_is_an_error_not_a_verdict(lab):
    lab.add_node("n1", ["192.0.2.1"])
    n2 = lab.add_node("n2", ["192.0.2.2"])
    n2.agent.proc.kill()
    n2.agent.proc.wait()
    with pytest.raises(LabError, match="agent in %s" % n2.netns):
        lab.probe(Flow("n2", "192.0.2.2", "n1", "192.0.2.1", "tcp", 22))
    assert lab.probe(Flow("n1", "192.0.2.1", "n2", "192.0.2.2", "icmp")).allowed  # the kernel still answers


def test_stale_namespaces_of_dead_processes_are_removed(netlab_available):  # pylint: disable=unused-argument
    dead = subprocess.Popen(["true"])  # pylint: disable=consider-using-with
    dead.wait()
    name = "hfwlab-%d-dead00-hub" % dead.pid
    assert not os.path.exists("/proc/%d" % dead.pid)
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        assert name in Lab.cleanup_stale()
        assert name not in Lab.list_namespaces()
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


def test_missing_requirements_skip_locally_but_fail_under_ci(tmp_path):
    """Run this directory's conftest in a child pytest where the lab is reported unavailable."""
    here = os.path.dirname(os.path.abspath(__file__))
    lab_dir = os.path.dirname(os.path.abspath(netlab.__file__))
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "conftest.py").write_text(
        "import sys\nsys.path.insert(0, %r)\nimport netlab\n"
        "netlab.missing_requirements = lambda: ['not running as root (simulated)']\n" % lab_dir)
    sub = tmp_path / "dataplane"
    sub.mkdir()
    with open(os.path.join(here, "conftest.py"), encoding="utf-8") as fh:
        (sub / "conftest.py").write_text(fh.read())
    (sub / "test_child.py").write_text("def test_uses_lab(lab):\n    pass\n\ndef test_plain():\n    pass\n")
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # the child needs no testinfra/ansible plugins: faster
    cmd = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(tmp_path)]
    local = subprocess.run(cmd, cwd=str(tmp_path), env=env, capture_output=True, text=True, check=False)
    assert local.returncode == 0, local.stdout + local.stderr
    assert "2 skipped" in local.stdout
    assert "dataplane lab unavailable: not running as root (simulated)" in local.stdout
    env["CI"] = "true"
    ci = subprocess.run(cmd, cwd=str(tmp_path), env=env, capture_output=True, text=True, check=False)
    assert ci.returncode != 0, ci.stdout
    assert "2 error" in ci.stdout and "skipped" not in ci.stdout
    assert "CI=true: the dataplane tests must run, not skip" in ci.stdout
