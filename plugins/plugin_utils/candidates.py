# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Render once, roll out many: the candidate files of a render, and reading them back.

The render playbook compiles the whole inventory and writes, next to the ``<host>.nft`` tables,
``candidates.json``: the collection version, the input digest (the fingerprint of every input:
variables, manifest files, code) and, for every inventory host, everything the rollout takes from
a compile (sha256, failsafe proof, failsafe lists, node, warnings; ``has_ruleset: false`` for a
host without a HostEndpoint).  A rollout with ``hostfw_candidate_dir`` reads its own hosts'
entries and tables from there, so a job that sees part of the inventory (an AWX slice) still rolls
out the tables of the whole one.  It refuses a directory of another collection version, one
without an entry for a host, another render than the one asked for (``hostfw_candidate_digest``)
and a table whose content no longer has the sha256 the render wrote.  Nothing here imports
Ansible.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ansible_collections.hostfw.nftables.plugins.plugin_utils import files

FORMAT = 1
INDEX = "candidates.json"
# what the candidate file carries of each host's compile result (the rollout's __hostfw_compiled)
FIELDS = ("node", "has_ruleset", "file", "sha256", "failsafe_proof", "failsafe_inbound", "failsafe_outbound", "warnings")


def write(out_dir: str, all_hosts: Sequence[str], host_results: Mapping[str, Mapping[str, Any]], version: str,
          input_digest: str, check_mode: bool, diffs: Optional[List[Dict[str, str]]]) -> bool:
    """Write ``candidates.json``: the collection version, the input digest and one entry per
    inventory host.  One file, not one per host: a render of 10,000 hosts already writes 10,000
    tables, and a rollout batch reads this file in milliseconds.  True when it changed."""
    hosts = {}
    for host in all_hosts:
        entry = host_results.get(host)
        if entry is None:
            hosts[host] = {"has_ruleset": False, "file": files.host_file_name(host)}
        else:
            hosts[host] = {k: entry[k] for k in FIELDS if k in entry}
    data = {"format": FORMAT, "collection_version": version, "input_digest": input_digest, "hosts": hosts}
    text = json.dumps(data, sort_keys=True, separators=(",", ":")) + "\n"
    return files.write_if_changed(os.path.join(out_dir, INDEX), text, check_mode, None)


def read(directory: str, hosts: Sequence[str], version: str, expected_digest: Optional[str] = None,
         return_content: bool = False) -> Tuple[Dict[str, Dict[str, Any]], List[str], Optional[Dict[str, Any]]]:
    """(entries of ``hosts``, problems, the file's header: version, digest, host count).  Any
    problem means: use nothing."""
    where = "hostfw_candidate_dir %s" % directory
    try:
        with open(os.path.join(directory, INDEX), encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError) as exc:
        return {}, ["%s: no readable %s (%s): render into it first (ansible-playbook hostfw.nftables.render -e "
                    "hostfw_output_dir=DIR)" % (where, INDEX, getattr(exc, "strerror", None) or exc)], None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("hosts"), dict):
        return {}, ["%s: %s is not a hostfw candidate file of format %d: render again" % (where, INDEX, FORMAT)], None
    index = {"collection_version": data.get("collection_version"), "input_digest": data.get("input_digest"),
             "hosts": len(data["hosts"])}
    if index["collection_version"] != version:
        return {}, ["%s was rendered by hostfw.nftables %s, this rollout is %s: render it again with this version"
                    % (where, index["collection_version"], version)], index
    digest = index["input_digest"]
    if expected_digest and digest != expected_digest:
        return {}, ["%s holds the render of inputs %s, not %s (hostfw_candidate_digest): another render replaced it; "
                    "render again and roll out that render" % (where, str(digest)[:12], expected_digest[:12])], index
    entries: Dict[str, Dict[str, Any]] = {}
    missing, problems = [], []
    for host in hosts:
        found = data["hosts"].get(host)
        if not isinstance(found, dict):
            missing.append(host)
            continue
        entry = {k: found[k] for k in FIELDS if k in found}
        if entry.get("has_ruleset"):
            nft = os.path.join(directory, os.path.basename(str(entry.get("file"))))
            try:
                with open(nft, encoding="utf-8") as handle:
                    text = handle.read()
            except OSError:
                problems.append("%s: %s is missing (the table of %s)" % (where, os.path.basename(nft), host))
                continue
            if hashlib.sha256(text.encode("utf-8")).hexdigest() != entry.get("sha256"):
                problems.append("%s: %s was changed after the render (its sha256 is not the one in %s): render again"
                                % (where, os.path.basename(nft), INDEX))
                continue
            entry["path"] = nft
            if return_content:
                entry["ruleset"] = text
        entries[host] = entry
    if missing:
        problems.insert(0, "%s has no candidate for %s (it was rendered from an inventory without %s): render the "
                        "whole inventory into it again" % (where, ", ".join(missing), "them" if len(missing) > 1 else "it"))
    return entries, problems, index


__all__ = ["FIELDS", "INDEX", "read", "write"]
