# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Parse and validate Calico ``projectcalico.org/v3`` documents into :mod:`api` objects.

:func:`build_world` is the only entry point the rest of the collection needs::

    world = build_world([(doc, "manifests/hosts.yaml#3"), ...])

It validates every document as Calico's API server and ``calicoctl`` would (field types, names,
labels, selectors, CIDRs, ports, protocols, ICMP, the CEL cross-field rules, defaulting of
``types`` and ``tier``), then checks the documents against each other (duplicates, unknown tiers
and profiles, built-in tiers and profiles).  Every problem of every document is collected; if
there is any, one :class:`~errors.HostfwError` carrying all of them is raised.  Messages have the
form ``<Kind> <name>: <field path>: <what is wrong> (<fix>)`` with paths spelled with the YAML
field names, for example::

    GlobalNetworkPolicy node-fw: spec.ingress[0].protocol: 'tcp' is not a protocol (use TCP)

Where hostfw deliberately differs from Calico it says so in the message: rule ``http``,
``services`` and ``serviceAccounts`` matches are rejected because hostfw cannot enforce them on a
host, while a policy-level ``serviceAccountSelector`` or ``namespaceSelector`` is accepted (with a
warning) because such a policy never selects a host endpoint, so there is nothing to enforce.

This module imports nothing from Ansible.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple

from ansible_collections.hostfw.nftables.plugins.plugin_utils import api, checks as ck, errors, felix, selector
from ansible_collections.hostfw.nftables.plugins.plugin_utils.checks import BAD
from ansible_collections.hostfw.nftables.plugins.plugin_utils.errors import Scope

__all__ = ["API_VERSION", "KINDS", "build_world", "validate_documents", "flatten_lists",
           "builtin_tiers", "builtin_profiles"]

API_VERSION = "projectcalico.org/v3"

KINDS = (api.HOST_ENDPOINT, api.GLOBAL_NETWORK_POLICY, api.STAGED_GLOBAL_NETWORK_POLICY, api.NETWORK_POLICY,
         api.STAGED_NETWORK_POLICY, api.TIER, api.GLOBAL_NETWORK_SET, api.NETWORK_SET, api.WORKLOAD_ENDPOINT,
         api.PROFILE, api.FELIX_CONFIGURATION)
NAMESPACED_KINDS = frozenset((api.NETWORK_POLICY, api.STAGED_NETWORK_POLICY, api.NETWORK_SET,
                              api.WORKLOAD_ENDPOINT))
POLICY_KINDS = frozenset((api.GLOBAL_NETWORK_POLICY, api.STAGED_GLOBAL_NETWORK_POLICY, api.NETWORK_POLICY,
                          api.STAGED_NETWORK_POLICY))

# Other projectcalico.org/v3 kinds: valid Calico resources that hostfw has no use for.  They are
# skipped with a warning so that a whole `calicoctl get -o yaml` export can be pasted.
IGNORED_KINDS = frozenset(("BGPConfiguration", "BGPFilter", "BGPPeer", "BlockAffinity", "CalicoNodeStatus",
                           "ClusterInformation", "IPAMConfiguration", "IPPool", "IPReservation",
                           "KubeControllersConfiguration", "Node", "StagedKubernetesNetworkPolicy"))

BUILTIN_TIERS = {
    # name: (order, defaultAction)
    "default": (1000000.0, "Deny"),
    "kube-admin": (1000.0, "Pass"),
    "kube-baseline": (10000000.0, "Pass"),
}

MAX_RULES = 1024
MAX_NETS = 256
MAX_PORTS = 50
MAX_SELECTOR = 1024

# ----------------------------------------------------------------------------------------------
# Regular expressions (all used with fullmatch)
# ----------------------------------------------------------------------------------------------

_PORT_TOKEN_RE = re.compile(r"[a-zA-Z0-9_.-]{1,128}")
_GLOBAL_ONLY_RE = re.compile(r"[ \t]*global\([ \t]*\)[ \t]*")
_IANA_NAME_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


# ----------------------------------------------------------------------------------------------
# Protocols, ports, ICMP
# ----------------------------------------------------------------------------------------------

_PROTOCOL_FIX = "use TCP, UDP, SCTP, ICMP, ICMPv6, UDPLite or a number 1-255"


def _protocol(c: Scope, value: Any, path: str) -> Any:
    """Rule protocol: a number 1-255 (also as a numeric string) or an exact name."""
    if value is None:
        return None
    if ck.as_int(value) is not None:
        value = ck.as_int(value)
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        c.err(path, "expected a protocol name or number, got %s" % ck.shown(value), _PROTOCOL_FIX)
        return BAD
    if isinstance(value, str) and ck.DIGITS_RE.fullmatch(value):
        number = ck.to_int(value)
        if number > 255:
            c.err(path, "%s is not a protocol" % ck.show(value), _PROTOCOL_FIX)
            return BAD
        value = number
    if isinstance(value, int):
        if not 1 <= value <= 255:
            c.err(path, "%d is not a protocol number" % value, _PROTOCOL_FIX)
            return BAD
        return value
    if value in api.PROTOCOL_NUMBERS:
        return api.PROTOCOL_NUMBERS[value]
    close = ck.closest(value, api.PROTOCOL_NUMBERS)
    fix = "use %s" % close if close and close.lower() == value.lower() else _PROTOCOL_FIX
    c.err(path, "%s is not a protocol" % ck.show(value), fix)
    return BAD


def _proto_name(number: int) -> str:
    return api.PROTOCOL_NAMES.get(number, str(number))


def _port_number(c: Scope, number: int, path: str, shown: str) -> Any:
    if number > 65535 or number < 0:
        c.err(path, "%s is not a port" % shown, "use a port number 1-65535")
        return BAD
    if number == 0:
        c.err(path, "port 0 is not allowed", "use a port number 1-65535")
        return BAD
    return api.PortRange(number, number)


def _port(c: Scope, value: Any, path: str) -> Any:
    """One entry of a rule's ports list: number, "min:max" or a named port."""
    if ck.as_int(value) is not None:
        value = ck.as_int(value)
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        c.err(path, "expected a port number, a 'min:max' range or a port name, got %s"
              % (ck.show(value) if isinstance(value, float) else ck.tname(value)),
              "write e.g. 443, '8000:8080' or https")
        return BAD
    if isinstance(value, int):
        return _port_number(c, value, path, str(value))
    if ck.DIGITS_RE.fullmatch(value):
        return _port_number(c, ck.to_int(value), path, value)
    if ":" in value:
        parts = value.split(":")
        if len(parts) != 2 or not all(ck.DIGITS_RE.fullmatch(p) for p in parts):
            c.err(path, "%s is not a port range" % ck.show(value), "write a range as 'min:max', e.g. '8000:8080'")
            return BAD
        low, high = ck.to_int(parts[0]), ck.to_int(parts[1])
        if low > 65535 or high > 65535:
            c.err(path, "%s is not a port range" % ck.show(value), "use port numbers 1-65535")
            return BAD
        if low > high:
            c.err(path, "%s is not a port range: %d is greater than %d" % (ck.show(value), low, high),
                  "write '%d:%d'" % (high, low))
            return BAD
        if low == 0:
            c.err(path, "%s starts at port 0" % ck.show(value), "use port numbers 1-65535")
            return BAD
        return api.PortRange(low, high)
    m = re.fullmatch(r"([0-9]+)-([0-9]+)", value)
    if m:
        c.err(path, "%s is not a port range" % ck.show(value),
              "write the range with a colon: '%s:%s'" % (m.group(1), m.group(2)))
        return BAD
    if _PORT_TOKEN_RE.fullmatch(value) is None or not _valid_port_name(value):
        c.err(path, "%s is not a port, a 'min:max' range or a port name" % ck.show(value),
              "a port name is an IANA service name: at most 15 lower case letters, digits and '-', "
              "with at least one letter")
        return BAD
    return api.NamedPort(value)


