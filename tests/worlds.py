# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test worlds shared by the unit, golden and dataplane tests."""

from __future__ import annotations

from hypothesis import strategies as st


def doc(kind, name, spec, labels=None, namespace=None):
    meta = {"name": name}
    if labels:
        meta["labels"] = labels
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": "projectcalico.org/v3", "kind": kind, "metadata": meta, "spec": spec}


def rich_world():
    """Every rendering feature at once: named and "*" endpoints, tiers with Pass and both default
    actions, all four classes, profiles, named ports, nets, selectors, ICMP and negations, Log."""
    return [
        doc("Tier", "platform", {"order": 100, "defaultAction": "Pass"}),
        doc("Tier", "security", {"order": 10}),
        doc("HostEndpoint", "n1-eth0", {"node": "n1", "interfaceName": "eth0", "expectedIPs": ["10.0.0.1", "fd00::1"],
                                        "profiles": ["projectcalico-default-allow"],
                                        "ports": [{"name": "metrics", "protocol": "TCP", "port": 9100}]},
            {"role": "node", "zone": "a"}),
        doc("HostEndpoint", "n1-all", {"node": "n1", "interfaceName": "*", "expectedIPs": ["10.0.0.1"]},
            {"role": "node", "zone": "a", "scope": "all"}),
        doc("HostEndpoint", "n2-eth0", {"node": "n2", "interfaceName": "eth0", "expectedIPs": ["10.0.0.2"],
                                        "ports": [{"name": "metrics", "protocol": "TCP", "port": 9100}]},
            {"role": "node", "zone": "b"}),
        doc("GlobalNetworkSet", "admins", {"nets": ["192.0.2.0/24", "198.51.100.10", "2001:db8::/48"]},
            {"kind": "admins"}),
        doc("WorkloadEndpoint", "prom", {"interfaceName": "cali0000000001", "ipNetworks": ["10.244.0.9/32"]},
            {"app": "prometheus"}, "monitoring"),
        doc("GlobalNetworkPolicy", "block-bad", {"tier": "security", "order": 1, "selector": "role == 'node'",
                                                 "ingress": [{"action": "Log", "source": {"nets": ["203.0.113.0/24"]}},
                                                             {"action": "Deny", "source": {"nets": ["203.0.113.0/24"]}},
                                                             {"action": "Pass"}]}),
        doc("GlobalNetworkPolicy", "admin-ssh", {"tier": "platform", "order": 10, "selector": "has(role)",
                                                 "ingress": [{"action": "Allow", "protocol": "TCP",
                                                              "source": {"selector": "kind == 'admins'"},
                                                              "destination": {"ports": [22, "8000:8100"]}},
                                                             {"action": "Allow", "protocol": "TCP",
                                                              "source": {"namespaceSelector": "projectcalico.org/name == 'monitoring'"},
                                                              "destination": {"ports": ["metrics"]}}],
                                                 "egress": [{"action": "Allow", "protocol": "UDP",
                                                             "destination": {"ports": [53, 123]}},
                                                            {"action": "Allow", "protocol": "ICMP",
                                                             "notICMP": {"type": 5, "code": 1}}]}),
        doc("GlobalNetworkPolicy", "node-mesh", {"selector": "role == 'node'", "types": ["Ingress", "Egress"],
                                                 "ingress": [{"action": "Allow", "source": {"selector": "role == 'node'",
                                                                                            "notSelector": "zone == 'b'"}},
                                                             {"action": "Allow", "protocol": "ICMPv6",
                                                              "icmp": {"type": 128}},
                                                             {"action": "Deny", "notProtocol": "UDP",
                                                              "source": {"notNets": ["10.0.0.0/8"]}}],
                                                 "egress": [{"action": "Allow", "ipVersion": 6},
                                                            {"action": "Allow", "protocol": "TCP",
                                                             "destination": {"ports": [443, "metrics"],
                                                                             "notPorts": [444]}}]}),
        doc("GlobalNetworkPolicy", "memcache-raw", {"selector": "zone == 'a'", "doNotTrack": True, "applyOnForward": True,
                                                    "order": 5,
                                                    "ingress": [{"action": "Allow", "protocol": "UDP",
                                                                 "destination": {"ports": [11211]}}],
                                                    "egress": [{"action": "Allow", "protocol": "UDP",
                                                                "source": {"ports": [11211]}}]}),
        doc("GlobalNetworkPolicy", "nodeport-pre", {"selector": "has(role)", "preDNAT": True, "applyOnForward": True,
                                                    "ingress": [{"action": "Deny", "protocol": "TCP",
                                                                 "destination": {"ports": ["30000:32767"]},
                                                                 "source": {"notSelector": "kind == 'admins'"}}]}),
        doc("GlobalNetworkPolicy", "forward-out", {"selector": "scope == 'all'", "applyOnForward": True,
                                                   "types": ["Egress"],
                                                   "egress": [{"action": "Allow", "protocol": "TCP",
                                                               "destination": {"ports": [443]}}]}),
        doc("StagedGlobalNetworkPolicy", "deny-everything", {"selector": "all()", "ingress": [{"action": "Deny"}]}),
        doc("FelixConfiguration", "default", {"failsafeInboundHostPorts": [{"protocol": "TCP", "port": 22},
                                                                           {"protocol": "TCP", "port": 179,
                                                                            "net": "10.0.0.0/8"}],
                                              "failsafeOutboundHostPorts": [{"protocol": "UDP", "port": 53}],
                                              "defaultEndpointToHostAction": "Accept",
                                              "logActionRateLimit": "5/second"}),
    ]


