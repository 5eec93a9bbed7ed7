"""The rollout role's install step refuses, with the reason, a host without nft whose package manager it
does not know.  (Installing with apt is proven by the molecule default scenario on Debian 11, 12 and 13,
where prepare purges nftables from one node; dnf is not available here, see docs/platforms.md.)

The host is Debian 11's tree with, in the overlay only: no nft, no apt, and an os-release of a
distribution Ansible does not know.
"""

import json
import os
import re

import yaml

from debian_target import ROOT, ansible_playbook

PLAYBOOK = os.path.join(ROOT, "tests", "platforms", "install-step.yml")

OS_RELEASE = 'NAME="Plan Nine"\nID=plannine\nVERSION_ID="4"\nPRETTY_NAME="Plan Nine 4"\n'


def run_install_step(target, tmp_path, extra=None):
    inventory = {"all": {"hosts": {"platform": {
        "ansible_connection": "community.general.chroot",
        "ansible_host": target.root,
        "ansible_python_interpreter": "/usr/bin/python3",
    }}}}
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
    (tmp_path / "os-release").write_text(OS_RELEASE)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".collections"),
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-local"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    env.pop("ANSIBLE_CONFIG", None)
    # change the tree (its overlay) first, then run the play, in the same mount namespace
    script = ('set -e; r="$1"; shift; rm -f "$r/usr/sbin/nft" "$r/usr/bin/apt-get" "$r/usr/bin/apt" '
              '"$r/etc/debian_version" "$r/etc/os-release" "$r/usr/lib/os-release"; cp "$0" "$r/etc/os-release"; '
              'exec "$@"')
    argv = ["/bin/sh", "-c", script, str(tmp_path / "os-release"), target.root, ansible_playbook(),
            "-i", str(tmp_path / "inventory.yml"), PLAYBOOK]
    if extra:
        argv[-1:-1] = ["-e", json.dumps(extra)]
    return target.run(argv, env=env)


def test_unknown_package_manager_is_refused(debian, tmp_path):
    with debian("bullseye") as target:
        proc = run_install_step(target, tmp_path)
    assert proc.returncode == 2, proc.stdout
    message = re.search(r'"msg": "(hostfw: nft is not installed on platform[^"]*)"', proc.stdout)
    assert message, proc.stdout
    assert message.group(1) == (
        "hostfw: nft is not installed on platform (Plan Nine 4, OS family Plan Nine) and its package manager "
        "'unknown' is not one the role installs from (apt, dnf, dnf5). Install nftables 0.9.3 or newer on the "
        "host, or set hostfw_install_packages to false.")
    assert "Install the packages with the host's package manager" not in proc.stdout.split("fatal:")[0]
