# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the action plugins share: gathering the inventory's hostfw variables, and a compile cache.

Ansible runs each task of each host in a forked worker, so an in-memory cache does not survive
from one host's task to the next.  The validated world is therefore cached on disk, in a private
per-user directory, keyed by a fingerprint of every input and of the code that validated it: the
gathered variables, the content of every manifest file, the collection's version and a hash of
the core's source files.  The first task of a run validates; every later task of the run (other
hosts, other batches) loads the cached world and compiles only its own host.  Old entries are
pruned.  Nothing here imports Ansible: ``task_vars`` is read as plain mappings.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import stat
import tempfile
import time
from typing import Any, Dict, List, Mapping, Optional, Tuple

from ansible_collections.hostfw.nftables.plugins.plugin_utils import errors, runcache, sources
from ansible_collections.hostfw.nftables.plugins.plugin_utils.compiler import Compilation

HOST_VARS = sources.HOST_VARS
CACHE_KEEP = 16  # cache entries kept per directory (the newest)

_CORE_DIR = os.path.dirname(os.path.abspath(__file__))
_CODE_DIGEST: Optional[str] = None


def code_digest() -> str:
    """sha256 of the collection's version and of every source file of the core: a world that one
    version of the code validated is never served to another."""
    global _CODE_DIGEST  # pylint: disable=global-statement
    if _CODE_DIGEST is None:
        h = hashlib.sha256()
        collection = os.path.dirname(os.path.dirname(_CORE_DIR))
        for meta in ("MANIFEST.json", "galaxy.yml"):
            path = os.path.join(collection, meta)
            if os.path.isfile(path):
                with open(path, "rb") as handle:
                    h.update(meta.encode() + b"\0" + handle.read())
                break
        for name in sorted(os.listdir(_CORE_DIR)):
            if name.endswith(".py"):
                with open(os.path.join(_CORE_DIR, name), "rb") as handle:
                    h.update(name.encode() + b"\0" + handle.read())
        _CODE_DIGEST = h.hexdigest()
    return _CODE_DIGEST


class TooLarge(Exception):
    """A variable nests deeper than sources.MAX_DEPTH, or its shared containers (YAML aliases in
    group_vars) expand it by more than sources.MAX_ALIAS_NODES values: reported by gather as a
    problem of the host, with the reason as the message."""


def plain(value: Any, memo: Optional[Dict[int, Any]] = None, depth: int = 0) -> Any:
    """Ansible's lazy or tagged containers and strings -> plain Python data.  A container shared
    by several places (YAML aliases in group_vars) is converted once and stays shared; as every
    consumer (fingerprint, parser) walks the expanded value, the values sharing adds are bounded
    as in manifests (:func:`sources._structure_problem`).  Raises TooLarge."""
    memo = {} if memo is None else memo
    budget = [0, 0]  # values written, values added by sharing (within this value)
    seen = set()
    too_deep = "nests deeper than %d levels (Calico documents never do: check the variable)" % sources.MAX_DEPTH

    def walk(item: Any, level: int) -> Tuple[Any, int, int]:
        if isinstance(item, str):
            budget[0] += 1
            return str(item), 1, 0
        is_map = isinstance(item, Mapping)
        if not is_map and not isinstance(item, (list, tuple)):
            budget[0] += 1
            return item, 1, 0
        if level > sources.MAX_DEPTH:
            raise TooLarge(too_deep)
        hit = memo.get(id(item))
        if hit is not None:
            _item, out, size, height = hit
            if level + height > sources.MAX_DEPTH:
                raise TooLarge(too_deep)
            if id(item) in seen:
                budget[1] += size
                if budget[1] > max(sources.MAX_ALIAS_NODES, budget[0]):
                    raise TooLarge("shares containers (YAML aliases) that expand it to more than %d values "
                                   "(write the values out)" % max(sources.MAX_ALIAS_NODES, budget[0]))
            else:
                seen.add(id(item))
                budget[0] += size
            return out, size, height
        size, height = 1, 0
        budget[0] += 1
        pairs = item.items() if is_map else enumerate(item)
        out: Any = {} if is_map else []
        for key, child in pairs:
            converted, n, h = walk(child, level + 1)
            if is_map:
                out[str(key)] = converted
                n += 1
            else:
                out.append(converted)
            size += n
            height = max(height, h + 1)
        memo[id(item)] = (item, out, size, height)  # keeps item alive, so that its id stays unique
        seen.add(id(item))
        return out, size, height

    return walk(value, depth)[0]


