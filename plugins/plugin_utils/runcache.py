# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compile once per playbook run: the per-host results of one compile, kept for the later batches.

A rollout play with ``serial`` runs its compile task once per batch.  Gathering every inventory
host's variables each time makes the compile work grow with N²/serial.  With this cache the first
batch of a run compiles every host of the play and stores each host's result as its own small
file; a later batch loads only its own hosts' files, after checking that no input can have
changed.  Nothing here imports Ansible: the adapter (``plugins/action/compile.py``) hands in what
it read from Ansible as plain values.

Scope and keys (docs/large-fleets.md says the same for users):

* **One run.**  The directory is inside the run's own private temporary directory, the one
  ``ansible-playbook`` creates with ``mkdtemp`` (mode 0700) at start-up and deletes at exit
  (``DEFAULT_LOCAL_TMP``).  Its name is random and the workers of that run inherit it, so a
  different run cannot even find the files; :func:`private_directory` also refuses a directory
  that is not ours or that others may read.
* **One play, one task.**  The entry key (:func:`digest` of :func:`entry_key_parts`) holds the
  play's identity, the task's options, the code digest (collection version and the core's
  sources), the base directory, check and diff mode, and the play's host list.
* **Unchanged inputs.**  Before an entry is served, its *inputs signature* must equal the one the
  entry was stored with: the expanded manifest files with their size, modification and change
  times and inode (:func:`manifest_signature`), the inventory's identity (every host's object id
  and the count of ``add_host`` changes: ``meta: refresh_inventory`` and ``add_host`` change it)
  and every value of a hostfw input variable set during the run (set_fact, include_vars, facts:
  :func:`runtime_digest`).  Variables that are Jinja2 templates are only reused when they name
  nothing but variables that cannot change during a run (:func:`template_reuse_problem`);
  anything else (another variable, a lookup) turns the reuse off, so every batch compiles again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from ansible_collections.hostfw.nftables.plugins.plugin_utils import files, sources

FORMAT = 1
SUBDIR = "hostfw-compile"

# Variables whose value cannot change while one playbook run goes on: a template that names only
# these gives the same value in every batch.
RUN_CONSTANT_NAMES = frozenset((
    "playbook_dir", "inventory_dir", "inventory_file", "inventory_hostname", "inventory_hostname_short",
    "group_names", "groups", "omit", "ansible_config_file", "ansible_playbook_python", "ansible_version",
    "ansible_inventory_sources", "ansible_check_mode", "ansible_diff_mode", "true", "false", "none",
    "True", "False", "None"))

_TEMPLATE_MARKERS = ("{{", "{%", "{#")


