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
import difflib
import functools
import ipaddress
import math
import re
from collections import abc as _abc
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

from ansible_collections.hostfw.nftables.plugins.plugin_utils import api, errors, selector
from ansible_collections.hostfw.nftables.plugins.plugin_utils.addrset import parse_v4, v4_text

__all__ = ["API_VERSION", "KINDS", "build_world", "validate_documents", "flatten_lists",
           "builtin_tiers", "builtin_profiles", "parse_failsafe_string"]

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
MAX_NAME = 253
MAX_ANNOTATIONS = 256 * 1024

# ----------------------------------------------------------------------------------------------
# Regular expressions (all used with fullmatch)
# ----------------------------------------------------------------------------------------------

_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_SUBDOMAIN = _DNS_LABEL + r"(\." + _DNS_LABEL + r")*"
NAME_RE = re.compile(_DNS_SUBDOMAIN)
TIER_NAME_RE = re.compile(_DNS_LABEL)
GNP_NAME_RE = re.compile(r"(" + _DNS_LABEL + r"\.)?" + _DNS_LABEL)
NP_NAME_RE = re.compile(r"(" + _DNS_LABEL + r")(\." + _DNS_LABEL + r")?|(knp|ossg)\.default\." + _DNS_SUBDOMAIN)
_QUALIFIED_PART_RE = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
INTERFACE_RE = re.compile(r"[a-zA-Z0-9_.-]{1,15}")
_PORT_TOKEN_RE = re.compile(r"[a-zA-Z0-9_.-]{1,128}")
_IANA_NAME_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DIGITS_RE = re.compile(r"[0-9]+")
_RATE_RE = re.compile(r"[0-9]+/(second|minute|hour|day)")
_LOG_PREFIX_RE = re.compile(r"[a-zA-Z0-9%: /_-]*")

_BAD = object()  # "the value was invalid and has been reported"


def _is_map(value: Any) -> bool:
    return isinstance(value, (dict, _abc.Mapping))


def _to_int(digits: str) -> int:
    """int() of a string of decimal digits, without Python's limit on very long strings."""
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= 12 else 10 ** 12


# ----------------------------------------------------------------------------------------------
# Message helpers
# ----------------------------------------------------------------------------------------------

def _tname(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if _is_map(value):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return "a %s" % type(value).__name__


def _show(value: Any) -> str:
    """A short rendering of a scalar for a message."""
    if isinstance(value, str):
        text = value if len(value) <= 80 else value[:77] + "..."
        return repr(text)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return repr(value)
    return _tname(value)


def _what(value: Any) -> str:
    """A scalar shown as it is, anything else by its type."""
    return _show(value) if isinstance(value, (str, int, float)) else _tname(value)


def _join(base: str, field: str) -> str:
    return base + "." + field if base else field


def _idx(base: str, index: int) -> str:
    return "%s[%d]" % (base, index)


def _key(base: str, key: str) -> str:
    return "%s[%s]" % (base, repr(key))


def _closest(word: Any, choices: Iterable[str]) -> Optional[str]:
    word = str(word)
    choices = list(choices)
    for c in choices:
        if c.lower() == word.lower():
            return c
    found = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return found[0] if found else None


def _one_of(choices: Sequence[str]) -> str:
    choices = list(choices)
    if len(choices) == 1:
        return choices[0]
    return "%s or %s" % (", ".join(choices[:-1]), choices[-1])


def _sanitise_name(text: str, allow_dots: bool = True) -> str:
    out = re.sub(r"[^a-z0-9.-]" if allow_dots else r"[^a-z0-9-]", "-", text.lower())
    out = re.sub(r"-{2,}", "-", out)
    return out.strip("-.")


class _Ctx(object):
    """Problem sink for one document."""

    __slots__ = ("problems", "kind", "name", "origin", "failed")

    def __init__(self, problems: List[errors.Problem], kind: str, name: str, origin: Optional[str]) -> None:
        self.problems = problems
        self.kind = kind
        self.name = name
        self.origin = origin
        self.failed = False

    def err(self, path: str, what: str, fix: str) -> None:
        self.failed = True
        self.problems.append(errors.Problem(self.kind, self.name, path, "%s (%s)" % (what, fix), self.origin))


# ----------------------------------------------------------------------------------------------
# Generic value checks.  Each returns the value, None when absent, or _BAD after reporting.
# ----------------------------------------------------------------------------------------------

def _fields(c: _Ctx, value: Any, path: str, allowed: Iterable[str], what: str = "",
            hints: Optional[Mapping[str, str]] = None) -> Optional[Dict[str, Any]]:
    """A mapping with only known keys (unknown keys are reported).  None -> {}; not a mapping ->
    reported and None.  ``hints`` maps a misplaced field name to the fix to suggest."""
    if value is None:
        return {}
    if not _is_map(value):
        c.err(path, "expected a mapping of fields, got %s" % _tname(value),
              "write %s as a mapping, e.g. 'field: value'" % (what or path or "the document"))
        return None
    allowed = allowed if isinstance(allowed, (set, frozenset, dict)) else frozenset(allowed)
    out = {}
    for key, item in value.items():
        if isinstance(key, str) and key in allowed:
            out[key] = item
            continue
        if hints and isinstance(key, str) and key in hints:
            c.err(_join(path, key), "unknown field", hints[key])
            continue
        _unknown(c, path, key, allowed)
    return out


def _unknown(c: _Ctx, path: str, key: Any, allowed: Iterable[str]) -> None:
    allowed = sorted(allowed)
    close = _closest(key, allowed)
    if close:
        fix = "did you mean %s?" % close
    elif len(allowed) <= 20:
        fix = "remove it; valid fields here: %s" % ", ".join(allowed)
    else:
        fix = "remove it; it is not a %s field" % c.kind
    c.err(_join(path, str(key)), "unknown field", fix)


def _string(c: _Ctx, value: Any, path: str) -> Any:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        c.err(path, "expected a string, got the boolean %s" % _show(value),
              "quote the value: YAML reads unquoted true, false, yes, no, on and off as booleans")
    elif isinstance(value, (int, float)):
        c.err(path, "expected a string, got the number %s" % _show(value), "quote the value: '%s'" % _show(value))
    else:
        c.err(path, "expected a string, got %s" % _tname(value), "write a single string here")
    return _BAD


def _bool(c: _Ctx, value: Any, path: str) -> Any:
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    c.err(path, "expected true or false, got %s" % _what(value), "write true or false without quotes")
    return _BAD


def _int(c: _Ctx, value: Any, path: str, low: int, high: int, what: str) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            c.err(path, "expected an integer, got %s" % _show(value), "write %d" % int(value))
        else:
            c.err(path, "expected an integer, got %s" % _what(value),
                  "write %s as a number %d-%d without quotes" % (what, low, high))
        return _BAD
    if not low <= value <= high:
        c.err(path, "%d is not a valid %s" % (value, what), "use %d-%d" % (low, high))
        return _BAD
    return value


def _order(c: _Ctx, value: Any, path: str) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        c.err(path, "expected a number, got %s" % (_show(value) if isinstance(value, str) else _tname(value)),
              "write the order as a number without quotes, e.g. 100")
        return _BAD
    value = float(value)
    if not math.isfinite(value):
        c.err(path, "%s is not a finite number" % _show(value), "use a finite number, or leave order unset")
        return _BAD
    return value


def _list(c: _Ctx, value: Any, path: str, max_items: Optional[int] = None, what: str = "items") -> Any:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)):
        c.err(path, "expected a list, got %s" % (_show(value) if isinstance(value, str) else _tname(value)),
              "write a YAML list, e.g. [%s]" % (_show(value) if isinstance(value, (str, int)) else "..."))
        return _BAD
    if max_items is not None and len(value) > max_items:
        c.err(path, "has %d %s" % (len(value), what), "use at most %d" % max_items)
        return _BAD
    return value


def _string_set(c: _Ctx, value: Any, path: str) -> Any:
    """A list of strings without duplicates (a Kubernetes ``listType=set``)."""
    items = _list(c, value, path)
    if items is None or items is _BAD:
        return items
    out = []
    seen = set()
    bad = False
    for i, item in enumerate(items):
        s = _string(c, item, _idx(path, i))
        if s is None:
            c.err(_idx(path, i), "is empty", "remove the empty entry")
            bad = True
            continue
        if s is _BAD:
            bad = True
            continue
        if s in seen:
            c.err(_idx(path, i), "%s is listed twice" % _show(s), "remove the duplicate")
            bad = True
            continue
        seen.add(s)
        out.append(s)
    return _BAD if bad else out


