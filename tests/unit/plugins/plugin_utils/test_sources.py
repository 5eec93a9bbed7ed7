# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for plugins/plugin_utils/sources.py: manifests and inventory variables."""

from __future__ import annotations

import copy
import json
import os

import pytest
import yaml

from ansible_collections.hostfw.nftables.plugins.plugin_utils import api, errors, sources

V3 = "projectcalico.org/v3"


def gns(name, nets=("192.0.2.0/24",), **meta):
    return {"apiVersion": V3, "kind": "GlobalNetworkSet", "metadata": dict(name=name, **meta),
            "spec": {"nets": list(nets)}}


def gnp(name, **spec):
    return {"apiVersion": V3, "kind": "GlobalNetworkPolicy", "metadata": {"name": name}, "spec": spec}


def messages(problems):
    return [str(p) for p in problems]


# ----------------------------------------------------------------------------------------------
# load_manifest_text
# ----------------------------------------------------------------------------------------------

def test_multi_document_yaml_with_empty_documents():
    text = "---\n# only a comment\n---\n" + yaml.safe_dump(gns("a")) + "---\n---\n" + yaml.safe_dump(gns("b"))
    docs = sources.load_manifest_text(text, "m.yaml")
    assert [(d["metadata"]["name"], o) for d, o in docs] == [("a", "m.yaml#2"), ("b", "m.yaml#4")]


def test_list_kinds_are_flattened_with_item_origins():
    text = yaml.safe_dump({"apiVersion": V3, "kind": "GlobalNetworkSetList", "metadata": {"resourceVersion": "9"},
                           "items": [gns("a"), gns("b")]})
    text += "---\n" + yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": [gnp("p")]})
    docs = sources.load_manifest_text(text, "export.yaml")
    assert [o for _unused, o in docs] == ["export.yaml#1 items[0]", "export.yaml#1 items[1]", "export.yaml#2 items[0]"]
    assert docs[2][0]["kind"] == "GlobalNetworkPolicy"


def test_json_is_accepted():
    docs = sources.load_manifest_text(json.dumps(gns("a"), indent="\t"), "a.json")
    assert docs == [(gns("a"), "a.json#1")]
    docs = sources.load_manifest_text(json.dumps([gns("a"), gns("b")]), "b.json")
    assert [o for _unused, o in docs] == ["b.json#1[0]", "b.json#1[1]"]


def test_top_level_yaml_list_of_documents():
    docs = sources.load_manifest_text(yaml.safe_dump([gns("a"), gns("b")]), "l.yaml")
    assert [o for _unused, o in docs] == ["l.yaml#1[0]", "l.yaml#1[1]"]


def test_yaml_syntax_error_has_line_and_column():
    text = "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\nmetadata:\n  name: a\n   bad: indent\n"
    with pytest.raises(errors.HostfwError) as info:
        sources.load_manifest_text(text, "bad.yaml")
    (problem,) = info.value.problems
    # libyaml says "... in this context", the pure-Python parser "... here".
    assert (problem.kind, problem.name, problem.path) == ("Manifest", "bad.yaml", "line 5, column 7")
    assert problem.message.startswith("mapping values are not allowed ")
    assert problem.message.endswith(" (fix the YAML syntax there)")
    assert problem.origin == "bad.yaml"


def test_documents_before_a_syntax_error_are_kept():
    first = yaml.safe_dump(gns("a"))
    text = first + "---\nkey: [unclosed\n"
    collector = errors.Collector()
    docs = sources.load_manifest_text(text, "m.yaml", collector)
    assert [o for _unused, o in docs] == ["m.yaml#1"]
    (problem,) = collector.problems
    assert problem.path == "line %d, column 1" % (first.count("\n") + 3)


