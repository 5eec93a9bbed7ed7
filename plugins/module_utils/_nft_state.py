# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The state directory of ``hostfw.nftables.nft_table`` on the host (private; standard library
only): the lock that serialises runs, atomic writes and JSON records."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import fcntl
import json
import os
import tempfile
import time


class StateError(Exception):
    """A state-directory problem, with a message for the user."""


def dumps(data):
    """Stable JSON for the state files."""
    return json.dumps(data, sort_keys=True, indent=1) + "\n"


class StateDir(object):
    """``/run/hostfw`` (or another directory): one instance per module run."""

    def __init__(self, path):
        self.root = path
        self._lock = None

    def path(self, name):
        return os.path.join(self.root, name)

    def exists(self):
        return os.path.isdir(self.root)

    def ensure(self):
        if not os.path.isdir(self.root):
            os.makedirs(self.root, 0o700)

    def lock(self, timeout):
        """Take the exclusive lock ``<state_dir>/lock`` (the rollback program takes it too);
        wait at most ``timeout`` seconds for another run."""
        self.ensure()
        handle = open(self.path("lock"), "a")
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
                    raise StateError("another hostfw run holds %s (waited %ss)" % (self.path("lock"), timeout))
                time.sleep(0.2)

    @staticmethod
    def write_atomic(path, text, mode=0o600):
        """Write ``path`` through a temporary file in its directory and a rename."""
        directory = os.path.dirname(path)
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o755)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".hostfw-")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
            os.chmod(tmp, mode)
            os.rename(tmp, path)
        except Exception:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def write(self, name, text, mode=0o600):
        self.write_atomic(self.path(name), text, mode)

    def write_json(self, name, data):
        self.write(name, dumps(data))

    def read_json(self, name):
        try:
            with open(self.path(name)) as handle:
                return json.load(handle)
        except (IOError, OSError, ValueError):
            return None

    def remove(self, *names):
        for name in names:
            try:
                os.unlink(self.path(name))
            except OSError:
                pass


def read_text(path):
    """A file's text, or None when it cannot be read."""
    try:
        with open(path) as handle:
            return handle.read()
    except (IOError, OSError):
        return None
