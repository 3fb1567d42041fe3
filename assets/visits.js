// The visits page: visits and the viewer count arrive as events.
"use strict";
(() => {
  const { watch, $ } = sselab;
  const list = $("[data-testid=visits]");
  watch("subscribe", ["message", "viewers", "welcome"], (ev) => {
    if (ev.type === "viewers") {
      $("[data-testid=viewers]").textContent = ev.data;
      return;
    }
    const li = document.createElement("li");
    li.textContent = ev.data; // never innerHTML: data is text
    list.prepend(li);
  }, ["viewers"]); // the count is state: shown above, not logged

})();
