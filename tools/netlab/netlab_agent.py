"""Per-namespace agent of the dataplane lab (see netlab.py).

Started by the lab as ``ip netns exec <ns> python3 netlab_agent.py``; it lives as long as its stdin
stays open.  Protocol: one JSON object per line on stdin, ``{"id": N, "op": NAME, ...}``; one JSON
object per line on stdout, ``{"id": N, "ok": true, "result": ...}`` or ``{"id": N, "ok": false,
"error": "..."}``.  Standard library only.

Operations
  ping                       -> "pong"
  listen  tcp=[ports] udp=[ports]
                             TCP: one dual-stack socket per port on [::] that accepts and closes;
                             UDP: one IPv4 and one IPv6 socket per port that echo every datagram back
                             from the address it was sent to (IP_PKTINFO / IPV6_PKTINFO).
  sniff_icmp                 start a raw ICMP/ICMPv6 receiver that remembers payload nonces; a raw
                             socket sees a packet only after the input hook accepted it.
  sniff   protos=[n]         the same for other IP protocols (raw IPv4 and IPv6 sockets of protocol n)
  icmp_seen nonces=[hex]     -> the subset of nonces the receiver saw (and forgets them)
  probe flows=[...] timeout=s concurrency=n
                             -> one result per flow, in order: {"verdict", "detail", "elapsed"}
  ct_flush                   flush this namespace's conntrack table (ctnetlink)
  ct_count                   -> number of conntrack entries (ctnetlink dump)
"""

import errno
import json
import os
import queue
import resource
import selectors
import socket
import struct
import sys
import threading
import time

IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
IPV6_RECVPKTINFO = getattr(socket, "IPV6_RECVPKTINFO", 49)
IPV6_PKTINFO = getattr(socket, "IPV6_PKTINFO", 50)
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
NETLINK_NETFILTER = 12
NFNL_SUBSYS_CTNETLINK = 1
IPCTNL_MSG_CT_NEW = 0
IPCTNL_MSG_CT_GET = 1
IPCTNL_MSG_CT_DELETE = 2
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_DUMP = 0x300
NLMSG_ERROR = 2
NLMSG_DONE = 3

ECHO = {socket.AF_INET: (8, 0), socket.AF_INET6: (128, 129)}  # family -> (request, reply)


