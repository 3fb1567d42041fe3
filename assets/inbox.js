// The inbox page: the user's own stream (the session cookie says whose),
// a form to send to another user, and what happens when the session ends.
"use strict";
(() => {
  const { watch, $ } = sselab;
  const login = $("[data-testid=login]");
  if (login) {
    // Signing in with fetch() keeps the page and shows the server's
    // plain-text reason (401, 409, 429) in it.
    login.addEventListener("submit", async (e) => {
      e.preventDefault();
      const res = await fetch("login", { method: "POST", body: new URLSearchParams(new FormData(login)) });
      if (res.ok) location.assign("/inbox/"); // the 303, followed: signed in
      else $("[data-testid=login-error]").textContent = await res.text();
    });
    return;
  }
  const list = $("[data-testid=messages]");
  const state = $("[data-testid=stream-state]");
  const stream = watch("stream", ["message", "ended"], (ev) => {
    if (ev.type === "ended") {
      // The session is over (signed out here, in another tab or browser,
      // or expired): the server ended the stream; stop, and say why.
      stream.stop();
      state.textContent = "Your session ended: " + ev.data + ". Sign in again to read your inbox.";
      document.body.dataset.ended = "1";
      return;
    }
    const li = document.createElement("li");
    li.textContent = ev.data.split("\n").join("\n↳ "); // text only; later lines marked
    list.append(li);
    list.scrollTop = list.scrollHeight;
  });
  // A 401 (no valid session) makes EventSource give up for good.
  const check = setInterval(() => {
    if (stream.es && stream.es.readyState === EventSource.CLOSED && document.body.dataset.ended !== "1") {
      state.textContent = "Not signed in, or the session ended: the server answered 401, and EventSource stopped. Sign in again.";
      document.body.dataset.ended = "1";
      clearInterval(check);
    }
  }, 500);

  const form = $("[data-testid=send]");
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const error = $("[data-testid=send-error]");
    const res = await fetch("send", { method: "POST", body: new URLSearchParams(new FormData(form)) });
    if (res.ok) {
      form.elements.message.value = "";
      error.textContent = "";
    } else {
      error.textContent = await res.text(); // the server's plain-text reason
    }
  });
})();
