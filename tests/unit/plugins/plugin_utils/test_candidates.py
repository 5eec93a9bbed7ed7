# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""plugin_utils/candidates.py: what a render writes for the rollout, and what the rollout refuses
(tests/integration/test_awx.py runs it through the playbooks and AWX's engine)."""

from __future__ import annotations

from ansible_collections.hostfw.nftables.plugins.plugin_utils import candidates, compiler, runcache

V3 = "projectcalico.org/v3"
VERSION = runcache.collection_version()  # what a render of this checkout records
OTHER = "99.0.0"
DOCS = [{"apiVersion": V3, "kind": "HostEndpoint", "metadata": {"name": "a", "labels": {"role": "db"}},
         "spec": {"node": "a", "interfaceName": "*", "expectedIPs": ["192.0.2.1"]}}]


def render(tmp_path):
    comp = compiler.compile_documents(DOCS, nodes={"a": "a", "b": "b"})
    comp.fingerprint = "f" * 64
    result = compiler.run(comp, {}, {"output_dir": str(tmp_path), "matrix": False, "candidates": True})
    assert result["input_digest"] == "f" * 64
    return comp


def test_the_rollout_gets_what_the_compile_returned(tmp_path):
    comp = render(tmp_path)
    entries, problems, index = candidates.read(str(tmp_path), ["a", "b"], VERSION, return_content=True)
    assert problems == [] and index == {"collection_version": VERSION, "input_digest": "f" * 64, "hosts": 2}
    assert entries["a"]["ruleset"] == comp.ruleset("a") and entries["a"]["sha256"] == compiler.sha256(comp.ruleset("a"))
    assert entries["a"]["failsafe_proof"]["ok"] is True and entries["a"]["failsafe_inbound"]
    assert entries["b"] == {"has_ruleset": False, "file": "b.nft"}


def test_refusals(tmp_path):
    render(tmp_path)
    where = "hostfw_candidate_dir %s" % tmp_path
    assert candidates.read(str(tmp_path), ["a", "c", "d"], VERSION)[1] == [
        "%s has no candidate for c, d (it was rendered from an inventory without them): render the whole inventory "
        "into it again" % where]
    assert candidates.read(str(tmp_path), ["a"], OTHER)[1] == [
        "%s was rendered by hostfw.nftables %s, this rollout is %s: render it again with this version"
        % (where, VERSION, OTHER)]
    assert candidates.read(str(tmp_path), ["a"], VERSION, "e" * 64)[1] == [
        "%s holds the render of inputs ffffffffffff, not eeeeeeeeeeee (hostfw_candidate_digest): another render "
        "replaced it; render again and roll out that render" % where]
    (tmp_path / "a.nft").write_text((tmp_path / "a.nft").read_text().replace("hostfw", "hostfw ", 1))
    assert candidates.read(str(tmp_path), ["a"], VERSION)[1] == [
        "%s: a.nft was changed after the render (its sha256 is not the one in candidates.json): render again" % where]
    assert candidates.read(str(tmp_path / "nothing"), ["a"], VERSION)[1][0].startswith(
        "hostfw_candidate_dir %s: no readable candidates.json" % (tmp_path / "nothing"))