def rich_world_rejecting():
    """rich_world with ``nftablesFilterDenyAction: Reject``: every Deny, end-of-tier drop, final
    drop and conntrack-invalid drop rejects, except in the copies of the egress chains that
    postrouting uses."""
    docs = rich_world()
    for d in docs:
        if d["kind"] == "FelixConfiguration":
            d["spec"]["nftablesFilterDenyAction"] = "Reject"
    return docs


# -- small document helpers and random worlds (the differential and compatibility tests) ----------

def hep(name, node, ips, iface="*", labels=None, profiles=()):
    spec = {"node": node, "interfaceName": iface, "expectedIPs": list(ips)}
    if profiles:
        spec["profiles"] = list(profiles)
    return doc("HostEndpoint", name, spec, labels or {"role": "node"})


def wep(name, ns, ips, labels):
    return doc("WorkloadEndpoint", name, {"interfaceName": "cali" + name[:11], "ipNetworks": list(ips)}, labels, ns)


def gnp(name, **spec):
    spec.setdefault("selector", "all()")
    return doc("GlobalNetworkPolicy", name, spec)


LABEL_VALUES = {"role": ["web", "db"], "zone": ["a", "b"]}
SELECTORS = ["all()", "role == 'web'", "role == 'db'", "zone == 'a'", "has(zone)", "role != 'web'",
             "role in {'web', 'db'}", "!has(role)", "app == 'web'", "kind == 'ext'"]
labels_st = st.fixed_dictionaries({}, optional={k: st.sampled_from(v) for k, v in LABEL_VALUES.items()})


@st.composite
def rules(draw, direction, can_pass=True):
    out = []
    for _index in range(draw(st.integers(0, 3))):
        actions = ["Allow", "Allow", "Deny", "Log"] + (["Pass"] if can_pass else [])
        rule = {"action": draw(st.sampled_from(actions))}
        proto = draw(st.sampled_from([None, "TCP", "TCP", "UDP", "ICMP"]))
        if proto:
            rule["protocol"] = proto
        if proto in ("TCP", "UDP") and draw(st.booleans()):
            ports = draw(st.lists(st.sampled_from([22, 80, 443, 8080, "8000:8100", "20:25"]), min_size=1, max_size=3,
                                  unique=True))
            key = draw(st.sampled_from(["ports", "ports", "notPorts"]))
            rule.setdefault("destination", {})[key] = ports
        if proto == "ICMP" and draw(st.booleans()):
            rule["icmp"] = {"type": 8}
        peer = "source" if direction == "ingress" else "destination"
        choice = draw(st.sampled_from(["none", "selector", "notSelector", "nets", "notNets"]))
        if choice in ("selector", "notSelector"):
            rule.setdefault(peer, {})[choice] = draw(st.sampled_from(SELECTORS))
        elif choice == "nets":
            pool = draw(st.sampled_from([["10.10.0.0/24", "10.20.0.5/32", "10.30.0.0/24", "198.51.100.0/24"],
                                         ["fd10::/64", "fd20::/64", "2001:db8:99::/64"]]))
            rule.setdefault(peer, {})["nets"] = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=2, unique=True))
        elif choice == "notNets":
            rule.setdefault(peer, {})["notNets"] = [draw(st.sampled_from(["10.20.0.0/16", "fd20::/64", "10.10.0.2/32"]))]
        out.append(rule)
    return out


