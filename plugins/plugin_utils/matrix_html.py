# -*- coding: utf-8 -*-
# Copyright: hostfw.nftables contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The policy matrix as one self-contained HTML page (``matrix.html``).

``json_text(data)`` is THE canonical text of ``matrix.json`` (and of ``matrix-diff.json``): sorted
keys, two-space indent, a final newline, and ``<``, ``>``, ``&``, U+2028, U+2029 written as
``\\u003c``-style escapes.  It is still JSON for the same data, and it never contains ``</script>``
or ``<!--``, so ``render`` embeds the file's bytes verbatim in ``<script type="application/json">``
whatever the policy names and reasons say.

``render(matrix_text, diff_text=None, title=...)`` returns the page: no network, no external asset
(inline CSS and JS only, pinned by a Content-Security-Policy with their sha256 hashes, everything
else ``'none'``).  The script builds the DOM with ``textContent`` only.  It shows sources x
(destination x probe) with a colour per verdict, the reason on hover and in a side panel on click
or Enter, filters by source/destination name (or label, kind, address) and by verdict, and the
views the data has: enforced, pending (cells have ``pending``: the verdict once the staged
policies are promoted) and diff (``matrix-diff.json``).  Rows and columns are windowed (only the
visible part of the table is in the DOM), so a matrix of a million cells stays responsive.
The output depends only on the input: no timestamps, stable order.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from typing import Any, Dict, Optional

DEFAULT_TITLE = "hostfw policy matrix"

# The background colour of each cell state (the browser test reads them back as computed styles).
COLOURS = {
    "allow": "#b7e4c7",      # enforced (or pending, unchanged) allow
    "deny": "#f4b6b6",       # enforced (or pending, unchanged) deny
    "to-allow": "#3fa463",   # pending view: deny now, allow once the staged policies are promoted
    "to-deny": "#e05858",    # pending view: allow now, deny once promoted
    "opened": "#2e9e4f",     # diff view: deny in the old matrix, allow in the new one
    "closed": "#d13b3b",     # diff view: allow in the old matrix, deny in the new one
    "unchanged": "#e3e3e3",  # diff view: the same verdict in both
    "filtered": "#f6f6f6",   # hidden by the verdict filter
    "none": "#ffffff",       # no cell (the source itself, or no address of the destination's family)
}
WILL_CHANGE = "#c77700"      # enforced view: outline of a cell whose pending verdict differs

