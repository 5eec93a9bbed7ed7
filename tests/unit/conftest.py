# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Hypothesis profiles for the unit tests.

* ``dev`` (default): hypothesis defaults (100 examples) without a deadline.
* ``ci`` (selected when CI=true): more examples, no deadline (CI machines have 2 busy cores and
  timing-based flakiness is not a bug), derandomized so a failure reproduces on the next run, and
  no example database written into the checkout.
* ``quick``: 20 examples, for a fast local loop.

``HYPOTHESIS_PROFILE=<name>`` overrides the choice.
"""

from __future__ import annotations

import os

try:
    from hypothesis import HealthCheck, settings
except ImportError:  # hypothesis is a test requirement; tests that need it import it themselves
    settings = None

if settings is not None:
    settings.register_profile("dev", deadline=None)
    settings.register_profile(
        "ci",
        max_examples=300,
        deadline=None,
        derandomize=True,
        database=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow],
    )
    settings.register_profile("quick", max_examples=20, deadline=None)
    _ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if _ci else "dev"))


def pytest_configure(config):
    """Register the markers here too: ``ansible-test units`` runs pytest with its own ini file."""
    config.addinivalue_line("markers", "dataplane: needs root, nft and network namespaces")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")
