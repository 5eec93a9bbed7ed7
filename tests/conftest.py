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