def _valid_port_name(name: str) -> bool:
    return (0 < len(name) <= 15 and _IANA_NAME_RE.fullmatch(name) is not None and "--" not in name
            and any("a" <= ch <= "z" for ch in name))


def _ports(c: Scope, value: Any, path: str) -> Any:
    items = ck.list_of(c, value, path, MAX_PORTS, "ports")
    if items is None or items is BAD:
        return () if items is None else BAD
    out = []
    bad = False
    for i, item in enumerate(items):
        p = _port(c, item, ck.index_path(path, i))
        if p is BAD:
            bad = True
        else:
            out.append(p)
    return BAD if bad else tuple(out)


def _icmp(c: Scope, value: Any, path: str) -> Any:
    f = ck.fields(c, value, path, ("type", "code"))
    if f is None:
        return BAD
    if value is None:
        return None
    icmp_type = ck.integer(c, f.get("type"), ck.join_path(path, "type"), 0, 254, "ICMP type")
    code = ck.integer(c, f.get("code"), ck.join_path(path, "code"), 0, 255, "ICMP code")
    if icmp_type is BAD or code is BAD:
        return BAD
    if code is not None and icmp_type is None:
        c.err(ck.join_path(path, "code"), "a code needs a type", "set %s.type as well" % path.rsplit(".", 1)[-1])
        return BAD
    return api.ICMPMatch(icmp_type, code)


def _endpoint_ports(c: Scope, value: Any, path: str, workload: bool) -> Any:
    """HostEndpoint/WorkloadEndpoint named ports."""
    items = ck.list_of(c, value, path)
    if items is None or items is BAD:
        return () if items is None else BAD
    allowed = ("name", "protocol", "port", "hostPort", "hostIP") if workload else ("name", "protocol", "port")
    out = []
    bad = False
    for i, item in enumerate(items):
        ipath = ck.index_path(path, i)
        f = ck.fields(c, item, ipath, allowed)
        if f is None:
            bad = True
            continue
        name = ck.string(c, f.get("name"), ck.join_path(ipath, "name"))
        host_port = ck.integer(c, f.get("hostPort"), ck.join_path(ipath, "hostPort"), 0, 65535, "port") if workload else None
        if name is BAD or host_port is BAD:
            bad = True
        elif not name:
            if not (workload and host_port):
                c.err(ck.join_path(ipath, "name"), "missing", "give the port a name, e.g. https")
                bad = True
        elif not _valid_port_name(name):
            c.err(ck.join_path(ipath, "name"), "%s is not a valid port name" % ck.show(name),
                  "use an IANA service name: at most 15 lower case letters, digits and '-', with at least one "
                  "letter")
            bad = True
        proto = f.get("protocol")
        proto_path = ck.join_path(ipath, "protocol")
        if proto is None:
            c.err(proto_path, "missing", "set protocol to TCP, UDP or SCTP")
            bad = True
            number = BAD
        else:
            number = _protocol(c, proto, proto_path)
            if number is BAD:
                bad = True
            elif number not in api.PORT_PROTOCOLS:
                c.err(proto_path, "protocol %s has no ports" % _proto_name(number), "use TCP, UDP or SCTP")
                bad = True
                number = BAD
        port = f.get("port")
        if port is None:
            c.err(ck.join_path(ipath, "port"), "missing", "set port to a number 1-65535")
            bad = True
        else:
            port = ck.integer(c, port, ck.join_path(ipath, "port"), 1, 65535, "port")
            bad = bad or port is BAD
        if workload and f.get("hostIP") is not None:
            host_ip = ck.string(c, f.get("hostIP"), ck.join_path(ipath, "hostIP"))
            if host_ip is BAD:
                bad = True
            elif host_ip and ck.parse_ip(host_ip) is None:
                # Calico's tag ``net``: an address, or a masked network
                cidr = ck.parse_cidr(host_ip)
                if cidr is None or cidr[0] != cidr[1].network_address:
                    c.err(ck.join_path(ipath, "hostIP"), "%s is not an IP address" % ck.show(host_ip),
                          "write the host address the port is published on, e.g. 10.0.0.5")
                    bad = True
        if not bad and name:
            out.append(api.EndpointPort(name, number, port))
    return BAD if bad else tuple(out)


# ----------------------------------------------------------------------------------------------
# Selectors
# ----------------------------------------------------------------------------------------------

def _selector_fix(text: str) -> str:
    if "\n" in text or "\r" in text:
        return "remove the line break: a YAML '|' block keeps a trailing newline, write the selector as a " \
               "quoted string or with '>-'"
    return "see the Calico selector syntax: label == 'value', has(label), label in {'a', 'b'}, !, &&, ||"


def _selector(c: Scope, value: Any, path: str, allow_global: bool = False, refuse_global: bool = True) -> Any:
    """A selector string: a parsed Selector, None when absent or empty, or BAD.  With
    ``allow_global`` (rule namespaceSelector) returns the string "global()" for the global scope.
    ``refuse_global``: the selector may not contain ``global(`` at all (Calico's CEL rules on the
    policy selectors and the rule selector; a rule's notSelector has no such rule, and there
    global() matches every endpoint, as all() does)."""
    text = ck.string(c, value, path)
    if text is None or text is BAD:
        return text
    if text == "":
        return None
    if len(text) > MAX_SELECTOR:
        c.err(path, "the selector is %d characters long" % len(text), "use at most %d characters" % MAX_SELECTOR)
        return BAD
    if "global(" in text and not allow_global and refuse_global:
        c.err(path, "global() is only allowed as the whole namespaceSelector of a rule",
              "remove global() from this selector")
        return BAD
    try:
        parsed = selector.parse(text)
    except selector.SelectorError as exc:
        c.err(path, str(exc), _selector_fix(text))
        return BAD
    if allow_global and "global(" in text:
        # validateEntityRule tokenises the selector: one global() token and nothing else, not even
        # parentheses (spaces and tabs are not tokens)
        if _GLOBAL_ONLY_RE.fullmatch(text) is None:
            c.err(path, "global() cannot be combined with other selectors",
                  "write namespaceSelector: global() on its own")
            return BAD
        return "global()"
    return parsed


# ----------------------------------------------------------------------------------------------
# Rules
# ----------------------------------------------------------------------------------------------

RULE_FIELDS = frozenset(("action", "ipVersion", "protocol", "notProtocol", "icmp", "notICMP", "source",
                         "destination", "http", "metadata"))
ENTITY_FIELDS = frozenset(("nets", "notNets", "selector", "notSelector", "namespaceSelector", "ports",
                           "notPorts", "serviceAccounts", "services"))

_RULE_HINTS = {name: "%s belongs under source or destination" % name for name in ENTITY_FIELDS}
# Fields of these kinds that only Calico Enterprise has (tigera/docs@f2a27624, calico-enterprise
# reference/resources and _includes/content/_entityrule.mdx), with the fix to suggest.
_ENTERPRISE_ENTITY = {"domains": ck.ENTERPRISE_FIX + "; match the domain's addresses with nets or a "
                                                     "GlobalNetworkSet selector"}
