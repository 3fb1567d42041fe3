package tests

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// The Flask chat in each engine and protocol, as two people use it: ann
// signs in on the page (a real form post and its redirect), bob from
// another client; each sees the other's messages; a message with markup
// and line breaks stays one message of text; and after leaving the page
// and coming back (history.back, which each engine serves from its
// back/forward cache or by reloading) every message is there exactly once.
func TestEnginesChat(t *testing.T) {
	inEachEngineAndProtocol(t, nil, func(t *testing.T, b *tab, s *server) {
		b.Go(s.URL + "/chat/")
		b.Eval(`(() => { const f = document.querySelector("[data-testid=login]");
			f.elements.user.value = "ann"; setTimeout(() => f.requestSubmit()); return true; })()`, new(bool))
		b.Until(10*time.Second, "signed in as ann", `document.querySelector("[data-testid=user]")?.textContent === "ann"`)
		b.Until(10*time.Second, "ann's stream open", `document.querySelector("[data-testid=ready-state]").textContent === "OPEN"`)

		bob := chatClient(t, s.URL, "bob")
		bob.say("hi ann")
		b.Until(10*time.Second, "ann sees bob's message", list("messages")+`.some(t => t.endsWith("] bob: hi ann"))`)

		const hostile = "<img src=x onerror=alert(1)>\r\nevent: forged\rid: 999\ndata: x</script>"
		b.Eval(`(() => { const f = document.querySelector("[data-testid=say]");
			f.elements.message.value = `+jsString(hostile)+`; f.requestSubmit(); return true; })()`, new(bool))
		// The encoder splits on every line ending, and EventSource joins the
		// data lines with LF: the message comes back as its own lines, the
		// later ones marked so that none poses as another message.
		want := "ann: <img src=x onerror=alert(1)>\n↳ event: forged\n↳ id: 999\n↳ data: x</script>"
		b.Until(10*time.Second, "the markup shown as text", list("messages")+`.some(t => t.endsWith(`+jsString(want)+`))`)
		if b.Bool(`document.querySelector("[data-testid=messages] img, [data-testid=messages] script") !== null`) {
			t.Errorf("%s: a message became an element", b.engine)
		}
		if got := b.String(`String(document.querySelectorAll("[data-testid=messages] li").length)`); got != "2" {
			t.Errorf("%s: %s messages shown, want 2: a line of a message became an event", b.engine, got)
		}

		b.Go(s.URL + "/time/")
		bob.say("while ann was away")
		b.Eval(`(() => { setTimeout(() => history.back()); return true; })()`, new(bool))
		b.Until(10*time.Second, "back on the chat, its stream open", `location.pathname === "/chat/" &&
			document.querySelector("[data-testid=ready-state]")?.textContent === "OPEN"`)
		b.Until(10*time.Second, "the message sent while away", list("messages")+`.some(t => t.endsWith("] bob: while ann was away"))`)
		for _, m := range []string{"] bob: hi ann", "] bob: while ann was away"} {
			if n := b.String(`String(` + list("messages") + `.filter(t => t.endsWith(` + jsString(m) + `)).length)`); n != "1" {
				t.Errorf("%s: %q shown %s times after coming back, want once", b.engine, m, n)
			}
		}
	})
}

// chatter is a person on the chat from a client of their own (not the
// browser under test), signed in with their own session cookie.
type chatter struct {
	t      *testing.T
	base   string
	client *http.Client
	cookie string
}

func chatClient(t *testing.T, base, name string) *chatter {
	t.Helper()
	c := &chatter{t: t, base: base, client: &http.Client{
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, // the certificate made at start, in a test
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
	resp := c.post("/chat/login", url.Values{"user": {name}})
	if resp.StatusCode != http.StatusSeeOther || len(resp.Cookies()) != 1 {
		t.Fatalf("login as %s: %s, cookies %v", name, resp.Status, resp.Cookies())
	}
	c.cookie = resp.Cookies()[0].Name + "=" + resp.Cookies()[0].Value
	return c
}

func (c *chatter) say(msg string) {
	c.t.Helper()
	if resp := c.post("/chat/post", url.Values{"message": {msg}}); resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusOK {
		c.t.Fatalf("posting %q: %s", msg, resp.Status)
	}
}

func (c *chatter) post(path string, form url.Values) *http.Response {
	c.t.Helper()
	req, _ := http.NewRequestWithContext(c.t.Context(), http.MethodPost, c.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", formType)
	if c.cookie != "" {
		req.Header.Set("Cookie", c.cookie)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		c.t.Fatalf("POST %s: %v", path, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}
