"""Fixtures for the platform tests: the real module with a Debian release's own nft and python3.

Each test runs in a network namespace of its own, with the release's root file system (built once by
``scripts/build-image.sh --rootfs SUITE`` and cached under .cache/rootfs/) seen through an overlay in a
private mount namespace: the cached tree is never written to, nothing is left mounted, and the host's
ruleset is never touched.  The tests need root, ``ip``, ``unshare``, ``chroot``, debootstrap (for the
first build) and overlayfs; without them they are skipped with the reason, except under ``CI=true``,
where that is a failure.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from debian_target import Target, in_ci, missing_requirements, rootfs  # noqa: E402  pylint: disable=wrong-import-position


@pytest.fixture(scope="session")
def platforms_available():
    reasons = missing_requirements()
    if reasons:
        message = "platform tests unavailable: %s" % "; ".join(reasons)
        if in_ci():
            pytest.fail(message + " (CI=true: the platform tests must run, not skip)", pytrace=False)
        pytest.skip(message)
    return True


@pytest.fixture
def debian(platforms_available):  # pylint: disable=unused-argument,redefined-outer-name
    """``debian(suite)`` -> a Target context manager for that release."""
    return lambda suite: Target(suite, rootfs(suite))