def _enum(c: _Ctx, value: Any, path: str, choices: Sequence[str], what: str, ignore_case: bool = False) -> Any:
    if value is None:
        return None
    s = _string(c, value, path)
    if s is _BAD:
        return _BAD
    if ignore_case:
        for choice in choices:
            if choice.lower() == s.lower():
                return choice
    elif s in choices:
        return s
    close = _closest(s, choices)
    if close and close.lower() == s.lower():
        fix = "use %s" % close
    else:
        fix = "use %s" % _one_of(choices)
    c.err(path, "%s is not %s" % (_show(s), what), fix)
    return _BAD


# ----------------------------------------------------------------------------------------------
# Names, labels, annotations
# ----------------------------------------------------------------------------------------------

_NAME_RULES = {
    # regex, max length, description of the rule, allow dots in the suggestion
    "subdomain": (NAME_RE, MAX_NAME, "use lower case letters, digits, '-' and '.', starting and ending with a "
                                     "letter or digit", True),
    "tier": (TIER_NAME_RE, 63, "use lower case letters, digits and '-' but no '.', starting and ending with a "
                               "letter or digit, at most 63 characters", False),
    "gnp": (GNP_NAME_RE, MAX_NAME, "use lower case letters, digits and '-', with at most one '.', starting and "
                                   "ending with a letter or digit", True),
    "np": (NP_NAME_RE, MAX_NAME, "use lower case letters, digits and '-', with at most one '.', starting and "
                                 "ending with a letter or digit", True),
    "namespace": (TIER_NAME_RE, 63, "use lower case letters, digits and '-', starting and ending with a letter "
                                    "or digit, at most 63 characters", False),
}


def _valid_name(text: str, rule: str) -> bool:
    regex, max_len = _NAME_RULES[rule][:2]
    return len(text) <= max_len and regex.fullmatch(text) is not None


def _check_name(c: _Ctx, value: Any, path: str, rule: str, what: str = "name") -> Any:
    """Validate a resource name; returns it or _BAD."""
    s = _string(c, value, path)
    if s is _BAD:
        return _BAD
    if s is None or s == "":
        c.err(path, "missing", "set %s" % path)
        return _BAD
    regex, max_len, describe, dots = _NAME_RULES[rule]
    if len(s) > max_len:
        c.err(path, "%s is %d characters long" % (what, len(s)), "use at most %d" % max_len)
        return _BAD
    if regex.fullmatch(s) is None:
        fix = describe
        suggestion = _sanitise_name(s, dots)
        if rule in ("gnp", "np") and suggestion.count(".") > 1:
            head, _unused, tail = suggestion.partition(".")
            suggestion = head + "." + tail.replace(".", "-")
        if suggestion and suggestion != s and regex.fullmatch(suggestion) and len(suggestion) <= max_len:
            fix += ", e.g. %s" % _show(suggestion)
        c.err(path, "%s is not a valid %s" % (_show(s), what), fix)
        return _BAD
    return s


def _qualified_name_problem(key: str) -> Optional[str]:
    """Why ``key`` is not a Kubernetes qualified name (label/annotation key), or None."""
    if not key:
        return "is empty"
    parts = key.split("/")
    if len(parts) > 2:
        return "has more than one '/'"
    if len(parts) == 2:
        prefix, name = parts
        if not prefix:
            return "has an empty prefix before '/'"
        if len(prefix) > MAX_NAME or NAME_RE.fullmatch(prefix) is None:
            return "has a prefix that is not a lower-case DNS subdomain"
    else:
        name = parts[0]
    if not name:
        return "has an empty name after '/'"
    if len(name) > 63:
        return "has a name part longer than 63 characters"
    if _QUALIFIED_PART_RE.fullmatch(name) is None:
        return "has a name part that is not letters, digits, '-', '_' and '.' starting and ending with a " \
               "letter or digit"
    return None


_LABEL_KEY_FIX = "use an optional DNS-subdomain prefix and '/', then at most 63 letters, digits, '-', '_' or '.', " \
                 "starting and ending with a letter or digit"
_LABEL_VALUE_FIX = "use at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit, " \
                   "or an empty string"


def _labels(c: _Ctx, value: Any, path: str) -> Any:
    """A label map (keys qualified names, values label values).  Returns a dict or _BAD."""
    if value is None:
        return {}
    if not _is_map(value):
        c.err(path, "expected a mapping of label names to values, got %s" % _tname(value),
              "write labels as 'name: value' lines")
        return _BAD
    out = {}
    bad = False
    for key, item in value.items():
        if not isinstance(key, str):
            c.err(path, "label name %s is %s, not a string" % (_show(key), _tname(key)),
                  "quote the label name: '%s'" % _show(key))
            bad = True
            continue
        why = _qualified_name_problem(key)
        if why:
            c.err(path, "%s is not a valid label name: it %s" % (_show(key), why), _LABEL_KEY_FIX)
            bad = True
            continue
        if item is None:
            item = ""
        if not isinstance(item, str):
            _string(c, item, _key(path, key))
            bad = True
            continue
        if item and (len(item) > 63 or _QUALIFIED_PART_RE.fullmatch(item) is None):
            c.err(_key(path, key), "%s is not a valid label value" % _show(item), _LABEL_VALUE_FIX)
            bad = True
            continue
        out[key] = item
    return _BAD if bad else out


def _annotations(c: _Ctx, value: Any, path: str) -> Any:
    if value is None:
        return {}
    if not _is_map(value):
        c.err(path, "expected a mapping of annotation names to values, got %s" % _tname(value),
              "write annotations as 'name: value' lines")
        return _BAD
    out = {}
    bad = False
    total = 0
    for key, item in value.items():
        if not isinstance(key, str):
            c.err(path, "annotation name %s is %s, not a string" % (_show(key), _tname(key)),
                  "quote the annotation name: '%s'" % _show(key))
            bad = True
            continue
        why = _qualified_name_problem(key.lower())
        if why:
            c.err(path, "%s is not a valid annotation name: it %s" % (_show(key), why), _LABEL_KEY_FIX)
            bad = True
            continue
        if item is None:
            item = ""
        if not isinstance(item, str):
            c.err(_key(path, key), "expected a string, got %s" % _tname(item), "quote the value")
            bad = True
            continue
        total += len(key) + len(item)
        out[key] = item
    if total > MAX_ANNOTATIONS:
        c.err(path, "the annotations are %d bytes in total" % total, "use at most %d bytes" % MAX_ANNOTATIONS)
        bad = True
    return _BAD if bad else out


# ----------------------------------------------------------------------------------------------
# Addresses
# ----------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1 << 16)
def _parse_ip(text: str):
    if "%" in text or not text or text != text.strip():
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


@functools.lru_cache(maxsize=1 << 16)
def _parse_cidr(text: str):
    """(address, network) for 'a.b.c.d/n' (prefix must be decimal digits) or None."""
    if "%" in text or text.count("/") != 1 or text != text.strip():
        return None
    addr_text, plen = text.split("/")
    if not _DIGITS_RE.fullmatch(plen):
        return None
    addr = _parse_ip(addr_text)
    if addr is None or _to_int(plen) > addr.max_prefixlen:
        return None
    return addr, ipaddress.ip_network("%s/%d" % (addr, _to_int(plen)), strict=False)


def _bare_ip(c: _Ctx, value: Any, path: str) -> Any:
    """A bare IP address (no prefix length), normalised."""
    s = _string(c, value, path)
    if s is None or s is _BAD:
        return s
    addr = _parse_ip(s)
    if addr is not None:
        return str(addr)
    cidr = _parse_cidr(s)
    if cidr is not None:
        c.err(path, "%s has a prefix length" % _show(s), "write the bare address %s" % cidr[0])
    else:
        c.err(path, "%s is not an IP address" % _show(s), "write an IPv4 or IPv6 address such as 10.0.0.5")
    return _BAD


def _loose_cidr(c: _Ctx, value: Any, path: str) -> Any:
    """A CIDR (host bits allowed) or a bare IP: returns the masked network string."""
    s = _string(c, value, path)
    if s is None or s is _BAD:
        if s is None:
            c.err(path, "is empty", "write a CIDR such as 10.0.0.0/24 or an address")
            return _BAD
        return s
    v4 = parse_v4(s)  # the common case, without ipaddress objects (network sets can be huge)
    if v4 is not None:
        host_bits = 32 - v4[1]
        return "%s/%d" % (v4_text(v4[0] >> host_bits << host_bits), v4[1])
    addr = _parse_ip(s)
    if addr is not None:
        return str(ipaddress.ip_network(addr))
    cidr = _parse_cidr(s)
    if cidr is not None:
        return str(cidr[1])
    c.err(path, "%s is not a CIDR or an IP address" % _show(s), "write a CIDR such as 10.0.0.0/24 or an address")
    return _BAD


