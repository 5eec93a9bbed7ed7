# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The validation toolkit: generic checks that every validator of the core uses.

Each check takes the :class:`~errors.Scope` of the document being validated, the raw value and
its field path (spelled with the YAML field names, e.g. ``spec.ingress[0].protocol``), reports
what is wrong and the fix through ``scope.err()``, and returns the checked value, ``None`` when
the value is absent, or :data:`BAD` after reporting a problem.  Callers test ``is BAD`` and go on
validating, so that one run reports every problem of the input.

:mod:`resources` (the Calico kinds), :mod:`felix` (FelixConfiguration) and :mod:`sources`
(inventory variables) build on these.  This module imports nothing from Ansible.
"""

from __future__ import annotations

import difflib
import functools
import ipaddress
import math
import re
from collections import abc as _abc
from typing import Any, Dict, Iterable, Mapping, Optional, Sequence

from ansible_collections.hostfw.nftables.plugins.plugin_utils.addrset import parse_v4, v4_text
from ansible_collections.hostfw.nftables.plugins.plugin_utils.errors import Scope

MAX_NAME = 253
MAX_ANNOTATIONS = 256 * 1024

# ----------------------------------------------------------------------------------------------
# Regular expressions (all used with fullmatch)
# ----------------------------------------------------------------------------------------------

DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS_SUBDOMAIN = DNS_LABEL + r"(\." + DNS_LABEL + r")*"
NAME_RE = re.compile(DNS_SUBDOMAIN)
TIER_NAME_RE = re.compile(DNS_LABEL)
GNP_NAME_RE = re.compile(r"(" + DNS_LABEL + r"\.)?" + DNS_LABEL)
NP_NAME_RE = re.compile(r"(" + DNS_LABEL + r")(\." + DNS_LABEL + r")?|(knp|ossg)\.default\." + DNS_SUBDOMAIN)
QUALIFIED_PART_RE = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
INTERFACE_RE = re.compile(r"[a-zA-Z0-9_.-]{1,15}")
CONTAINER_ID_RE = re.compile(r"[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?")
_HEX_RE = re.compile(r"[0-9A-Fa-f]+")
DIGITS_RE = re.compile(r"[0-9]+")

BAD = object()  # "the value was invalid and has been reported"


def is_map(value: Any) -> bool:
    return isinstance(value, (dict, _abc.Mapping))


def to_int(digits: str) -> int:
    """int() of a string of decimal digits, without Python's limit on very long strings."""
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= 12 else 10 ** 12


# ----------------------------------------------------------------------------------------------
# Message helpers
# ----------------------------------------------------------------------------------------------

def tname(value: Any) -> str:
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
    if is_map(value):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return "a %s" % type(value).__name__


def show(value: Any) -> str:
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
    return tname(value)


def shown(value: Any) -> str:
    """A scalar shown as it is, anything else by its type."""
    return show(value) if isinstance(value, (str, int, float)) else tname(value)


def join_path(base: str, field: str) -> str:
    return base + "." + field if base else field


def index_path(base: str, index: int) -> str:
    return "%s[%d]" % (base, index)


def key_path(base: str, key: str) -> str:
    return "%s[%s]" % (base, repr(key))


def closest(word: Any, choices: Iterable[str]) -> Optional[str]:
    word = str(word)
    choices = list(choices)
    for c in choices:
        if c.lower() == word.lower():
            return c
    found = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return found[0] if found else None


def one_of(choices: Sequence[str]) -> str:
    choices = list(choices)
    if len(choices) == 1:
        return choices[0]
    return "%s or %s" % (", ".join(choices[:-1]), choices[-1])


def sanitise_name(text: str, allow_dots: bool = True) -> str:
    out = re.sub(r"[^a-z0-9.-]" if allow_dots else r"[^a-z0-9-]", "-", text.lower())
    out = re.sub(r"-{2,}", "-", out)
    return out.strip("-.")


