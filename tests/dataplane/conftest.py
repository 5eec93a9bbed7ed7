"""Fixtures for the dataplane tests: real packets through real nftables in network namespaces.

These tests need root, ``ip`` (iproute2) and ``nft`` (nftables), and the right to create network
namespaces.  Where that is missing they are skipped with the reason, except under ``CI=true``, where a
missing requirement is a failure: CI must never go green by skipping the dataplane.
"""

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
# the network lab (tools/netlab/, shared with scripts/prove-matrix.py) and tests/worlds.py
for _path in (os.path.join(HERE, "..", "..", "tools", "netlab"), os.path.join(HERE, "..")):
    _path = os.path.abspath(_path)
    if _path not in sys.path:  # `import netlab` also works under --import-mode=importlib
        sys.path.insert(0, _path)

import netlab  # noqa: E402  pylint: disable=wrong-import-position


def in_ci() -> bool:
    """CI=true (or 1), as scripts/test.sh reads it."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1")


def _unavailable_reason():
    reasons = netlab.missing_requirements()
    if reasons:
        return "; ".join(reasons)
    try:  # root is not always enough (e.g. an unprivileged container): try one namespace
        with netlab.Lab():
            pass
    except Exception as exc:  # pylint: disable=broad-except
        return "cannot create network namespaces: %s" % exc
    return None


@pytest.fixture(scope="session")
def netlab_available():
    """Skip (or, with CI=true, fail) when the lab cannot run here."""
    reason = _unavailable_reason()
    if reason:
        message = "dataplane lab unavailable: %s" % reason
        if in_ci():
            pytest.fail(message + " (CI=true: the dataplane tests must run, not skip)", pytrace=False)
        pytest.skip(message)
    return True


@pytest.fixture(autouse=True)
def _require_netlab(netlab_available):  # pylint: disable=unused-argument,redefined-outer-name
    """Every test in tests/dataplane needs the lab."""


@pytest.fixture
def lab(netlab_available):  # pylint: disable=unused-argument,redefined-outer-name
    """A fresh, empty Lab, torn down after the test (namespaces deleted, agents killed)."""
    with netlab.Lab() as the_lab:
        yield the_lab
