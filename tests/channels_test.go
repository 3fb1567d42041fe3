package tests

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"sselab/app"
	"sselab/app/hub/redistest"
	"sselab/app/sse"
)

const formType = "application/x-www-form-urlencoded"

func postMessage(t *testing.T, base, msg string, header ...string) (int, string) {
	t.Helper()
	code, _, body := do(t, http.MethodPost, base+"/chat/post", url.Values{"message": {msg}}.Encode(),
		append([]string{"Content-Type", formType}, header...)...)
	return code, body
}

// nextOfType reads events until one of the type arrives.
func nextOfType(t *testing.T, p *sse.Parser, typ string, within time.Duration) sse.Event {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ev := next(t, p, time.Until(deadline))
		if ev.Type == typ {
			return ev
		}
	}
}

func TestVisitsReachEverySubscriber(t *testing.T) {
	s := startServer(t)
	const n = 25
	parsers := make([]*sse.Parser, n)
	for i := range parsers {
		_, parsers[i] = openStream(t, s.URL+"/visits/subscribe")
		nextOfType(t, parsers[i], "welcome", 5*time.Second)
	}
	code, _, _ := do(t, http.MethodGet, s.URL+"/visits/", "")
	if code != http.StatusOK {
		t.Fatalf("GET /visits/: %d", code)
	}
	visit := regexp.MustCompile(`^New visit from 127\.0\.0\.1 at \d\d:\d\d:\d\d!$`)
	for i, p := range parsers {
		ev := nextOfType(t, p, "", 5*time.Second) // visits are untyped: message events
		if !visit.MatchString(ev.Data) || ev.ID == "" {
			t.Errorf("subscriber %d: got %+v", i, ev)
		}
	}
}

var chatLine = regexp.MustCompile(`^\[\d\d:\d\d:\d\d\] (\S+): (?s)(.*)$`)

func TestChatEndToEnd(t *testing.T) {
	s := startServer(t)
	_, p := openStream(t, s.URL+"/chat/stream")
	for _, msg := range []string{"one", "two\nlines", "<img src=x onerror=alert(1)>"} {
		if code, body := postMessage(t, s.URL, msg); code != http.StatusNoContent {
			t.Fatalf("post %q: %d %q", msg, code, body)
		}
	}
	var evs []sse.Event
	for i := 0; i < 3; i++ {
		ev := next(t, p, 5*time.Second)
		m := chatLine.FindStringSubmatch(ev.Data)
		if m == nil || m[1] != "anonymous" {
			t.Fatalf("event %d: %+v", i, ev)
		}
		evs = append(evs, ev)
	}
	if m := chatLine.FindStringSubmatch(evs[1].Data); m[2] != "two\nlines" {
		t.Errorf("multi-line message: got %q", m[2])
	}
	for _, tt := range []struct {
		msg  string
		code int
	}{{"", 400}, {"   ", 400}, {strings.Repeat("x", 4097), 413}} {
		if code, body := postMessage(t, s.URL, tt.msg); code != tt.code || !strings.HasPrefix(body, "message ") {
			t.Errorf("post %d bytes: got %d %q, want %d with a reason", len(tt.msg), code, body, tt.code)
		}
	}
	// Replay by header and by query parameter.
	_, byHeader := openStream(t, s.URL+"/chat/stream", "Last-Event-ID", evs[0].ID)
	_, byQuery := openStream(t, s.URL+"/chat/stream?lastEventId="+url.QueryEscape(evs[1].ID))
	if got := next(t, byHeader, 5*time.Second); got.ID != evs[1].ID {
		t.Errorf("Last-Event-ID header: first event %+v, want %s", got, evs[1].ID)
	}
	if got := next(t, byHeader, 5*time.Second); got.ID != evs[2].ID {
		t.Errorf("Last-Event-ID header: second event %+v, want %s", got, evs[2].ID)
	}
	if got := next(t, byQuery, 5*time.Second); got.ID != evs[2].ID {
		t.Errorf("lastEventId query: first event %+v, want %s", got, evs[2].ID)
	}
}

