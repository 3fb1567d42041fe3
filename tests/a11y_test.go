package tests

import (
	_ "embed"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// axe is axe-core, from its npm package (see testdata/axe/SOURCE).
//
//go:embed testdata/axe/axe.min.js
var axe string

// pages are every page of the site, by the name of its screenshot.
var pages = []struct{ name, path string }{
	{"home", "/"},
	{"timefeed", "/time/"},
	{"generator", "/eventsource/page"},
	{"visits", "/visits/"},
	{"chat-login", "/chat/"},
	{"tokens", "/tokens/"},
	{"fragments", "/fragments/"},
	{"fragments-datastar", "/fragments/datastar/"},
	{"fragments-clients", "/fragments/clients"},
	{"connections", "/connections/"},
	{"inbox-sign-in", "/inbox/"},
	{"doctor", "/doctor/"},
	{"engines", "/engines/"},
	{"notfound", "/no/such/page"},
}

// An accessibility audit with axe-core in Chromium on every page: no
// serious or critical violation, at 1280 and at 390 px wide. With
// SSELAB_SCREENSHOTS=DIR it saves a screenshot of each page at each width.
func TestBrowserAccessibility(t *testing.T) {
	skipShort(t)
	t.Parallel() // a Chromium of its own, and mostly waiting
	s := startServer(t)
	ctx := browser(t)
	shots := os.Getenv("SSELAB_SCREENSHOTS")
	for _, width := range []int64{1280, 390} {
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(width, 900)); err != nil {
			t.Fatal(err)
		}
		for _, p := range pages {
			navigate(t, ctx, s.URL+p.path)
			switch p.path {
			case "/", "/no/such/page", "/connections/", "/doctor/", "/engines/", "/fragments/clients", "/inbox/":
			case "/fragments/", "/fragments/datastar/": // htmx's or Datastar's stream, not sselab's panel
				eventually(t, 5*time.Second, p.name+": the stream opened", func() bool {
					return metric(t, s.URL, `sselab_open_streams{route="`+p.path+`stream"}`) >= 1
				})
			default:
				eventually(t, 5*time.Second, p.name+": the stream opened", func() bool { return opened(t, ctx) >= 1 })
			}
			found, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](axe+`;
				axe.run(document, {resultTypes: ["violations"]}).then(r => r.violations
					.filter(v => v.impact === "serious" || v.impact === "critical")
					.map(v => v.impact + " " + v.id + ": " + v.nodes.map(n => n.target.join(" ")).join(", ")))`,
				chromedp.EvalAwaitPromise))
			if err != nil {
				t.Fatalf("%s: running axe: %v", p.name, err)
			}
			for _, v := range found {
				t.Errorf("%s at %d px: %s", p.name, width, v)
			}
			if shots != "" {
				png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
				if err != nil {
					t.Fatal(err)
				}
				name := p.name + "-" + strconv.FormatInt(width, 10) + ".png"
				if err := os.WriteFile(filepath.Join(shots, name), png, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}
