package views

// ClientsMeasured is what the tests saw the fragments pages' clients do,
// by client, then answer, then engine ("chromium", "firefox", "webkit").
type ClientsMeasured map[string]map[string]map[string]string

// FragmentClient is one client the fragments pages use, as the clients
// page runs it.
type FragmentClient struct {
	ID, Name, Setting string
}

// FragmentClients are the clients, in the order the table shows them.
var FragmentClients = []FragmentClient{
	{"eventsource", "EventSource (/chat/)", "new EventSource(url)"},
	{"htmx4", "htmx 4 hx-sse (/fragments/)", `hx-sse:connect, hx-sse:close="close"`},
	{"datastar-auto", "Datastar, its default", "@get(url); answered on its first request, since a clean end stops it"},
	{"datastar-always", "Datastar (/fragments/datastar/)", "@get(url, {retry: 'always'})"},
}

// ClientAnswer is one answer a probe gives a client's second request.
type ClientAnswer struct {
	ID, Label, Server string
}

// ClientAnswers are the answers, in the order the table shows them.
var ClientAnswers = []ClientAnswer{
	{"refuse", "rule 7's refusal", "200 text/event-stream, retry: and event: retry, the end"},
	{"shutdown", "rule 8's restart", "retry: and event: retry, then a clean end"},
	{"204", "a 204", "204 No Content"},
	{"500", "another status", "500, text/plain"},
	{"type", "another content type", "200 text/plain"},
	{"stop", "sselab's stop", "204; to htmx (HX-Request), event: close"},
	{"hidden", "a hidden tab", "the stream stays open; the tab is hidden, then shown"},
}

// ClientEngines are the measured columns.
var ClientEngines = []struct{ Key, Label string }{
	{"chromium", "Chromium"}, {"firefox", "Firefox"}, {"webkit", "WebKit"},
}