def _strict_cidr(c: _Ctx, value: Any, path: str) -> Any:
    """Rule nets: a strictly masked CIDR or a bare IP (calico-semantics 1.8, validator tag ``net``:
    ``10.0.0.0/24`` and ``10.0.0.1`` are accepted, ``10.0.0.1/24`` is rejected).
    Returns (network, version); a bare IP becomes a /32 or /128."""
    s = _string(c, value, path)
    if s is None or s is _BAD:
        if s is None:
            c.err(path, "is empty", "write a CIDR such as 10.0.0.0/24")
            return _BAD
        return s
    v4 = parse_v4(s)
    if v4 is not None and v4[0] & ((1 << (32 - v4[1])) - 1) == 0:
        return "%s/%d" % (v4_text(v4[0]), v4[1]), 4
    cidr = _parse_cidr(s)
    if cidr is None:
        addr = _parse_ip(s)
        if addr is not None:
            net = ipaddress.ip_network(addr)
            return str(net), net.version
        c.err(path, "%s is not a CIDR" % _show(s), "write a masked network such as 10.0.0.0/24")
        return _BAD
    addr, net = cidr
    if addr != net.network_address:
        c.err(path, "%s is not a masked network" % _show(s),
              "use %s, or %s/%d for the single address" % (net, addr, addr.max_prefixlen))
        return _BAD
    return str(net), net.version


# ----------------------------------------------------------------------------------------------
# Protocols, ports, ICMP
# ----------------------------------------------------------------------------------------------

_PROTOCOL_FIX = "use TCP, UDP, SCTP, ICMP, ICMPv6, UDPLite or a number 1-255"


def _protocol(c: _Ctx, value: Any, path: str) -> Any:
    """Rule protocol: a number 1-255 (also as a numeric string) or an exact name."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        c.err(path, "expected a protocol name or number, got %s" % _what(value), _PROTOCOL_FIX)
        return _BAD
    if isinstance(value, str) and _DIGITS_RE.fullmatch(value):
        number = _to_int(value)
        if number > 255:
            c.err(path, "%s is not a protocol" % _show(value), _PROTOCOL_FIX)
            return _BAD
        value = number
    if isinstance(value, int):
        if not 1 <= value <= 255:
            c.err(path, "%d is not a protocol number" % value, _PROTOCOL_FIX)
            return _BAD
        return value
    if value in api.PROTOCOL_NUMBERS:
        return api.PROTOCOL_NUMBERS[value]
    close = _closest(value, api.PROTOCOL_NUMBERS)
    fix = "use %s" % close if close and close.lower() == value.lower() else _PROTOCOL_FIX
    c.err(path, "%s is not a protocol" % _show(value), fix)
    return _BAD


def _proto_name(number: int) -> str:
    return api.PROTOCOL_NAMES.get(number, str(number))


def _port_number(c: _Ctx, number: int, path: str, shown: str) -> Any:
    if number > 65535 or number < 0:
        c.err(path, "%s is not a port" % shown, "use a port number 1-65535")
        return _BAD
    if number == 0:
        c.err(path, "port 0 is not allowed", "use a port number 1-65535")
        return _BAD
    return api.PortRange(number, number)


def _port(c: _Ctx, value: Any, path: str) -> Any:
    """One entry of a rule's ports list: number, "min:max" or a named port."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        c.err(path, "expected a port number, a 'min:max' range or a port name, got %s"
              % (_show(value) if isinstance(value, float) else _tname(value)),
              "write e.g. 443, '8000:8080' or https")
        return _BAD
    if isinstance(value, int):
        return _port_number(c, value, path, str(value))
    if _DIGITS_RE.fullmatch(value):
        return _port_number(c, _to_int(value), path, value)
    if ":" in value:
        parts = value.split(":")
        if len(parts) != 2 or not all(_DIGITS_RE.fullmatch(p) for p in parts):
            c.err(path, "%s is not a port range" % _show(value), "write a range as 'min:max', e.g. '8000:8080'")
            return _BAD
        low, high = _to_int(parts[0]), _to_int(parts[1])
        if low > 65535 or high > 65535:
            c.err(path, "%s is not a port range" % _show(value), "use port numbers 1-65535")
            return _BAD
        if low > high:
            c.err(path, "%s is not a port range: %d is greater than %d" % (_show(value), low, high),
                  "write '%d:%d'" % (high, low))
            return _BAD
        if low == 0:
            c.err(path, "%s starts at port 0" % _show(value), "use port numbers 1-65535")
            return _BAD
        return api.PortRange(low, high)
    m = re.fullmatch(r"([0-9]+)-([0-9]+)", value)
    if m:
        c.err(path, "%s is not a port range" % _show(value),
              "write the range with a colon: '%s:%s'" % (m.group(1), m.group(2)))
        return _BAD
    if _PORT_TOKEN_RE.fullmatch(value) is None or not _valid_port_name(value):
        c.err(path, "%s is not a port, a 'min:max' range or a port name" % _show(value),
              "a port name is an IANA service name: at most 15 lower case letters, digits and '-', "
              "with at least one letter")
        return _BAD
    return api.NamedPort(value)


def _valid_port_name(name: str) -> bool:
    return (0 < len(name) <= 15 and _IANA_NAME_RE.fullmatch(name) is not None and "--" not in name
            and any("a" <= ch <= "z" for ch in name))


def _ports(c: _Ctx, value: Any, path: str) -> Any:
    items = _list(c, value, path, MAX_PORTS, "ports")
    if items is None or items is _BAD:
        return () if items is None else _BAD
    out = []
    bad = False
    for i, item in enumerate(items):
        p = _port(c, item, _idx(path, i))
        if p is _BAD:
            bad = True
        else:
            out.append(p)
    return _BAD if bad else tuple(out)


def _icmp(c: _Ctx, value: Any, path: str) -> Any:
    f = _fields(c, value, path, ("type", "code"))
    if f is None:
        return _BAD
    if value is None:
        return None
    icmp_type = _int(c, f.get("type"), _join(path, "type"), 0, 254, "ICMP type")
    code = _int(c, f.get("code"), _join(path, "code"), 0, 255, "ICMP code")
    if icmp_type is _BAD or code is _BAD:
        return _BAD
    if code is not None and icmp_type is None:
        c.err(_join(path, "code"), "a code needs a type", "set %s.type as well" % path.rsplit(".", 1)[-1])
        return _BAD
    return api.ICMPMatch(icmp_type, code)


def _endpoint_ports(c: _Ctx, value: Any, path: str, workload: bool) -> Any:
    """HostEndpoint/WorkloadEndpoint named ports."""
    items = _list(c, value, path)
    if items is None or items is _BAD:
        return () if items is None else _BAD
    allowed = ("name", "protocol", "port", "hostPort", "hostIP") if workload else ("name", "protocol", "port")
    out = []
    bad = False
    for i, item in enumerate(items):
        ipath = _idx(path, i)
        f = _fields(c, item, ipath, allowed)
        if f is None:
            bad = True
            continue
        name = _string(c, f.get("name"), _join(ipath, "name"))
        host_port = _int(c, f.get("hostPort"), _join(ipath, "hostPort"), 0, 65535, "port") if workload else None
        if name is _BAD or host_port is _BAD:
            bad = True
        elif not name:
            if not (workload and host_port):
                c.err(_join(ipath, "name"), "missing", "give the port a name, e.g. https")
                bad = True
        elif not _valid_port_name(name):
            c.err(_join(ipath, "name"), "%s is not a valid port name" % _show(name),
                  "use an IANA service name: at most 15 lower case letters, digits and '-', with at least one "
                  "letter")
            bad = True
        proto = f.get("protocol")
        proto_path = _join(ipath, "protocol")
        if proto is None:
            c.err(proto_path, "missing", "set protocol to TCP, UDP or SCTP")
            bad = True
            number = _BAD
        else:
            number = _protocol(c, proto, proto_path)
            if number is _BAD:
                bad = True
            elif number not in api.PORT_PROTOCOLS:
                c.err(proto_path, "protocol %s has no ports" % _proto_name(number), "use TCP, UDP or SCTP")
                bad = True
                number = _BAD
        port = f.get("port")
        if port is None:
            c.err(_join(ipath, "port"), "missing", "set port to a number 1-65535")
            bad = True
        else:
            port = _int(c, port, _join(ipath, "port"), 1, 65535, "port")
            bad = bad or port is _BAD
        if workload and f.get("hostIP") is not None:
            host_ip = _string(c, f.get("hostIP"), _join(ipath, "hostIP"))
            if host_ip is _BAD:
                bad = True
            elif host_ip and _parse_ip(host_ip) is None and _parse_cidr(host_ip) is None:
                c.err(_join(ipath, "hostIP"), "%s is not an IP address" % _show(host_ip), "write an address")
                bad = True
        if not bad and name:
            out.append(api.EndpointPort(name, number, port))
    return _BAD if bad else tuple(out)


