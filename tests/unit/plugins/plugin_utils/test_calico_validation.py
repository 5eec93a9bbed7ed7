# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""hostfw's validation against a table of cases derived from Calico's own validation tests.

Each file of ``calico_vectors/`` is a YAML list of vectors.  A vector names the Calico test it
derives from (``src``: file, line and Entry/case name in projectcalico/calico, or the reference
it comes from), a ``kind``, the ``field`` (a path such as ``spec.ingress[0].source.nets``) and
the ``value`` put there in a minimal valid document of that kind (:data:`BASES`), and Calico's
verdict (``calico: valid`` or ``invalid``).  Optional keys:

* ``with``: more ``{path: value}`` for the same document (the context of the case);
* ``unset``: paths removed from the base document;
* ``docs``: further documents of the same case (a Tier the policy names, ...);
* ``kinds``: run the vector once per kind listed (rules are kind-independent in Calico);
* ``path``: for an invalid vector, the field path at (or under) which hostfw must report;
* ``hostfw`` + ``why``: hostfw's verdict where it deliberately differs from Calico's, and why
  (docs/calico-reference.md documents each such difference).

Strings may contain ``<<c*N>>``, which stands for the character c repeated N times.

Every vector runs through :func:`resources.build_world`: a valid one must build, an invalid one
must raise HostfwError whose every message has the form ``<Kind> <name>: <path>: <what> (<fix>)``
and none of which is an internal error.
"""

from __future__ import annotations

import collections
import copy
import glob
import os
import re

import pytest
import yaml

from ansible_collections.hostfw.nftables.plugins.plugin_utils import errors, resources

HERE = os.path.dirname(os.path.abspath(__file__))
VECTOR_DIR = os.path.join(HERE, "calico_vectors")
V3 = "projectcalico.org/v3"

BASES = {
    "HostEndpoint": {"metadata": {"name": "endpoint1"}, "spec": {"node": "node01", "interfaceName": "eth0"}},
    "GlobalNetworkPolicy": {"metadata": {"name": "thing"}, "spec": {}},
    "StagedGlobalNetworkPolicy": {"metadata": {"name": "thing"}, "spec": {}},
    "NetworkPolicy": {"metadata": {"name": "thing", "namespace": "default"}, "spec": {}},
    "StagedNetworkPolicy": {"metadata": {"name": "thing", "namespace": "default"}, "spec": {}},
    "Tier": {"metadata": {"name": "platform"}, "spec": {"order": 100}},
    "GlobalNetworkSet": {"metadata": {"name": "testset"}, "spec": {"nets": ["10.0.0.0/8"]}},
    "NetworkSet": {"metadata": {"name": "testset", "namespace": "default"}, "spec": {"nets": ["10.0.0.0/8"]}},
    "WorkloadEndpoint": {"metadata": {"name": "node01-k8s-pod1-eth0", "namespace": "default"},
                         "spec": {"interfaceName": "cali012371237"}},
    "Profile": {"metadata": {"name": "profile1"}, "spec": {}},
    "FelixConfiguration": {"metadata": {"name": "default"}, "spec": {}},
}

# The Calico test sources a vector may cite (paths in projectcalico/calico unless noted).
SOURCES = (
    "validator_test.go",  # libcalico-go/lib/validator/v3/validator_test.go
    "crd_validation_test.go",  # libcalico-go/lib/validator/v3/crd_validation_test.go
    "test/validation/",  # API-server validation tests (CRD schema + CEL)
    "parser_test.go",  # libcalico-go/lib/selector/parser/parser_test.go
    "calicoctl/tests/",  # calicoctl system tests (test_crud.py, utils/data.py)
    "calicoctl/calicoctl/",  # how calicoctl reads a document
    "validator.go",  # libcalico-go/lib/validator/v3/validator.go, where no test covers a check
    "libcalico-go/lib/",  # WorkloadEndpoint types (no CRD backs them), the syncer that feeds Felix
    "api/",  # api/pkg/apis/projectcalico/v3 types, CEL rules and CRDs
    "felix/",  # Felix tests that set FelixConfiguration values
    "tigera/docs",  # Calico Enterprise references (Enterprise-only fields)
)

_MACRO = re.compile(r"<<(.)\*(\d+)>>")
_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
_MESSAGE = re.compile(r"^[A-Za-z]+ \S+: \S+: .+ \(.+\)$", re.S)


def _expand(value):
    if isinstance(value, str):
        return _MACRO.sub(lambda m: m.group(1) * int(m.group(2)), value)
    if isinstance(value, list):
        return [_expand(v) for v in value]
    if isinstance(value, dict):
        return {_expand(k): _expand(v) for k, v in value.items()}
    return value


def _tokens(path):
    out = []
    for name, index in _TOKEN.findall(path):
        out.append(int(index) if index else name)
    return out


def _set(doc, path, value):
    tokens = _tokens(path)
    node = doc
    for token, following in zip(tokens, tokens[1:]):
        empty = [] if isinstance(following, int) else {}
        if isinstance(token, int):
            while len(node) <= token:
                node.append(copy.deepcopy(empty))
            if node[token] is None:
                node[token] = empty
            node = node[token]
        else:
            if node.get(token) is None:
                node[token] = empty
            node = node[token]
    last = tokens[-1]
    if isinstance(last, int):
        while len(node) <= last:
            node.append(None)
    node[last] = value


def _unset(doc, path):
    tokens = _tokens(path)
    node = doc
    for token in tokens[:-1]:
        node = node[token]
    del node[tokens[-1]]


def _document(kind, vector):
    doc = {"apiVersion": V3, "kind": kind}
    doc.update(copy.deepcopy(BASES[kind]))
    for path in vector.get("unset", ()):
        _unset(doc, path)
    for path, value in (vector.get("with") or {}).items():
        _set(doc, path, _expand(value))
    if "field" in vector:
        _set(doc, vector["field"], _expand(vector["value"]))
    return doc


def _load():
    cases = []
    for path in sorted(glob.glob(os.path.join(VECTOR_DIR, "*.yaml"))):
        with open(path, encoding="utf-8") as handle:
            entries = yaml.safe_load(handle)
        for index, vector in enumerate(entries):
            kinds = vector.get("kinds") or [vector.get("kind")]
            for kind in kinds:
                ident = "%s:%d:%s" % (os.path.basename(path)[:-5], index, kind)
                cases.append(pytest.param(vector, kind, id=ident))
    return cases


CASES = _load()


@pytest.mark.parametrize("vector, kind", CASES)
def test_calico_vector(vector, kind):
    docs = [(_document(kind, vector), "vector")]
    docs += [(_expand(extra), "vector context") for extra in vector.get("docs", ())]
    expected = vector.get("hostfw", vector["calico"])
    if expected == "valid":
        resources.build_world(docs)
        return
    with pytest.raises(errors.HostfwError) as info:
        resources.build_world(docs)
    problems = info.value.problems
    assert problems
    for problem in problems:
        text = str(problem)
        assert _MESSAGE.match(text), text
        assert "internal error" not in text and "Traceback" not in text, text
    if "path" in vector:
        want = vector["path"]
        assert any(p.path == want or p.path.startswith(want + ".") or p.path.startswith(want + "[")
                   for p in problems), [str(p) for p in problems]


def _vectors():
    out = []
    for path in sorted(glob.glob(os.path.join(VECTOR_DIR, "*.yaml"))):
        with open(path, encoding="utf-8") as handle:
            out.extend((os.path.basename(path), v) for v in yaml.safe_load(handle))
    return out


def test_every_vector_is_well_formed():
    allowed = {"src", "kind", "kinds", "field", "value", "with", "unset", "docs", "calico", "hostfw", "why", "path"}
    for name, vector in _vectors():
        assert set(vector) <= allowed, (name, vector)
        assert any(source in vector["src"] for source in SOURCES), (name, vector["src"])
        assert vector["calico"] in ("valid", "invalid"), (name, vector)
        assert ("field" in vector) == ("value" in vector), (name, vector)
        for kind in vector.get("kinds") or [vector.get("kind")]:
            assert kind in BASES, (name, vector)
        if "hostfw" in vector:
            assert vector["hostfw"] in ("valid", "invalid") and vector["hostfw"] != vector["calico"], (name, vector)
            assert vector.get("why"), (name, vector)
        assert "path" not in vector or vector.get("hostfw", vector["calico"]) == "invalid", (name, vector)


def test_the_table_is_large_and_covers_every_kind():
    per_kind = collections.Counter()
    for _name, vector in _vectors():
        for kind in vector.get("kinds") or [vector["kind"]]:
            per_kind[kind] += 1
    assert set(per_kind) == set(BASES)
    assert len(CASES) >= 400
    verdicts = collections.Counter(v.get("hostfw", v["calico"]) for _name, v in _vectors())
    assert verdicts["valid"] >= 100 and verdicts["invalid"] >= 100
