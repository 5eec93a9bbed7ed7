# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compile a whole inventory, once: inputs -> world -> model -> per-host tables, proofs, matrix.

This is the one entry point used by the action plugins, the benchmark and the tests::

    comp = compile_inventory(hostvars, base_dir)      # raises HostfwError on bad input
    comp.ruleset("node1")                             # nft text, or None without a HostEndpoint
    comp.failsafe_proof("node1")                      # every failsafe entry accepted first?
    comp.check_access("node1", "10.0.0.9", "10.0.0.5", "TCP", 22)
    comp.matrix(probes)

Per-host work (plan, render) is done on demand and cached; hosts whose plans are equal share the
rendered body.  ``timings`` records the seconds spent in each stage.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence

from ansible_collections.hostfw.nftables.plugins.plugin_utils import api, sources
from ansible_collections.hostfw.nftables.plugins.plugin_utils.evaluate import Evaluator, Packet
from ansible_collections.hostfw.nftables.plugins.plugin_utils.matrix import MatrixBuilder, to_markdown
from ansible_collections.hostfw.nftables.plugins.plugin_utils.model import (
    EGRESS, INGRESS, NORMAL, PREDNAT, UNTRACKED, WILDCARD, HostPlan, Model)
from ansible_collections.hostfw.nftables.plugins.plugin_utils.render import Renderer

# A sample source port for failsafe proofs: not itself a failsafe port.
PROOF_SPORT = 43210
PROOF_SOURCES = {4: "192.0.2.1", 6: "2001:db8::1"}
PROOF_DESTS = {4: "192.0.2.2", 6: "2001:db8::2"}


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class Proof:
    ok: bool
    messages: List[str] = field(default_factory=list)
    checked: int = 0

    def as_dict(self) -> Dict[str, Any]:
        return {"ok": self.ok, "messages": list(self.messages), "checked": self.checked}


class Compilation:
    def __init__(self, world: api.World, inventory, timings: Optional[Dict[str, float]] = None):
        self.world = world
        self.inventory = inventory
        self.timings: Dict[str, float] = dict(timings or {})
        t0 = time.perf_counter()
        self.model = Model(world, inventory.nodes, inventory.interfaces)
        self.timings["index"] = time.perf_counter() - t0
        self.renderer = Renderer(self.model)
        self.evaluator = Evaluator(self.model)
        self._plans: Dict[str, Optional[HostPlan]] = {}
        self._rulesets: Dict[str, Optional[str]] = {}
        self._proven: Dict[tuple, int] = {}

    @property
    def hosts(self) -> List[str]:
        return sorted(self.inventory.nodes)

    @property
    def warnings(self) -> List[str]:
        return list(self.world.warnings) + list(self.model.warnings)

    def plan(self, host: str) -> Optional[HostPlan]:
        if host not in self._plans:
            self._plans[host] = self.model.host_plan(host)
        return self._plans[host]

    def ruleset(self, host: str) -> Optional[str]:
        if host not in self._rulesets:
            plan = self.plan(host)
            self._rulesets[host] = self.renderer.render(plan) if plan is not None else None
        return self._rulesets[host]

    def hosts_with_rulesets(self) -> List[str]:
        return [h for h in self.hosts if self.plan(h) is not None]

    # -- proofs -------------------------------------------------------------------------------

    def failsafe_proof(self, host: str, protected_inbound: Sequence[api.FailsafeEntry] = (),
                       protected_outbound: Sequence[api.FailsafeEntry] = ()) -> Proof:
        """Proof, from the compiled plan, that the host cannot be cut off:

        * every configured failsafe entry is accepted before any policy verdict, on every
          host-endpoint interface, through every stage (doNotTrack, preDNAT, normal);
        * every *protected* entry (``hostfw_protected_ports``; by default the failsafe defaults
          of design.md) is accepted for a new connection from an arbitrary address, even when
          a FelixConfiguration removed it from the failsafes: a policy set that would close
          SSH, BGP or etcd is refused, naming the tier and policy that would close it.
        """
        plan = self.plan(host)
        if plan is None:
            return Proof(True, ["host %s has no host endpoint: nothing is policed" % host])
        # Hosts whose endpoints share interfaces, tiers and profiles (the model shares the tier
        # tuples of endpoints alike) and Felix settings share the outcome: a proven shape is proven
        # for all of them.  Failures are recomputed per host, so that messages name the host.
        shape = (tuple((ep.iface, id(ep.tiers), tuple(p.name for p in ep.profiles)) for ep in plan.endpoints),
                 plan.felix, tuple(protected_inbound), tuple(protected_outbound))
        proven = self._proven.get(shape)
        if proven is not None:
            return Proof(True, [], proven)
        problems: List[str] = []
        checked = 0
        ifaces = [ep.iface for ep in plan.endpoints]
        fin = set(plan.felix.failsafe_inbound)
        fout = set(plan.felix.failsafe_outbound)
        items = ([(e, INGRESS, True) for e in plan.felix.failsafe_inbound]
                 + [(e, EGRESS, True) for e in plan.felix.failsafe_outbound]
                 + [(e, INGRESS, False) for e in protected_inbound if e not in fin]
                 + [(e, EGRESS, False) for e in protected_outbound if e not in fout])
        for entry, direction, configured in items:
            proto = 6 if entry.protocol == "tcp" else 17
            families = [6 if ":" in entry.net else 4] if entry.net else [4, 6]
            for fam in families:
                remote = _address_in(entry.net) if entry.net else PROOF_SOURCES[fam]
                local = PROOF_DESTS[fam]
                for iface in ifaces:
                    checked += 1
                    if direction == INGRESS:
                        pkt = Packet(remote, local, proto, sport=PROOF_SPORT, dport=entry.port)
                        v = self.evaluator.input(plan, iface, pkt)
                        what = "inbound"
                    else:
                        pkt = Packet(local, remote, proto, sport=PROOF_SPORT, dport=entry.port)
                        v = self.evaluator.output(plan, iface, pkt)
                        what = "outbound"
                    where = "all interfaces (*)" if iface == WILDCARD else "interface " + iface
                    if configured and not v.reason.startswith("failsafe"):
                        problems.append("failsafe %s %s (IPv%d) is not accepted first on %s of host %s: %s (%s)"
                                        % (what, entry, fam, where, host, v.verdict, v.reason))
                    elif not configured and not v.allowed:
                        problems.append("protected %s port %s (IPv%d) would be closed on %s of host %s by %s "
                                        "(it is not a failsafe entry in the FelixConfiguration; allow it in a "
                                        "policy, restore the failsafe, or remove it from hostfw_protected_ports)"
                                        % (what, entry, fam, where, host, v.reason))
        if not problems:
            self._proven[shape] = checked
        return Proof(not problems, problems, checked)

    def check_access(self, host: str, source: str, destination: str, protocol: str, port: Optional[int],
                     iface: Optional[str] = None) -> Dict[str, Any]:
        """Would ``host`` accept a new connection from ``source`` to its ``destination``:``port``?"""
        plan = self.plan(host)
        if plan is None:
            return {"allowed": True, "reason": "host %s has no host endpoint (not policed)" % host}
        proto = api.PROTOCOL_NUMBERS[protocol]
        pkt = Packet(source, destination, proto, sport=PROOF_SPORT, dport=port)
        if iface is None:
            iface = self._iface_for_address(plan, destination)
        v = self.evaluator.input(plan, iface, pkt)
        return {"allowed": v.allowed, "reason": v.reason, "interface": iface, "packet": pkt.describe()}

    def _iface_for_address(self, plan: HostPlan, address: str) -> str:
        known = self.inventory.interfaces.get(plan.host) or {}
        for ifname, addrs in sorted(known.items()):
            if address in {str(a).split("/", maxsplit=1)[0] for a in addrs}:
                return ifname
        for ep in plan.named():
            if address in ep.hep.expected_ips:
                return ep.iface
        return WILDCARD if plan.wildcard is not None else (plan.named()[0].iface if plan.named() else WILDCARD)

    # -- matrix --------------------------------------------------------------------------------

    def matrix(self, probes: Optional[Sequence[Dict]] = None) -> Dict:
        builder = MatrixBuilder(self.model, self.inventory.hosts_of_node)
        return builder.build(probes if probes is not None else self.inventory.probes)

    @staticmethod
    def matrix_markdown(matrix: Dict) -> str:
        return to_markdown(matrix)