_ENTERPRISE_NETWORK_SET = {"allowedEgressDomains": ck.ENTERPRISE_FIX + "; list the domain's addresses in nets"}
_ENTERPRISE_WEP = {"awsElasticIPs": ck.ENTERPRISE_FIX}
_HTTP_WHY = ("hostfw does not support http matches: nftables sees packets, not HTTP requests, and Calico "
             "enforces them only with its Envoy-based application layer policy")
_HTTP_FIX = "remove http and match on protocol and ports instead"
_SERVICES_WHY = ("hostfw does not support services matches: it does not know Kubernetes Services or "
                 "their endpoints")
_SERVICES_FIX = "remove services and match the service's addresses with nets or a NetworkSet selector"
_SA_WHY = "hostfw does not support serviceAccounts matches: it does not know which service account a pod runs as"
_SA_FIX = "remove serviceAccounts and select the pods by their labels"


def _present(value: Any) -> bool:
    return value is not None and not ((ck.is_map(value) or isinstance(value, (list, tuple, str))) and len(value) == 0)


def _entity(c: Scope, value: Any, path: str) -> Any:
    """An EntityRule: returns (EntityRule, {field: set of IP versions}) or BAD."""
    f = ck.fields(c, value, path, ENTITY_FIELDS, enterprise=_ENTERPRISE_ENTITY)
    if f is None:
        return BAD
    bad = False
    nets_out: Dict[str, Tuple[str, ...]] = {}
    versions: Dict[str, set] = {}
    for field in ("nets", "notNets"):
        fpath = ck.join_path(path, field)
        items = ck.list_of(c, f.get(field), fpath, MAX_NETS, "networks")
        versions[field] = set()
        if items is None:
            nets_out[field] = ()
            continue
        if items is BAD:
            bad = True
            continue
        seen = []
        seen_raw = set()
        for i, item in enumerate(items):
            if isinstance(item, str):
                # a Kubernetes set-typed list (x-kubernetes-list-type: set): the API server refuses
                # the same string twice
                if item in seen_raw:
                    c.err(ck.index_path(fpath, i), "%s is listed twice" % ck.show(item), "remove the duplicate")
                    bad = True
                    continue
                seen_raw.add(item)
            parsed = ck.strict_cidr(c, item, ck.index_path(fpath, i))
            if parsed is BAD:
                bad = True
                continue
            net, version = parsed
            # validateRule: the IPv4 catch-all is the string 0.0.0.0/0, the IPv6 one any spelling of ::/0
            if field == "notNets" and (item == "0.0.0.0/0" or net == "::/0"):
                c.err(ck.index_path(fpath, i), "%s in notNets matches no traffic at all" % ck.show(item),
                      "remove it: a catch-all network cannot be negated")
                bad = True
                continue
            versions[field].add(version)
            if net not in seen:
                seen.append(net)
        nets_out[field] = tuple(seen)
    sel = _selector(c, f.get("selector"), ck.join_path(path, "selector"))
    not_sel = _selector(c, f.get("notSelector"), ck.join_path(path, "notSelector"), refuse_global=False)
    ns_sel = _selector(c, f.get("namespaceSelector"), ck.join_path(path, "namespaceSelector"), allow_global=True)
    ports = _ports(c, f.get("ports"), ck.join_path(path, "ports"))
    not_ports = _ports(c, f.get("notPorts"), ck.join_path(path, "notPorts"))
    if _present(f.get("serviceAccounts")):
        c.err(ck.join_path(path, "serviceAccounts"), _SA_WHY, _SA_FIX)
        bad = True
    if _present(f.get("services")):
        c.err(ck.join_path(path, "services"), _SERVICES_WHY, _SERVICES_FIX)
        bad = True
    if BAD in (sel, not_sel, ns_sel, ports, not_ports) or bad:
        return BAD
    entity = api.EntityRule(
        nets=nets_out["nets"], not_nets=nets_out["notNets"], selector=sel, not_selector=not_sel,
        namespace_selector=None if ns_sel == "global()" else ns_sel, global_scope=ns_sel == "global()",
        ports=ports, not_ports=not_ports)
    return entity, versions


def _rule(c: Scope, value: Any, path: str) -> Any:
    f = ck.fields(c, value, path, RULE_FIELDS, hints=_RULE_HINTS)
    if f is None:
        return BAD
    bad = False
    action = f.get("action")
    if action is None:
        c.err(ck.join_path(path, "action"), "missing", "set action to Allow, Deny, Log or Pass")
        bad = True
    else:
        action = ck.enum(c, action, ck.join_path(path, "action"), api.ACTIONS, "an action")
        bad = bad or action is BAD
    ip_version = f.get("ipVersion")
    if ip_version is not None:
        if ck.as_int(ip_version) is not None:
            ip_version = ck.as_int(ip_version)
        if isinstance(ip_version, bool) or ip_version not in (4, 6) or not isinstance(ip_version, int):
            c.err(ck.join_path(path, "ipVersion"), "%s is not an IP version" % (
                ck.show(ip_version) if isinstance(ip_version, (str, int, float)) else ck.tname(ip_version)),
                "use 4 or 6 without quotes")
            ip_version = BAD
            bad = True
    proto = _protocol(c, f.get("protocol"), ck.join_path(path, "protocol"))
    not_proto = _protocol(c, f.get("notProtocol"), ck.join_path(path, "notProtocol"))
    icmp = _icmp(c, f.get("icmp"), ck.join_path(path, "icmp"))
    not_icmp = _icmp(c, f.get("notICMP"), ck.join_path(path, "notICMP"))
    source = _entity(c, f.get("source"), ck.join_path(path, "source"))
    destination = _entity(c, f.get("destination"), ck.join_path(path, "destination"))
    if _present(f.get("http")):
        c.err(ck.join_path(path, "http"), _HTTP_WHY, _HTTP_FIX)
        bad = True
    annotations: Any = {}
    meta = ck.fields(c, f.get("metadata"), ck.join_path(path, "metadata"), ("annotations",))
    if meta is None:
        bad = True
    else:
        annotations = ck.annotations(c, meta.get("annotations"), ck.join_path(path, "metadata.annotations"))
        bad = bad or annotations is BAD
    if BAD in (proto, not_proto, icmp, not_icmp, source, destination):
        bad = True

    # ipVersion against ICMP/ICMPv6 (CEL).
    if ip_version in (4, 6):
        for p, pname in ((proto, "protocol"), (not_proto, "notProtocol")):
            if p == 1 and ip_version == 6:
                c.err(ck.join_path(path, "ipVersion"), "6 does not match %s ICMP" % pname,
                      "use ipVersion: 4, or %s: ICMPv6" % pname)
                bad = True
            elif p == 58 and ip_version == 4:
                c.err(ck.join_path(path, "ipVersion"), "4 does not match %s ICMPv6" % pname,
                      "use ipVersion: 6, or %s: ICMP" % pname)
                bad = True
    # ICMP fields need an ICMP protocol.
    for value_, field in ((icmp, "icmp"), (not_icmp, "notICMP")):
        if value_ is None or value_ is BAD or proto is BAD:
            continue
        if proto not in (1, 58):
            what = "needs protocol ICMP or ICMPv6" + (", not %s" % _proto_name(proto) if proto is not None else "")
            c.err(ck.join_path(path, field), what, "set protocol: ICMP or ICMPv6, or remove %s" % field)
            bad = True
    # Ports against the protocol.
    if proto is not BAD and source is not BAD and destination is not BAD:
        for side, entity in (("source", source), ("destination", destination)):
            for field, ports in (("ports", entity[0].ports), ("notPorts", entity[0].not_ports)):
                if not ports:
                    continue
                ppath = ck.join_path(path, "%s.%s" % (side, field))
                if proto is None:
                    if any(isinstance(p, api.PortRange) for p in ports):
                        c.err(ppath, "numeric ports and port ranges need a protocol",
                              "set %s to TCP, UDP or SCTP" % ck.join_path(path, "protocol"))
                        bad = True
                elif proto not in api.PORT_PROTOCOLS:
                    c.err(ppath, "protocol %s has no ports" % _proto_name(proto),
                          "remove the ports, or use protocol TCP, UDP or SCTP")
                    bad = True
    # Nets: one family per rule, matching ipVersion (validator.go validateRule).
    if source is not BAD and destination is not BAD and ip_version is not BAD:
        seen4 = seen6 = False
        for side, entity in (("source", source), ("destination", destination)):
            for field in ("nets", "notNets"):
                vs = entity[1].get(field, set())
                if not vs:
                    continue
                v4, v6 = 4 in vs, 6 in vs
                npath = ck.join_path(path, "%s.%s" % (side, field))
                if ip_version in (4, 6):
                    other = 6 if ip_version == 4 else 4
                    if other in vs:
                        c.err(npath, "contains IPv%d networks but ipVersion is %d" % (other, ip_version),
                              "remove them, or set ipVersion: %d" % other)
                        bad = True
                elif (v4 and seen6) or (v6 and seen4) or (v4 and v6):
                    c.err(npath, "mixes IPv4 and IPv6 networks in one rule",
                          "split it into one rule for IPv4 and one for IPv6")
                    bad = True
                seen4 = seen4 or v4
                seen6 = seen6 or v6
    if bad:
        return BAD
    return api.Rule(action=action, ip_version=ip_version, protocol=proto, not_protocol=not_proto, icmp=icmp,
                    not_icmp=not_icmp, source=source[0], destination=destination[0],
                    annotations=tuple(annotations.items()))


