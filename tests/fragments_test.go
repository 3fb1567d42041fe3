package tests

import (
	"encoding/json"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"sselab/app/hub/redistest"
	"sselab/views"
)

// The chat's two fragment renderings in each engine and protocol: htmx 4
// on /fragments/ and Datastar on /fragments/datastar/, each on a server of
// its own with -redis. Another person's message arrives; a hostile message
// typed into the page's own form comes back as one list item of text (no
// element, no forged event, its CR kept as a character). Then the page's
// server restarts in the middle, and a message is posted on another
// instance while it is down: each client comes back by itself (rule 8's
// parting block reaches both), sends the last id it saw, and shows the
// message it missed once and nothing twice.
func TestEnginesFragments(t *testing.T) {
	for _, page := range []struct{ name, path string }{{"htmx", "/fragments/"}, {"datastar", "/fragments/datastar/"}} {
		for _, proto := range []string{"http1", "tls"} {
			t.Run(page.name+"/"+proto, func(t *testing.T) {
				t.Parallel()
				inEachEngine(t, proto == "tls", func(t *testing.T, b *tab) {
					args := []string{"-redis", redistest.Start(t).URL}
					client := plainClient
					if proto == "tls" {
						args, client = append(args, "-tls"), h2Client(false)
					}
					s := startServer(t, args...)
					b.Go(s.URL + page.path)
					chatClient(t, s.URL, "bob").say("hi")
					b.Until(10*time.Second, "bob's message", list("fragments")+`.some(t => t.endsWith("bob: hi"))`)

					const hostile = "<img src=x onerror=alert(1)>\r\nevent: forged\rid: 999\x00\ndata: x</script>"
					b.Eval(`(() => { const f = document.querySelector("[data-testid=fragments-say]");
						f.elements.message.value = `+jsString(hostile)+`; f.requestSubmit(); return true; })()`, new(bool))
					// The textarea keeps each line break as LF and the form sends
					// it as CRLF, whose CR the fragment carries as a reference;
					// NUL arrives as U+FFFD: what shows is the text typed.
					want := "anonymous: <img src=x onerror=alert(1)>\nevent: forged\nid: 999\uFFFD\ndata: x</script>"
					b.Until(10*time.Second, "the hostile message as text",
						`[...document.querySelectorAll("[data-testid=fragments] li")].some(li => li.textContent.replace(/\r\n/g, "\n").endsWith(`+jsString(want)+`))`)
					if b.Bool(`document.querySelector("[data-testid=fragments] img, [data-testid=fragments] script") !== null`) {
						t.Errorf("%s: a message became an element", b.engine)
					}
					if got := b.String(`String(document.querySelectorAll("[data-testid=fragments] li").length)`); got != "2" {
						t.Errorf("%s: %s items, want 2: a line of a message became an event or a message", b.engine, got)
					}

					addr := s.URL[strings.Index(s.URL, "//")+2:]
					if err := s.Stop(); err != nil {
						t.Fatal(err)
					}
					other := startServer(t, args...)
					chatClient(t, other.URL, "dan").say("while it was down")
					s2 := startServerAt(t, addr, args...)
					route := page.path + "stream"
					eventually(t, 30*time.Second, "the page's stream back on the restarted server", func() bool {
						return metricOf(t, client, s2.URL, `sselab_open_streams{route="`+route+`"}`) >= 1
					})
					b.Until(10*time.Second, "the message posted while it was down", list("fragments")+`.some(t => t.endsWith("dan: while it was down"))`)
					chatClient(t, s2.URL, "carol").say("after the restart")
					b.Until(10*time.Second, "carol's message after the restart", list("fragments")+`.some(t => t.endsWith("carol: after the restart"))`)
					if got := b.String(`String(document.querySelectorAll("[data-testid=fragments] li").length)`); got != "4" {
						t.Errorf("%s: %s items after the restart, want 4, each message once: %s", b.engine, got, b.String(list("fragments")+`.join(" | ")`))
					}
				})
			})
		}
	}
}

// clientsTable is the clients page's measured table, beside the handler
// that embeds it.
const clientsTable = "../handlers/fragments_clients.json"