def test_duplicate_keys_are_problems():
    collector = errors.Collector()
    sources.load_manifest_text("a: 1\nb:\n  c: 1\n  c: 2\n", "d.yaml", collector)
    sources.load_manifest_text('{"a": 1, "a": 2}', "d.json", collector)
    assert messages(collector.problems) == [
        "Manifest d.yaml: line 4, column 3: duplicate key 'c' (merge the two entries: YAML keeps only the last one)",
        "Manifest d.json: duplicate key 'a' (keep one: only the last one would count)"]


def test_yaml_merge_keys_are_not_duplicates():
    text = "base: &b {x: 1}\nd:\n  <<: *b\n  y: 2\n"
    assert sources.load_manifest_text(text, "m.yaml") == [({"base": {"x": 1}, "d": {"x": 1, "y": 2}}, "m.yaml#1")]


def test_the_libyaml_loader_is_used_when_available():
    if hasattr(yaml, "CSafeLoader"):
        assert issubclass(sources._Loader, yaml.CSafeLoader)
    else:  # pragma: no cover
        assert issubclass(sources._Loader, yaml.SafeLoader)


# ----------------------------------------------------------------------------------------------
# load_manifests
# ----------------------------------------------------------------------------------------------

def _write(path, *docs):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(yaml.safe_dump_all(docs))


def test_globs_are_sorted_and_deduplicated(tmp_path):
    base = str(tmp_path)
    _write(os.path.join(base, "m", "b.yaml"), gns("b"))
    _write(os.path.join(base, "m", "a.yaml"), gns("a1"), gns("a2"))
    _write(os.path.join(base, "m", "sub", "c.yml"), gns("c"))
    os.symlink(os.path.join(base, "m", "a.yaml"), os.path.join(base, "link.yaml"))
    docs = sources.load_manifests(["m/*.yaml", "m/a.yaml", "link.yaml", "m/**/*.yml"], base)
    assert [o for _unused, o in docs] == ["m/a.yaml#1", "m/a.yaml#2", "m/b.yaml#1", "m/sub/c.yml#1"]


def test_directories_and_absolute_paths(tmp_path):
    base = str(tmp_path)
    _write(os.path.join(base, "d", "x.yaml"), gns("x"))
    _write(os.path.join(base, "d", "notes.txt"), gns("ignored"))
    other = tmp_path.parent / (tmp_path.name + "-other")
    _write(str(other / "y.json"), gns("y"))
    docs = sources.load_manifests(["d", str(other / "y.json")], base)
    assert [o for _unused, o in docs] == ["d/x.yaml#1", str(other / "y.json") + "#1"]


def test_pattern_matching_nothing_is_a_problem(tmp_path):
    with pytest.raises(errors.HostfwError) as info:
        sources.load_manifests(["missing/*.yaml", "nope.yaml"], str(tmp_path))
    assert messages(info.value.problems) == [
        "Manifest missing/*.yaml: matches no file under %s (check the path; relative paths are relative to %s)"
        % (tmp_path, tmp_path),
        "Manifest nope.yaml: matches no file under %s (check the path; relative paths are relative to %s)"
        % (tmp_path, tmp_path)]


def test_unreadable_file_is_a_problem(tmp_path):
    path = tmp_path / "bin.yaml"
    path.write_bytes(b"\xff\xfe\x00bad")
    collector = errors.Collector()
    assert sources.load_manifests(["bin.yaml"], str(tmp_path), collector) == []
    (problem,) = collector.problems
    assert problem.kind == "Manifest" and problem.name == "bin.yaml" and "cannot be read" in problem.message


# ----------------------------------------------------------------------------------------------
# collect_inventory
# ----------------------------------------------------------------------------------------------

def test_nodes_and_hosts_of_node():
    inv = sources.collect_inventory({"web1": {}, "web2": {"hostfw_node_name": "node-b"},
                                     "web2-alias": {"hostfw_node_name": "node-b"}}, "/")
    assert inv.nodes == {"web1": "web1", "web2": "node-b", "web2-alias": "node-b"}
    assert inv.hosts_of_node == {"web1": ["web1"], "node-b": ["web2", "web2-alias"]}
    assert inv.problems == [] and inv.documents == []
    assert inv.probes == [{"protocol": "TCP", "port": 22}, {"protocol": "TCP", "port": 10250}]