# ----------------------------------------------------------------------------------------------
# Selectors
# ----------------------------------------------------------------------------------------------

def _selector_fix(text: str) -> str:
    if "\n" in text or "\r" in text:
        return "remove the line break: a YAML '|' block keeps a trailing newline, write the selector as a " \
               "quoted string or with '>-'"
    return "see the Calico selector syntax: label == 'value', has(label), label in {'a', 'b'}, !, &&, ||"


def _selector(c: _Ctx, value: Any, path: str, allow_global: bool = False) -> Any:
    """A selector string: a parsed Selector, None when absent or empty, or _BAD.  With
    ``allow_global`` (rule namespaceSelector) returns the string "global()" for the global scope."""
    text = _string(c, value, path)
    if text is None or text is _BAD:
        return text
    if text == "":
        return None
    if len(text) > MAX_SELECTOR:
        c.err(path, "the selector is %d characters long" % len(text), "use at most %d characters" % MAX_SELECTOR)
        return _BAD
    if "global(" in text and not allow_global:
        c.err(path, "global() is only allowed as the whole namespaceSelector of a rule",
              "remove global() from this selector")
        return _BAD
    try:
        parsed = selector.parse(text)
    except selector.SelectorError as exc:
        c.err(path, str(exc), _selector_fix(text))
        return _BAD
    if allow_global and "global(" in text:
        if parsed.canonical != "global()":
            c.err(path, "global() cannot be combined with other selectors",
                  "write namespaceSelector: global() on its own")
            return _BAD
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
_HTTP_WHY = ("hostfw does not support http matches: nftables sees packets, not HTTP requests, and Calico "
             "enforces them only with its Envoy-based application layer policy")
_HTTP_FIX = "remove http and match on protocol and ports instead"
_SERVICES_WHY = ("hostfw does not support services matches: it does not know Kubernetes Services or "
                 "their endpoints")
_SERVICES_FIX = "remove services and match the service's addresses with nets or a NetworkSet selector"
_SA_WHY = "hostfw does not support serviceAccounts matches: it does not know which service account a pod runs as"
_SA_FIX = "remove serviceAccounts and select the pods by their labels"


def _present(value: Any) -> bool:
    return value is not None and not ((_is_map(value) or isinstance(value, (list, tuple, str))) and len(value) == 0)


def _entity(c: _Ctx, value: Any, path: str) -> Any:
    """An EntityRule: returns (EntityRule, {field: set of IP versions}) or _BAD."""
    f = _fields(c, value, path, ENTITY_FIELDS)
    if f is None:
        return _BAD
    bad = False
    nets_out: Dict[str, Tuple[str, ...]] = {}
    versions: Dict[str, set] = {}
    for field in ("nets", "notNets"):
        fpath = _join(path, field)
        items = _list(c, f.get(field), fpath, MAX_NETS, "networks")
        versions[field] = set()
        if items is None:
            nets_out[field] = ()
            continue
        if items is _BAD:
            bad = True
            continue
        seen = []
        for i, item in enumerate(items):
            parsed = _strict_cidr(c, item, _idx(fpath, i))
            if parsed is _BAD:
                bad = True
                continue
            net, version = parsed
            if field == "notNets" and net in ("0.0.0.0/0", "::/0"):
                c.err(_idx(fpath, i), "%s in notNets matches no traffic at all" % _show(item),
                      "remove it: a catch-all network cannot be negated")
                bad = True
                continue
            versions[field].add(version)
            if net not in seen:
                seen.append(net)
        nets_out[field] = tuple(seen)
    sel = _selector(c, f.get("selector"), _join(path, "selector"))
    not_sel = _selector(c, f.get("notSelector"), _join(path, "notSelector"))
    ns_sel = _selector(c, f.get("namespaceSelector"), _join(path, "namespaceSelector"), allow_global=True)
    ports = _ports(c, f.get("ports"), _join(path, "ports"))
    not_ports = _ports(c, f.get("notPorts"), _join(path, "notPorts"))
    if _present(f.get("serviceAccounts")):
        c.err(_join(path, "serviceAccounts"), _SA_WHY, _SA_FIX)
        bad = True
    if _present(f.get("services")):
        c.err(_join(path, "services"), _SERVICES_WHY, _SERVICES_FIX)
        bad = True
    if _BAD in (sel, not_sel, ns_sel, ports, not_ports) or bad:
        return _BAD
    entity = api.EntityRule(
        nets=nets_out["nets"], not_nets=nets_out["notNets"], selector=sel, not_selector=not_sel,
        namespace_selector=None if ns_sel == "global()" else ns_sel, global_scope=ns_sel == "global()",
        ports=ports, not_ports=not_ports)
    return entity, versions


def _rule(c: _Ctx, value: Any, path: str) -> Any:
    f = _fields(c, value, path, RULE_FIELDS, hints=_RULE_HINTS)
    if f is None:
        return _BAD
    bad = False
    action = f.get("action")
    if action is None:
        c.err(_join(path, "action"), "missing", "set action to Allow, Deny, Log or Pass")
        bad = True
    else:
        action = _enum(c, action, _join(path, "action"), api.ACTIONS, "an action")
        bad = bad or action is _BAD
    ip_version = f.get("ipVersion")
    if ip_version is not None:
        if isinstance(ip_version, bool) or ip_version not in (4, 6) or not isinstance(ip_version, int):
            c.err(_join(path, "ipVersion"), "%s is not an IP version" % (
                _show(ip_version) if isinstance(ip_version, (str, int, float)) else _tname(ip_version)),
                "use 4 or 6 without quotes")
            ip_version = _BAD
            bad = True
    proto = _protocol(c, f.get("protocol"), _join(path, "protocol"))
    not_proto = _protocol(c, f.get("notProtocol"), _join(path, "notProtocol"))
    icmp = _icmp(c, f.get("icmp"), _join(path, "icmp"))
    not_icmp = _icmp(c, f.get("notICMP"), _join(path, "notICMP"))
    source = _entity(c, f.get("source"), _join(path, "source"))
    destination = _entity(c, f.get("destination"), _join(path, "destination"))
    if _present(f.get("http")):
        c.err(_join(path, "http"), _HTTP_WHY, _HTTP_FIX)
        bad = True
    annotations: Any = {}
    meta = _fields(c, f.get("metadata"), _join(path, "metadata"), ("annotations",))
    if meta is None:
        bad = True
    else:
        annotations = _annotations(c, meta.get("annotations"), _join(path, "metadata.annotations"))
        bad = bad or annotations is _BAD
    if _BAD in (proto, not_proto, icmp, not_icmp, source, destination):
        bad = True

    # ipVersion against ICMP/ICMPv6 (CEL).
    if ip_version in (4, 6):
        for p, pname in ((proto, "protocol"), (not_proto, "notProtocol")):
            if p == 1 and ip_version == 6:
                c.err(_join(path, "ipVersion"), "6 does not match %s ICMP" % pname,
                      "use ipVersion: 4, or %s: ICMPv6" % pname)
                bad = True
            elif p == 58 and ip_version == 4:
                c.err(_join(path, "ipVersion"), "4 does not match %s ICMPv6" % pname,
                      "use ipVersion: 6, or %s: ICMP" % pname)
                bad = True
    # ICMP fields need an ICMP protocol.
    for value_, field in ((icmp, "icmp"), (not_icmp, "notICMP")):
        if value_ is None or value_ is _BAD or proto is _BAD:
            continue
        if proto not in (1, 58):
            what = "needs protocol ICMP or ICMPv6" + (", not %s" % _proto_name(proto) if proto is not None else "")
            c.err(_join(path, field), what, "set protocol: ICMP or ICMPv6, or remove %s" % field)
            bad = True
    # Ports against the protocol.
    if proto is not _BAD and source is not _BAD and destination is not _BAD:
        for side, entity in (("source", source), ("destination", destination)):
            for field, ports in (("ports", entity[0].ports), ("notPorts", entity[0].not_ports)):
                if not ports:
                    continue
                ppath = _join(path, "%s.%s" % (side, field))
                if proto is None:
                    if any(isinstance(p, api.PortRange) for p in ports):
                        c.err(ppath, "numeric ports and port ranges need a protocol",
                              "set %s to TCP, UDP or SCTP" % _join(path, "protocol"))
                        bad = True
                elif proto not in api.PORT_PROTOCOLS:
                    c.err(ppath, "protocol %s has no ports" % _proto_name(proto),
                          "remove the ports, or use protocol TCP, UDP or SCTP")
                    bad = True
    # Nets: one family per rule, matching ipVersion (validator.go validateRule).
    if source is not _BAD and destination is not _BAD and ip_version is not _BAD:
        seen4 = seen6 = False
        for side, entity in (("source", source), ("destination", destination)):
            for field in ("nets", "notNets"):
                vs = entity[1].get(field, set())
                if not vs:
                    continue
                v4, v6 = 4 in vs, 6 in vs
                npath = _join(path, "%s.%s" % (side, field))
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
        return _BAD
    return api.Rule(action=action, ip_version=ip_version, protocol=proto, not_protocol=not_proto, icmp=icmp,
                    not_icmp=not_icmp, source=source[0], destination=destination[0],
                    annotations=tuple(annotations.items()))


