// The token page: watch a token's stream, post actions to it, and show the
// same as curl and sselab request lines.
"use strict";
(() => {
  const { watch, $ } = sselab;
  let current = null;
  const token = () => $("[data-testid=token-form] input[name=token]").value;

  function commands() {
    const base = location.origin, t = token(), data = $("[data-testid=data]").value;
    const q = (s) => "'" + s.replaceAll("'", "'\\''") + "'";
    $("[data-testid=commands]").textContent = [
      "curl -N " + base + "/tokens/" + t + "/poll",
      "curl -d " + q(data) + " " + base + "/tokens/" + t + "/ping",
      "sselab client -H " + location.hostname + " -P " + (location.port || 80) + " " + t,
      "sselab request -H " + location.hostname + " -P " + (location.port || 80) + " " + t + " ping " + q(data),
    ].join("\n");
  }
  function start() {
    if (current) current.stop();
    const url = "/tokens/" + encodeURIComponent(token()) + "/poll";
    current = watch(url, ["ping", "close"], (ev) => {
      // As the seed's client did: a close event ends listening for good.
      if (ev.type === "close") current.close();
    });
    $("[data-testid=wire-url]").textContent = url;
    commands();
  }
  $("[data-testid=token-form]").addEventListener("submit", (e) => { e.preventDefault(); start(); });
  $("[data-testid=data]").addEventListener("input", commands);
  document.addEventListener("click", async (e) => {
    const b = e.target.closest("button[data-post]");
    if (!b) return;
    const action = b.dataset.post;
    const body = action === "retry" ? $("[data-testid=retry-ms]").value : action === "close" ? "" : $("[data-testid=data]").value;
    const res = await fetch("/tokens/" + encodeURIComponent(token()) + "/" + action, {
      method: "POST", headers: { "Content-Type": "text/plain" }, body,
    });
    $("[data-testid=answer]").textContent = res.status + " " + (await res.text()).trim();
  });
  start();
})();
