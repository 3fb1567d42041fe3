// /eventsource/js: the Pylons seed's script. It opens an EventSource on
// event_sender and logs open, message and error to the console and the page.
"use strict";
(() => {
  const params = new URLSearchParams(location.search);
  const url = "/eventsource/event_sender" + (params.has("resume") ? "?resume=1" : "");
  sselab.watch(url, ["message"]);
})();