def _rules(c: _Ctx, value: Any, path: str) -> Any:
    items = _list(c, value, path, MAX_RULES, "rules")
    if items is None:
        return ()
    if items is _BAD:
        return _BAD
    out = []
    bad = False
    for i, item in enumerate(items):
        r = _rule(c, item, _idx(path, i))
        if r is _BAD:
            bad = True
        else:
            out.append(r)
    return _BAD if bad else tuple(out)


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


def _profile_list(c: _Ctx, value: Any, path: str) -> Any:
    names = _string_set(c, value, path)
    if names is None or names is _BAD:
        return () if names is None else _BAD
    bad = False
    for i, name in enumerate(names):
        if not _valid_name(name, "subdomain"):
            _check_name(c, name, _idx(path, i), "subdomain", "profile name")
            bad = True
    return _BAD if bad else tuple(names)


def _interface_name(c: _Ctx, value: Any, path: str) -> Any:
    s = _string(c, value, path)
    if s is None or s is _BAD:
        return s
    if s == "*" or s == "" or INTERFACE_RE.fullmatch(s):
        return s
    c.err(path, "%s is not an interface name" % _show(s),
          "use \"*\" or 1-15 letters, digits, '_', '.' and '-', e.g. eth0")
    return _BAD


def _host_endpoint(c: _Ctx, meta: _Meta, spec: Any) -> Any:
    f = _fields(c, spec, "spec", HEP_FIELDS)
    if f is None:
        return None
    node = f.get("node")
    if node is None or node == "":
        c.err("spec.node", "missing: a HostEndpoint must name its node",
              "set spec.node to the node name of the host that owns the interface")
        node = _BAD
    else:
        node = _check_name(c, node, "spec.node", "subdomain", "node name")
    iface = _interface_name(c, f.get("interfaceName"), "spec.interfaceName")
    ips = _string_set(c, f.get("expectedIPs"), "spec.expectedIPs")
    expected: List[str] = []
    if ips is not None and ips is not _BAD:
        for i, text in enumerate(ips):
            ip = _bare_ip(c, text, _idx("spec.expectedIPs", i))
            if ip is not _BAD and ip not in expected:
                expected.append(ip)
    ips_ok = ips is not _BAD and (ips is None or len(expected) == len(set(ips)))
    if not iface and not expected and iface is not _BAD and ips_ok:
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


def _workload_endpoint(c: _Ctx, meta: _Meta, spec: Any) -> Any:
    f = _fields(c, spec, "spec", WEP_FIELDS)
    if f is None:
        return None
    strings = {}
    for field in ("orchestrator", "workload", "node", "pod", "endpoint", "serviceAccountName"):
        value = f.get(field)
        if value is None or value == "":
            strings[field] = ""
            continue
        strings[field] = _check_name(c, value, "spec." + field, "subdomain", field)
    for field in ("containerID", "mac", "ipv4Gateway", "ipv6Gateway"):
        _string(c, f.get(field), "spec." + field)
    iface = _interface_name(c, f.get("interfaceName"), "spec.interfaceName")
    if iface is None or iface == "":
        c.err("spec.interfaceName", "missing", "set spec.interfaceName to the workload's host-side interface, "
                                               "e.g. cali0123456789a")
    nets = _list(c, f.get("ipNetworks"), "spec.ipNetworks")
    ip_networks: List[str] = []
    if nets is not None and nets is not _BAD:
        for i, item in enumerate(nets):
            path = _idx("spec.ipNetworks", i)
            s = _string(c, item, path)
            if s is _BAD or s is None:
                if s is None:
                    c.err(path, "is empty", "write the workload's address, e.g. 10.65.0.5/32")
                continue
            addr = _parse_ip(s)
            if addr is not None:
                net = ipaddress.ip_network(addr)
            else:
                cidr = _parse_cidr(s)
                if cidr is None:
                    c.err(path, "%s is not an IP network" % _show(s), "write the workload's address, e.g. 10.65.0.5/32")
                    continue
                if cidr[0] != cidr[1].network_address:
                    c.err(path, "%s is not a masked network" % _show(s),
                          "write %s/%d" % (cidr[0], cidr[0].max_prefixlen))
                    continue
                net = cidr[1]
            if net.num_addresses != 1:
                c.err(path, "%s contains more than one address" % _show(s),
                      "use the workload's single address, e.g. %s/%d" % (net.network_address, net.max_prefixlen))
                continue
            if str(net) not in ip_networks:
                ip_networks.append(str(net))
    nats = _list(c, f.get("ipNATs"), "spec.ipNATs")
    if nats is not None and nats is not _BAD:
        for i, item in enumerate(nats):
            path = _idx("spec.ipNATs", i)
            nf = _fields(c, item, path, ("internalIP", "externalIP"))
            if nf is None:
                continue
            for field in ("internalIP", "externalIP"):
                if nf.get(field) is not None:
                    _bare_ip(c, nf.get(field), _join(path, field))
    spoof = _list(c, f.get("allowSpoofedSourcePrefixes"), "spec.allowSpoofedSourcePrefixes")
    if spoof is not None and spoof is not _BAD:
        for i, item in enumerate(spoof):
            _loose_cidr(c, item, _idx("spec.allowSpoofedSourcePrefixes", i))
    if f.get("qosControls") is not None and not _is_map(f.get("qosControls")):
        c.err("spec.qosControls", "expected a mapping, got %s" % _tname(f.get("qosControls")),
              "write qosControls as a mapping of fields")
    profiles = _profile_list(c, f.get("profiles"), "spec.profiles")
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


def _types(c: _Ctx, value: Any, path: str) -> Any:
    items = _list(c, value, path)
    if items is None or items is _BAD:
        return items
    if not items:
        return None
    out = []
    bad = False
    for i, item in enumerate(items):
        t = _enum(c, item, _idx(path, i), (api.INGRESS, api.EGRESS), "a policy type")
        if t is _BAD or t is None:
            if t is None:
                c.err(_idx(path, i), "is empty", "use Ingress or Egress")
            bad = True
        elif t in out:
            c.err(_idx(path, i), "%s is listed twice" % _show(t), "remove the duplicate")
            bad = True
        else:
            out.append(t)
    if bad:
        return _BAD
    return tuple(t for t in (api.INGRESS, api.EGRESS) if t in out)


