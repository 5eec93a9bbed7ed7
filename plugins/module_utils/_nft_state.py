# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The state directory of ``hostfw.nftables.nft_table`` on the host (private; standard library
only): the lock that serialises runs, atomic writes, JSON records and the checks that make the
module trust nothing that someone else could have written.

- The state directory must be a directory (not a symlink) owned by the module's euid with mode
  0700, and every directory above it must be owned by root (or the euid) and not writable by group
  or others unless it has the sticky bit (``/tmp``).  It is created with ``mkdir`` and checked
  afterwards, so a directory planted by someone else between the two is refused, not used.
- Files are opened with ``O_NOFOLLOW``; reads also with ``O_NONBLOCK`` and must be regular files
  (a FIFO or ``/dev/zero`` planted under a known name cannot hang the module).
- Writes are atomic: a temporary file in the same directory, ``fsync``, ``rename``, ``fsync`` of the
  directory.  ``write`` returns the sha256 of what it wrote; ``verify`` checks a file against it
  immediately before ``nft`` reads the file.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import fcntl
import hashlib
import json
import os
import re
import stat
import tempfile
import time

# Files larger than this are not state files (a guard against planted devices and huge files).
READ_LIMIT = 64 * 1024 * 1024

# How many fired or disarmed rollbacks keep their files (copy, disarm marker, result record).
KEEP_ROLLBACKS = 5

_ROLLBACK_FILE = re.compile(r"^(?:rollback-(?P<a>.+)\.nft|disarmed-(?P<b>.+)|rolled-back-(?P<c>.+)\.json)$")

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)


class StateError(Exception):
    """A state-directory problem, with a message for the user."""


def dumps(data):
    """Stable JSON for the state files."""
    return json.dumps(data, sort_keys=True, indent=1) + "\n"


def sha256_hex(data):
    if not isinstance(data, bytes):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def os_error_message(exc, what, path=None):
    """One clear sentence for an OSError: what failed, on which path, why, and what to do."""
    path = path or getattr(exc, "filename", None) or "?"
    reason = exc.strerror or str(exc)
    code = exc.errno
    if code == errno.EROFS:
        fix = "the file system is mounted read-only: remount it read-write or choose a path on a writable file system"
    elif code in (errno.EACCES, errno.EPERM):
        fix = "run the module as root (become: true)"
    elif code == errno.ENOENT:
        fix = "the file or its directory is missing (removed by someone else, or never created): stage again"
    elif code == errno.ENOTDIR:
        fix = "a component of the path is not a directory: remove it or choose another path"
    elif code == errno.ENOSPC:
        fix = "the file system is full: free some space"
    elif code == errno.ELOOP:
        fix = "it is a symlink, which hostfw.nftables does not follow: remove it"
    else:
        fix = "check the path"
    return "cannot %s %s: %s (%s)" % (what, path, reason, fix)


def _mode(st):
    return stat.S_IMODE(st.st_mode)


def check_ancestors(path, euid=None):
    """Why the directories above ``path`` are unsafe (someone but root could replace ``path``), or None.

    Every existing ancestor, as written and as resolved, must be a directory owned by root or
    ``euid`` and not writable by group or others unless it is sticky; a symlink among them must be
    owned by root or ``euid`` too.
    """
    euid = os.geteuid() if euid is None else euid
    owners = (0, euid)
    absolute = os.path.abspath(path)
    parent = os.path.dirname(absolute)
    seen = set()
    for base in (parent, os.path.realpath(parent)):
        prefix = "/"
        parts = [p for p in base.split("/") if p]
        for index in range(len(parts) + 1):
            prefix = "/" + "/".join(parts[:index])
            if prefix in seen:
                continue
            seen.add(prefix)
            try:
                st = os.lstat(prefix)
            except OSError as exc:
                if exc.errno == errno.ENOENT:
                    break
                return os_error_message(exc, "check the directory", prefix)
            if stat.S_ISLNK(st.st_mode):
                if st.st_uid not in owners:
                    return ("%s (above %s) is a symlink owned by uid %d: only root may own the directories above the "
                            "hostfw.nftables state (fix: replace it with a root-owned directory)" % (prefix, absolute, st.st_uid))
                try:
                    st = os.stat(prefix)
                except OSError as exc:
                    return os_error_message(exc, "check the directory", prefix)
            if not stat.S_ISDIR(st.st_mode):
                return "%s (above %s) is not a directory (fix: remove it or choose another path)" % (prefix, absolute)
            if st.st_uid not in owners:
                return ("%s (above %s) is owned by uid %d: the directories above it must be owned by root "
                        "(fix: chown root %s, or choose another path)" % (prefix, absolute, st.st_uid, prefix))
            if _mode(st) & 0o022 and not st.st_mode & stat.S_ISVTX:
                who = "others" if _mode(st) & 0o002 else "its group"
                return ("%s (above %s) is writable by %s (mode %04o), who could replace it (fix: chmod go-w %s, or "
                        "choose another path)" % (prefix, absolute, who, _mode(st), prefix))
    return None


