package tests

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"sselab/app/doctor"
	"sselab/app/sse"
)

// doctorRun is what one /doctor/run stream said.
type doctorRun struct {
	started map[string]string
	seen    []seenEvent
	checks  map[string]doctor.Check
	order   []string
	done    string
}

// seenEvent is the data of a seen event.
type seenEvent struct {
	AtMS   int64  `json:"at_ms"`
	Stream int    `json:"stream"`
	What   string `json:"what"`
	Detail string `json:"detail"`
}

// count is how many seen events of stream are what.
func (r doctorRun) count(stream int, what string) int {
	n := 0
	for _, o := range r.seen {
		if o.Stream == stream && o.What == what {
			n++
		}
	}
	return n
}

// headersAt is when the watched stream's headers were seen (-1: never).
func (r doctorRun) headersAt() int64 {
	for _, o := range r.seen {
		if o.Stream == 1 && o.What == "headers" {
			return o.AtMS
		}
	}
	return -1
}

// readDoctorRun reads a /doctor/run stream to its end with client.
func readDoctorRun(t *testing.T, client *http.Client, url string) doctorRun {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %d %s %q", url, resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	run := doctorRun{checks: map[string]doctor.Check{}}
	p := sse.NewParser(resp.Body)
	for {
		ev, err := p.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("reading the run: %v", err)
		}
		switch ev.Type {
		case "started":
			if err := json.Unmarshal([]byte(ev.Data), &run.started); err != nil {
				t.Fatalf("started: %v in %q", err, ev.Data)
			}
		case "seen":
			var o seenEvent
			if err := json.Unmarshal([]byte(ev.Data), &o); err != nil {
				t.Fatalf("seen: %v in %q", err, ev.Data)
			}
			run.seen = append(run.seen, o)
		case "check":
			if len(run.seen) == 0 {
				t.Fatal("a check before anything was seen")
			}
			var c doctor.Check
			if err := json.Unmarshal([]byte(ev.Data), &c); err != nil {
				t.Fatalf("check: %v in %q", err, ev.Data)
			}
			run.checks[c.Name] = c
			run.order = append(run.order, c.Name)
		case "done":
			run.done = ev.Data
		default:
			t.Fatalf("unexpected event %q: %q", ev.Type, ev.Data)
		}
	}
	return run
}

// The doctor page's runs, over plain HTTP: each target gives every check,
// in order, and the verdicts its lesson promises. The buffered generator
// fails headers and flush; the token stream, with doctor's own pings, and
// the generator fail nothing.
func TestDoctorPageRuns(t *testing.T) {
	s := startServer(t, "-i", "-keepalive", "1s")
	for _, tc := range []struct {
		target string
		fail   []string // exactly these fail
		pass   []string // and at least these pass
	}{
		{"buffered", []string{"headers", "flush"}, []string{"status", "content-type"}},
		{"generator", nil, []string{"status", "content-type", "cache-control", "headers", "flush"}},
		{"tokens", nil, []string{"status", "headers", "flush", "keepalive", "ids", "replay"}}, // -i: ids
	} {
		t.Run(tc.target, func(t *testing.T) { // one at a time: the page allows two runs
			run := readDoctorRun(t, plainClient, s.URL+"/doctor/run?target="+tc.target)
			if !strings.HasPrefix(run.started["url"], s.URL+"/") {
				t.Errorf("started: %v, want a URL on the server's own address %s", run.started, s.URL)
			}
			if tc.target == "tokens" && (!strings.Contains(run.started["url"], "/tokens/doctor-") || run.started["publish"] == "") {
				t.Errorf("started: %v, want a token of the run's own and its ping URL", run.started)
			}
			if strings.Join(run.order, " ") != strings.Join(doctor.Names, " ") {
				t.Errorf("checks %v, want %v", run.order, doctor.Names)
			}
			var failed []string
			for _, name := range run.order {
				if run.checks[name].Status == doctor.Fail {
					failed = append(failed, name)
				}
			}
			if strings.Join(failed, " ") != strings.Join(tc.fail, " ") {
				t.Errorf("failed %v, want %v; checks: %v", failed, tc.fail, run.checks)
			}
			for _, name := range tc.pass {
				if c := run.checks[name]; c.Status != doctor.Pass {
					t.Errorf("%s %s: %s; want pass", c.Status, name, c.Detail)
				}
			}
			if want := len(tc.fail); !strings.HasSuffix(run.done, fmt.Sprintf(", %d fail", want)) {
				t.Errorf("done: %q, want %d fail", run.done, want)
			}
			// What doctor saw, streamed as it saw it.
			switch tc.target {
			case "buffered": // held until the last event was made, 4.5 s in
				if at, n := run.headersAt(), run.count(1, "event"); at < 4000 || n != 10 {
					t.Errorf("seen: headers at %d ms and %d events, want after 4000 ms and 10: %v", at, n, run.seen)
				}
			case "generator":
				if at, n := run.headersAt(), run.count(1, "event"); at < 0 || at > 1000 || n != 10 {
					t.Errorf("seen: headers at %d ms and %d events, want at once and 10: %v", at, n, run.seen)
				}
			case "tokens":
				if n, got := run.count(0, "post"), run.count(1, "event"); n != 5 || got < 5 || run.count(2, "headers") != 1 {
					t.Errorf("seen: %d posts, %d events, want 5 posts, their events and the reconnection: %v", n, got, run.seen)
				}
			}
		})
	}
}