// /fragments/clients in each engine: every client answers every probe, the
// page shows what it measured, and that is what the table says. With
// SSELAB_UPDATE_FRAGMENTS=1 the test writes the table from what it
// measured instead (then read the diff). Over -tls, so that the page's 28
// probes at once do not wait for HTTP/1.1's six connections.
func TestFragmentClients(t *testing.T) {
	update := os.Getenv("SSELAB_UPDATE_FRAGMENTS") == "1"
	var want views.ClientsMeasured
	raw, err := os.ReadFile(clientsTable)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatalf("%s: %v", clientsTable, err)
	}
	var mu sync.Mutex
	got := views.ClientsMeasured{}
	t.Cleanup(func() {
		if !update || t.Failed() {
			return
		}
		out, _ := json.MarshalIndent(got, "", "  ")
		if err := os.WriteFile(clientsTable, append(out, '\n'), 0o644); err != nil {
			t.Error(err)
		}
	})
	inEachEngine(t, true, func(t *testing.T, b *tab) {
		s := startServer(t, "-tls")
		b.Go(s.URL + "/fragments/clients")
		b.Until(90*time.Second, "every probe answered", `document.body.dataset.probed === "1"`)
		var answers map[string]string
		b.Eval(`window.clientAnswers`, &answers)
		mu.Lock()
		defer mu.Unlock()
		for _, c := range views.FragmentClients {
			for _, a := range views.ClientAnswers {
				v := answers[c.ID+"/"+a.ID]
				if cell := b.Text("yours-" + c.ID + "-" + a.ID); cell != v {
					t.Errorf("%s: %s/%s shows %q, measured %q", b.engine, c.ID, a.ID, cell, v)
				}
				if v == "" || strings.HasPrefix(v, "error") {
					t.Errorf("%s: %s/%s has no answer: %q", b.engine, c.ID, a.ID, v)
				}
				if got[c.ID] == nil {
					got[c.ID] = map[string]map[string]string{}
				}
				if got[c.ID][a.ID] == nil {
					got[c.ID][a.ID] = map[string]string{}
				}
				got[c.ID][a.ID][b.engine] = v
				if !update && want[c.ID][a.ID][b.engine] != v {
					t.Errorf("%s: %s on %s: %q; the table says %q (measure again: SSELAB_UPDATE_FRAGMENTS=1 go test ./tests/ -run TestFragmentClients)",
						b.engine, c.ID, a.ID, v, want[c.ID][a.ID][b.engine])
				}
			}
		}
	})
}

// Real navigation on both fragment pages, in each engine: leave for
// another page and come back with the browser's back button, then another
// person posts. Whether the engine restores the page from its
// back/forward cache or loads it again, the page's client is reading
// again, and every message shows once.
func TestEnginesFragmentsBackForward(t *testing.T) {
	for _, page := range []struct{ name, path string }{{"htmx", "/fragments/"}, {"datastar", "/fragments/datastar/"}} {
		t.Run(page.name, func(t *testing.T) {
			t.Parallel()
			inEachEngine(t, false, func(t *testing.T, b *tab) {
				s := startServer(t)
				b.Go(s.URL + page.path)
				bob := chatClient(t, s.URL, "bob")
				bob.say("before")
				b.Until(10*time.Second, "bob's first message", list("fragments")+`.some(t => t.endsWith("bob: before"))`)
				b.Go(s.URL + "/time/")
				bob.say("while away")
				b.Eval(`(() => { setTimeout(() => history.back()); return true; })()`, new(bool))
				b.Until(10*time.Second, "back on the page", `location.pathname === `+jsString(page.path))
				bob.say("after coming back")
				b.Until(15*time.Second, "the message posted after coming back", list("fragments")+`.some(t => t.endsWith("bob: after coming back"))`)
				for _, m := range []string{"bob: before", "bob: while away", "bob: after coming back"} {
					if n := b.String(`String(` + list("fragments") + `.filter(t => t.endsWith(` + jsString(m) + `)).length)`); n != "1" {
						t.Errorf("%s: %q shown %s times, want once: %s", b.engine, m, n, b.String(list("fragments")+`.join(" | ")`))
					}
				}
			})
		})
	}
}
