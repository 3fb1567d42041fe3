// The clients page: each client the fragments pages use opens a probe
// stream; the probe ends the first response as rule 8 does (retry:, a
// clean end) and answers the second as the row says. What the client
// did next is read back from the server's log of the key: when it came
// back, if it did. Results are in window.clientAnswers ("client/answer")
// and in the page's "yours" cells; document.body.dataset.probed is "1"
// when every probe has answered.
(() => {
  "use strict";
  const retry = 2000; // handlers.ProbeRetry
  const wait = 8000; // how long a client has to come back
  const clients = ["eventsource", "htmx4", "datastar-auto", "datastar-always"];
  const answers = ["refuse", "shutdown", "204", "500", "type", "stop"];
  const box = document.querySelector("[data-testid=probes]");
  const status = document.querySelector("[data-testid=status]");
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  window.clientAnswers = {};

  const show = (client, answer, text) => {
    window.clientAnswers[`${client}/${answer}`] = text;
    const cell = document.querySelector(`[data-testid="yours-${client}-${answer}"]`);
    if (cell) cell.textContent = text;
  };

  const log = async (key) => {
    const r = await fetch(`/fragments/probe/log?key=${key}`, { cache: "no-store" });
    if (!r.ok) throw new Error(`log: ${r.status}`);
    return r.json();
  };

  // until polls the log of key until ok(log) or ms pass; the last log.
  const until = async (key, ms, ok) => {
    const end = Date.now() + ms;
    for (;;) {
      const l = await log(key);
      if (ok(l) || Date.now() > end) return l;
      await sleep(100);
    }
  };

  // open starts client on url; the function it returns stops it.
  const open = (client, url) => {
    if (client === "eventsource") {
      const es = new EventSource(url);
      return () => es.close();
    }
    const el = document.createElement("div");
    if (client === "htmx4") {
      el.setAttribute("hx-sse:connect", url);
      el.setAttribute("hx-sse:close", "close");
      el.setAttribute("hx-swap", "none");
      box.append(el);
      window.htmx.process(el);
    } else {
      // requestCancellation 'cleanup' only lets the page end the request
      // by removing the element; it changes nothing of the retries.
      const opts = client === "datastar-always" ? "retry: 'always', " : "";
      el.setAttribute("data-init", `@get('${url}', {${opts}requestCancellation: 'cleanup'})`);
      box.append(el);
    }
    return () => el.remove();
  };

  // verdict is what the arrivals a say of the request answered (number
  // i, from 0) and the one after it. The line between the two ways back
  // is half of retry: a client that took it (or backs off from it, ±30 %
  // at most) waits longer; one that did not waits its own 500 ms or so.
  const verdict = (a, i) => {
    if (a.length < i + 1) return "did not come back after rule 8's clean end";
    if (a.length < i + 2) return "stops";
    return a[i + 1] - a[i] < retry / 2 ? "comes back sooner than retry:" : "comes back after retry: or later";
  };

  let run = "";

  // Datastar's default never comes back after a clean end, the first
  // request's, so it is given the answer on its first request (its code
  // treats every request alike).
  const firstOf = (client) => client === "datastar-auto";

  const probe = async (client, answer) => {
    const key = `${run}-${client}-${answer}`;
    const i = firstOf(client) ? 0 : 1;
    const stop = open(client, `/fragments/probe?key=${key}&with=${answer}${i ? "" : "&first=1"}`);
    try {
      let l = await until(key, wait + retry, (l) => l.arrivals.length >= i + 1);
      if (l.arrivals.length >= i + 1) {
        l = await until(key, wait, (l) => l.arrivals.length >= i + 2);
      }
      show(client, answer, verdict(l.arrivals, i));
    } catch (e) {
      show(client, answer, `error: ${e.message}`);
    } finally {
      stop();
    }
  };

  // hidden: the stream stays open; the tab is hidden (simulated: what
  // htmx and Datastar read), then shown again.
  const setHidden = (hidden) => {
    Object.defineProperty(document, "hidden", { configurable: true, get: () => hidden });
    Object.defineProperty(document, "visibilityState", { configurable: true, get: () => (hidden ? "hidden" : "visible") });
    document.dispatchEvent(new Event("visibilitychange"));
  };

  const hiddenProbes = async () => {
    const keys = clients.map((c) => `${run}-${c}-hidden`);
    const stops = clients.map((c, i) => open(c, `/fragments/probe?key=${keys[i]}&with=hidden`));
    try {
      await Promise.all(keys.map((k) => until(k, wait, (l) => l.open >= 1)));
      setHidden(true);
      // A client that closes its stream does so within 3 s (a loaded
      // machine included); one that keeps it has it open all that time.
      const closed = await Promise.all(keys.map(async (k) => (await until(k, 3000, (l) => l.open === 0)).open === 0));
      setHidden(false);
      const back = await Promise.all(keys.map(async (k, i) => !closed[i] || (await until(k, wait, (l) => l.arrivals.length >= 2 && l.open >= 1)).arrivals.length >= 2));
      clients.forEach((c, i) => show(c, "hidden",
        !closed[i] ? "keeps the stream open" : back[i] ? "closes it while hidden, reopens when shown" : "closes it while hidden, and does not reopen"));
    } catch (e) {
      clients.forEach((c) => show(c, "hidden", `error: ${e.message}`));
    } finally {
      stops.forEach((s) => s());
      delete document.hidden;
      delete document.visibilityState;
    }
  };

  const all = async () => {
    document.body.dataset.probed = "";
    status.textContent = "probing…";
    document.querySelectorAll("td.yours").forEach((td) => (td.textContent = "…"));
    run = Date.now().toString(36);
    await Promise.all(clients.flatMap((c) => answers.map((a) => probe(c, a))));
    await hiddenProbes();
    status.textContent = "done";
    document.body.dataset.probed = "1";
  };

  document.querySelector("[data-testid=run]").addEventListener("click", () => { if (document.body.dataset.probed === "1") all(); });
  if (document.readyState === "complete") all();
  else addEventListener("load", all, { once: true });
})();
