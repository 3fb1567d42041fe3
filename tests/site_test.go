package tests

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"sselab/app/hub/redistest"
)

// insecureTLS lets Chromium accept the certificate made at start: in
// tests only.
var insecureTLS = chromedp.Flag("ignore-certificate-errors", true)

// siteIn starts the site and Chromium, over -tls (HTTP/2) or plain
// HTTP/1.1.
func siteIn(t *testing.T, overTLS bool) (string, context.Context) {
	if overTLS {
		base, _ := startBinary(t, "-tls")
		return base, browser(t, insecureTLS)
	}
	return startServer(t).URL, browser(t)
}

// opened is how many times the page's EventSource has opened.
func opened(t *testing.T, ctx context.Context) int { return number(t, ctx, "connect-count") }

// One tab clicking through every demo in turn, forward by the nav and back
// by the back button (the back/forward cache on, as it is by default), twice
// round: every page loads and its stream opens within 2 s, also when it
// comes back from the cache.
func TestBrowserClickThroughWithBackForward(t *testing.T) {
	s := startServer(t)
	ctx := browser(t)
	navigate(t, ctx, s.URL+"/")
	pages := []string{"/time/", "/eventsource/page", "/visits/", "/chat/", "/tokens/", "/connections/?n=1"}
	for round := range 2 {
		for _, p := range pages {
			start := time.Now()
			navigate(t, ctx, s.URL+p)
			if p == "/connections/?n=1" {
				eventually(t, 2*time.Second, p+": its stream open", func() bool { return evalBool(t, ctx, `document.body.dataset.open === "1"`) })
				continue
			}
			eventually(t, 2*time.Second, fmt.Sprintf("round %d, %s: its stream open", round, p), func() bool { return opened(t, ctx) >= 1 })
			t.Logf("round %d: %s open after %v", round, p, time.Since(start).Round(time.Millisecond))
		}
		for i := len(pages) - 2; i >= 0; i-- {
			p := pages[i]
			// history.back(), not NavigateBack: a page restored from the
			// back/forward cache fires no load event to wait for.
			left, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`history.back(); Date.now()`))
			if err != nil {
				t.Fatalf("back to %s: %v", p, err)
			}
			eventually(t, 2*time.Second, fmt.Sprintf("round %d, back to %s: its stream open again", round, p), func() bool {
				return evalBool(t, ctx, `location.pathname + location.search === `+strconv.Quote(p)+
					` && Number(document.body.dataset.lastOpen) >= `+strconv.FormatFloat(left, 'f', 0, 64))
			})
		}
		restored := evalBool(t, ctx, `Number(document.body.dataset.restored || 0) > 0`)
		if !restored {
			t.Errorf("round %d: no page came back from the back/forward cache: the test did not test it", round)
		}
	}
	if n := metric(t, s.URL, "sselab_open_streams"); n > 2 {
		t.Errorf("%v streams open with one page shown: hidden pages hold theirs", n)
	}
}

// Over HTTP/1.1 six tabs of /visits/ are all open, and each hears the
// others' visits; over -tls (HTTP/2) twelve are.
func TestBrowserManyTabs(t *testing.T) {
	skipShort(t)
	t.Parallel() // a Chromium of its own, and mostly waiting
	for _, tc := range []struct {
		name string
		tabs int
		tls  bool
	}{{"http1.1", 6, false}, {"tls", 12, true}} {
		t.Run(tc.name, func(t *testing.T) {
			base, ctx := siteIn(t, tc.tls)
			tabs := []context.Context{ctx}
			for len(tabs) < tc.tabs {
				tabs = append(tabs, newTab(t, ctx, false))
			}
			visits := func(tab context.Context) int {
				v, err := chromedp.Run(tab, chromedp.Evaluate[int](`document.querySelectorAll("[data-testid=visits] li").length`))
				if err != nil {
					t.Fatal(err)
				}
				return v
			}
			counts := make([]int, len(tabs))
			for i, tab := range tabs {
				navigate(t, tab, base+"/visits/") // each load is a visit the open tabs hear
				eventually(t, 5*time.Second, "tab "+strconv.Itoa(i+1)+" open", func() bool { return text(t, tab, "ready-state") == "OPEN" })
				eventually(t, 5*time.Second, "tab "+strconv.Itoa(i+1)+" has its welcome", func() bool { return visits(tab) > 0 })
				counts[i] = visits(tab)
			}
			for i, tab := range tabs {
				later := len(tabs) - 1 - i
				eventually(t, 5*time.Second, fmt.Sprintf("tab %d hears the %d visits after it", i+1, later), func() bool {
					return visits(tab) >= counts[i]+later
				})
			}
		})
	}
}

