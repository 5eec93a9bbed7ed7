# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the rollout proves before it changes a host, from the compiled policy alone.

* :func:`failsafe_proof`: every failsafe entry of the host's FelixConfiguration is accepted before
  any policy verdict on every host-endpoint interface, and every *protected* port
  (``hostfw_protected_ports``) stays open even when a FelixConfiguration removed it from the
  failsafes;
* :func:`check_access`: would the host accept one new connection (the management connection);
* :func:`protected_ports`: ``hostfw_protected_ports`` and ``hostfw_verify_management_access`` of one
  host, parsed with the failsafe parsers of :mod:`felix`.

This module imports nothing from Ansible.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ansible_collections.hostfw.nftables.plugins.plugin_utils import api, checks, errors, felix
from ansible_collections.hostfw.nftables.plugins.plugin_utils.addrset import family_of, int_to_ip
from ansible_collections.hostfw.nftables.plugins.plugin_utils.evaluate import Evaluator, Packet
from ansible_collections.hostfw.nftables.plugins.plugin_utils.model import EGRESS, INGRESS, NORMAL, WILDCARD, HostPlan

# A sample source port for failsafe proofs: not itself a failsafe port.
PROOF_SPORT = 43210
PROOF_SOURCES = {4: "192.0.2.1", 6: "2001:db8::1"}
PROOF_DESTS = {4: "192.0.2.2", 6: "2001:db8::2"}

Entries = Tuple[api.FailsafeEntry, ...]


@dataclass
class Proof:
    """``messages``: one line per entry, family and interface that fails; ``refusals``: the same,
    one line per cause (what the rollout and the render show)."""

    ok: bool
    messages: List[str] = field(default_factory=list)
    checked: int = 0
    refusals: List[str] = field(default_factory=list)

    def as_dict(self) -> Dict[str, Any]:
        return {"ok": self.ok, "messages": list(self.messages), "checked": self.checked,
                "refusals": list(self.refusals)}


# ----------------------------------------------------------------------------------------------
# hostfw_protected_ports
# ----------------------------------------------------------------------------------------------

_NONE = ([], {}, "none")


def protected_ports(host: str, value: Any, verify_management_access: Any = True,
                    defaults: Tuple[Entries, Entries] = (felix.DEFAULT_FAILSAFE_INBOUND,
                                                         felix.DEFAULT_FAILSAFE_OUTBOUND)) -> Tuple[Entries, Entries]:
    """(inbound, outbound) protected entries of one host.

    ``value`` is ``hostfw_protected_ports``: None = the host's failsafe defaults (``defaults``); a mapping with
    ``inbound`` and/or ``outbound`` lists whose items are ``tcp:22`` strings (Felix's failsafe
    syntax, also ``tcp:10.0.0.0/8:22``), port numbers (TCP) or ``{protocol, port, net}``
    mappings (Calico's ProtoPort); ``[]``, ``{}`` or ``none`` = none.  With
    ``hostfw_verify_management_access`` false and no explicit value the operator takes the risk
    of cutting access: none are protected (configured failsafe entries are still proven).
    Raises :class:`~errors.HostfwError` naming the host and the entry."""
    if value is None:
        if _false(verify_management_access):
            return (), ()
        return defaults
    if isinstance(value, (list, dict, str)) and value in _NONE:
        return (), ()
    sink = errors.Collector()
    scope = sink.scope("Host", host)
    path = "hostfw_protected_ports"
    if not checks.is_map(value) or set(value) - {"inbound", "outbound"}:
        scope.err(path, "expected a mapping with 'inbound' and/or 'outbound' lists, got %s" % checks.shown(value),
                  "write e.g. {inbound: [tcp:22], outbound: [udp:53]}, or [] for none")
        sink.raise_if_any()
    out = []
    for key in ("inbound", "outbound"):
        entries: List[api.FailsafeEntry] = []
        items = checks.list_of(scope, value.get(key), checks.join_path(path, key))
        for i, item in enumerate(items if isinstance(items, list) else []):
            entries.extend(_protected_entry(scope, item, checks.index_path(checks.join_path(path, key), i)))
        out.append(tuple(entries))
    sink.raise_if_any()
    return out[0], out[1]