_ESCAPES = (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029"))


def json_text(data: Any) -> str:
    """The canonical JSON text of a matrix or a diff (see the module docstring)."""
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    for char, escape in _ESCAPES:
        text = text.replace(char, escape)
    return text


def _canonical(text: str, what: str, required: Dict[str, type]) -> Dict:
    if not isinstance(text, str):
        raise TypeError("%s text must be a str, not %s" % (what, type(text).__name__))
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ValueError("%s text is not JSON: %s" % (what, exc)) from None
    if not isinstance(data, dict):
        raise ValueError("%s text is not a JSON object" % what)
    for name, kind in required.items():
        if not isinstance(data.get(name), kind):
            raise ValueError("%s text has no %s %r" % (what, kind.__name__, name))
    if json_text(data) != text:
        raise ValueError("%s text is not in canonical form: write it with matrix_html.json_text()" % what)
    return data


_CSS = """\
[hidden]{display:none!important}
:root{color-scheme:light;font:13px/1.35 system-ui,sans-serif;color:#1d1d1d;background:#fff}
body{margin:0;display:flex;flex-direction:column;height:100vh}
header{padding:6px 10px;border-bottom:1px solid #c8c8c8}
h1{font-size:16px;margin:0 0 4px}
.controls{display:flex;flex-wrap:wrap;gap:6px 16px;align-items:center}
.controls label{white-space:nowrap}
.controls input[type=search]{width:14em}
fieldset#views{border:0;margin:0;padding:0;display:inline-flex;gap:8px}
fieldset#views legend{float:left;margin-right:6px;padding:0}
#status{color:#444}
#legend{display:flex;flex-wrap:wrap;gap:4px 10px;margin-top:4px;font-size:12px}
#legend span.sw{display:inline-block;min-width:3.5em;text-align:center;padding:0 4px;margin-right:3px;border:1px solid #d0d0d0}
details{margin-top:4px;font-size:12px}
details table{border-collapse:collapse}
details td,details th{border:1px solid #ccc;padding:1px 5px;text-align:left}
main{flex:1;display:flex;min-height:0}
#grid-wrap{flex:1;overflow:auto;position:relative}
#grid{border-collapse:separate;border-spacing:0;table-layout:fixed;font-size:11px}
#grid:focus{outline:none}
#grid:focus .active{outline:3px solid #1a4fd8}
#grid th,#grid td{height:22px;line-height:21px;padding:0 3px;box-sizing:border-box;overflow:hidden;white-space:nowrap;
text-overflow:ellipsis;border-right:1px solid #fff;border-bottom:1px solid #fff}
#grid thead th{position:sticky;top:0;z-index:2;background:#eef0f3;font-weight:600}
#grid thead tr.probes th{font-weight:400}
#grid thead tr.dests th{height:auto;vertical-align:bottom;white-space:normal}
#grid thead tr.dests th div{max-height:45px;line-height:15px;overflow:hidden;overflow-wrap:anywhere}
#grid th.corner{left:0;z-index:3;text-align:left;vertical-align:bottom}
#grid tbody th{position:sticky;left:0;z-index:1;background:#eef0f3;text-align:left;font-weight:400;cursor:pointer}
#grid td.cell{text-align:center;cursor:pointer}
#grid td.active{outline:2px solid #1a4fd8;outline-offset:-2px}
#grid td.spacer{padding:0;border:0}
.allow{background:%(allow)s;color:#0f3d22}
.deny{background:%(deny)s;color:#6b0d0d}
.to-allow{background:%(to-allow)s;color:#fff;font-weight:700}
.to-deny{background:%(to-deny)s;color:#fff;font-weight:700}
.opened{background:%(opened)s;color:#fff;font-weight:700}
.closed{background:%(closed)s;color:#fff;font-weight:700}
.unchanged{background:%(unchanged)s;color:#555}
.filtered{background:%(filtered)s;color:#999}
.none{background:%(none)s}
.will-change{box-shadow:inset 0 0 0 2px %(will)s}
#panel{width:380px;border-left:1px solid #c8c8c8;padding:8px 10px;overflow:auto;font-size:12px}
#panel h2{font-size:14px;margin:0 0 6px;word-break:break-all}
#panel dl{display:grid;grid-template-columns:max-content 1fr;gap:3px 8px;margin:0}
#panel dt{font-weight:600}
#panel dd{margin:0;word-break:break-word}
#panel dd.v-allow{color:#0f6b34;font-weight:700}
#panel dd.v-deny{color:#a31515;font-weight:700}
#panel button{float:right}
""" % dict(COLOURS, will=WILL_CHANGE)

_BODY = """\
<header>
<h1 id="title">%(title)s</h1>
<div class="controls">
<fieldset id="views" hidden><legend>View</legend></fieldset>
<label>Source <input type="search" id="f-src" placeholder="name, label, address" autocomplete="off"></label>
<label>Destination <input type="search" id="f-dst" placeholder="name, label, address" autocomplete="off"></label>
<label>Verdict <select id="f-verdict">
<option value="all">all</option><option value="allow">allow</option><option value="deny">deny</option>\
<option value="changed">changed</option>
</select></label>
<span id="status" role="status" aria-live="polite"></span>
</div>
<div id="legend" aria-label="legend"></div>
<div id="extra"></div>
</header>
<main>
<div id="grid-wrap"><table id="grid" role="grid" tabindex="0" aria-label="policy matrix: sources by destination and probe; \
arrow keys move, Enter shows the reason"></table></div>
<aside id="panel" hidden aria-live="polite" aria-labelledby="panel-title">
<button type="button" id="panel-close" aria-label="close the details">&#x2715;</button>
<h2 id="panel-title"></h2>
<dl id="panel-body"></dl>
</aside>
</main>
<noscript><p>This page needs JavaScript to draw the matrix; the data is in matrix.json (or matrix.md).</p></noscript>
"""

_JS = r"""
(function () {
  "use strict";
  var ROW_H = 22, SRC_W = 260, BUF_R = 12, BUF_C = 6;
  var CELL_W = {enforced: 64, pending: 104, diff: 72};
  var t0 = performance.now();

  function $(id) { return document.getElementById(id); }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    return e;
  }
  function clear(e) { while (e.firstChild) { e.removeChild(e.firstChild); } }
  function readJSON(id) { var s = $(id); return s ? JSON.parse(s.textContent) : null; }
  function cmp(a, b) { return a < b ? -1 : (a > b ? 1 : 0); }
  function uniqSorted(list) {
    var seen = new Set(list);
    return Array.from(seen).sort(cmp);
  }
  function str(v) { return v === null || v === undefined ? "" : String(v); }
  function plabel(p) { return (p.port === null || p.port === undefined) ? str(p.protocol) : str(p.protocol) + "/" + str(p.port); }
  function key(s, d, proto, port) { return s + "\u0000" + d + "\u0000" + str(proto) + "\u0000" + str(port); }
  function vtext(v) { return v === "allow" ? "allow" : (v === "deny" ? "DENY" : str(v)); }
  function stage(s, none) { return s ? vtext(s.verdict) + ": " + str(s.reason) : none; }

  var M = readJSON("hostfw-matrix") || {};
  var D = readJSON("hostfw-diff");
  var cells = Array.isArray(M.cells) ? M.cells : [];
  var probes = Array.isArray(M.probes) ? M.probes : [];
  var cellMap = new Map();
  var hasPending = Array.isArray(M.staged) && M.staged.length > 0;
  cells.forEach(function (c) {
    cellMap.set(key(c.source, c.destination, c.protocol, c.port), c);
    if (c.pending) { hasPending = true; }
  });
  var changeMap = new Map();
  var changes = D && Array.isArray(D.changes) ? D.changes : [];
  changes.forEach(function (c) { changeMap.set(key(c.source, c.destination, c.protocol, c.port), c); });

  var eps = new Map();
  (Array.isArray(M.endpoints) ? M.endpoints : []).forEach(function (e) { eps.set(e.name, e); });
  var searchCache = new Map();
  function searchText(name) {
    var t = searchCache.get(name);
    if (t === undefined) {
      var parts = [name], e = eps.get(name);
      if (e) {
        parts.push(str(e.kind));
        (e.ips || []).forEach(function (ip) { parts.push(str(ip)); });
        var labels = e.labels || {};
        Object.keys(labels).sort(cmp).forEach(function (k) { parts.push(k + "=" + str(labels[k])); });
      }
      t = parts.join(" ").toLowerCase();
      searchCache.set(name, t);
    }
    return t;
  }
  function epInfo(name) {
    var e = eps.get(name);
    if (!e) { return ""; }
    var bits = [str(e.kind)];
    if (e.ips && e.ips.length) { bits.push(e.ips.join(", ")); }
    var labels = e.labels || {};
    var lk = Object.keys(labels).sort(cmp);
    if (lk.length) { bits.push(lk.map(function (k) { return k + "=" + str(labels[k]); }).join(", ")); }
    return " (" + bits.join("; ") + ")";
  }

  // -- views ---------------------------------------------------------------------------------------
  function columns(dests, probeList) {
    var cols = [];
    dests.forEach(function (d) {
      probeList.forEach(function (p) { cols.push({dst: d, probe: p, label: plabel(p)}); });
    });
    return cols;
  }
  var VIEWS = {};
  var baseSources = uniqSorted(cells.map(function (c) { return c.source; }));
  var baseDests = uniqSorted(cells.map(function (c) { return c.destination; }));
  VIEWS.enforced = {label: "enforced", sources: baseSources, cols: columns(baseDests, probes)};
  if (hasPending) { VIEWS.pending = {label: "pending (staged promoted)", sources: baseSources, cols: VIEWS.enforced.cols}; }
  if (D) {
    var dsrc = baseSources.concat(changes.map(function (c) { return c.source; }));
    var ddst = baseDests.concat(changes.map(function (c) { return c.destination; }));
    var dprobes = Array.isArray(D.probes) && D.probes.length ? D.probes : probes;
    VIEWS.diff = {label: "diff " + str(D.old) + " \u2192 " + str(D.new), sources: uniqSorted(dsrc), cols: columns(uniqSorted(ddst), dprobes)};
  }
  var view = "enforced";
  function cellWidth() {  // wide enough for the longest probe label of the view (about 7 px a character at 11 px)
    var longest = 0;
    VIEWS[view].cols.forEach(function (c) { longest = Math.max(longest, c.label.length); });
    return Math.max(CELL_W[view], 10 + 7 * longest);
  }

  function state(src, col) {
    var k = key(src, col.dst, col.probe.protocol, col.probe.port);
    var c = cellMap.get(k);
    if (view === "diff") {
      var ch = changeMap.get(k);
      if (ch) {
        var nv = (ch.new || {}).verdict;
        return {cls: ch.change === "opened" ? "opened" : "closed", text: str(ch.change), verdict: nv, changed: true, cell: c, change: ch};
      }
      if (!c) { return null; }
      return {cls: "unchanged", text: "= " + vtext(c.verdict), verdict: c.verdict, changed: false, cell: c, change: null};
    }
    if (!c) { return null; }
    var will = !!(c.pending && c.pending.verdict !== c.verdict);
    if (view === "pending") {
      var pv = c.pending ? c.pending.verdict : c.verdict;
      if (will) {
        return {cls: pv === "allow" ? "to-allow" : "to-deny", text: vtext(c.verdict) + " \u2192 " + vtext(pv), verdict: pv, changed: true, cell: c};
      }
      return {cls: pv === "allow" ? "allow" : "deny", text: vtext(pv), verdict: pv, changed: false, cell: c};
    }
    return {cls: (c.verdict === "allow" ? "allow" : "deny") + (will ? " will-change" : ""), text: vtext(c.verdict),
            verdict: c.verdict, changed: will, cell: c};
  }
  function tooltip(src, col, st) {
    var lines = [src + " \u2192 " + col.dst + " " + col.label + ": " + st.text];
    var c = st.cell;
    if (view === "diff" && st.change) {
      lines.push("old: " + stage(st.change.old, "none"));
      lines.push("new: " + stage(st.change.new, "none"));
    } else if (c) {
      lines.push(str(c.reason));
      if (c.pending) { lines.push("pending: " + stage(c.pending, "")); }
    }
    return lines.join("\n");
  }
  function verdictMatches(st, fv) {
    if (fv === "all") { return true; }
    if (!st) { return false; }
    if (fv === "changed") { return st.changed; }
    return st.verdict === fv;
  }

  // -- filtering -----------------------------------------------------------------------------------
  var rows = [], cols = [], fv = "all";
  var act = {r: 0, c: 0};
  function applyFilter() {
    var cfg = VIEWS[view];
    var fs = $("f-src").value.trim().toLowerCase(), fd = $("f-dst").value.trim().toLowerCase();
    fv = $("f-verdict").value;
    var rs = cfg.sources.filter(function (s) { return !fs || searchText(s).indexOf(fs) >= 0; });
    var cs = cfg.cols.filter(function (c) { return !fd || searchText(c.dst).indexOf(fd) >= 0; });
    if (fv !== "all") {
      var hit = new Array(cs.length).fill(false), keep = [];
      rs.forEach(function (s) {
        var any = false;
        for (var j = 0; j < cs.length; j++) {
          if (verdictMatches(state(s, cs[j]), fv)) { any = true; hit[j] = true; }
        }
        if (any) { keep.push(s); }
      });
      rs = keep;
      cs = cs.filter(function (c, j) { return hit[j]; });
    }
    rows = rs;
    cols = cs;
    act = {r: Math.min(act.r, Math.max(rows.length - 1, 0)), c: Math.min(act.c, Math.max(cols.length - 1, 0))};
    var counts = {allow: 0, deny: 0, changed: 0, total: 0};
    if (rows.length * cols.length <= 2000000) {
      rows.forEach(function (s) {
        cols.forEach(function (c) {
          var st = state(s, c);
          if (st && verdictMatches(st, fv)) {
            counts.total++;
            if (st.verdict === "allow") { counts.allow++; } else { counts.deny++; }
            if (st.changed) { counts.changed++; }
          }
        });
      });
    }
    $("status").textContent = rows.length + " of " + cfg.sources.length + " sources \u00d7 " + cols.length + " of " +
      cfg.cols.length + " destination probes; " + counts.total + " cells: " + counts.allow + " allow, " + counts.deny +
      " deny, " + counts.changed + " changed";
    last = null;
    renderGrid();
  }

  // -- the windowed grid ---------------------------------------------------------------------------
  var grid = $("grid"), wrap = $("grid-wrap"), last = null, headH = 0;
  function win() {
    var W = cellWidth();
    // the window starts on a multiple of the buffer, so that scrolling by less than a buffer draws nothing
    var r0 = Math.max(0, (Math.floor(Math.floor(wrap.scrollTop / ROW_H) / BUF_R) - 1) * BUF_R);
    var r1 = Math.min(rows.length, r0 + Math.ceil(wrap.clientHeight / ROW_H) + 3 * BUF_R);
    var c0 = Math.max(0, (Math.floor(Math.floor(wrap.scrollLeft / W) / BUF_C) - 1) * BUF_C);
    var c1 = Math.min(cols.length, c0 + Math.ceil(Math.max(wrap.clientWidth - SRC_W, W) / W) + 3 * BUF_C);
    return {r0: r0, r1: r1, c0: c0, c1: c1};
  }
  function col(width) { var c = el("col"); c.style.width = width + "px"; return c; }
  function cellId(r, c) { return "cell-" + r + "-" + c; }
  function renderGrid() {
    var w = win();
    if (last && last.r0 === w.r0 && last.r1 === w.r1 && last.c0 === w.c0 && last.c1 === w.c1) { return; }
    last = w;
    var W = cellWidth(), n = w.c1 - w.c0, span = 1 + n + (w.c0 > 0 ? 1 : 0) + (w.c1 < cols.length ? 1 : 0);
    var frag = document.createDocumentFragment();
    var cg = el("colgroup");
    cg.appendChild(col(SRC_W));
    if (w.c0 > 0) { cg.appendChild(col(w.c0 * W)); }
    for (var j = w.c0; j < w.c1; j++) { cg.appendChild(col(W)); }
    if (w.c1 < cols.length) { cg.appendChild(col((cols.length - w.c1) * W)); }
    frag.appendChild(cg);
    var thead = el("thead"), tr1 = el("tr", "dests"), tr2 = el("tr", "probes");
    tr1.setAttribute("aria-rowindex", "1");
    tr2.setAttribute("aria-rowindex", "2");
    var corner = el("th", "corner", "source \\ destination");
    corner.rowSpan = 2;
    tr1.appendChild(corner);
    function spacerTh() { var t = el("th", "spacer"); t.rowSpan = 2; t.setAttribute("aria-hidden", "true"); return t; }
    if (w.c0 > 0) { tr1.appendChild(spacerTh()); }
    var group = null;
    for (j = w.c0; j < w.c1; j++) {
      var cj = cols[j];
      if (!group || cj.dst !== cols[j - 1].dst) {
        group = el("th");
        var div = el("div", null, cj.dst);
        group.appendChild(div);
        group.title = cj.dst + epInfo(cj.dst);
        group.scope = "colgroup";
        group.colSpan = 1;
        tr1.appendChild(group);
      } else {
        group.colSpan += 1;
      }
      var pth = el("th", null, cj.label);
      pth.title = cj.dst + " " + cj.label;
      pth.scope = "col";
      pth.setAttribute("aria-colindex", String(j + 2));
      tr2.appendChild(pth);
    }
    if (w.c1 < cols.length) { tr1.appendChild(spacerTh()); }
    thead.appendChild(tr1);
    thead.appendChild(tr2);
    frag.appendChild(thead);
    var tbody = el("tbody");
    function spacerRow(h) {
      var tr = el("tr"), td = el("td", "spacer");
      td.colSpan = span;
      td.style.height = h + "px";
      tr.setAttribute("aria-hidden", "true");
      tr.appendChild(td);
      return tr;
    }
    if (w.r0 > 0) { tbody.appendChild(spacerRow(w.r0 * ROW_H)); }
    for (var r = w.r0; r < w.r1; r++) {
      var src = rows[r], tr = el("tr");
      tr.setAttribute("aria-rowindex", String(r + 3));
      var th = el("th", null, src);
      th.scope = "row";
      th.title = src + epInfo(src);
      th.setAttribute("data-r", String(r));
      tr.appendChild(th);
      if (w.c0 > 0) { tr.appendChild(el("td", "spacer")); }
      for (j = w.c0; j < w.c1; j++) {
        var cc = cols[j], st = state(src, cc), td;
        if (!st) {
          td = el("td", "cell none");
          td.title = src + " \u2192 " + cc.dst + " " + cc.label + ": no cell";
        } else if (!verdictMatches(st, fv)) {
          td = el("td", "cell filtered");
          td.title = tooltip(src, cc, st);
        } else {
          td = el("td", "cell " + st.cls, st.text);
          td.title = tooltip(src, cc, st);
        }
        td.id = cellId(r, j);
        td.setAttribute("data-r", String(r));
        td.setAttribute("data-c", String(j));
        td.setAttribute("data-src", src);
        td.setAttribute("data-dst", cc.dst);
        td.setAttribute("data-probe", cc.label);
        td.setAttribute("aria-colindex", String(j + 2));
        if (r === act.r && j === act.c) { td.classList.add("active"); td.setAttribute("aria-selected", "true"); }
        tr.appendChild(td);
      }
      if (w.c1 < cols.length) { tr.appendChild(el("td", "spacer")); }
      tbody.appendChild(tr);
    }
    if (w.r1 < rows.length) { tbody.appendChild(spacerRow((rows.length - w.r1) * ROW_H)); }
    frag.appendChild(tbody);
    clear(grid);
    grid.appendChild(frag);
    grid.style.width = (SRC_W + cols.length * W) + "px";
    grid.setAttribute("aria-rowcount", String(rows.length + 2));
    grid.setAttribute("aria-colcount", String(cols.length + 1));
    headH = tr1.offsetHeight + tr2.offsetHeight;
    var top2 = tr1.offsetHeight + "px";
    Array.prototype.forEach.call(tr2.children, function (t) { t.style.top = top2; });
    var a = $(cellId(act.r, act.c));
    if (a) { grid.setAttribute("aria-activedescendant", a.id); } else { grid.removeAttribute("aria-activedescendant"); }
  }
  var pending = false;
  wrap.addEventListener("scroll", function () {
    if (pending) { return; }
    pending = true;
    window.requestAnimationFrame(function () { pending = false; renderGrid(); });
  });
  window.addEventListener("resize", function () { last = null; renderGrid(); });

  // -- the active cell, the keyboard and the side panel ---------------------------------------------
  function ensureVisible(r, c) {
    var W = cellWidth();
    var y = r * ROW_H, x = c * W, visH = wrap.clientHeight - headH, visW = wrap.clientWidth - SRC_W;
    if (y < wrap.scrollTop) { wrap.scrollTop = y; } else if (y + ROW_H > wrap.scrollTop + visH) { wrap.scrollTop = y + ROW_H - visH; }
    if (x < wrap.scrollLeft) { wrap.scrollLeft = x; } else if (x + W > wrap.scrollLeft + visW) { wrap.scrollLeft = x + W - visW; }
  }
  function setActive(r, c) {
    if (!rows.length || !cols.length) { return; }
    r = Math.max(0, Math.min(rows.length - 1, r));
    c = Math.max(0, Math.min(cols.length - 1, c));
    var old = $(cellId(act.r, act.c));
    if (old) { old.classList.remove("active"); old.removeAttribute("aria-selected"); }
    act = {r: r, c: c};
    ensureVisible(r, c);
    renderGrid();
    var a = $(cellId(r, c));
    if (a) {
      a.classList.add("active");
      a.setAttribute("aria-selected", "true");
      grid.setAttribute("aria-activedescendant", a.id);
    }
  }
  function addRow(dl, term, value, cls) {
    dl.appendChild(el("dt", null, term));
    dl.appendChild(el("dd", cls || null, value));
  }
  function openPanel(r, c) {
    var src = rows[r], cc = cols[c];
    if (src === undefined || cc === undefined) { return; }
    var k = key(src, cc.dst, cc.probe.protocol, cc.probe.port);
    var cell = cellMap.get(k), ch = changeMap.get(k), dl = $("panel-body");
    clear(dl);
    $("panel-title").textContent = src + " \u2192 " + cc.dst + " " + cc.label;
    addRow(dl, "Source", src + epInfo(src));
    addRow(dl, "Destination", cc.dst + epInfo(cc.dst));
    addRow(dl, "Probe", cc.label);
    if (cell) {
      addRow(dl, "Verdict", vtext(cell.verdict), "v-" + str(cell.verdict));
      addRow(dl, "Reason", str(cell.reason));
      addRow(dl, "Ingress", stage(cell.ingress, "not evaluated (the destination host has no plan)"));
      addRow(dl, "Egress", stage(cell.egress, "not evaluated (the source is not a host endpoint with a plan)"));
      if (cell.pending) {
        var will = cell.pending.verdict !== cell.verdict;
        addRow(dl, "Pending", vtext(cell.pending.verdict) + (will ? " (changes once the staged policies are promoted)" : " (unchanged)"),
               "v-" + str(cell.pending.verdict));
        addRow(dl, "Pending reason", str(cell.pending.reason));
      }
    } else {
      addRow(dl, "Verdict", "no cell in this matrix");
    }
    if (ch) {
      addRow(dl, "Change", str(ch.change) + (D ? " (" + str(D.old) + " \u2192 " + str(D.new) + ")" : ""));
      addRow(dl, "Old", stage(ch.old, "none"), "v-" + str((ch.old || {}).verdict));
      addRow(dl, "New", stage(ch.new, "none"), "v-" + str((ch.new || {}).verdict));
    } else if (D && view === "diff" && cell) {
      addRow(dl, "Change", "unchanged");
    }
    $("panel").hidden = false;
  }
  function openEndpoint(r) {
    var src = rows[r];
    if (src === undefined) { return; }
    var dl = $("panel-body"), e = eps.get(src) || {};
    clear(dl);
    $("panel-title").textContent = src;
    addRow(dl, "Kind", str(e.kind));
    addRow(dl, "Addresses", (e.ips || []).join(", "));
    var labels = e.labels || {};
    Object.keys(labels).sort(cmp).forEach(function (k) { addRow(dl, "Label " + k, str(labels[k])); });
    $("panel").hidden = false;
  }
  grid.addEventListener("click", function (ev) {
    var t = ev.target.closest ? ev.target.closest("td.cell, tbody th") : null;
    if (!t) { return; }
    var r = parseInt(t.getAttribute("data-r"), 10);
    if (t.tagName === "TH") { openEndpoint(r); return; }
    var c = parseInt(t.getAttribute("data-c"), 10);
    setActive(r, c);
    openPanel(r, c);
    grid.focus({preventScroll: true});
  });
  grid.addEventListener("keydown", function (ev) {
    var page = Math.max(1, Math.floor((wrap.clientHeight - headH) / ROW_H) - 1), r = act.r, c = act.c;
    switch (ev.key) {
      case "ArrowUp": r -= 1; break;
      case "ArrowDown": r += 1; break;
      case "ArrowLeft": c -= 1; break;
      case "ArrowRight": c += 1; break;
      case "PageUp": r -= page; break;
      case "PageDown": r += page; break;
      case "Home": c = 0; if (ev.ctrlKey) { r = 0; } break;
      case "End": c = cols.length - 1; if (ev.ctrlKey) { r = rows.length - 1; } break;
      case "Enter": case " ": openPanel(act.r, act.c); ev.preventDefault(); return;
      case "Escape": $("panel").hidden = true; ev.preventDefault(); return;
      default: return;
    }
    ev.preventDefault();
    setActive(r, c);
    if (!$("panel").hidden) { openPanel(act.r, act.c); }
  });
  $("panel-close").addEventListener("click", function () { $("panel").hidden = true; grid.focus(); });

  // -- controls, legend, staged policies and the diff summary ---------------------------------------
  var LEGENDS = {
    enforced: [["allow", "allow", "allowed"], ["deny", "DENY", "denied"],
               ["allow will-change", "allow", "pending verdict differs"], ["none", "\u00a0", "no cell"]],
    pending: [["allow", "allow", "allowed, unchanged"], ["deny", "DENY", "denied, unchanged"],
              ["to-allow", "DENY \u2192 allow", "opens once promoted"], ["to-deny", "allow \u2192 DENY", "closes once promoted"]],
    diff: [["opened", "opened", "deny \u2192 allow"], ["closed", "closed", "allow \u2192 deny"], ["unchanged", "= allow", "unchanged"]]
  };
  function legend() {
    var box = $("legend");
    clear(box);
    LEGENDS[view].forEach(function (l) {
      if (l[0].indexOf("will-change") >= 0 && !hasPending) { return; }
      var item = el("span");
      item.appendChild(el("span", "sw " + l[0], l[1]));
      item.appendChild(document.createTextNode(l[2]));
      box.appendChild(item);
    });
  }
  function extra() {
    var box = $("extra");
    clear(box);
    if (view === "pending" && Array.isArray(M.staged) && M.staged.length) {
      var d = el("details"), t = el("table"), h = el("tr");
      d.appendChild(el("summary", null, M.staged.length + " staged polic" + (M.staged.length === 1 ? "y" : "ies")));
      ["kind", "name", "tier", "stagedAction"].forEach(function (k) { h.appendChild(el("th", null, k)); });
      t.appendChild(h);
      M.staged.forEach(function (s) {
        var tr = el("tr");
        ["kind", "name", "tier", "stagedAction"].forEach(function (k) { tr.appendChild(el("td", null, str(s[k]))); });
        t.appendChild(tr);
      });
      d.appendChild(t);
      box.appendChild(d);
    }
    if (view === "diff" && D) {
      var sm = D.summary || {}, dd = el("details");
      dd.id = "diff-summary";
      dd.appendChild(el("summary", null, str(D.old) + " \u2192 " + str(D.new) + ": " + str(sm.opened) + " opened, " +
        str(sm.closed) + " closed, " + str(sm.unchanged) + " unchanged"));
      var ul = el("ul");
      (Array.isArray(D.groups) ? D.groups : []).forEach(function (g) {
        var li = el("li", null, str(g.change) + " (" + str(g.count) + "): " + (g.sources || []).join(", ") + " \u2192 " +
          (g.destinations || []).join(", ") + " on " + (g.probes || []).map(function (p) {
            return typeof p === "object" && p !== null ? plabel(p) : str(p);
          }).join(", ") + "; was: " + str(g.old_reason) + "; now: " + str(g.new_reason));
        ul.appendChild(li);
      });
      dd.appendChild(ul);
      box.appendChild(dd);
    }
  }
  function switchView(v) {
    view = v;
    wrap.scrollTop = 0;
    wrap.scrollLeft = 0;
    act = {r: 0, c: 0};
    legend();
    extra();
    applyFilter();
    if (!$("panel").hidden) { openPanel(act.r, act.c); }
  }
  var names = Object.keys(VIEWS);
  if (names.length > 1) {
    var fs = $("views");
    names.forEach(function (v) {
      var lab = el("label"), input = el("input");
      input.type = "radio";
      input.name = "view";
      input.value = v;
      input.id = "view-" + v;
      input.checked = v === view;
      input.addEventListener("change", function () { if (input.checked) { switchView(v); } });
      lab.appendChild(input);
      lab.appendChild(document.createTextNode(" " + VIEWS[v].label));
      fs.appendChild(lab);
    });
    fs.hidden = false;
  }
  ["f-src", "f-dst"].forEach(function (id) { $(id).addEventListener("input", applyFilter); });
  $("f-verdict").addEventListener("change", applyFilter);
  legend();
  extra();
  applyFilter();
  window.hostfwMatrix = {loadMs: performance.now() - t0, rows: function () { return rows.length; },
                         cols: function () { return cols.length; }, view: function () { return view; }};
  document.documentElement.setAttribute("data-ready", "1");
}());
"""


def _sha256(text: str) -> str:
    return "'sha256-%s'" % base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


CSP = "default-src 'none'; script-src %s; style-src %s; img-src 'none'; base-uri 'none'; form-action 'none'" % (
    _sha256(_JS), _sha256(_CSS))


def render(matrix_text: str, diff_text: Optional[str] = None, title: str = DEFAULT_TITLE) -> str:
    """The self-contained HTML page for ``matrix_text`` (and ``diff_text``), both ``json_text()`` output.

    Raises ValueError when a text is not canonical (it could then hold ``</script>``) or lacks the
    top-level lists of a matrix (``probes``, ``cells``) or of a diff (``changes``).
    """
    _canonical(matrix_text, "matrix", {"probes": list, "cells": list})
    if diff_text is not None:
        _canonical(diff_text, "diff", {"changes": list})
    safe_title = html.escape(title, quote=True)
    parts = [
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
        "<meta http-equiv=\"Content-Security-Policy\" content=\"%s\">\n" % CSP,
        "<meta name=\"referrer\" content=\"no-referrer\">\n",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
        "<title>%s</title>\n" % safe_title,
        "<style>", _CSS, "</style>\n</head>\n<body>\n",
        _BODY % {"title": safe_title},
        "<script type=\"application/json\" id=\"hostfw-matrix\">", matrix_text, "</script>\n",
    ]
    if diff_text is not None:
        parts += ["<script type=\"application/json\" id=\"hostfw-diff\">", diff_text, "</script>\n"]
    parts += ["<script>", _JS, "</script>\n</body>\n</html>\n"]
    return "".join(parts)
