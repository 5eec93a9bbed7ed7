# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""FelixConfiguration: every setting declared once.

:data:`SETTINGS` is the one table of the settings hostfw uses: Calico's field name, the attribute
of :class:`FelixConfig`, the default, the parser (which validates as Calico does and converts),
and whether the value changes the text of rendered policy rules.  From it are derived

* :class:`FelixConfig`, the typed configuration of one node (a frozen dataclass);
* the parser of a ``FelixConfiguration`` document (:func:`felix_configuration`);
* :func:`rule_text_key`, the part of a node's settings that every shared render cache keys on.

Every other field of ``FelixConfigurationSpec`` is validated against Calico's own CRD schema
(:mod:`felix_schema`, generated from ``api/config/crd/projectcalico.org_felixconfigurations.yaml``)
plus the checks Calico's Go validator and CEL rules add, and then ignored: it does not change
host-endpoint policy.  So ``calicoctl`` and hostfw refuse the same values, used or not.

Adding a setting is one row in :data:`SETTINGS` plus its use in the renderer or the evaluator.

Which configuration applies to a node (:func:`for_node`) follows Felix's config loading
(``felix/daemon/daemon.go`` ``loadConfigFromDatastore``): the defaults, then the ``default``
resource, then the one selector-scoped resource whose ``nodeSelector`` matches the node's labels
(the oldest by ``metadata.creationTimestamp`` when several match, then by name), then
``node.<node name>``.  This module imports nothing from Ansible.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import re
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from ansible_collections.hostfw.nftables.plugins.plugin_utils import api, checks, felix_schema, selector
from ansible_collections.hostfw.nftables.plugins.plugin_utils.checks import BAD
from ansible_collections.hostfw.nftables.plugins.plugin_utils.errors import Scope

__all__ = ["Setting", "SETTINGS", "FelixConfig", "DEFAULT_FAILSAFE_INBOUND", "DEFAULT_FAILSAFE_OUTBOUND",
           "FELIX_FAILSAFE_INBOUND", "FELIX_FAILSAFE_OUTBOUND", "felix_configuration", "for_node", "applicable",
           "rule_text_key", "parse_failsafe_string", "parse_failsafes"]


def _entries(spec: str) -> Tuple[api.FailsafeEntry, ...]:
    return tuple(api.FailsafeEntry(proto, int(port)) for proto, port in (item.split(":") for item in spec.split(",")))


# The "Protect hosts" page's lists, hostfw's defaults.  Felix's compiled-in lists (felix/config/
# config_params.go) also have tcp:5473 (Typha); FELIX_FAILSAFE_* are those, for reference and for
# the documented one-line way to get them.
DEFAULT_FAILSAFE_INBOUND = _entries("tcp:22,udp:68,tcp:179,tcp:2379,tcp:2380,tcp:6443,tcp:6666,tcp:6667")
DEFAULT_FAILSAFE_OUTBOUND = _entries("udp:53,udp:67,tcp:179,tcp:2379,tcp:2380,tcp:6443,tcp:6666,tcp:6667")
FELIX_FAILSAFE_INBOUND = _entries("tcp:22,udp:68,tcp:179,tcp:2379,tcp:2380,tcp:5473,tcp:6443,tcp:6666,tcp:6667")
FELIX_FAILSAFE_OUTBOUND = _entries("udp:53,udp:67,tcp:179,tcp:2379,tcp:2380,tcp:5473,tcp:6443,tcp:6666,tcp:6667")

# hostfw_failsafe_defaults: which lists a node starts from before its FelixConfigurations.
FAILSAFE_DEFAULTS = {
    "protect-hosts": (DEFAULT_FAILSAFE_INBOUND, DEFAULT_FAILSAFE_OUTBOUND),
    "felix": (FELIX_FAILSAFE_INBOUND, FELIX_FAILSAFE_OUTBOUND),
}

Parser = Callable[[Scope, Any, str], Any]


@dataclass(frozen=True)
class Setting:
    """One FelixConfiguration setting that hostfw uses.

    ``parse(scope, value, path)`` validates the raw value as Calico does and returns the typed
    value, ``None`` for "not set" (Calico treats an empty value as unset), or ``BAD`` after
    reporting.  Several fields may feed one attribute (``nftablesFilterDenyAction`` and
    ``iptablesFilterDenyAction``): within one resource the first of them in the table wins.
    ``rule_text``: the value changes the text of rendered policy rules, so hosts whose value
    differs must not share rendered rules."""

    field: str
    attr: str
    default: Any
    parse: Parser
    rule_text: bool = False


# ----------------------------------------------------------------------------------------------
# Parsers of the settings hostfw uses
# ----------------------------------------------------------------------------------------------

def _choice(what: str, *choices: str) -> Parser:
    """A case-insensitive choice (Felix's ``oneof(...)``) named ``what`` in messages, "" = unset."""

    def parse(c: Scope, value: Any, path: str) -> Any:
        if value == "":
            return None
        return checks.enum(c, value, path, choices, what, ignore_case=True)

    return parse


def _boolean(c: Scope, value: Any, path: str) -> Any:
    return checks.boolean(c, value, path)


def _interface_list(allow_regex: bool) -> Parser:
    """Felix's comma-separated interface list (``iface-list``); with ``allow_regex`` items may be
    ``/regex/`` (``iface-list-regexp``).  "" = unset."""

    def parse(c: Scope, value: Any, path: str) -> Any:
        s = checks.string(c, value, path)
        if s is BAD:
            return BAD
        if s is None or s.strip() == "":
            return None
        out = []
        bad = False
        for item in s.split(","):
            item = item.strip()
            if not item:
                continue
            if allow_regex and len(item) >= 2 and item.startswith("/") and item.endswith("/"):
                problem = regexp_problem(item[1:-1])
                if problem:
                    c.err(path, "%s is not a valid regular expression: %s" % (checks.show(item), problem),
                          "fix the expression between the slashes")
                    bad = True
                    continue
            elif checks.INTERFACE_RE.fullmatch(item) is None:
                c.err(path, "%s is not an interface name%s" % (checks.show(item), " or /regex/" if allow_regex else ""),
                      "use 1-15 letters, digits, '_', '.' and '-'%s" % (", or /regex/" if allow_regex else ""))
                bad = True
                continue
            out.append(item)
        return BAD if bad else tuple(out)

    return parse