def _rules(c: Scope, value: Any, path: str) -> Any:
    items = ck.list_of(c, value, path, MAX_RULES, "rules")
    if items is None:
        return ()
    if items is BAD:
        return BAD
    out = []
    bad = False
    for i, item in enumerate(items):
        r = _rule(c, item, ck.index_path(path, i))
        if r is BAD:
            bad = True
        else:
            out.append(r)
    return BAD if bad else tuple(out)


# ----------------------------------------------------------------------------------------------
# Kinds
# ----------------------------------------------------------------------------------------------

META_FIELDS = frozenset(("name", "namespace", "labels", "annotations", "generateName", "uid", "resourceVersion",
                         "generation", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                         "ownerReferences", "finalizers", "managedFields", "selfLink"))


class _Meta(object):
    __slots__ = ("name", "namespace", "labels", "annotations")

    def __init__(self, name, namespace, labels, annotations):
        self.name = name
        self.namespace = namespace
        self.labels = labels
        self.annotations = annotations


HEP_FIELDS = frozenset(("node", "interfaceName", "expectedIPs", "profiles", "ports"))


def _profile_list(c: Scope, value: Any, path: str, unique: bool = True) -> Any:
    """Profile names (a Kubernetes set for a HostEndpoint; repeats allowed, and merged, otherwise)."""
    if unique:
        names = ck.string_set(c, value, path)
    else:
        names = ck.list_of(c, value, path)
        if names is not None and names is not BAD:
            bad = False
            for i, name in enumerate(names):
                if ck.string(c, name, ck.index_path(path, i)) is BAD:
                    bad = True
                elif name is None:
                    c.err(ck.index_path(path, i), "is empty", "remove the empty entry")
                    bad = True
            names = BAD if bad else list(dict.fromkeys(names))
    if names is None or names is BAD:
        return () if names is None else BAD
    bad = False
    for i, name in enumerate(names):
        if not ck.valid_name(name, "subdomain"):
            ck.check_name(c, name, ck.index_path(path, i), "subdomain", "profile name")
            bad = True
    return BAD if bad else tuple(names)


def _interface_name(c: Scope, value: Any, path: str) -> Any:
    s = ck.string(c, value, path)
    if s is None or s is BAD:
        return s
    if s == "*" or s == "" or ck.INTERFACE_RE.fullmatch(s):
        return s
    c.err(path, "%s is not an interface name" % ck.show(s),
          "use \"*\" or 1-15 letters, digits, '_', '.' and '-', e.g. eth0")
    return BAD


def _host_endpoint(c: Scope, meta: _Meta, spec: Any) -> Any:
    f = ck.fields(c, spec, "spec", HEP_FIELDS)
    if f is None:
        return None
    node = f.get("node")
    if node is None or node == "":
        c.err("spec.node", "missing: a HostEndpoint must name its node",
              "set spec.node to the node name of the host that owns the interface")
        node = BAD
    else:
        node = ck.check_name(c, node, "spec.node", "subdomain", "node name")
    iface = _interface_name(c, f.get("interfaceName"), "spec.interfaceName")
    ips = ck.string_set(c, f.get("expectedIPs"), "spec.expectedIPs")
    expected: List[str] = []
    if ips is not None and ips is not BAD:
        for i, text in enumerate(ips):
            ip = ck.bare_ip(c, text, ck.index_path("spec.expectedIPs", i))
            if ip is not BAD and ip not in expected:
                expected.append(ip)
    ips_ok = ips is not BAD and (ips is None or len(expected) == len(set(ips)))
    if not iface and not expected and iface is not BAD and ips_ok:
        c.err("spec", "needs an interfaceName or expectedIPs",
              "set spec.interfaceName, e.g. eth0 or \"*\" for all interfaces, or list the host's addresses in "
              "spec.expectedIPs")
    profiles = _profile_list(c, f.get("profiles"), "spec.profiles")
    ports = _endpoint_ports(c, f.get("ports"), "spec.ports", workload=False)
    if c.failed:
        return None
    return api.HostEndpoint(name=meta.name, node=node, labels=meta.labels, interface_name=iface or "",
                            expected_ips=tuple(expected), profiles=profiles, ports=ports, origin=c.origin)


WEP_FIELDS = frozenset(("orchestrator", "workload", "node", "containerID", "pod", "endpoint", "serviceAccountName",
                        "ipNetworks", "ipNATs", "ipv4Gateway", "ipv6Gateway", "profiles", "interfaceName", "mac",
                        "ports", "allowSpoofedSourcePrefixes", "qosControls"))


QOS_FIELDS = frozenset(("ingressBandwidth", "ingressBurst", "ingressPeakrate", "ingressMinburst", "egressBandwidth",
                        "egressBurst", "egressPeakrate", "egressMinburst", "ingressPacketRate", "ingressPacketBurst",
                        "egressPacketRate", "egressPacketBurst", "ingressMaxConnections", "egressMaxConnections",
                        "dscp"))


