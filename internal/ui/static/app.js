// quorumkv dashboard. Plain JavaScript, no dependencies: it polls /ui/api/* on the node
// that served it and redraws. Every value from the cluster reaches the page through
// textContent or an attribute, never through innerHTML.
"use strict";

const REFRESH_MS = 5000; // default; #refresh=MS (at least 200) overrides it, for demos and tests
const OPS = ["get", "put", "delete", "update"];
const PALETTE = ["#2f6fdf", "#e0762b", "#2a9d58", "#c23b7a", "#7b57d1", "#1aa3a3", "#b59a1a",
  "#8c564b", "#d9485f", "#5a6b7d", "#6aa84f", "#e377c2"];
const OP_COLOURS = { get: "#2f6fdf", put: "#e0762b", delete: "#c62828", update: "#2a9d58" };
const SVGNS = "http://www.w3.org/2000/svg";

const state = {
  cluster: null,      // last ClusterView
  clusterAt: 0,       // when it arrived (ms)
  metricsNode: "",    // node whose charts are shown ("" = the serving node)
  series: null,       // last NodeView with series for metricsNode
  key: null,          // {bucket, key} being inspected
  refreshes: 0,
  refreshMs: REFRESH_MS,
};

// ---- small helpers ----

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(typeof c === "string" ? document.createTextNode(c) : c);
  }
  return e;
}

function svg(tag, attrs, ...children) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "text") e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c) e.append(c);
  return e;
}

function badge(s) { return el("span", { class: "badge " + (s || "unknown"), text: s || "unknown" }); }

function fmtNum(v, digits) {
  if (v === undefined || v === null || Number.isNaN(v)) return "–";
  if (v === 0) return "0";
  const d = digits === undefined ? (Math.abs(v) >= 100 ? 0 : Math.abs(v) >= 10 ? 1 : 2) : digits;
  return v.toFixed(d);
}
function fmtMs(v) { return v === undefined || v === null ? "–" : v < 1 ? fmtNum(v, 3) + " ms" : fmtNum(v) + " ms"; }
function fmtBytes(b) {
  if (!b) return "0 B";
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (b >= 1024 && i < u.length - 1) { b /= 1024; i++; }
  return (i ? b.toFixed(1) : b) + " " + u[i];
}
function fmtAge(s) {
  if (!s) return "–";
  if (s < 90) return s.toFixed(0) + " s";
  if (s < 5400) return (s / 60).toFixed(0) + " min";
  return (s / 3600).toFixed(1) + " h";
}
function fmtTime(ms) { return new Date(ms).toLocaleTimeString(); }

async function getJSON(url) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), 4000);
  try {
    const r = await fetch(url, { signal: ctl.signal, cache: "no-store", headers: { Accept: "application/json" } });
    let body = null;
    try { body = await r.json(); } catch (e) { /* not JSON */ }
    return { status: r.status, body };
  } finally {
    clearTimeout(timer);
  }
}

function replaceRows(tbody, rows, emptyText, cols) {
  tbody.replaceChildren(...rows);
  if (!rows.length && emptyText) {
    tbody.append(el("tr", {}, el("td", { class: "empty", colspan: String(cols), text: emptyText })));
  }
}

function colourOf(i) { return i < 0 ? "#c7ccd4" : PALETTE[i % PALETTE.length]; }

// A node's state as shown: gossip's view, but a member whose dashboard does not answer is
// at best "unreachable" when gossip still calls it alive.
function shownState(n) {
  if (n.state === "alive" && !n.reachable) return "unreachable";
  return n.state;
}

// ---- ring ----