_LOG_PREFIX_RE = re.compile(r"[a-zA-Z0-9%: /_-]*")
_RATE_RE = re.compile(r"[1-9][0-9]{0,3}/(second|minute|hour|day)")


def _log_prefix(c: Scope, value: Any, path: str) -> Any:
    s = checks.string(c, value, path)
    if not isinstance(s, str):
        return s
    if s == "":
        return None
    if _LOG_PREFIX_RE.fullmatch(s) is None:
        c.err(path, "%s contains characters a log prefix may not have" % checks.show(s),
              "use letters, digits, spaces and % : / _ -")
        return BAD
    return s


def _rate(c: Scope, value: Any, path: str) -> Any:
    # LogActionRateLimit is a *string: "" is a value, and the CRD pattern refuses it
    s = checks.string(c, value, path)
    if not isinstance(s, str):
        return s
    if _RATE_RE.fullmatch(s) is None:
        c.err(path, "%s is not a rate" % checks.show(s),
              "write N/unit with N 1-9999 and unit second, minute, hour or day, e.g. 10/second")
        return BAD
    return s


def _burst(c: Scope, value: Any, path: str) -> Any:
    return checks.integer(c, value, path, 0, 9999, "burst")


_FAILSAFE_ENV_FIX = "write entries as 'tcp:22', 'udp:68', 'tcp:10.0.0.0/8:22' or 'tcp:[fd00::/8]:22', " \
                    "or 'none'"


def parse_failsafe_string(text: str) -> Tuple[Optional[Tuple[api.FailsafeEntry, ...]], List[Tuple[str, str]]]:
    """Felix's environment/config-file failsafe format (``"tcp:22,udp:68"``, ``none``).

    Returns (entries or None for "use the default", [(what is wrong, fix), ...])."""
    if text.strip() == "":
        return None, []
    if text.strip().lower() == "none":
        return (), []
    entries: List[api.FailsafeEntry] = []
    problems: List[Tuple[str, str]] = []
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        m = re.fullmatch(r"([^:\[\]]+):\[([^\]]*)\]:([^:]*)", item)
        if m:
            proto, net_text, port_text = m.group(1), m.group(2), m.group(3)
        else:
            parts = item.split(":")
            if len(parts) == 1:
                proto, net_text, port_text = "tcp", None, parts[0]
            elif len(parts) == 2:
                proto, net_text, port_text = parts[0], None, parts[1]
            elif len(parts) == 3:
                proto, net_text, port_text = parts
            else:
                problems.append(("%s is not a failsafe entry" % checks.show(item), _FAILSAFE_ENV_FIX))
                continue
        if proto.lower() not in ("tcp", "udp"):
            problems.append(("%s is not a failsafe entry: the protocol must be tcp or udp" % checks.show(item),
                             "use tcp:%s or udp:%s" % (port_text, port_text) if checks.DIGITS_RE.fullmatch(port_text)
                             else "use tcp or udp"))
            continue
        if not checks.DIGITS_RE.fullmatch(port_text) or checks.to_int(port_text) > 65535:
            problems.append(("%s is not a failsafe entry: %s is not a port" % (checks.show(item),
                                                                               checks.show(port_text)),
                             "use a port number 0-65535"))
            continue
        net = None
        if net_text is not None:
            addr = checks.parse_ip(net_text)
            cidr = checks.parse_cidr(net_text)
            if addr is None and cidr is None:
                problems.append(("%s is not a failsafe entry: %s is not a CIDR" % (checks.show(item),
                                                                                   checks.show(net_text)),
                                 "write e.g. tcp:10.0.0.0/8:22"))
                continue
            net = str(ipaddress.ip_network(addr)) if addr is not None else str(cidr[1])
        entries.append(api.FailsafeEntry(proto.lower(), checks.to_int(port_text), net))
    return tuple(entries), problems


def parse_failsafes(c: Scope, value: Any, path: str) -> Any:
    """A failsafe list: Calico's resource form (a list of {protocol, port, net}) or Felix's
    string form (``"tcp:22,udp:68"``, ``none``)."""
    if value is None:
        return None
    if isinstance(value, str):
        entries, problems = parse_failsafe_string(value)
        for what, fix in problems:
            c.err(path, what, fix)
        return BAD if problems else entries
    items = checks.list_of(c, value, path)
    if items is BAD:
        return BAD
    out = []
    bad = False
    for i, item in enumerate(items):
        ipath = checks.index_path(path, i)
        f = checks.fields(c, item, ipath, ("protocol", "port", "net"))
        if f is None:
            bad = True
            continue
        proto = f.get("protocol")
        if proto is None or proto == "":
            proto = "TCP"
        proto = checks.string(c, proto, checks.join_path(ipath, "protocol"))
        # The resource's protocol reaches Felix lower-cased (libcalico-go felixconfigprocessor.go
        # protoPortSliceToString), so any case of TCP and UDP works; no validator checks it.
        if proto is BAD:
            bad = True
        elif proto.upper() == "SCTP":
            c.err(checks.join_path(ipath, "protocol"), "%s passes Calico's API validation but Felix then fails "
                                                       "to start with it" % checks.show(proto), "use TCP or UDP")
            bad = True
        elif proto.upper() not in ("TCP", "UDP"):
            c.err(checks.join_path(ipath, "protocol"), "%s is not a failsafe protocol" % checks.show(proto),
                  "use TCP or UDP")
            bad = True
        port = f.get("port")
        if port is None:
            port = 0
        port = checks.integer(c, port, checks.join_path(ipath, "port"), 0, 65535, "port")
        net = f.get("net")
        if net is not None and net != "":
            net = checks.loose_cidr(c, net, checks.join_path(ipath, "net"))
        else:
            net = None
        if BAD in (port, net) or bad:
            bad = True
            continue
        out.append(api.FailsafeEntry(proto.lower(), port, net))
    return BAD if bad else tuple(out)