def _address_in(net: str) -> str:
    import ipaddress
    n = ipaddress.ip_network(net, strict=False)
    return str(n.network_address + (1 if n.num_addresses > 2 else 0))


def compile_inventory(hostvars: Mapping[str, Mapping[str, Any]], base_dir: str) -> Compilation:
    """Validate and index the whole inventory.  Raises HostfwError listing every problem."""
    t0 = time.perf_counter()
    world, inventory = sources.load_world(hostvars, base_dir)
    timings = dict(getattr(inventory, "timings", {}) or {})
    timings["load_and_validate"] = time.perf_counter() - t0
    return Compilation(world, inventory, timings)


def compile_documents(documents, nodes: Optional[Dict[str, str]] = None,
                      interfaces: Optional[Dict[str, Dict[str, Sequence[str]]]] = None,
                      probes: Optional[Sequence[Dict]] = None) -> Compilation:
    """Compile raw documents directly (tests and tools): hosts are the HEP nodes."""
    from ansible_collections.hostfw.nftables.plugins.plugin_utils import resources
    world = resources.build_world([(d, "document %d" % i) if isinstance(d, dict) else d
                                   for i, d in enumerate(documents)])
    all_nodes = dict(nodes or {})
    for hep in world.host_endpoints.values():
        all_nodes.setdefault(hep.node, hep.node)
    inv = _SimpleInventory(all_nodes, interfaces or {},
                           list(probes) if probes is not None else [{"protocol": "TCP", "port": 22},
                                                                    {"protocol": "TCP", "port": 10250}])
    return Compilation(world, inv)


class _SimpleInventory:
    def __init__(self, nodes, interfaces, probes):
        self.nodes = nodes
        self.interfaces = interfaces
        self.probes = probes
        self.hosts_of_node = {}
        for host, node in sorted(nodes.items()):
            self.hosts_of_node.setdefault(node, []).append(host)


__all__ = ["Compilation", "compile_inventory", "compile_documents", "Proof", "NORMAL", "UNTRACKED", "PREDNAT"]