TEMPLATE_MARKERS = ("{{", "{%", "{#")


def has_template(value: Any) -> bool:
    """Whether any string (key or value) inside ``value`` looks like a Jinja2 template.  Each
    container is visited once, however often it is shared."""
    todo = [value]
    seen = set()
    while todo:
        item = todo.pop()
        if isinstance(item, str):
            if "{" in item and any(m in item for m in TEMPLATE_MARKERS):
                return True
            continue
        if not isinstance(item, (Mapping, list, tuple)) or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, Mapping):
            todo.extend(item.keys())
            todo.extend(item.values())
        else:
            todo.extend(item)
    return False


def gather(task_vars: Mapping[str, Any], report: Optional[Dict[str, Any]] = None) -> Tuple[Dict[str, Dict[str, Any]], str]:
    """(hostfw variables of EVERY inventory host, base directory for relative manifest paths).

    Ansible's ``hostvars[host][var]`` templates (and copies) the value on every access: for a
    policy list defined once in ``group_vars`` that is a deep copy per host, about a second per
    host for a thousand documents.  When ``hostvars`` offers ``raw_get`` (Ansible's HostVars),
    the un-templated value is read instead, and templated through ``hostvars`` only when it
    contains a template.  A value shared by many hosts (one object from ``group_vars``) is
    converted once and stays one object, so the inventory merge sees it once.

    ``report``, when given, receives ``read`` (how many hosts' variables were read) and
    ``templates`` (``"<host> <var>: <why>"`` for each templated value whose result could change
    later in the same run: :func:`runcache.template_reuse_problem`)."""
    hostvars = task_vars.get("hostvars", {})
    names = list(task_vars.get("groups", {}).get("all", []))
    raw_get = getattr(hostvars, "raw_get", None)
    memo: Dict[int, Tuple[Any, Any]] = {}  # id(raw value) -> (raw value kept alive, plain value or None)
    shared: Dict[int, Any] = {}  # plain()'s memo: containers shared between values stay shared
    hosts: Dict[str, Dict[str, Any]] = {}
    problems: List[errors.Problem] = []

    def convert(name: str, var: str, value: Any) -> Any:
        try:
            return plain(value, shared)
        except TooLarge as exc:
            problem = errors.Problem("Host", name, var, str(exc))
            if problem not in problems:
                problems.append(problem)
            return None

    for name in names:
        raw = raw_get(name) if raw_get is not None else None
        if report is not None:
            report["read"] = report.get("read", 0) + 1
        values = {}
        if not isinstance(raw, Mapping):
            if report is not None:
                report.setdefault("templates", []).append("%s: variables read through templating only" % name)
            hv = hostvars[name]
            for var in HOST_VARS:
                if var in hv:
                    values[var] = convert(name, var, hv[var])
            hosts[name] = values
            continue
        templated = None
        for var in HOST_VARS:
            if var not in raw:
                continue
            value = raw[var]
            hit = memo.get(id(value))
            if hit is None:
                hit = (value, None if has_template(value) else convert(name, var, value))
                memo[id(value)] = hit
            if hit[1] is None:
                if report is not None:
                    why = runcache.template_reuse_problem(value)
                    if why:
                        report.setdefault("templates", []).append("%s %s: %s" % (name, var, why))
                if templated is None:
                    templated = hostvars[name]
                values[var] = convert(name, var, templated[var])
            else:
                values[var] = hit[1]
        hosts[name] = values
    if problems:
        raise errors.HostfwError(problems)
    base_dir = task_vars.get("inventory_dir") or task_vars.get("playbook_dir") or os.getcwd()
    return hosts, str(base_dir)


