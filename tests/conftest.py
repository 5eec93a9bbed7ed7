"""Make the checkout importable as ``ansible_collections.hostfw.nftables``.

The checkout *is* the collection.  Python (and Ansible) import it through a namespace path, so
the tests point ``sys.path`` at ``.collections/`` where ``ansible_collections/hostfw/nftables``
is a symlink to the checkout (created here when missing; the Makefile creates it too).
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(ROOT, ".collections")
LINK = os.path.join(COLLECTIONS, "ansible_collections", "hostfw", "nftables")

if not os.path.exists(LINK):
    os.makedirs(os.path.dirname(LINK), exist_ok=True)
    os.symlink(ROOT, LINK)
if COLLECTIONS not in sys.path:
    sys.path.insert(0, COLLECTIONS)


# -- the machine the tests run on is never a target ------------------------------------------------
# Tests roll out to network namespaces and containers only. The files a persist on this machine
# would write (the module's default persist_path and unit_path) must look the same after the run
# as before it: a test that persists here (e.g. a rollout with ansible_connection local and the
# default hostfw_persist) fails the session instead of leaving hostfw.service enabled on the CI
# machine.
MACHINE_PATHS = ("/etc/hostfw", "/etc/hostfw/hostfw.nft", "/etc/systemd/system/hostfw.service",
                 "/etc/systemd/system/sysinit.target.wants/hostfw.service")


def _machine_state():
    out = {}
    for path in MACHINE_PATHS:
        try:
            st = os.lstat(path)
            out[path] = (st.st_mode, st.st_size, st.st_mtime_ns)
        except OSError:
            out[path] = None
    return out


def pytest_sessionstart(session):
    session.config.hostfw_machine_state = _machine_state()


def pytest_sessionfinish(session, exitstatus):
    before = getattr(session.config, "hostfw_machine_state", None)
    if before is None:
        return
    after = _machine_state()
    changed = [p for p in MACHINE_PATHS if before[p] != after[p]]
    if changed:
        sys.stderr.write("\nERROR: the tests changed this machine's own hostfw files: %s (a test persisted "
                         "outside its namespace or container)\n" % ", ".join(changed))
        session.exitstatus = 1
