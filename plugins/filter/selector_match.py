# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``hostfw.nftables.selector_match`` filter: a thin wrapper around plugin_utils/selector.py."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = """
    name: selector_match
    author: hostfw.nftables contributors
    version_added: "0.1.0"
    short_description: Test a label set against a Calico selector
    description:
        - Evaluates a Calico v3 label selector (as used in C(spec.selector) of a GlobalNetworkPolicy
          or in a rule's C(source.selector)) against a dictionary of labels and returns C(true) when
          the labels are selected.
        - The selector language and its evaluation are exactly Calico's, for example
          C(role == "node" && zone in {"a", "b"}) or C(tier starts with "front" || env != "prod"),
          with the functions has(label), all() and global(), negation C(!) and parentheses.
        - A label that is missing satisfies C(!=) and C(not in) and nothing else.
        - Only spaces and tabs may separate tokens; a newline in a selector is an error (beware of
          YAML literal block scalars C(|), which keep a trailing newline).
        - An invalid selector fails the task with a message that quotes the selector and gives the
          0-based character position of the problem.
    positional: selector
    options:
        _input:
            description:
                - The labels, a dictionary of label name to value.
                - Keys and values must be strings, as in Calico; quote values that YAML would read as
                  numbers or booleans, for example C("80") or C("true").
                - C(null) is treated as no labels.
            type: dict
            required: true
        selector:
            description:
                - The Calico selector.  An empty or blank selector selects everything, like all().
            type: str
            required: true
    notes:
        - Selectors are parsed once and cached; evaluation is a compiled function, so testing many
          label sets against the same selector is cheap.
    seealso:
        - name: Calico selectors
          description: The selector syntax in Calico's GlobalNetworkPolicy reference.
          link: https://docs.tigera.io/calico/latest/reference/resources/globalnetworkpolicy#selectors
"""

EXAMPLES = r"""
- name: Is this host selected by the node policy?
  ansible.builtin.debug:
    msg: "{{ {'role': 'node', 'zone': 'a'} | hostfw.nftables.selector_match('role == \"node\" && zone in {\"a\", \"b\"}') }}"
  # => true

- name: A missing label satisfies != and "not in"
  ansible.builtin.assert:
    that:
      - "{} | hostfw.nftables.selector_match('env != \"prod\"')"
      - "not ({} | hostfw.nftables.selector_match('env == \"prod\"'))"

- name: Report which inventory hosts a policy selector selects
  ansible.builtin.debug:
    msg: "{{ item }} is selected"
  loop: "{{ groups['all'] }}"
  when: hostvars[item].hostfw_labels | default({}) | hostfw.nftables.selector_match('role == "node"')

- name: Label values must be strings (quote numbers and booleans in YAML)
  ansible.builtin.debug:
    msg: "{{ {'port': '80'} | hostfw.nftables.selector_match('port in {\"80\", \"443\"}') }}"
"""

RETURN = """
    _value:
        description:
            - C(true) if the selector selects the labels, C(false) otherwise.
        type: bool
"""

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.hostfw.nftables.plugins.plugin_utils.selector import SelectorError, parse


def _check_labels(labels):
    if labels is None:
        return {}
    if not isinstance(labels, Mapping):
        raise AnsibleFilterError(
            "selector_match: the labels must be a dictionary of label name to string value, not %s"
            % type(labels).__name__
        )
    for key, value in labels.items():
        if not isinstance(key, str):
            raise AnsibleFilterError(
                "selector_match: label name %r is of type %s; label names must be strings, quote the value "
                "(for example \"%s\")" % (key, type(key).__name__, _yaml_text(key))
            )
        if not isinstance(value, str):
            raise AnsibleFilterError(
                "selector_match: label %r has the %s value %r; label values must be strings, quote the value "
                "(for example %s: \"%s\")" % (key, type(value).__name__, value, key, _yaml_text(value))
            )
    return labels


def _yaml_text(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def selector_match(labels, selector):
    """Whether ``selector`` (a Calico selector) selects ``labels`` (a dict of str to str)."""
    if not isinstance(selector, str):
        raise AnsibleFilterError(
            "selector_match: the selector must be a string, not %s" % type(selector).__name__
        )
    labels = _check_labels(labels)
    try:
        compiled = parse(selector)
    except SelectorError as exc:
        raise AnsibleFilterError(str(exc)) from None
    return compiled.matches(labels)


class FilterModule(object):
    """hostfw.nftables selector filter."""

    def filters(self):
        return {"selector_match": selector_match}