def family_of(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def icmp_packet(icmp_type, code, ident, seq, payload, family):
    header = struct.pack("!BBHHH", icmp_type, code, 0, ident, seq)
    if family == socket.AF_INET:  # the kernel fills in the ICMPv6 checksum itself
        header = struct.pack("!BBHHH", icmp_type, code, checksum(header + payload), ident, seq)
    return header + payload


# --------------------------------------------------------------------------------------------- servers


class Servers(threading.Thread):
    """TCP accept-and-close and UDP echo servers, plus the optional ICMP receiver, in one thread."""

    def __init__(self):
        super().__init__(daemon=True)
        self.sel = selectors.DefaultSelector()
        self.todo = queue.Queue()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        self.sel.register(self.wake_r, selectors.EVENT_READ, ("wake", None))
        self.tcp_ports = set()
        self.udp_ports = set()
        self.sniffing = False
        self.sniffed = set()  # other IP protocols with receivers
        self.seen = set()
        self.seen_lock = threading.Lock()

    def call(self, fn):
        """Run fn() in the server thread (selectors are not thread safe); return its result."""
        done = queue.Queue()
        self.todo.put((fn, done))
        os.write(self.wake_w, b"x")
        ok, value = done.get()
        if not ok:
            raise value
        return value

    def listen(self, tcp=(), udp=()):
        def do():
            for port in tcp:
                if port in self.tcp_ports:
                    continue
                s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                s.bind(("::", port))
                s.listen(4096)
                s.setblocking(False)
                self.sel.register(s, selectors.EVENT_READ, ("tcp", None))
                self.tcp_ports.add(port)
            for port in udp:
                if port in self.udp_ports:
                    continue
                s4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s4.setsockopt(socket.SOL_IP, IP_PKTINFO, 1)
                s4.bind(("0.0.0.0", port))
                s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
                s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                s6.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
                s6.bind(("::", port))
                for s in (s4, s6):
                    try:  # bursts of a thousand probes must not overflow the receive buffer
                        s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 16 << 20)
                    except OSError:
                        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
                    s.setblocking(False)
                    self.sel.register(s, selectors.EVENT_READ, ("udp", s.family))
                self.udp_ports.add(port)
            return {"tcp": sorted(self.tcp_ports), "udp": sorted(self.udp_ports)}

        return self.call(do)

    def sniff_icmp(self):
        def do():
            if not self.sniffing:
                for fam, proto in ((socket.AF_INET, socket.IPPROTO_ICMP),
                                   (socket.AF_INET6, socket.IPPROTO_ICMPV6)):
                    s = socket.socket(fam, socket.SOCK_RAW, proto)
                    s.setblocking(False)
                    self.sel.register(s, selectors.EVENT_READ, ("icmp", fam))
                self.sniffing = True
            return True

        return self.call(do)

    def sniff(self, protos):
        def do():
            for proto in protos:
                if proto in self.sniffed:
                    continue
                for fam in (socket.AF_INET, socket.AF_INET6):
                    s = socket.socket(fam, socket.SOCK_RAW, int(proto))
                    s.setblocking(False)
                    self.sel.register(s, selectors.EVENT_READ, ("icmp", fam))
                self.sniffed.add(proto)
            return sorted(self.sniffed)

        return self.call(do)

    def icmp_seen(self, nonces):
        with self.seen_lock:
            hits = [n for n in nonces if n in self.seen]
            self.seen.difference_update(hits)
        return hits

    def run(self):
        while True:
            for key, _unused in self.sel.select():
                kind, fam = key.data
                try:
                    if kind == "wake":
                        os.read(self.wake_r, 4096)
                        while not self.todo.empty():
                            fn, done = self.todo.get()
                            try:
                                done.put((True, fn()))
                            except Exception as exc:  # pylint: disable=broad-except
                                done.put((False, exc))
                    elif kind == "tcp":
                        for _unused in range(256):
                            try:
                                conn, _peer = key.fileobj.accept()
                            except (BlockingIOError, ConnectionAbortedError):
                                break
                            conn.close()
                    elif kind == "udp":
                        self._echo(key.fileobj, fam)
                    elif kind == "icmp":
                        for _unused in range(256):
                            try:
                                data = key.fileobj.recv(65535)
                            except BlockingIOError:
                                break
                            if len(data) >= 16:
                                with self.seen_lock:
                                    self.seen.add(data[-16:].hex())
                except OSError as exc:
                    sys.stderr.write("agent server: %s %r\n" % (kind, exc))

    @staticmethod
    def _echo(sock, fam):
        for _unused in range(256):
            try:
                data, anc, _flags, peer = sock.recvmsg(65535, 256)
            except BlockingIOError:
                return
            except ConnectionRefusedError:
                continue
            reply_anc = []
            for level, typ, value in anc:
                if fam == socket.AF_INET and level == socket.SOL_IP and typ == IP_PKTINFO:
                    _ifindex, _spec, local = struct.unpack("I4s4s", value[:12])
                    reply_anc = [(socket.SOL_IP, IP_PKTINFO, struct.pack("I4s4s", 0, local, b"\0" * 4))]
                elif fam == socket.AF_INET6 and level == socket.IPPROTO_IPV6 and typ == IPV6_PKTINFO:
                    local, _ifindex = struct.unpack("16sI", value[:20])
                    reply_anc = [(socket.IPPROTO_IPV6, IPV6_PKTINFO, struct.pack("16sI", local, 0))]
            try:
                sock.sendmsg([data], reply_anc, 0, peer)
            except OSError as exc:  # an output drop answers EPERM: the reply is simply lost
                sys.stderr.write("agent udp echo to %s: %r\n" % (peer[0], exc))


# ---------------------------------------------------------------------------------------------- probes


def classify_errno(err):
    if err == errno.ECONNREFUSED:
        return "refused"
    if err in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EACCES):
        return "unreachable"
    if err == errno.EPERM:
        return "eperm"
    return "error:%s" % errno.errorcode.get(err, err)


