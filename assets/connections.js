// The connections page: n EventSources at once; after three seconds, the
// ones still connecting are shown as waiting for a connection.
"use strict";
(() => {
  const list = document.querySelector("[data-testid=streams]");
  const summary = document.querySelector("[data-testid=summary]");
  const n = Number(list.dataset.n);
  const streams = [];
  const count = () => {
    const open = streams.filter((s) => s.state === "open").length;
    const waiting = streams.filter((s) => s.state === "waiting").length;
    summary.textContent = open + " open, " + waiting + " waiting" + (waiting
      ? ": no connection is free for them (HTTP/1.1 allows six per site)." : ".");
    document.body.dataset.open = String(open);
    document.body.dataset.waiting = String(waiting);
  };
  for (let i = 0; i < n; i++) {
    const li = document.createElement("li");
    li.dataset.state = "connecting";
    li.textContent = "stream " + (i + 1) + ": connecting";
    list.append(li);
    const s = { state: "connecting", li, es: new EventSource("/connections/stream?i=" + i) };
    s.es.addEventListener("opened", (ev) => {
      s.state = li.dataset.state = "open";
      li.textContent = ev.data;
      count();
    });
    streams.push(s);
  }
  setTimeout(() => {
    for (const s of streams) {
      if (s.state === "connecting") {
        s.state = s.li.dataset.state = "waiting";
        s.li.textContent = s.li.textContent.replace("connecting", "waiting: readyState CONNECTING, no error, no connection free");
      }
    }
    count();
    document.body.dataset.settled = "1";
    // Over HTTP/1.1 these streams hold every connection the browser has
    // for this site: even a link from this page would wait for one. So
    // they close once the lesson is shown.
    closeAll();
    summary.textContent += " The page has closed them again, so that the site stays usable: reload to repeat.";
  }, 3000);
  function closeAll() { for (const s of streams) s.es.close(); }
  window.addEventListener("pagehide", closeAll);
  document.addEventListener("click", (e) => { if (e.target.closest("a")) closeAll(); });
  window.addEventListener("pageshow", (e) => { if (e.persisted) location.reload(); });
  count();
})();
