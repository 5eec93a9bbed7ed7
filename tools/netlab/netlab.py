"""A network-namespace lab that sends real packets through real nftables.

Topology: one *hub* namespace holds Linux bridges (``br0``, ``br1``, ...); every *node* is its own
network namespace with one or more interfaces (``eth0``, ``ens3``, ...), each the in-namespace end of a
veth pair whose other end is a port of one hub bridge.  Addresses are arbitrary IPv4/IPv6 host addresses
(any subnets): a node's first interface carries on-link default routes (``default dev eth0``) for both
families, so everything on one bridge reaches everything else without per-subnet routing; addresses of
peers that sit behind a node's other interfaces get host routes on those interfaces.  IPv6 DAD is off.
Nothing is created in, or changed in, the namespace this process runs in.

Every node runs ``netlab_agent.py`` (one long-lived process, JSON lines over stdin/stdout) that serves
TCP/UDP ports and sends probes, so a batch of thousands of flows costs one round trip per node::

    with Lab() as lab:
        a = lab.add_node("a", ["172.18.0.2", "fd00::2"])
        b = lab.add_node("b", ["172.18.0.3", "fd00::3"], ifname="ens3")
        rc, err = b.load_nft(RULESET_TEXT)
        results = lab.probe_many([Flow("a", "172.18.0.2", "b", "172.18.0.3", "tcp", 22)])
        assert results[0].allowed

Verdicts.  ``allowed``: TCP handshake completed / UDP echo came back / ICMP echo reply came back (for
ICMP types other than echo request: the destination's raw receiver saw the packet, i.e. it passed the
destination's input hook; replies are not involved).  ``denied``: everything else, with ``detail``
``timeout`` (dropped somewhere), ``refused`` (TCP RST or ICMP port unreachable: servers listen on every
probed port, so this is an nftables ``reject``), ``unreachable`` (ICMP unreachable / prohibited), ``eperm``
(the source's own output hook dropped it), or ``error:<ERRNO>``.

Workloads (pods) are routed as Calico routes them: ``lab.add_workload("w0", "n0", ["10.65.0.2", "fd65::2"])``
makes a namespace whose ``eth0`` has the /32 and /128 addresses, a default route via 169.254.1.1 (IPv6: via
the host side's link-local address, fe80::ecee:eeff:feee:eeee) and the agent; its other end
``caliXXXXXXXXXXX`` (MAC ee:ee:ee:ee:ee:ee, proxy ARP and proxy NDP on) lives in the host node's namespace
with a host route to each pod address, and the host forwards.  Every other node on the host's bridges
routes the pod addresses via the host.  Workloads are nodes for probing (``Flow("w0", ...)``).  A node can
also carry service DNATs (``node.add_dnat(...)``, in its own ``table ip svc`` / ``table ip6 svc``).

Namespaces are named ``hfwlab-<pid>-<random>-<node>``; ``close()`` (also ``__exit__`` and an atexit hook)
kills the agents and deletes them; ``Lab.cleanup_stale()`` deletes those of dead processes.
"""

import atexit
import dataclasses
import hashlib
import ipaddress
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import weakref
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

HERE = os.path.dirname(os.path.abspath(__file__))
AGENT = os.path.join(HERE, "netlab_agent.py")
NS_BASE = "hfwlab-"
_SBIN = os.pathsep.join(["/usr/local/sbin", "/usr/sbin", "/sbin"])
# Calico's workload plumbing (cni-plugin): the pod's gateway, the host side's MAC and its link-local address
WORKLOAD_GATEWAY4 = "169.254.1.1"
WORKLOAD_HOST_MAC = "ee:ee:ee:ee:ee:ee"
WORKLOAD_GATEWAY6 = "fe80::ecee:eeff:feee:eeee"
SVC_TABLE = "svc"


def which(tool: str) -> Optional[str]:
    """Path of tool, also looking in the sbin directories a non-root PATH lacks."""
    return shutil.which(tool) or shutil.which(tool, path=_SBIN)


def missing_requirements() -> List[str]:
    """Reasons the lab cannot run here (empty when it can)."""
    reasons = []
    if os.geteuid() != 0:
        reasons.append("not running as root (network namespaces need CAP_SYS_ADMIN/CAP_NET_ADMIN)")
    for tool in ("ip", "nft"):
        if which(tool) is None:
            reasons.append("`%s` not found (install %s)" % (tool, "iproute2" if tool == "ip" else "nftables"))
    return reasons


class LabError(RuntimeError):
    """A setup or control step failed; the message names the command and its stderr."""


def _run(cmd: Sequence[str], input_text: Optional[str] = None, check: bool = True,
         timeout: float = 60) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(cmd), input=input_text, capture_output=True, text=True, timeout=timeout,
                          check=False)
    if check and proc.returncode != 0:
        shown = " ".join(cmd)
        if input_text is not None:
            shown += "  <<stdin:\n" + input_text.rstrip()
        raise LabError("command failed (rc=%d): %s\nstderr: %s" % (
            proc.returncode, shown, proc.stderr.strip()))
    return proc


def _host(addr: str) -> str:
    """'10.0.0.1' -> '10.0.0.1/32', 'fd00::1' -> 'fd00::1/128'; a given prefix length is kept."""
    iface = ipaddress.ip_interface(addr)
    return "%s/%d" % (iface.ip, iface.network.prefixlen)


def _ip(addr: str) -> str:
    return str(ipaddress.ip_interface(addr).ip)


# ------------------------------------------------------------------------------------------ flows