# ----------------------------------------------------------------------------------------------
# The table
# ----------------------------------------------------------------------------------------------

SETTINGS: Tuple[Setting, ...] = (
    Setting("failsafeInboundHostPorts", "failsafe_inbound", DEFAULT_FAILSAFE_INBOUND, parse_failsafes),
    Setting("failsafeOutboundHostPorts", "failsafe_outbound", DEFAULT_FAILSAFE_OUTBOUND, parse_failsafes),
    Setting("defaultEndpointToHostAction", "default_endpoint_to_host_action", "Drop",
            _choice("an endpoint-to-host action", "Drop", "Accept", "Return")),
    Setting("interfacePrefix", "interface_prefixes", ("cali",), _interface_list(allow_regex=False)),
    Setting("interfaceExclude", "interface_exclude", ("kube-ipvs0",), _interface_list(allow_regex=True)),
    Setting("disableConntrackInvalidCheck", "disable_conntrack_invalid_check", False, _boolean),
    Setting("logPrefix", "log_prefix", "calico-packet", _log_prefix, rule_text=True),
    Setting("logActionRateLimit", "log_action_rate_limit", None, _rate, rule_text=True),
    Setting("logActionRateLimitBurst", "log_action_rate_limit_burst", None, _burst, rule_text=True),
    # Felix in nftables mode uses nftablesFilterDenyAction; hostfw also honours the iptables one.
    Setting("nftablesFilterDenyAction", "deny_action", "Drop", _choice("a deny action", "Drop", "Reject"), rule_text=True),
    Setting("iptablesFilterDenyAction", "deny_action", "Drop", _choice("a deny action", "Drop", "Reject"), rule_text=True),
)

_BY_FIELD: Dict[str, Setting] = {s.field: s for s in SETTINGS}
_ATTRS: Tuple[str, ...] = tuple(dict.fromkeys(s.attr for s in SETTINGS))
_RULE_TEXT_ATTRS: Tuple[str, ...] = tuple(dict.fromkeys(s.attr for s in SETTINGS if s.rule_text))


def _make_config_class():
    fields = []
    for attr in _ATTRS:
        default = next(s.default for s in SETTINGS if s.attr == attr)
        fields.append((attr, Any, dataclasses.field(default=default)))  # pylint: disable=invalid-field-call
    cls = dataclasses.make_dataclass("FelixConfig", fields, frozen=True)
    cls.__module__ = __name__
    cls.__doc__ = ("The FelixConfiguration values of one node that matter for host protection: every "
                   "attribute of felix.SETTINGS, after merging the applicable resources (felix.for_node).")
    return cls


FelixConfig = _make_config_class()


def rule_text_key(config: Any) -> Tuple:
    """The settings that change the text of rendered policy and profile rules (Log and Deny
    verdicts): part of every shared render-cache key."""
    return tuple(getattr(config, attr) for attr in _RULE_TEXT_ATTRS)


# ----------------------------------------------------------------------------------------------
# Calico's schema for every other field
# ----------------------------------------------------------------------------------------------

_PATTERNS: Dict[str, Any] = {}


def _go_pattern(pattern: str):
    """A Go (RE2) pattern of the CRD as a Python regex: ``(?i)`` may sit after ``^`` in Go; ``$``
    matches only at the very end (Python's also matches before a final newline) and ``\\d`` only
    ASCII digits."""
    hit = _PATTERNS.get(pattern)
    if hit is None:
        flags = re.ASCII
        text = pattern
        if "(?i)" in text:
            flags |= re.IGNORECASE
            text = text.replace("(?i)", "")
        text = re.sub(r"(?<!\\)\$", r"\\Z", text)
        hit = re.compile(text, flags)
        _PATTERNS[pattern] = hit
    return hit


_DURATION_HINT = "write a duration such as 90s, 500ms, 10m or 1h"


def _pattern_fix(pattern: str) -> str:
    if "ms|s" in pattern or "(ms|s|m|h)" in pattern:
        return _DURATION_HINT + (", or Auto" if "Auto" in pattern else "")
    return "write a value matching Calico's pattern %s" % pattern


def schema_check(c: Scope, value: Any, schema: Mapping[str, Any], path: str) -> bool:
    """Validate ``value`` against one compact CRD schema (:mod:`felix_schema`).  Reports every
    problem; returns True when the value is valid."""
    kind = schema.get("type")
    ok = True
    if kind == "boolean":
        return checks.boolean(c, value, path) is not BAD
    if kind == "integer":
        low = schema.get("minimum", -(2 ** 63))
        high = schema.get("maximum", 2 ** 63 - 1)
        return checks.integer(c, value, path, low, high, "value") is not BAD
    if kind == "int-or-string":
        if checks.as_int(value) is None and not isinstance(value, str):
            c.err(path, "expected a number or a string, got %s" % checks.shown(value), "write a number or a string")
            return False
        return True
    if kind == "string":
        s = checks.string(c, value, path)
        if s is BAD:
            return False
        if "enum" in schema and s not in schema["enum"]:
            choices = [str(e) for e in schema["enum"]]
            close = checks.closest(s, choices)
            fix = "use %s" % close if close and close.lower() == s.lower() else "use %s" % checks.one_of(choices)
            c.err(path, "%s is not one of Calico's values for this field" % checks.show(s), fix)
            ok = False
        if "maxLength" in schema and len(s) > schema["maxLength"]:
            c.err(path, "is %d characters long" % len(s), "use at most %d" % schema["maxLength"])
            ok = False
        if ok and "pattern" in schema and not _go_pattern(schema["pattern"]).search(s):
            c.err(path, "%s is not a valid value" % checks.show(s), _pattern_fix(schema["pattern"]))
            ok = False
        return ok
    if kind == "array":
        items = checks.list_of(c, value, path, schema.get("maxItems"), "items")
        if items is BAD:
            return False
        for i, item in enumerate(items):
            ok = schema_check(c, item, schema.get("items", {}), checks.index_path(path, i)) and ok
        return ok
    if kind == "object":
        if "properties" in schema:
            f = checks.fields(c, value, path, schema["properties"])
            if f is None:
                return False
            for name in schema.get("required", ()):
                if f.get(name) is None:
                    c.err(checks.join_path(path, name), "missing", "set %s" % checks.join_path(path, name))
                    ok = False
            for name, item in f.items():
                if item is not None:
                    ok = schema_check(c, item, schema["properties"][name], checks.join_path(path, name)) and ok
            return ok
        if not checks.is_map(value):
            c.err(path, "expected a mapping, got %s" % checks.tname(value), "write a mapping of names to values")
            return False
        inner = schema.get("additionalProperties")
        if inner is not None:
            for key, item in value.items():
                ok = schema_check(c, item, inner, checks.key_path(path, str(key))) and ok
        return ok
    return True


