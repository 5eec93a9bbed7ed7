# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Headless Chromium for hostfw's pages: a screenshot of an HTML file, and the driver the browser tests use.

    python -m tools.browser.screenshot OUT/matrix.html OUT/matrix.png [--width 1400] [--height 900]
    python tools/browser/screenshot.py OUT/matrix.html OUT/matrix.png

Uses Debian's ``chromium`` and ``chromium-driver`` (``/usr/bin/chromium``, ``/usr/bin/chromedriver``;
``HOSTFW_CHROMIUM`` / ``HOSTFW_CHROMEDRIVER`` override) through selenium, with a fresh profile and the
flags that keep Chromium off the network (no background networking, no component updates).  Both
paths are given to selenium, so its Selenium Manager never runs (it would try to download a driver).
Exit status: 0 written, 3 browser or selenium missing (the reason is printed), 2 usage.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
from typing import Iterator, List, Optional, Tuple

CHROME_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic",
                "--disable-extensions", "--disable-default-apps", "--disable-dev-shm-usage",
                "--hide-scrollbars", "--force-color-profile=srgb", "--force-device-scale-factor=1")


def _binary(env: str, names: Tuple[str, ...]) -> Optional[str]:
    path = os.environ.get(env)
    if path:
        return path if os.access(path, os.X_OK) else None
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return None


def find_browser() -> Tuple[Optional[str], Optional[str], List[str]]:
    """(chromium, chromedriver, problems): problems is empty when a page can be driven here."""
    problems = []
    chromium = _binary("HOSTFW_CHROMIUM", ("chromium", "chromium-browser"))
    driver = _binary("HOSTFW_CHROMEDRIVER", ("chromedriver",))
    if chromium is None:
        problems.append("chromium is not installed (apt-get install chromium)")
    if driver is None:
        problems.append("chromedriver is not installed (apt-get install chromium-driver)")
    try:
        import selenium  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
    except ImportError:
        problems.append("selenium is not installed (pip install -r requirements-test.txt)")
    return chromium, driver, problems


@contextlib.contextmanager
def chromium_driver(width: int = 1400, height: int = 900, log_network: bool = False) -> Iterator:
    """A selenium WebDriver on a new headless Chromium with an empty profile, quit (and the profile removed) on exit.

    ``log_network`` turns on Chrome's performance log (``driver.get_log("performance")`` then holds
    every ``Network.requestWillBeSent``), so a test can prove that a page asked for nothing.
    """
    chromium, driver_path, problems = find_browser()
    if problems:
        raise RuntimeError("; ".join(problems))
    # pylint: disable=import-outside-toplevel
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="hostfw-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.add_argument("--window-size=%d,%d" % (width, height))
    options.add_argument("--user-data-dir=%s" % profile)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL" if log_network else "OFF"})
    driver = None
    try:
        driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
        # --window-size is the window, not the page: pin the viewport so that screenshots are width x height
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        yield driver
    finally:
        if driver is not None:
            driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_ready(driver, timeout: float = 60.0) -> None:
    """Wait until a hostfw page has drawn itself (it sets ``data-ready`` on ``<html>``)."""
    deadline = time.monotonic() + timeout
    while driver.execute_script("return document.documentElement.getAttribute('data-ready')") != "1":
        if time.monotonic() > deadline:
            raise TimeoutError("the page did not draw itself within %.0f s" % timeout)
        time.sleep(0.05)


def screenshot(html_path: str, png_path: str, width: int = 1400, height: int = 900) -> str:
    """Open ``html_path`` (a file) in headless Chromium and save what it shows as ``png_path``; returns png_path."""
    url = "file://" + os.path.abspath(html_path)
    with chromium_driver(width, height) as driver:
        driver.get(url)
        wait_ready(driver)
        os.makedirs(os.path.dirname(os.path.abspath(png_path)), exist_ok=True)
        if not driver.save_screenshot(png_path):
            raise RuntimeError("chromium wrote no screenshot to %s" % png_path)
    return png_path


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.browser.screenshot", description=__doc__.splitlines()[0])
    parser.add_argument("html")
    parser.add_argument("png")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=900)
    args = parser.parse_args(argv)
    problems = find_browser()[2]
    if problems:
        print("cannot take a screenshot here: %s" % "; ".join(problems), file=sys.stderr)
        return 3
    screenshot(args.html, args.png, args.width, args.height)
    print("wrote %s" % args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