@dataclasses.dataclass(frozen=True)
class Flow:
    """The first packet of a new connection from src_ip (on src_node) to dst_ip (on dst_node)."""

    src_node: str
    src_ip: str
    dst_node: str
    dst_ip: str
    protocol: str  # "tcp" | "udp" | "icmp" | "raw" (another IP protocol: ip_proto)
    port: Optional[int] = None
    icmp_type: Optional[int] = None
    icmp_code: Optional[int] = None
    ip_proto: Optional[int] = None  # protocol "raw" only, e.g. 253 (RFC 3692 experimentation)

    def __str__(self):
        what = self.protocol if self.port is None else "%s/%s" % (self.protocol, self.port)
        if self.ip_proto is not None:
            what = "ip proto %s" % self.ip_proto
        if self.icmp_type is not None:
            what += " type %s" % self.icmp_type
            if self.icmp_code is not None:
                what += " code %s" % self.icmp_code
        return "%s[%s] -> %s[%s] %s" % (self.src_node, self.src_ip, self.dst_node, self.dst_ip, what)


@dataclasses.dataclass(frozen=True)
class ProbeResult:
    flow: Flow
    verdict: str  # "allowed" | "denied"
    detail: str  # established | reply | seen | timeout | refused | unreachable | eperm | error:...
    elapsed: float  # seconds, measured in the source's agent

    @property
    def allowed(self) -> bool:
        return self.verdict == "allowed"

    def __str__(self):
        return "%s: %s (%s, %.3fs)" % (self.flow, self.verdict, self.detail, self.elapsed)


@dataclasses.dataclass(frozen=True)
class NftResult:
    rc: int
    stdout: str
    stderr: str


# ------------------------------------------------------------------------------------------ agent