def schema_normalise(value: Any, schema: Mapping[str, Any]) -> Any:
    """``value`` (valid for ``schema``) with every integral float in an integer position made an
    int, as Calico reads it (:func:`checks.as_int`)."""
    kind = schema.get("type")
    if kind in ("integer", "int-or-string"):
        number = checks.as_int(value)
        return value if number is None else number
    if kind == "array" and isinstance(value, (list, tuple)):
        return [schema_normalise(item, schema.get("items", {})) for item in value]
    if kind == "object" and checks.is_map(value):
        inner = schema.get("properties")
        if inner is not None:
            return {k: schema_normalise(v, inner[k]) if k in inner else v for k, v in value.items()}
        extra = schema.get("additionalProperties")
        return {k: schema_normalise(v, extra) for k, v in value.items()} if extra else dict(value)
    return value


# -- Go validator and CEL rules beyond the OpenAPI schema ----------------------------------------

_GO_UNSUPPORTED = re.compile(r"\(\?[=!<]|\\[1-9]|\(\?P=|\\[ACGXZ]")


def regexp_problem(text: str) -> Optional[str]:
    """Why ``text`` is not a regular expression Go's RE2 accepts (Calico's ``regexp`` check), or
    None.  Python's syntax is a superset for what matters here; lookarounds and back-references,
    which RE2 refuses, are refused too."""
    if _GO_UNSUPPORTED.search(text):
        return "lookarounds and back-references are not supported"
    try:
        re.compile(text)
    except re.error as exc:
        return str(exc)
    return None


def _regexp(c: Scope, value: Any, path: str) -> None:
    problem = regexp_problem(value)
    if problem:
        c.err(path, "%s is not a valid regular expression: %s" % (checks.show(value), problem),
              "fix the regular expression")


_KV_RE = re.compile(r"\s*(\w+)=(.*)")


def _key_value_list(c: Scope, value: Any, path: str) -> None:
    if not value.strip():
        return
    for item in value.split(","):
        if item and _KV_RE.fullmatch(item) is None:
            c.err(path, "%s is not a list of key=value pairs" % checks.show(value),
                  "write comma-separated key=value pairs, e.g. a=b,c=d")
            return


_PROMETHEUS_HOST_RE = re.compile(r"[a-zA-Z0-9:._+-]{1,64}")
_IFACE_FILTER_RE = re.compile(r"[a-zA-Z0-9:._+-]{1,15}")
_HTO_NAME_RE = re.compile(r"[a-zA-Z0-9_ -]+")


def _matches(regex, what: str, fix: str):
    def check(c: Scope, value: Any, path: str) -> None:
        if regex.fullmatch(value) is None:
            c.err(path, "%s is not %s" % (checks.show(value), what), fix)
    return check


def _each(check):
    def run(c: Scope, value: Any, path: str) -> None:
        for i, item in enumerate(value):
            if isinstance(item, str):
                check(c, item, checks.index_path(path, i))
    return run


def _cidr(c: Scope, value: Any, path: str) -> None:
    if checks.parse_ip(value) is None and checks.parse_cidr(value) is None:
        c.err(path, "%s is not a CIDR or an IP address" % checks.show(value), "write e.g. 10.0.0.0/8")


def _ip_family(family: Optional[int]):
    def check(c: Scope, value: Any, path: str) -> None:
        if value == "":
            return
        addr = checks.parse_ip(value)
        if addr is None or (family is not None and addr.version != family):
            what = "an IP address" if family is None else "an IPv%d address" % family
            c.err(path, "%s is not %s" % (checks.show(value), what), "write %s" % what)
    return check


def _interface(c: Scope, value: Any, path: str) -> None:
    if value != "*" and checks.INTERFACE_RE.fullmatch(value) is None:
        c.err(path, "%s is not an interface name" % checks.show(value), "use 1-15 letters, digits, '_', '.' and '-'")


def _node_port_ranges(c: Scope, value: Any, path: str) -> None:
    for i, item in enumerate(value):
        if isinstance(item, int):
            if not 1 <= item <= 65535:
                c.err(checks.index_path(path, i), "%d is not a port" % item, "use 1-65535")
            continue
        if not isinstance(item, str):
            continue
        parts = item.split(":")
        if not all(checks.DIGITS_RE.fullmatch(p) for p in parts) or len(parts) > 2:
            c.err(checks.index_path(path, i), "%s is not a port or a 'min:max' range" % checks.show(item),
                  "node port ranges cannot be named ports: write e.g. '30000:32767'")
            continue
        low, high = checks.to_int(parts[0]), checks.to_int(parts[-1])
        if not 1 <= low <= high <= 65535:
            c.err(checks.index_path(path, i), "%s is not a port range" % checks.show(item), "use ports 1-65535, min <= max")