def _gateway(c: Scope, value: Any, path: str, version: int) -> None:
    """ipv4Gateway / ipv6Gateway: Calico's tags ``ipv4`` (an address whose To4() is not nil) and
    ``ipv6`` (an address whose To4() is nil)."""
    s = ck.string(c, value, path)
    if not s:
        return
    addr = ck.parse_ip(s)
    if addr is None or ck.is_ipv4(addr) != (version == 4):
        c.err(path, "%s is not an IPv%d address" % (ck.show(s), version),
              "write the workload's IPv%d gateway, e.g. %s" % (version, "169.254.1.1" if version == 4 else "fe80::1"))


def _ip_nats(c: Scope, value: Any, ip_networks: List[Any]) -> None:
    """spec.ipNATs (validator.go validateIPNAT and validateWorkloadEndpointSpec): both addresses are
    bare IPs of one family, and every internalIP is one of the endpoint's ipNetworks."""
    nats = ck.list_of(c, value, "spec.ipNATs")
    if nats is None or nats is BAD:
        return
    for i, item in enumerate(nats):
        path = ck.index_path("spec.ipNATs", i)
        nf = ck.fields(c, item, path, ("internalIP", "externalIP"))
        if nf is None:
            continue
        addrs = {}
        for field in ("internalIP", "externalIP"):
            fpath = ck.join_path(path, field)
            if nf.get(field) is None or nf.get(field) == "":
                c.err(fpath, "missing", "set %s to the %s address of the NAT" % (field, field[:-2]))
                continue
            ip = ck.bare_ip(c, nf.get(field), fpath)
            if ip is not BAD:
                addrs[field] = ipaddress.ip_address(ip)
        internal, external = addrs.get("internalIP"), addrs.get("externalIP")
        if internal is not None and external is not None and internal.version != external.version:
            c.err(ck.join_path(path, "externalIP"), "%s is IPv%d but internalIP %s is IPv%d"
                  % (ck.show(str(external)), external.version, ck.show(str(internal)), internal.version),
                  "use an IPv%d externalIP" % internal.version)
        if internal is not None and not any(internal in net for net in ip_networks):
            c.err(ck.join_path(path, "internalIP"), "%s is not one of the endpoint's ipNetworks" % ck.show(str(internal)),
                  "NAT one of the workload's own addresses, or add %s/%d to spec.ipNetworks"
                  % (internal, internal.max_prefixlen))


def _qos_controls(c: Scope, value: Any) -> None:
    f = ck.fields(c, value, "spec.qosControls", QOS_FIELDS)
    if not f:
        return
    for field, item in f.items():
        path = ck.join_path("spec.qosControls", field)
        if field == "dscp":
            # numorstring.DSCP: a number 0-255 or a string (Calico does not check the string)
            if isinstance(item, bool) or not isinstance(item, (int, str)):
                c.err(path, "expected a DSCP number or name, got %s" % ck.shown(item), "write e.g. 46 or EF")
            elif isinstance(item, int):
                ck.integer(c, item, path, 0, 255, "DSCP value")
            continue
        ck.integer(c, item, path, -(1 << 63), (1 << 63) - 1, "number")


def _workload_endpoint(c: Scope, meta: _Meta, spec: Any) -> Any:
    f = ck.fields(c, spec, "spec", WEP_FIELDS, enterprise=_ENTERPRISE_WEP)
    if f is None:
        return None
    strings = {}
    for field in ("orchestrator", "workload", "node", "pod", "endpoint", "serviceAccountName"):
        value = f.get(field)
        if value is None or value == "":
            strings[field] = ""
            continue
        strings[field] = ck.check_name(c, value, "spec." + field, "name", field)
    container = ck.string(c, f.get("containerID"), "spec.containerID")
    if container and ck.CONTAINER_ID_RE.fullmatch(container) is None:
        c.err("spec.containerID", "%s is not a container ID" % ck.show(container),
              "use letters, digits and '-', starting and ending with a letter or digit")
    mac = ck.string(c, f.get("mac"), "spec.mac")
    if mac and not ck.valid_mac(mac):
        c.err("spec.mac", "%s is not a MAC address" % ck.show(mac), "write e.g. 02:42:ac:11:00:02")
    _gateway(c, f.get("ipv4Gateway"), "spec.ipv4Gateway", 4)
    _gateway(c, f.get("ipv6Gateway"), "spec.ipv6Gateway", 6)
    iface = _interface_name(c, f.get("interfaceName"), "spec.interfaceName")
    if iface is None or iface == "":
        c.err("spec.interfaceName", "missing", "set spec.interfaceName to the workload's host-side interface, "
                                               "e.g. cali0123456789a")
    nets = ck.list_of(c, f.get("ipNetworks"), "spec.ipNetworks")
    ip_networks: List[str] = []
    parsed_networks: List[Any] = []
    if nets is not None and nets is not BAD:
        for i, item in enumerate(nets):
            path = ck.index_path("spec.ipNetworks", i)
            s = ck.string(c, item, path)
            if s is BAD or s is None:
                if s is None:
                    c.err(path, "is empty", "write the workload's address, e.g. 10.65.0.5/32")
                continue
            addr = ck.parse_ip(s)
            if addr is not None:
                net = ipaddress.ip_network(addr)
            else:
                cidr = ck.parse_cidr(s)
                if cidr is None:
                    c.err(path, "%s is not an IP network" % ck.show(s), "write the workload's address, e.g. 10.65.0.5/32")
                    continue
                if cidr[0] != cidr[1].network_address:
                    c.err(path, "%s is not a masked network" % ck.show(s),
                          "write %s/%d" % (cidr[0], cidr[0].max_prefixlen))
                    continue
                net = cidr[1]
            if net.num_addresses != 1:
                c.err(path, "%s contains more than one address" % ck.show(s),
                      "use the workload's single address, e.g. %s/%d" % (net.network_address, net.max_prefixlen))
                continue
            parsed_networks.append(net)
            if str(net) not in ip_networks:
                ip_networks.append(str(net))
    _ip_nats(c, f.get("ipNATs"), parsed_networks)
    spoof = ck.list_of(c, f.get("allowSpoofedSourcePrefixes"), "spec.allowSpoofedSourcePrefixes")
    if spoof is not None and spoof is not BAD:
        for i, item in enumerate(spoof):
            ck.loose_cidr(c, item, ck.index_path("spec.allowSpoofedSourcePrefixes", i))
    _qos_controls(c, f.get("qosControls"))
    # No CRD backs a WorkloadEndpoint: its profiles list is not a Kubernetes set, so a name may repeat
    profiles = _profile_list(c, f.get("profiles"), "spec.profiles", unique=False)
    ports = _endpoint_ports(c, f.get("ports"), "spec.ports", workload=True)
    if c.failed:
        return None
    labels = dict(meta.labels)
    labels[api.NAMESPACE_LABEL] = meta.namespace
    if strings.get("orchestrator"):
        labels["projectcalico.org/orchestrator"] = strings["orchestrator"]
    return api.WorkloadEndpoint(name=meta.name, namespace=meta.namespace, labels=labels,
                                ip_networks=tuple(ip_networks), node=strings.get("node") or "",
                                interface_name=iface or "", profiles=profiles, ports=ports, origin=c.origin)