def fingerprint(hosts: Mapping[str, Mapping[str, Any]], base_dir: str) -> str:
    """A digest of every input: the code (:func:`code_digest`), the gathered variables (a value
    shared by many hosts is serialised once) and the path and content of every manifest file."""
    h = hashlib.sha256()
    h.update(code_digest().encode())
    h.update(base_dir.encode("utf-8"))
    digests: Dict[int, str] = {}
    for host in sorted(hosts):
        h.update(json.dumps(host).encode("utf-8"))
        hv = hosts[host]
        for var in sorted(hv):
            value = hv[var]
            digest = digests.get(id(value))
            if digest is None:
                digest = hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode("utf-8")).hexdigest()
                if isinstance(value, (dict, list)):
                    digests[id(value)] = digest
            h.update(("\0%s=%s" % (var, digest)).encode("utf-8"))
    for pattern in runcache.manifest_patterns(hosts):
        for path in sources.expand(pattern, base_dir):  # same resolution as the loader
            try:
                with open(path, "rb") as handle:
                    content = hashlib.sha256(handle.read()).hexdigest()
            except OSError:
                content = "unreadable"
            h.update(("%s:%s\n" % (path, content)).encode("utf-8"))
    return h.hexdigest()


def cache_dir() -> Optional[str]:
    """A private cache directory (mode 0700, owned by us), or None when none can be had."""
    path = os.environ.get("HOSTFW_CACHE_DIR") or os.path.join(tempfile.gettempdir(), "hostfw-cache-%d" % os.getuid())
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        st = os.stat(path)
        if st.st_uid != os.getuid() or stat.S_IMODE(st.st_mode) & 0o077:
            return None
    except OSError:
        return None
    return path


def compile_cached(hosts: Mapping[str, Mapping[str, Any]], base_dir: str, use_cache: bool = True) -> Compilation:
    """compile_inventory with the on-disk cache of the validated world.  Raises HostfwError."""
    t0 = time.perf_counter()
    directory = cache_dir() if use_cache else None
    path = None
    digest = fingerprint(hosts, base_dir)
    if directory:
        path = os.path.join(directory, digest + ".pickle")
        try:
            with open(path, "rb") as f:
                world, inventory = pickle.load(f)
            comp = Compilation(world, inventory, {"load_cached": time.perf_counter() - t0})
            comp.fingerprint = digest
            return comp
        except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError, ValueError):
            pass
    world, inventory = sources.load_world(hosts, base_dir)
    timings = dict(getattr(inventory, "timings", {}) or {})
    timings["load_and_validate"] = time.perf_counter() - t0
    if path:
        tmp = "%s.%d.tmp" % (path, os.getpid())
        try:
            with open(tmp, "wb") as f:
                pickle.dump((world, inventory), f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, path)
        except OSError:
            pass
        prune(directory)
    comp = Compilation(world, inventory, timings)
    comp.fingerprint = digest  # the input digest a render writes into its candidate files
    return comp


def prune(directory: str, keep: int = CACHE_KEEP) -> None:
    """Delete all but the ``keep`` newest cache entries (and stale temporary files)."""
    try:
        names = [n for n in os.listdir(directory) if n.endswith((".pickle", ".tmp"))]
        entries = sorted(((os.stat(os.path.join(directory, n)).st_mtime, n) for n in names), reverse=True)
    except OSError:
        return
    now = time.time()
    kept = 0
    for mtime, name in entries:
        if name.endswith(".pickle") and kept < keep:
            kept += 1
            continue
        if name.endswith(".tmp") and now - mtime < 3600:
            continue  # another process may be writing it
        try:
            os.unlink(os.path.join(directory, name))
        except OSError:
            pass