def _protected_entry(scope: errors.Scope, item: Any, path: str) -> Entries:
    if isinstance(item, bool) or not isinstance(item, (int, str)) and not checks.is_map(item):
        scope.err(path, "%s is not a protected port" % checks.shown(item), "use tcp:PORT, udp:PORT or "
                  "{protocol: TCP, port: PORT, net: CIDR}")
        return ()
    if isinstance(item, int):
        item = "tcp:%d" % item
    if isinstance(item, str):
        entries, problems = felix.parse_failsafe_string(item)
        for what, fix in problems:
            scope.err(path, what, fix)
        if not problems and (entries is None or len(entries) != 1):
            scope.err(path, "%s is not one protected port" % checks.show(item), "use tcp:PORT or udp:PORT")
            return ()
        return () if problems else entries
    item = dict(item)
    if isinstance(item.get("protocol"), str):
        item["protocol"] = item["protocol"].upper()
    parsed = felix.parse_failsafes(scope, [item], path)
    return () if parsed is checks.BAD else parsed


def _false(value: Any) -> bool:
    return str(value).strip().lower() in ("false", "no", "off", "0")


# ----------------------------------------------------------------------------------------------
# The proofs
# ----------------------------------------------------------------------------------------------

def _address_in(net: str) -> str:
    n = ipaddress.ip_network(net, strict=False)
    return str(n.network_address + (1 if n.num_addresses > 2 else 0))


def failsafe_proof(evaluator: Evaluator, plan: Optional[HostPlan], host: str, protected_inbound: Entries = (),
                   protected_outbound: Entries = ()) -> Proof:
    """Proof, from the compiled plan, that the host cannot be cut off:

    * every configured failsafe entry is accepted before any policy verdict, on every
      host-endpoint interface, through every stage (doNotTrack, preDNAT, normal);
    * every *protected* entry stays open: from its own net when it has one, else from some
      source at all, an arbitrary address or one the operator configured for that port (the net
      of a failsafe entry, or an address a policy Allow admits), even when a FelixConfiguration
      removed it from the failsafes.  A policy set that closes SSH, BGP or etcd for every source is
      refused, naming the tier, policy and rule that close it.

    Only the address families the host uses are proven (those of its expectedIPs and
    ``hostfw_interfaces``; both when it declares none).  ``messages`` has one line per entry,
    family and interface; ``refusals`` one line per cause."""
    if plan is None:
        return Proof(True, ["host %s has no host endpoint: nothing is policed" % host])
    findings: List[Dict[str, Any]] = []
    checked = 0
    ifaces = [ep.iface for ep in plan.endpoints]
    fin = set(plan.felix.failsafe_inbound)
    fout = set(plan.felix.failsafe_outbound)
    items = ([(e, INGRESS, True) for e in plan.felix.failsafe_inbound]
             + [(e, EGRESS, True) for e in plan.felix.failsafe_outbound]
             + [(e, INGRESS, False) for e in protected_inbound if e not in fin]
             + [(e, EGRESS, False) for e in protected_outbound if e not in fout])
    used = host_families(evaluator, plan)
    for entry, direction, configured in items:
        proto = 6 if entry.protocol == "tcp" else 17
        families = [family_of(entry.net)] if entry.net else [f for f in (4, 6) if f in used]
        for fam in families:
            local = PROOF_DESTS[fam]
            if entry.net:
                remotes = [_address_in(entry.net)]
            elif configured:
                remotes = [PROOF_SOURCES[fam]]
            else:
                remotes = [PROOF_SOURCES[fam]] + _configured_peers(evaluator, plan, entry, direction, fam)
            for iface in ifaces:
                checked += 1
                verdicts = []
                for remote in remotes:
                    if direction == INGRESS:
                        v = evaluator.input(plan, iface, Packet(remote, local, proto, sport=PROOF_SPORT,
                                                                dport=entry.port))
                    else:
                        v = evaluator.output(plan, iface, Packet(local, remote, proto, sport=PROOF_SPORT,
                                                                 dport=entry.port))
                    verdicts.append(v)
                    if configured or v.allowed:
                        break
                v = verdicts[0]
                failed = (not v.reason.startswith("failsafe")) if configured else not any(x.allowed for x in verdicts)
                if failed:
                    findings.append({"configured": configured, "direction": direction, "entry": entry, "family": fam,
                                     "iface": iface, "verdict": v.verdict, "reason": v.reason,
                                     "from_net": bool(entry.net), "peers": len(remotes) - 1})
    messages = [_message(host, f) for f in findings]
    refusals = _refusals(host, findings)
    for prefix, iface in covered_interfaces(evaluator, plan):
        line = ("host %s: interfacePrefix %r covers interface %s, which is a host interface (a HostEndpoint's or "
                "declared in hostfw_interfaces): its traffic to the host would take the workload-to-host path, before "
                "any failsafe, and be decided by defaultEndpointToHostAction; fix: set interfacePrefix to the prefix "
                "of the workload interfaces only (Calico's is cali)" % (host, prefix, iface))
        messages.append(line)
        refusals.append(line)
    return Proof(not refusals, messages, checked, refusals)