def _external_nodes(c: Scope, value: Any, path: str) -> None:
    for i, item in enumerate(value):
        if not isinstance(item, str):
            continue
        ip = checks.parse_ip(item)
        net = checks.parse_cidr(item)
        version = ip.version if ip is not None else (net[0].version if net is not None else None)
        if version is None:
            c.err(checks.index_path(path, i), "%s is not a CIDR" % checks.show(item), "write e.g. 10.0.0.0/24")
        elif version != 4:
            c.err(checks.index_path(path, i), "%s is an IPv6 CIDR" % checks.show(item), "external nodes are IPv4 CIDRs")


def _openstack_region(c: Scope, value: Any, path: str) -> None:
    if len(value) > 63 - len("openstack-region-"):
        c.err(path, "is too long", "use at most %d characters" % (63 - len("openstack-region-")))
    elif value and checks.TIER_NAME_RE.fullmatch(value) is None:
        c.err(path, "%s is not a valid DNS label" % checks.show(value), "use lower case letters, digits and '-'")


_GO_DURATION_RE = re.compile(r"[-+]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:ns|us|\u00b5s|\u03bcs|ms|s|m|h))+")
_GO_DURATION_PART_RE = re.compile(r"([0-9]*)(?:\.([0-9]*))?(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")
_GO_DURATION_UNITS = {"ns": 1, "us": 1000, "\u00b5s": 1000, "\u03bcs": 1000, "ms": 10 ** 6, "s": 10 ** 9,
                      "m": 60 * 10 ** 9, "h": 3600 * 10 ** 9}


