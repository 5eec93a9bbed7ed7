# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""matrix.html: the canonical JSON text, the page's text, and the page in a real headless Chromium.

The browser tests load the page from disk (file://) in Debian's chromium, driven by selenium
through Debian's chromedriver (tools/browser/screenshot.py), and read back what a person sees:
cell texts, computed colours, the side panel, filters, views.  They skip when chromium,
chromedriver or selenium is missing, and fail instead under CI=true.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import time

import pytest

from ansible_collections.hostfw.nftables.plugins.plugin_utils import matrix_html
from ansible_collections.hostfw.nftables.plugins.plugin_utils.matrix_html import COLOURS, WILL_CHANGE, json_text, render
from ansible_collections.hostfw.nftables.tools.browser import screenshot as browser

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "html")
DEMO = os.path.join(ROOT, "examples", "two-node-cluster")
OUTPUT = os.path.join(ROOT, "tests", "output")
PLAYBOOK_BIN = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
IN_CI = os.environ.get("CI", "").lower() == "true"
MATRIX_OPEN = '<script type="application/json" id="hostfw-matrix">'
DIFF_OPEN = '<script type="application/json" id="hostfw-diff">'


def fixture(name):
    with open(os.path.join(FIXTURES, name), encoding="utf-8") as f:
        return json.load(f)


def rgb(hex_colour):
    h = hex_colour.lstrip("#")
    return "rgb(%d, %d, %d)" % (int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16))


def vtext(verdict):
    return "allow" if verdict == "allow" else "DENY"


def probe_label(protocol, port):
    return protocol if port is None else "%s/%s" % (protocol, port)


def write_page(tmp_path, matrix, diff=None, name="matrix"):
    """matrix.json (and matrix-diff.json) as the compiler writes them, and matrix.html built from their text."""
    mpath = tmp_path / ("%s.json" % name)
    mpath.write_text(json_text(matrix), encoding="utf-8")
    dtext = None
    if diff is not None:
        dpath = tmp_path / ("%s-diff.json" % name)
        dpath.write_text(json_text(diff), encoding="utf-8")
        dtext = dpath.read_text(encoding="utf-8")
    page = tmp_path / ("%s.html" % name)
    page.write_text(render(mpath.read_text(encoding="utf-8"), dtext), encoding="utf-8")
    return page