@st.composite
def worlds(draw):
    docs = []
    n_hosts = draw(st.integers(2, 3))
    for i in range(n_hosts):
        ips = ["10.10.0.%d" % (i + 1)] + (["fd10::%d" % (i + 1)] if draw(st.booleans()) else [])
        profiles = ["projectcalico-default-allow"] if draw(st.integers(0, 3)) == 0 else []
        docs.append(hep("h%d" % i, "n%d" % i, ips, iface=draw(st.sampled_from(["*", "eth0"])),
                        labels=draw(labels_st), profiles=profiles))
    docs.append(wep("web", "prod", ["10.20.0.5/32", "fd20::5/128"], {"app": "web", "role": "web"}))
    docs.append(wep("db", "prod", ["10.20.0.6/32"], {"app": "db", "zone": "a"}))
    docs.append(doc("GlobalNetworkSet", "ext", {"nets": ["10.30.0.0/24", "fd30::/64"]}, {"kind": "ext"}))
    if draw(st.booleans()):
        docs.append(doc("FelixConfiguration", "default", {"nftablesFilterDenyAction": "Reject"}))
    tiers = ["default"]
    for name in draw(st.lists(st.sampled_from(["t1", "t2"]), max_size=2, unique=True)):
        spec = {"defaultAction": draw(st.sampled_from(["Deny", "Pass"]))}
        order = draw(st.sampled_from([None, 10, 2000000]))
        if order is not None:
            spec["order"] = order
        docs.append(doc("Tier", name, spec))
        tiers.append(name)
    n_policies = draw(st.integers(1, 5))
    for j in range(n_policies):
        docs.append(gnp("p%d" % j, **draw(policy_specs(tiers))))
    # Staged policies (docs/semantics.md §3.7): a new policy or a new version of an enforced one
    # (Set), the deletion of an enforced one (Delete), or one that changes nothing (Learn, Ignore).
    for k in range(draw(st.integers(0, 2))):
        action = draw(st.sampled_from(["Set", "Set", "Set", None, "Delete", "Learn"]))
        if action == "Delete":
            name = "p%d" % draw(st.integers(0, n_policies - 1))
            spec = {"stagedAction": "Delete"}
        else:
            name = draw(st.sampled_from(["s%d" % k, "p%d" % draw(st.integers(0, n_policies - 1))]))
            spec = draw(policy_specs(tiers, classes=["normal"] * 5 + ["doNotTrack", "preDNAT"]))
            if action is not None:
                spec["stagedAction"] = action
        if name in [d["metadata"]["name"] for d in docs if d["kind"] == "StagedGlobalNetworkPolicy"]:
            continue
        docs.append(doc("StagedGlobalNetworkPolicy", name, spec))
    return docs


@st.composite
def policy_specs(draw, tiers, classes=None):
    """The spec of a GlobalNetworkPolicy (or of a staged one) of a random world."""
    cls = draw(st.sampled_from(classes or ["normal"] * 6 + ["doNotTrack", "preDNAT"]))
    spec = {"tier": draw(st.sampled_from(tiers)), "selector": draw(st.sampled_from(SELECTORS[:8]))}
    order = draw(st.sampled_from([None, 1, 5, 10]))
    if order is not None:
        spec["order"] = order
    if cls == "preDNAT":
        spec.update(preDNAT=True, applyOnForward=True, ingress=draw(rules("ingress")))
        spec["types"] = ["Ingress"]
    else:
        spec["ingress"] = draw(rules("ingress"))
        spec["egress"] = draw(rules("egress"))
        types = draw(st.sampled_from([None, ["Ingress"], ["Egress"], ["Ingress", "Egress"]]))
        if types:
            spec["types"] = types
        if cls == "doNotTrack":
            spec.update(doNotTrack=True, applyOnForward=True)
    return spec


def long_name_world():
    """A valid profile name of 250 characters and a tiered policy whose chain name passes 255."""
    profile = ".".join(["p" * 62] * 4)[:250].rstrip(".")
    policy = ("q" * 63 + ".") * 2 + "q" * 60
    tier = "t" * 63
    return [doc("HostEndpoint", "h", {"node": "n", "interfaceName": "eth0", "expectedIPs": ["10.0.0.1"],
                                      "profiles": [profile]}),
            doc("Profile", profile, {"ingress": [{"action": "Allow", "protocol": "TCP"}], "egress": [{"action": "Allow"}]}),
            doc("Tier", tier, {"order": 5}),
            doc("GlobalNetworkPolicy", "a", {"tier": tier, "ingress": [{"action": "Pass"}]}),
            doc("GlobalNetworkPolicy", "b", {"tier": tier, "ingress": [{"action": "Pass"}]}),
            doc("HostEndpoint", "h2", {"node": "n", "interfaceName": "eth1", "expectedIPs": ["10.0.0.2"],
                                       "profiles": [profile]}, {"x": "y"})], profile
