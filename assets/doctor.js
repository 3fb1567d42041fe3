// The doctor page: one EventSource per run, closed on its done event (or
// on any error), so that the end of the response is never a reconnect
// that would start the run again. Verdicts are written with textContent.
"use strict";
(() => {
  const radios = [...document.querySelectorAll("input[name=target]")];
  const expect = document.querySelector("[data-testid=expect]");
  const summary = document.querySelector("[data-testid=summary]");
  const rows = document.querySelector("[data-testid=checks] tbody");
  const log = document.querySelector("[data-testid=seen]");
  const button = document.querySelector("[data-action=run]");
  let es = null;

  if (radios.length === 0) { // every demo that offered a route was deleted
    button.disabled = true;
    expect.textContent = "No route of this site offers itself to doctor (a route's doctor field in app/routes.go).";
    return;
  }
  const chosen = () => radios.find((r) => r.checked);
  const showExpect = () => { expect.textContent = "Expect: " + chosen().dataset.expect; };
  radios.forEach((r) => r.addEventListener("change", showExpect));
  showExpect();

  function stop(text) {
    if (es) es.close();
    es = null;
    button.disabled = false;
    if (text) summary.textContent = text;
    document.body.dataset.doctor = "idle";
  }

  button.addEventListener("click", () => {
    stop();
    rows.replaceChildren();
    log.replaceChildren();
    const target = chosen().value;
    summary.textContent = "Connecting…";
    button.disabled = true;
    document.body.dataset.doctor = "running";
    let finished = false;
    es = new EventSource("/doctor/run?target=" + encodeURIComponent(target));
    es.addEventListener("started", (ev) => {
      const s = JSON.parse(ev.data);
      summary.textContent = "Checking " + s.url + (s.publish ? " (posting to " + s.publish + ")" : "") +
        ", for up to " + s.timeout + "…";
    });
    es.addEventListener("seen", (ev) => {
      const o = JSON.parse(ev.data);
      const li = document.createElement("li");
      li.dataset.what = o.what;
      li.dataset.stream = String(o.stream);
      li.dataset.atMs = String(o.at_ms);
      const who = o.stream === 0 ? "doctor" : "stream " + o.stream;
      li.textContent = (o.at_ms / 1000).toFixed(3) + " s  " + who + "  " + o.what + "  " + o.detail;
      log.append(li);
      log.scrollTop = log.scrollHeight;
    });
    es.addEventListener("check", (ev) => {
      const c = JSON.parse(ev.data);
      const tr = document.createElement("tr");
      tr.dataset.check = c.name;
      tr.dataset.status = c.status;
      for (const text of [c.name, c.status, c.detail]) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.append(td);
      }
      rows.append(tr);
    });
    es.addEventListener("done", (ev) => {
      finished = true;
      stop("Done: " + ev.data + ".");
    });
    es.addEventListener("failed", (ev) => {
      finished = true;
      stop(ev.data);
    });
    es.addEventListener("error", () => {
      if (!finished) {
        stop("The run ended before its report: the server may be at its limit of runs at once, or restarting. Try again.");
      }
    });
  });
  // A run belongs to the page being shown: leaving the page ends the run
  // (the server stops it with the request), and a page restored from the
  // back/forward cache says so instead of waiting for a report that will
  // not come.
  window.addEventListener("pagehide", () => {
    if (es) stop("The run stopped when you left the page: run it again.");
  });
  window.addEventListener("pageshow", (e) => {
    if (e.persisted) document.body.dataset.restored = String(Number(document.body.dataset.restored || 0) + 1);
  });
})();
