// swarmrank dashboard: reads /v1/rounds, /v1/rounds/{id}/analysis and /v1/reputation and draws
// them with plain DOM and SVG. Every string from a round (answers are model output) goes into the
// page through textContent or an attribute value, never parsed as HTML.
"use strict";

(() => {
  const SVG = "http://www.w3.org/2000/svg";
  const KEY = "swarmrank.key";
  const PALETTE = ["#2d5bd7", "#d9480f", "#2b8a3e", "#ae3ec9", "#f2b705", "#1098ad", "#c2255c", "#5c940d",
                   "#7048e8", "#495057"];
  const $ = (id) => document.getElementById(id);

  // -- DOM helpers ------------------------------------------------------------------------------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG, tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }

  function setAttrs(node, attrs) {
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "text") node.textContent = String(value);
      else node.setAttribute(name, String(value));
    }
  }

  function append(node, children) {
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }

  function tooltip(text) {
    return svg("title", { text });
  }

  function clear(node) {
    node.replaceChildren();
    return node;
  }

  const fmt = (x, digits = 2) => (x === null || x === undefined ? "—" : Number(x).toFixed(digits));
  const pct = (x) => (x === null || x === undefined ? "—" : `${Math.round(x * 100)}%`);
  const short = (text, n) => (text.length > n ? `${text.slice(0, n - 1)}…` : text);

  function status(text, isError = false) {
    const s = $("status");
    s.textContent = text;
    s.classList.toggle("error", isError);
  }

  // -- the key and the API ----------------------------------------------------------------------
  // The key comes in the URL fragment (#key=...), which browsers never send to a server, so it is
  // in no access log; it is then kept in sessionStorage (this tab only) and dropped from the URL.
  function takeKeyFromFragment() {
    const params = new URLSearchParams(location.hash.slice(1));
    const key = params.get("key");
    if (key) {
      sessionStorage.setItem(KEY, key);
      params.delete("key");
      const rest = params.toString();
      history.replaceState(null, "", location.pathname + location.search + (rest ? `#${rest}` : ""));
    }
  }

  class AuthNeeded extends Error {}

  async function api(path) {
    const headers = { Accept: "application/json" };
    const key = sessionStorage.getItem(KEY);
    if (key) headers.Authorization = `Bearer ${key}`;
    const response = await fetch(path, { headers, cache: "no-store" });
    $("forget-key").hidden = !key;
    if (response.status === 401) throw new AuthNeeded(await errorMessage(response));
    if (!response.ok) throw new Error(await errorMessage(response));
    return response.json();
  }

  async function errorMessage(response) {
    try {
      const body = await response.json();
      const retry = response.headers.get("retry-after");
      return `${response.status}: ${body.error.message}${retry ? ` (retry in ${retry}s)` : ""}`;
    } catch (_) {
      return `${response.status} ${response.statusText}`;
    }
  }

  function handle(error) {
    if (error instanceof AuthNeeded) {
      $("key-form").hidden = false;
      status(sessionStorage.getItem(KEY) ? `key refused (${error.message})` : "an API key is needed", true);
      return;
    }
    status(String(error.message || error), true);
  }

  // -- rounds ------------------------------------------------------------------------------------
  function selectedRound() {
    return new URLSearchParams(location.hash.slice(1)).get("round");
  }

  async function loadRounds() {
    const list = await api("/v1/rounds?limit=50");
    const body = clear($("rounds").tBodies[0]);
    $("rounds-empty").hidden = list.data.length > 0;
    for (const r of list.data) {
      const row = el("tr", { "data-round": r.round_id },
        el("td", { text: new Date(r.created_at).toLocaleString(), title: r.created_at }),
        el("td", { class: "question", text: r.question, title: r.question }),
        el("td", { text: r.answer === null ? "(none)" : r.answer }),
        el("td", { class: "num", text: pct(r.confidence) }),
        el("td", { text: r.protocol }),
        el("td", { class: "num", text: `${r.calls} calls · ${fmt(r.wall_seconds, 1)} s` }));
      row.addEventListener("click", () => { location.hash = `round=${encodeURIComponent(r.round_id)}`; });
      row.classList.toggle("selected", r.round_id === selectedRound());
      body.append(row);
    }
    return list.data.length;
  }

  async function loadRound(id) {
    for (const row of $("rounds").tBodies[0].rows) row.classList.toggle("selected", row.dataset.round === id);
    const analysis = await api(`/v1/rounds/${encodeURIComponent(id)}/analysis`);
    showRound(analysis);
    const box = $("round").getBoundingClientRect();
    if (box.top < 0 || box.top > window.innerHeight - 40) $("round").scrollIntoView({ block: "start" });
  }

  function showRound(a) {
    const r = a.round;
    $("round").hidden = false;
    $("round-id").textContent = r.round_id;
    const phases = Object.values(r.cost.phases);
    const calls = phases.reduce((sum, p) => sum + p.calls, 0);
    const tokens = phases.reduce((sum, p) => sum + p.prompt_tokens + p.completion_tokens, 0);
    const facts = [["question", r.question], ["answer", r.answer === null ? "(none)" : r.answer],
                   ["confidence", pct(r.confidence)],
                   ["protocol", r.schedule ? `${r.protocol} (${r.schedule} schedule)` : r.protocol],
                   ["time", new Date(r.created_at).toLocaleString()],
                   ["cost", `${calls} calls, ${tokens} tokens, ${fmt(r.cost.wall_seconds, 2)} s`], ["swarm", r.swarm]];
    clear($("round-facts")).append(...facts.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]));
    clear($("round-notes")).append(...[...r.notes, ...a.problems].map((n) => el("li", { text: n })));
    showAnswers(r);
    showHeatmap(a);
    showStrengths(a);
    showJudges(a);
  }

  function showAnswers(r) {
    const body = clear($("answers").tBodies[0]);
    for (const ans of r.answers) {
      body.append(el("tr", null,
        el("td", { text: ans.node + (ans.step ? ` (step ${ans.step})` : "") }),
        el("td", { text: ans.value === null ? "—" : ans.value }),
        el("td", { class: ans.excluded ? "excluded" : null, text: ans.excluded || "" }),
        el("td", { class: "num", text: ans.candidate === null ? "—" : `#${ans.candidate}` }),
        el("td", null, el("details", null, el("summary", { text: short(ans.text.replace(/\s+/g, " "), 60) }),
                          el("pre", { text: ans.text })))));
    }
  }

  // -- charts ----------------------------------------------------------------------------------
  function shareColour(share) {
    if (share === null) return "#f2f4f7";
    // red (row loses) → white → blue (row wins)
    const [lo, mid, hi] = [[215, 72, 39], [247, 247, 247], [45, 91, 215]];
    const [a, b, t] = share < 0.5 ? [lo, mid, share * 2] : [mid, hi, (share - 0.5) * 2];
    return `rgb(${a.map((v, i) => Math.round(v + (b[i] - v) * t)).join(",")})`;
  }

  function itemLabel(item) {
    return `#${item.index} ${short(item.label, 22)}`;
  }

  function showHeatmap(a) {
    const box = clear($("heatmap"));
    const n = a.items.length;
    if (!a.round.judgments.length || n < 2) {
      box.append(el("p", { class: "empty", text: "No pairwise verdicts in this round." }));
      return;
    }
    const cell = 64, left = 170, top = 80;
    const chart = svg("svg", { viewBox: `0 0 ${left + n * cell + 10} ${top + n * cell + 10}`,
                               width: left + n * cell + 10, role: "img", "aria-label": "pairwise verdict matrix" });
    a.items.forEach((item, i) => {
      chart.append(svg("text", { x: left - 8, y: top + i * cell + cell / 2 + 4, "text-anchor": "end",
                                 class: "row-label", text: itemLabel(item) }, tooltip(item.label)));
      const cx = left + i * cell + cell / 2;
      chart.append(svg("text", { x: cx, y: top - 8, transform: `rotate(-40 ${cx} ${top - 8})`,
                                 class: "col-label", text: itemLabel(item) }, tooltip(item.label)));
    });
    a.matrix.forEach((row, i) => row.forEach((c, j) => {
      const x = left + j * cell, y = top + i * cell;
      const g = svg("g", { class: "cell", "data-row": i, "data-col": j, "data-wins": c.wins,
                           "data-losses": c.losses, "data-ties": c.ties, "data-total": c.total },
        svg("rect", { x, y, width: cell - 2, height: cell - 2, fill: i === j ? "#ffffff" : shareColour(c.share),
                      stroke: "#d0d5dd" }),
        tooltip(`${a.items[i].label} over ${a.items[j].label}: ${c.wins} of ${c.total} verdicts` +
                ` (${c.losses} against, ${c.ties} ties, each half a win)`));
      if (i !== j && c.total) {
        g.append(svg("text", { x: x + cell / 2 - 1, y: y + cell / 2 - 3, "text-anchor": "middle", class: "cell-share",
                               text: pct(c.share) }),
                 svg("text", { x: x + cell / 2 - 1, y: y + cell / 2 + 13, "text-anchor": "middle",
                               class: "small cell-count", text: `${c.wins}/${c.total}` }));
      }
      chart.append(g);
    }));
    box.append(chart);
  }

  // what a candidate's strength is depends on how the round was decided
  function strengthMeaning(r) {
    if (r.aggregation === "evidence") {
      return "Bar: each candidate's posterior probability of being right (peer-rank's evidence aggregation: " +
        "votes as the prior, the judges' verdicts weighted by their estimated reliability); sums to 1.";
    }
    if (r.aggregation === "bradley-terry") {
      const times = r.schedule === "fortytwo" ? "" : " × its votes (renormalised)";
      return `Bar: Bradley–Terry strength${times}; sums to 1. Right: log-strength θ with a 95% interval ` +
        "(±1.96·stderr) where known.";
    }
    if (r.protocol === "blender") return "Bar: share from the summed pairwise preferences (LLM-Blender); sums to 1.";
    if (r.protocol === "council") return "Bar: share from the mean rank position (Borda); sums to 1.";
    return "Bar: vote share (weighted by confidence for weighted-vote); sums to 1.";
  }

  function showStrengths(a) {
    const box = clear($("strengths"));
    $("strengths-help").textContent = strengthMeaning(a.round);
    const bars = a.strengths;
    if (!bars.length) {
      box.append(el("p", { class: "empty", text: "No candidates." }));
      return;
    }
    const rowH = 28, left = 170, barW = 220, gap = 40, forestW = 300, top = 24;
    const width = left + barW + gap + forestW + 20;
    const chart = svg("svg", { viewBox: `0 0 ${width} ${top + bars.length * rowH + 24}`, width, role: "img",
                               "aria-label": "candidate strengths" });
    const known = bars.filter((b) => b.log_strength !== null);
    const lows = known.map((b) => (b.low === null ? b.log_strength : b.low));
    const highs = known.map((b) => (b.high === null ? b.log_strength : b.high));
    let lo = Math.min(0, ...lows), hi = Math.max(0, ...highs);
    if (hi - lo < 1e-9) { lo -= 1; hi += 1; }
    const pad = (hi - lo) * 0.05;
    lo -= pad; hi += pad;
    const fx = left + barW + gap;
    const xOf = (v) => fx + ((v - lo) / (hi - lo)) * forestW;
    const bottom = top + bars.length * rowH;
    chart.append(
      svg("text", { x: left, y: 14, class: "axis", text: "strength" }),
      svg("text", { x: fx, y: 14, class: "axis", text: "log-strength θ ± 1.96·stderr" }),
      svg("line", { x1: xOf(0), x2: xOf(0), y1: top - 4, y2: bottom, class: "zero" }),
      svg("line", { x1: fx, x2: fx + forestW, y1: bottom, y2: bottom, class: "axis" }),
      svg("text", { x: fx, y: bottom + 16, class: "axis", text: fmt(lo) }),
      svg("text", { x: fx + forestW, y: bottom + 16, class: "axis", "text-anchor": "end", text: fmt(hi) }));
    bars.forEach((b, i) => {
      const y = top + i * rowH, mid = y + rowH / 2;
      const g = svg("g", { class: "strength", "data-candidate": b.candidate, "data-strength": b.strength },
        svg("text", { x: left - 8, y: mid + 4, "text-anchor": "end", text: `#${b.candidate} ${short(b.answer, 22)}` },
            tooltip(b.answer)),
        svg("rect", { x: left, y: y + 5, width: Math.max(1, b.strength * barW), height: rowH - 10, class: "bar" }),
        svg("text", { x: left + Math.max(1, b.strength * barW) + 4, y: mid + 4, class: "small", text: fmt(b.strength, 3) }));
      if (b.log_strength !== null) {
        if (b.low !== null && b.high !== null) {
          g.append(svg("line", { x1: xOf(b.low), x2: xOf(b.high), y1: mid, y2: mid, class: "whisker interval" }),
                   svg("line", { x1: xOf(b.low), x2: xOf(b.low), y1: mid - 5, y2: mid + 5, class: "whisker" }),
                   svg("line", { x1: xOf(b.high), x2: xOf(b.high), y1: mid - 5, y2: mid + 5, class: "whisker" }));
        }
        const se = b.stderr === null ? "stderr unknown" : `95% interval ${fmt(b.low)} … ${fmt(b.high)}`;
        g.append(svg("circle", { cx: xOf(b.log_strength), cy: mid, r: 4, fill: "#1d2330" },
                     tooltip(`θ = ${fmt(b.log_strength, 3)}, ${se}`)));
      }
      chart.append(g);
    });
    box.append(chart);
  }

  function showJudges(a) {
    const table = $("judges");
    const head = clear(table.tHead), body = clear(table.tBodies[0]);
    const { pairs, rows } = a.judges;
    if (!rows.length) {
      body.append(el("tr", null, el("td", { class: "empty", text: "No judgments in this round." })));
      return;
    }
    const label = (i) => (a.items[i] ? `#${i} ${short(a.items[i].label, 16)}` : `#${i}`);
    head.append(el("tr", null, el("th", { text: "judge" }),
      pairs.map(([f, s]) => el("th", { title: `A: ${a.items[f].label}\nB: ${a.items[s].label}` },
                               `A ${label(f)}`, el("br"), `B ${label(s)}`))));
    for (const row of rows) {
      const tr = el("tr", { "data-judge": row.judge }, el("th", { text: row.judge }));
      row.cells.forEach((verdicts, k) => {
        const td = el("td", { class: verdicts.some((v) => v.failed) ? "failed" : null,
                              "data-pair": pairs[k].join("-") });
        for (const v of verdicts) {
          const what = v.failed ? "failed" : v.verdict === "U" ? "U (tie)" : `${v.verdict}: ${label(v.preferred)}`;
          td.append(el("details", { class: "verdict", "data-verdict": v.verdict, title: v.reasoning },
            el("summary", { text: what + (v.weight !== 1 ? ` ×${fmt(v.weight)}` : "") }),
            el("pre", { text: v.reasoning || "(no reasoning)" })));
        }
        tr.append(td);
      });
      body.append(tr);
    }
  }

  // -- reputation --------------------------------------------------------------------------------
  async function loadReputation() {
    const rep = await api("/v1/reputation");
    const box = clear($("reputation"));
    const legend = clear($("reputation-legend"));
    const empty = $("reputation-empty");
    const points = rep.nodes.flatMap((n) => n.series);
    empty.hidden = points.length > 0;
    if (!points.length) {
      empty.textContent = rep.enabled
        ? "The ledger has no reputation entries yet: reputation appears after the first trusted round."
        : "Trust is off for this swarm ([trust] enabled = false), and the ledger holds no reputation.";
      return;
    }
    const width = 720, height = 280, left = 50, right = 16, top = 12, bottom = 30;
    // x: the round's position among the rounds in the ledger, so one round's points line up
    const order = new Map();
    for (const p of [...points].sort((a, b) => a.seq - b.seq)) {
      const round = p.round_id || `entry ${p.seq}`;
      if (!order.has(round)) order.set(round, order.size + 1);
    }
    const xOfPoint = (p) => order.get(p.round_id || `entry ${p.seq}`);
    const values = points.map((p) => p.after);
    let [x0, x1] = [1, order.size];
    if (x1 === x0) { x0 -= 1; x1 += 1; }
    let [y0, y1] = [Math.min(0, ...values), Math.max(0, ...values)];
    if (y1 - y0 < 1e-9) { y0 -= 0.05; y1 += 0.05; }
    const xOf = (s) => left + ((s - x0) / (x1 - x0)) * (width - left - right);
    const yOf = (v) => top + (1 - (v - y0) / (y1 - y0)) * (height - top - bottom);
    const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, role: "img", "aria-label": "reputation over time" },
      svg("line", { x1: left, x2: width - right, y1: yOf(0), y2: yOf(0), class: "zero" }),
      svg("line", { x1: left, x2: left, y1: top, y2: height - bottom, class: "axis" }),
      svg("text", { x: left - 6, y: yOf(y1) + 4, "text-anchor": "end", class: "axis", text: fmt(y1, 3) }),
      svg("text", { x: left - 6, y: yOf(y0) + 4, "text-anchor": "end", class: "axis", text: fmt(y0, 3) }),
      svg("text", { x: left, y: height - 8, class: "axis", text: "round 1" }),
      svg("text", { x: width - right, y: height - 8, "text-anchor": "end", class: "axis",
                    text: `round ${order.size} (oldest to newest in the ledger)` }));
    rep.nodes.forEach((node, i) => {
      const colour = PALETTE[i % PALETTE.length];
      const d = node.series.map((p, k) => `${k ? "L" : "M"}${xOf(xOfPoint(p)).toFixed(1)},${yOf(p.after).toFixed(1)}`)
        .join(" ");
      const g = svg("g", { class: "node-series", "data-node": node.node },
        // earlier series drawn wider, so a later one that coincides with it leaves it visible as an edge
        svg("path", { d, stroke: colour, "stroke-width": Math.max(1.5, 4.5 - 0.5 * i), class: "series",
                      "data-node": node.node }));
      for (const p of node.series) {
        g.append(svg("circle", { cx: xOf(xOfPoint(p)), cy: yOf(p.after), r: 3, fill: colour },
          tooltip(`${node.node}: ${fmt(p.after, 4)} after round ${p.round_id || "?"} (entry ${p.seq})`)));
      }
      chart.append(g);
      legend.append(el("li", null, svg("svg", { width: 16, height: 6, class: "swatch" },
                                        svg("rect", { width: 16, height: 6, fill: colour })), node.node));
    });
    box.append(chart);
  }

  // -- wiring ------------------------------------------------------------------------------------
  async function authOn() {
    const health = await fetch("/healthz", { cache: "no-store" });
    return !health.ok || (await health.json()).auth;
  }

  async function refresh() {
    status("loading…");
    document.body.dataset.state = "loading";  // "ready" or "error" once done (tests wait for it)
    try {
      // ask for a key before the first call rather than after a 401 (which the console would show)
      if (!sessionStorage.getItem(KEY) && await authOn()) throw new AuthNeeded("no key yet");
      const count = await loadRounds();
      $("key-form").hidden = true;
      await loadReputation();
      const id = selectedRound();
      if (id) await loadRound(id);
      status(`${count} recent round(s)`);
      document.body.dataset.state = "ready";
    } catch (error) {
      handle(error);
      document.body.dataset.state = "error";
    }
  }

  async function onHashChange() {
    takeKeyFromFragment();
    const id = selectedRound();
    if (!id) return;
    try {
      await loadRound(id);
    } catch (error) {
      handle(error);
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    takeKeyFromFragment();
    $("refresh").addEventListener("click", refresh);
    $("forget-key").addEventListener("click", () => {
      sessionStorage.removeItem(KEY);
      location.reload();
    });
    $("key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      sessionStorage.setItem(KEY, $("key-input").value.trim());
      $("key-input").value = "";
      refresh();
    });
    window.addEventListener("hashchange", onHashChange);
    refresh();
  });
})();