def _policy(c: _Ctx, kind: str, meta: _Meta, spec: Any, warnings: List[str]) -> Any:
    f = _fields(c, spec, "spec", POLICY_FIELDS[kind])
    if f is None:
        return None
    is_global = kind in (api.GLOBAL_NETWORK_POLICY, api.STAGED_GLOBAL_NETWORK_POLICY)
    staged = kind in (api.STAGED_GLOBAL_NETWORK_POLICY, api.STAGED_NETWORK_POLICY)
    tier = f.get("tier")
    if tier is None or tier == "":
        tier = api.DEFAULT_TIER
    else:
        tier = _check_name(c, tier, "spec.tier", "tier", "tier name")
    order = _order(c, f.get("order"), "spec.order")
    sel = _selector(c, f.get("selector"), "spec.selector")
    if sel is not None and sel is not _BAD and sel.is_all:
        sel = None  # the policy selector all() is the same as no selector (api: None = all())
    ns_sel = _selector(c, f.get("namespaceSelector"), "spec.namespaceSelector") if is_global else None
    sa_sel = _selector(c, f.get("serviceAccountSelector"), "spec.serviceAccountSelector")
    types = _types(c, f.get("types"), "spec.types")
    ingress = _rules(c, f.get("ingress"), "spec.ingress")
    egress = _rules(c, f.get("egress"), "spec.egress")
    flags = {}
    for field in ("doNotTrack", "preDNAT", "applyOnForward"):
        flags[field] = _bool(c, f.get(field), "spec." + field) if is_global else None
    hints = _string_set(c, f.get("performanceHints"), "spec.performanceHints")
    if hints is not None and hints is not _BAD:
        for i, hint in enumerate(hints):
            if hint != "AssumeNeededOnEveryNode":
                c.err(_idx("spec.performanceHints", i), "%s is not a performance hint" % _show(hint),
                      "use AssumeNeededOnEveryNode")
    staged_action = None
    if staged:
        staged_action = _enum(c, f.get("stagedAction"), "spec.stagedAction", STAGED_ACTIONS, "a staged action")
        if staged_action is None:
            staged_action = "Set"

    dnt, pre_dnat, aof = flags["doNotTrack"] is True, flags["preDNAT"] is True, flags["applyOnForward"] is True
    if dnt and pre_dnat:
        c.err("spec.preDNAT", "preDNAT and doNotTrack cannot both be true", "choose one of them")
    if pre_dnat and egress is not _BAD and egress:
        c.err("spec.egress", "a preDNAT policy cannot have egress rules",
              "remove the egress rules: pre-DNAT policy applies to ingress only")
    if pre_dnat and types is not _BAD and types and api.EGRESS in types:
        c.err("spec.types", "a preDNAT policy cannot have type Egress", "use types: [Ingress]")
    if (dnt or pre_dnat) and not aof and flags["applyOnForward"] is not _BAD:
        c.err("spec.applyOnForward", "must be true for a %s policy" % ("preDNAT" if pre_dnat else "doNotTrack"),
              "set applyOnForward: true")

    if staged_action == "Delete":
        for field in sorted(f):
            if field in ("tier", "stagedAction"):
                continue
            value = f[field]
            empty = (_is_map(value) or isinstance(value, (list, tuple))) and not value
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


def _tier(c: _Ctx, meta: _Meta, spec: Any) -> Any:
    f = _fields(c, spec, "spec", ("order", "defaultAction"))
    if f is None:
        return None
    order = _order(c, f.get("order"), "spec.order")
    action = _enum(c, f.get("defaultAction"), "spec.defaultAction", ("Deny", "Pass"), "a tier default action")
    builtin = BUILTIN_TIERS.get(meta.name)
    if builtin is not None and not c.failed:
        want_order, want_action = builtin
        if order is not None and order != want_order:
            c.err("spec.order", "the built-in tier %s has order %d" % (meta.name, want_order),
                  "set order: %d, or remove the Tier document" % want_order)
        if action is not None and action != want_action:
            c.err("spec.defaultAction", "the built-in tier %s has defaultAction %s" % (meta.name, want_action),
                  "set defaultAction: %s, or remove the Tier document" % want_action)
        order = want_order
        action = want_action
    if c.failed:
        return None
    return api.Tier(name=meta.name, order=order, default_action=action or "Deny", builtin=builtin is not None,
                    origin=c.origin)


def _network_set(c: _Ctx, kind: str, meta: _Meta, spec: Any) -> Any:
    f = _fields(c, spec, "spec", ("nets",))
    if f is None:
        return None
    items = _list(c, f.get("nets"), "spec.nets")
    nets: List[str] = []
    if items is not None and items is not _BAD:
        seen_raw = set()
        for i, item in enumerate(items):
            if isinstance(item, str):
                if item in seen_raw:
                    c.err(_idx("spec.nets", i), "%s is listed twice" % _show(item), "remove the duplicate")
                    continue
                seen_raw.add(item)
            net = _loose_cidr(c, item, _idx("spec.nets", i))
            if net is not _BAD and net not in nets:
                nets.append(net)
    if api.NAMESPACE_LABEL in meta.labels:
        c.err("metadata.labels", "%s is reserved" % _show(api.NAMESPACE_LABEL),
              "remove it: Calico sets it from the namespace of namespaced objects")
    if c.failed:
        return None
    labels = dict(meta.labels)
    if meta.namespace is not None:
        labels[api.NAMESPACE_LABEL] = meta.namespace
    return api.NetworkSet(kind=kind, name=meta.name, namespace=meta.namespace, labels=labels, nets=tuple(nets),
                          origin=c.origin)


def _profile(c: _Ctx, meta: _Meta, spec: Any) -> Any:
    f = _fields(c, spec, "spec", ("ingress", "egress", "labelsToApply"))
    if f is None:
        return None
    ingress = _rules(c, f.get("ingress"), "spec.ingress")
    egress = _rules(c, f.get("egress"), "spec.egress")
    labels = _labels(c, f.get("labelsToApply"), "spec.labelsToApply")
    if c.failed:
        return None
    return api.Profile(name=meta.name, ingress=ingress, egress=egress, labels_to_apply=labels, origin=c.origin)


# --- FelixConfiguration ----------------------------------------------------------------------

FELIX_FIELDS = frozenset((
    "failsafeInboundHostPorts", "failsafeOutboundHostPorts", "defaultEndpointToHostAction", "interfacePrefix",
    "interfaceExclude", "disableConntrackInvalidCheck", "logPrefix", "logActionRateLimit",
    "logActionRateLimitBurst", "nftablesFilterDenyAction", "iptablesFilterDenyAction"))

