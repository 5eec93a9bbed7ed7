# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The render playbook as users run it: ansible-playbook -i INV hostfw.nftables.render."""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO = os.path.join(ROOT, "examples", "two-node-cluster")
PLAYBOOK_BIN = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")

pytestmark = pytest.mark.skipif(not os.path.exists(PLAYBOOK_BIN), reason="ansible-playbook is not installed")


def render(inventory, out, *extra):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".collections"), ANSIBLE_NOCOLOR="1",
               HOSTFW_CACHE_DIR=os.path.join(os.path.dirname(str(out)), "hostfw-cache"))
    return subprocess.run([PLAYBOOK_BIN, "-i", inventory, "hostfw.nftables.render", "-e", "hostfw_output_dir=%s" % out]
                          + list(extra), capture_output=True, text=True, env=env, check=False)


def test_limit_sees_the_same_policy_world(tmp_path):
    full = render(os.path.join(DEMO, "inventory.yml"), tmp_path / "full")
    assert full.returncode == 0, full.stdout + full.stderr
    limited = render(os.path.join(DEMO, "inventory.yml"), tmp_path / "limited", "--limit", "policy-llm-worker")
    assert limited.returncode == 0, limited.stdout + limited.stderr
    for name in ("policy-llm-worker.nft", "policy-llm-control-plane.nft", "matrix.json", "matrix.md"):
        assert filecmp.cmp(tmp_path / "full" / name, tmp_path / "limited" / name, shallow=False), name


def test_second_render_changes_nothing_and_check_mode_writes_nothing(tmp_path):
    first = render(os.path.join(DEMO, "inventory.yml"), tmp_path / "out")
    assert first.returncode == 0 and "changed=1" in first.stdout, first.stdout
    second = render(os.path.join(DEMO, "inventory.yml"), tmp_path / "out")
    assert second.returncode == 0 and "changed=0" in second.stdout, second.stdout
    checked = render(os.path.join(DEMO, "inventory.yml"), tmp_path / "never", "--check", "--diff")
    assert checked.returncode == 0, checked.stdout
    assert not (tmp_path / "never").exists()
    assert "+table inet hostfw" in checked.stdout  # the diff shows what would be written


def test_bad_input_fails_with_one_line_per_problem_and_writes_nothing(tmp_path):
    inv = tmp_path / "inv"
    shutil.copytree(DEMO, inv)
    path = inv / "manifests" / "20-host-firewall.yaml"
    text = path.read_text().replace("- action: Allow\n      source:", "- action: allow\n      protocol: tcp\n      source:", 1)
    path.write_text(text)
    proc = render(str(inv / "inventory.yml"), tmp_path / "out")
    assert proc.returncode != 0
    assert "2 problems in the hostfw input:" in proc.stdout
    assert ("GlobalNetworkPolicy node-host-firewall: spec.ingress[0].action: 'allow' is not an action (use Allow)"
            in proc.stdout), proc.stdout
    assert "GlobalNetworkPolicy node-host-firewall: spec.ingress[0].protocol: 'tcp' is not a protocol" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not (tmp_path / "out").exists()


LOCKOUT = """---
apiVersion: projectcalico.org/v3
kind: FelixConfiguration
metadata:
  name: default
spec:
  failsafeInboundHostPorts: []
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: cut-ssh
spec:
  tier: host-firewall
  order: 1
  selector: role == 'node'
  ingress:
    - action: Deny
      protocol: TCP
      destination:
        ports: [22]
"""