// With -tls the run goes through the same TLS listener, its client pinned
// to the server's own certificate (made at start, signed by nobody).
func TestDoctorPageOverTLS(t *testing.T) {
	s := startServer(t, "-tls", "-keepalive", "1s")
	run := readDoctorRun(t, h2Client(false), s.URL+"/doctor/run?target=generator")
	if !strings.HasPrefix(run.started["url"], "https://") {
		t.Errorf("started: %v, want https", run.started)
	}
	for _, name := range []string{"status", "headers", "flush"} {
		if c := run.checks[name]; c.Status != doctor.Pass {
			t.Errorf("%s %s: %s; want pass", c.Status, name, c.Detail)
		}
	}
}

// visitor is a client whose connections come from 127.0.0.n: another
// visitor, as the server sees it.
func visitor(n int) *http.Client {
	local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(n))}
	return &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{LocalAddr: local}).DialContext, DisableKeepAlives: true}}
}

// What no visitor can do with the page: name a target outside the list,
// start a run cross-site, have two runs of their own under way, or make
// more than two under way in all. Runs
// whose clients leave end, with every stream they opened.
func TestDoctorPageLimits(t *testing.T) {
	s := startServer(t)
	code, _, body := do(t, http.MethodGet, s.URL+"/doctor/run?target=http://example.com/", "")
	if code != http.StatusBadRequest || !strings.Contains(body, "target must be one of generator, buffered, tokens") {
		t.Errorf("a foreign target: %d %q, want 400 naming the targets", code, body)
	}
	code, _, body = do(t, http.MethodGet, s.URL+"/doctor/run?target=tokens", "", "Sec-Fetch-Site", "cross-site")
	if code != http.StatusForbidden {
		t.Errorf("a cross-site run: %d %q, want 403", code, body)
	}

	// Two runs under way, of two visitors (each has said started, so each
	// holds its slot)...
	var cancels []context.CancelFunc
	for i := range 2 {
		ctx, cancel := context.WithCancel(t.Context())
		cancels = append(cancels, cancel)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/doctor/run?target=tokens", nil)
		resp, err := visitor(i + 2).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		if ev := next(t, sse.NewParser(resp.Body), 5*time.Second); ev.Type != "started" {
			t.Fatalf("first event %q, want started", ev.Type)
		}
	}
	// ...a second run of one of them is refused: one at a time each...
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, s.URL+"/doctor/run?target=generator", nil)
	resp, err := visitor(2).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "a doctor run of yours (from 127.0.0.2) is under way") || !strings.Contains(string(b), "\nretry: ") {
		t.Errorf("a second run of one visitor: %q, want a rule 7 refusal naming theirs", b)
	}
	// ...and a third visitor's is refused as rule 7 says: it comes back later.
	code, h, body := do(t, http.MethodGet, s.URL+"/doctor/run?target=generator", "")
	if code != http.StatusOK || h.Get("Retry-After") == "" || !strings.Contains(body, ": 2 doctor runs are under way") ||
		!strings.Contains(body, "\nretry: ") || strings.Contains(body, "event: started") {
		t.Errorf("a third run: %d %v %q, want a rule 7 refusal", code, h, body)
	}
	// The two clients leave: their runs end, and so does every stream
	// the runs held to the server (theirs and doctor's own).
	for _, cancel := range cancels {
		cancel()
	}
	eventually(t, 10*time.Second, "no open streams after the runs' clients left", func() bool {
		return metric(t, s.URL, "sselab_open_streams") == 0
	})
	// The slots are free again.
	resp, p := openStream(t, s.URL+"/doctor/run?target=generator")
	if ev := next(t, p, 5*time.Second); resp.StatusCode != http.StatusOK || ev.Type != "started" {
		t.Errorf("a run after the others ended: %d, first event %q", resp.StatusCode, ev.Type)
	}
}