function renderRing(cv) {
  const box = document.getElementById("ring");
  const q = cv.owners.length;
  const s = svg("svg", { viewBox: "0 0 300 300", role: "img" });
  const cx = 150, cy = 150, r0 = 92, r1 = 142;
  if (!q) {
    s.append(svg("text", { x: cx, y: cy, text: "no ring yet" }));
    box.replaceChildren(s);
    return;
  }
  for (let p = 0; p < q; p++) {
    const i = cv.owners[p];
    const owner = cv.nodes[i];
    const a0 = (p / q) * 2 * Math.PI - Math.PI / 2, a1 = ((p + 1) / q) * 2 * Math.PI - Math.PI / 2;
    const large = a1 - a0 > Math.PI ? 1 : 0;
    const pt = (r, a) => (cx + r * Math.cos(a)).toFixed(2) + " " + (cy + r * Math.sin(a)).toFixed(2);
    const d = q === 1
      ? `M ${cx - r1} ${cy} a ${r1} ${r1} 0 1 0 ${2 * r1} 0 a ${r1} ${r1} 0 1 0 ${-2 * r1} 0`
      : `M ${pt(r1, a0)} A ${r1} ${r1} 0 ${large} 1 ${pt(r1, a1)} L ${pt(r0, a1)} A ${r0} ${r0} 0 ${large} 0 ${pt(r0, a0)} Z`;
    const down = owner && owner.state === "down";
    const path = svg("path", { d, fill: colourOf(i), class: "part" + (down ? " owner-down" : ""), "data-partition": p });
    path.append(svg("title", { text: `partition ${p} → ${owner ? owner.id + " (" + owner.state + ")" : "unknown owner"}` }));
    s.append(path);
  }
  const down = cv.nodes.filter(n => n.state === "down").length;
  s.append(svg("text", { x: cx, y: cy - 4, text: `${q} partitions` }));
  s.append(svg("text", { x: cx, y: cy + 13, class: "sub", text: `${cv.nodes.length} nodes` + (down ? `, ${down} down` : "") }));
  box.replaceChildren(s);

  const legend = document.getElementById("ring-legend");
  legend.replaceChildren(...cv.nodes.map((n, i) =>
    el("li", { "data-node": n.id },
      el("span", { class: "swatch", "data-colour": colourOf(i) }),
      `${n.id} · ${n.partitions} · ${n.state}`)));
  // Colours set through the CSSOM: the page's CSP forbids inline style attributes.
  legend.querySelectorAll(".swatch").forEach(sw => { sw.style.background = sw.dataset.colour; });
}

// ---- nodes ----

function viewOf(n) { return n.view || null; }

function nodeRate(v) { return v && v.latest ? v.latest.reads.rate + v.latest.writes.rate : null; }
function nodeErrors(v) { return v && v.latest ? v.latest.reads.errors + v.latest.writes.errors : null; }
function opP99(v, op) { return v && v.latest && v.latest.ops[op] ? v.latest.ops[op].p99_ms : null; }

function renderNodes(cv) {
  const rows = cv.nodes.map(n => {
    const v = viewOf(n);
    const st = shownState(n);
    const tr = el("tr", { "data-node": n.id, "data-state": st, class: st === "alive" ? "" : "down" },
      el("td", {}, el("strong", { text: n.id }), n.id === cv.node ? el("span", { class: "muted small", text: " (this node)" }) : null),
      el("td", {}, badge(st)),
      el("td", { text: n.zone || "–" }),
      el("td", { class: "num", text: String(n.partitions) }),
      el("td", { class: "small", text: n.http || "–" }),
      el("td", { class: "num", text: fmtNum(nodeRate(v)) }),
      el("td", { class: "num", text: fmtNum(nodeErrors(v)) }),
      el("td", { class: "num", text: fmtMs(opP99(v, "get")) }),
      el("td", { class: "num", text: fmtMs(opP99(v, "put")) }),
      el("td", { class: "num", text: v ? String(v.hints.pending) : "–" }));
    if (n.error) tr.title = "dashboard not answering: " + n.error;
    return tr;
  });
  replaceRows(document.querySelector("#nodes tbody"), rows, "no members", 10);

  const sel = document.getElementById("metrics-node");
  const want = state.metricsNode || cv.node;
  const ids = cv.nodes.map(n => n.id);
  if (sel.options.length !== ids.length || ids.some((id, i) => sel.options[i].value !== id)) {
    sel.replaceChildren(...ids.map(id => el("option", { value: id, text: id })));
  }
  sel.value = want;
}

// ---- requests ----