// A subscriber whose socket is never read does not delay a normal one; it
// is disconnected once its queue is full, and its handler ends.
func TestSlowSubscriberDoesNotDelayOthers(t *testing.T) {
	s := startServer(t)
	host := strings.TrimPrefix(s.URL, "http://")
	slow, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	slow.(*net.TCPConn).SetReadBuffer(4096)
	fmt.Fprintf(slow, "GET /chat/stream HTTP/1.1\r\nHost: %s\r\n\r\n", host)
	eventually(t, 5*time.Second, "the slow stream is open", func() bool {
		return metric(t, s.URL, `sselab_open_streams{route="/chat/stream"}`) == 1
	})
	events := follow(t, s.URL+"/chat/stream")

	msg := strings.Repeat("x", 4096)
	var wg sync.WaitGroup
	wg.Add(1)
	received := make(chan int, 1)
	go func() {
		defer wg.Done()
		seen := map[string]bool{}
		for len(seen) < 200 {
			select {
			case ev := <-events:
				seen[ev.ID] = true
			case <-t.Context().Done():
				return
			}
		}
		received <- len(seen)
	}()
	for i := 0; i < 200; i++ {
		if code, body := postMessage(t, s.URL, msg); code != http.StatusNoContent {
			t.Fatalf("post %d: %d %q", i, code, body)
		}
	}
	select {
	case <-received:
	case <-time.After(20 * time.Second):
		t.Fatal("the normal subscriber did not get 200 messages within 20s")
	}
	wg.Wait()
	// Keep publishing until the kernel buffers of the unread socket are
	// full and the server gives up on it (bounded: at most 40 MiB).
	for i := 0; i < 10000 && metric(t, s.URL, "sselab_slow_subscribers_dropped_total") == 0; i++ {
		postMessage(t, s.URL, msg)
	}
	if metric(t, s.URL, "sselab_slow_subscribers_dropped_total") < 1 {
		t.Fatal("the unread subscriber was never dropped")
	}
	// Its handler ends although its client never reads: the write blocked
	// on the full socket is cut by the deadline.
	eventually(t, 5*time.Second, "the dropped stream's handler ended", func() bool {
		return metric(t, s.URL, `sselab_open_streams{route="/chat/stream"}`) <= 1
	})
}

// Two sselab processes on one Redis serve one site.
func TestRedisTwoInstances(t *testing.T) {
	rs := redistest.Start(t)
	a := startServer(t, "-redis", rs.URL)
	b := startServer(t, "-redis", rs.URL, "-keepalive", "200ms")

	_, onB := openStream(t, b.URL+"/chat/stream")
	for _, m := range []string{"first", "second", "third"} {
		if code, body := postMessage(t, a.URL, m); code != http.StatusNoContent {
			t.Fatalf("post on a: %d %q", code, body)
		}
	}
	var evs []sse.Event
	for i := 0; i < 3; i++ {
		evs = append(evs, next(t, onB, 5*time.Second))
	}
	if !strings.HasSuffix(evs[2].Data, "anonymous: third") {
		t.Fatalf("on b: got %+v", evs)
	}
	// Replay across instances: an id seen on b, resumed on a.
	_, resumed := openStream(t, a.URL+"/chat/stream", "Last-Event-ID", evs[0].ID)
	if got := next(t, resumed, 5*time.Second); got.ID != evs[1].ID {
		t.Errorf("replay on a: got %+v, want %s", got, evs[1].ID)
	}
	// A session made on one instance is valid on the other: the key is shared.
	code, h, _ := do(t, http.MethodPost, a.URL+"/chat/login", "user=ann", "Content-Type", formType)
	if code != http.StatusSeeOther {
		t.Fatalf("login on a: %d", code)
	}
	cookie := strings.SplitN(h.Get("Set-Cookie"), ";", 2)[0]
	postMessage(t, b.URL, "hi from ann", "Cookie", cookie)
	if got := next(t, onB, 5*time.Second); !strings.HasSuffix(got.Data, "ann: hi from ann") {
		t.Errorf("session across instances: got %q", got.Data)
	}

	// Redis goes away: publishing answers 503 with a reason, open streams
	// stay open with keepalives; Redis comes back: everything works again.
	rs.Stop()
	if code, body := postMessage(t, a.URL, "lost"); code != http.StatusServiceUnavailable || !strings.Contains(body, "broker is unavailable") {
		t.Errorf("post while Redis is down: got %d %q, want 503 with a reason", code, body)
	}
	keepalive := make(chan struct{}, 1)
	onB.OnComment = func(string) {
		select {
		case keepalive <- struct{}{}:
		default:
		}
	}
	rs.Restart()
	eventually(t, 15*time.Second, "publishing after the Redis restart", func() bool {
		code, _ := postMessage(t, a.URL, "back")
		return code == http.StatusNoContent
	})
	got := next(t, onB, 15*time.Second)
	if !strings.HasSuffix(got.Data, "anonymous: back") {
		t.Errorf("after the restart: got %q", got.Data)
	}
	select {
	case <-keepalive:
	default:
		t.Error("no keepalive comment reached the open stream while Redis was away")
	}
}