// A restart in the middle of a run: the server stops within 5 s, the
// run's stream ends cleanly with rule 8's retry, and the run (its own
// stream to the server included) does not hold the shutdown.
func TestDoctorPageShutdownMidRun(t *testing.T) {
	s := startServer(t) // keepalive 15 s: the token run would last most of 20 s
	_, p := openStream(t, s.URL+"/doctor/run?target=tokens")
	if ev := next(t, p, 5*time.Second); ev.Type != "started" {
		t.Fatalf("first event %q, want started", ev.Type)
	}
	eventually(t, 5*time.Second, "doctor's own stream open", func() bool {
		return metric(t, s.URL, `sselab_open_streams{route="/tokens/:token/poll"}`) == 1
	})
	start := time.Now()
	if err := s.Stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("shutdown took %v with a run under way, want under 5s", took)
	}
	for {
		ev, err := p.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("the run's stream: %v, want a clean end", err)
		}
		if ev.Type == "done" || ev.Type == "check" {
			t.Errorf("a %s event after the server stopped the run", ev.Type)
		}
	}
	if r, ok := p.Retry(); !ok || r < time.Second || r > 5*time.Second {
		t.Errorf("retry %v (sent %v), want one of 1-5 s", r, ok)
	}
}

// Many visitors at once: ten ask together; two run (a few more only if a
// run ended before a late request came), the rest are refused, and every
// run that ran gives its whole report.
func TestDoctorPageManyVisitors(t *testing.T) {
	s := startServer(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	ran, refused := 0, 0
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Ten visitors, each from an address of its own (one run per
			// visitor at a time is the other bound).
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, s.URL+"/doctor/run?target=generator", nil)
			resp, err := visitor(i + 1).Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case strings.Contains(string(b), "event: done\n"):
				ran++
			case strings.Contains(string(b), "doctor runs are under way"):
				refused++
			default:
				t.Errorf("neither a report nor a refusal: %q", b)
			}
		}()
	}
	wg.Wait()
	// At least two ran; more only if a run ended before a late request came.
	if ran < 2 || ran+refused != 10 || refused == 0 {
		t.Errorf("%d ran, %d refused, want 2 (or a few more) to run and the rest refused", ran, refused)
	}
}