// The seeds' own client code, run in the page as they wrote it (paths
// aside), in each engine and protocol, hears its events from the matching
// sselab routes. The page itself switches the feed on and posts.
func TestEnginesSeedsCode(t *testing.T) {
	inEachEngineAndProtocol(t, nil, func(t *testing.T, b *tab, s *server) {
		run := func(js string) {
			t.Helper()
			b.Eval(`(() => { `+js+`; return true; })()`, new(bool))
		}
		// CherryPy: a listener for 'time' on the relative sendTime.
		b.Go(s.URL + "/time/")
		b.Eval(`fetch("timeSwitch", {method: "POST"}).then(r => r.status)`, new(float64))
		run(`window.seen = [];
			window.source = new EventSource('sendTime');
			source.addEventListener('time', function(event) { seen.push(event.data); }, false)`)
		b.Until(10*time.Second, "the CherryPy code hears time events", `seen.length >= 2 && /^\d+\.\d+$/.test(seen[0])`)
		run(`source.close()`)

		b.Go(s.URL + "/healthz")
		// Pylons: a 'message' listener on event_sender.
		run(`window.pylons = [];
			window.source2 = new EventSource('/eventsource/event_sender?interval=50ms');
			source2.addEventListener('message', function(e) { window.pylons.push(e.data); }, false)`)
		// The Publisher library and the Flask chat: onmessage.
		run(`window.visits = []; window.chat = [];
			window.eventSource = new EventSource('/visits/subscribe');
			eventSource.onmessage = function(e) { visits.push(e.data); };
			window.chatSource = new EventSource('/chat/stream');
			chatSource.onmessage = function(e) { chat.push(e.data); }`)
		b.Until(10*time.Second, "both streams open", `eventSource.readyState === 1 && chatSource.readyState === 1`)
		b.Eval(`fetch("/visits/").then(r => r.status)`, new(float64))
		b.Eval(`fetch("/chat/post", {method: "POST", body: new URLSearchParams({message: "hello from the seed"})}).then(r => r.status)`, new(float64))
		b.Until(10*time.Second, "the Pylons code hears ten messages", `window.pylons.length >= 10 && window.pylons[9].startsWith("9 ")`)
		b.Until(10*time.Second, "the Publisher code hears the visit", `visits.some(v => v.startsWith("New visit from 127.0.0.1"))`)
		b.Until(10*time.Second, "the Flask code hears the message", `chat.some(m => m.endsWith("anonymous: hello from the seed"))`)
	})
}

// The lessons the pages must make visible: the time feed says it is off
// and why error lines are normal, shows clock time, and after the
// content-type switch shows the text/plain response on the wire; the
// generator's resume run ends with the 204 said in words; visits log
// visits, not counts.
func TestBrowserLessonsVisible(t *testing.T) {
	skipShort(t)
	t.Parallel() // a Chromium of its own, and mostly waiting
	s := startServer(t)
	ctx := browser(t)
	navigate(t, ctx, s.URL+"/time/")
	eventually(t, 5*time.Second, "the feed-off note", func() bool {
		return evalBool(t, ctx, `!document.querySelector("[data-testid=feed-note]").hidden`)
	})
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`[data-testid=toggle-feed]`))); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "clock time shown", func() bool {
		return evalBool(t, ctx, `/^\d\d:\d\d:\d\d\.\d{3}$/.test(document.querySelector("[data-testid=clock]").textContent) &&
			document.querySelector("[data-testid=feed-note]").hidden`)
	})
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`[data-testid=toggle-type]`))); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the text/plain response on the wire", func() bool {
		return evalBool(t, ctx, `document.querySelector("[data-testid=wire]").textContent.includes("content-type: text/plain")`)
	})
	do(t, "POST", s.URL+"/time/typeSwitch", "")

	navigate(t, ctx, s.URL+"/eventsource/page?resume=1")
	eventually(t, 15*time.Second, "the 204 said in words", func() bool {
		return evalBool(t, ctx, `document.querySelector("[data-testid=events]").textContent.includes("204 No Content")`)
	})

	navigate(t, ctx, s.URL+"/visits/")
	tab := newTab(t, ctx, true) // another viewer: the count changes
	navigate(t, tab, s.URL+"/visits/")
	eventually(t, 5*time.Second, "two viewers", func() bool { return text(t, ctx, "viewers") == "2" })
	if evalBool(t, ctx, `document.querySelector("[data-testid=events]").textContent.includes("viewers:")`) {
		t.Error("the visits log shows viewer counts: they are state, shown above")
	}
}