def test_interfaces():
    inv = sources.collect_inventory({"h": {"hostfw_interfaces": {"eth0": ["10.0.0.5/24", "fe80::1/64", "10.0.0.5"],
                                                                 "lo": "127.0.0.1", "eth1": None}}}, "/")
    assert inv.interfaces == {"h": {"eth0": ["10.0.0.5", "fe80::1"], "lo": ["127.0.0.1"], "eth1": []}}
    inv = sources.collect_inventory({"h": {"hostfw_interfaces": {"eth0": ["10.0.0.300"], "bad name!": []}}}, "/")
    assert messages(inv.problems) == [
        "Host h: hostfw_interfaces['eth0'][0]: '10.0.0.300' is not an IP address (write e.g. 10.0.0.5 or "
        "10.0.0.5/24)",
        "Host h: hostfw_interfaces: 'bad name!' is not an interface name (use 1-15 letters, digits, '_', '.' and '-')"]


def test_probes_are_validated():
    probes = [{"protocol": "UDP", "port": 53}, {"protocol": "ICMP"}, {"port": 22}, {"protocol": "UDP", "port": 53}]
    inv = sources.collect_inventory({"a": {"hostfw_matrix_probes": probes}, "b": {"hostfw_matrix_probes": probes}},
                                    "/")
    assert inv.problems == []
    assert inv.probes == [{"protocol": "UDP", "port": 53}, {"protocol": "ICMP"}, {"protocol": "TCP", "port": 22}]
    bad = [{"protocol": "tcp", "port": 22}, {"protocol": "TCP", "port": 0}, {"protocol": "UDP"},
           {"protocol": "ICMPv6", "port": 1}, {"protocol": "TCP", "port": "22"}, "x", {"proto": "TCP", "port": 1}]
    inv = sources.collect_inventory({"a": {"hostfw_matrix_probes": bad}}, "/")
    assert messages(inv.problems) == [
        "Host a: hostfw_matrix_probes[0].protocol: 'tcp' is not a probe protocol (use TCP)",
        "Host a: hostfw_matrix_probes[1].port: 0 is not a port (use a number 1-65535)",
        "Host a: hostfw_matrix_probes[2].port: missing (set port to a number 1-65535)",
        "Host a: hostfw_matrix_probes[3].port: an ICMPv6 probe has no port (remove port)",
        "Host a: hostfw_matrix_probes[4].port: '22' is not a port (use a number 1-65535)",
        "Host a: hostfw_matrix_probes[5]: expected a mapping with protocol and port, got a string (write e.g. "
        "{protocol: TCP, port: 22})",
        "Host a: hostfw_matrix_probes[6].proto: unknown field (a probe has only protocol and port)"]


def test_probes_must_agree_between_hosts():
    inv = sources.collect_inventory({"a": {"hostfw_matrix_probes": [{"protocol": "TCP", "port": 1}]},
                                     "b": {"hostfw_matrix_probes": [{"protocol": "TCP", "port": 2}]}}, "/")
    assert messages(inv.problems) == [
        "Host b: hostfw_matrix_probes: differs from the value on host a (the matrix has one list of probes: define "
        "hostfw_matrix_probes once, e.g. in group_vars/all)"]


def test_shared_resources_are_read_once():
    shared = [gns("a"), gnp("p")]
    inv = sources.collect_inventory({"h1": {"hostfw_resources": shared}, "h2": {"hostfw_resources": shared},
                                     "h3": {"hostfw_resources": copy.deepcopy(shared)},
                                     "h4": {"hostfw_resources": [copy.deepcopy(shared[1]), gns("b")]}}, "/")
    assert inv.problems == []
    assert [o for _unused, o in inv.documents] == ["hostfw_resources[0] (host h1)", "hostfw_resources[1] (host h1)",
                                                   "hostfw_resources[1] (host h4)"]


