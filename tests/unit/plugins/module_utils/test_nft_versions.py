"""The module's behaviour across nft versions, without root: the version floor, and the canonical form
as the fixed point of a listing that nft <= 0.9.8 prints differently once it is loaded back.

The real module (plugins/modules/nft_table.py) runs as a subprocess, as Ansible would run it, with a
stand-in ``nft`` and ``unshare`` first on PATH.  The stand-in keeps one table per "network namespace"
(a file; the stand-in ``unshare`` gives each scratch run a new one) and lists a table as nft 0.9.8
does (measured, see docs/platforms.md): a loaded ``meta l4proto tcp ip saddr @s`` lists as
``meta nfproto ipv4 ip saddr @s``, which, loaded again, lists as ``ip saddr @s``.  The tests with
real nft binaries (Debian 11, 12 and 13) are tests/platforms/.
"""

import hashlib
import json
import os
import subprocess
import sys

import ansible
import pytest

from ansible_collections.hostfw.nftables.plugins.module_utils import _nft

# the directory that holds ansible_collections/hostfw/nftables, wherever the tests import it from
# (.collections/ here, ansible-test's own copy under ansible-test units)
COLLECTIONS = os.path.abspath(os.path.join(os.path.dirname(_nft.__file__), *[os.pardir] * 5))
# and the ansible-core the tests run with (ansible-test units puts it on the path by PYTHONPATH)
MODULE_PATH = os.pathsep.join([COLLECTIONS, os.path.dirname(os.path.dirname(os.path.abspath(ansible.__file__)))]
                              + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])

FAKE_NFT = r'''
import json, os, re, sys

STATE = os.environ["FAKE_NFT_STATE"]
NS = os.environ.get("FAKE_NFT_NS", "host")
PATH = os.path.join(STATE, NS + ".json")
MODE = os.environ.get("FAKE_NFT_RELIST", "old")
HEAD = "table inet hostfw {"


def load():
    try:
        with open(PATH) as handle:
            return json.load(handle)
    except IOError:
        return {}


def save(tables):
    with open(PATH, "w") as handle:
        json.dump(tables, handle)


def listing(body):
    if MODE == "old":   # nft 0.9.8: one step of the relisting per load
        body = re.sub(r"meta (l4proto tcp|nfproto ipv4) ip saddr",
                      lambda m: "meta nfproto ipv4 ip saddr" if m.group(1) == "l4proto tcp" else "ip saddr", body)
    elif MODE == "grow":  # a listing that never settles
        body = body.replace("accept", "counter accept", 1)
    return HEAD + "\n" + body + "}\n"


def load_file(path, check):
    tables = load()
    lines = open(path).read().splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        if not line or line.startswith("#"):
            continue
        if line == "table inet hostfw":
            tables.setdefault("inet hostfw", "")
        elif line == "delete table inet hostfw":
            if "inet hostfw" not in tables:
                sys.stderr.write("Error: No such file or directory; delete table inet hostfw\n")
                return 1
            del tables["inet hostfw"]
        elif line.startswith("table ") and line.endswith("{"):
            name = line[len("table "):-1].strip()
            body = []
            while lines[i] != "}":
                body.append(lines[i] + "\n")
                i += 1
            i += 1
            tables[name] = "".join(body)
        else:
            sys.stderr.write("Error: syntax error: %s\n" % line)
            return 1
    if not check:
        save(tables)
    return 0


def main(args):
    opts = [a for a in args if a in ("-s", "-c", "-j")]
    args = [a for a in args if a not in opts]
    if args in (["--version"], ["-v"]):
        print(os.environ.get("FAKE_NFT_VERSION", "nftables v0.9.8 (E.D.S.)"))
        return 0
    if args[:1] == ["-f"]:
        return load_file(args[1], "-c" in opts)
    if args == ["list", "tables"]:
        for name in sorted(load()):
            print("table " + name)
        return 0
    if args == ["list", "table", "inet", "hostfw"]:
        tables = load()
        if "inet hostfw" not in tables:
            sys.stderr.write("Error: No such file or directory\n")
            return 1
        sys.stdout.write(listing(tables["inet hostfw"]))
        return 0
    if args == ["delete", "table", "inet", "hostfw"]:
        tables = load()
        tables.pop("inet hostfw", None)
        save(tables)
        return 0
    sys.stderr.write("fake nft: unsupported %r\n" % (args,))
    return 2


sys.exit(main(sys.argv[1:]))
'''

FAKE_UNSHARE = r'''
import os, sys, uuid

args = sys.argv[1:]
while args and args[0] in ("-n", "-r"):
    args.pop(0)
os.environ["FAKE_NFT_NS"] = "scratch-" + uuid.uuid4().hex
os.execvp(args[0], args)
'''