// The page in Chromium: the buffered generator's run shows headers and
// flush failing, each verdict in its own row, and the page's EventSource
// is closed after the report (no second run starts by reconnecting).
func TestBrowserDoctorPage(t *testing.T) {
	ctx := browser(t)
	s := startServer(t)
	navigate(t, ctx, s.URL+"/doctor/")
	if !strings.Contains(text(t, ctx, "expect"), "Flush passes") {
		t.Errorf("expect: %q, want the first target's", text(t, ctx, "expect"))
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`input[value=buffered]`)), chromedp.Click(chromedp.CSS(`[data-testid=run]`))); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text(t, ctx, "expect"), "Headers and flush fail") {
		t.Errorf("expect: %q, want the buffered target's", text(t, ctx, "expect"))
	}
	eventually(t, 30*time.Second, "the report", func() bool {
		return strings.HasPrefix(text(t, ctx, "summary"), "Done:")
	})
	for check, want := range map[string]string{"headers": "fail", "flush": "fail", "status": "pass", "content-type": "pass"} {
		got := eval[string](t, ctx, `document.querySelector("tr[data-check='`+check+`']")?.dataset.status ?? "none"`)
		if got != want {
			t.Errorf("%s: %s, want %s", check, got, want)
		}
	}
	if rows := eval[string](t, ctx, `String(document.querySelectorAll("[data-testid=checks] tbody tr").length)`); rows != fmt.Sprint(len(doctor.Names)) {
		t.Errorf("%s rows, want %d", rows, len(doctor.Names))
	}
	// The log of what doctor saw: the ten events, and the headers that
	// came with them, 4.5 s in.
	if got := eval[string](t, ctx, `const seen = [...document.querySelectorAll("[data-testid=seen] li[data-stream='1']")];
		seen.filter(li => li.dataset.what === "event").length + " " +
		(Number(seen.find(li => li.dataset.what === "headers")?.dataset.atMs) >= 4000)`); got != "10 true" {
		t.Errorf("seen log: %q, want 10 events and the headers after 4 s", got)
	}
	// The page closed its EventSource on done: the run's response ended
	// and the page is idle, its button back.
	eventually(t, 5*time.Second, "the run's response ended", func() bool {
		return metric(t, s.URL, `sselab_http_requests_total{code="200",route="/doctor/run"}`) == 1
	})
	if st := eval[string](t, ctx, `document.body.dataset.doctor + " " + document.querySelector("[data-testid=run]").disabled`); st != "idle false" {
		t.Errorf("after the report: %q, want the page idle and its button enabled", st)
	}
}

// Leaving the page mid-run ends the run, with every stream it held, and
// the page restored from the back/forward cache says the run stopped
// instead of waiting for a report that will not come.
func TestBrowserDoctorBackForward(t *testing.T) {
	ctx := browser(t)
	s := startServer(t) // keepalive 15 s: a token run lasts most of its 20 s
	navigate(t, ctx, s.URL+"/doctor/")
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`input[value=tokens]`)), chromedp.Click(chromedp.CSS(`[data-testid=run]`))); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the run started", func() bool {
		return strings.HasPrefix(text(t, ctx, "summary"), "Checking ")
	})
	// The run's stream, and doctor's own stream of the token it checks.
	eventually(t, 5*time.Second, "the run's streams open", func() bool {
		return metric(t, s.URL, `sselab_open_streams{route="/doctor/run"}`) == 1 &&
			metric(t, s.URL, `sselab_open_streams{route="/tokens/:token/poll"}`) == 1
	})
	navigate(t, ctx, s.URL+"/eventsource/page")
	eventually(t, 5*time.Second, "the run ended when its page was left", func() bool {
		return metric(t, s.URL, `sselab_open_streams{route="/doctor/run"}`) == 0 &&
			metric(t, s.URL, `sselab_open_streams{route="/tokens/:token/poll"}`) == 0
	})
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`history.back(); true`)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "back on the doctor page", func() bool {
		return evalBool(t, ctx, `location.pathname === "/doctor/"`)
	})
	if !evalBool(t, ctx, `Number(document.body.dataset.restored || 0) > 0`) {
		t.Error("the page did not come back from the back/forward cache: the test did not test it")
	}
	// Read by script: chromedp's DOM queries do not follow a page
	// restored from the cache.
	if got := eval[string](t, ctx, `document.querySelector("[data-testid=summary]").textContent`); !strings.Contains(got, "The run stopped when you left the page") {
		t.Errorf("summary: %q, want the run said stopped", got)
	}
	if !evalBool(t, ctx, `!document.querySelector("[data-testid=run]").disabled`) {
		t.Error("the run button is still disabled")
	}
}