def covered_interfaces(evaluator: Evaluator, plan: HostPlan) -> List[Tuple[str, str]]:
    """(prefix, interface) for every host interface of ``plan`` that an ``interfacePrefix`` covers:
    the interfaces of the node's HostEndpoints, those of ``hostfw_interfaces`` and ``lo``."""
    names = {hep.interface_name for hep in evaluator.model.heps_by_node.get(plan.node, ())
             if hep.interface_name and hep.interface_name != WILDCARD}
    names.update(evaluator.model.interfaces.get(plan.host) or {})
    names.add("lo")
    out = []
    for name in sorted(names):
        for prefix in plan.felix.interface_prefixes:
            if name.startswith(prefix):
                out.append((prefix, name))
                break
    return out


def host_families(evaluator: Evaluator, plan: HostPlan) -> Tuple[int, ...]:
    """The address families a host uses: of its HostEndpoints' expectedIPs and its
    ``hostfw_interfaces`` addresses; both when it declares no address."""
    addrs = [ip for ep in plan.endpoints for ip in ep.hep.expected_ips]
    for values in (evaluator.model.interfaces.get(plan.host) or {}).values():
        addrs.extend(str(a).split("/", maxsplit=1)[0] for a in values)
    families = tuple(sorted({family_of(a) for a in addrs}))
    return families or (4, 6)


def _configured_peers(evaluator: Evaluator, plan: HostPlan, entry: api.FailsafeEntry, direction: str,
                      family: int, limit: int = 32) -> List[str]:
    """Addresses the operator configured for ``entry``'s port: the nets of failsafe entries of the
    same protocol and port, and the peer addresses (source nets and selector sets for ingress,
    destinations for egress) of policy and profile Allow rules of the host's normal tiers."""
    out: List[str] = []
    failsafes = plan.felix.failsafe_inbound if direction == INGRESS else plan.felix.failsafe_outbound
    for f in failsafes:
        if f.net and f.protocol == entry.protocol and f.port == entry.port and family_of(f.net) == family:
            out.append(_address_in(f.net))
    model = evaluator.model
    for ep in plan.endpoints:
        rules = [r for tp in ep.tiers_for(NORMAL, direction) for p in tp.policies
                 for r in model.policy_rules(p, direction)]
        rules += [r for prof in ep.profiles for r in model.profile_rules(prof, direction)]
        for rule in rules:
            if rule.action != "Allow":
                continue
            for m in rule.variants:
                if m.family not in (None, family):
                    continue
                side = m.src if direction == INGRESS else m.dst
                for ref in (side.nets, side.sel):
                    if ref is not None and ref.addrs and ref.addrs.family == family:
                        out.append(int_to_ip(family, ref.addrs.intervals[0][0]))
    seen: List[str] = []
    for address in out:
        if address not in seen:
            seen.append(address)
    return seen[:limit]


def _where(iface: str) -> str:
    return "all interfaces (*)" if iface == WILDCARD else "interface " + iface


