// The engines page: each probe asks this browser one question with an
// EventSource on a probe route under /engines/, and writes the answer in
// the table (textContent only). Answers are kept in sessionStorage, so
// that the back/forward cache probe can finish on a page that was loaded
// again. The tests read window.engineAnswers.
"use strict";
(() => {
  const KEY = "sselab-engines";
  if (document.querySelector("[data-testid=away]")) {
    // The page the bfcache probe left to: go back at once.
    setTimeout(() => history.back(), 100);
    return;
  }
  const status = document.querySelector("[data-testid=status]");
  const answers = JSON.parse(sessionStorage.getItem(KEY) || "{}");
  window.engineAnswers = answers;
  const show = (id) => {
    const cell = document.querySelector("[data-testid=yours-" + id + "]");
    if (cell) cell.textContent = answers[id] ?? "…";
  };
  const answer = (id, text) => {
    answers[id] = text;
    sessionStorage.setItem(KEY, JSON.stringify(answers));
    show(id);
  };
  const wait = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  // reconnectDelay opens url, and resolves with the time from the first
  // error (the response ended) to the next open, and the data of the last
  // "seen" event (the Last-Event-ID the server got on the reconnect).
  const reconnectDelay = (url) => new Promise((resolve) => {
    const es = new EventSource(url);
    let ended = 0, opens = 0, seen = null;
    const done = (v) => { es.close(); resolve(v); };
    const timer = setTimeout(() => done({ ms: -1, seen }), 12000);
    es.addEventListener("seen", (e) => { seen = JSON.parse(e.data); });
    es.onopen = () => {
      if (++opens === 2) {
        clearTimeout(timer);
        const ms = performance.now() - ended;
        es.addEventListener("seen", (e) => done({ ms, seen: JSON.parse(e.data) }));
      }
    };
    es.onerror = () => { if (!ended) ended = performance.now(); };
  });

  // firstMessage opens url and resolves with its first message's data, or
  // with how it failed.
  const firstMessage = (url) => new Promise((resolve) => {
    const es = new EventSource(url);
    const done = (v) => { es.close(); resolve(v); };
    const timer = setTimeout(() => done({ failed: "nothing within 5 s" }), 5000);
    es.onmessage = (e) => { clearTimeout(timer); done({ data: e.data }); };
    es.onerror = () => {
      if (es.readyState === EventSource.CLOSED) { clearTimeout(timer); done({ failed: "fails the stream" }); }
    };
  });

  // afterError opens url and resolves with what EventSource does after
  // the first error: stops (CLOSED) or tries again (CONNECTING).
  const afterError = (url) => new Promise((resolve) => {
    const es = new EventSource(url);
    const timer = setTimeout(() => { es.close(); resolve("no error within 5 s"); }, 5000);
    es.onerror = () => {
      clearTimeout(timer);
      const v = es.readyState === EventSource.CLOSED ? "stops" : "tries again";
      es.close();
      resolve(v);
    };
  });

  const probes = {
    "quiet-open": () => new Promise((resolve) => {
      const es = new EventSource("/engines/quiet"), t0 = performance.now();
      es.onopen = () => {
        const ms = performance.now() - t0;
        es.close();
        resolve(ms < 1000 ? "at once, with the headers" : "at the first body byte");
      };
    }),
    "default-delay": async () => {
      const { ms } = await reconnectDelay("/engines/ends");
      // The delay, and then the time to connect: whole seconds, rounded down.
      return ms < 0 ? "no reconnect within 12 s" : Math.floor(ms / 1000) + " s";
    },
    "retry-100": async () => {
      const { ms } = await reconnectDelay("/engines/ends?retry=100");
      if (ms < 0) return "no reconnect within 12 s";
      if (ms < 350) return "100 ms, as sent";
      if (ms < 1000) return "raised to about 500 ms";
      return "waited " + Math.round(ms) + " ms";
    },
    "nul": async () => {
      const r = await firstMessage("/engines/bytes?what=nul");
      if (r.failed) return r.failed;
      if (r.data === "a\0b") return "kept";
      if (r.data === "ab") return "dropped";
      return "changed to " + JSON.stringify(r.data);
    },
    "id-only": async () => {
      const { ms, seen } = await reconnectDelay("/engines/ends?idonly=1&retry=600");
      if (ms < 0) return "no reconnect within 12 s";
      return seen === "7" ? "sent on the reconnect" : seen === "" ? "not sent" : "sent as " + JSON.stringify(seen);
    },
    "charset": async () => {
      const r = await firstMessage("/engines/bytes?what=charset");
      if (r.failed) return r.failed;
      return r.data === "café" ? "decoded as UTF-8" : "decoded as " + JSON.stringify(r.data);
    },
    "answer-204": () => afterError("/engines/answer?with=204"),
    "answer-500": () => afterError("/engines/answer?with=500"),
    "answer-type": () => afterError("/engines/answer?with=type"),
    "conn-limit": async () => {
      const held = [];
      for (let i = 0; i < 8; i++) held.push(new EventSource("/engines/held?i=" + i));
      const open = () => held.filter((es) => es.readyState === EventSource.OPEN).length;
      const until = performance.now() + 3000;
      while (open() < 8 && performance.now() < until) await wait(50);
      const n = open();
      held.forEach((es) => es.close());
      return n + " of 8 open";
    },
  };

  async function runAll() {
    document.body.dataset.probed = "0";
    for (const id of Object.keys(probes)) {
      status.textContent = "Probing: " + id + "…";
      answer(id, "…");
      try {
        answer(id, await probes[id]());
      } catch (e) {
        answer(id, "error: " + e);
      }
    }
    status.textContent = "Done. Press the second button for the back/forward cache probe.";
    document.body.dataset.probed = "1";
  }

  // The back/forward cache probe: open a stream, leave for /engines/away
  // (which goes back at once), and see how the page comes back.
  let held = null;
  document.querySelector("[data-testid=bfcache]").addEventListener("click", () => {
    held = new EventSource("/engines/held?i=bfcache");
    held.onopen = () => {
      sessionStorage.setItem(KEY + "-left", "1");
      answer("bfcache", "…");
      location.href = "/engines/away";
    };
  });
  window.addEventListener("pageshow", (e) => {
    if (sessionStorage.getItem(KEY + "-left") !== "1") return;
    sessionStorage.removeItem(KEY + "-left");
    if (!e.persisted) {
      answer("bfcache", "not cached: the page loads again");
      return;
    }
    const atShow = held ? ["CONNECTING", "OPEN", "CLOSED"][held.readyState] : "none";
    // What the engine does with the stream of a page it restored, a moment on.
    setTimeout(() => {
      const later = held ? ["CONNECTING", "OPEN", "CLOSED"][held.readyState] : "none";
      answer("bfcache", "restored from the cache; its stream " +
        (atShow === later ? later : atShow + ", then " + later));
      if (held) held.close();
    }, 1000);
  });

  document.querySelector("[data-testid=run]").addEventListener("click", runAll);
  Object.keys(probes).concat("bfcache").forEach(show);
  if (Object.keys(probes).every((id) => answers[id] && answers[id] !== "…")) {
    status.textContent = "Answers from earlier on this tab; run the probes again to refresh them.";
    document.body.dataset.probed = "1";
  } else {
    runAll();
  }
})();
