"""Helpers shared by the testinfra suites of all scenarios (copied next to each suite by molecule)."""

import os
import subprocess

import testinfra
from testinfra.utils.ansible_runner import AnsibleRunner

INVENTORY = os.environ.get("MOLECULE_INVENTORY_FILE", "")
PROJECT = os.environ.get("MOLECULE_PROJECT_DIRECTORY", os.getcwd())
SCENARIO_DIR = os.environ.get("MOLECULE_SCENARIO_DIRECTORY", "")
EPHEMERAL = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "")


def runner():
    return AnsibleRunner(INVENTORY)


def hosts(group="all"):
    return runner().get_hosts(group)


def get(name):
    return testinfra.get_host("ansible://%s?ansible_inventory=%s" % (name, INVENTORY))


def address(name):
    return runner().get_variables(name)["ansible_host"]


def tcp_ok(from_host, ip, port, timeout=2):
    """Open a NEW TCP connection from a container (crosses both hosts' netfilter)."""
    cmd = ("python3 -c 'import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), %d).close()' "
           "%s %d" % (timeout, ip, port))
    return from_host.run(cmd).rc == 0


def listing(host, table="inet hostfw"):
    result = host.run("nft -s list table %s" % table)
    return result.stdout if result.rc == 0 else None


def ansible_playbook(*args, **kwargs):
    """Run ansible-playbook against the scenario's inventory with molecule's environment."""
    env = dict(os.environ)
    env.pop("ANSIBLE_FORCE_COLOR", None)
    env["ANSIBLE_NOCOLOR"] = "1"
    env.update(kwargs.pop("env", {}))
    cmd = ["ansible-playbook", "-i", INVENTORY] + list(args)
    return subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, check=False, **kwargs)


def task_results(output, task_name):
    """[(host, status)] of every run of the task named ``task_name`` in ansible-playbook output
    (default callback): the lines "ok: [host]", "changed: [host]", "skipping: [host]", ... that
    follow each "TASK [... : task_name]" header."""
    found = []
    for section in output.split("\nTASK [")[1:]:
        header, _sep, body = section.partition("\n")
        if not header.split("]")[0].endswith(task_name):
            continue
        for line in body.splitlines():
            if line.startswith(("PLAY ", "TASK [", "RUNNING HANDLER")):
                break
            head = line.split(": [", 1)
            if len(head) == 2 and head[0] in ("ok", "changed", "skipping", "fatal", "failed"):
                found.append((head[1].split("]", 1)[0], head[0]))
    return found
