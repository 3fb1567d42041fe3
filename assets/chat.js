// The chat page: messages arrive as events; sending uses fetch(), and the
// form still works as a plain POST without JavaScript.
"use strict";
(() => {
  const { watch, $ } = sselab;
  const list = $("[data-testid=messages]");
  watch("stream", ["message"], (ev) => {
    const li = document.createElement("li");
    li.textContent = ev.data; // a message like <img onerror=...> stays text
    list.append(li);
    list.scrollTop = list.scrollHeight;
  });

  const form = $("[data-testid=say]");
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const box = form.elements.message;
    const res = await fetch("post", { method: "POST", body: new URLSearchParams({ message: box.value }) });
    const error = $("[data-testid=post-error]");
    if (res.ok) {
      box.value = "";
      error.textContent = "";
    } else {
      error.textContent = await res.text(); // the server's plain-text reason, announced (role=alert)
    }
  });
  form.elements.message.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); form.requestSubmit(); }
  });
})();