# ----------------------------------------------------------------------------------------------
# Generic value checks.  Each returns the value, None when absent, or BAD after reporting.
# ----------------------------------------------------------------------------------------------

ENTERPRISE_FIX = "remove it: hostfw implements open-source Calico"


def fields(c: Scope, value: Any, path: str, allowed: Iterable[str], what: str = "",
           hints: Optional[Mapping[str, str]] = None,
           enterprise: Optional[Mapping[str, str]] = None) -> Optional[Dict[str, Any]]:
    """A mapping with only known keys (unknown keys are reported).  None -> {}; not a mapping ->
    reported and None.  ``hints`` maps a misplaced field name to the fix to suggest;
    ``enterprise`` maps a field that only Calico Enterprise has to the fix to suggest."""
    if value is None:
        return {}
    if not is_map(value):
        c.err(path, "expected a mapping of fields, got %s" % tname(value),
              "write %s as a mapping, e.g. 'field: value'" % (what or path or "the document"))
        return None
    allowed = allowed if isinstance(allowed, (set, frozenset, dict)) else frozenset(allowed)
    out = {}
    for key, item in value.items():
        if isinstance(key, str) and key in allowed:
            out[key] = item
            continue
        if hints and isinstance(key, str) and key in hints:
            c.err(join_path(path, key), "unknown field", hints[key])
            continue
        if enterprise and isinstance(key, str) and key in enterprise:
            c.err(join_path(path, key), "%s is a Calico Enterprise field, not part of open-source Calico's %s"
                  % (key, c.kind), enterprise[key])
            continue
        unknown_field(c, path, key, allowed)
    return out


def unknown_field(c: Scope, path: str, key: Any, allowed: Iterable[str]) -> None:
    allowed = sorted(allowed)
    close = closest(key, allowed)
    if close:
        fix = "did you mean %s?" % close
    elif len(allowed) <= 20:
        fix = "remove it; valid fields here: %s" % ", ".join(allowed)
    else:
        fix = "remove it; it is not a %s field" % c.kind
    c.err(join_path(path, str(key)), "unknown field", fix)


def string(c: Scope, value: Any, path: str) -> Any:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        c.err(path, "expected a string, got the boolean %s" % show(value),
              "quote the value: YAML reads unquoted true, false, yes, no, on and off as booleans")
    elif isinstance(value, (int, float)):
        c.err(path, "expected a string, got the number %s" % show(value), "quote the value: '%s'" % show(value))
    else:
        c.err(path, "expected a string, got %s" % tname(value), "write a single string here")
    return BAD


def boolean(c: Scope, value: Any, path: str) -> Any:
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    c.err(path, "expected true or false, got %s" % shown(value), "write true or false without quotes")
    return BAD