@pytest.fixture(scope="module")
def two_node(tmp_path_factory):
    """The two-node example's matrix.json, written by the render playbook."""
    if not os.path.exists(PLAYBOOK_BIN):
        if IN_CI:
            pytest.fail("ansible-playbook is not installed")
        pytest.skip("ansible-playbook is not installed")
    out = tmp_path_factory.mktemp("render")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".collections"), ANSIBLE_NOCOLOR="1",
               HOSTFW_CACHE_DIR=str(out / "cache"))
    proc = subprocess.run([PLAYBOOK_BIN, "-i", os.path.join(DEMO, "inventory.yml"), "hostfw.nftables.render",
                           "-e", "hostfw_output_dir=%s" % (out / "out")], capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out / "out" / "matrix.json"


# -- the canonical JSON text and the page's text (no browser) ---------------------------------------------------


def test_json_text_escapes_html_characters_and_keeps_the_data():
    data = {"b": "</script><img src=x onerror=alert(1)> & \u2028\u2029", "a": [1, None, "\u00e9"]}
    text = json_text(data)
    assert text == ('{\n  "a": [\n    1,\n    null,\n    "\\u00e9"\n  ],\n'
                    '  "b": "\\u003c/script\\u003e\\u003cimg src=x onerror=alert(1)\\u003e \\u0026 \\u2028\\u2029"\n}\n')
    assert json.loads(text) == data
    assert not set("<>&\u2028\u2029") & set(text)


def test_json_text_is_what_the_compiler_writes_for_plain_data(two_node):
    """For data with no <, >, & the canonical text is the compiler's json.dumps(indent=2, sort_keys=True) + newline."""
    text = two_node.read_text(encoding="utf-8")
    assert json_text(json.loads(text)) == text


def test_page_embeds_the_files_bytes_and_is_deterministic(tmp_path):
    matrix, diff = fixture("matrix-pending.json"), fixture("matrix-diff.json")
    page = write_page(tmp_path, matrix, diff)
    raw = page.read_bytes()
    for opening, path in ((MATRIX_OPEN, "matrix.json"), (DIFF_OPEN, "matrix-diff.json")):
        start = raw.index(opening.encode()) + len(opening)
        end = raw.index(b"</script>", start)
        assert raw[start:end] == (tmp_path / path).read_bytes()
    again = render(json_text(matrix), json_text(diff))
    assert again.encode("utf-8") == raw
    assert render(json_text(matrix)) != again and DIFF_OPEN not in render(json_text(matrix))


def test_page_is_self_contained_and_pinned_by_its_csp(tmp_path):
    text = render(json_text(fixture("matrix-pending.json")), json_text(fixture("matrix-diff.json")))
    assert not re.search(r"\bhttps?:", text, re.I)
    code = re.sub(r'(<script type="application/json" id="[a-z-]+">).*?(</script>)', r"\1\2", text, flags=re.S)
    assert len(code) < 40000 and not re.search(r"\b[a-z][a-z0-9+.-]*://", code, re.I), "the page names a network location"
    for fetcher in ("url(", "@import", " src=", "href=", "<link", "<img", "<iframe", "<object", "<embed", "fetch(", "XMLHttpRequest",
                    "WebSocket", "EventSource", "sendBeacon", "import(", "Worker(", "@font-face", ".src", ".href"):
        assert fetcher not in code, fetcher
    assert "innerHTML" not in text and "outerHTML" not in text and "insertAdjacentHTML" not in text
    assert "document.write" not in text and "eval(" not in text
    csp = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', text).group(1)
    scripts = re.findall(r"<script>(.*?)</script>", text, re.S)
    styles = re.findall(r"<style>(.*?)</style>", text, re.S)
    assert len(scripts) == 1 and len(styles) == 1

    def sha(s):
        return "'sha256-%s'" % base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()
    assert csp == ("default-src 'none'; script-src %s; style-src %s; img-src 'none'; base-uri 'none'; form-action 'none'"
                   % (sha(scripts[0]), sha(styles[0])))
    assert text.index("Content-Security-Policy") < text.index("<style>") < text.index("<script")


def test_render_refuses_text_that_is_not_canonical():
    data = fixture("matrix-xss.json")
    with pytest.raises(ValueError, match=r"^matrix text is not in canonical form: write it with matrix_html.json_text\(\)$"):
        render(json.dumps(data, indent=2, sort_keys=True) + "\n")  # the raw </script> would break out
    with pytest.raises(ValueError, match=r"^matrix text is not in canonical form"):
        render(json.dumps(fixture("matrix-pending.json")))
    with pytest.raises(ValueError, match=r"^matrix text has no list 'cells'$"):
        render(json_text({"probes": []}))
    with pytest.raises(ValueError, match=r"^diff text has no list 'changes'$"):
        render(json_text({"probes": [], "cells": []}), json_text({"old": "a"}))
    with pytest.raises(ValueError, match=r"^matrix text is not JSON: "):
        render("{")


def test_title_is_escaped():
    text = render(json_text({"probes": [], "cells": []}), title='a <b> & "c"')
    assert "<title>a &lt;b&gt; &amp; &quot;c&quot;</title>" in text
    assert '<h1 id="title">a &lt;b&gt; &amp; &quot;c&quot;</h1>' in text
    assert "<b>" not in text


def test_xss_fixture_cannot_break_out_of_its_script_element(tmp_path):
    text = write_page(tmp_path, fixture("matrix-xss.json"), fixture("matrix-diff-xss.json")).read_text(encoding="utf-8")
    assert text.count("<script") == 3 and text.count("</script>") == 3
    assert "<img" not in text and "<iframe" not in text and "<svg" not in text
    assert "\\u003c/script\\u003e\\u003cimg src=x onerror=" in text


# -- in a real browser -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def driver():
    problems = browser.find_browser()[2]
    if problems:
        if IN_CI:
            pytest.fail("the browser tests cannot run under CI: %s" % "; ".join(problems))
        pytest.skip("no headless browser here: %s" % "; ".join(problems))
    with browser.chromium_driver(1400, 900, log_network=True) as drv:
        yield drv


def load(drv, page):
    drv.get("file://%s" % page)
    browser.wait_ready(drv)
    drv.get_log("performance")  # later tests read only their own requests


def js(drv, script, *args):
    return drv.execute_script(script, *args)


CELLS_JS = """
return Array.from(document.querySelectorAll('#grid td.cell')).map(function (td) {
  var cs = getComputedStyle(td);
  return {src: td.dataset.src, dst: td.dataset.dst, probe: td.dataset.probe, text: td.textContent, cls: td.className,
          bg: cs.backgroundColor, shadow: cs.boxShadow, title: td.title};
});
"""


def shown_cells(drv):
    return {(c["src"], c["dst"], c["probe"]): c for c in js(drv, CELLS_JS)}


def matching_cells(drv):
    """The cells that show a verdict: not hidden by the verdict filter, not empty."""
    return {k: c for k, c in shown_cells(drv).items() if not {"filtered", "none"} & set(c["cls"].split())}


def click_cell(drv, src, dst, probe):
    from selenium.webdriver.common.by import By  # pylint: disable=import-outside-toplevel
    found = [e for e in drv.find_elements(By.CSS_SELECTOR, "#grid td.cell")
             if (e.get_attribute("data-src"), e.get_attribute("data-dst"), e.get_attribute("data-probe")) == (src, dst, probe)]
    assert len(found) == 1, (src, dst, probe)
    found[0].click()


def panel(drv):
    return js(drv, """
      var p = document.getElementById('panel');
      var dts = Array.from(p.querySelectorAll('dt')).map(function (e) { return e.textContent; });
      var dds = Array.from(p.querySelectorAll('dd')).map(function (e) { return e.textContent; });
      var d = {}; dts.forEach(function (t, i) { d[t] = dds[i]; });
      return {hidden: p.hidden, title: document.getElementById('panel-title').textContent, rows: d};""")


def set_filter(drv, element_id, value):
    js(drv, """var e = document.getElementById(arguments[0]); e.value = arguments[1];
               e.dispatchEvent(new Event(e.tagName === 'SELECT' ? 'change' : 'input'));""", element_id, value)


def choose_view(drv, name):
    from selenium.webdriver.common.by import By  # pylint: disable=import-outside-toplevel
    drv.find_element(By.ID, "view-" + name).click()
    assert js(drv, "return window.hostfwMatrix.view()") == name


def test_two_node_matrix_shows_every_cell_with_its_colour_and_reason(driver, two_node, tmp_path):
    matrix_file = two_node
    page = tmp_path / "matrix.html"
    page.write_text(render(matrix_file.read_text(encoding="utf-8")), encoding="utf-8")
    load(driver, page)
    assert js(driver, "return document.getElementById('hostfw-matrix').textContent") == matrix_file.read_text(encoding="utf-8")
    assert js(driver, "return document.getElementById('views').hidden") is True  # one view only: no switch

    matrix = json.loads(matrix_file.read_text(encoding="utf-8"))
    shown = shown_cells(driver)
    real = [c for c in shown.values() if "none" not in c["cls"].split()]
    assert len(real) == len(matrix["cells"]) == 20
    for cell in matrix["cells"]:
        td = shown[(cell["source"], cell["destination"], probe_label(cell["protocol"], cell["port"]))]
        assert td["text"] == vtext(cell["verdict"])
        assert td["bg"] == rgb(COLOURS[cell["verdict"]])
        assert cell["reason"] in td["title"].split("\n")
    self_cell = shown[("host/node-worker", "host/node-worker", "TCP/22")]
    assert self_cell["text"] == "" and self_cell["bg"] == rgb(COLOURS["none"])
    assert shown[("dev/frontend", "host/node-worker", "TCP/10250")]["text"] == "DENY"

    click_cell(driver, "host/node-control-plane", "host/node-worker", "TCP/22")
    shown_panel = panel(driver)
    assert shown_panel["hidden"] is False
    assert shown_panel["title"] == "host/node-control-plane \u2192 host/node-worker TCP/22"
    assert shown_panel["rows"]["Verdict"] == "allow"
    assert shown_panel["rows"]["Ingress"] == "allow: failsafe inbound tcp:22"
    assert shown_panel["rows"]["Egress"] == "allow: tier host-firewall policy node-egress egress rule 0 (Allow)"
    assert shown_panel["rows"]["Reason"] == ("ingress: failsafe inbound tcp:22; egress: tier host-firewall policy node-egress "
                                             "egress rule 0 (Allow)")
    assert shown_panel["rows"]["Source"] == "host/node-control-plane (HostEndpoint; 172.18.0.2)"
    os.makedirs(OUTPUT, exist_ok=True)
    assert driver.save_screenshot(os.path.join(OUTPUT, "matrix.png"))
    with open(os.path.join(OUTPUT, "matrix.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_filters_by_name_and_by_verdict(driver, two_node, tmp_path):
    page = tmp_path / "matrix.html"
    page.write_text(render(two_node.read_text(encoding="utf-8")), encoding="utf-8")
    load(driver, page)
    set_filter(driver, "f-src", "FRONT")
    assert {k[0] for k in shown_cells(driver)} == {"dev/frontend"}
    set_filter(driver, "f-src", "172.18.0.3")  # an address
    assert {k[0] for k in shown_cells(driver)} == {"host/node-worker"}
    set_filter(driver, "f-src", "")
    set_filter(driver, "f-dst", "worker")
    assert {k[1] for k in shown_cells(driver)} == {"host/node-worker"}
    set_filter(driver, "f-dst", "")
    set_filter(driver, "f-verdict", "deny")
    shown = shown_cells(driver)
    assert {k[0] for k in shown} == {"dev/frontend", "prod/backend"}
    # TCP/10250 from both app pods; TCP/22 too from prod/backend to its own host (workload to host: Drop)
    assert {k[2] for k in shown} == {"TCP/10250", "TCP/22"}
    denied = [k for k, c in shown.items() if c["text"] == "DENY"]
    assert len(denied) == 5 and ("prod/backend", "host/node-worker", "TCP/22") in denied
    # the one other cell of the visible rows and columns (dev/frontend -> node-worker TCP/22, allow) is blanked
    assert [c["cls"] for c in shown.values() if c["text"] != "DENY"] == ["cell filtered"]
    assert js(driver, "return document.getElementById('status').textContent") == (
        "2 of 6 sources \u00d7 3 of 4 destination probes; 5 cells: 0 allow, 5 deny, 0 changed")
    set_filter(driver, "f-verdict", "allow")
    shown = shown_cells(driver)
    assert [c for c in shown.values() if c["text"] == "DENY"] == []
    assert {c["cls"] for c in shown.values() if c["text"] == ""} <= {"cell filtered", "cell none"}
    assert len([c for c in shown.values() if c["text"] == "allow"]) == 15
    set_filter(driver, "f-verdict", "changed")  # no pending verdicts: nothing changes
    assert shown_cells(driver) == {}


def test_keyboard_moves_the_active_cell_and_opens_the_panel(driver, two_node, tmp_path):
    from selenium.webdriver.common.by import By  # pylint: disable=import-outside-toplevel
    from selenium.webdriver.common.keys import Keys  # pylint: disable=import-outside-toplevel
    page = tmp_path / "matrix.html"
    page.write_text(render(two_node.read_text(encoding="utf-8")), encoding="utf-8")
    load(driver, page)
    grid = driver.find_element(By.ID, "grid")
    driver.find_element(By.ID, "f-verdict").send_keys(Keys.TAB)  # the grid is the next stop in the tab order
    assert driver.switch_to.active_element == grid
    grid.send_keys(Keys.ARROW_DOWN, Keys.ARROW_RIGHT, Keys.ARROW_RIGHT, Keys.ENTER)
    # rows: calico-node, dev/frontend, ...; columns: control-plane TCP/22, TCP/10250, worker TCP/22, ...
    shown_panel = panel(driver)
    assert shown_panel["title"] == "dev/frontend \u2192 host/node-worker TCP/22"
    active = js(driver, "var a = document.getElementById(document.getElementById('grid').getAttribute('aria-activedescendant'));"
                        "return [a.dataset.src, a.dataset.dst, a.dataset.probe, a.classList.contains('active')];")
    assert active == ["dev/frontend", "host/node-worker", "TCP/22", True]
    grid.send_keys(Keys.ARROW_RIGHT)  # the open panel follows the active cell
    assert panel(driver)["rows"]["Verdict"] == "DENY"
    grid.send_keys(Keys.ESCAPE)
    assert panel(driver)["hidden"] is True


def test_pending_and_diff_views(driver, tmp_path):
    matrix, diff = fixture("matrix-pending.json"), fixture("matrix-diff.json")
    page = write_page(tmp_path, matrix, diff)
    load(driver, page)
    assert js(driver, "return document.getElementById('hostfw-diff').textContent") == (tmp_path / "matrix-diff.json").read_text()
    assert js(driver, "return Array.from(document.querySelectorAll('input[name=view]')).map(function (e) { return e.value; })") == [
        "enforced", "pending", "diff"]
    changing = {(c["source"], c["destination"], probe_label(c["protocol"], c["port"])): c
                for c in matrix["cells"] if c["pending"]["verdict"] != c["verdict"]}
    assert len(changing) == 2

    # enforced: today's verdicts; cells that the staged policies would change are outlined
    shown = shown_cells(driver)
    for k, c in shown.items():
        will = k in changing
        assert ("will-change" in c["cls"].split()) == will, k
        assert (rgb(WILL_CHANGE) in c["shadow"]) == will, k
    assert shown[("netset/office", "host/alpha", "TCP/443")]["text"] == "allow"

    choose_view(driver, "pending")
    shown = shown_cells(driver)
    lock = shown[("netset/office", "host/alpha", "TCP/443")]
    assert lock["text"] == "allow \u2192 DENY" and lock["bg"] == rgb(COLOURS["to-deny"])
    opened = shown[("dev/web", "host/beta", "TCP/443")]
    assert opened["text"] == "DENY \u2192 allow" and opened["bg"] == rgb(COLOURS["to-allow"])
    same = shown[("dev/web", "host/alpha", "ICMP")]
    assert same["text"] == "allow" and same["bg"] == rgb(COLOURS["allow"])
    assert "pending: DENY: ingress: staged: tier web policy staged:lockdown ingress rule 0 (Deny)" in lock["title"]
    assert js(driver, "return Array.from(document.querySelectorAll('#extra td')).map(function (e) { return e.textContent; })") == [
        "StagedGlobalNetworkPolicy", "lockdown", "web", "Set", "StagedGlobalNetworkPolicy", "open-beta", "web", "Set"]
    set_filter(driver, "f-verdict", "changed")
    assert set(matching_cells(driver)) == set(changing)
    assert {c["text"] for k, c in shown_cells(driver).items() if k not in changing} == {""}
    click_cell(driver, "netset/office", "host/alpha", "TCP/443")
    rows = panel(driver)["rows"]
    assert rows["Verdict"] == "allow" and rows["Pending"] == "DENY (changes once the staged policies are promoted)"
    assert rows["Pending reason"] == "ingress: staged: tier web policy staged:lockdown ingress rule 0 (Deny)"
    set_filter(driver, "f-verdict", "all")

    choose_view(driver, "diff")
    shown = shown_cells(driver)
    by_change = {"opened": set(), "closed": set(), "unchanged": set()}
    for k, c in shown.items():
        for name in by_change:
            if name in c["cls"].split():
                by_change[name].add(k)
                assert c["bg"] == rgb(COLOURS[name]), (k, c)
    assert by_change["opened"] == {("dev/web", "host/alpha", "TCP/443"), ("host/beta", "host/alpha", "TCP/443")}
    assert by_change["closed"] == {("netset/office", "host/alpha", "ICMP")}
    assert len(by_change["unchanged"]) == 15 and shown[("host/alpha", "host/beta", "TCP/22")]["text"] == "= allow"
    summary = js(driver, "return document.querySelector('#diff-summary summary').textContent")
    assert summary == "v1.4.0 \u2192 v1.5.0: 2 opened, 1 closed, 15 unchanged"
    groups = js(driver, "return Array.from(document.querySelectorAll('#diff-summary li')).map(function (e) { return e.textContent; })")
    assert groups[0] == ("opened (2): dev/web, host/beta \u2192 host/alpha on TCP/443; was: ingress: end of tier web (defaultAction Deny); "
                         "now: ingress: tier web policy allow-https ingress rule 0 (Allow)")
    click_cell(driver, "dev/web", "host/alpha", "TCP/443")
    rows = panel(driver)["rows"]
    assert rows["Change"] == "opened (v1.4.0 \u2192 v1.5.0)"
    assert rows["Old"] == "DENY: ingress: end of tier web (defaultAction Deny)"
    assert rows["New"] == "allow: ingress: tier web policy allow-https ingress rule 0 (Allow)"
    set_filter(driver, "f-verdict", "changed")
    assert set(matching_cells(driver)) == by_change["opened"] | by_change["closed"]
    os.makedirs(OUTPUT, exist_ok=True)
    driver.save_screenshot(os.path.join(OUTPUT, "matrix-diff.png"))


def test_page_asks_the_network_for_nothing_and_its_csp_blocks_other_scripts(driver, tmp_path):
    page = write_page(tmp_path, fixture("matrix-pending.json"), fixture("matrix-diff.json"))
    driver.get_log("performance")
    driver.get("file://%s" % page)
    browser.wait_ready(driver)
    choose_view(driver, "diff")
    click_cell(driver, "dev/web", "host/alpha", "TCP/443")
    requested = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            requested.append(message["params"]["request"]["url"])
    assert requested == ["file://%s" % page]
    assert [e for e in driver.get_log("browser") if e["level"] == "SEVERE"] == []  # nothing blocked, nothing failed
    ran = js(driver, """
      window.__injected = 0;
      var s = document.createElement('script'); s.textContent = 'window.__injected = 1;'; document.body.appendChild(s);
      var i = document.createElement('img'); i.src = 'data:image/gif;base64,R0lGODlhAQABAAAAACw='; document.body.appendChild(i);
      return window.__injected;""")
    assert ran == 0  # an inline script that is not the page's own is refused by the CSP
    time.sleep(0.2)
    assert js(driver, "return document.querySelector('body > img').naturalWidth") == 0  # img-src 'none'
    violations = [e["message"] for e in driver.get_log("browser") if "Content Security Policy" in e["message"]]
    assert any("script-src" in v for v in violations) and any("img-src" in v for v in violations), violations


def test_xss_fixture_renders_as_text_and_runs_nothing(driver, tmp_path):
    matrix, diff = fixture("matrix-xss.json"), fixture("matrix-diff-xss.json")
    page = write_page(tmp_path, matrix, diff)
    load(driver, page)
    cell = matrix["cells"][0]
    assert json.loads(js(driver, "return document.getElementById('hostfw-matrix').textContent")) == matrix
    assert js(driver, "return document.querySelectorAll('img, iframe, svg, b').length") == 0
    assert js(driver, "return document.querySelectorAll('script').length") == 3
    assert js(driver, "return typeof window.__xss") == "undefined"
    assert js(driver, "return document.querySelector('#grid tbody th').textContent") == cell["source"]
    assert js(driver, "return document.querySelector('#grid thead tr.dests th:not(.corner) div').textContent") == cell["destination"]
    click_cell(driver, cell["source"], cell["destination"], "TCP/22")
    rows = panel(driver)["rows"]
    assert rows["Reason"] == cell["reason"]
    assert rows["Source"] == "%s (WorkloadEndpoint; 10.9.9.9; x=<svg onload=window.__xss=2>)" % cell["source"]
    assert rows["Pending reason"] == "ingress: staged policy <script>window.__xss=4</script>"
    assert rows["Old"] == "allow: <img src=x onerror=window.__xss=8>"
    choose_view(driver, "pending")
    assert js(driver, "return Array.from(document.querySelectorAll('#extra td')).map(function (e) { return e.textContent; })")[1:3] == [
        "<img src=x onerror=window.__xss=5>", "<b>t</b>"]
    choose_view(driver, "diff")
    assert js(driver, "return document.querySelector('#diff-summary summary').textContent").startswith(
        "<script>window.__xss=6</script> \u2192 </script><script>window.__xss=7</script>: ")
    set_filter(driver, "f-src", "<img")
    assert set(shown_cells(driver)) == {(cell["source"], cell["destination"], "TCP/22")}
    assert js(driver, "return document.querySelectorAll('img, iframe, svg, b').length") == 0
    assert js(driver, "return typeof window.__xss") == "undefined"
    assert js(driver, "return document.title") == "hostfw policy matrix"


def big_matrix(n_endpoints=1000, n_hosts=40):
    """A matrix of the compiler's shape: n_hosts HostEndpoints (also the destinations), the rest workloads; 2 probes."""
    probes = [{"protocol": "TCP", "port": 22}, {"protocol": "TCP", "port": 443}]
    endpoints, cells = [], []
    hosts = ["host/node-%03d" % i for i in range(n_hosts)]
    for i, name in enumerate(hosts):
        endpoints.append({"name": name, "kind": "HostEndpoint", "ips": ["10.0.%d.%d" % (i // 250, i % 250 + 1)]})
    for i in range(n_endpoints - n_hosts):
        endpoints.append({"name": "ns-%02d/pod-%04d" % (i % 37, i), "kind": "WorkloadEndpoint",
                          "ips": ["10.1.%d.%d" % (i // 250, i % 250 + 1)]})
    endpoints.sort(key=lambda e: e["name"])
    for src in endpoints:
        for j, dst in enumerate(hosts):
            if src["name"] == dst:
                continue
            for p in probes:
                allow = p["port"] == 22 or (hash_of(src["name"], dst) % 3 != 0)
                reason = ("failsafe inbound tcp:22" if p["port"] == 22 else
                          "tier app policy web-%d ingress rule 0 (%s)" % (j % 7, "Allow" if allow else "Deny"))
                cells.append({"source": src["name"], "destination": dst, "protocol": "TCP", "port": p["port"],
                              "verdict": "allow" if allow else "deny", "ingress": {"verdict": "allow" if allow else "deny", "reason": reason},
                              "egress": None, "reason": "ingress: " + reason})
    return {"probes": probes, "endpoints": endpoints, "cells": cells}


def hash_of(*parts):
    return int(hashlib.sha256("|".join(parts).encode()).hexdigest()[:8], 16)


@pytest.mark.slow
def test_a_1000_endpoint_matrix_is_windowed_and_loads_quickly(driver, tmp_path):
    from selenium.webdriver.common.by import By  # pylint: disable=import-outside-toplevel
    from selenium.webdriver.common.keys import Keys  # pylint: disable=import-outside-toplevel
    matrix = big_matrix()
    t0 = time.perf_counter()
    page = write_page(tmp_path, matrix)
    build_s = time.perf_counter() - t0
    size = page.stat().st_size
    t0 = time.perf_counter()
    driver.get("file://%s" % page)
    browser.wait_ready(driver, timeout=120)
    load_s = time.perf_counter() - t0
    n_cells = len(matrix["cells"])
    assert n_cells == 1000 * 40 * 2 - 40 * 2
    counts = js(driver, "return [document.querySelectorAll('#grid td.cell').length, document.getElementById('grid').getAttribute('aria-rowcount'),"
                        " document.querySelectorAll('#grid tbody tr').length]")
    assert counts[0] < 8000, counts  # only the visible window is in the DOM
    assert counts[1] == str(1000 + 2)
    t0 = time.perf_counter()
    grid = driver.find_element(By.ID, "grid")
    js(driver, "document.getElementById('grid').focus()")
    grid.send_keys(Keys.CONTROL, Keys.END)
    grid.send_keys(Keys.ENTER)
    last_src = matrix["endpoints"][-1]["name"]
    assert panel(driver)["title"] == "%s \u2192 host/node-039 TCP/443" % last_src
    set_filter(driver, "f-verdict", "deny")
    filter_s = time.perf_counter() - t0
    status = js(driver, "return document.getElementById('status').textContent")
    denies = sum(1 for c in matrix["cells"] if c["verdict"] == "deny")
    assert status.endswith("%d cells: 0 allow, %d deny, 0 changed" % (denies, denies)), status
    page_ms = js(driver, "return window.hostfwMatrix.loadMs")
    print("\nbig matrix: %d endpoints, %d cells, matrix.html %.1f MB; render() %.2f s; browser load to first paint of the grid "
          "%.2f s (script %.0f ms); jump to the last cell + deny filter %.2f s"
          % (len(matrix["endpoints"]), n_cells, size / 1e6, build_s, load_s, page_ms, filter_s))
    assert load_s < 60


def test_screenshot_helper_runs_as_a_module(tmp_path):
    if browser.find_browser()[2] and not IN_CI:
        pytest.skip("no headless browser here: %s" % "; ".join(browser.find_browser()[2]))
    page = write_page(tmp_path, fixture("matrix-pending.json"), fixture("matrix-diff.json"))
    png = tmp_path / "shot.png"
    proc = subprocess.run([sys.executable, "-m", "tools.browser.screenshot", str(page), str(png), "--width", "900", "--height", "500"],
                          cwd=ROOT, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout == "wrote %s\n" % png
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert (int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")) == (900, 500)


def test_module_has_no_ansible_imports():
    with open(matrix_html.__file__, encoding="utf-8") as f:
        source = f.read()
    assert not re.search(r"^\s*(from|import)\s+ansible", source, re.M)
