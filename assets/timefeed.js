// The time feed page: one EventSource on sendTime, in the chosen mode.
"use strict";
(() => {
  const { watch, $ } = sselab;
  let current = null;

  function url() {
    const mode = $("input[name=mode]:checked").value;
    if (mode === "short") return "sendTime";
    return "sendTime?mode=stream&interval=" + encodeURIComponent($("input[name=interval]").value);
  }
  // The feed sends Unix time with a fraction; people read clock time.
  const readable = (data) => new Date(Number(data) * 1000).toLocaleTimeString([], { hour12: false }) +
    "." + String(Math.floor((Number(data) % 1) * 1000)).padStart(3, "0");
  const onTime = (ev) => { $("[data-testid=clock]").textContent = readable(ev.data); };
  onTime.describe = (ev) => ev.data + " (" + readable(ev.data) + ")";
  function connect() {
    if (current) current.stop();
    current = watch(url(), ["time"], onTime);
  }
  async function refreshStatus() {
    const s = await (await fetch("status", { cache: "no-store" })).json();
    $("[data-testid=feed-state]").textContent = s.feed ? "on" : "off";
    $("[data-testid=type-state]").textContent = s.typeSwitch ? "on" : "off";
    $("[data-testid=feed-note]").hidden = s.feed;
  }
  async function post(path) {
    await fetch(path, { method: "POST" });
    await refreshStatus();
  }

  document.addEventListener("click", (e) => {
    const b = e.target.closest("button[data-action]");
    if (!b) return;
    switch (b.dataset.action) {
      case "feed": post("timeSwitch"); break;
      case "type":
        // Show what stopped EventSource: read the route once on the wire.
        post("typeSwitch").then(() => sselab.wire(url()));
        break;
      case "connect": connect(); break;
      case "close": if (current) current.close(); break;
    }
  });
  for (const r of document.querySelectorAll("input[name=mode]")) {
    r.addEventListener("change", () => { connect(); $("[data-testid=wire-url]").textContent = url(); });
  }
  connect();
  refreshStatus();
})();