def as_int(value: Any) -> Optional[int]:
    """``value`` as an integer when Calico reads it as one, else None.  A YAML number with a
    fraction of zero (``80.0``) is an integer to Calico: ``calicoctl`` and ``kubectl`` turn YAML into
    JSON through Go's encoding/json, which writes the float 80.0 as ``80``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def integer(c: Scope, value: Any, path: str, low: int, high: int, what: str) -> Any:
    if value is None:
        return None
    number = as_int(value)
    if number is None:
        c.err(path, "expected an integer, got %s" % shown(value),
              "write %s as a number %d-%d without quotes" % (what, low, high))
        return BAD
    value = number
    if not low <= value <= high:
        c.err(path, "%d is not a valid %s" % (value, what), "use %d-%d" % (low, high))
        return BAD
    return value


def order(c: Scope, value: Any, path: str) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        c.err(path, "expected a number, got %s" % (show(value) if isinstance(value, str) else tname(value)),
              "write the order as a number without quotes, e.g. 100")
        return BAD
    value = float(value)
    if not math.isfinite(value):
        c.err(path, "%s is not a finite number" % show(value), "use a finite number, or leave order unset")
        return BAD
    return value


def list_of(c: Scope, value: Any, path: str, max_items: Optional[int] = None, what: str = "items") -> Any:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)):
        c.err(path, "expected a list, got %s" % (show(value) if isinstance(value, str) else tname(value)),
              "write a YAML list, e.g. [%s]" % (show(value) if isinstance(value, (str, int)) else "..."))
        return BAD
    if max_items is not None and len(value) > max_items:
        c.err(path, "has %d %s" % (len(value), what), "use at most %d" % max_items)
        return BAD
    return value


def string_set(c: Scope, value: Any, path: str) -> Any:
    """A list of strings without duplicates (a Kubernetes ``listType=set``)."""
    items = list_of(c, value, path)
    if items is None or items is BAD:
        return items
    out = []
    seen = set()
    bad = False
    for i, item in enumerate(items):
        s = string(c, item, index_path(path, i))
        if s is None:
            c.err(index_path(path, i), "is empty", "remove the empty entry")
            bad = True
            continue
        if s is BAD:
            bad = True
            continue
        if s in seen:
            c.err(index_path(path, i), "%s is listed twice" % show(s), "remove the duplicate")
            bad = True
            continue
        seen.add(s)
        out.append(s)
    return BAD if bad else out


def enum(c: Scope, value: Any, path: str, choices: Sequence[str], what: str, ignore_case: bool = False) -> Any:
    if value is None:
        return None
    s = string(c, value, path)
    if s is BAD:
        return BAD
    if ignore_case:
        for choice in choices:
            if choice.lower() == s.lower():
                return choice
    elif s in choices:
        return s
    close = closest(s, choices)
    if close and close.lower() == s.lower():
        fix = "use %s" % close
    else:
        fix = "use %s" % one_of(choices)
    c.err(path, "%s is not %s" % (show(s), what), fix)
    return BAD


# ----------------------------------------------------------------------------------------------
# Names, labels, annotations
# ----------------------------------------------------------------------------------------------

NAME_RULES = {
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
    # Calico's validator tag ``name``: the DNS-subdomain pattern without a length limit
    "name": (NAME_RE, 1 << 62, "use lower case letters, digits, '-' and '.', starting and ending with a letter or "
                               "digit", True),
}


def valid_name(text: str, rule: str) -> bool:
    regex, max_len = NAME_RULES[rule][:2]
    return len(text) <= max_len and regex.fullmatch(text) is not None


def check_name(c: Scope, value: Any, path: str, rule: str, what: str = "name") -> Any:
    """Validate a resource name; returns it or BAD."""
    s = string(c, value, path)
    if s is BAD:
        return BAD
    if s is None or s == "":
        c.err(path, "missing", "set %s" % path)
        return BAD
    regex, max_len, describe, dots = NAME_RULES[rule]
    if len(s) > max_len:
        c.err(path, "%s is %d characters long" % (what, len(s)), "use at most %d" % max_len)
        return BAD
    if regex.fullmatch(s) is None:
        fix = describe
        suggestion = sanitise_name(s, dots)
        if rule in ("gnp", "np") and suggestion.count(".") > 1:
            head, _unused, tail = suggestion.partition(".")
            suggestion = head + "." + tail.replace(".", "-")
        if suggestion and suggestion != s and regex.fullmatch(suggestion) and len(suggestion) <= max_len:
            fix += ", e.g. %s" % show(suggestion)
        c.err(path, "%s is not a valid %s" % (show(s), what), fix)
        return BAD
    return s


def qualified_name_problem(key: str) -> Optional[str]:
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
    if QUALIFIED_PART_RE.fullmatch(name) is None:
        return "has a name part that is not letters, digits, '-', '_' and '.' starting and ending with a " \
               "letter or digit"
    return None


LABEL_KEY_FIX = ("use an optional DNS-subdomain prefix and '/', then at most 63 letters, digits, '-', '_' or '.', "
                 "starting and ending with a letter or digit")
LABEL_VALUE_FIX = ("use at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit, "
                   "or an empty string")


def _qualified_map(c: Scope, value: Any, path: str, what: str, fold_case: bool, check_value) -> Any:
    """The loop shared by labels and annotations: a mapping whose keys are Kubernetes qualified
    names (compared lower-cased when ``fold_case``) and whose values are strings (None = "").
    ``check_value(key, item)`` reports a bad string value and returns False.  Returns the dict or BAD."""
    if value is None:
        return {}
    if not is_map(value):
        c.err(path, "expected a mapping of %s names to values, got %s" % (what, tname(value)),
              "write %ss as 'name: value' lines" % what)
        return BAD
    out = {}
    bad = False
    for key, item in value.items():
        if not isinstance(key, str):
            c.err(path, "%s name %s is %s, not a string" % (what, show(key), tname(key)),
                  "quote the %s name: '%s'" % (what, show(key)))
            bad = True
            continue
        why = qualified_name_problem(key.lower() if fold_case else key)
        if why:
            c.err(path, "%s is not a valid %s name: it %s" % (show(key), what, why), LABEL_KEY_FIX)
            bad = True
            continue
        if item is None:
            item = ""
        if not check_value(key, item):
            bad = True
            continue
        out[key] = item
    return BAD if bad else out


def labels(c: Scope, value: Any, path: str) -> Any:
    """A label map (keys qualified names, values label values).  Returns a dict or BAD."""

    def check_value(key: str, item: Any) -> bool:
        if not isinstance(item, str):
            string(c, item, key_path(path, key))
            return False
        if item and (len(item) > 63 or QUALIFIED_PART_RE.fullmatch(item) is None):
            c.err(key_path(path, key), "%s is not a valid label value" % show(item), LABEL_VALUE_FIX)
            return False
        return True

    return _qualified_map(c, value, path, "label", False, check_value)


def annotations(c: Scope, value: Any, path: str) -> Any:
    """An annotation map (keys qualified names, checked lower-cased; values any strings, at most
    256 KiB in total).  Returns a dict or BAD."""

    def check_value(key: str, item: Any) -> bool:
        if not isinstance(item, str):
            c.err(key_path(path, key), "expected a string, got %s" % tname(item), "quote the value")
            return False
        return True

    out = _qualified_map(c, value, path, "annotation", True, check_value)
    # bytes, as Go counts len() of a string (validateObjectMetaAnnotations)
    total = sum(len(k.encode("utf-8", "surrogatepass")) + len(v.encode("utf-8", "surrogatepass"))
                for k, v in out.items()) if out is not BAD else 0
    if total > MAX_ANNOTATIONS:
        c.err(path, "the annotations are %d bytes in total" % total, "use at most %d bytes" % MAX_ANNOTATIONS)
        return BAD
    return out


# ----------------------------------------------------------------------------------------------
# Addresses
# ----------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1 << 16)
def parse_ip(text: str):
    if "%" in text or not text or text != text.strip():
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def is_ipv4(addr) -> bool:
    """Go's ``ip.To4() != nil``: an IPv4 address or an IPv4-mapped IPv6 address."""
    return addr.version == 4 or addr.ipv4_mapped is not None