CONTENT = """# hostfw.nftables test table
table inet hostfw
delete table inet hostfw
table inet hostfw {
\tchain input {
\t\ttype filter hook input priority filter; policy drop;
\t\tmeta l4proto tcp ip saddr @mgmt tcp dport 22 accept
\t\tmeta l4proto tcp tcp dport 80 accept
\t}
}
"""
# what nft 0.9.8 lists after one load (L1) and after a second load (L2 = the fixed point)
LISTED_ONCE = ("table inet hostfw {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n"
               "\t\tmeta nfproto ipv4 ip saddr @mgmt tcp dport 22 accept\n\t\tmeta l4proto tcp tcp dport 80 accept\n"
               "\t}\n}\n")
CANONICAL = LISTED_ONCE.replace("meta nfproto ipv4 ip saddr", "ip saddr")


def sha(text):
    return hashlib.sha256(text.encode()).hexdigest()


class Host:
    """A fake host: the stand-in binaries, the host "namespace" and the module's directories."""

    def __init__(self, tmp_path, relist="old", version="nftables v0.9.8 (E.D.S.)"):
        self.bin = tmp_path / "bin"
        self.state = tmp_path / "nft-state"
        self.run_dir = tmp_path / "run"
        for path in (self.bin, self.state):
            path.mkdir()
        for name, source in (("nft", FAKE_NFT), ("unshare", FAKE_UNSHARE)):
            script = self.bin / name
            script.write_text("#!%s\n%s" % (sys.executable, source))
            script.chmod(0o755)
        self.env = dict(os.environ, PATH="%s:%s" % (self.bin, os.environ.get("PATH", "/usr/bin:/bin")),
                        PYTHONPATH=MODULE_PATH, FAKE_NFT_STATE=str(self.state), FAKE_NFT_RELIST=relist,
                        FAKE_NFT_VERSION=version)
        self.env.pop("FAKE_NFT_NS", None)
        self.calls = 0

    def module(self, **args):
        args.setdefault("state_dir", str(self.run_dir))
        args.setdefault("rollback_method", "detached")
        self.calls += 1
        args_file = self.state / ("args-%d.json" % self.calls)
        args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
        proc = subprocess.run(
            [sys.executable, "-m", "ansible_collections.hostfw.nftables.plugins.modules.nft_table", str(args_file)],
            env=self.env, cwd=str(self.state), capture_output=True, text=True, check=False, timeout=60)
        try:
            return json.loads(proc.stdout)
        except ValueError:
            raise AssertionError("module output is not JSON: %s %s" % (proc.stdout, proc.stderr))

    def running(self):
        """The host's table as the stand-in nft lists it (None when absent)."""
        proc = subprocess.run([str(self.bin / "nft"), "-s", "list", "table", "inet", "hostfw"], env=self.env,
                              capture_output=True, text=True, check=False)
        return proc.stdout if proc.returncode == 0 else None


# ---------------------------------------------------------------------------------------------- pure helpers
@pytest.mark.parametrize("text, version", [
    ("nftables v0.9.3 (Topsy)\n", (0, 9, 3)),
    ("nftables v0.9.8 (E.D.S.)", (0, 9, 8)),
    ("nftables v1.0.6 (Lester Gooch #5)", (1, 0, 6)),
    ("nftables v1.1.3 (Commodore Bullmoose #4)", (1, 1, 3)),
    ("nftables v1.0 (x)", (1, 0, 0)),
    ("nft: unknown option", None),
    ("", None),
])
def test_parse_nft_version(text, version):
    assert _nft.parse_nft_version(text) == version


def test_nft_version_floor():
    assert _nft.MIN_NFT_VERSION == (0, 9, 3)
    assert _nft.nft_version_problem("nftables v0.9.3 (Topsy)") is None
    assert _nft.nft_version_problem("nftables v1.1.3 (Commodore Bullmoose #4)") is None
    assert _nft.nft_version_problem("nftables v0.9.2 (Young Neil)\n") == (
        "nftables 0.9.2 is too old (nft --version: 'nftables v0.9.2 (Young Neil)'): hostfw.nftables needs "
        "nftables 0.9.3 or newer")
    assert _nft.nft_version_problem("nftables v0.8.2 (Joe Btfsplk)") == (
        "nftables 0.8.2 is too old (nft --version: 'nftables v0.8.2 (Joe Btfsplk)'): hostfw.nftables needs "
        "nftables 0.9.3 or newer")
    assert _nft.nft_version_problem("") == (
        "cannot read the nftables version from `nft --version` (''): hostfw.nftables needs nftables 0.9.3 or newer")


def test_fixed_point_of_a_stable_listing_takes_one_relist():
    seen = []

    def relist(text):
        seen.append(text)
        return text + "\n\n"  # normalised away

    assert _nft.listing_fixed_point(CANONICAL, relist) == (CANONICAL, 1)
    assert seen == [CANONICAL]


