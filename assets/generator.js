// /eventsource/js: the Pylons seed's script. It opens an EventSource on
// event_sender and logs open, message and error to the console and the page.
"use strict";
(() => {
  const params = new URLSearchParams(location.search);
  const url = "/eventsource/event_sender" + (params.has("resume") ? "?resume=1" : "");
  const w = sselab.watch(url, ["message"]);
  if (params.has("resume")) {
    // The key moment of resume mode: the reconnect after the last event is
    // answered 204 No Content, which EventSource takes as the end.
    const timer = setInterval(() => {
      if (w.es.readyState === EventSource.CLOSED) {
        clearInterval(timer);
        const li = document.createElement("li");
        li.className = "meta";
        li.textContent = "the reconnect with Last-Event-ID: 9 was answered 204 No Content: EventSource is CLOSED for good";
        document.querySelector("[data-testid=events]").prepend(li);
      }
    }, 200);
  }
})();