def test_lockout_is_refused_unless_verification_is_off(tmp_path):
    """Closing SSH (failsafes removed) is refused by the protected-port proof; with management-access
    verification explicitly off (and no hostfw_protected_ports), the operator takes the risk."""
    inv = tmp_path / "inv"
    shutil.copytree(DEMO, inv)
    (inv / "manifests" / "40-lockout.yaml").write_text(LOCKOUT)
    refused = render(str(inv / "inventory.yml"), tmp_path / "a")
    assert refused.returncode != 0
    assert "hostfw: refusing, a failsafe proof failed" in refused.stdout
    # one line per host and cause, with the deciding rule and the fix
    assert ("host policy-llm-worker: protected inbound port tcp:22 (IPv4) closed for every source on all interfaces "
            "(*) by tier host-firewall policy cut-ssh ingress rule 0 (Deny); fix: allow it in a policy (a failsafe net "
            "or an Allow from your management network is enough), restore the failsafe in the FelixConfiguration, or "
            "remove it from hostfw_protected_ports") in refused.stdout
    # the lint reports the lockout too (HF003, an error): the operator who takes the risk says so twice
    linted = render(str(inv / "inventory.yml"), tmp_path / "b0", "-e", "hostfw_verify_management_access=false")
    assert linted.returncode != 0 and "HF003 error FelixConfiguration default: spec.failsafeInboundHostPorts: tcp:22 " \
        "is not a failsafe port and no policy allows it" in linted.stdout
    allowed = render(str(inv / "inventory.yml"), tmp_path / "b", "-e", "hostfw_verify_management_access=false",
                     "-e", "hostfw_lint_fail_on=never")
    assert allowed.returncode == 0, allowed.stdout
    kept = render(str(inv / "inventory.yml"), tmp_path / "c", "-e", "hostfw_verify_management_access=false",
                  "-e", '{"hostfw_protected_ports": {"inbound": ["tcp:22"]}}', "-e", "hostfw_lint_fail_on=never")
    assert kept.returncode != 0 and "protected inbound port tcp:22" in kept.stdout


TEMPLATED_INVENTORY = """\
all:
  vars:
    cluster_role: node
    base_policies:
      - apiVersion: projectcalico.org/v3
        kind: GlobalNetworkPolicy
        metadata: {name: allow-ssh}
        spec:
          selector: "role == '{{ cluster_role }}'"
          ingress: [{action: Allow, protocol: TCP, destination: {ports: [22]}}]
    hostfw_resources: "{{ base_policies }}"
    hostfw_auto_host_endpoint: true
    hostfw_labels: {role: "{{ cluster_role }}", name: "{{ inventory_hostname }}"}
  hosts:
    n1: {ansible_host: 10.0.0.1, hostfw_node_name: "{{ inventory_hostname }}", hostfw_host_ips: ["10.0.0.1"]}
    n2: {ansible_host: 10.0.0.2, hostfw_node_name: "{{ inventory_hostname }}", hostfw_host_ips: ["10.0.0.2"]}
"""

LITERAL_INVENTORY = """\
all:
  vars:
    hostfw_resources:
      - apiVersion: projectcalico.org/v3
        kind: GlobalNetworkPolicy
        metadata: {name: allow-ssh}
        spec:
          selector: "role == 'node'"
          ingress: [{action: Allow, protocol: TCP, destination: {ports: [22]}}]
    hostfw_auto_host_endpoint: true
  hosts:
    n1: {ansible_host: 10.0.0.1, hostfw_host_ips: ["10.0.0.1"], hostfw_labels: {role: node, name: n1}}
    n2: {ansible_host: 10.0.0.2, hostfw_host_ips: ["10.0.0.2"], hostfw_labels: {role: node, name: n2}}
"""


def test_templated_variables_render_like_literal_ones(tmp_path):
    """hostfw variables are read un-templated when they hold no template (fast for big shared
    lists); values that do hold one (a whole list, a label, the node name) are templated per host."""
    outs = {}
    for name, text in (("templated", TEMPLATED_INVENTORY), ("literal", LITERAL_INVENTORY)):
        inv = tmp_path / ("%s.yml" % name)
        inv.write_text(text)
        proc = render(str(inv), tmp_path / name)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        outs[name] = tmp_path / name
    for name in ("n1.nft", "n2.nft", "matrix.json"):
        assert filecmp.cmp(outs["templated"] / name, outs["literal"] / name, shallow=False), name
    assert "normal ingress: default/allow-ssh" in (outs["templated"] / "n1.nft").read_text()  # selected by the templated label
