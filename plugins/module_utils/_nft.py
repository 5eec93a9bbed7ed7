# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Target-side helpers for ``hostfw.nftables.nft_table`` (private; standard library only): the
names of our table, listings (normalise, hash, compare, the apply file) and the boot unit.

Everything here must run on Python 3.8+ managed nodes with nothing but the ``nft`` binary, and
is pure (text in, text out).  The module's other concerns have their own files:
``_nft_state`` (state directory, lock, files), ``_nft_rollback`` (the armed rollback) and
``_nft_inspect`` (other tables that could drop failsafe traffic).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import difflib
import hashlib
import re

TABLE_FAMILY = "inet"
TABLE_NAME = "hostfw"
TABLE = "table %s %s" % (TABLE_FAMILY, TABLE_NAME)

# One nft transaction that replaces our table whether or not it exists (foomuuri idiom;
# ``destroy table`` needs nft >= 1.0.8, Debian 12 has 1.0.6).
PREAMBLE = "%s\ndelete %s\n" % (TABLE, TABLE)

# The conntrack primer (nft_table state=apply with prime=true): loaded when table inet hostfw is absent, after
# the rollback is armed and at least one round trip before the real apply.  It can never drop (policy accept, a
# counter only), but its ``ct`` expression makes conntrack track every flow of the network namespace, so the
# live management connection is picked up mid-stream and is ``ct state established`` by the time the real table
# (whose egress policy may deny ``ct state new``) is applied.  The rollback restores "absent" and removes it.
PRIMER = ("table inet hostfw {\n"
          "\tchain conntrack-primer {\n"
          "\t\ttype filter hook output priority filter; policy accept;\n"
          "\t\tct state invalid counter\n"
          "\t}\n"
          "}\n")

_TABLE_LINE = re.compile(r"^table\s+(\S+)\s+(\S+)(?:\s*\{)?\s*$")

# The oldest nftables the rendered tables and the module's commands are written for (Ubuntu 20.04
# and RHEL 8 ship 0.9.3); see docs/platforms.md.
MIN_NFT_VERSION = (0, 9, 3)
_NFT_VERSION = re.compile(r"\bnftables\s+v?(\d+)\.(\d+)(?:\.(\d+))?")

# How often a listing is loaded back into a fresh scratch namespace and listed again before we
# give up on it reaching a fixed point.  nft >= 1.0 needs one reload (the listing reloads to
# itself); nft <= 0.9.8 may need two: ``meta l4proto tcp ip saddr @s tcp dport 22`` lists as
# ``meta nfproto ipv4 ip saddr @s tcp dport 22``, which lists as ``ip saddr @s tcp dport 22``.
MAX_RELISTS = 3