def digest(parts: Any) -> str:
    """sha256 of a JSON-serialisable value (keys sorted)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str, separators=(",", ":")).encode("utf-8")).hexdigest()


def collection_version(collection_dir: Optional[str] = None) -> str:
    """The collection's version: MANIFEST.json of an installed collection, else galaxy.yml."""
    base = collection_dir or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    manifest = os.path.join(base, "MANIFEST.json")
    try:
        with open(manifest, encoding="utf-8") as handle:
            return str(json.load(handle)["collection_info"]["version"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    try:
        with open(os.path.join(base, "galaxy.yml"), encoding="utf-8") as handle:
            for line in handle:
                found = re.match(r"version:\s*['\"]?([^'\"\s#]+)", line)
                if found:
                    return found.group(1)
    except OSError:
        pass
    return "unknown"


# ----------------------------------------------------------------------------------------------
# Templates that are safe to reuse
# ----------------------------------------------------------------------------------------------

def template_names(text: str) -> Optional[set]:
    """The variable (and global function) names a Jinja2 template refers to, or None when it does
    not parse."""
    try:
        import jinja2  # pylint: disable=import-outside-toplevel
        from jinja2 import meta  # pylint: disable=import-outside-toplevel
        env = jinja2.Environment()  # nosec: parsed only, never rendered
        return set(meta.find_undeclared_variables(env.parse(text)))
    except Exception:  # pylint: disable=broad-except
        return None


def template_reuse_problem(value: Any) -> Optional[str]:
    """Why the results computed from ``value`` (a raw, un-templated variable) could differ in a
    later batch of the same run, or None when they cannot: every template string in it names only
    :data:`RUN_CONSTANT_NAMES`."""
    todo = [value]
    seen = set()
    while todo:
        item = todo.pop()
        if isinstance(item, str):
            if "{" not in item or not any(m in item for m in _TEMPLATE_MARKERS):
                continue
            names = template_names(item)
            if names is None:
                return "a template that does not parse"
            other = sorted(names - RUN_CONSTANT_NAMES)
            if other:
                return "a template naming %s" % ", ".join(other)
            continue
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, Mapping):
            todo.extend(item.keys())
            todo.extend(item.values())
        elif isinstance(item, (list, tuple)):
            todo.extend(item)
    return None


# ----------------------------------------------------------------------------------------------
# Signatures of the inputs
# ----------------------------------------------------------------------------------------------

def manifest_patterns(hosts: Mapping[str, Mapping[str, Any]]) -> List[str]:
    """Every ``hostfw_manifests`` entry of the gathered variables (as the fingerprint reads them)."""
    patterns = set()
    for hv in hosts.values():
        value = hv.get("hostfw_manifests")
        if isinstance(value, str):
            patterns.add(value)
        elif isinstance(value, list):
            patterns.update(p for p in value if isinstance(p, str))
    return sorted(patterns)


def manifest_signature(patterns: Sequence[str], base_dir: str) -> List[List[Any]]:
    """For every pattern the files it names now, each with its size, modification and change
    times (nanoseconds) and inode: any write, replacement, new or removed file changes it."""
    out: List[List[Any]] = []
    for pattern in patterns:
        found = []
        for path in sources.expand(pattern, base_dir):
            try:
                st = os.stat(path)
                found.append([path, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino])
            except OSError:
                found.append([path, None])
        out.append([pattern, found])
    return out


def runtime_digest(stores: Iterable[Tuple[str, Mapping[str, Mapping[str, Any]]]], names: Iterable[str]) -> str:
    """Digest of every variable of ``names`` that a run-time store holds for any host: Ansible's
    set_fact (non-persistent facts), include_vars and fact caches, as ``(store name, {host:
    {var: value}})``.  Only the variables named are serialised, so a store full of registered
    results costs a dictionary lookup per host and name."""
    wanted = tuple(names)
    found = []
    for store_name, store in stores:
        for host in sorted(store, key=str):
            values = store.get(host)
            if not isinstance(values, Mapping):
                continue
            for var in wanted:
                if var in values:
                    found.append([store_name, str(host), var, values[var]])
    return digest(found)


# ----------------------------------------------------------------------------------------------
# The directory
# ----------------------------------------------------------------------------------------------

def private_directory(run_tmp: Optional[str]) -> Optional[str]:
    """``<run_tmp>/hostfw-compile``, created with mode 0700, or None when ``run_tmp`` is not a
    private directory of ours (owned by us, no access for group or others) or cannot be used."""
    if not run_tmp:
        return None
    try:
        for path in (run_tmp, os.path.join(run_tmp, SUBDIR)):
            if not os.path.isdir(path):
                os.mkdir(path, 0o700)
            st = os.lstat(path)
            if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or stat.S_IMODE(st.st_mode) & 0o077:
                return None
    except OSError:
        return None
    return os.path.join(run_tmp, SUBDIR)


def entry_key_parts(play: str, options: Mapping[str, Any], code: str, base_dir: str, check_mode: bool, diff: bool,
                    play_hosts: Sequence[str]) -> Dict[str, Any]:
    """What selects an entry (not what validates it: :func:`inputs_signature`)."""
    return {"format": FORMAT, "play": play, "options": dict(options), "code": code, "base_dir": base_dir,
            "check_mode": bool(check_mode), "diff": bool(diff), "play_hosts": list(play_hosts)}


def inputs_signature(manifests: List[List[Any]], inventory: str, runtime: str) -> str:
    return digest({"manifests": manifests, "inventory": inventory, "runtime": runtime})


class RunCache:
    """Entries of one run: ``<directory>/<key>/meta.json`` and one JSON file per host."""

    def __init__(self, directory: str):
        self.directory = directory

    def _entry(self, key: str) -> str:
        return os.path.join(self.directory, key)

    def meta(self, key: str) -> Optional[Dict[str, Any]]:
        try:
            with open(os.path.join(self._entry(key), "meta.json"), encoding="utf-8") as handle:
                data = json.load(handle)
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) and data.get("format") == FORMAT else None

    def load(self, key: str, hosts: Sequence[str]) -> Optional[Dict[str, Dict[str, Any]]]:
        """The stored results of ``hosts`` (a host the entry has no file for is simply absent), or
        None when a file cannot be read."""
        meta = self.meta(key)
        if meta is None:
            return None
        names = meta.get("files") or {}
        out = {}
        for host in hosts:
            name = names.get(host)
            if name is None:
                continue
            try:
                with open(os.path.join(self._entry(key), "hosts", name), encoding="utf-8") as handle:
                    out[host] = json.load(handle)
            except (OSError, ValueError):
                return None
        return out

    def store(self, key: str, meta: Dict[str, Any], entries: Mapping[str, Mapping[str, Any]]) -> bool:
        """Write the entry into a temporary directory, then put it in place with renames (a reader
        sees the old entry or the new one).  False when it could not be written."""
        tmp = None
        try:
            tmp = tempfile.mkdtemp(dir=self.directory, prefix=".%s." % key[:16])
            os.mkdir(os.path.join(tmp, "hosts"), 0o700)
            names = {}
            for host, entry in entries.items():
                name = files.host_file_name(host, ".json")
                names[host] = name
                with open(os.path.join(tmp, "hosts", name), "w", encoding="utf-8") as handle:
                    json.dump(entry, handle, separators=(",", ":"))
            data = dict(meta, format=FORMAT, files=names)
            with open(os.path.join(tmp, "meta.json"), "w", encoding="utf-8") as handle:
                json.dump(data, handle, separators=(",", ":"))
            final = self._entry(key)
            if os.path.exists(final):
                old = final + ".old.%d" % os.getpid()
                os.rename(final, old)
                shutil.rmtree(old, ignore_errors=True)
            os.rename(tmp, final)
            tmp = None
            return True
        except OSError:
            return False
        finally:
            if tmp:
                shutil.rmtree(tmp, ignore_errors=True)


__all__ = ["RunCache", "collection_version", "digest", "entry_key_parts", "inputs_signature", "manifest_patterns",
           "manifest_signature", "private_directory", "runtime_digest", "template_reuse_problem"]