// When a page's stream waits for a connection over HTTP/1.1, the page says
// so: six other streams in the same browser hold every connection.
func TestBrowserSaysWhenTheLimitBites(t *testing.T) {
	skipShort(t)
	t.Parallel() // a Chromium of its own, and mostly waiting
	s := startServer(t)
	ctx := browser(t)
	navigate(t, ctx, s.URL+"/tokens/")
	eventually(t, 5*time.Second, "the page's stream open", func() bool { return text(t, ctx, "ready-state") == "OPEN" })
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`
		window.held = [];
		for (let i = 0; i < 6; i++) held.push(new EventSource("/connections/stream?i=" + i));
		true`)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "five of them open", func() bool {
		return evalBool(t, ctx, `held.filter(e => e.readyState === 1).length === 5`)
	})
	if !evalBool(t, ctx, `document.querySelector("[data-testid=conn-hint]").hidden`) {
		t.Fatal("the hint shows while the page's stream is open")
	}
	// Watch again: the page's new stream needs a seventh connection.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`[data-testid=token-form] button`))); err != nil {
		t.Fatal(err)
	}
	eventually(t, 6*time.Second, "the hint about the six connections", func() bool {
		return evalBool(t, ctx, `!document.querySelector("[data-testid=conn-hint]").hidden`)
	})
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`held.forEach(e => e.close()); true`)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the stream open and the hint gone", func() bool {
		return text(t, ctx, "ready-state") == "OPEN" && evalBool(t, ctx, `document.querySelector("[data-testid=conn-hint]").hidden`)
	})
}

// Two pages of /fragments/ show each message as the server rendered it
// within a second, whether posted from one of them or from the chat; after
// the stream is cut (the instance restarts) the messages posted meanwhile,
// on another instance, appear once each, in order.
func TestBrowserFragments(t *testing.T) {
	skipShort(t)
	t.Parallel() // a Chromium of its own, and mostly waiting
	rs := redistest.Start(t)
	a := startServer(t, "-redis", rs.URL)
	ctx := browser(t)
	other := newTab(t, ctx, true)
	for _, tab := range []context.Context{ctx, other} {
		navigate(t, tab, a.URL+"/fragments/")
	}
	items := func(tab context.Context) []string {
		v, err := chromedp.Run(tab, chromedp.Evaluate[[]string](`[...document.querySelectorAll("[data-testid=fragments] li .text")].map(li => li.textContent)`))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	eventually(t, 5*time.Second, "both pages connected", func() bool {
		return metric(t, a.URL, `sselab_open_streams{route="/fragments/stream"}`) == 2
	})
	if err := chromedp.Do(ctx, chromedp.SendKeys(`#fragment-message`, "from the page <b>"), chromedp.Click(`[data-testid=fragments-say] button`)); err != nil {
		t.Fatal(err)
	}
	within := func(want string) {
		t.Helper()
		for i, tab := range []context.Context{ctx, other} {
			deadline := time.Now().Add(time.Second)
			for fmt.Sprint(items(tab)) != want {
				if time.Now().After(deadline) {
					t.Fatalf("page %d: got %v within 1s, want %s", i+1, items(tab), want)
				}
				time.Sleep(20 * time.Millisecond) // polling interval
			}
		}
	}
	within("[from the page <b>]")
	postMessage(t, a.URL, "from the chat")
	within("[from the page <b> from the chat]")
	addr := strings.TrimPrefix(a.URL, "http://")
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	b := startServer(t, "-redis", rs.URL)
	for _, m := range []string{"one", "two", "three"} {
		postMessage(t, b.URL, m)
	}
	startServerAt(t, addr, "-redis", rs.URL)
	for _, tab := range []context.Context{ctx, other} {
		eventually(t, 15*time.Second, "the messages posted meanwhile, once each, in order", func() bool {
			return fmt.Sprint(items(tab)) == "[from the page <b> from the chat one two three]"
		})
	}
}
