// The chat page: messages arrive as events; sending uses fetch(), and the
// form still works as a plain POST without JavaScript.
"use strict";
(() => {
  const { watch, $ } = sselab;
  const list = $("[data-testid=messages]");
  watch("stream", ["message"], (ev) => {
    const li = document.createElement("li");
    // Text only: a message like <img onerror=...> stays text. Its later
    // lines are marked, so that no line can pose as another message
    // ("hi\n[12:00:00] bob: ..." is one message of ann's, on two lines).
    li.textContent = ev.data.split("\n").join("\n↳ ");
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
