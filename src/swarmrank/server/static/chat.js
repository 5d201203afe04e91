// swarmrank chat: asks POST /v1/chat/completions with stream: true and draws the round live from the
// stream — each node's reply as it arrives, the judges' verdicts filling the pair matrix, then the
// winner with its confidence and a link to the full round. Model output only ever goes into the page
// through textContent or attribute values, never parsed as HTML.
"use strict";

(() => {
  const KEY = "swarmrank.key";
  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "text") node.textContent = String(value);
      else node.setAttribute(name, String(value));
    }
    for (const child of children.flat()) {
      if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  const short = (text, n) => (text.length > n ? `${text.slice(0, n - 1)}…` : text);

  function status(text, isError = false) {
    $("status").textContent = text;
    $("status").classList.toggle("error", isError);
  }

  // -- the key (as on the dashboard: from the URL fragment into sessionStorage) ---------------------
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

  function headers(extra) {
    const h = { ...extra };
    const key = sessionStorage.getItem(KEY);
    if (key) h.Authorization = `Bearer ${key}`;
    $("forget-key").hidden = !key;
    return h;
  }

  async function needKey() {
    if (sessionStorage.getItem(KEY)) return false;
    const health = await fetch("/healthz", { cache: "no-store" });
    return !health.ok || (await health.json()).auth;
  }

  async function loadModels() {
    const response = await fetch("/v1/models", { headers: headers({ Accept: "application/json" }) });
    if (response.status === 401) {
      $("key-form").hidden = false;
      status("an API key is needed", true);
      return;
    }
    if (!response.ok) return;
    const select = $("model");
    select.replaceChildren();
    for (const m of (await response.json()).data) {
      select.append(el("option", { value: m.id, text: m.id === "swarmrank" ? "swarmrank (default)" : m.id }));
    }
  }

  // -- the live round ------------------------------------------------------------------------------
  let round = null;

  function reset() {
    round = { items: [], perAnswer: false, nodes: new Map(), cells: new Map(), answer: null };
    $("live").hidden = false;
    $("reply").textContent = "";
    for (const id of ["winner", "round-link", "error"]) $(id).hidden = true;
    for (const id of ["progress", "notes"]) $(id).replaceChildren();
    $("answers").tBodies[0].replaceChildren();
    $("matrix").tHead.replaceChildren();
    $("matrix").tBodies[0].replaceChildren();
  }

  function nodeRow(node) {
    let row = round.nodes.get(node);
    if (!row) {
      row = el("tr", { "data-node": node, "data-state": "asked" },
        el("td", { text: node }), el("td", { class: "state", text: "asking…" }), el("td", { class: "value" }),
        el("td", { class: "num candidate" }));
      round.nodes.set(node, row);
      $("answers").tBodies[0].append(row);
    }
    return row;
  }

  function drawMatrix() {
    const items = round.items;
    const head = $("matrix").tHead, body = $("matrix").tBodies[0];
    head.replaceChildren(el("tr", null, el("th"), items.map((label, j) => el("th", { title: label },
      `#${j} ${short(label, 16)}`))));
    body.replaceChildren(...items.map((label, i) => el("tr", null, el("th", { title: label }, `#${i} ${short(label, 16)}`),
      items.map((_, j) => {
        const c = round.cells.get(`${i},${j}`) || { wins: 0, ties: 0, total: 0 };
        const td = el("td", { class: "cell", "data-row": i, "data-col": j, "data-wins": c.wins, "data-total": c.total,
                              text: i === j ? "" : c.total ? `${c.wins}/${c.total}` : "·" });
        if (i !== j && c.total) {
          const share = (c.wins + c.ties / 2) / c.total;
          td.style.background = share >= 0.5 ? `rgba(45, 91, 215, ${(share - 0.5) * 1.4})`
            : `rgba(215, 72, 39, ${(0.5 - share) * 1.4})`;
        }
        return td;
      }))));
  }

  function verdict(first, second, v) {
    for (const [row, col] of [[first, second], [second, first]]) {
      const key = `${row},${col}`;
      const c = round.cells.get(key) || { wins: 0, ties: 0, total: 0 };
      c.total += 1;
      if (v === "U") c.ties += 1;
      else if ((v === "A" && row === first) || (v === "B" && row === second)) c.wins += 1;
      round.cells.set(key, c);
    }
    drawMatrix();
  }

  function onProgress(p) {
    if (p.event === "start") {
      round.perAnswer = p.schedule === "fortytwo";
    } else if (p.event === "call" && ["answer", "revise", "reference"].includes(p.phase)) {
      const row = nodeRow(p.node);
      row.dataset.state = p.ok ? "replied" : "failed";
      row.querySelector(".state").textContent = `${p.ok ? "replied" : "failed"} (${Number(p.seconds).toFixed(1)} s)`;
    } else if (p.event === "answer") {
      const row = nodeRow(p.node);
      const usable = p.value !== null && p.value !== undefined && !p.excluded;
      row.dataset.state = usable ? "answered" : "excluded";
      row.querySelector(".value").textContent = usable ? p.value : `excluded: ${p.excluded}`;
      row.querySelector(".value").classList.toggle("excluded", !usable);
      if (usable) {
        let index = round.perAnswer ? -1 : round.items.indexOf(p.value);
        if (index < 0) {
          round.items.push(p.value);
          index = round.items.length - 1;
        }
        row.querySelector(".candidate").textContent = `#${index}`;
        drawMatrix();
      }
    } else if (p.event === "judgment") {
      verdict(p.first, p.second, p.verdict);
    } else if (p.event === "note") {
      $("notes").append(el("li", { text: p.text }));
    } else if (p.event === "decided" && p.answer !== null) {
      $("winner-answer").textContent = p.answer;
      $("winner-confidence").textContent = `${Math.round(p.confidence * 100)}%`;
      $("winner").hidden = false;
    }
  }

  function onResult(r) {
    const link = $("open-round");
    link.href = `/dashboard#round=${encodeURIComponent(r.round_id)}`;
    link.textContent = r.stored ? "open the full round" : "(this round was not stored)";
    $("cost").textContent = ` · ${r.calls} calls, ${r.wall_seconds.toFixed(1)} s` +
      (r.dollars === null || r.dollars === undefined ? "" : `, $${r.dollars.toFixed(6)}`);
    $("round-link").hidden = false;
    $("winner-answer").textContent = r.answer;
    $("winner-confidence").textContent = `${Math.round(r.confidence * 100)}%`;
    $("winner").hidden = false;
  }

  function onChunk(chunk) {
    if (chunk.error) throw new Error(chunk.error.message);
    const choice = (chunk.choices || [])[0];
    const delta = choice ? choice.delta || {} : {};
    if (delta.reasoning_content) $("progress").append(el("li", { text: delta.reasoning_content.trimEnd() }));
    if (delta.content) $("reply").textContent += delta.content;
    const extra = chunk.swarmrank || {};
    if (extra.progress) onProgress(extra.progress);
    if (extra.result) onResult(extra.result);
  }

  let controller = null;

  async function ask(question, model) {
    reset();
    document.body.dataset.state = "running";
    status("asking the swarm…");
    $("ask").disabled = true;
    $("stop").disabled = false;
    controller = new AbortController();
    try {
      const response = await fetch("/v1/chat/completions", {
        method: "POST", signal: controller.signal,
        headers: headers({ "Content-Type": "application/json", Accept: "text/event-stream" }),
        body: JSON.stringify({ model, stream: true, messages: [{ role: "user", content: question }] }),
      });
      if (!response.ok) {
        let message = `${response.status} ${response.statusText}`;
        try { message = `${response.status}: ${(await response.json()).error.message}`; } catch (_) { /* not JSON */ }
        if (response.status === 401) $("key-form").hidden = false;
        throw new Error(message);
      }
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        const events = buffer.split(/\r?\n\r?\n/);
        buffer = events.pop();
        for (const event of events) {
          const data = event.split(/\r?\n/).filter((line) => line.startsWith("data:"))
            .map((line) => line.slice(5).trimStart()).join("\n");
          if (!data || data === "[DONE]") continue;
          onChunk(JSON.parse(data));
        }
      }
      status("done");
      document.body.dataset.state = "done";
    } catch (error) {
      const stopped = error.name === "AbortError";
      $("error").textContent = stopped ? "stopped" : String(error.message || error);
      $("error").hidden = false;
      status(stopped ? "stopped" : "the round failed", !stopped);
      document.body.dataset.state = "error";
    } finally {
      $("ask").disabled = false;
      $("stop").disabled = true;
    }
  }

  document.addEventListener("DOMContentLoaded", async () => {
    takeKeyFromFragment();
    $("forget-key").addEventListener("click", () => { sessionStorage.removeItem(KEY); location.reload(); });
    $("key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      sessionStorage.setItem(KEY, $("key-input").value.trim());
      $("key-input").value = "";
      $("key-form").hidden = true;
      status("");
      loadModels();
    });
    $("ask-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const question = $("question").value.trim();
      if (question) ask(question, $("model").value);
    });
    $("stop").addEventListener("click", () => controller && controller.abort());
    if (await needKey()) {
      $("key-form").hidden = false;
      status("an API key is needed", true);
    } else {
      await loadModels();
    }
    document.body.dataset.ready = "yes";
  });
})();
