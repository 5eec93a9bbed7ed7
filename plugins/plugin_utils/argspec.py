# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""An action plugin's argument spec, derived from the DOCUMENTATION of its module file, so that
each option is declared once (as ansible.utils' actions do with ``check_argspec``).

This module imports nothing from Ansible; the action passes the spec to
``ActionBase.validate_argument_spec``.
"""

from __future__ import annotations

from typing import Any, Dict

import yaml

# The keys of a documented option that are also argument-spec keys.
_SPEC_KEYS = ("type", "elements", "default", "choices", "required", "aliases", "no_log")


def from_documentation(documentation: str) -> Dict[str, Dict[str, Any]]:
    """``{option: {type, elements, default, choices, required, options}}`` from the ``options`` of
    a module's DOCUMENTATION (suboptions become ``options``)."""
    return _options(yaml.safe_load(documentation).get("options") or {})


def _options(options: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    spec: Dict[str, Dict[str, Any]] = {}
    for name, doc in options.items():
        entry = {key: doc[key] for key in _SPEC_KEYS if key in doc}
        if "suboptions" in doc:
            entry["options"] = _options(doc["suboptions"])
        spec[name] = entry
    return spec