def test_fixed_point_of_an_old_nft_listing():
    def relist(text):
        return text.replace("meta nfproto ipv4 ip saddr", "ip saddr")

    assert _nft.listing_fixed_point(LISTED_ONCE, relist) == (CANONICAL, 2)


def test_a_listing_that_never_settles_fails_clearly():
    def relist(text):
        return text.replace("accept", "counter accept", 1)

    with pytest.raises(_nft.FixedPointError) as info:
        _nft.listing_fixed_point(CANONICAL, relist, "the candidate", max_relists=3)
    assert len(info.value.listings) == 4
    message = str(info.value)
    assert message.startswith(
        "the listing of the candidate does not reach a fixed point: loaded back into a fresh scratch network "
        "namespace 3 times, it listed differently every time; the last change was:\n--- listing 3\n+++ listing 4\n")
    assert "\n-\t\tip saddr @mgmt tcp dport 22 counter counter accept\n" in message
    assert "\n+\t\tip saddr @mgmt tcp dport 22 counter counter counter accept\n" in message


# ---------------------------------------------------------------------------------------------- the module
def test_old_nft_rollout_is_stable(tmp_path):
    """nft 0.9.8 behaviour: the canonical form is the second reload's listing; apply, confirm and restage
    agree with it, and the running table is exactly that form."""
    host = Host(tmp_path)
    staged = host.module(state="stage", content=CONTENT)
    assert not staged.get("failed"), staged
    assert staged["changed"] is True and staged["present_before"] is False
    assert staged["nft_version"] == "nftables v0.9.8 (E.D.S.)"
    assert staged["canonical_loads"] == 3  # content -> L1 -> L2 -> L2
    assert staged["sha256_after"] == sha(CANONICAL)
    with open(os.path.join(str(host.run_dir), "candidate.nft")) as handle:
        assert handle.read().endswith("table inet hostfw\ndelete table inet hostfw\n" + CANONICAL)

    applied = host.module(state="apply", sha256=staged["sha256_after"], timeout=60)
    assert not applied.get("failed"), applied
    assert applied["applied"] is True and applied["sha256_after"] == staged["sha256_after"]
    assert host.running() == CANONICAL

    confirmed = host.module(state="confirm", sha256=staged["sha256_after"])
    assert not confirmed.get("failed"), confirmed
    assert confirmed["changed"] is True and confirmed["armed"] is False

    again = host.module(state="stage", content=CONTENT)
    assert not again.get("failed"), again
    assert again["changed"] is False and again["unified_diff"] == ""
    assert again["sha256_before"] == again["sha256_after"] == staged["sha256_after"]


def test_a_table_loaded_from_the_content_itself_is_the_same_table(tmp_path):
    """A running table loaded from the rendered text (listing L1 on nft 0.9.8, not the fixed point) is
    compared by its fixed point: the stage reports no change."""
    host = Host(tmp_path)
    content = tmp_path / "content.nft"
    content.write_text(CONTENT)
    subprocess.run([str(host.bin / "nft"), "-f", str(content)], env=host.env, check=True)
    assert host.running() == LISTED_ONCE
    staged = host.module(state="stage", content=CONTENT)
    assert not staged.get("failed"), staged
    assert staged["changed"] is False and staged["sha256_before"] == sha(CANONICAL)


def test_modern_nft_needs_one_reload(tmp_path):
    host = Host(tmp_path, relist="stable", version="nftables v1.0.6 (Lester Gooch #5)")
    staged = host.module(state="stage", content=CONTENT, _ansible_check_mode=True)
    assert not staged.get("failed"), staged
    assert staged["canonical_loads"] == 2
    assert staged["sha256_after"] == sha(CANONICAL.replace("\t\tip saddr", "\t\tmeta l4proto tcp ip saddr"))


def test_stage_refuses_an_nft_older_than_0_9_3(tmp_path):
    host = Host(tmp_path, version="nftables v0.9.2 (Young Neil)")
    staged = host.module(state="stage", content=CONTENT)
    assert staged["failed"] is True
    assert staged["msg"] == (
        "refusing to stage on this host: nftables 0.9.2 is too old (nft --version: 'nftables v0.9.2 (Young Neil)'): "
        "hostfw.nftables needs nftables 0.9.3 or newer (%s)" % (host.bin / "nft"))
    assert staged["nft_version"] == "nftables v0.9.2 (Young Neil)"
    assert not os.path.exists(os.path.join(str(host.run_dir), "stage.json"))


def test_stage_fails_when_the_listing_never_settles(tmp_path):
    host = Host(tmp_path, relist="grow")
    staged = host.module(state="stage", content=CONTENT)
    assert staged["failed"] is True
    assert staged["msg"].startswith(
        "the listing of the candidate does not reach a fixed point: loaded back into a fresh scratch network "
        "namespace 3 times, it listed differently every time; the last change was:\n")
    assert staged["msg"].endswith("(nftables v0.9.8 (E.D.S.))")