def test_same_resource_different_content_on_two_hosts_names_both():
    inv = sources.collect_inventory({"h1": {"hostfw_resources": [gns("a", ["10.0.0.0/8"])]},
                                     "h2": {"hostfw_resources": [gns("a", ["10.0.0.0/9"])]},
                                     "h3": {"hostfw_resources": [gns("a", ["10.0.0.0/9"])]}}, "/")
    assert messages(inv.problems) == [
        "GlobalNetworkSet a: is defined differently on host h1 (hostfw_resources[0] (host h1)) and on host h2 "
        "(hostfw_resources[0] (host h2)) (give every host the same definition, e.g. in group_vars/all, or rename "
        "one of them)"]
    assert len(inv.documents) == 1


def test_same_host_duplicates_are_left_to_build_world():
    with pytest.raises(errors.HostfwError) as info:
        sources.load_world({"h1": {"hostfw_resources": [gns("a", ["10.0.0.0/8"]), gns("a", ["10.0.0.0/9"])]}}, "/")
    assert messages(info.value.problems) == [
        "GlobalNetworkSet a: metadata.name: defined twice with different content, in hostfw_resources[0] (host h1) "
        "and hostfw_resources[1] (host h1) (keep one definition, or rename one of them)"]


def test_resources_lists_and_single_documents():
    inv = sources.collect_inventory({"h": {"hostfw_resources": {"apiVersion": "v1", "kind": "List",
                                                                "items": [gns("a"), gns("b")]}}}, "/")
    assert [o for _unused, o in inv.documents] == ["hostfw_resources[0] (host h) items[0]",
                                                   "hostfw_resources[0] (host h) items[1]"]
    inv = sources.collect_inventory({"h": {"hostfw_resources": "oops"}}, "/")
    assert messages(inv.problems) == ["Host h: hostfw_resources: expected a list of Calico documents, got a string "
                                      "(write a YAML list of documents with apiVersion, kind, metadata and spec)"]


def test_manifests_are_the_union_of_all_hosts_patterns(tmp_path):
    _write(str(tmp_path / "a.yaml"), gns("a"))
    _write(str(tmp_path / "b.yaml"), gns("b"))
    shared = ["a.yaml"]
    inv = sources.collect_inventory({"h1": {"hostfw_manifests": shared}, "h2": {"hostfw_manifests": shared},
                                     "h3": {"hostfw_manifests": "b.yaml"}, "h4": {"hostfw_manifests": ["a.yaml"]}},
                                    str(tmp_path))
    assert inv.problems == [] and [o for _unused, o in inv.documents] == ["a.yaml#1", "b.yaml#1"]
    inv = sources.collect_inventory({"h1": {"hostfw_manifests": ["nope.yaml", 3]}}, str(tmp_path))
    assert messages(inv.problems) == [
        "Host h1: hostfw_manifests[1]: expected a path or glob, got 3 (write a string such as manifests/*.yaml)",
        "Manifest nope.yaml: matches no file under %s (check the path; relative paths are relative to %s)"
        % (tmp_path, tmp_path)]