# Every other FelixConfigurationSpec field (api/pkg/apis/projectcalico/v3/felixconfig.go): accepted and
# ignored, because they do not change host-endpoint policy.
FELIX_IGNORED_FIELDS = frozenset((
    "allowIPIPPacketsFromWorkloads", "allowVXLANPacketsFromWorkloads", "awsSrcDstCheck", "bpfAttachType",
    "bpfCTLBLogFilter", "bpfConnectTimeLoadBalancing", "bpfConnectTimeLoadBalancingEnabled",
    "bpfConntrackLogLevel", "bpfConntrackMode", "bpfConntrackTimeouts", "bpfDSROptoutCIDRs",
    "bpfDataIfacePattern", "bpfDisableGROForIfaces", "bpfDisableUnprivileged", "bpfEnabled", "bpfEnforceRPF",
    "bpfExcludeCIDRsFromNAT", "bpfExportBufferSizeMB", "bpfExtToServiceConnmark", "bpfExternalServiceMode",
    "bpfForceTrackPacketsFromIfaces", "bpfHostConntrackBypass", "bpfHostNetworkedNATWithoutCTLB",
    "bpfJITHardening", "bpfKubeProxyEndpointSlicesEnabled", "bpfKubeProxyIptablesCleanupEnabled",
    "bpfKubeProxyMinSyncPeriod", "bpfL3IfacePattern", "bpfLogFilters", "bpfLogLevel",
    "bpfMaglevMaxEndpointsPerService", "bpfMaglevMaxServices", "bpfMapSizeConntrack",
    "bpfMapSizeConntrackCleanupQueue", "bpfMapSizeConntrackScaling", "bpfMapSizeIPSets", "bpfMapSizeIfState",
    "bpfMapSizeNATAffinity", "bpfMapSizeNATBackend", "bpfMapSizeNATFrontend", "bpfMapSizePerCpuConntrack",
    "bpfMapSizeRoute", "bpfPSNATPorts", "bpfPolicyDebugEnabled", "bpfProfiling", "bpfRedirectToPeer",
    "cgroupV2Path", "chainInsertMode", "dataplaneDriver", "dataplaneWatchdogTimeout", "debugDisableLogDropping",
    "debugHost", "debugMemoryProfilePath", "debugPort", "debugSimulateCalcGraphHangAfter",
    "debugSimulateDataplaneApplyDelay", "debugSimulateDataplaneHangAfter", "deviceRouteProtocol",
    "deviceRouteSourceAddress", "deviceRouteSourceAddressIPv6", "disableConntrackInvalidCheck",
    "endpointReportingDelay", "endpointReportingEnabled", "endpointStatusPathPrefix", "externalNodesList",
    "featureDetectOverride", "featureGates", "floatingIPs", "flowLogsCollectorDebugTrace",
    "flowLogsFlushInterval", "flowLogsGoldmaneServer", "flowLogsLocalReporter", "flowLogsPolicyEvaluationMode",
    "genericXDPEnabled", "goGCThreshold", "goMaxProcs", "goMemoryLimitMB", "healthEnabled", "healthHost",
    "healthPort", "healthTimeoutOverrides", "interfaceRefreshInterval", "ipForwarding", "ipipEnabled", "ipipMTU",
    "ipsetsRefreshInterval", "iptablesBackend", "iptablesFilterAllowAction", "iptablesLockFilePath",
    "iptablesLockProbeInterval", "iptablesLockTimeout", "iptablesMangleAllowAction", "iptablesMarkMask",
    "iptablesNATOutgoingInterfaceFilter", "iptablesPostWriteCheckInterval", "iptablesRefreshInterval",
    "ipv4ElevatedRoutePriority", "ipv4NormalRoutePriority", "ipv6ElevatedRoutePriority",
    "ipv6NormalRoutePriority", "ipv6Support", "kubeNodePortRanges", "liveMigrationRouteConvergenceTime",
    "logDebugFilenameRegex", "logFilePath", "logSeverityFile", "logSeverityScreen", "logSeveritySys",
    "maxIpsetSize", "metadataAddr", "metadataPort", "mtuIfacePattern", "natOutgoingAddress",
    "natOutgoingExclusions", "natPortRange", "netlinkTimeout", "nftablesFilterAllowAction",
    "nftablesMangleAllowAction", "nftablesMarkMask", "nftablesMode", "nftablesRefreshInterval",
    "openstackRegion", "policySyncPathPrefix", "programClusterRoutes", "prometheusGoMetricsEnabled",
    "prometheusMetricsEnabled", "prometheusMetricsHost", "prometheusMetricsPort",
    "prometheusProcessMetricsEnabled", "prometheusWireGuardMetricsEnabled", "removeExternalRoutes",
    "reportingInterval", "reportingTTL", "requireMTUFile", "routeRefreshInterval", "routeSource",
    "routeSyncDisabled", "routeTableRange", "routeTableRanges", "serviceLoopPrevention",
    "sidecarAccelerationEnabled", "usageReportingEnabled", "usageReportingInitialDelay",
    "usageReportingInterval", "useInternalDataplaneDriver", "vxlanEnabled", "vxlanMTU", "vxlanMTUV6",
    "vxlanPort", "vxlanVNI", "windowsManageFirewallRules", "wireguardEnabled", "wireguardEnabledV6",
    "wireguardHostEncryptionEnabled", "wireguardInterfaceName", "wireguardInterfaceNameV6", "wireguardKeepAlive",
    "wireguardListeningPort", "wireguardListeningPortV6", "wireguardMTU", "wireguardMTUV6",
    "wireguardRoutingRulePriority", "wireguardThreadingEnabled", "workloadSourceSpoofing", "xdpEnabled",
    "xdpRefreshInterval")) - FELIX_FIELDS

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
                problems.append(("%s is not a failsafe entry" % _show(item), _FAILSAFE_ENV_FIX))
                continue
        if proto.lower() not in ("tcp", "udp"):
            problems.append(("%s is not a failsafe entry: the protocol must be tcp or udp" % _show(item),
                             "use tcp:%s or udp:%s" % (port_text, port_text) if _DIGITS_RE.fullmatch(port_text)
                             else "use tcp or udp"))
            continue
        if not _DIGITS_RE.fullmatch(port_text) or _to_int(port_text) > 65535:
            problems.append(("%s is not a failsafe entry: %s is not a port" % (_show(item), _show(port_text)),
                             "use a port number 0-65535"))
            continue
        net = None
        if net_text is not None:
            addr = _parse_ip(net_text)
            cidr = _parse_cidr(net_text)
            if addr is None and cidr is None:
                problems.append(("%s is not a failsafe entry: %s is not a CIDR" % (_show(item), _show(net_text)),
                                 "write e.g. tcp:10.0.0.0/8:22"))
                continue
            net = str(ipaddress.ip_network(addr)) if addr is not None else str(cidr[1])
        entries.append(api.FailsafeEntry(proto.lower(), _to_int(port_text), net))
    return tuple(entries), problems


def _failsafes(c: _Ctx, value: Any, path: str) -> Any:
    if value is None:
        return None
    if isinstance(value, str):
        entries, problems = parse_failsafe_string(value)
        for what, fix in problems:
            c.err(path, what, fix)
        return _BAD if problems else entries
    items = _list(c, value, path)
    if items is _BAD:
        return _BAD
    out = []
    bad = False
    for i, item in enumerate(items):
        ipath = _idx(path, i)
        f = _fields(c, item, ipath, ("protocol", "port", "net"))
        if f is None:
            bad = True
            continue
        proto = f.get("protocol")
        if proto is None or proto == "":
            proto = "TCP"
        proto = _string(c, proto, _join(ipath, "protocol"))
        if proto is _BAD:
            bad = True
        elif proto == "SCTP":
            c.err(_join(ipath, "protocol"), "'SCTP' passes Calico's API validation but Felix then fails to start "
                                            "with it", "use TCP or UDP")
            bad = True
        elif proto not in ("TCP", "UDP"):
            fix = "use %s" % proto.upper() if proto.upper() in ("TCP", "UDP") else "use TCP or UDP"
            c.err(_join(ipath, "protocol"), "%s is not a failsafe protocol" % _show(proto), fix)
            bad = True
        port = f.get("port")
        if port is None:
            port = 0
        port = _int(c, port, _join(ipath, "port"), 0, 65535, "port")
        net = f.get("net")
        if net is not None and net != "":
            net = _loose_cidr(c, net, _join(ipath, "net"))
        else:
            net = None
        if _BAD in (port, net) or bad:
            bad = True
            continue
        out.append(api.FailsafeEntry(proto.lower(), port, net))
    return _BAD if bad else tuple(out)


def _comma_list(c: _Ctx, value: Any, path: str, allow_regex: bool) -> Any:
    s = _string(c, value, path)
    if s is _BAD:
        return _BAD
    if s is None or s.strip() == "":
        return None
    out = []
    bad = False
    for item in s.split(","):
        item = item.strip()
        if not item:
            continue
        if allow_regex and len(item) >= 2 and item.startswith("/") and item.endswith("/"):
            try:
                re.compile(item[1:-1])
            except re.error as exc:
                c.err(path, "%s is not a valid regular expression: %s" % (_show(item), exc),
                      "fix the expression between the slashes")
                bad = True
                continue
        elif INTERFACE_RE.fullmatch(item) is None:
            c.err(path, "%s is not an interface name%s" % (_show(item), " or /regex/" if allow_regex else ""),
                  "use 1-15 letters, digits, '_', '.' and '-'%s" % (", or /regex/" if allow_regex else ""))
            bad = True
            continue
        out.append(item)
    return _BAD if bad else tuple(out)


def _felix(c: _Ctx, meta: _Meta, spec: Any) -> Any:
    f = _fields(c, spec, "spec", FELIX_FIELDS | FELIX_IGNORED_FIELDS)
    if f is None:
        return None
    inbound = _failsafes(c, f.get("failsafeInboundHostPorts"), "spec.failsafeInboundHostPorts")
    outbound = _failsafes(c, f.get("failsafeOutboundHostPorts"), "spec.failsafeOutboundHostPorts")
    ep_action = f.get("defaultEndpointToHostAction")
    if ep_action == "":
        ep_action = None
    ep_action = _enum(c, ep_action, "spec.defaultEndpointToHostAction", ("Drop", "Accept", "Return"),
                      "an endpoint-to-host action", ignore_case=True)
    prefixes = _comma_list(c, f.get("interfacePrefix"), "spec.interfacePrefix", allow_regex=False)
    exclude = _comma_list(c, f.get("interfaceExclude"), "spec.interfaceExclude", allow_regex=True)
    no_ct_invalid = _bool(c, f.get("disableConntrackInvalidCheck"), "spec.disableConntrackInvalidCheck")
    log_prefix = _string(c, f.get("logPrefix"), "spec.logPrefix")
    if isinstance(log_prefix, str):
        if log_prefix == "":
            log_prefix = None
        elif _LOG_PREFIX_RE.fullmatch(log_prefix) is None:
            c.err("spec.logPrefix", "%s contains characters a log prefix may not have" % _show(log_prefix),
                  "use letters, digits, spaces and % : / _ -")
    rate = _string(c, f.get("logActionRateLimit"), "spec.logActionRateLimit")
    if isinstance(rate, str):
        if rate == "":
            rate = None
        elif _RATE_RE.fullmatch(rate) is None:
            c.err("spec.logActionRateLimit", "%s is not a rate" % _show(rate),
                  "write N/unit with unit second, minute, hour or day, e.g. 10/second")
    burst = f.get("logActionRateLimitBurst")
    if burst is not None:
        burst = _int(c, burst, "spec.logActionRateLimitBurst", 0, 2 ** 31 - 1, "burst")
    deny = {}
    for field in ("nftablesFilterDenyAction", "iptablesFilterDenyAction"):
        value = f.get(field)
        deny[field] = None if value == "" else _enum(c, value, "spec." + field, ("Drop", "Reject"),
                                                     "a deny action", ignore_case=True)
    if c.failed:
        return None
    return api.FelixConfiguration(
        name=meta.name, failsafe_inbound=inbound, failsafe_outbound=outbound,
        default_endpoint_to_host_action=ep_action, interface_prefixes=prefixes, interface_exclude=exclude,
        disable_conntrack_invalid_check=no_ct_invalid, log_prefix=log_prefix, log_action_rate_limit=rate,
        log_action_rate_limit_burst=burst,
        deny_action=deny["nftablesFilterDenyAction"] or deny["iptablesFilterDenyAction"], origin=c.origin)


