# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Render once, roll out many: the candidate files of a render, and reading them back.

The render playbook compiles the whole inventory and writes, next to each ``<host>.nft``, a
``<host>.json`` with everything the rollout takes from a compile (sha256, failsafe proof, failsafe
lists, node, warnings), for every inventory host (``has_ruleset: false`` for a host without a
HostEndpoint), plus ``render.json`` with the collection version and the input digest (the
fingerprint of every input: variables, manifest files, code).  A rollout with
``hostfw_candidate_dir`` reads only its own hosts' files, so a job that sees part of the
inventory (an AWX slice) still rolls out the tables of the whole one.  It refuses a directory of
another collection version, one without a file for a host, files of two different renders and a
table whose content no longer has the sha256 the render wrote.  Nothing here imports Ansible.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ansible_collections.hostfw.nftables.plugins.plugin_utils import files

FORMAT = 1
INDEX = "render.json"
# what a candidate file carries of a compile result (the rollout's __hostfw_compiled)
FIELDS = ("node", "has_ruleset", "file", "sha256", "failsafe_proof", "failsafe_inbound", "failsafe_outbound", "warnings")


def _json(data: Any) -> str:
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


def write(out_dir: str, all_hosts: Sequence[str], host_results: Mapping[str, Mapping[str, Any]], version: str,
          input_digest: str, check_mode: bool, diffs: Optional[List[Dict[str, str]]]) -> bool:
    """Write ``render.json`` and one ``<host>.json`` per inventory host; True when a file changed."""
    changed = False
    for host in all_hosts:
        entry = host_results.get(host)
        data = {k: entry[k] for k in FIELDS if entry is not None and k in entry}
        if entry is None:
            data = {"has_ruleset": False, "file": files.host_file_name(host)}
        data.update(format=FORMAT, host=host, collection_version=version, input_digest=input_digest)
        changed |= files.write_if_changed(os.path.join(out_dir, files.host_file_name(host, ".json")), _json(data),
                                          check_mode, diffs)
    index = {"format": FORMAT, "collection_version": version, "input_digest": input_digest, "hosts": len(all_hosts),
             "with_ruleset": sum(1 for h in all_hosts if (host_results.get(h) or {}).get("has_ruleset"))}
    changed |= files.write_if_changed(os.path.join(out_dir, INDEX), _json(index), check_mode, diffs)
    return changed


def read(directory: str, hosts: Sequence[str], version: str, expected_digest: Optional[str] = None,
         return_content: bool = False) -> Tuple[Dict[str, Dict[str, Any]], List[str], Optional[Dict[str, Any]]]:
    """(entries of ``hosts``, problems, the render index).  Any problem means: use nothing."""
    where = "hostfw_candidate_dir %s" % directory
    try:
        with open(os.path.join(directory, INDEX), encoding="utf-8") as handle:
            index = json.load(handle)
    except (OSError, ValueError) as exc:
        return {}, ["%s: no readable %s (%s): render into it first (ansible-playbook hostfw.nftables.render -e "
                    "hostfw_output_dir=DIR)" % (where, INDEX, getattr(exc, "strerror", None) or exc)], None
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        return {}, ["%s: %s is not a hostfw render index of format %d: render again" % (where, INDEX, FORMAT)], None
    if index.get("collection_version") != version:
        return {}, ["%s was rendered by hostfw.nftables %s, this rollout is %s: render it again with this version"
                    % (where, index.get("collection_version"), version)], index
    digest = index.get("input_digest")
    if expected_digest and digest != expected_digest:
        return {}, ["%s holds the render of inputs %s, not %s (hostfw_candidate_digest): another render replaced it; "
                    "render again and roll out that render" % (where, str(digest)[:12], expected_digest[:12])], index
    entries: Dict[str, Dict[str, Any]] = {}
    missing, problems = [], []
    for host in hosts:
        path = os.path.join(directory, files.host_file_name(host, ".json"))
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
        except OSError:
            missing.append(host)
            continue
        except ValueError as exc:
            problems.append("%s: %s is not JSON (%s)" % (where, os.path.basename(path), exc))
            continue
        if not isinstance(data, dict) or data.get("host") != host:
            problems.append("%s: %s is not the candidate of %s" % (where, os.path.basename(path), host))
            continue
        if data.get("input_digest") != digest or data.get("collection_version") != version:
            problems.append("%s: %s comes from another render than %s (input digest %s, not %s): render the whole "
                            "inventory into an empty directory" % (where, os.path.basename(path), INDEX,
                                                                   str(data.get("input_digest"))[:12], str(digest)[:12]))
            continue
        entry = {k: data[k] for k in FIELDS if k in data}
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
                                % (where, os.path.basename(nft), os.path.basename(path)))
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