POLICY_FIELDS = {
    api.GLOBAL_NETWORK_POLICY: frozenset(("tier", "order", "selector", "namespaceSelector", "serviceAccountSelector",
                                          "types", "ingress", "egress", "doNotTrack", "preDNAT", "applyOnForward",
                                          "performanceHints")),
    api.NETWORK_POLICY: frozenset(("tier", "order", "selector", "serviceAccountSelector", "types", "ingress",
                                   "egress", "performanceHints")),
}
POLICY_FIELDS[api.STAGED_GLOBAL_NETWORK_POLICY] = POLICY_FIELDS[api.GLOBAL_NETWORK_POLICY] | {"stagedAction"}
POLICY_FIELDS[api.STAGED_NETWORK_POLICY] = POLICY_FIELDS[api.NETWORK_POLICY] | {"stagedAction"}
STAGED_ACTIONS = ("Set", "Delete", "Learn", "Ignore")


def _types(c: Scope, value: Any, path: str) -> Any:
    items = ck.list_of(c, value, path)
    if items is None or items is BAD:
        return items
    if not items:
        return None
    out = []
    bad = False
    for i, item in enumerate(items):
        t = ck.enum(c, item, ck.index_path(path, i), (api.INGRESS, api.EGRESS), "a policy type")
        if t is BAD or t is None:
            if t is None:
                c.err(ck.index_path(path, i), "is empty", "use Ingress or Egress")
            bad = True
        elif t in out:
            c.err(ck.index_path(path, i), "%s is listed twice" % ck.show(t), "remove the duplicate")
            bad = True
        else:
            out.append(t)
    if bad:
        return BAD
    return tuple(t for t in (api.INGRESS, api.EGRESS) if t in out)


def _policy(c: Scope, kind: str, meta: _Meta, spec: Any, warnings: List[str]) -> Any:
    f = ck.fields(c, spec, "spec", POLICY_FIELDS[kind])
    if f is None:
        return None
    is_global = kind in (api.GLOBAL_NETWORK_POLICY, api.STAGED_GLOBAL_NETWORK_POLICY)
    staged = kind in (api.STAGED_GLOBAL_NETWORK_POLICY, api.STAGED_NETWORK_POLICY)
    tier = f.get("tier")
    if tier is None or tier == "":
        tier = api.DEFAULT_TIER
    else:
        tier = ck.check_name(c, tier, "spec.tier", "tier", "tier name")
    order = ck.order(c, f.get("order"), "spec.order")
    sel = _selector(c, f.get("selector"), "spec.selector")
    if sel is not None and sel is not BAD and sel.is_all:
        sel = None  # the policy selector all() is the same as no selector (api: None = all())
    ns_sel = _selector(c, f.get("namespaceSelector"), "spec.namespaceSelector") if is_global else None
    sa_sel = _selector(c, f.get("serviceAccountSelector"), "spec.serviceAccountSelector")
    types = _types(c, f.get("types"), "spec.types")
    ingress = _rules(c, f.get("ingress"), "spec.ingress")
    egress = _rules(c, f.get("egress"), "spec.egress")
    flags = {}
    for field in ("doNotTrack", "preDNAT", "applyOnForward"):
        flags[field] = ck.boolean(c, f.get(field), "spec." + field) if is_global else None
    hints = ck.string_set(c, f.get("performanceHints"), "spec.performanceHints")
    if hints is not None and hints is not BAD:
        for i, hint in enumerate(hints):
            if hint != "AssumeNeededOnEveryNode":
                c.err(ck.index_path("spec.performanceHints", i), "%s is not a performance hint" % ck.show(hint),
                      "use AssumeNeededOnEveryNode")
    staged_action = None
    if staged:
        # "" is unset: the Go field is a plain string with omitempty, and the CRD defaults it to Set
        raw_action = f.get("stagedAction")
        staged_action = ck.enum(c, None if raw_action == "" else raw_action, "spec.stagedAction", STAGED_ACTIONS,
                                "a staged action")
        if staged_action is None:
            staged_action = "Set"

    dnt, pre_dnat, aof = flags["doNotTrack"] is True, flags["preDNAT"] is True, flags["applyOnForward"] is True
    if dnt and pre_dnat:
        c.err("spec.preDNAT", "preDNAT and doNotTrack cannot both be true", "choose one of them")
    if pre_dnat and egress is not BAD and egress:
        c.err("spec.egress", "a preDNAT policy cannot have egress rules",
              "remove the egress rules: pre-DNAT policy applies to ingress only")
    if pre_dnat and types is not BAD and types and api.EGRESS in types:
        c.err("spec.types", "a preDNAT policy cannot have type Egress", "use types: [Ingress]")
    if (dnt or pre_dnat) and not aof and flags["applyOnForward"] is not BAD:
        c.err("spec.applyOnForward", "must be true for a %s policy" % ("preDNAT" if pre_dnat else "doNotTrack"),
              "set applyOnForward: true")

    if staged_action == "Delete":
        for field in sorted(f):
            if field in ("tier", "stagedAction"):
                continue
            value = f[field]
            empty = (ck.is_map(value) or isinstance(value, (list, tuple))) and not value
            if value is None or value is False or value == "" or empty:
                continue
            c.err("spec." + field, "must be empty when stagedAction is Delete",
                  "remove %s, or use stagedAction: Set" % field)
    if c.failed:
        return None

    if types is None:
        types = (api.INGRESS, api.EGRESS) if ingress and egress else (
            (api.EGRESS,) if egress else (api.INGRESS,))
    labels = dict(meta.labels)
    labels["projectcalico.org/tier"] = tier
    policy = api.Policy(kind=kind, name=meta.name, namespace=meta.namespace, tier=tier, order=order,
                        selector=sel, namespace_selector=ns_sel, service_account_selector=sa_sel, types=types,
                        ingress=ingress, egress=egress, do_not_track=dnt, pre_dnat=pre_dnat,
                        apply_on_forward=aof, staged_action=staged_action, labels=tuple(sorted(labels.items())),
                        origin=c.origin)
    who = "%s %s" % (kind, meta.name if meta.namespace is None else "%s/%s" % (meta.namespace, meta.name))
    if not is_global:
        warnings.append("%s: a namespaced policy selects only workload endpoints in its namespace and never "
                        "applies to a host endpoint; hostfw validates it and uses it for nothing else" % who)
    elif ns_sel is not None or sa_sel is not None:
        field = "namespaceSelector" if ns_sel is not None else "serviceAccountSelector"
        warnings.append("%s: spec.%s restricts the policy to workload endpoints, so it never applies to a host "
                        "endpoint; hostfw accepts it and enforces nothing for it" % (who, field))
    return policy


def _tier(c: Scope, meta: _Meta, spec: Any) -> Any:
    f = ck.fields(c, spec, "spec", ("order", "defaultAction"))
    if f is None:
        return None
    order = ck.order(c, f.get("order"), "spec.order")
    action = ck.enum(c, f.get("defaultAction"), "spec.defaultAction", ("Deny", "Pass"), "a tier default action")
    builtin = BUILTIN_TIERS.get(meta.name)
    if builtin is not None and not c.failed:
        # The CEL rules of the Tier CRD (tier.go): a built-in tier's order must be set to its value;
        # its defaultAction must be its value after defaulting (an unset defaultAction is Deny).
        want_order, want_action = builtin
        if order is None:
            c.err("spec.order", "missing: the built-in tier %s has order %d" % (meta.name, want_order),
                  "set order: %d, or remove the Tier document" % want_order)
        elif order != want_order:
            c.err("spec.order", "the built-in tier %s has order %d" % (meta.name, want_order),
                  "set order: %d, or remove the Tier document" % want_order)
        if action is None and want_action != "Deny":
            c.err("spec.defaultAction", "missing: the built-in tier %s has defaultAction %s, and an unset "
                  "defaultAction is Deny" % (meta.name, want_action),
                  "set defaultAction: %s, or remove the Tier document" % want_action)
        elif action is not None and action != want_action:
            c.err("spec.defaultAction", "the built-in tier %s has defaultAction %s" % (meta.name, want_action),
                  "set defaultAction: %s, or remove the Tier document" % want_action)
        order = want_order
        action = want_action
    if c.failed:
        return None
    return api.Tier(name=meta.name, order=order, default_action=action or "Deny", builtin=builtin is not None,
                    origin=c.origin)