class Agent:
    """The JSON-lines agent process of one node."""

    def __init__(self, netns: str, log_path: str):
        self.netns = netns
        self.log_path = log_path
        self._log = open(log_path, "w", encoding="utf-8")  # pylint: disable=consider-using-with
        self._ids = 0
        self._lock = threading.Lock()
        cmd = [which("ip"), "netns", "exec", netns, sys.executable, "-u", AGENT]
        self.proc = subprocess.Popen(  # pylint: disable=consider-using-with
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True, bufsize=1)
        self.call("ping", timeout=30)

    def send(self, op: str, **args) -> int:
        self._ids += 1
        args.update(op=op, id=self._ids)
        try:
            self.proc.stdin.write(json.dumps(args) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise LabError("agent in %s is gone (%s); its stderr:\n%s" % (self.netns, exc, self.stderr())) from exc
        return self._ids

    def receive(self, want_id: int, timeout: float = 120):
        """The answer to request want_id; a silent agent is killed after timeout seconds."""
        watchdog = threading.Timer(timeout, self.proc.kill)
        watchdog.daemon = True
        watchdog.start()
        try:
            while True:
                line = self.proc.stdout.readline()
                if not line:
                    raise LabError("agent in %s exited or hung (rc=%s, waited at most %ss); its stderr:\n%s"
                                   % (self.netns, self.proc.poll(), timeout, self.stderr()))
                reply = json.loads(line)
                if reply.get("id") == want_id:
                    break
                if not isinstance(reply.get("id"), int) or reply["id"] > want_id:
                    raise LabError("agent in %s answered id %s, expected %s"
                                   % (self.netns, reply.get("id"), want_id))
                # else: the answer to an abandoned earlier request; skip it
        finally:
            watchdog.cancel()
        if not reply["ok"]:
            raise LabError("agent in %s: %s" % (self.netns, reply["error"]))
        return reply["result"]

    def call(self, op: str, timeout: float = 120, **args):
        with self._lock:
            return self.receive(self.send(op, **args), timeout)

    def stderr(self) -> str:
        try:
            self._log.flush()
            with open(self.log_path, encoding="utf-8") as fh:
                return fh.read()[-4000:]
        except OSError:
            return ""

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        for stream in (self.proc.stdout,):
            try:
                stream.close()
            except OSError:
                pass
        self._log.close()


# ------------------------------------------------------------------------------------------- node


@dataclasses.dataclass
class Interface:
    name: str
    bridge: str
    peer: str  # hub-side veth name
    addrs: List[str]  # "ip/len"
    default_route: bool


class Node:
    """One host: a network namespace with interfaces on hub bridges, its agent and its nft ruleset."""

    def __init__(self, lab: "Lab", name: str, netns: str):
        self.lab = lab
        self.name = name
        self.netns = netns
        self.interfaces: Dict[str, Interface] = {}
        self.agent: Optional[Agent] = None
        self.tcp_ports = set()
        self.udp_ports = set()
        self.sniffing = False
        self._routes = set()
        self.workloads: Dict[str, "Workload"] = {}  # pods on this node, by name
        self.dnats: List[Dnat] = []

    def __repr__(self):
        return "Node(%r, %s)" % (self.name, ", ".join(self.addresses))

    # -- addresses ------------------------------------------------------------------------------

    @property
    def addresses(self) -> List[str]:
        """All addresses (no prefix length), interface by interface, in the order they were added."""
        return [_ip(a) for i in self.interfaces.values() for a in i.addrs]

    @property
    def ipv4(self) -> List[str]:
        return [a for a in self.addresses if ":" not in a]

    @property
    def ipv6(self) -> List[str]:
        return [a for a in self.addresses if ":" in a]

    def add_interface(self, ifname: str = "eth0", addrs: Iterable[str] = (), bridge: str = "br0",
                      default_route: Optional[bool] = None, mtu: Optional[int] = None) -> Interface:
        """Attach a new interface ``ifname`` to hub bridge ``bridge`` (created if new)."""
        if ifname in self.interfaces:
            raise LabError("node %s already has interface %s" % (self.name, ifname))
        if len(ifname) > 15:
            raise LabError("interface name %r is longer than 15 characters" % ifname)
        if default_route is None:
            default_route = not self.interfaces
        self.lab._ensure_bridge(bridge)
        peer = "v%d" % self.lab._next_port()
        self.lab._ip(["link", "add", ifname, "netns", self.netns, "type", "veth", "peer", "name", peer],
                     netns=self.lab.hub)
        hub_cmds = ["link set %s master %s" % (peer, bridge), "link set %s up" % peer]
        self.lab._ip_batch(self.lab.hub, hub_cmds)
        self._sysctls(ifname)
        cmds = ["link set %s up" % ifname]
        if mtu:
            cmds.insert(0, "link set %s mtu %d" % (ifname, mtu))
        if default_route:
            cmds += ["route replace default dev %s" % ifname, "route replace ::/0 dev %s" % ifname]
        self.lab._ip_batch(self.netns, cmds)
        iface = Interface(ifname, bridge, peer, [], default_route)
        self.interfaces[ifname] = iface
        if addrs:
            self.add_addresses(addrs, ifname)
        else:
            self.lab._sync_routes()
        return iface

    def add_addresses(self, addrs: Iterable[str], ifname: Optional[str] = None):
        """Add addresses ("10.0.0.5", "fd00::5", or with a prefix length) to an interface (default: first)."""
        if ifname is None:
            ifname = next(iter(self.interfaces))
        iface = self.interfaces[ifname]
        new = [_host(a) for a in addrs]
        cmds = []
        for a in new:
            cmds.append("addr add %s dev %s%s" % (a, ifname, " nodad" if ":" in a else ""))
        self.lab._ip_batch(self.netns, cmds)
        iface.addrs.extend(new)
        self.lab._sync_routes()

    def _sysctls(self, ifname: str):
        values = {
            "net/ipv6/conf/%s/accept_dad" % ifname: "0",
            "net/ipv6/conf/%s/dad_transmits" % ifname: "0",
            "net/ipv6/conf/%s/accept_ra" % ifname: "0",
            "net/ipv6/conf/%s/disable_ipv6" % ifname: "0",
            "net/ipv4/neigh/%s/unres_qlen_bytes" % ifname: "4194304",
            "net/ipv6/neigh/%s/unres_qlen_bytes" % ifname: "4194304",
        }
        self.lab._write_sysctls(self.netns, values)

    # -- commands in the namespace --------------------------------------------------------------

    def exec(self, cmd: Sequence[str], input_text: Optional[str] = None, check: bool = True,
             timeout: float = 60) -> subprocess.CompletedProcess:
        """Run cmd inside this node's namespace."""
        return _run([which("ip"), "netns", "exec", self.netns] + list(cmd), input_text, check, timeout)

    def nft(self, args: Union[str, Sequence[str]], input_text: Optional[str] = None) -> NftResult:
        """Run ``nft ARGS`` here (a string is split on whitespace); never raises on nft's own failure."""
        if isinstance(args, str):
            args = args.split()
        proc = self.exec([which("nft")] + list(args), input_text=input_text, check=False)
        return NftResult(proc.returncode, proc.stdout, proc.stderr)

    def _nft_file(self, path_or_text: Union[str, os.PathLike]) -> str:
        if isinstance(path_or_text, os.PathLike) or ("\n" not in path_or_text and os.path.isfile(path_or_text)):
            return os.fspath(path_or_text)
        fd, path = tempfile.mkstemp(prefix="%s-" % self.name, suffix=".nft", dir=self.lab.tmpdir)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(path_or_text)
        return path

    def load_nft(self, path_or_text: Union[str, os.PathLike]):
        """``nft -f`` a file path or ruleset text in this namespace; returns (rc, stderr)."""
        res = self.nft(["-f", self._nft_file(path_or_text)])
        return res.rc, res.stderr

    def check_nft(self, path_or_text: Union[str, os.PathLike]):
        """``nft -c -f`` (check only); returns (rc, stderr)."""
        res = self.nft(["-c", "-f", self._nft_file(path_or_text)])
        return res.rc, res.stderr

    def list_table(self, family: str = "inet", table: str = "hostfw", stateless: bool = False) -> str:
        """Text of ``nft list table FAMILY TABLE`` (``-s``: without counter values); LabError if absent."""
        res = self.nft((["-s"] if stateless else []) + ["list", "table", family, table])
        if res.rc:
            raise LabError("nft list table %s %s in %s failed: %s" % (family, table, self.name, res.stderr.strip()))
        return res.stdout

    def ruleset(self) -> str:
        return self.nft(["list", "ruleset"]).stdout

    def counters(self, family: str = "inet", table: str = "hostfw") -> Dict[str, int]:
        """{rule comment: packets} over rules that have a comment and a counter (summed per comment)."""
        out: Dict[str, int] = {}
        for rule in self.rule_counters(family, table):
            if rule["comment"] is not None and rule["packets"] is not None:
                out[rule["comment"]] = out.get(rule["comment"], 0) + rule["packets"]
        return out

    def rule_counters(self, family: str = "inet", table: str = "hostfw") -> List[dict]:
        """Every rule: {chain, handle, comment, packets, bytes} (packets/bytes None without counter)."""
        res = self.nft(["-j", "list", "table", family, table])
        if res.rc:
            raise LabError("nft -j list table %s %s in %s failed: %s" % (family, table, self.name, res.stderr.strip()))
        rules = []
        for item in json.loads(res.stdout)["nftables"]:
            rule = item.get("rule")
            if rule is None:
                continue
            packets = nbytes = None
            for expr in rule.get("expr", []):
                if isinstance(expr, dict) and "counter" in expr and isinstance(expr["counter"], dict):
                    packets = (packets or 0) + expr["counter"].get("packets", 0)
                    nbytes = (nbytes or 0) + expr["counter"].get("bytes", 0)
            rules.append({"chain": rule.get("chain"), "handle": rule.get("handle"),
                          "comment": rule.get("comment"), "packets": packets, "bytes": nbytes})
        return rules

    def conntrack_flush(self):
        self.agent.call("ct_flush")

    def conntrack_count(self) -> int:
        return self.agent.call("ct_count")

    # -- routing and NAT ------------------------------------------------------------------------

    def set_forwarding(self, enabled: bool = True):
        """net.ipv4.ip_forward and net.ipv6.conf.all.forwarding of this namespace (writing them sets every
        interface's flag).  The workload interfaces keep forwarding=1, as Calico sets it on each of them:
        with forwarding off, a pod still reaches its host (proxy ARP needs it) but nothing is routed
        through the host, because the other interfaces do not forward."""
        value = "1" if enabled else "0"
        values = {"net/ipv4/ip_forward": value, "net/ipv6/conf/all/forwarding": value}
        for wl in self.workloads.values():
            values["net/ipv4/conf/%s/forwarding" % wl.host_ifname] = "1"
            values["net/ipv6/conf/%s/forwarding" % wl.host_ifname] = "1"
        self.lab._write_sysctls(self.netns, values)

    def forwarding(self) -> bool:
        out = self.exec(["cat", "/proc/sys/net/ipv4/ip_forward"]).stdout.strip()
        return out == "1"

    def add_dnat(self, address: str, port: int, to_address: str, to_port: Optional[int] = None,
                 protocol: str = "tcp", hooks: Sequence[str] = ("output", "prerouting")) -> "Dnat":
        """DNAT ``address:port`` to ``to_address:to_port`` (default: the same port) for connections made
        here (hook ``output``) and/or arriving here (``prerouting``): a kube-proxy Service in miniature,
        in this node's own ``table ip svc`` / ``table ip6 svc`` (replaced as a whole on every change).
        The node that owns ``to_address`` starts listening on ``to_port``."""
        if protocol not in ("tcp", "udp"):
            raise LabError("DNAT protocol must be tcp or udp, not %r" % protocol)
        bad = set(hooks) - {"output", "prerouting"}
        if bad or not hooks:
            raise LabError("DNAT hooks must be output and/or prerouting, not %s" % ", ".join(sorted(bad) or ["none"]))
        if (":" in address) != (":" in to_address):
            raise LabError("DNAT %s -> %s mixes address families" % (address, to_address))
        dnat = Dnat(_ip(address), int(port), _ip(to_address), int(to_port or port), protocol, tuple(hooks))
        self.dnats.append(dnat)
        rc, err = self.load_nft(self._svc_ruleset())
        if rc:
            self.dnats.pop()
            raise LabError("loading the DNAT table in %s failed: %s" % (self.name, err.strip()))
        target = self.lab.node_of_address(dnat.to_address)
        if target is not None:
            target.listen(**{protocol: [dnat.to_port]})
        return dnat

    def clear_dnats(self):
        self.dnats = []
        for family in ("ip", "ip6"):
            self.nft(["delete", "table", family, SVC_TABLE])

    def _svc_ruleset(self) -> str:
        out = []
        for family, is6 in (("ip", False), ("ip6", True)):
            rules = {"output": [], "prerouting": []}
            for d in self.dnats:
                if (":" in d.address) != is6:
                    continue
                target = "[%s]:%d" % (d.to_address, d.to_port) if is6 else "%s:%d" % (d.to_address, d.to_port)
                for hook in d.hooks:
                    rules[hook].append("%s daddr %s %s dport %d dnat to %s" % (
                        family, d.address, d.protocol, d.port, target))
            out += ["table %s %s" % (family, SVC_TABLE), "delete table %s %s" % (family, SVC_TABLE),
                    "table %s %s {" % (family, SVC_TABLE)]
            for hook in ("output", "prerouting"):
                out += ["    chain %s {" % hook, "        type nat hook %s priority -100; policy accept;" % hook]
                out += ["        " + r for r in rules[hook]]
                out.append("    }")
            out.append("}")
        return "\n".join(out) + "\n"

    # -- servers --------------------------------------------------------------------------------

    def listen(self, tcp: Iterable[int] = (), udp: Iterable[int] = ()):
        """Serve these ports (TCP accept-and-close, UDP echo) on all addresses, both families."""
        tcp = sorted(set(tcp) - self.tcp_ports)
        udp = sorted(set(udp) - self.udp_ports)
        if tcp or udp:
            self.agent.call("listen", tcp=tcp, udp=udp)
            self.tcp_ports.update(tcp)
            self.udp_ports.update(udp)

    def _sniff(self, ip_proto: Optional[int] = None):
        if ip_proto is not None:
            self.agent.call("sniff", protos=[ip_proto])
            return
        if not self.sniffing:
            self.agent.call("sniff_icmp")
            self.sniffing = True

    def probe(self, dst: Union["Node", str], dst_ip: str, protocol: str, port: Optional[int] = None,
              src_ip: Optional[str] = None, **kw) -> ProbeResult:
        """One flow from this node (default source: the first address of dst_ip's family)."""
        if src_ip is None:
            src_ip = next(a for a in self.addresses if (":" in a) == (":" in dst_ip))
        dst_name = dst.name if isinstance(dst, Node) else dst
        return self.lab.probe_many([Flow(self.name, src_ip, dst_name, dst_ip, protocol, port, **kw)])[0]


@dataclasses.dataclass(frozen=True)
class Dnat:
    address: str
    port: int
    to_address: str
    to_port: int
    protocol: str
    hooks: Tuple[str, ...]


def workload_ifname(name: str) -> str:
    """Calico's host-side name for a workload: "cali" and 11 hex digits of a hash of its identity."""
    return "cali" + hashlib.sha1(name.encode("utf-8")).hexdigest()[:11]


class Workload(Node):
    """A pod: its own namespace (``eth0``: /32 and /128 addresses, default routes via Calico's gateways)
    behind the veth ``host_ifname`` (``cali...``) of its host node."""

    def __init__(self, lab: "Lab", name: str, netns: str, host: Node, host_ifname: str):
        super().__init__(lab, name, netns)
        self.host = host
        self.host_ifname = host_ifname

    def __repr__(self):
        return "Workload(%r on %s via %s, %s)" % (self.name, self.host.name, self.host_ifname, ", ".join(self.addresses))

    def add_interface(self, ifname: str = "eth0", addrs: Iterable[str] = (), bridge: str = "br0",
                      default_route: Optional[bool] = None, mtu: Optional[int] = None) -> Interface:
        raise LabError("workload %s has exactly one interface (eth0, to its host %s)" % (self.name, self.host.name))

    def add_addresses(self, addrs: Iterable[str], ifname: Optional[str] = None):
        """More pod addresses: /32 or /128 on eth0, host routes on the host, routes on the peers."""
        if ifname not in (None, "eth0"):
            raise LabError("workload %s has only eth0" % self.name)
        iface = self.interfaces["eth0"]
        new = [_ip(a) for a in addrs]
        for a in new:
            if _host(a) in iface.addrs:
                raise LabError("workload %s already has address %s" % (self.name, a))
        self.lab._ip_batch(self.netns, ["addr add %s dev eth0%s" % (_host(a), " nodad" if ":" in a else "")
                                        for a in new])
        self.lab._ip_batch(self.host.netns, ["route replace %s dev %s" % (_host(a), self.host_ifname) for a in new])
        iface.addrs.extend(_host(a) for a in new)
        self.lab._sync_routes()


# -------------------------------------------------------------------------------------------- lab

_LIVE_LABS: "weakref.WeakSet[Lab]" = weakref.WeakSet()


@atexit.register
def _close_all():
    for lab in list(_LIVE_LABS):
        lab.close()


class Lab:
    """Namespaces, bridges, nodes and their agents.  Use as a context manager (or call close())."""

    def __init__(self, prefix: Optional[str] = None, timeout: float = 0.5, concurrency: int = 1024):
        for reason in missing_requirements():
            raise LabError("network lab unavailable: " + reason)
        self.cleanup_stale()
        self.prefix = prefix or "%s%d-%s-" % (NS_BASE, os.getpid(), secrets.token_hex(3))
        self.timeout = timeout
        self.concurrency = concurrency
        self.nodes: Dict[str, Node] = {}
        self.bridges: List[str] = []
        self.namespaces: List[str] = []
        self._ports = 0
        self._closed = False
        self.tmpdir = tempfile.mkdtemp(prefix=self.prefix)
        _LIVE_LABS.add(self)
        try:
            self.hub = self._add_netns("hub")
            self._ip_batch(self.hub, ["link set lo up"])
        except BaseException:
            self.close()
            raise

    # -- context manager / cleanup ----------------------------------------------------------------

    def __enter__(self) -> "Lab":
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Kill the agents and delete every namespace of this lab (idempotent, best effort, then checked)."""
        if self._closed:
            return
        self._closed = True
        errors = []
        for node in self.nodes.values():
            if node.agent is not None:
                try:
                    node.agent.close()
                except Exception as exc:  # pylint: disable=broad-except
                    errors.append("agent %s: %r" % (node.name, exc))
        for ns in reversed(self.namespaces):
            self._kill_pids_in(ns)
            proc = _run([which("ip"), "netns", "del", ns], check=False)
            if proc.returncode and ns in self.list_namespaces(self.prefix):
                errors.append("ip netns del %s: %s" % (ns, proc.stderr.strip()))
        shutil.rmtree(self.tmpdir, ignore_errors=True)
        _LIVE_LABS.discard(self)
        if errors:
            raise LabError("lab cleanup incomplete:\n" + "\n".join(errors))

    @staticmethod
    def _kill_pids_in(ns: str):
        proc = _run([which("ip"), "netns", "pids", ns], check=False)
        for pid in proc.stdout.split():
            try:
                os.kill(int(pid), 9)
            except (ProcessLookupError, ValueError):
                pass

    @staticmethod
    def list_namespaces(prefix: str = NS_BASE) -> List[str]:
        proc = _run([which("ip"), "netns", "list"], check=False)
        names = [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]
        return [n for n in names if n.startswith(prefix)]

    @classmethod
    def cleanup_stale(cls) -> List[str]:
        """Delete lab namespaces left by processes that no longer exist; returns their names."""
        removed = []
        for ns in cls.list_namespaces(NS_BASE):
            m = re.match(re.escape(NS_BASE) + r"(\d+)-", ns)
            if not m:
                continue
            pid = int(m.group(1))
            if pid == os.getpid() or os.path.exists("/proc/%d" % pid):
                continue
            cls._kill_pids_in(ns)
            _run([which("ip"), "netns", "del", ns], check=False)
            removed.append(ns)
        tmp = tempfile.gettempdir()
        for entry in os.listdir(tmp):
            m = re.match(re.escape(NS_BASE) + r"(\d+)-[0-9a-f]+-", entry)
            if m and int(m.group(1)) != os.getpid() and not os.path.exists("/proc/%s" % m.group(1)):
                shutil.rmtree(os.path.join(tmp, entry), ignore_errors=True)
        return removed

    # -- plumbing -------------------------------------------------------------------------------

    def _add_netns(self, suffix: str) -> str:
        ns = self.prefix + suffix
        _run([which("ip"), "netns", "add", ns])
        self.namespaces.append(ns)
        return ns

    def _ip(self, args: Sequence[str], netns: Optional[str] = None):
        cmd = [which("ip")] + (["-n", netns] if netns else []) + list(args)
        return _run(cmd)

    def _ip_batch(self, netns: str, lines: Sequence[str]):
        if lines:
            _run([which("ip"), "-n", netns, "-batch", "-"], input_text="\n".join(lines) + "\n")

    def _write_sysctls(self, netns: str, values: Dict[str, str]):
        script = "".join("echo %s > /proc/sys/%s\n" % (v, k) for k, v in values.items())
        _run([which("ip"), "netns", "exec", netns, "sh", "-ec", script])

    def _next_port(self) -> int:
        self._ports += 1
        return self._ports

    def _ensure_bridge(self, bridge: str):
        if bridge in self.bridges:
            return
        self._ip_batch(self.hub, [
            "link add %s type bridge stp_state 0 forward_delay 0 mcast_snooping 0" % bridge,
            "link set %s up" % bridge,
        ])
        self.bridges.append(bridge)

    def _sync_routes(self):
        """Host routes on non-default interfaces for the addresses of peers on the same bridge."""
        for node in self.nodes.values():
            if isinstance(node, Workload):
                continue
            wanted = self._pod_routes(node)
            for iface in node.interfaces.values():
                if iface.default_route:
                    continue
                for peer in self.nodes.values():
                    if peer is node or isinstance(peer, Workload):
                        continue
                    for piface in peer.interfaces.values():
                        if piface.bridge != iface.bridge:
                            continue
                        for addr in piface.addrs:
                            ip = _ip(addr)
                            plen = 128 if ":" in ip else 32
                            wanted.append("route replace %s/%d dev %s" % (ip, plen, iface.name))
            new = [w for w in wanted if w not in node._routes]
            if new:
                self._ip_batch(node.netns, new)
                node._routes.update(new)

    def _pod_routes(self, node: Node) -> List[str]:
        """Routes of ``node`` to the pods of the other nodes: via that node's address of the pod's family
        on a bridge both share (what Calico's BGP routes do), on-link."""
        wanted = []
        for host in self.nodes.values():
            if host is node or isinstance(host, Workload) or not host.workloads:
                continue
            for iface in node.interfaces.values():
                vias = [_ip(a) for h in host.interfaces.values() if h.bridge == iface.bridge for a in h.addrs]
                for wl in host.workloads.values():
                    for addr in wl.interfaces["eth0"].addrs:
                        ip = _ip(addr)
                        via = next((v for v in vias if (":" in v) == (":" in ip)), None)
                        if via is not None:
                            wanted.append("route replace %s via %s dev %s onlink" % (_host(ip), via, iface.name))
                if vias:
                    break  # the first shared bridge carries the routes
        return wanted

    # -- nodes ----------------------------------------------------------------------------------

    def _namespace_sysctls(self, ns: str):
        """What every lab namespace (node or workload) needs."""
        self._write_sysctls(ns, {
            "net/ipv6/conf/all/accept_dad": "0",
            "net/ipv6/conf/default/accept_dad": "0",
            "net/ipv6/conf/all/accept_ra": "0",
            "net/ipv6/conf/default/accept_ra": "0",
            "net/ipv6/conf/all/disable_ipv6": "0",
            "net/ipv4/conf/all/rp_filter": "0",
            "net/ipv4/conf/default/rp_filter": "0",
            "net/ipv4/ping_group_range": "0 2147483647",
            "net/ipv4/ip_local_port_range": "33000 65000",  # above NodePorts and kubelet
            "net/core/somaxconn": "65535",
            # ICMP errors (an nftables reject's port unreachable) are not rate limited: a batch
            # of probes to one peer must each get its error, or a reject looks like a drop.
            "net/ipv4/icmp_ratelimit": "0",
            "net/ipv6/icmp/ratelimit": "0",
        })

    def add_node(self, name: str, addrs: Iterable[str] = (), ifname: str = "eth0", bridge: str = "br0",
                 mtu: Optional[int] = None) -> Node:
        """A new host namespace with interface ``ifname`` on ``bridge``, ``addrs`` on it, and its agent."""
        if name in self.nodes:
            raise LabError("node %s exists" % name)
        if not re.match(r"^[A-Za-z0-9_.-]+$", name):
            raise LabError("bad node name %r" % name)
        ns = self._add_netns(name)
        node = Node(self, name, ns)
        self.nodes[name] = node
        self._namespace_sysctls(ns)
        self._ip_batch(ns, ["link set lo up"])
        node.add_interface(ifname, addrs, bridge, default_route=True, mtu=mtu)
        node.agent = Agent(ns, os.path.join(self.tmpdir, "%s.agent.log" % name))
        return node

    def add_workload(self, name: str, host: Union[str, Node], addrs: Iterable[str],
                     host_ifname: Optional[str] = None, mtu: Optional[int] = None) -> Workload:
        """A pod on ``host``, plumbed as Calico's CNI plugin does it (see the module docstring)."""
        host = self.node(host)
        if isinstance(host, Workload):
            raise LabError("workload %s cannot run inside workload %s" % (name, host.name))
        if name in self.nodes:
            raise LabError("node %s exists" % name)
        if not re.match(r"^[A-Za-z0-9_.-]+$", name):
            raise LabError("bad workload name %r" % name)
        host_ifname = host_ifname or workload_ifname(name)
        if len(host_ifname) > 15:
            raise LabError("interface name %r is longer than 15 characters" % host_ifname)
        taken = set(host.interfaces) | {w.host_ifname for w in host.workloads.values()}
        if host_ifname in taken:
            raise LabError("node %s already has interface %s" % (host.name, host_ifname))
        addrs = [_ip(a) for a in addrs]
        if not addrs:
            raise LabError("workload %s needs at least one address" % name)
        ns = self._add_netns(name)
        wl = Workload(self, name, ns, host, host_ifname)
        self.nodes[name] = wl
        self._namespace_sysctls(ns)
        self._ip(["link", "add", host_ifname, "address", WORKLOAD_HOST_MAC, "type", "veth", "peer", "name", "eth0",
                  "netns", ns], netns=host.netns)
        hsys = {
            "net/ipv4/conf/%s/proxy_arp" % host_ifname: "1",
            "net/ipv4/neigh/%s/proxy_delay" % host_ifname: "0",
            "net/ipv6/conf/%s/proxy_ndp" % host_ifname: "1",
            "net/ipv6/conf/%s/accept_dad" % host_ifname: "0",
            "net/ipv6/conf/%s/accept_ra" % host_ifname: "0",
            "net/ipv6/conf/%s/disable_ipv6" % host_ifname: "0",
            "net/ipv4/conf/%s/rp_filter" % host_ifname: "0",
            "net/ipv4/conf/%s/route_localnet" % host_ifname: "1",
            "net/ipv4/conf/%s/forwarding" % host_ifname: "1",
            "net/ipv6/conf/%s/forwarding" % host_ifname: "1",
        }
        if not host.workloads:  # the first pod makes the node a router (set_forwarding(False) undoes it)
            hsys.update({"net/ipv4/ip_forward": "1", "net/ipv6/conf/all/forwarding": "1"})
        self._write_sysctls(host.netns, hsys)
        hcmds = ["link set %s up" % host_ifname] + ["route replace %s dev %s" % (_host(a), host_ifname) for a in addrs]
        if mtu:
            hcmds.insert(0, "link set %s mtu %d" % (host_ifname, mtu))
        self._ip_batch(host.netns, hcmds)
        wl._sysctls("eth0")
        wcmds = ["link set lo up", "link set eth0 up"]
        if mtu:
            wcmds.insert(0, "link set eth0 mtu %d" % mtu)
        wcmds += ["addr add %s dev eth0%s" % (_host(a), " nodad" if ":" in a else "") for a in addrs]
        wcmds += ["route replace %s/32 dev eth0 scope link" % WORKLOAD_GATEWAY4,
                  "route replace default via %s dev eth0" % WORKLOAD_GATEWAY4,
                  "route replace ::/0 via %s dev eth0" % WORKLOAD_GATEWAY6]
        self._ip_batch(ns, wcmds)
        wl.interfaces["eth0"] = Interface("eth0", "", host_ifname, [_host(a) for a in addrs], True)
        host.workloads[name] = wl
        self._sync_routes()
        wl.agent = Agent(ns, os.path.join(self.tmpdir, "%s.agent.log" % name))
        return wl

    def node_of_address(self, address: str) -> Optional[Node]:
        """The node (or workload) that has ``address``, or None."""
        address = _ip(address)
        for node in self.nodes.values():
            if address in node.addresses:
                return node
        return None

    def static_neighbours(self):
        """Permanent IPv6 neighbour entries between every pair of nodes on a shared bridge, for all
        their addresses: a default-deny host endpoint (Calico's and hostfw's) does not open ICMPv6
        neighbour discovery, and these tests are about policy, not about ND."""
        macs = {}
        for node in self.nodes.values():
            if isinstance(node, Workload):
                continue
            for iface in node.interfaces.values():
                out = node.exec([which("ip"), "-j", "link", "show", iface.name]).stdout
                macs[(node.name, iface.name)] = json.loads(out)[0]["address"]
        for node in self.nodes.values():
            if isinstance(node, Workload):
                continue
            cmds = []
            for iface in node.interfaces.values():
                for peer in self.nodes.values():
                    if peer is node or isinstance(peer, Workload):
                        continue
                    for piface in peer.interfaces.values():
                        if piface.bridge != iface.bridge:
                            continue
                        for addr in piface.addrs:
                            if ":" in addr:
                                cmds.append("neigh replace %s lladdr %s dev %s nud permanent" % (
                                    _ip(addr), macs[(peer.name, piface.name)], iface.name))
            self._ip_batch(node.netns, cmds)

    def node(self, name_or_node: Union[str, Node]) -> Node:
        if isinstance(name_or_node, Node):
            return name_or_node
        try:
            return self.nodes[name_or_node]
        except KeyError:
            raise LabError("no node %r (have %s)" % (name_or_node, ", ".join(self.nodes))) from None

    def conntrack_flush(self):
        """Flush the conntrack table of every node."""
        for node in self.nodes.values():
            node.conntrack_flush()

    # -- probing --------------------------------------------------------------------------------

    def probe_many(self, flows: Sequence[Flow], timeout: Optional[float] = None,
                   concurrency: Optional[int] = None) -> List[ProbeResult]:
        """Send every flow (concurrently, all source nodes at once); results in input order.

        Destinations listen on every probed TCP/UDP port first, except on a port some node DNATs
        (``add_dnat``: the DNAT's target listens instead, so that a missed DNAT cannot connect).  A
        dropped flow costs ``timeout`` seconds (default: the lab's, 0.5 s); up to ``concurrency``
        flows per source node are in flight.  ``raw`` flows (``ip_proto``) are one-way, judged like
        ICMP other than echo: allowed when the destination's receiver saw the packet.
        """
        timeout = self.timeout if timeout is None else timeout
        concurrency = concurrency or self.concurrency
        flows = list(flows)
        per_src: Dict[str, List[int]] = {}
        tcp: Dict[str, set] = {}
        udp: Dict[str, set] = {}
        raw: Dict[int, str] = {}
        wire = []
        addresses = {name: set(node.addresses) for name, node in self.nodes.items()}
        dnatted = {(d.address, d.protocol, d.port) for node in self.nodes.values() for d in node.dnats}
        for i, flow in enumerate(flows):
            if flow.protocol not in ("tcp", "udp", "icmp", "raw"):
                raise LabError("flow %s: protocol must be tcp, udp, icmp or raw" % flow)
            if (flow.protocol == "raw") != (flow.ip_proto is not None):
                raise LabError("flow %s: ip_proto goes with protocol raw (and only with it)" % flow)
            src, dst = self.node(flow.src_node), self.node(flow.dst_node)
            if (":" in flow.src_ip) != (":" in flow.dst_ip):
                raise LabError("flow %s mixes address families" % flow)
            if flow.src_ip not in addresses[src.name] and _ip(flow.src_ip) not in addresses[src.name]:
                raise LabError("flow %s: %s is not an address of node %s" % (flow, flow.src_ip, src.name))
            if flow.protocol in ("tcp", "udp"):
                if not flow.port:
                    raise LabError("flow %s needs a port" % flow)
                if (_ip(flow.dst_ip), flow.protocol, int(flow.port)) not in dnatted:
                    (tcp if flow.protocol == "tcp" else udp).setdefault(dst.name, set()).add(int(flow.port))
            nonce = secrets.token_hex(16)
            if flow.protocol == "icmp" and not self._is_echo(flow):
                raw[i] = nonce
                dst._sniff()
            elif flow.protocol == "raw":
                raw[i] = nonce
                dst._sniff(int(flow.ip_proto))
            per_src.setdefault(src.name, []).append(i)
            wire.append({"src_ip": flow.src_ip, "dst_ip": flow.dst_ip, "protocol": flow.protocol,
                         "port": int(flow.port) if flow.port else 0, "icmp_type": flow.icmp_type,
                         "icmp_code": flow.icmp_code, "ip_proto": flow.ip_proto, "nonce": nonce})
        for name in set(tcp) | set(udp):
            self.nodes[name].listen(tcp.get(name, ()), udp.get(name, ()))
        # one request per source node, all in flight at once
        results: List[Optional[ProbeResult]] = [None] * len(flows)
        errors = []
        sent = {}
        locked = []
        try:
            for name, idx in per_src.items():
                agent = self.nodes[name].agent
                agent._lock.acquire()  # pylint: disable=consider-using-with,protected-access
                locked.append(agent)
                sent[name] = agent.send("probe", flows=[wire[i] for i in idx], timeout=timeout,
                                        concurrency=concurrency)
            for name, idx in per_src.items():
                # every wave of `concurrency` flows takes at most `timeout`; be generous on top
                limit = 60 + timeout * (len(idx) // concurrency + 1) * 3
                try:
                    answers = self.nodes[name].agent.receive(sent[name], limit)
                except LabError as exc:
                    errors.append(str(exc))
                    continue
                for i, ans in zip(idx, answers):
                    results[i] = ProbeResult(flows[i], ans["verdict"], ans["detail"], ans["elapsed"])
        finally:
            for agent in locked:
                agent._lock.release()  # pylint: disable=protected-access
        if errors:
            raise LabError("\n".join(errors))
        if raw:  # ICMP other than echo, other IP protocols: allowed when the destination received it
            by_dst: Dict[str, List[int]] = {}
            for i in raw:
                by_dst.setdefault(self.node(flows[i].dst_node).name, []).append(i)
            for name, idx in by_dst.items():
                seen = set(self.nodes[name].agent.call("icmp_seen", nonces=[raw[i] for i in idx]))
                for i in idx:
                    r = results[i]
                    if r.verdict == "sent":
                        ok = raw[i] in seen
                        results[i] = dataclasses.replace(r, verdict="allowed" if ok else "denied",
                                                         detail="seen" if ok else "timeout")
        return results

    @staticmethod
    def _is_echo(flow: Flow) -> bool:
        request = 128 if ":" in flow.dst_ip else 8
        return flow.icmp_type in (None, request) and flow.icmp_code in (None, 0)

    def probe(self, flow: Flow, timeout: Optional[float] = None) -> ProbeResult:
        return self.probe_many([flow], timeout)[0]
