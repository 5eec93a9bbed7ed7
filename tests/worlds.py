# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test worlds shared by the unit, golden and dataplane tests."""

from __future__ import annotations


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
