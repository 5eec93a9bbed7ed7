# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection can go into an AWX/AAP execution environment.

Builds the collection tarball (what users install), then:

* ``ansible-builder introspect`` on the extracted artifact finds meta/execution-environment.yml and
  reports the controller-side Python dependencies (jinja2, pyyaml, netaddr), never ansible itself;
* ``ansible-builder create`` on a version 3 EE definition that installs the tarball produces a
  complete build context (Containerfile, galaxy requirements naming the tarball, builder scripts).

No image is built: no container registry is reachable here, and the context is what we own.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _tool(name):
    """Find a console script next to the running interpreter first (the venv), then on PATH."""
    candidate = os.path.join(os.path.dirname(sys.executable), name)
    if os.access(candidate, os.X_OK):
        return candidate
    return shutil.which(name)


def _run(cmd, cwd):
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, "%s failed (%d):\n%s\n%s" % (" ".join(cmd), proc.returncode, proc.stdout, proc.stderr)
    return proc.stdout


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    galaxy = _tool("ansible-galaxy")
    if not galaxy:
        pytest.skip("ansible-galaxy not installed")
    out = tmp_path_factory.mktemp("dist")
    _run([galaxy, "collection", "build", "--output-path", str(out), ROOT], cwd=str(out))
    tarballs = sorted(out.glob("hostfw-nftables-*.tar.gz"))
    assert len(tarballs) == 1, tarballs
    return tarballs[0]


@pytest.fixture(scope="module")
def builder():
    tool = _tool("ansible-builder")
    if not tool:
        pytest.skip("ansible-builder not installed")
    return tool


def _requirement_names(lines):
    names = []
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(re.split(r"[\s<>=!~;\[]", line, maxsplit=1)[0].lower())
    return names


def test_ee_requirements_follow_certification_rules():
    with open(os.path.join(ROOT, "meta", "ee-requirements.txt"), encoding="utf-8") as f:
        lines = [ln.split("#", 1)[0].strip() for ln in f]
    reqs = [ln for ln in lines if ln]
    names = _requirement_names(reqs)
    assert {"jinja2", "pyyaml", "netaddr"} <= set(names)
    assert not {"ansible", "ansible-core", "ansible-base"} & set(names), "never list ansible in an EE"
    for req in reqs:
        assert not re.search(r"==|<|~=", req), "no pins or upper bounds in an EE requirement: %s" % req


def test_meta_files_ship_in_the_artifact(artifact):
    with tarfile.open(str(artifact)) as tar:
        members = set(tar.getnames())
    for path in ("meta/execution-environment.yml", "meta/ee-requirements.txt", "meta/ee-bindep.txt",
                 "meta/runtime.yml", "MANIFEST.json", "FILES.json"):
        assert path in members, "%s missing from %s" % (path, artifact.name)
    for junk in (".venv", ".collections", ".cache", "tests/output", ".ci"):
        assert not any(m == junk or m.startswith(junk + "/") for m in members), junk


def test_introspect_reports_controller_dependencies(artifact, builder, tmp_path):
    dest = tmp_path / "ansible_collections" / "hostfw" / "nftables"
    dest.mkdir(parents=True)
    with tarfile.open(str(artifact)) as tar:
        tar.extractall(str(dest))  # our own freshly built artifact
    with open(str(dest / "meta" / "execution-environment.yml"), encoding="utf-8") as f:
        meta = yaml.safe_load(f)
    assert meta["dependencies"] == {"python": "meta/ee-requirements.txt", "system": "meta/ee-bindep.txt"}
    # introspect drops what the image gets anyway (ansible-core brings pyyaml); the rest is attributed to us
    data = yaml.safe_load(_run([builder, "introspect", str(tmp_path)], cwd=str(tmp_path)))
    ours = [req for req in data["python"] if req.endswith("from collection hostfw.nftables")]
    assert {"jinja2", "netaddr"} <= set(_requirement_names(ours)), data
    assert data["system"] == [], data
    pip_out = tmp_path / "requirements.txt"
    _run([builder, "introspect", "--sanitize", "--write-pip", str(pip_out), str(tmp_path)], cwd=str(tmp_path))
    names = _requirement_names(pip_out.read_text().splitlines())
    assert "netaddr" in names, names
    assert "ansible-core" not in names and "ansible" not in names


def test_create_produces_a_build_context(artifact, builder, tmp_path):
    galaxy_reqs = {"collections": [{"name": "collections/%s" % artifact.name, "type": "file"}]}
    (tmp_path / "requirements.yml").write_text(yaml.safe_dump(galaxy_reqs))
    definition = {
        "version": 3,
        "images": {"base_image": {"name": "quay.io/fedora/python-311:latest"}},
        "dependencies": {
            "ansible_core": {"package_pip": "ansible-core>=2.18"},
            "ansible_runner": {"package_pip": "ansible-runner"},
            "galaxy": "requirements.yml",
        },
        "additional_build_files": [{"src": str(artifact), "dest": "collections"}],
        "options": {"tags": ["hostfw-nftables-ee:test"]},
    }
    ee_file = tmp_path / "execution-environment.yml"
    ee_file.write_text(yaml.safe_dump(definition, sort_keys=False))
    context = tmp_path / "context"
    _run([builder, "create", "-f", str(ee_file), "-c", str(context), "--output-filename", "Containerfile"],
         cwd=str(tmp_path))

    containerfile = (context / "Containerfile").read_text()
    assert 'ARG EE_BASE_IMAGE="quay.io/fedora/python-311:latest"' in containerfile
    assert "FROM $EE_BASE_IMAGE AS base" in containerfile
    assert "ansible-galaxy collection install" in containerfile
    # the builder stage runs introspection, which is where meta/ee-requirements.txt is read
    assert "introspect" in containerfile

    build = context / "_build"
    reqs = yaml.safe_load((build / "requirements.yml").read_text())
    assert reqs["collections"][0]["name"].endswith(artifact.name)
    assert (build / "collections" / artifact.name).is_file()
    assert (build / "scripts" / "introspect.py").is_file()
    assert (build / "scripts" / "assemble").is_file()
