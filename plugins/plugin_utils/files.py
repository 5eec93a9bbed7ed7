# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Files the controller writes (rendered tables, matrices, reports): atomic and only when changed.

This module imports nothing from Ansible.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from typing import Dict, List, Optional

# An inventory host name used as it is in a file name: no path separator, no leading dot, no
# control or shell-special character, short enough for every file system.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@+-]{0,127}\Z")


def host_file_name(host: str, suffix: str = ".nft") -> str:
    """The file name under which the controller keeps ``host``'s files: ``<host><suffix>`` for a
    plain name (letters, digits, ``_.@+-``, at most 128 characters, not starting with a dot);
    otherwise the name with every other character replaced by ``_``, cut to 64 characters and
    made unique with 12 hex digits of its sha256 (``../x`` -> ``_x-<hash>.nft``).  Host names
    can be anything Ansible accepts; a file name must never leave the output directory."""
    if _PLAIN_NAME.match(host):
        return host + suffix
    safe = re.sub(r"[^A-Za-z0-9_.@+-]", "_", host)[:64].lstrip(".") or "_"
    return "%s-%s%s" % (safe, hashlib.sha256(host.encode("utf-8", "surrogatepass")).hexdigest()[:12], suffix)


def atomic_write(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same directory and a rename, so
    that a reader sees the old file or the new one, never a part."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".%s." % os.path.basename(path), suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_if_changed(path: str, text: str, check_mode: bool, diffs: Optional[List[Dict[str, str]]]) -> bool:
    """Write ``path`` unless it already holds ``text``; with ``check_mode`` only say whether it
    would change.  Appends an Ansible diff entry to ``diffs`` (when given) for a change."""
    before = None
    if os.path.exists(path):
        with open(path, "r", encoding="utf-8") as handle:
            before = handle.read()
    if before == text:
        return False
    if diffs is not None:
        diffs.append({"before_header": path if before is not None else "(absent)", "after_header": path,
                      "before": before or "", "after": text})
    if not check_mode:
        atomic_write(path, text)
    return True