def valid_mac(text: str) -> bool:
    """Go's ``net.ParseMAC`` (Calico's ``mac`` tag): 6, 8 or 20 octets as pairs of hex digits
    separated by one of ':' or '-', or as groups of four separated by '.'."""
    if len(text) < 14:
        return False
    if text[2] in ":-":
        parts, width = text.split(text[2]), 2
    elif text[4] == ".":
        parts, width = text.split("."), 4
    else:
        return False
    return (len(parts) * width // 2 in (6, 8, 20)
            and all(len(part) == width and _HEX_RE.fullmatch(part) for part in parts))


@functools.lru_cache(maxsize=1 << 16)
def parse_cidr(text: str):
    """(address, network) for 'a.b.c.d/n' (prefix must be decimal digits) or None."""
    if "%" in text or text.count("/") != 1 or text != text.strip():
        return None
    addr_text, plen = text.split("/")
    if not DIGITS_RE.fullmatch(plen):
        return None
    addr = parse_ip(addr_text)
    if addr is None or to_int(plen) > addr.max_prefixlen:
        return None
    return addr, ipaddress.ip_network("%s/%d" % (addr, to_int(plen)), strict=False)


def bare_ip(c: Scope, value: Any, path: str) -> Any:
    """A bare IP address (no prefix length), normalised."""
    s = string(c, value, path)
    if s is None or s is BAD:
        return s
    addr = parse_ip(s)
    if addr is not None:
        return str(addr)
    cidr = parse_cidr(s)
    if cidr is not None:
        c.err(path, "%s has a prefix length" % show(s), "write the bare address %s" % cidr[0])
    else:
        c.err(path, "%s is not an IP address" % show(s), "write an IPv4 or IPv6 address such as 10.0.0.5")
    return BAD


