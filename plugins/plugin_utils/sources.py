# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where the Calico documents come from: manifest files and inventory variables.

* :func:`load_manifest_text` / :func:`load_manifests`: multi-document YAML (or JSON) files, with
  ``kind: List`` / ``*List`` documents flattened as ``calicoctl get -o yaml`` prints them.
* :func:`collect_inventory`: merges the hostfw variables of *every* inventory host (not only the
  play's hosts) into one :class:`Inventory`: ``hostfw_resources``, ``hostfw_manifests``,
  ``hostfw_host_endpoints``, automatic host endpoints, node names, interfaces and matrix probes.
* :func:`load_world`: both of the above plus :func:`resources.build_world`, reporting every
  problem at once in one :class:`~errors.HostfwError`.

``collect_inventory`` is linear in the size of its input and does the expensive work once per
distinct object: with group_vars/all, every host carries the *same* ``hostfw_resources`` list,
which is recognised by identity and read once.  This module imports nothing from Ansible.
"""

from __future__ import annotations

import glob
import ipaddress
import json
import os
import re
import stat
import time
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

import yaml

from ansible_collections.hostfw.nftables.plugins.plugin_utils import api, checks, errors, resources
from ansible_collections.hostfw.nftables.plugins.plugin_utils.checks import is_map as _is_map

__all__ = ["Inventory", "DEFAULT_PROBES", "load_manifest_text", "load_manifests", "expand", "collect_inventory",
           "load_world"]

Document = Tuple[Any, str]

DEFAULT_PROBES = ({"protocol": "TCP", "port": 22}, {"protocol": "TCP", "port": 10250})
PROBE_PROTOCOLS = ("TCP", "UDP", "SCTP", "ICMP", "ICMPv6")
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
FAILSAFE_DEFAULT_CHOICES = ("protect-hosts", "felix")
# The inventory variables the compiler reads (the controller passes only these; the diff reads
# them from an old inventory).
HOST_VARS = ("hostfw_resources", "hostfw_manifests", "hostfw_host_endpoints", "hostfw_node_name",
             "hostfw_auto_host_endpoint", "hostfw_host_ips", "hostfw_labels", "hostfw_interfaces",
             "hostfw_matrix_probes", "hostfw_failsafe_defaults", "hostfw_node_labels", "hostfw_protected_ports",
             "hostfw_verify_management_access", "hostfw_staged_counters", "ansible_host")

_YAML_BASE = getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader


class _Loader(_YAML_BASE):  # type: ignore[misc,valid-type]
    """Safe loader (libyaml when available) that also records duplicate mapping keys, which
    PyYAML would silently collapse and Kubernetes tooling rejects."""

    def __init__(self, stream):
        super().__init__(stream)
        self.hostfw_duplicates: List[Tuple[str, Any]] = []

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key_node, _value in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                    key = (key_node.tag, key_node.value)
                    if key in seen:
                        self.hostfw_duplicates.append((key_node.value, key_node.start_mark))
                    seen.add(key)
        return super().construct_mapping(node, deep=deep)


@dataclass
class Inventory:
    """Everything hostfw reads from the inventory, merged across all hosts."""

    documents: List[Document] = field(default_factory=list)
    # inventory_hostname -> node name (hostfw_node_name, default inventory_hostname)
    nodes: Dict[str, str] = field(default_factory=dict)
    # node name -> inventory hostnames (usually one)
    hosts_of_node: Dict[str, List[str]] = field(default_factory=dict)
    # inventory_hostname -> {interface name: [bare addresses]} (only hosts with hostfw_interfaces)
    interfaces: Dict[str, Dict[str, List[str]]] = field(default_factory=dict)
    # node name -> the labels of its Calico Node (hostfw_node_labels, default hostfw_labels): what a
    # FelixConfiguration spec.nodeSelector matches
    node_labels: Dict[str, Dict[str, str]] = field(default_factory=dict)
    # node name -> hostfw_failsafe_defaults ("protect-hosts" when unset)
    failsafe_defaults: Dict[str, str] = field(default_factory=dict)
    # matrix probes: [{"protocol": "TCP", "port": 22}, {"protocol": "ICMP"}, ...]
    probes: List[Dict[str, Any]] = field(default_factory=lambda: [dict(p) for p in DEFAULT_PROBES])
    problems: List[errors.Problem] = field(default_factory=list)
    # seconds: load_inputs (variables merged, manifests parsed) and validate
    timings: Dict[str, float] = field(default_factory=dict)
    # the directory relative manifest paths (and document origins) are relative to
    base_dir: str = ""


# ----------------------------------------------------------------------------------------------
# Manifests
# ----------------------------------------------------------------------------------------------

def _sink(collector: Optional[errors.Collector]) -> errors.Collector:
    return collector if collector is not None else errors.Collector()


def _split_top(data: Any, origin: str) -> List[Document]:
    """A document, or a top-level list of documents, with List kinds flattened."""
    out: List[Document] = []
    if isinstance(data, list):
        for i, item in enumerate(data):
            if item is not None:
                out.extend(resources.flatten_lists(item, "%s[%d]" % (origin, i)))
    else:
        out.extend(resources.flatten_lists(data, origin))
    return out


# Limits of one manifest file.  Calico documents are shallow (a rule is about 6 levels deep); YAML
# aliases are accepted (merge keys are common in hand-written manifests) but a few hundred bytes of
# aliases of aliases can stand for gigabytes, so what they add is bounded.
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
MAX_DOCUMENTS = 100000
MAX_DEPTH = 64
MAX_ALIAS_NODES = 100000

# Cheap signs that a text may hold an anchor (``&name``; "&&" of selectors is not one), a deep block
# structure (a huge indentation) or a deep flow structure (a run of openers): only then is the text
# walked event by event, which costs about half a parse.
_MAYBE_ANCHOR = re.compile(r"(?:^|[\s\[{,])&[^\s&]", re.M)
_MAYBE_DEEP = re.compile(r"\n {%d,}\S|(?:[\[{][^\[\]{}\n]{0,64}){%d}" % (2 * MAX_DEPTH, MAX_DEPTH))


def _structure_problem(text: str, yaml_text: bool) -> Optional[Tuple[str, str]]:
    """(where, what is wrong and the fix) when ``text`` nests deeper than :data:`MAX_DEPTH` or its
    YAML aliases expand it by more than :data:`MAX_ALIAS_NODES` values (and more than its own
    size); None otherwise.  Walks the events, never builds the documents: an alias counts the
    values and the depth of the node it names."""
    anchors = yaml_text and _MAYBE_ANCHOR.search(text) is not None
    if not anchors and _MAYBE_DEEP.search(text) is None:
        return None
    sizes: Dict[str, Tuple[int, int]] = {}  # anchor: (values, height) of the node it names
    stack: List[List[Any]] = []  # open collections: [values, height, anchor]
    written = expanded = 0

    def close(values: int, height: int, anchor: Optional[str]) -> None:
        if anchor:
            sizes[anchor] = (values, height)
        if stack:
            stack[-1][0] += values
            stack[-1][1] = max(stack[-1][1], height + 1)

    try:
        for event in yaml.parse(text, Loader=_YAML_BASE):
            mark = event.start_mark
            where = "line %d, column %d" % (mark.line + 1, mark.column + 1)
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                written += 1
                stack.append([1, 0, event.anchor])
                if len(stack) > MAX_DEPTH:
                    return where, ("the document nests deeper than %d levels (Calico documents never do: check the file)"
                                   % MAX_DEPTH)
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                close(*stack.pop())
            elif isinstance(event, yaml.ScalarEvent):
                written += 1
                close(1, 0, event.anchor)
            elif isinstance(event, yaml.AliasEvent):
                values, height = sizes.get(event.anchor, (1, 0))
                expanded += values
                if len(stack) + height > MAX_DEPTH:
                    return where, ("this alias makes the document nest deeper than %d levels (write the value out "
                                   "or flatten it)" % MAX_DEPTH)
                if expanded > max(MAX_ALIAS_NODES, written):
                    return where, ("YAML aliases expand this file to more than %d values (write the values out: "
                                   "aliases of aliases multiply, and Calico manifests never need them)"
                                   % max(MAX_ALIAS_NODES, written))
                close(values, height, None)
    except yaml.YAMLError:
        return None  # the parse below reports the syntax error
    return None


def load_manifest_text(text: str, origin: str, collector: Optional[errors.Collector] = None) -> List[Document]:
    """Parse the text of one manifest file into ``(document, origin)`` pairs.

    Documents get origins ``<origin>#<n>`` (n counts the YAML documents from 1, empty ones
    included, so it matches the position in the file); List items ``<origin>#<n> items[<i>]``.
    Empty documents are skipped.  A JSON text is accepted.  Syntax errors, duplicate keys, YAML
    aliases that expand the file by more than :data:`MAX_ALIAS_NODES` values, nesting deeper
    than :data:`MAX_DEPTH`, more than :data:`MAX_DOCUMENTS` documents and values Python cannot
    hold become problems with line and column: added to ``collector`` when given, else raised as
    a :class:`~errors.HostfwError`.  Documents before a syntax error are still returned."""
    sink = _sink(collector)
    out: List[Document] = []
    if len(text) > MAX_MANIFEST_BYTES:
        sink.add("Manifest", origin, "", "is %d bytes long (at most %d: split it into several files)"
                 % (len(text), MAX_MANIFEST_BYTES), origin)
        if collector is None:
            sink.raise_if_any()
        return out
    stripped = text.lstrip("\ufeff \t\r\n")
    is_json = stripped[:1] in ("{", "[")
    problem = _structure_problem(text, not is_json)
    if problem is not None:
        sink.add("Manifest", origin, problem[0], problem[1], origin)
        if collector is None:
            sink.raise_if_any()
        return out
    if is_json:
        duplicates: List[str] = []

        def pairs(items):
            keys = set()
            for key, _value in items:
                if key in keys:
                    duplicates.append(key)
                keys.add(key)
            return dict(items)

        try:
            data = json.loads(stripped, object_pairs_hook=pairs)
        except (ValueError, RecursionError):
            data = _BAD_JSON
        if data is not _BAD_JSON:
            for key in duplicates:
                sink.add("Manifest", origin, "", "duplicate key %r (keep one: only the last one would count)" % key,
                         origin)
            out.extend(_split_top(data, origin + "#1"))
            if collector is None:
                sink.raise_if_any()
            return out
    loader = _Loader(text)
    index = 0
    try:
        while loader.check_data():
            index += 1
            if index > MAX_DOCUMENTS:
                sink.add("Manifest", origin, "", "has more than %d documents (split it into several files)"
                         % MAX_DOCUMENTS, origin)
                break
            data = loader.get_data()
            if data is None:
                continue
            out.extend(_split_top(data, "%s#%d" % (origin, index)))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = "line %d, column %d" % (mark.line + 1, mark.column + 1) if mark is not None else ""
        what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        context = getattr(exc, "context", None)
        if context:
            what = "%s %s" % (what, context)
        sink.add("Manifest", origin, where, "%s (fix the YAML syntax there)" % what, origin)
    except (ValueError, OverflowError, RecursionError, MemoryError) as exc:
        sink.add("Manifest", origin, "document %d" % index, "cannot be read: %s (check the values of this document)"
                 % (str(exc).splitlines()[0] if str(exc) else type(exc).__name__), origin)
    finally:
        loader.dispose()
    for key, mark in loader.hostfw_duplicates:
        sink.add("Manifest", origin, "line %d, column %d" % (mark.line + 1, mark.column + 1),
                 "duplicate key %r (merge the two entries: YAML keeps only the last one)" % key, origin)
    if collector is None:
        sink.raise_if_any()
    return out


_BAD_JSON = object()


def _display_path(path: str, base_dir: str) -> str:
    try:
        rel = os.path.relpath(path, base_dir)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


def expand(pattern: str, base_dir: str) -> List[str]:
    """The manifest files one ``hostfw_manifests`` entry names: a path, a glob (``**`` allowed) or
    a directory (its ``*.yaml``/``*.yml``/``*.json`` files), relative to ``base_dir``; sorted."""
    path = os.path.expanduser(pattern)
    if not os.path.isabs(path):
        path = os.path.join(base_dir, path)
    if glob.has_magic(path):
        found = sorted(glob.glob(path, recursive=True))
    elif os.path.exists(path):
        found = [path]
    else:
        found = []
    files = []
    for p in found:
        if os.path.isdir(p):
            files.extend(sorted(os.path.join(p, n) for n in os.listdir(p)
                                if n.endswith(MANIFEST_SUFFIXES) and os.path.isfile(os.path.join(p, n))))
        else:
            files.append(p)  # load_manifests refuses what is not a regular file
    return files


def load_manifests(patterns: Iterable[str], base_dir: str,
                   collector: Optional[errors.Collector] = None) -> List[Document]:
    """Load every file named by ``patterns`` (paths, globs with ``**``, or directories, whose
    ``*.yaml``/``*.yml``/``*.json`` files are read), relative to ``base_dir``.  Glob results are
    sorted and every file is read once (by real path).  A pattern that matches nothing is a
    problem; problems go to ``collector`` when given, else are raised."""
    sink = _sink(collector)
    out: List[Document] = []
    seen = set()
    for pattern in patterns:
        if not isinstance(pattern, str) or not pattern:
            sink.add("Manifest", repr(pattern), "", "is not a path (give hostfw_manifests as a list of paths or globs)")
            continue
        files = expand(pattern, base_dir)
        if not files:
            sink.add("Manifest", pattern, "", "matches no file under %s (check the path; relative paths are relative "
                     "to %s)" % (base_dir, base_dir))
            continue
        for path in files:
            real = os.path.realpath(path)
            if real in seen:
                continue
            seen.add(real)
            shown = _display_path(path, base_dir)
            try:
                # O_NONBLOCK: opening a FIFO named by a glob must not wait for a writer
                with os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as handle:
                    info = os.fstat(handle.fileno())
                    if not stat.S_ISREG(info.st_mode):
                        sink.add("Manifest", shown, "", "is not a regular file (name manifest files or directories "
                                 "of them)", shown)
                        continue
                    if info.st_size > MAX_MANIFEST_BYTES:
                        sink.add("Manifest", shown, "", "is %d bytes long (at most %d: split it into several files)"
                                 % (info.st_size, MAX_MANIFEST_BYTES), shown)
                        continue
                    text = handle.read(MAX_MANIFEST_BYTES + 1).decode("utf-8-sig")
            except (OSError, UnicodeDecodeError) as exc:
                sink.add("Manifest", shown, "", "cannot be read: %s (check the file's permissions and that it is "
                         "UTF-8 text)" % (exc.strerror if isinstance(exc, OSError) and exc.strerror else exc), shown)
                continue
            out.extend(load_manifest_text(text, shown, sink))
    if collector is None:
        sink.raise_if_any()
    return out


# ----------------------------------------------------------------------------------------------
# Inventory
# ----------------------------------------------------------------------------------------------

_TRUE = frozenset(("true", "yes", "on", "1", "y"))
_FALSE = frozenset(("false", "no", "off", "0", "n", ""))


def _truthy(value: Any) -> Optional[bool]:
    """Ansible's boolean conventions; None when the value is not a boolean."""
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    if isinstance(value, int):
        return value != 0
    if isinstance(value, str):
        low = value.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
    return None