def test_host_endpoints_flat_and_document_forms():
    endpoints = [
        {"interfaceName": "eth0", "expectedIPs": ["10.0.0.5"], "labels": {"zone": "b"}},
        {"interfaceName": "*", "profiles": [api.DEFAULT_ALLOW_PROFILE]},
        {"name": "node1-mgmt", "expectedIPs": ["192.0.2.5"]},
        {"interfaceName": "br_Lan0"},
        {"metadata": {"labels": {"x": "y"}}, "spec": {"interfaceName": "eth1"}},
        {"apiVersion": V3, "kind": "HostEndpoint", "metadata": {"name": "custom"},
         "spec": {"node": "elsewhere", "interfaceName": "eth2"}},
    ]
    hv = {"hostfw_node_name": "node1", "hostfw_labels": {"role": "worker", "zone": "a"},
          "hostfw_host_endpoints": endpoints}
    world, inv = sources.load_world({"web1": hv}, "/")
    heps = world.host_endpoints
    assert sorted(heps) == ["custom", "node1-all", "node1-br-lan0", "node1-eth0", "node1-eth1", "node1-mgmt"]
    assert heps["node1-eth0"] == api.HostEndpoint(
        "node1-eth0", "node1", {"role": "worker", "zone": "b"}, "eth0", ("10.0.0.5",),
        origin="hostfw_host_endpoints[0] (host web1)")
    assert heps["node1-all"].interface_name == "*" and heps["node1-all"].profiles == (api.DEFAULT_ALLOW_PROFILE,)
    assert heps["node1-mgmt"].interface_name == "" and heps["node1-mgmt"].labels == {"role": "worker", "zone": "a"}
    assert heps["node1-br-lan0"].interface_name == "br_Lan0"
    assert heps["node1-eth1"].labels == {"x": "y"} and heps["node1-eth1"].node == "node1"
    assert heps["custom"].node == "elsewhere"
    assert inv.nodes == {"web1": "node1"}


def test_host_endpoint_item_problems():
    hv = {"hostfw_host_endpoints": [{"expectedIPs": ["10.0.0.5"]}, "eth0",
                                    {"kind": "GlobalNetworkSet", "metadata": {"name": "x"}},
                                    {"interfaceName": "eth0", "nodee": "x"}]}
    with pytest.raises(errors.HostfwError) as info:
        sources.load_world({"h": hv}, "/")
    assert messages(info.value.problems) == [
        "Host h: hostfw_host_endpoints[0].name: missing: an endpoint without interfaceName needs a name (set name)",
        "Host h: hostfw_host_endpoints[1]: expected a mapping, got a string (write e.g. {interfaceName: eth0, "
        "labels: {role: worker}})",
        "Host h: hostfw_host_endpoints[2].kind: 'GlobalNetworkSet' is not a HostEndpoint (hostfw_host_endpoints "
        "takes only host endpoints: put other resources in hostfw_resources)",
        "HostEndpoint h-eth0: spec.nodee: unknown field (did you mean node?)"]
    assert info.value.problems[3].origin == "hostfw_host_endpoints[3] (host h)"


def test_auto_host_endpoint():
    hosts = {
        "n1": {"hostfw_auto_host_endpoint": True, "ansible_host": "192.0.2.10", "hostfw_labels": {"role": "db"}},
        "n2": {"hostfw_auto_host_endpoint": "yes", "ansible_host": "n2.example.com"},
        "n3": {"hostfw_auto_host_endpoint": True, "ansible_host": "192.0.2.12",
               "hostfw_host_ips": ["192.0.2.13", "2001:db8::13"], "hostfw_node_name": "node-3"},
        "n4": {"hostfw_auto_host_endpoint": False},
    }
    world, inv = sources.load_world(hosts, "/")
    heps = world.host_endpoints
    assert sorted(heps) == ["n1-auto-hep", "n2-auto-hep", "node-3-auto-hep"]
    assert heps["n1-auto-hep"] == api.HostEndpoint(
        "n1-auto-hep", "n1", {"role": "db"}, "*", ("192.0.2.10",), (api.DEFAULT_ALLOW_PROFILE,),
        origin="hostfw_auto_host_endpoint (host n1)")
    assert heps["n2-auto-hep"].expected_ips == () and heps["n2-auto-hep"].labels == {}
    assert heps["node-3-auto-hep"].expected_ips == ("192.0.2.13", "2001:db8::13")
    assert heps["node-3-auto-hep"].node == "node-3"


