"""The conntrack primer of nft_table (module_utils/_nft.py PRIMER) with real packets: a TCP session
that exists before any conntrack user in its network namespace is picked up mid-stream when a table
with ``ct state`` arrives, and its first packet from the server is ``ct state new``. A table whose
egress accepts only established flows then drops the server's packets (the SSH session of a first
rollout hangs). Loading the primer first and making one round trip tracks the session as
established, and the same table lets it through."""

import subprocess
import sys

from ansible_collections.hostfw.nftables.plugins.module_utils._nft import PRIMER, render_apply_file

# the candidate's egress, reduced to what matters: only established/related flows leave the host
CANDIDATE = render_apply_file("""table inet hostfw {
\tchain filter-output {
\t\ttype filter hook output priority filter; policy drop;
\t\tct state established,related accept
\t\toifname "lo" accept
\t}
}
""")
SERVER = r"""
import socket, sys
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", 2222)); srv.listen(1)
print("listening", flush=True)
conn, _ = srv.accept(); conn.settimeout(3)
for line in sys.stdin:  # one round trip per line: the server speaks first (as sshd answering a command)
    try:
        conn.sendall(b"ping\n")
        print("ok" if conn.recv(16).startswith(b"pong") else "bad", flush=True)
    except OSError:
        print("timeout", flush=True)
"""
CLIENT = r"""
import socket, sys
c = socket.create_connection((sys.argv[1], 2222), 5)
while True:
    data = c.recv(16)
    if not data:
        break
    c.sendall(b"pong\n")
"""


class Session:
    """A TCP session from client to server, opened before anything in the server's namespace uses conntrack."""

    def __init__(self, server, client):
        self.server = subprocess.Popen(["ip", "netns", "exec", server.netns, sys.executable, "-c", SERVER],
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.server.stdout.readline().strip() == "listening"
        self.client = subprocess.Popen(["ip", "netns", "exec", client.netns, sys.executable, "-c", CLIENT,
                                        server.ipv4[0]])

    def round_trip(self):
        self.server.stdin.write("go\n")
        self.server.stdin.flush()
        return self.server.stdout.readline().strip()

    def close(self):
        for proc in (self.client, self.server):
            proc.kill()
            proc.wait()


def _pair(lab, suffix):
    server = lab.add_node("srv" + suffix, ["10.77.%s.1/24" % suffix])
    client = lab.add_node("cli" + suffix, ["10.77.%s.2/24" % suffix])
    return server, client


def test_without_the_primer_the_session_dies_at_the_apply(lab):
    server, client = _pair(lab, "1")
    session = Session(server, client)
    try:
        assert session.round_trip() == "ok"
        server.load_nft(CANDIDATE)
        assert session.round_trip() == "timeout", "the server's first packet is ct state new and is dropped"
    finally:
        session.close()


def test_primer_and_one_round_trip_keep_the_session(lab):
    server, client = _pair(lab, "2")
    session = Session(server, client)
    try:
        assert session.round_trip() == "ok"
        server.load_nft(render_apply_file(PRIMER))
        assert session.round_trip() == "ok", "the primer never drops"
        server.load_nft(CANDIDATE)
        assert session.round_trip() == "ok", "the session is established for the candidate"
        assert session.round_trip() == "ok"
    finally:
        session.close()