def _network_set(c: Scope, kind: str, meta: _Meta, spec: Any) -> Any:
    f = ck.fields(c, spec, "spec", ("nets",), enterprise=_ENTERPRISE_NETWORK_SET)
    if f is None:
        return None
    items = ck.list_of(c, f.get("nets"), "spec.nets")
    nets: List[str] = []
    if items is not None and items is not BAD:
        seen_raw = set()
        for i, item in enumerate(items):
            if isinstance(item, str):
                if item in seen_raw:
                    c.err(ck.index_path("spec.nets", i), "%s is listed twice" % ck.show(item), "remove the duplicate")
                    continue
                seen_raw.add(item)
            net = ck.loose_cidr(c, item, ck.index_path("spec.nets", i))
            if net is not BAD and net not in nets:
                nets.append(net)
    if api.NAMESPACE_LABEL in meta.labels:
        c.err("metadata.labels", "%s is reserved" % ck.show(api.NAMESPACE_LABEL),
              "remove it: Calico sets it from the namespace of namespaced objects")
    if c.failed:
        return None
    labels = dict(meta.labels)
    if meta.namespace is not None:
        labels[api.NAMESPACE_LABEL] = meta.namespace
    return api.NetworkSet(kind=kind, name=meta.name, namespace=meta.namespace, labels=labels, nets=tuple(nets),
                          origin=c.origin)


def _profile(c: Scope, meta: _Meta, spec: Any) -> Any:
    f = ck.fields(c, spec, "spec", ("ingress", "egress", "labelsToApply"))
    if f is None:
        return None
    ingress = _rules(c, f.get("ingress"), "spec.ingress")
    egress = _rules(c, f.get("egress"), "spec.egress")
    labels = ck.labels(c, f.get("labelsToApply"), "spec.labelsToApply")
    if c.failed:
        return None
    return api.Profile(name=meta.name, ingress=ingress, egress=egress, labels_to_apply=labels, origin=c.origin)


# ----------------------------------------------------------------------------------------------
# Documents
# ----------------------------------------------------------------------------------------------

def flatten_lists(doc: Any, origin: str) -> Iterator[Tuple[Any, str]]:
    """Yield the documents of ``doc``: the items of a ``kind: List`` / ``*List`` document (as
    ``calicoctl get -o yaml`` prints), recursively, with origins ``<origin> items[<i>]``;
    any other document as it is."""
    if (ck.is_map(doc) and isinstance(doc.get("kind"), str) and doc["kind"].endswith("List")
            and "items" in doc):
        items = doc.get("items")
        if items is None:
            return
        if isinstance(items, (list, tuple)):
            for i, item in enumerate(items):
                yield from flatten_lists(item, "%s items[%d]" % (origin, i))
            return
    yield doc, origin


def _problem_name(doc: Mapping) -> str:
    """The name shown in messages: ``name``, or ``namespace/name`` for namespaced kinds."""
    meta = doc.get("metadata")
    if ck.is_map(meta):
        name = meta.get("name")
        ns = meta.get("namespace")
        if isinstance(name, str) and name:
            kind = doc.get("kind")
            if isinstance(kind, str) and kind in NAMESPACED_KINDS:
                return "%s/%s" % (ns if isinstance(ns, str) and ns else "default", name)
            return name
    return ""


_NAME_RULE_OF_KIND = {api.TIER: "tier", api.GLOBAL_NETWORK_POLICY: "gnp", api.STAGED_GLOBAL_NETWORK_POLICY: "gnp",
                      api.NETWORK_POLICY: "np", api.STAGED_NETWORK_POLICY: "np"}


def _document(sink: errors.Collector, warnings: List[str], doc: Any, origin: str) -> Any:
    """Validate one document; returns (kind, key, object) or None."""
    if not ck.is_map(doc):
        sink.add("Document", "", "", "expected a mapping with apiVersion, kind, metadata and spec, got %s "
                 "(check the indentation: each document must be one mapping)" % ck.tname(doc), origin)
        return None
    kind = doc.get("kind")
    name_for_problem = _problem_name(doc)
    if not isinstance(kind, str) or kind not in KINDS:
        c = sink.scope(kind if isinstance(kind, str) and kind else "Document", name_for_problem, origin)
        if kind is None or kind == "":
            c.err("kind", "missing", "set kind to one of: %s" % ", ".join(KINDS))
        elif not isinstance(kind, str):
            c.err("kind", "expected a string, got %s" % ck.tname(kind), "set kind to one of: %s" % ", ".join(KINDS))
        elif kind in IGNORED_KINDS and doc.get("apiVersion") == API_VERSION:
            warnings.append("%s %s: ignored: hostfw does not use %s resources (%s)"
                            % (kind, name_for_problem or "<unnamed>", kind, origin))
        else:
            close = ck.closest(kind, KINDS)
            c.err("kind", "hostfw does not know the kind %s" % ck.show(kind),
                  "did you mean %s?" % close if close else "use one of: %s" % ", ".join(KINDS))
        return None
    c = sink.scope(kind, name_for_problem, origin)
    api_version = doc.get("apiVersion")
    if api_version != API_VERSION:
        if api_version is None:
            c.err("apiVersion", "missing", "set apiVersion: %s" % API_VERSION)
        elif api_version == "crd.projectcalico.org/v1":
            c.err("apiVersion", "'crd.projectcalico.org/v1' is Calico's internal storage format",
                  "use apiVersion: %s, as calicoctl prints it" % API_VERSION)
        else:
            c.err("apiVersion", "%s is not supported" % ck.show(api_version), "use apiVersion: %s" % API_VERSION)
    # A Tier has a status (tier.go TierStatus: conditions the tier controller writes); it is read-only
    # and ignored.  No other kind hostfw reads has one.
    top = ck.fields(c, doc, "", ("apiVersion", "kind", "metadata", "spec", "status") if kind == api.TIER
                    else ("apiVersion", "kind", "metadata", "spec"))
    if top is None:
        return None
    if top.get("status") is not None and not ck.is_map(top["status"]):
        c.err("status", "expected a mapping, got %s" % ck.tname(top["status"]),
              "remove status: the tier controller writes it")
    meta_raw = ck.fields(c, top.get("metadata"), "metadata", META_FIELDS)
    if meta_raw is None:
        return None
    namespaced = kind in NAMESPACED_KINDS
    rule = _NAME_RULE_OF_KIND.get(kind, "subdomain")
    name = ck.check_name(c, meta_raw.get("name"), "metadata.name", rule, "tier name" if rule == "tier" else "name")
    namespace = None
    if namespaced:
        ns = meta_raw.get("namespace")
        if ns is None or ns == "":
            namespace = "default"
        else:
            namespace = ck.check_name(c, ns, "metadata.namespace", "namespace", "namespace")
    elif meta_raw.get("namespace") not in (None, ""):
        c.err("metadata.namespace", "%s is cluster-wide and has no namespace" % kind, "remove metadata.namespace")
    labels = ck.labels(c, meta_raw.get("labels"), "metadata.labels")
    annotations = ck.annotations(c, meta_raw.get("annotations"), "metadata.annotations")
    if BAD in (name, namespace, labels, annotations):
        # Validate the spec anyway so that every problem of the document is reported at once.
        labels = labels if isinstance(labels, dict) else {}
    meta = _Meta(name, namespace, labels, annotations)
    spec = top.get("spec")
    if kind == api.HOST_ENDPOINT:
        obj = _host_endpoint(c, meta, spec)
        key = name
    elif kind in POLICY_KINDS:
        obj = _policy(c, kind, meta, spec, warnings)
        key = (kind, namespace, name)
    elif kind == api.TIER:
        obj = _tier(c, meta, spec)
        key = name
    elif kind in (api.GLOBAL_NETWORK_SET, api.NETWORK_SET):
        obj = _network_set(c, kind, meta, spec)
        key = (kind, namespace, name)
    elif kind == api.WORKLOAD_ENDPOINT:
        obj = _workload_endpoint(c, meta, spec)
        key = (namespace, name)
    elif kind == api.PROFILE:
        obj = _profile(c, meta, spec)
        key = name
    else:
        obj = felix.felix_configuration(c, name, meta_raw.get("creationTimestamp"), spec)
        key = name
        if (obj is not None and name != "default" and not name.startswith("node.")
                and obj.node_selector is None):
            warnings.append("FelixConfiguration %s: ignored: Felix reads only the 'default' and 'node.<node name>' "
                            "configurations and those with a spec.nodeSelector" % name)
    if c.failed or obj is None:
        return None
    return kind, key, obj


