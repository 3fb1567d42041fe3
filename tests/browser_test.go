package tests

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// browser starts headless Chromium with a fresh profile and returns a tab
// context. Chromium is closed when the test ends.
func browser(t *testing.T, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	exe := requireTool(t, "SSELAB_CHROMIUM", "chromium", "chromium-browser", "google-chrome")
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1200, 1000),
	}
	opts = append(opts, extra...)
	// A deadline for the whole test: a browser wait that never ends fails
	// the test instead of hanging it.
	dctx, cancelDeadline := context.WithTimeout(context.Background(), 2*time.Minute)
	actx, cancelAlloc := chromedp.NewExecAllocator(dctx, opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelCtx(); cancelAlloc(); cancelDeadline() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("starting Chromium: %v", err)
	}
	return ctx
}

// text reads the text of the element with data-testid id.
func text(t *testing.T, ctx context.Context, id string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`[data-testid=`+id+`]`)))
	if err != nil {
		t.Fatalf("reading %s: %v", id, err)
	}
	return s
}

func number(t *testing.T, ctx context.Context, id string) int {
	n, _ := strconv.Atoi(text(t, ctx, id))
	return n
}

func navigate(t *testing.T, ctx context.Context, url string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("navigating to %s: %v", url, err)
	}
}

// The CherryPy lesson in a real browser: short responses become polling
// through reconnects; the content-type switch closes the EventSource and
// no request follows.
func TestBrowserTimeFeed(t *testing.T) {
	ctx := browser(t)
	s := startServer(t, "-retry", "300ms")
	do(t, http.MethodPost, s.URL+"/time/timeSwitch", "")
	navigate(t, ctx, s.URL+"/time/")

	eventually(t, 20*time.Second, "time events across three reconnects", func() bool {
		return number(t, ctx, "connect-count") >= 3 && number(t, ctx, "event-count") >= 3
	})
	if dir := os.Getenv("SSELAB_SCREENSHOTS"); dir != "" {
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "timefeed.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	do(t, http.MethodPost, s.URL+"/time/typeSwitch", "")
	eventually(t, 10*time.Second, "readyState CLOSED after the content-type switch", func() bool {
		return text(t, ctx, "ready-state") == "CLOSED"
	})
	before := metric(t, s.URL, `sselab_http_requests_total{code="200",route="/time/sendTime"}`)
	// The claim is that nothing happens for 3s, so this test must watch 3s
	// pass: ten retry periods of 300ms.
	time.Sleep(3 * time.Second)
	if after := metric(t, s.URL, `sselab_http_requests_total{code="200",route="/time/sendTime"}`); after != before {
		t.Errorf("sendTime requests went from %v to %v after the EventSource closed", before, after)
	}
	if got := text(t, ctx, "ready-state"); got != "CLOSED" {
		t.Errorf("readyState: got %s, want CLOSED", got)
	}
}

// The Pylons page receives its ten messages.
func TestBrowserGenerator(t *testing.T) {
	ctx := browser(t)
	s := startServer(t)
	navigate(t, ctx, s.URL+"/eventsource/page")
	eventually(t, 20*time.Second, "ten messages", func() bool { return number(t, ctx, "event-count") >= 10 })
	nine, err := chromedp.Run(ctx, chromedp.Evaluate[bool](
		`[...document.querySelectorAll("[data-testid=events] li")].some(li => / message: 9 /.test(li.textContent))`))
	if err != nil {
		t.Fatal(err)
	}
	if !nine {
		t.Error("the event list has no message 9")
	}
}

// newTab opens another tab in the same browser. With private set, the tab
// has its own cookies, as another person's browser would.
func newTab(t *testing.T, ctx context.Context, private bool) context.Context {
	t.Helper()
	var opts []chromedp.ContextOption
	if private {
		opts = append(opts, chromedp.WithNewBrowserContext())
	}
	tab, cancel := chromedp.NewContext(ctx, opts...)
	t.Cleanup(cancel)
	return tab
}

// eval evaluates js in the page and returns its value as a T.
func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("evaluating %s: %v", js, err)
	}
	return v
}

func evalBool(t *testing.T, ctx context.Context, js string) bool {
	t.Helper()
	return eval[bool](t, ctx, js)
}