function chart(title, lines, opts) {
  const W = 400, H = 130, L = 36, R = 6, T = 8, B = 16;
  const wrap = el("div", { class: "chart" }, el("h3", { text: title }));
  const s = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title });
  const tmin = opts.tmin, tmax = opts.tmax;
  let ymax = 0;
  for (const ln of lines) for (const [, y] of ln.points) if (y !== null && y > ymax) ymax = y;
  ymax = ymax > 0 ? ymax * 1.1 : 1;
  const x = t => L + (W - L - R) * (tmax > tmin ? (t - tmin) / (tmax - tmin) : 1);
  const y = v => T + (H - T - B) * (1 - v / ymax);
  for (const f of [0, 0.5, 1]) {
    const yy = y(ymax * f);
    s.append(svg("line", { x1: L, x2: W - R, y1: yy, y2: yy, class: "grid" }));
    s.append(svg("text", { x: L - 3, y: yy + 3, class: "axis", "text-anchor": "end", text: fmtNum(ymax * f) }));
  }
  const mins = Math.round((tmax - tmin) / 60000);
  s.append(svg("text", { x: L, y: H - 3, class: "axis", text: mins ? `-${mins} min` : "" }));
  s.append(svg("text", { x: W - R, y: H - 3, class: "axis", "text-anchor": "end", text: "now" }));
  for (const ln of lines) {
    // A gap (null) breaks the line: no request, no latency.
    let d = "", pen = false;
    for (const [t, v] of ln.points) {
      if (v === null) { pen = false; continue; }
      d += (pen ? " L " : " M ") + x(t).toFixed(1) + " " + y(v).toFixed(1);
      pen = true;
    }
    if (d) s.append(svg("path", { d, class: "line" + (ln.dashed ? " dashed" : ""), stroke: ln.colour }));
  }
  wrap.append(s);
  const keys = el("div", { class: "keys" });
  for (const ln of lines) {
    if (ln.nokey) continue;
    const sw = el("span", { class: "swatch" });
    sw.style.background = ln.colour;
    keys.append(el("span", {}, sw, ln.label));
  }
  wrap.append(keys);
  return wrap;
}

function renderRequests(v) {
  const charts = document.getElementById("charts");
  const tbody = document.querySelector("#ops tbody");
  const win = document.getElementById("requests-window");
  if (!v) {
    charts.replaceChildren(el("p", { class: "empty", text: "no metrics from this node" }));
    replaceRows(tbody, [], "–", 4);
    win.textContent = "";
    return;
  }
  const pts = v.series || [];
  const secs = Math.round(pts.length * v.interval_s);
  const span = secs < 90 ? `${secs} s` : `${Math.round(secs / 6) / 10} min`;
  win.textContent = pts.length ? `last ${span}, ${v.interval_s} s windows` : "collecting…";
  const tmax = pts.length ? pts[pts.length - 1].t : v.sampled_at;
  const tmin = pts.length ? Math.min(pts[0].t - v.interval_s * 1000, tmax - 60000) : tmax - 60000;
  const opts = { tmin, tmax };
  const used = OPS.filter(op => pts.some(p => p.ops[op] && p.ops[op].rate > 0));
  const shown = used.length ? used : ["get", "put"];
  const rate = shown.map(op => ({ label: op, colour: OP_COLOURS[op], points: pts.map(p => [p.t, p.ops[op] ? p.ops[op].rate : 0]) }));
  const lat = [];
  for (const op of shown) {
    lat.push({ label: op + " p99", colour: OP_COLOURS[op], points: pts.map(p => [p.t, p.ops[op] && p.ops[op].p99_ms !== undefined ? p.ops[op].p99_ms : null]) });
    lat.push({ label: op + " p50", colour: OP_COLOURS[op], dashed: true, nokey: true, points: pts.map(p => [p.t, p.ops[op] && p.ops[op].p50_ms !== undefined ? p.ops[op].p50_ms : null]) });
  }
  const errs = [
    { label: "read errors", colour: "#c62828", points: pts.map(p => [p.t, p.reads.errors]) },
    { label: "write errors", colour: "#7b57d1", points: pts.map(p => [p.t, p.writes.errors]) },
  ];
  charts.replaceChildren(
    chart("requests / s", rate, opts),
    chart("latency, ms (p99 solid, p50 dashed)", lat, opts),
    chart("failed requests / s", errs, opts));

  const l = v.latest;
  const rows = OPS.map(op => {
    const o = l && l.ops[op];
    return el("tr", { "data-op": op },
      el("td", { text: op }),
      el("td", { class: "num", text: o ? fmtNum(o.rate) : "–" }),
      el("td", { class: "num", text: o ? fmtMs(o.p50_ms) : "–" }),
      el("td", { class: "num", text: o ? fmtMs(o.p99_ms) : "–" }));
  });
  rows.push(el("tr", {}, el("td", { text: "reads failed" }), el("td", { class: "num", text: l ? fmtNum(l.reads.errors) : "–" }), el("td"), el("td")));
  rows.push(el("tr", {}, el("td", { text: "writes failed" }), el("td", { class: "num", text: l ? fmtNum(l.writes.errors) : "–" }), el("td"), el("td")));
  replaceRows(tbody, rows);
}

