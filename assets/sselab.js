// sselab.js: the helpers every demo page shares. No build step, no
// framework. Event data is only ever written with textContent, so a
// message can never become markup.
//
// A page holds one stream: its EventSource. Over HTTP/1.1 a browser opens
// at most six connections per site, each stream holds one, and a page that
// waits for a seventh stays blank without an error. So the wire panel reads
// the route only when asked, and every stream is closed when the page is
// hidden (pagehide: navigating away, or into the back/forward cache) and
// opened again when it comes back (pageshow). A new EventSource cannot
// send Last-Event-ID, so the reopened stream names the last id it saw in
// the lastEventId query parameter: the page gets what it missed, and
// nothing it already shows twice.
"use strict";
const sselab = (() => {
  const STATES = ["CONNECTING", "OPEN", "CLOSED"];
  const $ = (sel, root) => (root || document).querySelector(sel);
  const clock = () => new Date().toTimeString().slice(0, 8) + "." + String(Date.now() % 1000).padStart(3, "0");

  function logLine(list, text, meta) {
    const li = document.createElement("li");
    const time = document.createElement("time");
    time.textContent = clock() + " ";
    li.append(time, text);
    if (meta) li.className = "meta";
    list.prepend(li);
    while (list.children.length > 200) list.lastChild.remove();
  }

  // watch opens an EventSource on url and keeps the stream panel up to
  // date: readyState, how many times it (re)connected, the events. types
  // are the event types to listen for ("message" is the default type);
  // "gap" is always listened for. Events of the types in quiet are counted
  // and handed to onEvent but not logged (state, such as a count).
  function watch(url, types, onEvent, quiet) {
    const panel = $("[data-testid=stream-panel]");
    const state = $("[data-testid=ready-state]", panel);
    const opens = $("[data-testid=connect-count]", panel);
    const count = $("[data-testid=event-count]", panel);
    const list = $("[data-testid=events]", panel);
    const hint = $("[data-testid=conn-hint]");
    let nOpen = 0, nEvents = 0, es = null, stopped = false, hintTimer = 0, lastId = "";
    opens.textContent = "0";
    count.textContent = "0";
    const show = () => {
      const s = es ? STATES[es.readyState] : "CLOSED";
      state.textContent = s;
      state.dataset.state = s;
    };
    const onMessage = (ev) => {
      lastId = ev.lastEventId;
      count.textContent = String(++nEvents);
      show();
      if (!(quiet || []).includes(ev.type)) {
        const shown = onEvent && onEvent.describe ? onEvent.describe(ev) : ev.data;
        logLine(list, ev.type + (ev.lastEventId ? " #" + ev.lastEventId : "") + ": " + shown);
      }
      console.log(ev.type, ev.lastEventId, ev.data);
      if (onEvent) onEvent(ev);
    };
    function open() {
      es = new EventSource(lastId === "" ? url
        : url + (url.includes("?") ? "&" : "?") + "lastEventId=" + encodeURIComponent(lastId));
      let everOpen = false;
      // Over HTTP/1.1 a stream that never opens is most often waiting for
      // one of the six connections this browser allows per site.
      clearTimeout(hintTimer);
      hintTimer = setTimeout(() => {
        if (!everOpen && hint && location.protocol === "http:") hint.hidden = false;
      }, 3000);
      es.addEventListener("open", () => {
        everOpen = true;
        document.body.dataset.lastOpen = String(Date.now()); // for tests: when a stream last opened
        if (hint) hint.hidden = true;
        opens.textContent = String(++nOpen);
        show();
        logLine(list, "open " + url, true);
        console.log("open", url);
      });
      es.addEventListener("error", () => {
        show();
        const why = es.readyState === EventSource.CONNECTING
          ? " (the response ended or failed: EventSource reconnects by itself)"
          : " (EventSource gave up for good: a status other than 200, 204 No Content, or a type other than text/event-stream)";
        logLine(list, "error, readyState " + STATES[es.readyState] + why, true);
        console.log("error, readyState", STATES[es.readyState]);
      });
      for (const t of new Set([...(types || ["message"]), "gap"])) es.addEventListener(t, onMessage);
      show();
    }
    function close() {
      if (es) es.close();
      show();
    }
    window.addEventListener("pagehide", () => {
      if (!stopped && es && es.readyState !== EventSource.CLOSED) {
        es.close();
        es.suspended = true;
        logLine(list, "page hidden: stream closed", true);
      }
    });
    window.addEventListener("pageshow", (e) => {
      if (e.persisted) document.body.dataset.restored = String(Number(document.body.dataset.restored || 0) + 1);
      if (e.persisted && !stopped && es && es.suspended) {
        logLine(list, "page shown again: stream reopened", true);
        open();
      }
    });
    open();
    const timer = setInterval(show, 200); // readyState changes without an event too
    return {
      get es() { return es; },
      close,
      stop() { stopped = true; close(); clearInterval(timer); clearTimeout(hintTimer); },
    };
  }

  // The wire panel: fetch the same URL and show its bytes as they arrive.
  // It holds a second connection, so it runs only when asked.
  let wireAbort = null;
  function stopWire() {
    if (wireAbort) wireAbort.abort();
    wireAbort = null;
  }
  async function wire(url) {
    const out = $("[data-testid=wire]");
    $("[data-testid=wire-url]").textContent = url;
    stopWire();
    const ctrl = new AbortController();
    wireAbort = ctrl;
    out.textContent = "";
    const add = (s) => { out.textContent += s; out.scrollTop = out.scrollHeight; };
    const started = performance.now();
    try {
      const res = await fetch(url, { signal: ctrl.signal, cache: "no-store", headers: { Accept: "text/event-stream" } });
      add("HTTP " + res.status + "\n");
      for (const h of ["content-type", "cache-control", "x-accel-buffering", "content-encoding", "retry-after"]) {
        if (res.headers.has(h)) add(h + ": " + res.headers.get(h) + "\n");
      }
      add("\n");
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        // The marker follows what arrived, so that the last one stays in
        // view: a buffered response shows one read, seconds late.
        add(value + "⟨read at +" + ((performance.now() - started) / 1000).toFixed(2) + "s, " + value.length + " bytes⟩\n");
      }
      add("⟨end of response⟩\n");
    } catch (e) {
      if (e.name !== "AbortError") add("⟨" + e + "⟩\n");
      else add("⟨stopped⟩\n");
    }
  }
  window.addEventListener("pagehide", stopWire);

  document.addEventListener("click", (e) => {
    const b = e.target.closest("button[data-action]");
    if (!b) return;
    if (b.dataset.action === "wire") wire($("[data-testid=wire-url]").textContent);
    if (b.dataset.action === "buffered") wire(b.dataset.url);
    if (b.dataset.action === "wire-stop") stopWire();
  });

  return { watch, wire, $ };
})();