def check_private_dir(path, euid=None):
    """Why ``path`` is not a private directory of ``euid`` (owner euid, mode 0700, no symlink), or None."""
    euid = os.geteuid() if euid is None else euid
    try:
        st = os.lstat(path)
    except OSError as exc:
        return os_error_message(exc, "check the state directory", path)
    if stat.S_ISLNK(st.st_mode):
        return ("the state directory %s is a symlink; hostfw.nftables does not follow it (fix: rm %s, the module "
                "creates the directory, or set state_dir to a real directory)" % (path, path))
    if not stat.S_ISDIR(st.st_mode):
        return "the state directory %s is not a directory (fix: remove it, the module creates the directory)" % path
    if st.st_uid != euid:
        return ("the state directory %s is owned by uid %d, not by uid %d that runs the module: someone else created "
                "it (fix: inspect it, then rm -r %s; the module creates it again)" % (path, st.st_uid, euid, path))
    if _mode(st) & 0o077:
        return ("the state directory %s has mode %04o: it must be 0700, readable and writable by its owner only "
                "(fix: chmod 0700 %s)" % (path, _mode(st), path))
    return None


def open_regular(path, limit=READ_LIMIT):
    """The bytes of the regular file ``path``, opened without following a symlink and without
    blocking.  Raises OSError (ENOENT, ELOOP, ...) or StateError (not a regular file, too large)."""
    fd = os.open(path, os.O_RDONLY | _O_NOFOLLOW | _O_NONBLOCK | _O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise StateError("%s is not a regular file (fix: remove it)" % path)
        if st.st_size > limit:
            raise StateError("%s is larger than %d bytes (fix: remove it)" % (path, limit))
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
            if sum(len(c) for c in chunks) > limit:
                raise StateError("%s is larger than %d bytes (fix: remove it)" % (path, limit))
        return b"".join(chunks)
    finally:
        os.close(fd)


def fsync_dir(directory):
    try:
        fd = os.open(directory, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_file_atomic(path, data, mode=0o600, verify=None):
    """Write ``data`` to ``path`` atomically: a temporary file in the same directory (created with
    O_EXCL|O_NOFOLLOW), fsync, chmod, ``verify(temporary path, sha256)`` (may raise to keep the old
    file), rename, fsync of the directory.  Returns the sha256 of ``data``.  Raises OSError."""
    if not isinstance(data, bytes):
        data = data.encode("utf-8")
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".hostfw-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        digest = sha256_hex(data)
        if verify is not None:
            verify(tmp, digest)
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(directory)
    return digest


def verify_file(path, sha256, what):
    """``path`` after checking that it is a regular file whose sha256 is ``sha256`` (what was written).
    Raises StateError naming the file and the fix otherwise."""
    if not sha256:
        raise StateError("no sha256 is recorded for the %s %s (staged by an older hostfw.nftables or the record is "
                         "damaged): stage again (state=stage)" % (what, path))
    try:
        data = open_regular(path)
    except OSError as exc:
        raise StateError(os_error_message(exc, "read the %s" % what, path))
    found = sha256_hex(data)
    if found != sha256:
        raise StateError("the %s %s changed after hostfw.nftables wrote it (sha256 %s, written %s): something else "
                         "writes to its directory; it is not loaded (fix: find out what changed it, then stage again)"
                         % (what, path, found, sha256))
    return path


class StateDir(object):
    """``/run/hostfw`` (or another directory): one instance per module run."""

    def __init__(self, path):
        self.root = path
        self._lock = None
        self._checked = False

    def path(self, name):
        return os.path.join(self.root, name)

    def exists(self):
        return os.path.lexists(self.root)

    def check(self):
        """Refuse (StateError) a state directory that is not safe to use; None when it is."""
        problem = check_ancestors(self.root) or check_private_dir(self.root)
        if problem:
            raise StateError(problem)
        self._checked = True

    def ensure(self):
        """Create the state directory if needed (``mkdir`` 0700, then check: a directory created by
        someone else in between is refused) and check it."""
        if not os.path.isabs(self.root):
            raise StateError("state_dir must be an absolute path, got %r" % self.root)
        problem = check_ancestors(self.root)
        if problem:
            raise StateError(problem)
        parent = os.path.dirname(os.path.abspath(self.root))
        if not os.path.isdir(parent):
            try:
                os.makedirs(parent, 0o755)
            except OSError as exc:
                if exc.errno != errno.EEXIST:
                    raise StateError(os_error_message(exc, "create the parent of the state directory", parent))
            problem = check_ancestors(self.root)
            if problem:
                raise StateError(problem)
        try:
            os.mkdir(self.root, 0o700)
            os.chmod(self.root, 0o700)  # the umask may have removed owner bits; never adds others'
        except OSError as exc:
            if exc.errno != errno.EEXIST:
                raise StateError(os_error_message(exc, "create the state directory", self.root))
        self.check()

    def lock(self, timeout):
        """Take the exclusive lock ``<state_dir>/lock`` (the rollback program takes it too);
        wait at most ``timeout`` seconds for another run."""
        self.ensure()
        path = self.path("lock")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | _O_NOFOLLOW | _O_NONBLOCK | _O_CLOEXEC, 0o600)
        except OSError as exc:
            raise StateError(os_error_message(exc, "open the lock file", path))
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise StateError("the lock file %s is not a regular file (fix: remove it)" % path)
        handle = os.fdopen(fd, "a")
        deadline = time.time() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._lock = handle
                return
            except (IOError, OSError) as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.time() >= deadline:
                    handle.close()
                    raise StateError("another hostfw run holds %s (waited %ss)" % (path, timeout))
                time.sleep(0.2)

    @staticmethod
    def write_atomic(path, text, mode=0o600, verify=None):
        """Write ``path`` through a temporary file in its directory, fsync and a rename (see
        write_file_atomic); creates a missing directory 0755.  Returns the sha256 written."""
        directory = os.path.dirname(path)
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o755)
        return write_file_atomic(path, text, mode, verify)

    def write(self, name, text, mode=0o600):
        """Write a state file; returns its sha256.  Raises StateError with a clear message."""
        if not self._checked:
            self.ensure()
        try:
            return write_file_atomic(self.path(name), text, mode)
        except OSError as exc:
            raise StateError(os_error_message(exc, "write", self.path(name)))

    def write_json(self, name, data):
        return self.write(name, dumps(data))

    def read_bytes(self, name):
        """The bytes of a state file, or None when it is missing; StateError when it is not a regular file."""
        try:
            return open_regular(self.path(name))
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return None
            raise StateError(os_error_message(exc, "read", self.path(name)))

    def read_json(self, name):
        try:
            data = self.read_bytes(name)
        except StateError:
            return None
        if data is None:
            return None
        try:
            record = json.loads(data.decode("utf-8"))
        except ValueError:
            return None
        return record if isinstance(record, dict) else None

    def verify(self, name, sha256, what):
        """The path of the state file ``name`` after checking its sha256 (see verify_file)."""
        return verify_file(self.path(name), sha256, what)

    def remove(self, *names):
        for name in names:
            try:
                os.unlink(self.path(name))
            except OSError:
                pass

    def prune(self, keep=KEEP_ROLLBACKS, active=None):
        """Remove the files (copy, disarm marker, result record) of all but the newest ``keep``
        rollbacks; never those of ``active``.  Rollback ids start with their UTC arming time, so
        they sort by age.  Returns the ids removed."""
        try:
            names = os.listdir(self.root)
        except OSError:
            return []
        by_id = {}
        for name in names:
            match = _ROLLBACK_FILE.match(name)
            if match:
                rid = match.group("a") or match.group("b") or match.group("c")
                by_id.setdefault(rid, []).append(name)
        old = sorted(rid for rid in by_id if rid != active)
        if active in by_id:
            keep -= 1
        drop = old[:max(0, len(old) - max(0, keep))]
        for rid in drop:
            self.remove(*by_id[rid])
        return drop


def read_text(path):
    """A file's text, or None when it cannot be read (missing, a symlink, not a regular file)."""
    try:
        return open_regular(path).decode("utf-8", "replace")
    except (IOError, OSError, StateError):
        return None