def builtin_tiers() -> Dict[str, api.Tier]:
    return {name: api.Tier(name=name, order=order, default_action=action, builtin=True)
            for name, (order, action) in BUILTIN_TIERS.items()}


def builtin_profiles() -> Dict[str, api.Profile]:
    return {api.DEFAULT_ALLOW_PROFILE: api.Profile(name=api.DEFAULT_ALLOW_PROFILE, ingress=(api.Rule("Allow"),),
                                                   egress=(api.Rule("Allow"),), builtin=True)}


_SECTIONS = {
    api.HOST_ENDPOINT: "host_endpoints", api.TIER: "tiers", api.GLOBAL_NETWORK_SET: "network_sets",
    api.NETWORK_SET: "network_sets", api.WORKLOAD_ENDPOINT: "workload_endpoints", api.PROFILE: "profiles",
    api.FELIX_CONFIGURATION: "felix_configurations",
}


def _content(obj: Any) -> Any:
    return dataclasses.replace(obj, origin=None)


def _display(kind: str, key: Any) -> str:
    if isinstance(key, tuple):
        ns, name = key[-2], key[-1]
        return "%s/%s" % (ns, name) if ns else name
    return key


def validate_documents(documents: Iterable[Tuple[Any, str]],
                       collector: Optional[errors.Collector] = None) -> api.World:
    """Validate ``documents`` into a World, adding every problem to ``collector`` (never raises
    for bad input).  The World holds every valid object; it is complete only when no problem was
    added."""
    collector = collector if collector is not None else errors.Collector()
    sink = errors.Collector()
    world = api.World()
    world.tiers.update(builtin_tiers())
    world.profiles.update(builtin_profiles())
    builtin_keys = {(api.TIER, name) for name in world.tiers} | {(api.PROFILE, name) for name in world.profiles}
    seen_user: Dict[Tuple[str, Any], str] = {}
    for raw, raw_origin in documents:
        for doc, origin in flatten_lists(raw, raw_origin):
            before = len(sink.problems)
            try:
                result = _document(sink, world.warnings, doc, origin)
            except Exception as exc:  # never a traceback for bad input; the fuzz tests keep this unused
                del sink.problems[before:]
                try:
                    name = _problem_name(doc) if ck.is_map(doc) else ""
                    kind = doc.get("kind") if ck.is_map(doc) and isinstance(doc.get("kind"), str) else "Document"
                except Exception:
                    name, kind = "", "Document"
                sink.add(kind, name, "", "hostfw could not validate this document: internal error %s: %s (please "
                         "report this as a hostfw bug)" % (type(exc).__name__, exc), origin)
                continue
            if result is None:
                continue
            kind, key, obj = result
            section = getattr(world, "policies" if kind in POLICY_KINDS else _SECTIONS[kind])
            existing = section.get(key)
            if (kind, key) in builtin_keys and (kind, key) not in seen_user:
                if kind == api.PROFILE and dataclasses.replace(obj, origin=None, builtin=True) != existing:
                    sink.add(kind, key, "spec", "the built-in profile %s is one Allow ingress rule and one Allow "
                             "egress rule and cannot be changed (remove this document, or give your profile another "
                             "name)" % key, origin)
                    continue
                seen_user[(kind, key)] = origin
                continue  # identical to the built-in (tiers were checked against it already)
            if existing is not None:
                if _content(existing) == _content(obj):
                    continue  # an identical copy: merged silently
                sink.add(kind, _display(kind, key), "metadata.name", "defined twice with different content, in %s "
                         "and %s (keep one definition, or rename one of them)"
                         % (existing.origin or seen_user.get((kind, key)), origin), origin)
                continue
            section[key] = obj
            seen_user[(kind, key)] = origin

    # Cross-resource checks.
    for policy in world.policies.values():
        if policy.tier not in world.tiers:
            close = ck.closest(policy.tier, world.tiers)
            fix = ("did you mean %s?" % close) if close else "add a Tier document named %s" % policy.tier
            sink.add(policy.kind, _display(policy.kind, (policy.namespace, policy.name)), "spec.tier",
                     "the tier %s does not exist (%s)" % (ck.show(policy.tier), fix), policy.origin)
    endpoints: List[Any] = list(world.host_endpoints.values()) + list(world.workload_endpoints.values())
    for ep in endpoints:
        for i, name in enumerate(ep.profiles):
            if name not in world.profiles:
                close = ck.closest(name, world.profiles)
                fix = ("did you mean %s?" % close) if close else \
                    "add the Profile document, e.g. from 'calicoctl get profile %s -o yaml', or remove the reference" \
                    % name
                kind = api.HOST_ENDPOINT if isinstance(ep, api.HostEndpoint) else api.WORKLOAD_ENDPOINT
                who = ep.name if kind == api.HOST_ENDPOINT else "%s/%s" % (ep.namespace, ep.name)
                sink.add(kind, who, "spec.profiles[%d]" % i, "the profile %s does not exist (%s)"
                         % (ck.show(name), fix), ep.origin)
    seen = set()
    for p in sink.problems:
        ident = (p.kind, p.name, p.path, p.message)
        if ident not in seen:
            seen.add(ident)
            collector.problems.append(p)
    return world


def build_world(documents: Iterable[Tuple[Any, str]]) -> api.World:
    """Validate every ``(document, origin)`` pair and build the World.

    Raises :class:`~errors.HostfwError` with every problem of every document when any is invalid.
    ``kind: List`` and ``*List`` documents are flattened.  Built-in tiers (``default``,
    ``kube-admin``, ``kube-baseline``) and the ``projectcalico-default-allow`` profile are always
    present; warnings (e.g. namespaced policies that never apply to hosts) are in
    ``world.warnings``."""
    collector = errors.Collector()
    world = validate_documents(documents, collector)
    collector.raise_if_any()
    return world
