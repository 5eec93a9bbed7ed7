# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""FelixConfiguration: the settings table, Calico's schema for every field, and which
configuration applies to a node."""

from __future__ import annotations

import pickle

import pytest

from ansible_collections.hostfw.nftables.plugins.plugin_utils import api, errors, felix, felix_schema, resources

V3 = "projectcalico.org/v3"


def felix_doc(name, spec, **meta):
    metadata = {"name": name}
    metadata.update(meta)
    return {"apiVersion": V3, "kind": "FelixConfiguration", "metadata": metadata, "spec": spec}


def build(*docs):
    return resources.build_world([(d, "test#%d" % i) for i, d in enumerate(docs, 1)])


def problems(*docs):
    with pytest.raises(errors.HostfwError) as info:
        build(*docs)
    return [str(p) for p in info.value.problems]


def config(world, node="n", labels=None):
    return felix.for_node(world.felix_configurations, node, labels)


# ----------------------------------------------------------------------------------------------
# The settings hostfw uses
# ----------------------------------------------------------------------------------------------

def test_used_settings_are_parsed():
    world = build(felix_doc("default", {
        "failsafeInboundHostPorts": [{"protocol": "TCP", "port": 22},
                                     {"protocol": "UDP", "port": 68, "net": "10.1.2.3/8"},
                                     {"port": 5473}, {"protocol": "TCP", "port": 22, "net": "fd00::/8"}],
        "failsafeOutboundHostPorts": [],
        "defaultEndpointToHostAction": "ACCEPT", "interfacePrefix": "cali, tap",
        "interfaceExclude": "kube-ipvs0,/^veth/",
        "disableConntrackInvalidCheck": True, "logPrefix": "calico-drop %t/%n", "logActionRateLimit": "10/second",
        "logActionRateLimitBurst": 5, "nftablesFilterDenyAction": "reject", "iptablesFilterDenyAction": "Drop",
        "bpfEnabled": False, "nftablesMode": "Enabled", "ipipEnabled": True,
    }))
    got = config(world)
    assert got == felix.FelixConfig(
        failsafe_inbound=(api.FailsafeEntry("tcp", 22), api.FailsafeEntry("udp", 68, "10.0.0.0/8"),
                          api.FailsafeEntry("tcp", 5473), api.FailsafeEntry("tcp", 22, "fd00::/8")),
        failsafe_outbound=(), default_endpoint_to_host_action="Accept", interface_prefixes=("cali", "tap"),
        interface_exclude=("kube-ipvs0", "/^veth/"), disable_conntrack_invalid_check=True,
        log_prefix="calico-drop %t/%n", log_action_rate_limit="10/second", log_action_rate_limit_burst=5,
        deny_action="Reject")
    assert str(got.failsafe_inbound[3]) == "tcp:[fd00::/8]:22"
    fc = world.felix_configurations["default"]
    assert fc.origin == "test#1" and fc.node_selector is None
    assert dict(fc.values)["deny_action"] == "Reject", "nftablesFilterDenyAction comes first in the table"


@pytest.mark.parametrize("value, expected", [
    ("tcp:22,udp:68", (api.FailsafeEntry("tcp", 22), api.FailsafeEntry("udp", 68))),
    (" TCP:22 , ,UDP:53 ", (api.FailsafeEntry("tcp", 22), api.FailsafeEntry("udp", 53))),
    ("22", (api.FailsafeEntry("tcp", 22),)),
    ("tcp:10.0.0.1/8:22", (api.FailsafeEntry("tcp", 22, "10.0.0.0/8"),)),
    ("udp:[fd00::/8]:53", (api.FailsafeEntry("udp", 53, "fd00::/8"),)),
    ("none", ()),
    ("NONE", ()),
    ("", felix.DEFAULT_FAILSAFE_INBOUND),
])
def test_failsafe_string_form(value, expected):
    world = build(felix_doc("default", {"failsafeInboundHostPorts": value}))
    assert config(world).failsafe_inbound == expected


def test_defaults_are_the_protect_hosts_lists_and_felix_lists_add_typha():
    assert felix.FelixConfig().failsafe_inbound == felix.DEFAULT_FAILSAFE_INBOUND
    extra = set(felix.FELIX_FAILSAFE_INBOUND) - set(felix.DEFAULT_FAILSAFE_INBOUND)
    assert extra == {api.FailsafeEntry("tcp", 5473)}
    assert set(felix.FELIX_FAILSAFE_OUTBOUND) - set(felix.DEFAULT_FAILSAFE_OUTBOUND) == extra


def test_iptables_deny_action_is_used_when_nftables_one_is_unset():
    world = build(felix_doc("default", {"iptablesFilterDenyAction": "REJECT"}))
    assert config(world).deny_action == "Reject"


def test_settings_table_derives_the_config_and_the_cache_key():
    attrs = [f.name for f in felix.FelixConfig.__dataclass_fields__.values()]
    assert attrs == list(dict.fromkeys(s.attr for s in felix.SETTINGS))
    for s in felix.SETTINGS:
        assert getattr(felix.FelixConfig(), s.attr) == s.default, s.field
        assert s.field in felix_schema.FIELDS, "%s is not a field of Calico's FelixConfiguration" % s.field
    key = felix.rule_text_key(felix.FelixConfig(log_prefix="x"))
    assert "x" in key and felix.rule_text_key(felix.FelixConfig(disable_conntrack_invalid_check=True)) == \
        felix.rule_text_key(felix.FelixConfig())


def test_config_pickles():
    """The validated world is cached with pickle: the derived class must round-trip."""
    cfg = felix.FelixConfig(log_prefix="p", failsafe_inbound=())
    assert pickle.loads(pickle.dumps(cfg)) == cfg


# ----------------------------------------------------------------------------------------------
# Which configuration applies
# ----------------------------------------------------------------------------------------------

def test_default_then_node():
    world = build(
        felix_doc("default", {"failsafeInboundHostPorts": "tcp:22", "defaultEndpointToHostAction": "Accept",
                              "logPrefix": "dflt"}),
        felix_doc("node.node1", {"failsafeInboundHostPorts": [], "logPrefix": "n1"}),
        felix_doc("other", {"logPrefix": "ignored"}))
    n1 = config(world, "node1")
    assert n1.failsafe_inbound == () and n1.log_prefix == "n1" and n1.default_endpoint_to_host_action == "Accept"
    assert n1.failsafe_outbound == felix.DEFAULT_FAILSAFE_OUTBOUND
    n2 = config(world, "node2")
    assert n2.failsafe_inbound == (api.FailsafeEntry("tcp", 22),) and n2.log_prefix == "dflt"
    assert config(build(), "x") == felix.FelixConfig()
    assert world.warnings == ["FelixConfiguration other: ignored: Felix reads only the 'default' and "
                              "'node.<node name>' configurations and those with a spec.nodeSelector"]


def test_selector_scoped_configuration_sits_between_default_and_node():
    world = build(
        felix_doc("default", {"logPrefix": "dflt", "defaultEndpointToHostAction": "Accept"}),
        felix_doc("workers", {"nodeSelector": "role == 'worker'", "logPrefix": "workers",
                              "failsafeInboundHostPorts": []}, creationTimestamp="2025-01-02T00:00:00Z"),
        felix_doc("older-workers", {"nodeSelector": "has(role)", "logPrefix": "older"},
                  creationTimestamp="2024-06-01T00:00:00Z"),
        felix_doc("node.w2", {"logPrefix": "w2"}))
    assert config(world, "w1", {"role": "worker"}).log_prefix == "older", "the oldest match wins"
    w1 = config(world, "w1", {"role": "worker"})
    assert w1.failsafe_inbound == felix.DEFAULT_FAILSAFE_INBOUND and w1.default_endpoint_to_host_action == "Accept"
    assert config(world, "w2", {"role": "worker"}).log_prefix == "w2", "node.<name> beats the selector"
    assert config(world, "db1", {"tier": "db"}).log_prefix == "dflt"
    assert config(world, "w1").log_prefix == "dflt", "a node without labels matches no selector"


def test_selector_scoped_tie_is_broken_by_name():
    world = build(felix_doc("b", {"nodeSelector": "all()", "logPrefix": "b"}),
                  felix_doc("a", {"nodeSelector": "all()", "logPrefix": "a"}))
    assert config(world, "n", {}).log_prefix == "a"


def test_node_selector_is_refused_on_default_and_node_configurations():
    assert problems(felix_doc("default", {"nodeSelector": "all()"}),
                    felix_doc("node.n1", {"nodeSelector": "all()"})) == [
        "FelixConfiguration default: spec.nodeSelector: nodeSelector must not be set on the 'default' or per-node "
        "('node.*') FelixConfiguration (remove it, or give the configuration another name)",
        "FelixConfiguration node.n1: spec.nodeSelector: nodeSelector must not be set on the 'default' or per-node "
        "('node.*') FelixConfiguration (remove it, or give the configuration another name)"]


# ----------------------------------------------------------------------------------------------
# Every other field: validated as Calico validates it, then ignored
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec, message", [
    ({"iptablesBackend": "Fast"}, "spec.iptablesBackend: 'Fast' is not one of Calico's values for this field "
                                  "(use Legacy, NFT or Auto)"),
    ({"iptablesBackend": "nft"}, "spec.iptablesBackend: 'nft' is not one of Calico's values for this field (use NFT)"),
    ({"natOutgoingAddress": "10.0.0.300"}, "spec.natOutgoingAddress: '10.0.0.300' is not an IPv4 address "
                                           "(write an IPv4 address)"),
    ({"natOutgoingAddress": "fd00::1"}, "spec.natOutgoingAddress: 'fd00::1' is not an IPv4 address "
                                        "(write an IPv4 address)"),
    ({"deviceRouteSourceAddressIPv6": "10.0.0.1"}, "spec.deviceRouteSourceAddressIPv6: '10.0.0.1' is not an IPv6 "
                                                   "address (write an IPv6 address)"),
    ({"ipipEnabled": "yes"}, "spec.ipipEnabled: expected true or false, got 'yes' (write true or false without "
                             "quotes)"),
    ({"vxlanPort": "4789"}, "spec.vxlanPort: expected an integer, got '4789' (write value as a number "
                            "-9223372036854775808-9223372036854775807 without quotes)"),
    ({"wireguardListeningPort": 0}, "spec.wireguardListeningPort: 0 is out of range (use 1-65535)"),
    ({"logActionRateLimitBurst": 10000}, "spec.logActionRateLimitBurst: 10000 is not a valid burst (use 0-9999)"),
    ({"logActionRateLimit": "0/second"}, "spec.logActionRateLimit: '0/second' is not a rate (write N/unit with N "
                                         "1-9999 and unit second, minute, hour or day, e.g. 10/second)"),
    ({"reportingInterval": "soon"}, "spec.reportingInterval: 'soon' is not a valid value (write a duration such as "
                                    "90s, 500ms, 10m or 1h)"),
    ({"routeTableRange": {"min": 0, "max": 10}}, "spec.routeTableRange: must be a range of route table indices "
                                                 "within 1..250 (set 1 <= min <= max <= 250)"),
    ({"routeTableRange": {"min": 1, "max": 2}, "routeTableRanges": [{"min": 3, "max": 4}]},
     "spec.routeTableRanges: routeTableRange and routeTableRanges cannot both be set (remove one of them)"),
    ({"routeTableRange": {"min": 1}}, "spec.routeTableRange.max: missing (set spec.routeTableRange.max)"),
    ({"featureGates": "=x"}, "spec.featureGates: '=x' is not a valid value (write a value matching Calico's "
                             "pattern ^([a-zA-Z0-9-_]+=([^=]+),)*([a-zA-Z0-9-_]+=([^=]+))?$)"),
    ({"featureGates": "a=b,c"}, "spec.featureGates: 'a=b,c' is not a list of key=value pairs (write "
                                "comma-separated key=value pairs, e.g. a=b,c=d)"),
    ({"logDebugFilenameRegex": "(?=x)"}, "spec.logDebugFilenameRegex: '(?=x)' is not a valid regular expression: "
                                         "lookarounds and back-references are not supported (fix the regular "
                                         "expression)"),
    ({"kubeNodePortRanges": ["http"]}, "spec.kubeNodePortRanges[0]: 'http' is not a port or a 'min:max' range "
                                       "(node port ranges cannot be named ports: write e.g. '30000:32767')"),
    ({"externalNodesList": ["fd00::/8"]}, "spec.externalNodesList[0]: 'fd00::/8' is an IPv6 CIDR (external nodes "
                                          "are IPv4 CIDRs)"),
    ({"bpfConntrackTimeouts": {"tcpSynSent": "fast"}}, "spec.bpfConntrackTimeouts.tcpSynSent: 'fast' is not a "
                                                       "valid value (write a duration such as 90s, 500ms, 10m or "
                                                       "1h, or Auto)"),
    ({"bpfConntrackTimeouts": {"tcpSynSnt": "1s"}}, "spec.bpfConntrackTimeouts.tcpSynSnt: unknown field "
                                                    "(did you mean tcpSynSent?)"),
    ({"failsafeInboundPorts": []}, "spec.failsafeInboundPorts: unknown field (did you mean failsafeInboundHostPorts?)"),
    ({"flowLogsPolicyScope": "AllPolicies"}, "spec.flowLogsPolicyScope: flowLogsPolicyScope is a Calico Enterprise "
                                             "setting, not part of open-source Calico's FelixConfiguration (remove "
                                             "it: hostfw implements open-source Calico)"),
])
def test_unused_fields_are_validated_as_calico_does(spec, message):
    assert problems(felix_doc("default", spec)) == ["FelixConfiguration default: " + message]


@pytest.mark.parametrize("spec", [
    {"iptablesBackend": "NFT", "natOutgoingAddress": "10.0.0.1", "ipipEnabled": True, "vxlanPort": 4789,
     "reportingInterval": "90s", "routeTableRange": {"min": 1, "max": 250}, "featureGates": "a=b,c=d",
     "kubeNodePortRanges": [30000, "30000:32767"], "bpfLogFilters": {"eth0": "tcp"},
     "healthTimeoutOverrides": [{"name": "InternalDataplaneMainLoop", "timeout": "60s"}],
     "bpfConntrackTimeouts": {"tcpSynSent": "Auto", "udpTimeout": "60s"}, "natPortRange": "32768:65535",
     "nftablesMode": "Enabled", "logSeverityScreen": "Info", "defaultEndpointToHostAction": ""},
    {"natOutgoingAddress": ""},
])
def test_valid_unused_fields_pass(spec):
    assert config(build(felix_doc("default", spec))) == felix.FelixConfig()


@pytest.mark.parametrize("spec, message", [
    # LogActionRateLimit is a *string: "" is a value and the CRD pattern refuses it
    ({"logActionRateLimit": ""}, "spec.logActionRateLimit: '' is not a rate (write N/unit with N 1-9999 and unit "
                                 "second, minute, hour or day, e.g. 10/second)"),
    ({"logActionRateLimit": "10000/second"}, "spec.logActionRateLimit: '10000/second' is not a rate (write N/unit "
                                             "with N 1-9999 and unit second, minute, hour or day, e.g. 10/second)"),
    ({"logActionRateLimit": "10/seconds"}, "spec.logActionRateLimit: '10/seconds' is not a rate (write N/unit with N "
                                           "1-9999 and unit second, minute, hour or day, e.g. 10/second)"),
    ({"logActionRateLimitBurst": -1}, "spec.logActionRateLimitBurst: -1 is not a valid burst (use 0-9999)"),
    # pointer fields: "" is a value
    ({"iptablesBackend": ""}, "spec.iptablesBackend: '' is not one of Calico's values for this field (use Legacy, NFT "
                              "or Auto)"),
    ({"reportingInterval": ""}, "spec.reportingInterval: '' is not a duration (write a duration such as 90s, 500ms, "
                                "10m or 1h)"),
    # metav1.Duration fields without a CRD pattern: Go's time.ParseDuration decides
    ({"nftablesRefreshInterval": "soon"}, "spec.nftablesRefreshInterval: 'soon' is not a duration (write a duration "
                                          "such as 90s, 500ms, 10m or 1h)"),
    ({"dataplaneWatchdogTimeout": "90"}, "spec.dataplaneWatchdogTimeout: '90' is not a duration (write a duration "
                                         "such as 90s, 500ms, 10m or 1h)"),
    ({"healthTimeoutOverrides": [{"name": "Valid", "timeout": "-1s"}]},
     "spec.healthTimeoutOverrides[0].timeout: '-1s' is negative (use a duration of 0 or more)"),
    ({"healthTimeoutOverrides": [{"name": "Valid", "timeout": "a while"}]},
     "spec.healthTimeoutOverrides[0].timeout: 'a while' is not a duration (write a duration such as 90s, 500ms, "
     "10m or 1h)"),
    # Go's $ is the end of the text: a trailing newline (a YAML '|' block) does not match
    ({"chainInsertMode": "Insert\n"}, "spec.chainInsertMode: 'Insert\\n' is not a valid value (write a value "
                                      "matching Calico's pattern ^(?i)(Insert|Append)?$)"),
    # validator_test.go "should reject single route table ranges targeting too many tables" and
    # "should reject route table ranges max too large"
    ({"routeTableRanges": [{"min": 1, "max": 65536}]}, "spec.routeTableRanges: targets 65536 route tables (use at "
                                                       "most 65535 tables in all)"),
    ({"routeTableRanges": [{"min": 4294967295, "max": 4294967296}]},
     "spec.routeTableRanges[0].max: 4294967296 is above the highest Linux route table (use at most 4294967295)"),
    ({"tproxyMode": "Enabled"}, "spec.tproxyMode: tproxyMode is a Calico Enterprise setting, not part of open-source "
                                "Calico's FelixConfiguration (remove it: hostfw implements open-source Calico)"),
    ({"windowsDnsCacheFile": "c:\\dns"}, "spec.windowsDnsCacheFile: windowsDnsCacheFile is a Calico Enterprise "
                                         "setting, not part of open-source Calico's FelixConfiguration (remove it: "
                                         "hostfw implements open-source Calico)"),
    ({"iptablesLockTimeout": "10s"}, "spec.iptablesLockTimeout: iptablesLockTimeout is no longer a "
                                     "FelixConfiguration field: open-source Calico removed it in v3.32 (remove it)"),
])
def test_felix_values_refused_as_calico_refuses_them(spec, message):
    assert problems(felix_doc("default", spec)) == ["FelixConfiguration default: " + message]


def test_plain_string_fields_treat_empty_as_unset():
    """felixconfig.go: these fields are plain strings with omitempty, so "" never reaches Calico's
    checks (validator_test.go "should accept aan empty OpenStackRegion")."""
    spec = {name: "" for name in felix.GO_PLAIN_STRING_FIELDS}
    assert config(build(felix_doc("default", spec))) == felix.FelixConfig()
    for name in felix.GO_PLAIN_STRING_FIELDS | felix.GO_DURATION_FIELDS:
        assert felix_schema.FIELDS[name]["type"] == "string", name
    assert not felix.GO_PLAIN_STRING_FIELDS & felix.GO_DURATION_FIELDS


def test_go_durations():
    assert [felix.go_duration(t) for t in ("0", "1s", "1.5s", ".5ms", "1h30m", "2us", "-1ns")] == [
        0, 10 ** 9, 15 * 10 ** 8, 500000, 5400 * 10 ** 9, 2000, -1]
    assert [felix.go_duration(t) for t in ("", "10", "s", ".s", "1 s", "3000000h", "1d")] == [None] * 7


def test_enterprise_and_removed_fields_are_not_calico_fields():
    assert not (felix.ENTERPRISE_FIELDS | felix.REMOVED_FIELDS) & set(felix_schema.FIELDS)
    assert {"flowLogsPolicyScope", "flowLogsFileEnabled", "dnsTrustedServers", "egressIPSupport",
            "tproxyMode"} <= felix.ENTERPRISE_FIELDS


def test_every_cel_rule_of_the_crd_is_implemented():
    messages = list(felix_schema.SPEC_CEL) + list(felix_schema.DOCUMENT_CEL)

    def walk(schema):
        messages.extend(schema.get("cel", ()))
        for inner in list(schema.get("properties", {}).values()) + ([schema["items"]] if "items" in schema else []):
            walk(inner)

    for schema in felix_schema.FIELDS.values():
        walk(schema)
    assert sorted(set(messages)) == sorted(felix.CEL_IMPLEMENTED)


def test_every_schema_pattern_compiles():
    def walk(schema):
        if "pattern" in schema:
            felix._go_pattern(schema["pattern"])  # noqa: SLF001 - the translation itself is tested
        for inner in list(schema.get("properties", {}).values()) + ([schema["items"]] if "items" in schema else []):
            walk(inner)

    for schema in felix_schema.FIELDS.values():
        walk(schema)


def test_inventory_node_labels_select_the_scoped_configuration(tmp_path):
    """hostfw_node_labels (default hostfw_labels) are the node's labels a nodeSelector matches;
    the failsafe proof and the table see the scoped configuration."""
    from ansible_collections.hostfw.nftables.plugins.plugin_utils.compiler import compile_inventory
    docs = [felix_doc("ssh-from-mgmt", {"nodeSelector": "role == 'worker'",
                                        "failsafeInboundHostPorts": [{"protocol": "TCP", "port": 22,
                                                                      "net": "10.1.0.0/16"}]})]
    shared = {"hostfw_resources": docs, "hostfw_auto_host_endpoint": True}
    hosts = {"w1": dict(shared, ansible_host="10.0.0.1", hostfw_labels={"role": "worker"}),
             "w2": dict(shared, ansible_host="10.0.0.2", hostfw_labels={"role": "worker"},
                        hostfw_node_labels={"role": "db"}),
             "c1": dict(shared, ansible_host="10.0.0.3")}
    comp = compile_inventory(hosts, str(tmp_path))
    assert comp.plan("w1").felix.failsafe_inbound == (api.FailsafeEntry("tcp", 22, "10.1.0.0/16"),)
    assert comp.plan("w2").felix.failsafe_inbound == felix.DEFAULT_FAILSAFE_INBOUND
    assert comp.plan("c1").felix.failsafe_inbound == felix.DEFAULT_FAILSAFE_INBOUND
    assert "ip saddr 10.1.0.0/16 tcp dport 22 accept" in comp.ruleset("w1")
    bad = dict(hosts, c1=dict(hosts["c1"], hostfw_node_labels={"role": "a b"}))
    with pytest.raises(errors.HostfwError) as info:
        compile_inventory(bad, str(tmp_path))
    assert [str(p) for p in info.value.problems] == [
        "Host c1: hostfw_node_labels['role']: 'a b' is not a valid label value (use at most 63 letters, digits, "
        "'-', '_' or '.', starting and ending with a letter or digit, or an empty string)"]


def test_one_line_switch_to_felixs_failsafe_lists(tmp_path):
    """hostfw_failsafe_defaults: felix starts every node from Felix's compiled-in lists (with
    Typha's tcp:5473); the protected ports follow."""
    from ansible_collections.hostfw.nftables.plugins.plugin_utils.compiler import compile_inventory, run
    hosts = {"n1": {"ansible_host": "10.0.0.1", "hostfw_auto_host_endpoint": True, "hostfw_failsafe_defaults": "felix"},
             "n2": {"ansible_host": "10.0.0.2", "hostfw_auto_host_endpoint": True}}
    comp = compile_inventory(hosts, str(tmp_path))
    assert comp.plan("n1").felix.failsafe_inbound == felix.FELIX_FAILSAFE_INBOUND
    assert comp.plan("n2").felix.failsafe_inbound == felix.DEFAULT_FAILSAFE_INBOUND
    assert "tcp . 5473" in comp.ruleset("n1") and "tcp . 5473" not in comp.ruleset("n2")
    result = run(comp, hosts, {})
    assert result["hosts"]["n1"]["failsafe_proof"]["ok"] and result["hosts"]["n2"]["failsafe_proof"]["ok"]
    with pytest.raises(errors.HostfwError) as info:
        compile_inventory({"n1": dict(hosts["n1"], hostfw_failsafe_defaults="typha")}, str(tmp_path))
    assert [str(p) for p in info.value.problems] == [
        "Host n1: hostfw_failsafe_defaults: 'typha' is not a failsafe default (use protect-hosts, the 'Protect hosts' "
        "page's lists, or felix, Felix's compiled-in lists with tcp:5473)"]