// ---- hints, anti-entropy, transfers ----

function renderHints(cv) {
  const rows = [];
  const unknown = [];
  for (const n of cv.nodes) {
    const v = viewOf(n);
    if (!v) { unknown.push(n.id); continue; }
    for (const t of v.hints.targets) {
      if (!t.pending) continue;
      rows.push(el("tr", { "data-holder": n.id, "data-target": t.target },
        el("td", { text: n.id }),
        el("td", {}, t.target + " ", badge(t.state)),
        el("td", { class: "num", text: String(t.pending) }),
        el("td", { class: "num", text: fmtBytes(t.bytes) }),
        el("td", { class: "num", text: fmtAge(t.oldest_age_s) }),
        el("td", { class: "num", text: String(t.delivered) })));
    }
  }
  replaceRows(document.querySelector("#hints tbody"), rows, "no hints pending", 6);
  document.getElementById("hints-note").textContent =
    unknown.length ? `Not known for ${unknown.join(", ")} (not answering).` : "";
}

function renderAAE(cv) {
  const rows = cv.nodes.map(n => {
    const v = viewOf(n);
    if (!v) {
      return el("tr", { "data-node": n.id, class: "down" }, el("td", { text: n.id }),
        el("td", { colspan: "4", class: "empty", text: "not answering" }));
    }
    const r = v.recent || {};
    const trees = v.trees.ready ? "ready" : `building ${(v.trees.rebuild_progress * 100).toFixed(0)}%`;
    const tr = el("tr", { "data-node": n.id },
      el("td", { text: n.id }),
      el("td", { class: "small", text: trees + (v.trees.drift ? `, ${v.trees.drift} drifted` : "") }),
      el("td", { class: "num", text: fmtNum(r.exchanges, 0) + (r.errors ? ` (${r.errors} failed)` : "") }),
      el("td", { class: "num", text: fmtNum(r.segments_differed, 0) }),
      el("td", { class: "num", text: fmtNum(r.keys_repaired, 0) }));
    const t = v.totals;
    tr.title = `since start: ${t.aae_exchanges} exchanges (${t.aae_errors} failed), ${t.aae_segments_differed} segments differed, ` +
      `${t.aae_keys_repaired} keys repaired, ${fmtBytes(t.aae_bytes)} sent; ${v.trees.rebuilds} tree rebuilds, ` +
      `tree memory ${fmtBytes(v.trees.tree_bytes)}`;
    return tr;
  });
  replaceRows(document.querySelector("#aae tbody"), rows, "no members", 5);
}

async function refreshTransfers() {
  const box = document.getElementById("transfers");
  let res;
  try { res = await getJSON("/v1/cluster/transfers"); } catch (e) { return; }
  const t = res.status === 200 && res.body ? res.body : null;
  if (!t || !t.pending) {
    box.replaceChildren(el("p", { class: "empty", id: "transfers-none", text: "none" }));
    return;
  }
  // One row per node taking partitions over, with the share it has completed; a node down
  // with partitions still to take holds the change back (a partition moves only once every
  // node gaining it has it).
  const rows = (t.gainers || []).map(g => {
    const frac = g.partitions ? g.partitions_done / g.partitions : 1;
    const held = !g.up && g.partitions_done < g.partitions;
    return el("tr", { "data-node": g.node },
      el("td", { text: g.node }),
      el("td", { class: "small", text: held ? "down: the change waits for it" : `${g.state}${g.up ? "" : ", down"}` }),
      el("td", {}, el("progress", { max: "1", value: String(frac) })),
      el("td", { class: "num", text: `${g.partitions_done}/${g.partitions} (${(100 * frac).toFixed(0)}%)` }));
  });
  const mine = (t.transfers || []).filter(x => x.phase !== "done").length;
  const head = `${(t.ring || []).join(",")} → ${(t.next || []).join(",")}: ${t.partitions_moved} of ` +
    `${t.partitions_moved + t.partitions_waiting} partitions moved` +
    (t.keys_done ? `; this node received ${fmtNum(t.keys_done, 0)} keys, ${fmtBytes(t.bytes_done)}` : "") +
    (mine ? `, ${mine} partitions to go` : "");
  box.replaceChildren(el("p", { id: "transfers-change", text: head }), el("div", { class: "scroll" }, el("table", {},
    el("thead", {}, el("tr", {}, el("th", { text: "node" }), el("th", { text: "state" }), el("th", { text: "progress" }),
      el("th", { class: "num", text: "partitions" }))),
    el("tbody", {}, ...rows))));
}