class Probe:
    """One flow in flight."""

    def __init__(self, index, flow, deadline):
        self.index = index
        self.flow = flow
        self.deadline = deadline
        self.sock = None
        self.kind = None  # tcp | udp | echo | raw
        self.payload = bytes.fromhex(flow["nonce"])
        self.started = time.monotonic()
        self.registered = False

    def start(self):
        """Open the socket and send; return a final (verdict, detail) or None if waiting."""
        f = self.flow
        fam = family_of(f["dst_ip"])
        proto = f["protocol"]
        if proto == "tcp":
            self.kind = "tcp"
            s = self.sock = socket.socket(fam, socket.SOCK_STREAM)
            s.setblocking(False)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.bind((f["src_ip"], 0))
            rc = s.connect_ex((f["dst_ip"], f["port"]))
            if rc == 0:
                return ("allowed", "established")
            if rc not in (errno.EINPROGRESS, errno.EAGAIN):
                return ("denied", classify_errno(rc))
            return None
        if proto == "udp":
            self.kind = "udp"
            s = self.sock = socket.socket(fam, socket.SOCK_DGRAM)
            s.setblocking(False)
            s.bind((f["src_ip"], 0))
            s.connect((f["dst_ip"], f["port"]))
            s.send(self.payload)
            return None
        if proto == "icmp":
            req, _rep = ECHO[fam]
            icmp_type = f.get("icmp_type")
            icmp_code = f.get("icmp_code")
            l4 = socket.IPPROTO_ICMP if fam == socket.AF_INET else socket.IPPROTO_ICMPV6
            if icmp_type in (None, req) and icmp_code in (None, 0):
                self.kind = "echo"  # ping socket: the kernel picks the id and routes the reply to us
                s = self.sock = socket.socket(fam, socket.SOCK_DGRAM, l4)
                pkt = icmp_packet(req, 0, 0, 1, self.payload, fam)
            else:
                self.kind = "raw"  # verdict from the destination's receiver (see icmp_seen)
                s = self.sock = socket.socket(fam, socket.SOCK_RAW, l4)
                pkt = icmp_packet(icmp_type, icmp_code or 0, 0x4E4C, 1, self.payload, fam)
            s.setblocking(False)
            s.bind((f["src_ip"], 0))
            s.sendto(pkt, (f["dst_ip"], 0))
            return None
        if proto == "raw":  # another IP protocol: the payload alone; verdict from the receiver
            self.kind = "raw"
            s = self.sock = socket.socket(fam, socket.SOCK_RAW, int(f["ip_proto"]))
            s.setblocking(False)
            s.bind((f["src_ip"], 0))
            s.sendto(self.payload, (f["dst_ip"], 0))
            return None
        raise ValueError("unknown protocol %r" % proto)

    def events(self):
        if self.kind == "tcp":
            return selectors.EVENT_WRITE
        if self.kind in ("udp", "echo"):
            return selectors.EVENT_READ
        return 0  # raw: just wait for the deadline

    def ready(self):
        """The socket is ready; return (verdict, detail) or None to keep waiting."""
        s = self.sock
        if self.kind == "tcp":
            err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err == 0:
                return ("allowed", "established")
            return ("denied", classify_errno(err))
        while True:
            try:
                data = s.recv(65535)
            except BlockingIOError:
                return None
            except OSError as exc:
                return ("denied", classify_errno(exc.errno))
            if self.kind == "udp" and data == self.payload:
                return ("allowed", "reply")
            if self.kind == "echo" and len(data) >= 8:
                fam = s.family
                if data[0] == ECHO[fam][1] and data[8:] == self.payload:
                    return ("allowed", "reply")

    def expire(self):
        if self.kind == "raw":
            return ("sent", "sent")
        return ("denied", "timeout")

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None


