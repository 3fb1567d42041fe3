// sselab.js: the helpers every demo page shares. No build step, no
// framework. Event data is only ever written with textContent, so a
// message can never become markup.
"use strict";
const sselab = (() => {
  const STATES = ["CONNECTING", "OPEN", "CLOSED"];
  const $ = (sel, root) => (root || document).querySelector(sel);

  function logLine(list, text, meta) {
    const li = document.createElement("li");
    li.textContent = text;
    if (meta) li.className = "meta";
    list.prepend(li);
    while (list.children.length > 200) list.lastChild.remove();
  }

  // watch opens an EventSource on url and keeps the stream panel up to
  // date: readyState, how many times it (re)connected, the events. types
  // are the event types to listen for ("message" is the default type).
  function watch(url, types, onEvent) {
    const panel = $("[data-testid=stream-panel]");
    const state = $("[data-testid=ready-state]", panel);
    const opens = $("[data-testid=connect-count]", panel);
    const count = $("[data-testid=event-count]", panel);
    const list = $("[data-testid=events]", panel);
    let nOpen = 0, nEvents = 0;
    opens.textContent = "0";
    count.textContent = "0";
    const es = new EventSource(url);
    const show = () => {
      state.textContent = STATES[es.readyState];
      state.dataset.state = STATES[es.readyState];
    };
    es.addEventListener("open", () => {
      opens.textContent = String(++nOpen);
      show();
      logLine(list, "open " + url, true);
      console.log("open", url);
    });
    es.addEventListener("error", () => {
      show();
      logLine(list, "error, readyState " + STATES[es.readyState], true);
      console.log("error, readyState", STATES[es.readyState]);
    });
    const onMessage = (ev) => {
      count.textContent = String(++nEvents);
      show();
      logLine(list, ev.type + (ev.lastEventId ? " #" + ev.lastEventId : "") + ": " + ev.data);
      console.log(ev.type, ev.lastEventId, ev.data);
      if (onEvent) onEvent(ev);
    };
    // gap: the server cannot vouch that nothing was lost since the last
    // id; every demo shows it where its events go.
    for (const t of new Set([...(types || ["message"]), "gap"])) es.addEventListener(t, onMessage);
    const timer = setInterval(show, 200); // readyState changes without an event too
    show();
    return { es, close() { es.close(); show(); }, stop() { es.close(); clearInterval(timer); } };
  }

  // The wire panel: fetch the same URL and show its bytes as they arrive.
  let wireAbort = null;
  async function wire(url) {
    const out = $("[data-testid=wire]");
    $("[data-testid=wire-url]").textContent = url;
    if (wireAbort) wireAbort.abort();
    const ctrl = new AbortController();
    wireAbort = ctrl;
    out.textContent = "";
    const add = (s) => { out.textContent += s; out.scrollTop = out.scrollHeight; };
    const started = performance.now();
    try {
      const res = await fetch(url, { signal: ctrl.signal, cache: "no-store", headers: { Accept: "text/event-stream" } });
      add("HTTP " + res.status + "\n");
      for (const h of ["content-type", "cache-control", "x-accel-buffering", "content-encoding"]) {
        if (res.headers.has(h)) add(h + ": " + res.headers.get(h) + "\n");
      }
      add("\n");
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        add("⟨+" + ((performance.now() - started) / 1000).toFixed(2) + "s⟩\n" + value);
      }
      add("⟨end of response⟩\n");
    } catch (e) {
      if (e.name !== "AbortError") add("⟨" + e + "⟩\n");
      else add("⟨stopped⟩\n");
    }
  }

  document.addEventListener("click", (e) => {
    const b = e.target.closest("button[data-action]");
    if (!b) return;
    if (b.dataset.action === "wire") wire($("[data-testid=wire-url]").textContent);
    if (b.dataset.action === "buffered") wire(b.dataset.url);
    if (b.dataset.action === "wire-stop" && wireAbort) wireAbort.abort();
  });

  return { watch, wire, $ };
})();