# ----------------------------------------------------------------------------------------------
# Documents
# ----------------------------------------------------------------------------------------------

def flatten_lists(doc: Any, origin: str) -> Iterator[Tuple[Any, str]]:
    """Yield the documents of ``doc``: the items of a ``kind: List`` / ``*List`` document (as
    ``calicoctl get -o yaml`` prints), recursively, with origins ``<origin> items[<i>]``;
    any other document as it is."""
    if (_is_map(doc) and isinstance(doc.get("kind"), str) and doc["kind"].endswith("List")
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
    if _is_map(meta):
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


def _document(problems: List[errors.Problem], warnings: List[str], doc: Any, origin: str) -> Any:
    """Validate one document; returns (kind, key, object) or None."""
    if not _is_map(doc):
        problems.append(errors.Problem(
            "Document", "", "", "expected a mapping with apiVersion, kind, metadata and spec, got %s "
            "(check the indentation: each document must be one mapping)" % _tname(doc), origin))
        return None
    kind = doc.get("kind")
    name_for_problem = _problem_name(doc)
    if not isinstance(kind, str) or kind not in KINDS:
        c = _Ctx(problems, kind if isinstance(kind, str) and kind else "Document", name_for_problem, origin)
        if kind is None or kind == "":
            c.err("kind", "missing", "set kind to one of: %s" % ", ".join(KINDS))
        elif not isinstance(kind, str):
            c.err("kind", "expected a string, got %s" % _tname(kind), "set kind to one of: %s" % ", ".join(KINDS))
        elif kind in IGNORED_KINDS and doc.get("apiVersion") == API_VERSION:
            warnings.append("%s %s: ignored: hostfw does not use %s resources (%s)"
                            % (kind, name_for_problem or "<unnamed>", kind, origin))
        else:
            close = _closest(kind, KINDS)
            c.err("kind", "hostfw does not know the kind %s" % _show(kind),
                  "did you mean %s?" % close if close else "use one of: %s" % ", ".join(KINDS))
        return None
    c = _Ctx(problems, kind, name_for_problem, origin)
    api_version = doc.get("apiVersion")
    if api_version != API_VERSION:
        if api_version is None:
            c.err("apiVersion", "missing", "set apiVersion: %s" % API_VERSION)
        elif api_version == "crd.projectcalico.org/v1":
            c.err("apiVersion", "'crd.projectcalico.org/v1' is Calico's internal storage format",
                  "use apiVersion: %s, as calicoctl prints it" % API_VERSION)
        else:
            c.err("apiVersion", "%s is not supported" % _show(api_version), "use apiVersion: %s" % API_VERSION)
    top = _fields(c, doc, "", ("apiVersion", "kind", "metadata", "spec"))
    if top is None:
        return None
    meta_raw = _fields(c, top.get("metadata"), "metadata", META_FIELDS)
    if meta_raw is None:
        return None
    namespaced = kind in NAMESPACED_KINDS
    rule = _NAME_RULE_OF_KIND.get(kind, "subdomain")
    name = _check_name(c, meta_raw.get("name"), "metadata.name", rule,
                       "tier name" if rule == "tier" else "name")
    namespace = None
    if namespaced:
        ns = meta_raw.get("namespace")
        if ns is None or ns == "":
            namespace = "default"
        else:
            namespace = _check_name(c, ns, "metadata.namespace", "namespace", "namespace")
    elif meta_raw.get("namespace") not in (None, ""):
        c.err("metadata.namespace", "%s is cluster-wide and has no namespace" % kind, "remove metadata.namespace")
    labels = _labels(c, meta_raw.get("labels"), "metadata.labels")
    annotations = _annotations(c, meta_raw.get("annotations"), "metadata.annotations")
    if _BAD in (name, namespace, labels, annotations):
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
        obj = _felix(c, meta, spec)
        key = name
        if obj is not None and name != "default" and not name.startswith("node."):
            warnings.append("FelixConfiguration %s: ignored: Felix reads only the 'default' and 'node.<node name>' "
                            "configurations" % name)
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
    problems: List[errors.Problem] = []
    world = api.World()
    world.tiers.update(builtin_tiers())
    world.profiles.update(builtin_profiles())
    builtin_keys = {(api.TIER, name) for name in world.tiers} | {(api.PROFILE, name) for name in world.profiles}
    seen_user: Dict[Tuple[str, Any], str] = {}
    for raw, raw_origin in documents:
        for doc, origin in flatten_lists(raw, raw_origin):
            before = len(problems)
            try:
                result = _document(problems, world.warnings, doc, origin)
            except Exception as exc:  # never a traceback for bad input; the fuzz tests keep this unused
                del problems[before:]
                try:
                    name = _problem_name(doc) if _is_map(doc) else ""
                    kind = doc.get("kind") if _is_map(doc) and isinstance(doc.get("kind"), str) else "Document"
                except Exception:
                    name, kind = "", "Document"
                problems.append(errors.Problem(kind, name, "", "hostfw could not validate this document: internal "
                                               "error %s: %s (please report this as a hostfw bug)"
                                               % (type(exc).__name__, exc), origin))
                continue
            if result is None:
                continue
            kind, key, obj = result
            section = getattr(world, "policies" if kind in POLICY_KINDS else _SECTIONS[kind])
            existing = section.get(key)
            if (kind, key) in builtin_keys and (kind, key) not in seen_user:
                if kind == api.PROFILE and dataclasses.replace(obj, origin=None, builtin=True) != existing:
                    problems.append(errors.Problem(
                        kind, key, "spec", "the built-in profile %s is one Allow ingress rule and one Allow egress "
                        "rule and cannot be changed (remove this document, or give your profile another name)"
                        % key, origin))
                    continue
                seen_user[(kind, key)] = origin
                continue  # identical to the built-in (tiers were checked against it already)
            if existing is not None:
                if _content(existing) == _content(obj):
                    continue  # an identical copy: merged silently
                problems.append(errors.Problem(
                    kind, _display(kind, key), "metadata.name", "defined twice with different content, in %s and %s "
                    "(keep one definition, or rename one of them)" % (existing.origin or seen_user.get((kind, key)),
                                                                      origin), origin))
                continue
            section[key] = obj
            seen_user[(kind, key)] = origin

    # Cross-resource checks.
    for policy in world.policies.values():
        if policy.tier not in world.tiers:
            close = _closest(policy.tier, world.tiers)
            fix = ("did you mean %s?" % close) if close else "add a Tier document named %s" % policy.tier
            problems.append(errors.Problem(policy.kind, _display(policy.kind, (policy.namespace, policy.name)),
                                           "spec.tier", "the tier %s does not exist (%s)" % (_show(policy.tier), fix),
                                           policy.origin))
    endpoints: List[Any] = list(world.host_endpoints.values()) + list(world.workload_endpoints.values())
    for ep in endpoints:
        for i, name in enumerate(ep.profiles):
            if name not in world.profiles:
                close = _closest(name, world.profiles)
                fix = ("did you mean %s?" % close) if close else \
                    "add the Profile document, e.g. from 'calicoctl get profile %s -o yaml', or remove the reference" \
                    % name
                kind = api.HOST_ENDPOINT if isinstance(ep, api.HostEndpoint) else api.WORKLOAD_ENDPOINT
                who = ep.name if kind == api.HOST_ENDPOINT else "%s/%s" % (ep.namespace, ep.name)
                problems.append(errors.Problem(kind, who, "spec.profiles[%d]" % i,
                                               "the profile %s does not exist (%s)" % (_show(name), fix), ep.origin))
    seen = set()
    for p in problems:
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
