# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Validated Calico ``projectcalico.org/v3`` objects.

``resources.py`` turns raw documents into these dataclasses (validating exactly as Calico does);
``model.py`` and everything after it only ever see these.  Values are normalised:

* protocols are numbers (TCP 6, UDP 17, ICMP 1, ICMPv6 58, SCTP 132, UDPLite 136);
* nets are masked CIDR strings (``10.0.0.1`` -> ``10.0.0.1/32``, ``fd00::/8``), de-duplicated,
  in input order;
* ports are :class:`PortRange` (a single port is a range of one) or :class:`NamedPort`;
* selectors are parsed :class:`~selector.Selector` objects (``None`` when absent);
* ``order`` is a float or ``None`` (unset, sorts as +infinity).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple, Union

PROTOCOL_NUMBERS = {"TCP": 6, "UDP": 17, "ICMP": 1, "ICMPv6": 58, "SCTP": 132, "UDPLite": 136}
PROTOCOL_NAMES = {v: k for k, v in PROTOCOL_NUMBERS.items()}
PORT_PROTOCOLS = frozenset((6, 17, 132))

ACTIONS = ("Allow", "Deny", "Log", "Pass")
INGRESS = "Ingress"
EGRESS = "Egress"

HOST_ENDPOINT = "HostEndpoint"
GLOBAL_NETWORK_POLICY = "GlobalNetworkPolicy"
STAGED_GLOBAL_NETWORK_POLICY = "StagedGlobalNetworkPolicy"
NETWORK_POLICY = "NetworkPolicy"
STAGED_NETWORK_POLICY = "StagedNetworkPolicy"
TIER = "Tier"
GLOBAL_NETWORK_SET = "GlobalNetworkSet"
NETWORK_SET = "NetworkSet"
WORKLOAD_ENDPOINT = "WorkloadEndpoint"
PROFILE = "Profile"
FELIX_CONFIGURATION = "FelixConfiguration"

DEFAULT_TIER = "default"
DEFAULT_ALLOW_PROFILE = "projectcalico-default-allow"
NAMESPACE_LABEL = "projectcalico.org/namespace"

# Felix's cali-wl-to-host chain accepts these ICMPv6 types (MLD, router solicitation, neighbour
# solicitation and advertisement) from local workloads before DefaultEndpointToHostAction.
WORKLOAD_ICMPV6_TYPES = (130, 131, 132, 133, 135, 136)


@dataclass(frozen=True)
class PortRange:
    first: int
    last: int

    def __str__(self) -> str:
        return str(self.first) if self.first == self.last else "%d-%d" % (self.first, self.last)


@dataclass(frozen=True)
class NamedPort:
    name: str

    def __str__(self) -> str:
        return self.name


Port = Union[PortRange, NamedPort]


@dataclass(frozen=True)
class ICMPMatch:
    type: Optional[int] = None
    code: Optional[int] = None


@dataclass(frozen=True)
class EntityRule:
    nets: Tuple[str, ...] = ()
    not_nets: Tuple[str, ...] = ()
    selector: Optional["object"] = None  # selector.Selector
    not_selector: Optional["object"] = None
    # namespaceSelector: None when absent; ``global_scope`` is True for ``global()``.
    namespace_selector: Optional["object"] = None
    global_scope: bool = False
    ports: Tuple[Port, ...] = ()
    not_ports: Tuple[Port, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.nets or self.not_nets or self.selector is not None or self.not_selector is not None
                    or self.namespace_selector is not None or self.global_scope or self.ports or self.not_ports)


