package tests

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"sselab/app/hub/redistest"
	"sselab/app/sse"
)

// person is someone signed in to the inbox from a client of their own,
// from a loopback source address of their own (so that many people do
// not share one address's sign-in limit).
type person struct {
	t      *testing.T
	name   string
	client *http.Client
	cookie string
}

func signInAs(t *testing.T, base, name, password string, source net.IP) *person {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	if source != nil {
		d.LocalAddr = &net.TCPAddr{IP: source}
	}
	p := &person{t: t, name: name, client: &http.Client{
		Transport: &http.Transport{DialContext: d.DialContext, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // the certificate made at start, in a test
			ForceAttemptHTTP2: false, DisableCompression: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
	resp := p.post(base, "/inbox/login", url.Values{"user": {name}, "password": {password}})
	if resp.StatusCode != http.StatusSeeOther || len(resp.Cookies()) != 1 {
		t.Fatalf("sign-in as %s: %s", name, resp.Status)
	}
	p.cookie = resp.Cookies()[0].Name + "=" + resp.Cookies()[0].Value
	return p
}

func (p *person) post(base, path string, form url.Values) *http.Response {
	p.t.Helper()
	req, _ := http.NewRequestWithContext(p.t.Context(), http.MethodPost, base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", formType)
	if p.cookie != "" {
		req.Header.Set("Cookie", p.cookie)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		p.t.Fatalf("POST %s: %v", path, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// inboxStream is one open inbox stream: its events, and when it ended.
type inboxStream struct {
	events chan sse.Event
	ended  chan time.Time
}

func (p *person) open(base string) *inboxStream {
	p.t.Helper()
	ctx, cancel := context.WithCancel(p.t.Context())
	p.t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/inbox/stream", nil)
	req.Header.Set("Cookie", p.cookie)
	resp, err := p.client.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		p.t.Fatalf("%s's stream: %v %v", p.name, err, resp)
	}
	s := &inboxStream{events: make(chan sse.Event, 64), ended: make(chan time.Time, 1)}
	go func() {
		defer resp.Body.Close()
		ps := sse.NewParser(resp.Body)
		for {
			ev, err := ps.Next()
			if err != nil {
				if ctx.Err() == nil {
					s.ended <- time.Now()
				}
				return
			}
			select {
			case s.events <- ev:
			default:
			}
		}
	}()
	return s
}

// endsWithin waits for the stream to end, failing after d.
func (s *inboxStream) endsWithin(t *testing.T, d time.Duration, what string) {
	t.Helper()
	select {
	case <-s.ended:
	case <-time.After(d):
		t.Errorf("%s: not ended within %v", what, d)
	}
}

// open reports whether the stream has not ended (checked after ends
// elsewhere had their second).
func (s *inboxStream) open() bool {
	select {
	case <-s.ended:
		return false
	default:
		return true
	}
}

// Two instances on one Redis: accounts and sessions are shared, a message
// reaches every stream of its recipient and no one else's, and a sign-out
// on one instance ends that session's streams on both within a second
// (the user's other session stays, until "everywhere").
func TestInboxAcrossInstances(t *testing.T) {
	rs := redistest.Start(t)
	a, b := startServer(t, "-redis", rs.URL), startServer(t, "-redis", rs.URL)
	ann1 := signInAs(t, a.URL, "ann", "ann's password", nil)
	ann2 := signInAs(t, b.URL, "ann", "ann's password", nil)
	bob := signInAs(t, b.URL, "bob", "bob's password", nil)
	s1, s2, s3, sb := ann1.open(a.URL), ann1.open(b.URL), ann2.open(b.URL), bob.open(a.URL)
	eventually(t, 5*time.Second, "four inbox streams open", func() bool {
		return metric(t, a.URL, `sselab_open_streams{route="/inbox/stream"}`)+metric(t, b.URL, `sselab_open_streams{route="/inbox/stream"}`) == 4
	})
	if r := bob.post(a.URL, "/inbox/send", url.Values{"to": {"ann"}, "message": {"hello ann"}}); r.StatusCode != http.StatusNoContent {
		t.Fatalf("send: %s", r.Status)
	}
	for i, s := range []*inboxStream{s1, s2, s3} {
		select {
		case ev := <-s.events:
			if ev.Type != "message" || !strings.HasSuffix(ev.Data, "] bob: hello ann") {
				t.Errorf("ann's stream %d: %+v", i+1, ev)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("ann's stream %d: no message", i+1)
		}
	}
	if r := ann1.post(b.URL, "/inbox/logout", nil); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-out: %s", r.Status)
	}
	s1.endsWithin(t, time.Second, "the signed-out session's stream on the other instance")
	s2.endsWithin(t, time.Second, "the signed-out session's stream on this instance")
	if !s3.open() || !sb.open() {
		t.Errorf("a sign-out ended another session's stream: ann's other %v, bob's %v", s3.open(), sb.open())
	}
	if r := ann2.post(a.URL, "/inbox/logout", url.Values{"everywhere": {"1"}}); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-out everywhere: %s", r.Status)
	}
	s3.endsWithin(t, time.Second, "ann's other session, after everywhere")
	if !sb.open() {
		t.Error("ann's sign-out everywhere ended bob's stream")
	}
	select {
	case ev := <-sb.events:
		t.Errorf("bob's stream got %+v", ev)
	default:
	}
}

// Many signed-in users with a stream each, and a fifth of them signing out
// at once: every one of those streams ends within a second of its
// sign-out, and no other does. 100 users here; SSELAB_FULL_SCALE=1 runs
// the 1,000 users and 200 sign-outs.
func TestInboxManySignOuts(t *testing.T) {
	users, outs := 100, 20
	if os.Getenv("SSELAB_FULL_SCALE") == "1" {
		users, outs = 1000, 200
	}
	s := startServer(t)
	people := make([]*person, users)
	var wg sync.WaitGroup
	slots := make(chan struct{}, 4) // sign-ins hash two at a time: more would wait, or get 503
	for i := range people {
		wg.Go(func() {
			slots <- struct{}{}
			defer func() { <-slots }()
			// 20 people per source address: under its 30 attempts.
			people[i] = signInAs(t, s.URL, fmt.Sprintf("user%d", i), "a password of theirs", net.IPv4(127, 0, 2, byte(1+i/20)))
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	streams := make([]*inboxStream, users)
	for i, p := range people {
		streams[i] = p.open(s.URL)
	}
	eventually(t, 10*time.Second, "every stream open", func() bool {
		return metric(t, s.URL, `sselab_open_streams{route="/inbox/stream"}`) == float64(users)
	})
	done := make([]time.Time, outs)
	for i := range outs {
		wg.Go(func() {
			if r := people[i].post(s.URL, "/inbox/logout", nil); r.StatusCode != http.StatusSeeOther {
				t.Errorf("sign-out %d: %s", i, r.Status)
			}
			done[i] = time.Now()
		})
	}
	wg.Wait()
	var worst time.Duration
	for i := range outs {
		select {
		case at := <-streams[i].ended:
			worst = max(worst, at.Sub(done[i]))
		case <-time.After(time.Second):
			t.Errorf("user%d's stream still open a second after the sign-out", i)
		}
	}
	t.Logf("%d sign-outs at once among %d streams: the last stream ended %v after its sign-out answered", outs, users, worst.Round(time.Millisecond))
	for i := outs; i < users; i++ {
		if !streams[i].open() {
			t.Errorf("user%d's stream ended; only the first %d signed out", i, outs)
		}
	}
}

// The inbox page in each engine and protocol: a wrong password shows the
// server's reason in the page; signing in shows the user's stream; a
// message from another user arrives as text; a sign-out everywhere from
// another client ends the page's stream, which says so and does not come
// back; the page then offers the sign-in form again.
func TestEnginesInbox(t *testing.T) {
	inEachEngineAndProtocol(t, nil, func(t *testing.T, b *tab, s *server) {
		signInAs(t, s.URL, "ann", "ann's password", nil) // claims the name
		b.Go(s.URL + "/inbox/")
		login := func(password string) {
			b.Eval(`(() => { const f = document.querySelector("[data-testid=login]");
				f.elements.user.value = "ann"; f.elements.password.value = `+jsString(password)+`;
				setTimeout(() => f.requestSubmit()); return true; })()`, new(bool))
		}
		login("not ann's password")
		b.Until(10*time.Second, "the 401's reason in the page", `document.querySelector("[data-testid=login-error]").textContent.startsWith("wrong password for")`)
		login("ann's password")
		b.Until(10*time.Second, "signed in as ann", `document.querySelector("[data-testid=user]")?.textContent === "ann"`)
		b.Until(10*time.Second, "ann's stream open", `document.querySelector("[data-testid=ready-state]").textContent === "OPEN"`)

		bob := signInAs(t, s.URL, "bob", "bob's password", nil)
		bob.post(s.URL, "/inbox/send", url.Values{"to": {"ann"}, "message": {"<img src=x onerror=alert(1)>"}})
		b.Until(10*time.Second, "bob's message, as text", list("messages")+`.some(t => t.endsWith("] bob: <img src=x onerror=alert(1)>"))`)
		if b.Bool(`document.querySelector("[data-testid=messages] img") !== null`) {
			t.Errorf("%s: a message became an element", b.engine)
		}

		other := signInAs(t, s.URL, "ann", "ann's password", nil)
		other.post(s.URL, "/inbox/logout", url.Values{"everywhere": {"1"}})
		b.Until(5*time.Second, "the page says the session ended", `document.querySelector("[data-testid=stream-state]").textContent.startsWith("Your session ended: every session of ann was signed out")`)
		b.Until(5*time.Second, "the stream closed for good", `document.querySelector("[data-testid=ready-state]").textContent === "CLOSED"`)
		b.Go(s.URL + "/inbox/")
		b.Until(10*time.Second, "the sign-in form again", `document.querySelector("[data-testid=login]") !== null`)
	})
}

// A page on another site, opened in the browser of a signed-in user,
// tries what it can with the user's cookies: EventSource on the inbox
// stream with credentials, a fetch() post in no-cors mode, and a plain
// form post. The stream never opens for it (no CORS allowance; the cookie
// is SameSite=Strict) and nothing is sent as the user: bob's inbox gets
// carol's message, posted afterwards, and nothing before it.
func TestEnginesInboxFromAnotherSite(t *testing.T) {
	inEachEngine(t, false, func(t *testing.T, b *tab) {
		s := startServer(t)
		target := s.URL // http://127.0.0.1:port; the other site is http://localhost:port2
		evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprintf(w, `<!doctype html><title>another site</title>
<form id="f" method="post" action="%[1]s/inbox/send"><input name="to" value="bob"><input name="message" value="forged by a form"></form>
<script>
window.result = {events: 0, errors: 0, state: -1, post: "pending"};
const es = new EventSource(%[2]q + "/inbox/stream", {withCredentials: true});
es.addEventListener("message", () => result.events++);
es.addEventListener("error", () => { result.errors++; result.state = es.readyState; });
fetch(%[2]q + "/inbox/send", {method: "POST", credentials: "include", mode: "no-cors",
	headers: {"Content-Type": "application/x-www-form-urlencoded"}, body: "to=bob&message=forged+by+fetch"})
	.then(() => result.post = "answered", () => result.post = "failed");
</script>`, target, target)
		}))
		t.Cleanup(evil.Close)
		_, port, _ := net.SplitHostPort(strings.TrimPrefix(evil.URL, "http://"))
		other := "http://localhost:" + port

		bob := signInAs(t, target, "bob", "bob's password", nil)
		bobs := bob.open(target)
		b.Go(target + "/inbox/")
		b.Eval(`(() => { const f = document.querySelector("[data-testid=login]");
			f.elements.user.value = "ann"; f.elements.password.value = "ann's password";
			setTimeout(() => f.requestSubmit()); return true; })()`, new(bool))
		b.Until(10*time.Second, "signed in as ann", `document.querySelector("[data-testid=user]")?.textContent === "ann"`)

		b.Go(other + "/")
		b.Until(10*time.Second, "the other site's attempts done", `window.result.post !== "pending" && window.result.state === 2`)
		var res struct{ Events, Errors, State int }
		b.Eval(`window.result`, &res)
		if res.Events != 0 {
			t.Errorf("%s: the other site read %d events of ann's stream", b.engine, res.Events)
		}
		b.Eval(`(() => { setTimeout(() => document.getElementById("f").submit()); return true; })()`, new(bool))
		b.Until(10*time.Second, "the form's post answered", `location.host !== `+jsString(strings.TrimPrefix(other, "http://")))

		carol := signInAs(t, target, "carol", "carol's password", nil)
		carol.post(target, "/inbox/send", url.Values{"to": {"bob"}, "message": {"after the other site"}})
		for {
			select {
			case ev := <-bobs.events:
				if strings.Contains(ev.Data, "forged") || strings.Contains(ev.Data, "ann:") {
					t.Fatalf("%s: the other site sent as ann: %q", b.engine, ev.Data)
				}
				if strings.HasSuffix(ev.Data, "] carol: after the other site") {
					return
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("%s: carol's message did not reach bob", b.engine)
			}
		}
	})
}
