"""Check that every plugin and role of an INSTALLED hostfw.nftables has documentation ansible-doc can render.

    check-plugin-docs.py <installed collection dir>

Run it with ANSIBLE_COLLECTIONS_PATH pointing at the install location only and from a directory
outside the checkout, so the installed copy (what users get from the tarball) is what is checked.

For every plugin type, the plugins are the union of what `ansible-doc -t TYPE --list hostfw.nftables`
reports and the plugin files in plugins/<type>/ (for types whose file name is the plugin name).
Each one must render with `ansible-doc --json` and have a non-empty doc.  Roles with
meta/argument_specs.yml are checked with `ansible-doc -t role`.  Collection playbooks get
`ansible-playbook --syntax-check`.  `hostfw.nftables.selector_match` (filter) must exist.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

COLLECTION = "hostfw.nftables"
REQUIRED = [("filter", "selector_match")]

# plugin type -> directory under plugins/; for these, one file is one plugin named after the file
FILE_NAMED = {
    "module": "modules",
    "lookup": "lookup",
    "inventory": "inventory",
    "callback": "callback",
    "connection": "connection",
    "become": "become",
    "cache": "cache",
    "vars": "vars",
    "strategy": "strategy",
    "shell": "shell",
    "cliconf": "cliconf",
    "httpapi": "httpapi",
    "netconf": "netconf",
}
# filter and test files may hold several plugins; their names come from --list (and sidecar .yml docs)
MULTI = {"filter": "filter", "test": "test"}


def run(cmd):
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    return proc.returncode, proc.stdout, proc.stderr


def listed(ptype):
    rc, out, err = run(["ansible-doc", "-t", ptype, "--list", "--json", COLLECTION])
    if rc != 0:
        print("ansible-doc --list -t %s failed:\n%s" % (ptype, err), file=sys.stderr)
        return set()
    try:
        data = json.loads(out or "{}")
    except ValueError:
        return set()
    return {name.split(".")[-1] for name in data if name.startswith(COLLECTION + ".")}


def files_named(inst, subdir, exts=(".py",)):
    path = os.path.join(inst, "plugins", subdir)
    names = set()
    if os.path.isdir(path):
        for fname in os.listdir(path):
            base, ext = os.path.splitext(fname)
            if ext in exts and not base.startswith("_") and base != "__init__":
                names.add(base)
    return names


def check_doc(ptype, name):
    fqcn = "%s.%s" % (COLLECTION, name)
    rc, out, err = run(["ansible-doc", "-t", ptype, "--json", fqcn])
    problem = None
    if rc != 0:
        problem = "ansible-doc exited %d" % rc
    else:
        try:
            data = json.loads(out or "{}")
        except ValueError:
            data = {}
        entry = data.get(fqcn) or {}
        if ptype == "role":
            main = (entry.get("entry_points") or {}).get("main") or {}
            if not main:
                problem = "no main entry point in meta/argument_specs.yml"
            elif not main.get("short_description"):
                problem = "entry point main has no short_description"
        else:
            doc = entry.get("doc") or {}
            if not doc:
                problem = "no documentation"
            elif not doc.get("short_description"):
                problem = "documentation has no short_description"
    label = "%-9s %s" % (ptype, fqcn)
    if problem:
        print("FAIL %s: %s\n%s" % (label, problem, (err or out[:2000]).strip()[-2000:]))
        return False
    print("ok   %s" % label)
    return True


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    inst = os.path.abspath(sys.argv[1])
    ok = True
    checked = 0

    wanted = {}
    for ptype, subdir in FILE_NAMED.items():
        names = listed(ptype) | files_named(inst, subdir)
        if ptype == "module":
            # a module may be documented only in a sidecar; action plugins document their module
            names |= files_named(inst, "action") & files_named(inst, "modules", (".py", ".yml", ".yaml"))
        wanted[ptype] = names
    for ptype, subdir in MULTI.items():
        wanted[ptype] = listed(ptype)
        # one plugin per file is the collection's convention: a file with no plugin of its name is
        # reported (sidecar .yml docs are named after the plugin)
        wanted[ptype] |= files_named(inst, subdir, (".yml", ".yaml"))

    for ptype, name in REQUIRED:
        if name not in wanted.get(ptype, set()):
            print("FAIL %-9s %s.%s: required plugin not found in the installed collection" % (ptype, COLLECTION, name))
            wanted.setdefault(ptype, set()).add(name)  # still run ansible-doc so the error shows

    for ptype in sorted(wanted):
        for name in sorted(wanted[ptype]):
            ok &= check_doc(ptype, name)
            checked += 1

    roles_dir = os.path.join(inst, "roles")
    if os.path.isdir(roles_dir):
        for role in sorted(os.listdir(roles_dir)):
            meta = os.path.join(roles_dir, role, "meta")
            if any(os.path.exists(os.path.join(meta, f)) for f in ("argument_specs.yml", "argument_specs.yaml")):
                ok &= check_doc("role", role)
            else:
                print("FAIL role      %s.%s: no meta/argument_specs.yml" % (COLLECTION, role))
                ok = False
            checked += 1

    pb_dir = os.path.join(inst, "playbooks")
    if os.path.isdir(pb_dir):
        for fname in sorted(os.listdir(pb_dir)):
            base, ext = os.path.splitext(fname)
            if ext not in (".yml", ".yaml"):
                continue
            fqcn = "%s.%s" % (COLLECTION, base)
            rc, out, err = run(["ansible-playbook", "-i", "localhost,", "--syntax-check", fqcn])
            checked += 1
            if rc != 0:
                print("FAIL playbook  %s: syntax check failed\n%s" % (fqcn, (err or out).strip()[-2000:]))
                ok = False
            else:
                print("ok   playbook  %s (syntax)" % fqcn)

    print("%d checked, %s" % (checked, "all ok" if ok else "FAILURES above"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