def _equal(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # exotic objects in the inventory: treat as different
        return False


def _content_key(doc: Any) -> str:
    try:
        return json.dumps(doc, sort_keys=True, separators=(",", ":"), default=repr)
    except (TypeError, ValueError, RecursionError):
        return repr(doc)


def _identity(doc: Any) -> Optional[Tuple[str, Optional[str], str]]:
    if not _is_map(doc):
        return None
    kind = doc.get("kind")
    meta = doc.get("metadata")
    if not isinstance(kind, str) or not _is_map(meta):
        return None
    name = meta.get("name")
    if not isinstance(name, str):
        return None
    ns = meta.get("namespace")
    if kind in resources.NAMESPACED_KINDS:
        ns = ns if isinstance(ns, str) and ns else "default"
    else:
        ns = None
    return kind, ns, name


def _show_identity(identity: Tuple[str, Optional[str], str]) -> str:
    return "%s/%s" % (identity[1], identity[2]) if identity[1] else identity[2]


def _iface_part(interface: str) -> str:
    if interface == "*":
        return "all"
    return checks.sanitise_name(interface)


class _Collect(object):
    """State of one collect_inventory run."""

    def __init__(self, base_dir: str) -> None:
        self.base_dir = base_dir
        self.inv = Inventory()
        self.keep: List[Any] = []          # keeps objects alive so that id() stays unique
        self.seen_ids = set()              # ids of lists/documents already read
        self.content: Dict[str, str] = {}  # content key -> origin (documents without an identity)
        self.owner: Dict[Tuple, List[Tuple[Any, str, str]]] = {}  # identity -> [(document, host, origin)]
        self.lists_by_length: Dict[int, List[Any]] = {}
        self.patterns: List[str] = []
        self.pattern_set = set()
        self.probes_raw: Any = None
        self.probes_host: Optional[str] = None
        self.probes_key: Optional[str] = None
        self.resource_docs: List[Document] = []
        self.label_memo: Dict[int, Tuple[Any, Any, List[errors.Problem]]] = {}  # id(labels) -> (kept, labels, problems)
        self.endpoint_docs: List[Document] = []

    def problem(self, host: str, path: str, message: str, origin: Optional[str] = None) -> None:
        self.inv.problems.append(errors.Problem("Host", host, path, message, origin))

    def first_time(self, obj: Any) -> bool:
        """True the first time this very object is seen."""
        ident = id(obj)
        if ident in self.seen_ids:
            return False
        self.seen_ids.add(ident)
        self.keep.append(obj)
        return True

    # -- hostfw_resources ----------------------------------------------------------------------

    def resources(self, host: str, value: Any) -> None:
        if value is None:
            return
        if _is_map(value):
            value = [value]
        elif not isinstance(value, (list, tuple)):
            self.problem(host, "hostfw_resources", "expected a list of Calico documents, got %s (write a YAML list "
                         "of documents with apiVersion, kind, metadata and spec)" % checks.tname(value))
            return
        if not self.first_time(value):
            return  # the very list another host carries (group_vars/all): read once
        same_length = self.lists_by_length.setdefault(len(value), [])
        for previous in same_length:
            if _equal(previous, value):
                return  # an equal copy of a list already read
        same_length.append(value)
        for i, raw in enumerate(value):
            if (_is_map(raw) or isinstance(raw, list)) and not self.first_time(raw):
                continue
            for doc, origin in resources.flatten_lists(raw, "hostfw_resources[%d] (host %s)" % (i, host)):
                self._resource(host, doc, origin)

    def _resource(self, host: str, doc: Any, origin: str) -> None:
        identity = _identity(doc)
        if identity is None:
            # Not a recognisable document: resources reports it; de-duplicate by content.
            key = _content_key(doc)
            if key not in self.content:
                self.content[key] = origin
                self.resource_docs.append((doc, origin))
            return
        versions = self.owner.get(identity)
        if versions is None:
            self.owner[identity] = [(doc, host, origin)]
            self.resource_docs.append((doc, origin))
            return
        for version in versions:
            if _equal(version[0], doc):
                return  # an identical copy (from this host or another one)
        first = versions[0]
        versions.append((doc, host, origin))
        if first[1] != host:
            self.inv.problems.append(errors.Problem(
                identity[0], _show_identity(identity), "",
                "is defined differently on host %s (%s) and on host %s (%s) (give every host the same definition, "
                "e.g. in group_vars/all, or rename one of them)" % (first[1], first[2], host, origin), origin))
            return
        self.resource_docs.append((doc, origin))  # same host: resources reports the duplicate

    # -- hostfw_manifests ----------------------------------------------------------------------

    def manifests(self, host: str, value: Any) -> None:
        if value is None:
            return
        if isinstance(value, str):
            value = [value]
        elif not isinstance(value, (list, tuple)):
            self.problem(host, "hostfw_manifests", "expected a list of paths or globs, got %s (write e.g. "
                         "['manifests/*.yaml'])" % checks.tname(value))
            return
        if not self.first_time(value):
            return
        for i, pattern in enumerate(value):
            if not isinstance(pattern, str) or not pattern:
                self.problem(host, "hostfw_manifests[%d]" % i, "expected a path or glob, got %s (write a string such "
                             "as manifests/*.yaml)" % checks.show(pattern))
                continue
            if pattern not in self.pattern_set:
                self.pattern_set.add(pattern)
                self.patterns.append(pattern)

    # -- hostfw_matrix_probes ------------------------------------------------------------------

    def probes(self, host: str, value: Any) -> None:
        if value is None:
            return
        if self.probes_raw is None:
            self.probes_raw, self.probes_host = value, host
            self.keep.append(value)
            return
        if value is self.probes_raw:
            return
        key = _content_key(value)
        if self.probes_key is None:
            self.probes_key = _content_key(self.probes_raw)
        if key != self.probes_key:
            self.problem(host, "hostfw_matrix_probes", "differs from the value on host %s (the matrix has one list of "
                         "probes: define hostfw_matrix_probes once, e.g. in group_vars/all)" % self.probes_host)

    def validate_probes(self) -> None:
        value, host = self.probes_raw, self.probes_host
        if value is None:
            return
        if not isinstance(value, (list, tuple)):
            self.problem(host, "hostfw_matrix_probes", "expected a list of {protocol, port} mappings, got %s (write "
                         "e.g. [{protocol: TCP, port: 22}])" % checks.tname(value))
            return
        out: List[Dict[str, Any]] = []
        for i, item in enumerate(value):
            path = "hostfw_matrix_probes[%d]" % i
            if not _is_map(item):
                self.problem(host, path, "expected a mapping with protocol and port, got %s (write e.g. "
                             "{protocol: TCP, port: 22})" % checks.tname(item))
                continue
            unknown = [k for k in item if k not in ("protocol", "port")]
            for k in unknown:
                self.problem(host, "%s.%s" % (path, k), "unknown field (a probe has only protocol and port)")
            proto = item.get("protocol", "TCP")
            if not isinstance(proto, str) or proto not in PROBE_PROTOCOLS:
                close = None
                if isinstance(proto, str):
                    close = next((p for p in PROBE_PROTOCOLS if p.lower() == proto.lower()), None)
                self.problem(host, path + ".protocol", "%s is not a probe protocol (%s)" % (
                    checks.show(proto), "use %s" % close if close else "use TCP, UDP, SCTP, ICMP or ICMPv6"))
                continue
            port = item.get("port")
            if proto in ("ICMP", "ICMPv6"):
                if port is not None:
                    self.problem(host, path + ".port", "an %s probe has no port (remove port)" % proto)
                    continue
                probe: Dict[str, Any] = {"protocol": proto}
            else:
                if port is None:
                    self.problem(host, path + ".port", "missing (set port to a number 1-65535)")
                    continue
                if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
                    self.problem(host, path + ".port", "%s is not a port (use a number 1-65535)"
                                 % checks.show(port))
                    continue
                probe = {"protocol": proto, "port": port}
            if unknown:
                continue
            if probe not in out:
                out.append(probe)
        self.inv.probes = out

    # -- node names, interfaces ----------------------------------------------------------------

    def node_name(self, host: str, hv: Mapping) -> Tuple[str, bool]:
        """(node name, explicitly set)."""
        value = hv.get("hostfw_node_name")
        if value is None or value == "":
            return host, False
        if not isinstance(value, str):
            self.problem(host, "hostfw_node_name", "expected a string, got %s (quote the node name)"
                         % checks.tname(value))
            return host, False
        return value, True

    def check_node(self, host: str, node: str, explicit: bool) -> bool:
        if checks.valid_name(node, "subdomain"):
            return True
        suggestion = checks.sanitise_name(node)
        fix = "set hostfw_node_name to the host's Calico node name: lower case letters, digits, '-' and '.'"
        if suggestion and checks.valid_name(suggestion, "subdomain"):
            fix += ", e.g. %r" % suggestion
        if explicit:
            self.problem(host, "hostfw_node_name", "%r is not a valid Calico node name (%s)" % (node, fix))
        else:
            self.problem(host, "hostfw_node_name", "the inventory_hostname %r is not a valid Calico node name, and "
                         "hostfw_node_name is not set (%s)" % (node, fix))
        return False

    def interfaces(self, host: str, value: Any) -> None:
        if value is None:
            return
        if not _is_map(value):
            self.problem(host, "hostfw_interfaces", "expected a mapping of interface name to addresses, got %s "
                         "(write e.g. {eth0: [10.0.0.5]})" % checks.tname(value))
            return
        out: Dict[str, List[str]] = {}
        for name, addrs in value.items():
            path = "hostfw_interfaces[%r]" % (name,)
            if not isinstance(name, str) or not checks.INTERFACE_RE.fullmatch(name):
                self.problem(host, "hostfw_interfaces", "%s is not an interface name (use 1-15 letters, digits, "
                             "'_', '.' and '-')" % checks.show(name))
                continue
            if addrs is None:
                addrs = []
            if isinstance(addrs, str):
                addrs = [addrs]
            if not isinstance(addrs, (list, tuple)):
                self.problem(host, path, "expected a list of addresses, got %s (write e.g. [10.0.0.5])"
                             % checks.tname(addrs))
                continue
            ips: List[str] = []
            for i, addr in enumerate(addrs):
                ip = _interface_address(addr)
                if ip is None:
                    self.problem(host, "%s[%d]" % (path, i), "%s is not an IP address (write e.g. 10.0.0.5 or "
                                 "10.0.0.5/24)" % checks.show(addr))
                    continue
                if ip not in ips:
                    ips.append(ip)
            out[name] = ips
        self.inv.interfaces[host] = out

    def failsafe_defaults(self, host: str, node: str, value: Any) -> None:
        if value is None or value == "protect-hosts":
            return
        if value not in FAILSAFE_DEFAULT_CHOICES:
            self.problem(host, "hostfw_failsafe_defaults", "%s is not a failsafe default (use protect-hosts, the "
                         "'Protect hosts' page's lists, or felix, Felix's compiled-in lists with tcp:5473)"
                         % checks.show(value))
            return
        self.inv.failsafe_defaults[node] = value

    def node_labels(self, host: str, node: str, hv: Mapping) -> None:
        """The labels a FelixConfiguration ``spec.nodeSelector`` sees for this host's node."""
        var = "hostfw_node_labels" if hv.get("hostfw_node_labels") is not None else "hostfw_labels"
        value = hv.get(var)
        if value is None:
            return
        hit = self.label_memo.get(id(value))
        if hit is None:
            sink = errors.Collector()
            labels = checks.labels(sink.scope("Host", host), value, var)
            hit = (value, labels, sink.problems)
            self.label_memo[id(value)] = hit
        if hit[2]:
            self.inv.problems.extend(errors.Problem(p.kind, host, p.path, p.message) for p in hit[2])
            return
        self.inv.node_labels[node] = hit[1]

    # -- host endpoints ------------------------------------------------------------------------

    def host_labels(self, host: str, hv: Mapping) -> Any:
        labels = hv.get("hostfw_labels")
        if labels is None:
            return {}
        if not _is_map(labels):
            self.problem(host, "hostfw_labels", "expected a mapping of label names to values, got %s (write e.g. "
                         "{role: worker})" % checks.tname(labels))
            return None
        return labels

    def host_endpoints(self, host: str, node: str, hv: Mapping, value: Any, labels: Any) -> None:
        if value is None:
            return
        if _is_map(value):
            value = [value]
        if not isinstance(value, (list, tuple)):
            self.problem(host, "hostfw_host_endpoints", "expected a list of host endpoints, got %s (write a list of "
                         "mappings with interfaceName, labels, ...)" % checks.tname(value))
            return
        for i, item in enumerate(value):
            path = "hostfw_host_endpoints[%d]" % i
            origin = "%s (host %s)" % (path, host)
            if not _is_map(item):
                self.problem(host, path, "expected a mapping, got %s (write e.g. {interfaceName: eth0, labels: "
                             "{role: worker}})" % checks.tname(item), origin)
                continue
            if any(k in item for k in ("apiVersion", "kind", "metadata", "spec")):
                doc = self._endpoint_document(host, node, path, item, origin)
            else:
                doc = self._endpoint_item(host, node, path, item, origin, labels)
            if doc is not None:
                self.endpoint_docs.append((doc, origin))

    def _endpoint_document(self, host: str, node: str, path: str, item: Mapping, origin: str) -> Optional[dict]:
        kind = item.get("kind", api.HOST_ENDPOINT)
        if kind != api.HOST_ENDPOINT:
            self.problem(host, path + ".kind", "%s is not a HostEndpoint (hostfw_host_endpoints takes only host "
                         "endpoints: put other resources in hostfw_resources)" % checks.show(kind), origin)
            return None
        doc = dict(item)
        doc.setdefault("apiVersion", resources.API_VERSION)
        doc.setdefault("kind", api.HOST_ENDPOINT)
        spec = doc.get("spec")
        if spec is None:
            spec = {}
        if _is_map(spec):
            spec = dict(spec)
            if spec.get("node") in (None, ""):
                spec["node"] = node
            doc["spec"] = spec
        meta = doc.get("metadata")
        if meta is None:
            meta = {}
        if _is_map(meta) and meta.get("name") in (None, "") and _is_map(spec):
            name = self._default_name(host, node, path, spec.get("interfaceName"), origin)
            if name is None:
                return None
            meta = dict(meta)
            meta["name"] = name
            doc["metadata"] = meta
        return doc

    def _endpoint_item(self, host: str, node: str, path: str, item: Mapping, origin: str,
                       labels: Any) -> Optional[dict]:
        spec = {k: v for k, v in item.items() if k not in ("name", "labels", "annotations")}
        if spec.get("node") in (None, ""):
            spec["node"] = node
        name = item.get("name")
        if name in (None, ""):
            name = self._default_name(host, node, path, spec.get("interfaceName"), origin)
            if name is None:
                return None
        own = item.get("labels")
        if _is_map(own) and _is_map(labels):
            merged: Any = dict(labels)
            merged.update(own)
        elif own is None:
            merged = dict(labels) if _is_map(labels) else {}
        else:
            merged = own  # not a mapping: resources reports it
        meta: Dict[str, Any] = {"name": name, "labels": merged}
        if item.get("annotations") is not None:
            meta["annotations"] = item.get("annotations")
        return {"apiVersion": resources.API_VERSION, "kind": api.HOST_ENDPOINT, "metadata": meta, "spec": spec}

    def _default_name(self, host: str, node: str, path: str, interface: Any, origin: str) -> Optional[str]:
        if not isinstance(interface, str) or not interface:
            self.problem(host, path + ".name", "missing: an endpoint without interfaceName needs a name (set name)",
                         origin)
            return None
        return "%s-%s" % (node, _iface_part(interface))

    def auto_host_endpoint(self, host: str, node: str, hv: Mapping, labels: Any) -> None:
        origin = "hostfw_auto_host_endpoint (host %s)" % host
        ips = hv.get("hostfw_host_ips")
        if ips is None:
            address = hv.get("ansible_host")
            ips = [address] if isinstance(address, str) and _bare_address(address) else []
        elif isinstance(ips, str):
            ips = [ips]
        meta: Dict[str, Any] = {"name": "%s-auto-hep" % node}
        meta["labels"] = dict(labels) if _is_map(labels) else {}
        doc = {"apiVersion": resources.API_VERSION, "kind": api.HOST_ENDPOINT, "metadata": meta,
               "spec": {"node": node, "interfaceName": "*", "expectedIPs": ips,
                        "profiles": [api.DEFAULT_ALLOW_PROFILE]}}
        self.endpoint_docs.append((doc, origin))


def _bare_address(text: str) -> Optional[str]:
    if "%" in text:
        return None
    try:
        return str(ipaddress.ip_address(text.strip("[]") if text.startswith("[") else text))
    except ValueError:
        return None


def _interface_address(value: Any) -> Optional[str]:
    """An interface address as Ansible facts or `ip addr` show it (bare or with a prefix)."""
    if not isinstance(value, str):
        return None
    bare = _bare_address(value)
    if bare is not None:
        return bare
    if value.count("/") == 1:
        addr, plen = value.split("/")
        if plen.isdigit() and len(plen) <= 3:
            bare = _bare_address(addr)
            if bare is not None and int(plen) <= ipaddress.ip_address(bare).max_prefixlen:
                return bare
    return None


def collect_inventory(hosts: Mapping[str, Mapping[str, Any]], base_dir: str) -> Inventory:
    """Merge the hostfw variables of every inventory host into one :class:`Inventory`.

    ``hosts`` maps every inventory_hostname of the whole inventory to its variables.  Reads
    ``hostfw_node_name``, ``hostfw_resources``, ``hostfw_manifests``, ``hostfw_host_endpoints``,
    ``hostfw_auto_host_endpoint``, ``hostfw_host_ips``, ``hostfw_labels``, ``hostfw_interfaces``
    and ``hostfw_matrix_probes``; manifests are loaded relative to ``base_dir``.  Problems are in
    ``Inventory.problems`` (nothing is raised)."""
    state = _Collect(base_dir)
    inv = state.inv
    inv.base_dir = base_dir
    for host, hv in hosts.items():
        host = str(host)
        if not _is_map(hv):
            state.problem(host, "", "the host's variables are %s, not a mapping (this is a bug in the caller)"
                          % checks.tname(hv))
            continue
        node, explicit = state.node_name(host, hv)
        inv.nodes[host] = node
        inv.hosts_of_node.setdefault(node, []).append(host)
        if explicit and not checks.valid_name(node, "subdomain"):
            state.check_node(host, node, True)
            node_ok = False
        else:
            node_ok = None  # checked only when the host needs it
        state.resources(host, hv.get("hostfw_resources"))
        state.manifests(host, hv.get("hostfw_manifests"))
        state.probes(host, hv.get("hostfw_matrix_probes"))
        state.interfaces(host, hv.get("hostfw_interfaces"))
        state.node_labels(host, node, hv)
        state.failsafe_defaults(host, node, hv.get("hostfw_failsafe_defaults"))
        endpoints = hv.get("hostfw_host_endpoints")
        auto = hv.get("hostfw_auto_host_endpoint")
        auto_on = _truthy(auto)
        if auto_on is None:
            state.problem(host, "hostfw_auto_host_endpoint", "%s is not a boolean (use true or false)"
                          % checks.show(auto))
            auto_on = False
        if endpoints is None and not auto_on:
            continue
        if node_ok is None:
            node_ok = state.check_node(host, node, False)
        if not node_ok:
            continue
        labels = state.host_labels(host, hv)
        state.host_endpoints(host, node, hv, endpoints, labels)
        if auto_on:
            state.auto_host_endpoint(host, node, hv, labels)
    state.validate_probes()
    sink = errors.Collector()
    manifest_docs = load_manifests(state.patterns, base_dir, sink)
    inv.problems.extend(sink.problems)
    inv.documents = manifest_docs + state.resource_docs + state.endpoint_docs
    return inv


def load_world(hosts: Mapping[str, Mapping[str, Any]], base_dir: str) -> Tuple[api.World, Inventory]:
    """Collect the inventory and build the World.  Raises one :class:`~errors.HostfwError` with
    every problem of both steps."""
    t0 = time.perf_counter()
    inv = collect_inventory(hosts, base_dir)
    t1 = time.perf_counter()
    collector = errors.Collector()
    collector.problems.extend(inv.problems)
    world = resources.validate_documents(inv.documents, collector)
    inv.timings = {"load_inputs": t1 - t0, "validate": time.perf_counter() - t1}
    collector.raise_if_any()
    return world, inv