def test_invalid_node_names_are_reported_once_when_needed():
    hosts = {"Web01": {"hostfw_auto_host_endpoint": True}, "Web02": {}, "w3": {"hostfw_node_name": "Bad_Name"},
             "w4": {"hostfw_auto_host_endpoint": "maybe"}}
    inv = sources.collect_inventory(hosts, "/")
    assert messages(inv.problems) == [
        "Host Web01: hostfw_node_name: the inventory_hostname 'Web01' is not a valid Calico node name, and "
        "hostfw_node_name is not set (set hostfw_node_name to the host's Calico node name: lower case letters, "
        "digits, '-' and '.', e.g. 'web01')",
        "Host w3: hostfw_node_name: 'Bad_Name' is not a valid Calico node name (set hostfw_node_name to the host's "
        "Calico node name: lower case letters, digits, '-' and '.', e.g. 'bad-name')",
        "Host w4: hostfw_auto_host_endpoint: 'maybe' is not a boolean (use true or false)"]
    assert inv.documents == []


def test_load_world_reports_all_problems_of_both_steps(tmp_path):
    hosts = {"h1": {"hostfw_manifests": ["missing.yaml"],
                    "hostfw_resources": [gnp("p", ingress=[{"action": "allow"}])]},
             "h2": {"hostfw_matrix_probes": "x"}}
    with pytest.raises(errors.HostfwError) as info:
        sources.load_world(hosts, str(tmp_path))
    assert messages(info.value.problems) == [
        "Host h2: hostfw_matrix_probes: expected a list of {protocol, port} mappings, got a string (write e.g. "
        "[{protocol: TCP, port: 22}])",
        "Manifest missing.yaml: matches no file under %s (check the path; relative paths are relative to %s)"
        % (tmp_path, tmp_path),
        "GlobalNetworkPolicy p: spec.ingress[0].action: 'allow' is not an action (use Allow)"]


def test_load_world_success(tmp_path):
    _write(str(tmp_path / "m" / "tiers.yaml"), {"apiVersion": V3, "kind": "Tier", "metadata": {"name": "hosts"},
                                                "spec": {"order": 100}})
    shared = [gnp("ssh", tier="hosts", ingress=[{"action": "Allow", "protocol": "TCP",
                                                 "destination": {"ports": [22]}}])]
    hosts = {"n%d" % i: {"hostfw_resources": shared, "hostfw_manifests": ["m/*.yaml"],
                         "hostfw_host_endpoints": [{"interfaceName": "eth0"}]} for i in range(3)}
    world, inv = sources.load_world(hosts, str(tmp_path))
    assert sorted(world.host_endpoints) == ["n0-eth0", "n1-eth0", "n2-eth0"]
    assert world.policies[("GlobalNetworkPolicy", None, "ssh")].tier == "hosts"
    assert world.tiers["hosts"].origin == "m/tiers.yaml#1"


def test_collect_reads_a_shared_inventory_list_once():
    docs = [gnp("p%d" % i, order=i, selector="role == 'r%d'" % (i % 40),
                ingress=[{"action": "Allow", "protocol": "TCP", "source": {"nets": ["10.%d.0.0/16" % (i % 200)]},
                          "destination": {"ports": [22, "8000:8080"]}}]) for i in range(2000)]
    hosts = {"node%d" % i: {"hostfw_resources": docs, "hostfw_manifests": [], "ansible_host": "10.9.%d.%d"
                            % (i // 200, i % 200), "hostfw_labels": {"role": "r%d" % (i % 40)}}
             for i in range(10000)}
    calls = []
    original = sources._Collect._resource

    def counted(self, host, doc, origin):
        calls.append(origin)
        return original(self, host, doc, origin)

    sources._Collect._resource = counted
    try:
        inv = sources.collect_inventory(hosts, "/")
    finally:
        sources._Collect._resource = original
    assert len(inv.documents) == 2000 and inv.problems == [] and len(inv.nodes) == 10000
    # the list shared by 10,000 hosts is read once: the work depends on the documents, not the hosts
    # (bench/run.py measures the time)
    assert len(calls) == 2000 and all(origin.endswith("(host node0)") for origin in calls)


def test_the_module_imports_nothing_from_ansible():
    with open(sources.__file__, encoding="utf-8") as handle:
        text = handle.read()
    assert "import ansible." not in text and "from ansible." not in text and "from ansible import" not in text