// Two tabs on /chat/ see each other's messages, and a message that looks
// like markup is shown as text.
func TestBrowserChatTwoTabs(t *testing.T) {
	ann := browser(t)
	s := startServer(t)
	bob := newTab(t, ann, true)
	for tab, name := range map[context.Context]string{ann: "ann", bob: "bob"} {
		navigate(t, tab, s.URL+"/chat/")
		if err := chromedp.Do(tab,
			chromedp.SetValue(chromedp.CSS(`input[name=user]`), name),
			chromedp.Submit(chromedp.CSS(`[data-testid=login]`)),
			chromedp.WaitVisible(chromedp.CSS(`[data-testid=user]`)),
		); err != nil {
			t.Fatalf("login as %s: %v", name, err)
		}
		eventually(t, 10*time.Second, name+"'s stream open", func() bool { return text(t, tab, "ready-state") == "OPEN" })
	}
	say := func(tab context.Context, msg string) {
		t.Helper()
		if err := chromedp.Do(tab,
			chromedp.SetValue(chromedp.CSS(`[data-testid=say] textarea`), msg),
			chromedp.Click(chromedp.CSS(`[data-testid=say] button`)),
		); err != nil {
			t.Fatal(err)
		}
	}
	has := func(tab context.Context, suffix string) bool {
		return evalBool(t, tab, `[...document.querySelectorAll("[data-testid=messages] li")].some(li => li.textContent.endsWith(`+strconv.Quote(suffix)+`))`)
	}
	say(ann, "hello bob")
	eventually(t, 10*time.Second, "bob sees ann's message", func() bool { return has(bob, "ann: hello bob") })
	say(bob, "hi ann")
	eventually(t, 10*time.Second, "ann sees bob's message", func() bool { return has(ann, "bob: hi ann") })

	say(ann, "<img src=x onerror=alert(1)>")
	eventually(t, 10*time.Second, "bob sees the markup as text", func() bool { return has(bob, "ann: <img src=x onerror=alert(1)>") })
	if evalBool(t, bob, `document.querySelector("[data-testid=messages] img") !== null`) {
		t.Error("the message became an <img> element")
	}
}

// A tab on /visits/ sees a visit made by another tab; the visitor sees its
// own visit marked "(you)".
func TestBrowserVisits(t *testing.T) {
	watcher := browser(t)
	s := startServer(t)
	navigate(t, watcher, s.URL+"/visits/")
	eventually(t, 10*time.Second, "the watcher's stream is open", func() bool { return text(t, watcher, "ready-state") == "OPEN" })
	visitsOf := func(tab context.Context, js string) bool {
		return evalBool(t, tab, `[...document.querySelectorAll("[data-testid=visits] li")]`+js)
	}
	eventually(t, 10*time.Second, "the watcher sees its own visit", func() bool {
		return visitsOf(watcher, `.some(li => li.textContent.endsWith("! (you)"))`)
	})

	visitor := newTab(t, watcher, true)
	navigate(t, visitor, s.URL+"/visits/")
	eventually(t, 10*time.Second, "the watcher sees another visit", func() bool {
		return visitsOf(watcher, `.filter(li => /^New visit from 127\.0\.0\.1 at .*!$/.test(li.textContent)).length >= 1`)
	})
	eventually(t, 10*time.Second, "two viewers counted", func() bool { return text(t, watcher, "viewers") == "2" })
	if !visitsOf(visitor, `.some(li => li.textContent.endsWith("! (you)"))`) {
		t.Error("the visitor does not see its own visit marked (you)")
	}
}

// The token page watches a token, posts ping from its buttons, and closes
// its EventSource on a close event, as the seed's client exited.
func TestBrowserTokens(t *testing.T) {
	tab := browser(t)
	s := startServer(t, "-i")
	navigate(t, tab, s.URL+"/tokens/")
	eventually(t, 10*time.Second, "watching the demo token", func() bool { return text(t, tab, "ready-state") == "OPEN" })
	if err := chromedp.Do(tab, chromedp.Click(chromedp.CSS(`[data-testid=post-ping]`))); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the ping shown", func() bool {
		return evalBool(t, tab, `[...document.querySelectorAll("[data-testid=events] li")].some(li => / ping #\d+: 42$/.test(li.textContent))`)
	})
	if got := text(t, tab, "answer"); got != "200 1 listener reached" {
		t.Errorf("answer: got %q, want 200 and one listener: the page holds one stream", got)
	}
	if !strings.Contains(text(t, tab, "commands"), "sselab request -H 127.0.0.1 -P ") {
		t.Errorf("commands: %q", text(t, tab, "commands"))
	}
	if err := chromedp.Do(tab, chromedp.Click(chromedp.CSS(`[data-testid=post-close]`))); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "readyState CLOSED after close", func() bool { return text(t, tab, "ready-state") == "CLOSED" })
}