def _message(host: str, f: Dict[str, Any]) -> str:
    what = "inbound" if f["direction"] == INGRESS else "outbound"
    if f["configured"]:
        return ("failsafe %s %s (IPv%d) is not accepted first on %s of host %s: %s (%s)"
                % (what, f["entry"], f["family"], _where(f["iface"]), host, f["verdict"], f["reason"]))
    scope = "from its net" if f["from_net"] else "for every source"
    return ("protected %s port %s (IPv%d) would be closed %s on %s of host %s by %s (it is not a failsafe entry in "
            "the FelixConfiguration; allow it in a policy, restore the failsafe, or remove it from "
            "hostfw_protected_ports)" % (what, f["entry"], f["family"], scope, _where(f["iface"]), host, f["reason"]))


def _refusals(host: str, findings: List[Dict[str, Any]]) -> List[str]:
    """One line per host and cause: the entries, families and interfaces a cause closes together,
    the deciding tier/policy/rule and the one fix."""
    groups: Dict[Tuple, Dict[str, List]] = {}
    for f in findings:
        key = (f["configured"], f["direction"], f["from_net"], f["reason"])
        g = groups.setdefault(key, {"entries": [], "families": [], "ifaces": []})
        for name, value in (("entries", str(f["entry"])), ("families", f["family"]), ("ifaces", f["iface"])):
            if value not in g[name]:
                g[name].append(value)
    out = []
    for (configured, direction, from_net, reason), g in groups.items():
        what = "inbound" if direction == INGRESS else "outbound"
        ports = ", ".join(g["entries"])
        fams = ", ".join("IPv%d" % f for f in sorted(g["families"]))
        where = ", ".join(_where(i) for i in g["ifaces"])
        plural = "s" if len(g["entries"]) > 1 else ""
        if configured:
            out.append("host %s: failsafe %s entr%s %s (%s) not accepted first on %s: %s"
                       % (host, what, "ies" if plural else "y", ports, fams, where, reason))
        else:
            scope = "from the configured net" if from_net else "for every source"
            out.append("host %s: protected %s port%s %s (%s) closed %s on %s by %s; fix: allow %s in a policy "
                       "(a failsafe net or an Allow from your management network is enough), restore the failsafe "
                       "in the FelixConfiguration, or remove %s from hostfw_protected_ports"
                       % (host, what, plural, ports, fams, scope, where, reason, "them" if plural else "it",
                          "them" if plural else "it"))
    return out


def check_access(evaluator: Evaluator, plan: Optional[HostPlan], host: str, interfaces: Dict[str, Sequence[str]],
                 source: str, destination: str, protocol: str, port: Optional[int],
                 iface: Optional[str] = None) -> Dict[str, Any]:
    """Would ``host`` accept a new connection from ``source`` to its ``destination``:``port``?
    ``interfaces`` is the host's ``hostfw_interfaces`` (to find the interface holding
    ``destination``)."""
    if plan is None:
        return {"allowed": True, "reason": "host %s has no host endpoint (not policed)" % host}
    proto = api.PROTOCOL_NUMBERS[protocol]
    pkt = Packet(source, destination, proto, sport=PROOF_SPORT, dport=port)
    if iface is None:
        iface = interface_for_address(plan, interfaces, destination)
    v = evaluator.input(plan, iface, pkt)
    return {"allowed": v.allowed, "reason": v.reason, "interface": iface, "packet": pkt.describe()}


def interface_for_address(plan: HostPlan, interfaces: Dict[str, Sequence[str]], address: str) -> str:
    """The interface a packet to ``address`` arrives on: the one of ``hostfw_interfaces`` that
    holds it, else the host endpoint whose expectedIPs contain it, else ``*``."""
    for ifname, addrs in sorted(interfaces.items()):
        if address in {str(a).split("/", maxsplit=1)[0] for a in addrs}:
            return ifname
    for ep in plan.named():
        if address in ep.hep.expected_ips:
            return ep.iface
    return WILDCARD if plan.wildcard is not None else (plan.named()[0].iface if plan.named() else WILDCARD)


def entries_as_dicts(entries: Entries) -> List[Dict[str, Any]]:
    """Failsafe entries as the target module's ``inspect`` takes them."""
    return [{"protocol": e.protocol, "port": e.port, "net": e.net} for e in entries]