// ---- key inspector ----

function decodeValue(b64) {
  let bytes;
  try {
    const bin = atob(b64 || "");
    bytes = Uint8Array.from(bin, c => c.charCodeAt(0));
  } catch (e) { return { text: "(undecodable)", binary: true }; }
  try {
    const text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    return { text: text.length > 200 ? text.slice(0, 200) + "…" : text, binary: false, size: bytes.length };
  } catch (e) {
    const hex = Array.from(bytes.slice(0, 48), b => b.toString(16).padStart(2, "0")).join("");
    return { text: "0x" + hex + (bytes.length > 48 ? "…" : ""), binary: true, size: bytes.length };
  }
}

// reason shortens a Go error chain to its last part ("connection refused").
function reason(err) {
  if (!err) return "";
  const parts = err.split(": ");
  return parts[parts.length - 1];
}

function renderKey(res) {
  const out = document.getElementById("key-result");
  if (res.status !== 200 || !res.body || !res.body.endpoints) {
    out.replaceChildren(el("p", { class: "tomb", text: (res.body && res.body.error) || `error ${res.status}` }));
    return;
  }
  const kv = res.body, ep = kv.endpoints;
  const prefs = el("div", { class: "chips", id: "key-preflist" }, el("strong", { text: "preference list:" }));
  for (const p of ep.primaries) prefs.append(el("span", { class: "chip", "data-node": p.id }, p.id + " ", badge(p.state)));
  for (const f of ep.fallbacks) prefs.append(el("span", { class: "chip", "data-node": f.id }, `${f.id} (fallback for ${f.hint_for}) `, badge(f.state)));
  if (!ep.fallbacks.length) prefs.append(el("span", { class: "muted small", text: "no fallbacks in use" }));

  const rows = kv.replicas.map(r => {
    const c = r.copy;
    const copy = el("td", {}), sibs = el("td", {});
    if (!r.reachable) {
      copy.append(badge("unreachable"), el("span", { class: "why small muted", title: r.error || "", text: reason(r.error) }));
    } else if (!c || !c.found) {
      copy.append(el("span", { class: "empty", text: "holds nothing" }));
    } else {
      copy.append(c.tombstone ? el("span", { class: "tomb", text: "tombstone" })
        : `${c.values.length} value${c.values.length === 1 ? "" : "s"}`);
      if (c.hinted_for) copy.append(el("div", { class: "small", text: "hint for " + c.hinted_for }));
      copy.append(el("div", { class: "small muted why", title: c.context, text: "context " + c.context }));
      for (const sb of c.siblings) {
        const dv = decodeValue(sb.value);
        sibs.append(el("span", { class: "sib" + (sb.tombstone ? " tomb" : ""), "data-sibling": sb.tombstone ? "(tombstone)" : dv.text },
          sb.tombstone ? "tombstone" : el("code", { text: dv.text }),
          el("span", { class: "meta muted small", title: `dot ${sb.dot}, timestamp ${sb.timestamp}`, text: `dot ${sb.dot} · ${sb.timestamp}` })));
      }
    }
    return el("tr", { "data-node": r.node, "data-found": String(!!(c && c.found)), "data-reachable": String(r.reachable) },
      el("td", {}, el("strong", { text: r.node })),
      el("td", {}, r.role ? badge(r.role) : el("span", { class: "muted", text: "–" }), r.hint_for ? ` for ${r.hint_for}` : ""),
      el("td", {}, badge(r.state)),
      copy, sibs);
  });
  const table = el("table", { id: "key-replicas" },
    el("thead", {}, el("tr", {}, ...["node", "role", "state", "copy", "siblings"].map(h => el("th", { text: h })))),
    el("tbody", {}, ...rows));
  out.replaceChildren(
    el("p", {}, el("strong", { text: `${ep.bucket}/${ep.key}` }), ` — partition ${ep.partition}, n=${ep.n}`),
    prefs, el("div", { class: "scroll" }, table));
}