// A hung Redis (the process stopped, its connections open): new streams
// get rule 7's refusal and posts a 503 within a couple of seconds, where
// they once waited, headerless, for the whole freeze; open streams wait
// and go on. When Redis resumes, a post answered 503 is never delivered
// (it once was, and twice), and what is posted then arrives once.
func TestRedisHungFailsFast(t *testing.T) {
	rs := redistest.Start(t)
	s := startServer(t, "-redis", rs.URL)
	_, open := openStream(t, s.URL+"/chat/stream")
	postMessage(t, s.URL, "before")
	if ev := nextOfType(t, open, "message", 5*time.Second); !strings.HasSuffix(ev.Data, ": before") {
		t.Fatalf("before the freeze: got %+v", ev)
	}

	// The post first, while the broker's last reading of Redis's memory
	// is fresh: it reaches the publish script, which Redis runs when it
	// resumes.
	rs.Pause()
	t.Cleanup(rs.Resume)
	bounded := func() (context.Context, context.CancelFunc) { return context.WithTimeout(t.Context(), 6*time.Second) }
	ctx0, cancel0 := bounded()
	defer cancel0()
	req, _ := http.NewRequestWithContext(ctx0, http.MethodPost, s.URL+"/chat/post", strings.NewReader("message=refused"))
	req.Header.Set("Content-Type", formType)
	t0 := time.Now()
	resp, err := plainClient.Do(req)
	if err != nil {
		t.Fatalf("a post during the freeze: %v (no answer within 6 s)", err)
	}
	resp.Body.Close()
	t.Logf("a post during the freeze: %s after %v", resp.Status, time.Since(t0).Round(time.Millisecond))
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("a post during the freeze: %s, want 503 with Retry-After", resp.Status)
	}

	ctx, cancel := bounded()
	defer cancel()
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/chat/stream", nil)
	t0 = time.Now()
	resp, err = plainClient.Do(req)
	if err != nil {
		t.Fatalf("a new stream during the freeze: %v (no answer within 6 s)", err)
	}
	p := sse.NewParser(resp.Body)
	for {
		if _, err := p.Next(); err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatalf("a new stream during the freeze: %v, want rule 7's refusal and the end", err)
			}
			break
		}
	}
	resp.Body.Close()
	t.Logf("a new stream during the freeze: refused and ended after %v", time.Since(t0).Round(time.Millisecond))
	if _, ok := p.Retry(); !ok || resp.Header.Get("Retry-After") == "" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Errorf("a new stream during the freeze: %s %v, retry sent %v; want rule 7's refusal", resp.Status, resp.Header, ok)
	}
	rs.Resume()
	eventually(t, 10*time.Second, "posts accepted again", func() bool {
		code, _ := postMessage(t, s.URL, "after")
		return code == http.StatusNoContent
	})
	seen := map[string]int{}
	for seen["after"] == 0 {
		ev := nextOfType(t, open, "message", 10*time.Second)
		seen[ev.Data[strings.LastIndex(ev.Data, ": ")+2:]]++
	}
	_, replay := openStream(t, s.URL+"/chat/stream")
	for {
		ev := nextOfType(t, replay, "message", 5*time.Second)
		seen[ev.Data[strings.LastIndex(ev.Data, ": ")+2:]]++
		if strings.HasSuffix(ev.Data, ": after") {
			break
		}
	}
	t.Logf("after the freeze, the open stream and a new one's replay saw %v", seen)
	if seen["refused"] != 0 || seen["after"] != 2 || seen["before"] != 1 {
		t.Errorf("the open stream and a new one's replay saw %v: want no refused, before once (replay), after once on each", seen)
	}
}