def go_duration(text: str) -> Optional[int]:
    """Go's ``time.ParseDuration`` (how ``metav1.Duration`` decodes): the duration in nanoseconds,
    or None when Go refuses the text ("", a number without a unit, an overflow, ...)."""
    if text in ("0", "+0", "-0"):
        return 0
    if _GO_DURATION_RE.fullmatch(text) is None:
        return None
    total = 0
    for whole, frac, unit in _GO_DURATION_PART_RE.findall(text.lstrip("+-")):
        scale = _GO_DURATION_UNITS[unit]
        total += int(whole or "0") * scale + (int(frac) * scale // 10 ** len(frac) if frac else 0)
        if total > (1 << 63) - 1:
            return None
    return -total if text.startswith("-") else total


def _duration(c: Scope, value: Any, path: str) -> None:
    if isinstance(value, str) and go_duration(value) is None:
        c.err(path, "%s is not a duration" % checks.show(value), _DURATION_HINT)


def _health_timeouts(c: Scope, value: Any, path: str) -> None:
    """validator.go validateHealthTimeoutOverride: a name of letters, digits, '_', ' ' and '-', and
    a timeout that is a Go duration (metav1.Duration), not negative."""
    for i, item in enumerate(value):
        if not checks.is_map(item):
            continue
        ipath = checks.index_path(path, i)
        if isinstance(item.get("name"), str) and not _HTO_NAME_RE.fullmatch(item["name"]):
            c.err(checks.join_path(ipath, "name"), "%s is not a health timeout name"
                  % checks.show(item["name"]), "use letters, digits, '_', ' ' and '-'")
        timeout = item.get("timeout")
        if isinstance(timeout, str):
            nanos = go_duration(timeout)
            if nanos is None:
                c.err(checks.join_path(ipath, "timeout"), "%s is not a duration" % checks.show(timeout), _DURATION_HINT)
            elif nanos < 0:
                c.err(checks.join_path(ipath, "timeout"), "%s is negative" % checks.show(timeout),
                      "use a duration of 0 or more")


def _route_table_range(c: Scope, value: Any, path: str) -> None:
    low, high = value.get("min"), value.get("max")
    if isinstance(low, int) and isinstance(high, int) and not 1 <= low <= high <= 250:
        c.err(path, "must be a range of route table indices within 1..250", "set 1 <= min <= max <= 250")


def _route_table_ranges(c: Scope, value: Any, path: str) -> None:
    """The CEL rules of RouteTableIDRange, validateRouteTableIDRange (max at most 0xffffffff, the
    highest Linux table) and validateFelixConfigSpec (at most 0xffff tables in all)."""
    total = 0
    for i, item in enumerate(value):
        if not checks.is_map(item):
            continue
        low, high = item.get("min"), item.get("max")
        if not (isinstance(low, int) and isinstance(high, int)):
            continue
        if low < 1:
            c.err(checks.index_path(path, i), "min must be >= 1", "set min to 1 or more")
        if low > high:
            c.err(checks.index_path(path, i), "min must not be greater than max", "swap min and max")
        if high > 0xFFFFFFFF:
            c.err(checks.join_path(checks.index_path(path, i), "max"), "%d is above the highest Linux route table"
                  % high, "use at most %d" % 0xFFFFFFFF)
        total += high - low + 1
    if total > 0xFFFF:
        c.err(path, "targets %d route tables" % total, "use at most %d tables in all" % 0xFFFF)


def _bpf_log_filters(c: Scope, value: Any, path: str) -> None:
    for key in value:
        if not isinstance(key, str) or checks.INTERFACE_RE.fullmatch(key) is None and key != "all":
            c.err(path, "%s is not an interface name" % checks.show(key), "use interface names (or all) as keys")


# field -> checks run after the schema check passed (Calico's Go validator tags and CEL rules)
EXTRA_CHECKS: Dict[str, Tuple[Callable[[Scope, Any, str], None], ...]] = {
    "featureDetectOverride": (_key_value_list,),
    "featureGates": (_key_value_list,),
    "logDebugFilenameRegex": (_regexp,),
    "nftablesFlowTableDataIfacePattern": (_regexp,),
    "bpfDataIfacePattern": (_regexp,),
    "bpfL3IfacePattern": (_regexp,),
    "bpfDisableGROForIfaces": (_regexp,),
    "mtuIfacePattern": (_regexp,),
    "prometheusMetricsHost": (_matches(_PROMETHEUS_HOST_RE, "a metrics host", "use at most 64 letters, digits and "
                                       ": . _ + -"),),
    "iptablesNATOutgoingInterfaceFilter": (_matches(_IFACE_FILTER_RE, "an interface filter",
                                                    "use 1-15 letters, digits and : . _ + -"),),
    "bpfForceTrackPacketsFromIfaces": (_each(_matches(_IFACE_FILTER_RE, "an interface filter",
                                                      "use 1-15 letters, digits and : . _ + -")),),
    "bpfDSROptoutCIDRs": (_each(_cidr),),
    "bpfExcludeCIDRsFromNAT": (_each(_cidr),),
    "wireguardInterfaceName": (_interface,),
    "wireguardInterfaceNameV6": (_interface,),
    "kubeNodePortRanges": (_node_port_ranges,),
    "externalNodesList": (_external_nodes,),
    "openstackRegion": (_openstack_region,),
    "healthTimeoutOverrides": (_health_timeouts,),
    "routeTableRange": (_route_table_range,),
    "routeTableRanges": (_route_table_ranges,),
    "bpfLogFilters": (_bpf_log_filters,),
    "natOutgoingAddress": (_ip_family(4),),
    "deviceRouteSourceAddress": (_ip_family(4),),
    "deviceRouteSourceAddressIPv6": (_ip_family(6),),
}

# Integer bounds of Calico's Go validator tags that the OpenAPI schema does not carry.
GO_BOUNDS: Dict[str, Tuple[int, int]] = {
    "debugPort": (0, 65535),
    "bpfExtToServiceConnmark": (0, 4294967295),
    "bpfKubeProxyHealthzPort": (0, 65535),
    "bpfMapSizeConntrackCleanupQueue": (1, 2 ** 63 - 1),
    "ipv4NormalRoutePriority": (1, 2147483646),
    "ipv4ElevatedRoutePriority": (1, 2147483646),
    "ipv6NormalRoutePriority": (1, 2147483646),
    "ipv6ElevatedRoutePriority": (1, 2147483646),
    "wireguardListeningPort": (1, 65535),
    "wireguardListeningPortV6": (1, 65535),
    "wireguardRoutingRulePriority": (1, 32765),
    "goGCThreshold": (-1, 2 ** 63 - 1),
    "goMemoryLimitMB": (-1, 2 ** 63 - 1),
    "goMaxProcs": (-1, 2 ** 63 - 1),
    "bpfMaglevMaxEndpointsPerService": (1, 3000),
    "bpfMaglevMaxServices": (1, 3000),
}

# Every CEL rule of the CRD (by message) and where hostfw implements it; a unit test keeps this
# in step with felix_schema.
CEL_IMPLEMENTED = {
    "must be a range of route table indices within 1..250": "routeTableRange",
    "min must be >= 1": "routeTableRanges",
    "min must not be greater than max": "routeTableRanges",
    "routeTableRange and routeTableRanges cannot both be set": "spec",
    "natOutgoingAddress must be a valid IPv4 address": "natOutgoingAddress",
    "deviceRouteSourceAddress must be a valid IPv4 address": "deviceRouteSourceAddress",
    "deviceRouteSourceAddressIPv6 must be a valid IPv6 address": "deviceRouteSourceAddressIPv6",
    "nodeSelector must not be set on the 'default' or per-node ('node.*') FelixConfiguration": "metadata",
}

# Fields of Calico Enterprise's FelixConfiguration that open-source Calico does not have: every
# spec field of the Enterprise FelixConfiguration references v3.14 to v3.24 and latest
# (tigera/docs@f2a27624, calico-enterprise*/reference/resources/felixconfig.mdx tables and
# _includes/components/FelixConfig/config-params.json NameYAML), minus open-source Calico's CRD
# fields and REMOVED_FIELDS.
ENTERPRISE_FIELDS = frozenset((
    "awsRequestTimeout", "awsSecondaryIPRoutingRulePriority", "awsSecondaryIPSupport", "bpfDNSPolicyMode",
    "captureDir", "captureMaxFiles", "captureMaxSizeBytes", "captureRotationSeconds", "deletedMetricsRetentionSecs",
    "dnsCacheEpoch", "dnsCacheFile", "dnsCacheSaveInterval", "dnsExtraTTL", "dnsLogsFileAggregationKind",
    "dnsLogsFileDirectory", "dnsLogsFileEnabled", "dnsLogsFileIncludeLabels", "dnsLogsFileMaxFileSizeMB",
    "dnsLogsFileMaxFiles", "dnsLogsFilePerNodeLimit", "dnsLogsFlushInterval", "dnsLogsLatency",
    "dnsPacketsNfqueueID", "dnsPacketsNfqueueMaxHoldDuration", "dnsPacketsNfqueueSize", "dnsPolicyMode",
    "dnsPolicyNfqueueID", "dnsPolicyNfqueueSize", "dnsTrustedServers", "dropActionOverride",
    "egressGatewayPollFailureCount", "egressGatewayPollInterval", "egressIPHostIfacePattern",
    "egressIPRoutingRulePriority", "egressIPSupport", "egressIPVXLANPort", "egressIPVXLANVNI",
    "externalNetworkRoutingRulePriority", "externalNetworkSupport", "flowLogsAggregationThresholdBytes",
    "flowLogsCollectProcessInfo", "flowLogsCollectProcessPath", "flowLogsCollectTcpStats",
    "flowLogsDestDomainsByClient", "flowLogsDynamicAggregationEnabled", "flowLogsEnableHostEndpoint",
    "flowLogsEnableNetworkSets", "flowLogsFileAggregationKindForAllowed", "flowLogsFileAggregationKindForDenied",
    "flowLogsFileDirectory", "flowLogsFileDomainsLimit", "flowLogsFileEnabled", "flowLogsFileEnabledForAllowed",
    "flowLogsFileEnabledForDenied", "flowLogsFileIncludeLabels", "flowLogsFileIncludePolicies",
    "flowLogsFileIncludeService", "flowLogsFileMaxFileSizeMB", "flowLogsFileMaxFiles",
    "flowLogsFileNatOutgoingPortLimit", "flowLogsFilePerFlowProcessArgsLimit", "flowLogsFilePerFlowProcessLimit",
    "flowLogsMaxOriginalIPsIncluded", "flowLogsPolicyScope", "flowLogsPositionFilePath",
    "ipsecAllowUnsecuredTraffic", "ipsecESPAlgorithm", "ipsecIKEAlgorithm", "ipsecLogLevel", "ipsecMode",
    "ipsecPSKFile", "ipsecPolicyRefreshInterval", "kubeMasqueradeBit", "l7LogsFileAggregationDestinationInfo",
    "l7LogsFileAggregationHTTPHeaderInfo", "l7LogsFileAggregationHTTPMethod", "l7LogsFileAggregationNumURLPath",
    "l7LogsFileAggregationResponseCode", "l7LogsFileAggregationServiceInfo", "l7LogsFileAggregationSourceInfo",
    "l7LogsFileAggregationTrimURL", "l7LogsFileAggregationURLCharLimit", "l7LogsFileDirectory", "l7LogsFileEnabled",
    "l7LogsFileMaxFileSizeMB", "l7LogsFileMaxFiles", "l7LogsFilePerNodeLimit", "l7LogsFlushInterval",
    "logDropActionOverride", "nfNetlinkBufSize", "nftablesDNSPolicyMode", "policyActivityLogsFileDirectory",
    "policyActivityLogsFileEnabled", "policyActivityLogsFileMaxFileSizeMB", "policyActivityLogsFileMaxFiles",
    "policyActivityLogsFlushInterval", "programRoutes", "prometheusReporterCAFile", "prometheusReporterCertFile",
    "prometheusReporterEnabled", "prometheusReporterKeyFile", "prometheusReporterPort", "statsDumpFilePath",
    "syslogReporterAddress", "syslogReporterEnabled", "syslogReporterNetwork", "tproxyMode", "tproxyPort",
    "tproxyUpstreamConnMark", "wafEventLogsFileDirectory", "wafEventLogsFileEnabled",
    "wafEventLogsFileMaxFileSizeMB", "wafEventLogsFileMaxFiles", "wafEventLogsFlushInterval", "windowsDNSCacheFile",
    "windowsDNSExtraTTL", "windowsDnsCacheFile", "windowsDnsExtraTTL", "windowsFlowLogsFileDirectory",
    "windowsFlowLogsPositionFilePath", "windowsNetworkName", "windowsStatsDumpFilePath",
)) - frozenset(felix_schema.FIELDS)

# Fields that open-source Calico's FelixConfiguration had until v3.31 and no longer has
# (tigera/docs calico_versioned_docs/version-3.31 vs version-3.32 config-params.json).
REMOVED_FIELDS = frozenset(("bpfKubeProxyEndpointSlicesEnabled", "iptablesLockFilePath", "iptablesLockTimeout")) \
    - frozenset(felix_schema.FIELDS)

# The fields whose Go type is a plain string with omitempty (api/pkg/apis/projectcalico/v3/
# felixconfig.go): "" is dropped before validation, i.e. unset.  Every other string field is a
# pointer, for which "" is a value that the schema checks.
GO_PLAIN_STRING_FIELDS = frozenset((
    "bpfCTLBLogFilter", "bpfConntrackLogLevel", "bpfDataIfacePattern", "bpfDisableGROForIfaces", "bpfEnforceRPF",
    "bpfExternalServiceMode", "bpfL3IfacePattern", "bpfLogLevel", "bpfMapSizeConntrackScaling", "bpfProfiling",
    "bpfRedirectToPeer", "cgroupV2Path", "chainInsertMode", "dataplaneDriver", "debugMemoryProfilePath",
    "defaultEndpointToHostAction", "deviceRouteSourceAddress", "deviceRouteSourceAddressIPv6",
    "endpointStatusPathPrefix", "featureDetectOverride", "featureGates", "interfaceExclude", "interfacePrefix",
    "ipForwarding", "iptablesFilterAllowAction", "iptablesFilterDenyAction", "iptablesMangleAllowAction",
    "iptablesNATOutgoingInterfaceFilter", "logDebugFilenameRegex", "logFilePath", "logPrefix", "logSeverityFile",
    "logSeverityScreen", "logSeveritySys", "metadataAddr", "mtuIfacePattern", "natOutgoingAddress",
    "nftablesFilterAllowAction", "nftablesFilterDenyAction", "nftablesFlowTableDataIfacePattern",
    "nftablesMangleAllowAction", "openstackRegion", "policySyncPathPrefix", "prometheusMetricsHost", "routeSource",
    "serviceLoopPrevention", "wireguardInterfaceName", "wireguardInterfaceNameV6", "workloadSourceSpoofing",
))

# The fields whose Go type is metav1.Duration (felixconfig.go): the value must also be a Go
# duration (time.ParseDuration), which "" is not.
GO_DURATION_FIELDS = frozenset((
    "bpfIPFragTimeout", "bpfKubeProxyMinSyncPeriod", "dataplaneWatchdogTimeout", "debugSimulateCalcGraphHangAfter",
    "debugSimulateDataplaneApplyDelay", "debugSimulateDataplaneHangAfter", "endpointReportingDelay",
    "flowLogsFlushInterval", "interfaceRefreshInterval", "ipsetsRefreshInterval", "iptablesLockProbeInterval",
    "iptablesPostWriteCheckInterval", "iptablesRefreshInterval", "liveMigrationRouteConvergenceTime",
    "localSubnetL2ReachabilityRefreshInterval", "netlinkTimeout", "nftablesRefreshInterval", "reportingInterval",
    "reportingTTL", "routeRefreshInterval", "usageReportingInitialDelay", "usageReportingInterval",
    "wireguardKeepAlive", "xdpRefreshInterval",
))

SPEC_FIELDS = frozenset(felix_schema.FIELDS) | frozenset(_BY_FIELD)


def _spec(c: Scope, spec: Any) -> Optional[Dict[str, Any]]:
    """The spec's fields, with unknown and Enterprise-only fields reported."""
    if spec is None:
        return {}
    if not checks.is_map(spec):
        return checks.fields(c, spec, "spec", SPEC_FIELDS)
    known = {}
    for key, value in spec.items():
        if isinstance(key, str) and key in ENTERPRISE_FIELDS:
            c.err("spec." + key, "%s is a Calico Enterprise setting, not part of open-source Calico's "
                  "FelixConfiguration" % key, "remove it: hostfw implements open-source Calico")
            continue
        if isinstance(key, str) and key in REMOVED_FIELDS:
            c.err("spec." + key, "%s is no longer a FelixConfiguration field: open-source Calico removed it in "
                  "v3.32" % key, "remove it")
            continue
        known[key] = value
    return checks.fields(c, known, "spec", SPEC_FIELDS)


def felix_configuration(c: Scope, name: str, created: Any, spec: Any) -> Any:
    """Validate one FelixConfiguration's spec into an :class:`api.FelixConfiguration` (or None
    after reporting).  ``created`` is ``metadata.creationTimestamp`` (the tie-breaker among
    selector-scoped configurations)."""
    f = _spec(c, spec)
    if f is None:
        return None
    values: Dict[str, Any] = {}
    for key, value in f.items():
        path = "spec." + key
        setting = _BY_FIELD.get(key)
        if setting is not None:
            parsed = setting.parse(c, value, path)
            if parsed is not None and parsed is not BAD and setting.attr not in values:
                values[setting.attr] = parsed
            continue
        if key == "nodeSelector" or value is None:
            continue
        if value == "" and key in GO_PLAIN_STRING_FIELDS:
            continue  # omitempty drops it before Calico validates: unset
        if not schema_check(c, value, felix_schema.FIELDS[key], path):
            continue
        value = schema_normalise(value, felix_schema.FIELDS[key])
        if key in GO_DURATION_FIELDS:
            _duration(c, value, path)
        if key in GO_BOUNDS and isinstance(value, int) and not isinstance(value, bool):
            low, high = GO_BOUNDS[key]
            if not low <= value <= high:
                c.err(path, "%d is out of range" % value, "use %d-%d" % (low, high))
                continue
        for check in EXTRA_CHECKS.get(key, ()):
            check(c, value, path)
    if f.get("routeTableRange") is not None and f.get("routeTableRanges") is not None:
        c.err("spec.routeTableRanges", "routeTableRange and routeTableRanges cannot both be set",
              "remove one of them")
    node_selector = None
    if f.get("nodeSelector") not in (None, ""):
        if name == "default" or name.startswith("node."):
            c.err("spec.nodeSelector", "nodeSelector must not be set on the 'default' or per-node ('node.*') "
                  "FelixConfiguration", "remove it, or give the configuration another name")
        else:
            node_selector = _node_selector(c, f["nodeSelector"])
    stamp = _timestamp(c, created)
    if c.failed:
        return None
    return api.FelixConfiguration(name=name, values=tuple(sorted(values.items())), node_selector=node_selector,
                                  created=stamp, origin=c.origin)


def _timestamp(c: Scope, value: Any) -> Optional[str]:
    """``metadata.creationTimestamp`` as a sortable UTC string (``YYYY-MM-DDTHH:MM:SSZ``), or None."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime.datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            c.err("metadata.creationTimestamp", "%s is not a timestamp" % checks.show(value),
                  "write an RFC 3339 time such as 2024-05-01T10:00:00Z, or remove it")
            return None
    else:
        c.err("metadata.creationTimestamp", "expected a timestamp, got %s" % checks.tname(value),
              "write an RFC 3339 time such as 2024-05-01T10:00:00Z, or remove it")
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _node_selector(c: Scope, value: Any) -> Any:
    text = checks.string(c, value, "spec.nodeSelector")
    if not isinstance(text, str):
        return BAD
    if len(text) > 1024:
        c.err("spec.nodeSelector", "the selector is %d characters long" % len(text), "use at most 1024 characters")
        return BAD
    try:
        return selector.parse(text)
    except selector.SelectorError as exc:
        c.err("spec.nodeSelector", str(exc), "see the Calico selector syntax: label == 'value', has(label), ...")
        return BAD


# ----------------------------------------------------------------------------------------------
# Which configuration applies to a node
# ----------------------------------------------------------------------------------------------

def applicable(configurations: Mapping[str, "api.FelixConfiguration"], node: str,
               node_labels: Optional[Mapping[str, str]] = None) -> List["api.FelixConfiguration"]:
    """The resources that configure ``node``, lowest precedence first: ``default``, the winning
    selector-scoped one (if the node has labels and one matches), ``node.<node>``."""
    out = []
    if "default" in configurations:
        out.append(configurations["default"])
    if node_labels is not None:
        matches = [fc for name, fc in configurations.items()
                   if fc.node_selector is not None and fc.node_selector.matches(node_labels)]
        if matches:
            # the oldest wins (felix/calc MergeSelectorConfigs), then the name; no timestamp sorts last
            matches.sort(key=lambda fc: (fc.created is None, fc.created or "", fc.name))
            out.append(matches[0])
    own = configurations.get("node." + node)
    if own is not None:
        out.append(own)
    return out


def for_node(configurations: Mapping[str, "api.FelixConfiguration"], node: str,
             node_labels: Optional[Mapping[str, str]] = None, failsafe_defaults: str = "protect-hosts") -> Any:
    """The :class:`FelixConfig` of one node (see the module docstring for the precedence);
    ``failsafe_defaults`` names the failsafe lists it starts from (:data:`FAILSAFE_DEFAULTS`)."""
    inbound, outbound = FAILSAFE_DEFAULTS[failsafe_defaults]
    values: Dict[str, Any] = {"failsafe_inbound": inbound, "failsafe_outbound": outbound}
    for fc in applicable(configurations, node, node_labels):
        values.update(fc.values)
    return FelixConfig(**values)


def describe(config: Any) -> Sequence[Tuple[str, Any]]:
    """(attribute, value) of every setting, for messages and tests."""
    return tuple((attr, getattr(config, attr)) for attr in _ATTRS)