def loose_cidr(c: Scope, value: Any, path: str) -> Any:
    """A CIDR (host bits allowed) or a bare IP: returns the masked network string."""
    s = string(c, value, path)
    if s is None or s is BAD:
        if s is None:
            c.err(path, "is empty", "write a CIDR such as 10.0.0.0/24 or an address")
            return BAD
        return s
    v4 = parse_v4(s)  # the common case, without ipaddress objects (network sets can be huge)
    if v4 is not None:
        host_bits = 32 - v4[1]
        return "%s/%d" % (v4_text(v4[0] >> host_bits << host_bits), v4[1])
    addr = parse_ip(s)
    if addr is not None:
        return str(ipaddress.ip_network(addr))
    cidr = parse_cidr(s)
    if cidr is not None:
        return str(cidr[1])
    c.err(path, "%s is not a CIDR or an IP address" % show(s), "write a CIDR such as 10.0.0.0/24 or an address")
    return BAD


def strict_cidr(c: Scope, value: Any, path: str) -> Any:
    """Rule nets: a strictly masked CIDR with a prefix length.  Calico's rule validator
    (libcalico-go validator.go ``validateRule``) parses every ``nets``/``notNets`` entry with
    ``cnet.ParseCIDR``, so a bare address is an "invalid CIDR", and the field tag ``net`` refuses
    host bits: ``10.0.0.0/24`` and ``10.0.0.1/32`` are accepted, ``10.0.0.1`` and ``10.0.0.1/24``
    are not.  Returns (network, version)."""
    s = string(c, value, path)
    if s is None or s is BAD:
        if s is None:
            c.err(path, "is empty", "write a CIDR such as 10.0.0.0/24")
            return BAD
        return s
    if "/" not in s:
        addr = parse_ip(s)
        if addr is not None:
            c.err(path, "%s has no prefix length" % show(s),
                  "write %s/%d: Calico's rule nets are CIDRs" % (addr, addr.max_prefixlen))
        else:
            c.err(path, "%s is not a CIDR" % show(s), "write a masked network such as 10.0.0.0/24")
        return BAD
    v4 = parse_v4(s)
    if v4 is not None and v4[0] & ((1 << (32 - v4[1])) - 1) == 0:
        return "%s/%d" % (v4_text(v4[0]), v4[1]), 4
    cidr = parse_cidr(s)
    if cidr is None:
        c.err(path, "%s is not a CIDR" % show(s), "write a masked network such as 10.0.0.0/24")
        return BAD
    addr, net = cidr
    if addr != net.network_address:
        c.err(path, "%s is not a masked network" % show(s),
              "use %s, or %s/%d for the single address" % (net, addr, addr.max_prefixlen))
        return BAD
    return str(net), net.version