// Instances never disagree on the session key without saying so. Redis
// loses the key while instance a runs: a new instance refuses to start,
// saying why, where it once made a key of its own and a user signed in on
// a was anonymous on it; a's next heartbeat writes the key back, and then
// the new instance starts and knows a's sessions.
func TestRedisSessionKeyAgreement(t *testing.T) {
	rs := redistest.Start(t)
	a := startServer(t, "-redis", rs.URL)
	code, h, _ := do(t, http.MethodPost, a.URL+"/chat/login", "user=ann", "Content-Type", formType)
	if code != http.StatusSeeOther {
		t.Fatalf("login on a: %d", code)
	}
	cookie := strings.SplitN(h.Get("Set-Cookie"), ";", 2)[0]
	opt, _ := redis.ParseURL(rs.URL)
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	if err := rdb.Del(t.Context(), "sselab:secret:session-key").Err(); err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	err := app.Run(t.Context(), []string{"serve", "-addr", "127.0.0.1:0", "-redis", rs.URL}, func(string) string { return "" }, io.Discard, &stderr)
	if err == nil || !strings.Contains(err.Error(), "other sselab instance(s) are live: Redis lost its data") {
		t.Fatalf("a new instance while the key is lost and a runs: %v, want a refusal saying why", err)
	}
	eventually(t, 15*time.Second, "a's heartbeat writing the key back", func() bool {
		return rdb.Exists(t.Context(), "sselab:secret:session-key").Val() == 1
	})
	b := startServer(t, "-redis", rs.URL)
	_, _, page := do(t, http.MethodGet, b.URL+"/chat/", "", "Cookie", cookie)
	if !strings.Contains(page, `<b data-testid="user">ann</b>`) {
		t.Errorf("a session made on a is not known on b: the instances disagree on the key")
	}
}

// The case no start can see: Redis loses everything, a's record too, and
// another instance makes a key of its own before a's next heartbeat
// writes a's back. Within two heartbeats the instances agree: a signs
// with the key Redis holds, and both accept what either signed, where
// once a user signed in on one instance was anonymous on the other for
// as long as both ran.
func TestRedisSessionKeyLostAndRemade(t *testing.T) {
	t.Parallel() // mostly waits for heartbeats
	rs := redistest.Start(t)
	a := startServer(t, "-redis", rs.URL)
	login := func(s *server, user string) string {
		t.Helper()
		code, h, _ := do(t, http.MethodPost, s.URL+"/chat/login", "user="+user, "Content-Type", formType)
		if code != http.StatusSeeOther {
			t.Fatalf("login as %s: %d", user, code)
		}
		return strings.SplitN(h.Get("Set-Cookie"), ";", 2)[0]
	}
	known := func(s *server, cookie, user string) bool {
		_, _, page := do(t, http.MethodGet, s.URL+"/chat/", "", "Cookie", cookie)
		return strings.Contains(page, `<b data-testid="user">`+user+`</b>`)
	}
	ann := login(a, "ann")
	opt, _ := redis.ParseURL(rs.URL)
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	// Redis loses everything and, before a's heartbeat, another instance
	// makes its key: one transaction, so that no heartbeat comes between.
	if _, err := rdb.TxPipelined(t.Context(), func(pl redis.Pipeliner) error {
		pl.FlushAll(t.Context())
		pl.Set(t.Context(), "sselab:secret:session-key", strings.Repeat("5e", 32), 0)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	b := startServer(t, "-redis", rs.URL)
	bob := login(b, "bob")
	eventually(t, 30*time.Second, "a and b accepting each other's sessions", func() bool {
		return known(b, ann, "ann") && known(a, bob, "bob")
	})
	if carol := login(a, "carol"); !known(b, carol, "carol") {
		t.Errorf("a session made on a after they agreed is not known on b")
	}
	if !known(a, ann, "ann") {
		t.Errorf("a no longer knows a session it made before")
	}
}