async function inspectKey() {
  if (!state.key) return;
  const q = new URLSearchParams(state.key);
  try {
    renderKey(await getJSON("/ui/api/key?" + q.toString()));
  } catch (e) {
    document.getElementById("key-result").replaceChildren(el("p", { class: "tomb", text: "cannot reach this node: " + e }));
  }
}

// ---- refresh loop ----

function setStatus(ok, msg) {
  const st = document.getElementById("status");
  const banner = document.getElementById("banner");
  st.textContent = msg;
  st.classList.toggle("stale", !ok);
  if (ok) banner.hidden = true;
}

function nodeURL(id) {
  return "/ui/api/node" + (!id || (state.cluster && id === state.cluster.node) ? "" : "?node=" + encodeURIComponent(id));
}

async function refresh() {
  try {
    // The cluster, the charted node, the transfers and the inspected key, all at once.
    const [res, nv] = await Promise.all([getJSON("/ui/api/cluster"), getJSON(nodeURL(state.metricsNode))]);
    if (res.status !== 200 || !res.body || !res.body.nodes) throw new Error((res.body && res.body.error) || "status " + res.status);
    const cv = res.body;
    state.cluster = cv;
    state.clusterAt = Date.now();
    document.getElementById("served-by").textContent = `served by ${cv.node}`;
    renderRing(cv);
    renderNodes(cv);
    renderHints(cv);
    renderAAE(cv);
    renderRequests(nv.status === 200 ? nv.body : null);
    if (!document.body.dataset.firstDataMs) document.body.dataset.firstDataMs = performance.now().toFixed(0);
    setStatus(true, "updated " + fmtTime(state.clusterAt));
    await Promise.all([refreshTransfers(), inspectKey()]);
    state.refreshes++;
    document.body.dataset.refreshes = String(state.refreshes);
  } catch (e) {
    // The node serving the page is down or unreachable: keep what is shown, say so, offer
    // the other nodes' dashboards, retry.
    const since = state.clusterAt ? " Showing data from " + fmtTime(state.clusterAt) + "." : "";
    const banner = document.getElementById("banner");
    banner.replaceChildren(`Cannot reach the node serving this page (${e.message || e}).${since} Retrying every ${state.refreshMs / 1000} s.`);
    const others = state.cluster ? state.cluster.nodes.filter(n => n.id !== state.cluster.node && n.http) : [];
    if (others.length) {
      banner.append(" Other nodes' dashboards: ");
      others.forEach((n, i) => {
        if (i) banner.append(", ");
        banner.append(el("a", { href: `http://${n.http}/ui/`, text: n.id }));
      });
    }
    banner.hidden = false;
    setStatus(false, "stale");
  } finally {
    setTimeout(refresh, state.refreshMs);
  }
}

function readHash() {
  const h = new URLSearchParams(location.hash.slice(1));
  if (h.get("bucket") && h.get("key")) {
    state.key = { bucket: h.get("bucket"), key: h.get("key") };
    document.getElementById("key-bucket").value = state.key.bucket;
    document.getElementById("key-key").value = state.key.key;
  }
  state.metricsNode = h.get("node") || "";
  const ms = Number(h.get("refresh"));
  if (ms >= 200) state.refreshMs = ms;
  document.getElementById("refresh-note").textContent = `Refreshes every ${state.refreshMs / 1000} s.`;
}

function writeHash() {
  const h = new URLSearchParams();
  if (state.metricsNode) h.set("node", state.metricsNode);
  if (state.key) { h.set("bucket", state.key.bucket); h.set("key", state.key.key); }
  if (state.refreshMs !== REFRESH_MS) h.set("refresh", String(state.refreshMs));
  history.replaceState(null, "", "#" + h.toString());
}

document.addEventListener("DOMContentLoaded", () => {
  readHash();
  document.getElementById("key-form").addEventListener("submit", ev => {
    ev.preventDefault();
    state.key = { bucket: document.getElementById("key-bucket").value, key: document.getElementById("key-key").value };
    writeHash();
    inspectKey();
  });
  document.getElementById("metrics-node").addEventListener("change", ev => {
    state.metricsNode = ev.target.value;
    writeHash();
    getJSON(nodeURL(state.metricsNode))
      .then(nv => renderRequests(nv.status === 200 ? nv.body : null)).catch(() => renderRequests(null));
  });
  refresh();
});