def run_probes(flows, timeout=0.5, concurrency=1024):
    results = [None] * len(flows)
    todo = list(enumerate(flows))
    todo.reverse()
    active = {}
    sel = selectors.DefaultSelector()

    def finish(probe, outcome):
        verdict, detail = outcome
        results[probe.index] = {"verdict": verdict, "detail": detail,
                                "elapsed": round(time.monotonic() - probe.started, 6)}
        if probe.registered:
            sel.unregister(probe.sock)
            del active[probe.sock.fileno()]
            probe.registered = False
        probe.close()

    waiting = []  # probes without socket events (raw ICMP): finished at their deadline
    while todo or active or waiting:
        while todo and len(active) + len(waiting) < concurrency:
            index, flow = todo.pop()
            probe = Probe(index, flow, time.monotonic() + flow.get("timeout", timeout))
            try:
                outcome = probe.start()
            except OSError as exc:
                finish(probe, ("denied", classify_errno(exc.errno)))
                continue
            except (ValueError, KeyError, TypeError) as exc:
                finish(probe, ("error", "bad flow: %r" % (exc,)))
                continue
            if outcome is not None:
                finish(probe, outcome)
            elif probe.events():
                active[probe.sock.fileno()] = probe
                sel.register(probe.sock, probe.events(), probe)
                probe.registered = True
            else:
                waiting.append(probe)
        now = time.monotonic()
        deadlines = [p.deadline for p in active.values()] + [p.deadline for p in waiting]
        wait = max(0.0, min(deadlines) - now) if deadlines else 0.0
        for key, _unused in sel.select(wait):
            probe = key.data
            try:
                outcome = probe.ready()
            except OSError as exc:
                outcome = ("denied", classify_errno(exc.errno))
            if outcome is not None:
                finish(probe, outcome)
        now = time.monotonic()
        for probe in [p for p in active.values() if p.deadline <= now]:
            finish(probe, probe.expire())
        for probe in [p for p in waiting if p.deadline <= now]:
            waiting.remove(probe)
            finish(probe, probe.expire())
    sel.close()
    return results


# ------------------------------------------------------------------------------------------- conntrack


def _ctnetlink(msg_type, flags, family):
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    try:
        s.bind((0, 0))
        nfgen = struct.pack("=BBH", family, 0, 0)
        hdr = struct.pack("=IHHII", 16 + len(nfgen), (NFNL_SUBSYS_CTNETLINK << 8) | msg_type, flags, 1, 0)
        s.send(hdr + nfgen)
        count = 0
        while True:
            data = s.recv(1 << 20)
            off = 0
            while off + 16 <= len(data):
                length, typ, _flags, _seq, _pid = struct.unpack_from("=IHHII", data, off)
                if typ == NLMSG_ERROR:
                    (code,) = struct.unpack_from("=i", data, off + 16)
                    if code:
                        raise OSError(-code, "ctnetlink: %s" % os.strerror(-code))
                    return count
                if typ == NLMSG_DONE:
                    return count
                if typ == (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW:
                    count += 1
                off += (length + 3) & ~3
    finally:
        s.close()


def ct_flush():
    for fam in (socket.AF_INET, socket.AF_INET6):
        _ctnetlink(IPCTNL_MSG_CT_DELETE, NLM_F_REQUEST | NLM_F_ACK, fam)
    return True


def ct_count():
    return _ctnetlink(IPCTNL_MSG_CT_GET, NLM_F_REQUEST | NLM_F_DUMP, socket.AF_UNSPEC)


# ------------------------------------------------------------------------------------------------ main


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    except (ValueError, OSError):
        pass
    servers = Servers()
    servers.start()
    out = sys.stdout
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        req = {}
        try:
            req = json.loads(line)
            op = req["op"]
            if op == "ping":
                result = "pong"
            elif op == "listen":
                result = servers.listen(req.get("tcp", ()), req.get("udp", ()))
            elif op == "sniff_icmp":
                result = servers.sniff_icmp()
            elif op == "sniff":
                result = servers.sniff(req["protos"])
            elif op == "icmp_seen":
                result = servers.icmp_seen(req["nonces"])
            elif op == "probe":
                result = run_probes(req["flows"], req.get("timeout", 0.5), req.get("concurrency", 1024))
            elif op == "ct_flush":
                result = ct_flush()
            elif op == "ct_count":
                result = ct_count()
            else:
                raise ValueError("unknown op %r" % op)
            reply = {"id": req.get("id"), "ok": True, "result": result}
        except Exception as exc:  # pylint: disable=broad-except
            reply = {"id": req.get("id"), "ok": False, "error": "%s: %s" % (type(exc).__name__, exc)}
        out.write(json.dumps(reply) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
