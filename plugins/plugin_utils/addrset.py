# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Address sets: merged, sorted, immutable interval lists of one IP family.

Selector sets, net lists and network sets all become :class:`AddrSet` objects.  Membership is a
binary search; rendering emits the minimal list of CIDRs (netaddr does the range -> CIDR split),
so an nft interval set never receives overlapping elements and identical input gives
byte-identical output.
"""

from __future__ import annotations

import bisect
import ipaddress
import re
from functools import lru_cache
from typing import Iterable, List, Optional, Tuple

try:
    import netaddr
except ImportError as exc:  # pragma: no cover - controller dependency, see requirements.txt
    netaddr = None
    NETADDR_IMPORT_ERROR = exc
else:
    NETADDR_IMPORT_ERROR = None


def _need_netaddr():
    if netaddr is None:
        raise ImportError("hostfw.nftables needs the Python library netaddr on the controller "
                          "(pip install netaddr): %s" % NETADDR_IMPORT_ERROR)


Interval = Tuple[int, int]


_V4_RE = re.compile(r"(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:/(\d{1,2}))?\Z")


def parse_v4(text: str) -> Optional[Tuple[int, int]]:
    """``"a.b.c.d"`` or ``"a.b.c.d/n"`` -> (address as int, prefix length), with the same
    acceptance as :mod:`ipaddress` (no leading zeros in an octet), or None for anything else
    (IPv6, or not an address).  Much faster than ipaddress for large network sets."""
    m = _V4_RE.match(text)
    if m is None:
        return None
    a, b, c, d, plen = m.groups()
    value = 0
    for octet in (a, b, c, d):
        if len(octet) > 1 and octet[0] == "0":
            return None
        n = int(octet)
        if n > 255:
            return None
        value = (value << 8) | n
    length = 32 if plen is None else int(plen)
    if length > 32 or (plen is not None and len(plen) > 1 and plen[0] == "0"):
        return None
    return value, length


def v4_text(value: int) -> str:
    return "%d.%d.%d.%d" % (value >> 24, (value >> 16) & 255, (value >> 8) & 255, value & 255)


@lru_cache(maxsize=1 << 16)
def parse_net(text: str) -> Tuple[int, int, int]:
    """``"10.0.0.0/8"`` or ``"10.0.0.1"`` -> (family, first, last).  Input is already validated."""
    v4 = parse_v4(text)
    if v4 is not None:
        host_bits = 32 - v4[1]
        first = v4[0] >> host_bits << host_bits
        return 4, first, first | ((1 << host_bits) - 1)
    net = ipaddress.ip_network(text, strict=False)
    return net.version, int(net.network_address), int(net.broadcast_address)


@lru_cache(maxsize=1 << 16)
def parse_ip(text: str) -> Tuple[int, int]:
    addr = ipaddress.ip_address(text)
    return addr.version, int(addr)


def family_of(text: str) -> int:
    """4 or 6: the family of an address or CIDR string (already validated)."""
    return 6 if ":" in text else 4


def merge(intervals: Iterable[Interval]) -> Tuple[Interval, ...]:
    out: List[List[int]] = []
    for first, last in sorted(intervals):
        if out and first <= out[-1][1] + 1:
            if last > out[-1][1]:
                out[-1][1] = last
        else:
            out.append([first, last])
    return tuple((a, b) for a, b in out)


class AddrSet:
    """An immutable set of addresses of one family."""

    __slots__ = ("family", "intervals", "_starts", "_hash")

    def __init__(self, family: int, intervals: Iterable[Interval] = ()):
        self.family = family
        self.intervals = merge(intervals)
        self._starts = [first for first, _last in self.intervals]
        self._hash = hash((family, self.intervals))

    @classmethod
    def from_nets(cls, family: int, nets: Iterable[str]) -> "AddrSet":
        ivs = []
        for n in nets:
            fam, a, b = parse_net(n)
            if fam == family:
                ivs.append((a, b))
        return cls(family, ivs)

    def __contains__(self, ip: int) -> bool:
        i = bisect.bisect_right(self._starts, ip) - 1
        return i >= 0 and self.intervals[i][1] >= ip

    def __bool__(self) -> bool:
        return bool(self.intervals)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AddrSet) and self.family == other.family and self.intervals == other.intervals

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        return "AddrSet(%d, %s)" % (self.family, ", ".join(self.elements()))

    def union(self, other: "AddrSet") -> "AddrSet":
        return AddrSet(self.family, self.intervals + other.intervals)

    def count(self) -> int:
        return len(self.intervals)

    def elements(self) -> List[str]:
        """Minimal CIDR list, sorted by address."""
        return _elements(self.family, self.intervals)


@lru_cache(maxsize=1 << 14)
def _elements(family: int, intervals: Tuple[Interval, ...]) -> List[str]:
    _need_netaddr()
    out: List[str] = []
    full = 32 if family == 4 else 128
    for first, last in intervals:
        if first == last:
            out.append(v4_text(first) if family == 4 else str(netaddr.IPAddress(first, family)))
            continue
        for cidr in netaddr.iprange_to_cidrs(netaddr.IPAddress(first, family), netaddr.IPAddress(last, family)):
            out.append(str(cidr.ip) if cidr.prefixlen == full else str(cidr))
    return out


def int_to_ip(family: int, value: int) -> str:
    return str(ipaddress.IPv4Address(value) if family == 4 else ipaddress.IPv6Address(value))