# --------------------------------------------------------------------------------------------
# pure helpers
# --------------------------------------------------------------------------------------------
def normalise_listing(text):
    """Canonical form of an ``nft -s list table`` listing used for hashing and comparing.

    nft prints listings deterministically; we only remove what may differ between two listings
    of the same table: carriage returns, trailing blanks and trailing empty lines.  An empty or
    ``None`` listing (table absent) normalises to ``""``.
    """
    if not text:
        return ""
    lines = [line.rstrip() for line in text.replace("\r", "").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    while lines and not lines[0]:
        lines.pop(0)
    if not lines:
        return ""
    return "\n".join(lines) + "\n"


def listing_sha256(text):
    """sha256 (hex) of the normalised listing; ``None`` when the table is absent."""
    norm = normalise_listing(text)
    if not norm:
        return None
    return hashlib.sha256(norm.encode("utf-8")).hexdigest()


def parse_nft_version(text):
    """``(major, minor, patch)`` from ``nft --version`` ("nftables v0.9.8 (E.D.S.)"), or None."""
    match = _NFT_VERSION.search(text or "")
    if not match:
        return None
    return tuple(int(part or 0) for part in match.groups())


def nft_version_problem(text):
    """Why the ``nft`` that printed ``text`` (its ``--version``) cannot be used; None when it can."""
    found = (text or "").strip().splitlines()
    found = found[0] if found else ""
    minimum = ".".join(str(part) for part in MIN_NFT_VERSION)
    version = parse_nft_version(found)
    if version is None:
        return ("cannot read the nftables version from `nft --version` (%r): hostfw.nftables needs nftables %s or "
                "newer" % (found, minimum))
    if version < MIN_NFT_VERSION:
        return ("nftables %s is too old (nft --version: %r): hostfw.nftables needs nftables %s or newer"
                % (".".join(str(part) for part in version), found, minimum))
    return None


class FixedPointError(Exception):
    """A listing that keeps changing when it is loaded back and listed again."""

    def __init__(self, what, listings):
        self.listings = listings
        last = "".join(difflib.unified_diff(listings[-2].splitlines(True), listings[-1].splitlines(True),
                                            "listing %d" % (len(listings) - 1), "listing %d" % len(listings)))
        super(FixedPointError, self).__init__(
            "the listing of %s does not reach a fixed point: loaded back into a fresh scratch network namespace "
            "%d times, it listed differently every time; the last change was:\n%s"
            % (what, len(listings) - 1, last))


def listing_fixed_point(listing, relist, what="the candidate", max_relists=MAX_RELISTS):
    """The fixed point of ``listing`` under ``relist`` (load the text into a fresh scratch network
    namespace, return its listing): relist until two consecutive listings are equal.

    Returns ``(fixed point, number of relists)``; raises FixedPointError after ``max_relists``
    relists that all changed the listing.  Listings are compared normalised.
    """
    listings = [normalise_listing(listing)]
    for count in range(1, max_relists + 1):
        again = normalise_listing(relist(listings[-1]))
        if again == listings[-1]:
            return again, count
        listings.append(again)
    raise FixedPointError(what, listings)


def parse_table_list(text):
    """Parse ``nft list tables`` output into ``[(family, name), ...]``."""
    tables = []
    for line in (text or "").splitlines():
        match = _TABLE_LINE.match(line.strip())
        if match:
            tables.append((match.group(1), match.group(2)))
    return tables


def foreign_tables(tables):
    """The tables of ``parse_table_list`` that are not ours."""
    return [t for t in tables if t != (TABLE_FAMILY, TABLE_NAME)]


# --------------------------------------------------------------------------------------------
# the candidate's text, before nft reads it
# --------------------------------------------------------------------------------------------
# Top-level commands a candidate may contain: each must name our table (``<verb> <object>
# inet hostfw ...``, ``ct`` objects one word later).  Everything else (``flush ruleset``, another
# table, ``define``, ``list``, ``monitor``, ...) is refused before any nft reads the text.
_VERBS = ("add", "create", "insert", "replace", "delete", "destroy", "flush", "reset")
_OBJECTS = ("table", "chain", "rule", "set", "map", "element", "counter", "quota", "limit", "flowtable",
            "secmark", "synproxy", "ct")
# The words that make nft read another file or the ruleset of the host.
_FORBIDDEN_WORDS = ("include",)


_TOKEN = re.compile(r'"[^"]*"|"[^"]*\Z|#[^\n]*|[{};\n]|[^\s"#{};]+|[ \t\r\f\v]+')


def _statements(text):
    """Split nft text into top-level statements as nft's scanner does: ``"..."`` strings (which
    may span lines) and ``#`` comments are opaque; ``;`` and newlines end a statement at depth 0;
    ``{ ... }`` is a block.  Yields ``(line, head words, block words or None)``, each word a
    ``(text, line)`` pair; raises ValueError with the line for an unterminated string or unbalanced
    braces."""
    words, block, depth, line, start = [], None, 0, 1, 1
    for match in _TOKEN.finditer(text):
        token = match.group(0)
        first = token[0]
        if first == "#" or first in " \t\r\f\v":
            continue
        if first == "\n" or first == ";":
            if depth == 0 and words:
                yield start, words, None
                words = []
            if first == "\n":
                line += 1
            if depth == 0 and not words:
                start = line
        elif first == "{":
            if depth == 0:
                block = []
            depth += 1
        elif first == "}":
            if depth == 0:
                raise ValueError("line %d: a '}' closes no block" % line)
            depth -= 1
            if depth == 0:
                yield start, words, block
                words, block = [], None
                start = line
        else:
            if first == '"' and (len(token) < 2 or token[-1] != '"'):
                raise ValueError("line %d: a string is not terminated" % line)
            if depth == 0 and not words:
                start = line
            (block if depth else words).append((token, line))
            line += token.count("\n")
    if depth:
        raise ValueError("line %d: a '{' is not closed" % start)
    if words:
        yield start, words, None


def _names_our_table(words):
    """Whether a top-level statement (its words) acts on table inet hostfw only."""
    rest = [word for word, dummy in words]
    if rest and rest[0] in _VERBS:
        rest = rest[1:]
    if not rest or rest[0] not in _OBJECTS:
        return False
    rest = rest[2:] if rest[0] == "ct" else rest[1:]
    return rest[:2] == [TABLE_FAMILY, TABLE_NAME]


def candidate_text_problems(text):
    """Why the candidate text may not reach nft (a list of messages, one per problem; empty when it
    may): a NUL byte, ``include`` (nft would read another file, as root, while checking it), or a
    top-level statement that does not act on table inet hostfw (``flush ruleset``, another table,
    ``define``, ...).  A pre-scan of the text before any nft reads it; the listing of the scratch
    namespace is checked as well afterwards (check_listing_is_our_table)."""
    if "\0" in text:
        return ["the candidate contains a NUL byte (fix: render it again with hostfw.nftables.compile)"]
    problems = []
    try:
        for line, words, block in _statements(text):
            included = False
            every = words + (block or [])
            for index, (word, at) in enumerate(every):
                if word in _FORBIDDEN_WORDS:
                    problems.append("line %d: the candidate may not %s other files (%s): hostfw.nftables loads only "
                                    "%s (fix: put the rules in the table itself)"
                                    % (at, word, " ".join(w for w, dummy in every[index:index + 2])[:120], TABLE))
                    included = True
                    break
            if not included and not _names_our_table(words):
                problems.append("line %d: `%s` acts outside %s; the candidate may only define that table (fix: "
                                "remove the statement; hostfw.nftables never touches other tables)"
                                % (line, " ".join(w for w, dummy in words)[:120], TABLE))
    except ValueError as exc:
        problems.append("%s (fix: render the candidate again with hostfw.nftables.compile)" % exc)
    return problems


def check_listing_is_our_table(listing):
    """Return an error message when a listing is not exactly one ``table inet hostfw``."""
    norm = normalise_listing(listing)
    if not norm:
        return "the candidate does not define %s" % TABLE
    heads = [line for line in norm.splitlines() if line.startswith("table ")]
    if len(heads) != 1 or not norm.startswith(TABLE + " {"):
        return "the candidate listing must be exactly one %s, got: %s" % (TABLE, ", ".join(heads) or "nothing")
    return None


def render_apply_file(listing, header=None):
    """The file that makes the running table equal ``listing`` in one atomic ``nft -f``.

    ``listing`` empty/None renders the file that deletes our table (and is a no-op when it is
    absent).  The result always has the form ``table inet hostfw`` / ``delete table inet hostfw``
    [/ ``table inet hostfw { ... }``], so loading it touches no other table.
    """
    norm = normalise_listing(listing)
    parts = []
    if header:
        parts.extend("# " + line if line else "#" for line in header.splitlines())
    parts.append(PREAMBLE.rstrip("\n"))
    text = "\n".join(parts) + "\n"
    if norm:
        text += norm
    return text


def unified_diff(before, after, before_name="running: " + TABLE, after_name="candidate: " + TABLE):
    """Unified diff of two listings (normalised); ``""`` when equal."""
    a = normalise_listing(before).splitlines(True)
    b = normalise_listing(after).splitlines(True)
    return "".join(difflib.unified_diff(a, b, before_name, after_name))


def parse_ssh_connection(value):
    """``SSH_CONNECTION`` ("client_ip client_port server_ip server_port") to a dict, or None."""
    if not value:
        return None
    parts = value.split()
    if len(parts) != 4:
        return None
    try:
        return {
            "client_ip": parts[0],
            "client_port": int(parts[1]),
            "server_ip": parts[2],
            "server_port": int(parts[3]),
        }
    except ValueError:
        return None


def ssh_connection_from_environ_blob(blob):
    """Find SSH_CONNECTION in a NUL-separated ``/proc/<pid>/environ`` blob."""
    for item in (blob or b"").split(b"\0"):
        if item.startswith(b"SSH_CONNECTION="):
            return item.split(b"=", 1)[1].decode("utf-8", "replace")
    return None


# --------------------------------------------------------------------------------------------
# files written on the host
# --------------------------------------------------------------------------------------------
# Paths written into the boot unit: no whitespace, quotes, ``%`` (a systemd specifier), ``\``
# or control characters, which would split ExecStart or add directives.
_UNIT_SAFE_PATH = re.compile(r"^/[A-Za-z0-9._/+@:,=-]*$")


def unit_path_problem(path, option):
    """Why ``path`` cannot appear in the boot unit (None when it can)."""
    if not _UNIT_SAFE_PATH.match(path or ""):
        return ("%s %r cannot be written into the boot unit: it must be an absolute path of letters, digits and "
                "._/+@:,=- only (no spaces, quotes, %%, backslashes or control characters)" % (option, path))
    return None


def render_unit(nft_path, persist_path):
    """Our boot unit: loads ONLY table inet hostfw, early, from the last confirmed file.

    - ``DefaultDependencies=no`` + ``Before=network-pre.target`` + ``Wants=network-pre.target``:
      the table is in place before any interface is configured.
    - ``After=nftables.service`` (ordering only; the distro unit is never touched): Debian's
      /etc/nftables.conf starts with ``flush ruleset``, so we load after it if it is enabled.
    - No ``ExecStop``: stopping the unit (or shutdown) leaves the running table alone, so a host
      is never left open by ``systemctl stop``; ``nft_table state=remove`` deletes the table.
    """
    return """# Managed by hostfw.nftables (nft_table state=persist); local changes are overwritten.
[Unit]
Description=hostfw.nftables: load nftables table inet hostfw
Documentation=https://github.com/hostfw/nftables
DefaultDependencies=no
Wants=network-pre.target
Before=network-pre.target shutdown.target
After=local-fs.target nftables.service
Conflicts=shutdown.target
ConditionPathExists={path}

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart={nft} -f {path}
ExecReload={nft} -f {path}

[Install]
WantedBy=sysinit.target
""".format(nft=nft_path, path=persist_path)