@dataclass(frozen=True)
class Rule:
    action: str
    ip_version: Optional[int] = None
    protocol: Optional[int] = None
    not_protocol: Optional[int] = None
    icmp: Optional[ICMPMatch] = None
    not_icmp: Optional[ICMPMatch] = None
    source: EntityRule = field(default_factory=EntityRule)
    destination: EntityRule = field(default_factory=EntityRule)
    annotations: Tuple[Tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Tier:
    name: str
    order: Optional[float] = None
    default_action: str = "Deny"  # "Deny" or "Pass"
    builtin: bool = False
    origin: Optional[str] = None


@dataclass(frozen=True)
class Policy:
    """GlobalNetworkPolicy, StagedGlobalNetworkPolicy, NetworkPolicy or StagedNetworkPolicy."""

    kind: str
    name: str
    namespace: Optional[str] = None
    tier: str = DEFAULT_TIER
    order: Optional[float] = None
    selector: Optional["object"] = None  # None = all()
    namespace_selector: Optional["object"] = None
    service_account_selector: Optional["object"] = None
    types: Tuple[str, ...] = (INGRESS,)
    ingress: Tuple[Rule, ...] = ()
    egress: Tuple[Rule, ...] = ()
    do_not_track: bool = False
    pre_dnat: bool = False
    apply_on_forward: bool = False
    staged_action: Optional[str] = None  # only for staged kinds ("Set", "Delete", "Learn", "Ignore")
    labels: Tuple[Tuple[str, str], ...] = ()
    origin: Optional[str] = None

    @property
    def staged(self) -> bool:
        return self.kind in (STAGED_GLOBAL_NETWORK_POLICY, STAGED_NETWORK_POLICY)

    @property
    def can_select_hosts(self) -> bool:
        """Only (staged) GNPs without namespace/service-account selectors can select a HostEndpoint."""
        return (self.kind in (GLOBAL_NETWORK_POLICY, STAGED_GLOBAL_NETWORK_POLICY)
                and self.namespace_selector is None and self.service_account_selector is None)

    @property
    def key(self) -> str:
        """Felix's policy sort tie-breaker ``name/namespace/kind``."""
        return "%s/%s/%s" % (self.name, self.namespace or "", self.kind)


@dataclass(frozen=True)
class EndpointPort:
    name: str
    protocol: int
    port: int


@dataclass(frozen=True)
class HostEndpoint:
    name: str
    node: str
    labels: Dict[str, str] = field(default_factory=dict)
    interface_name: str = ""
    expected_ips: Tuple[str, ...] = ()  # bare addresses, normalised (no prefix length)
    profiles: Tuple[str, ...] = ()
    ports: Tuple[EndpointPort, ...] = ()
    origin: Optional[str] = None

    def __hash__(self) -> int:
        return hash((HOST_ENDPOINT, self.name))


@dataclass(frozen=True)
class WorkloadEndpoint:
    """A pod: a traffic source for rule selectors and the matrix.  ``labels`` include the
    implicit ``projectcalico.org/namespace`` (and ``projectcalico.org/orchestrator`` when given)."""

    name: str
    namespace: str
    labels: Dict[str, str] = field(default_factory=dict)
    ip_networks: Tuple[str, ...] = ()  # masked CIDRs, usually /32 or /128
    node: str = ""
    interface_name: str = ""
    profiles: Tuple[str, ...] = ()
    ports: Tuple[EndpointPort, ...] = ()
    origin: Optional[str] = None

    def __hash__(self) -> int:
        return hash((WORKLOAD_ENDPOINT, self.namespace, self.name))


@dataclass(frozen=True)
class NetworkSet:
    """GlobalNetworkSet (namespace None) or NetworkSet (namespaced; labels include the implicit
    namespace label)."""

    kind: str
    name: str
    namespace: Optional[str] = None
    labels: Dict[str, str] = field(default_factory=dict)
    nets: Tuple[str, ...] = ()  # masked CIDRs
    origin: Optional[str] = None

    def __hash__(self) -> int:
        return hash((self.kind, self.namespace, self.name))


@dataclass(frozen=True)
class Profile:
    name: str
    ingress: Tuple[Rule, ...] = ()
    egress: Tuple[Rule, ...] = ()
    labels_to_apply: Dict[str, str] = field(default_factory=dict)
    builtin: bool = False
    origin: Optional[str] = None

    def __hash__(self) -> int:
        return hash((PROFILE, self.name))


@dataclass(frozen=True)
class FailsafeEntry:
    protocol: str  # "tcp" or "udp"
    port: int
    net: Optional[str] = None  # masked CIDR or None (any address)

    def __str__(self) -> str:
        if self.net:
            net = "[%s]" % self.net if ":" in self.net else self.net
            return "%s:%s:%d" % (self.protocol, net, self.port)
        return "%s:%d" % (self.protocol, self.port)


@dataclass(frozen=True)
class FelixConfiguration:
    """One FelixConfiguration resource as written: ``values`` holds (attribute, value) for every
    setting of ``felix.SETTINGS`` it sets (the others come from less specific configurations or
    the defaults); ``node_selector`` scopes it to the nodes it matches (selector-scoped
    configurations only); ``created`` is its creationTimestamp (UTC, sortable) when given."""

    name: str
    values: Tuple[Tuple[str, object], ...] = ()
    node_selector: Optional["object"] = None  # selector.Selector
    created: Optional[str] = None
    origin: Optional[str] = None


@dataclass
class World:
    """Every validated object of one inventory, keyed by identity.  Built-ins are present:
    tier ``default`` and profile ``projectcalico-default-allow``."""

    tiers: Dict[str, Tier] = field(default_factory=dict)
    policies: Dict[Tuple[str, Optional[str], str], Policy] = field(default_factory=dict)  # (kind, ns, name)
    host_endpoints: Dict[str, HostEndpoint] = field(default_factory=dict)
    workload_endpoints: Dict[Tuple[str, str], WorkloadEndpoint] = field(default_factory=dict)  # (ns, name)
    network_sets: Dict[Tuple[str, Optional[str], str], NetworkSet] = field(default_factory=dict)
    profiles: Dict[str, Profile] = field(default_factory=dict)
    felix_configurations: Dict[str, FelixConfiguration] = field(default_factory=dict)
    warnings: list = field(default_factory=list)  # human-readable strings
