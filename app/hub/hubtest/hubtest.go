// Package hubtest is the conformance suite of hub brokers: what the
// contract's rules 5 and 6 and the Publisher seed ask of any broker,
// written against the hub.Broker interface alone. The memory broker and
// the Redis broker pass it; a broker for another store (NATS, Postgres)
// proves itself by passing it too:
//
//	func TestConformance(t *testing.T) {
//		hubtest.Run(t, hubtest.Kind{New: newMyBroker, Restart: restartMyBroker})
//	}
package hubtest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"sselab/app/hub"
	"sselab/app/sse"
	"sselab/app/sse/ssetest"
)

// Kind makes brokers of one kind. New returns a broker with the options,
// closed when the test ends. Restart returns a broker as a restarted
// process would find things (for memory: nothing; for a store without
// persistence: an empty store); nil skips the restart case.
type Kind struct {
	New     func(t *testing.T, o hub.Options) hub.Broker
	Restart func(t *testing.T, o hub.Options) hub.Broker
}

// Run runs every case of the suite as a subtest.
func Run(t *testing.T, k Kind) {
	for _, c := range []struct {
		name string
		run  func(*testing.T, Kind)
	}{
		{"PublishSubscribe", publishSubscribe},
		{"SeveralChannels", severalChannels},
		{"Resume", resume},
		{"InitialEvents", initialEvents},
		{"PerSubscriberFuncs", perSubscriberFuncs},
		{"Renderings", renderings},
		{"SlowSubscriberDropped", slowSubscriberDropped},
		{"FinalAndMessageOptions", finalAndOptions},
		{"SubscribersListing", subscribersListing},
		{"Close", closeEnds},
		{"ReplayWhilePublishing", replayWhilePublishing},
		{"ReplayInPieces", replayInPieces},
	} {
		t.Run(c.name, func(t *testing.T) { c.run(t, k) })
	}
}

var seq atomic.Int64

// channel is a name no other case uses, so that cases can share a store.
func channel(t *testing.T, name string) string {
	return fmt.Sprintf("hubtest-%d-%s", seq.Add(1), name)
}

// Next reads what s has now.
func Next(t *testing.T, s *hub.Subscription) []sse.Event {
	t.Helper()
	buf, err := s.Next(nil)
	if err != nil && !errors.Is(err, hub.ErrFinal) {
		t.Fatalf("Next: %v", err)
	}
	return ssetest.Events(t, string(buf))
}

// Until reads from s until it has n events or the deadline passes.
func Until(t *testing.T, s *hub.Subscription, n int, within time.Duration) []sse.Event {
	t.Helper()
	var got []sse.Event
	deadline := time.After(within)
	for len(got) < n {
		select {
		case <-s.Ready():
		case <-deadline:
			t.Fatalf("got %d events within %v, want %d: %+v", len(got), within, n, got)
		}
		got = append(got, Next(t, s)...)
	}
	return got
}

func publish(t *testing.T, b hub.Broker, ch string, m hub.Message) {
	t.Helper()
	if err := b.Publish(context.Background(), []string{ch}, m); err != nil {
		t.Fatal(err)
	}
}

func subscribe(t *testing.T, b hub.Broker, r hub.Request) *hub.Subscription {
	t.Helper()
	s, err := b.Subscribe(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func data(evs []sse.Event) string {
	var out []string
	for _, ev := range evs {
		if ev.Type == hub.GapEvent {
			out = append(out, "gap")
			continue
		}
		out = append(out, ev.Data)
	}
	return fmt.Sprint(out)
}

func publishSubscribe(t *testing.T, k Kind) {
	b := k.New(t, hub.Options{})
	a, other := channel(t, "a"), channel(t, "b")
	s := subscribe(t, b, hub.Request{Channels: []string{a}})
	o := subscribe(t, b, hub.Request{Channels: []string{other}})
	publish(t, b, a, hub.Message{Data: "one"})
	publish(t, b, a, hub.Message{Data: "two\nlines"})
	evs := Until(t, s, 2, 5*time.Second)
	if data(evs) != "[one two\nlines]" || !hub.Earlier(evs[0].ID, evs[1].ID) {
		t.Fatalf("got %+v, want one then two lines, with increasing ids", evs)
	}
	publish(t, b, other, hub.Message{Data: "marker"})
	if got := data(Until(t, o, 1, 5*time.Second)); got != "[marker]" {
		t.Errorf("the other channel got %v, want only its own marker", got)
	}
}

func severalChannels(t *testing.T, k Kind) {
	b := k.New(t, hub.Options{})
	a, c := channel(t, "a"), channel(t, "b")
	both := subscribe(t, b, hub.Request{Channels: []string{a, c}})
	onlyB := subscribe(t, b, hub.Request{Channels: []string{c}})
	if err := b.Publish(context.Background(), []string{a, c}, hub.Message{Type: "news", Data: "x"}); err != nil {
		t.Fatal(err)
	}
	if evs := Until(t, both, 2, 5*time.Second); evs[0].Type != "news" {
		t.Errorf("subscriber of both: got %+v, want the event from each channel", evs)
	}
	Until(t, onlyB, 1, 5*time.Second)
}

// publishN publishes data from..from+n-1 to ch and returns the ids a
// subscriber saw.
func publishN(t *testing.T, b hub.Broker, ch string, from, n int) []string {
	t.Helper()
	s := subscribe(t, b, hub.Request{Channels: []string{ch}})
	var ids []string
	for i := from; i < from+n; i++ {
		publish(t, b, ch, hub.Message{Data: strconv.Itoa(i)})
		ids = append(ids, Until(t, s, 1, 5*time.Second)[0].ID)
	}
	return ids
}

// resumed is what a subscription resuming from lastID has at once.
func resumed(t *testing.T, b hub.Broker, ch, lastID string, recent int) string {
	t.Helper()
	return data(Next(t, subscribe(t, b, hub.Request{Channels: []string{ch}, LastID: lastID, Recent: recent})))
}

// before is the id just before id, in the broker's own form.
func before(id string) string {
	k, _ := hub.ParseID(id)
	if !strings.Contains(id, "-") {
		return strconv.FormatUint(k.Hi-1, 10)
	}
	if k.Lo > 0 {
		k.Lo--
	} else {
		k.Hi, k.Lo = k.Hi-1, 1<<63
	}
	return strconv.FormatUint(k.Hi, 10) + "-" + strconv.FormatUint(k.Lo, 10)
}

// Rule 5: replay from any id, and a gap event whenever the broker cannot
// vouch that nothing was lost.
func resume(t *testing.T, k Kind) {
	o := hub.Options{History: 5}
	b := k.New(t, o)
	c := channel(t, "c")
	ids := publishN(t, b, c, 0, 8) // the history holds 3..7
	publishN(t, b, channel(t, "other"), 100, 1)
	id8 := publishN(t, b, c, 8, 1)[0]
	for _, tt := range []struct{ name, lastID, want string }{
		{"after a held id", ids[4], "[5 6 7 8]"},
		{"after the last but one", ids[7], "[8]"},
		{"after an evicted id: a gap, then all held", ids[1], "[gap 4 5 6 7 8]"},
		{"after an id no event of it has, between two it has: no gap", before(id8), "[8]"},
		{"a malformed id: a gap, then what a new subscription gets", "not-an-id", "[gap]"},
		{"an id from the future", "99999999999999999", "[gap]"},
	} {
		if got := resumed(t, b, c, tt.lastID, 0); got != tt.want {
			t.Errorf("%s: resume from %.20q: got %v, want %v", tt.name, tt.lastID, got, tt.want)
		}
	}
	if got := resumed(t, b, c, "not-an-id", 2); got != "[gap 7 8]" {
		t.Errorf("a malformed id with Recent 2: got %v, want [gap 7 8]", got)
	}
	if k.Restart == nil {
		return
	}
	// After a restart a client that resumes gets a gap and everything
	// posted since, like a fresh client. (A memory broker's ids start at
	// its boot time in microseconds: this test's publishes took longer
	// than one microsecond each, as any real run's do.)
	b = k.Restart(t, o)
	publish(t, b, c, hub.Message{Data: "after"})
	if got := resumed(t, b, c, id8, 0); got != "[gap after]" {
		t.Errorf("after a restart: got %v, want [gap after]", got)
	}
}

// Initial events come first, to one subscriber only, with an id a client
// resumes from without a gap, also on a channel that holds nothing yet.
func initialEvents(t *testing.T, k Kind) {
	b := k.New(t, hub.Options{})
	c := channel(t, "c")
	welcome := []sse.Event{{Type: "welcome", Data: "hi"}}
	s := subscribe(t, b, hub.Request{Channels: []string{c}, Initial: welcome})
	first := Next(t, s)
	if len(first) != 1 || first[0].Type != "welcome" || first[0].ID == "" {
		t.Fatalf("got %+v, want one welcome with an id", first)
	}
	publish(t, b, c, hub.Message{Data: "first"})
	if got := data(Until(t, s, 1, 5*time.Second)); got != "[first]" {
		t.Errorf("after the welcome: got %v", got)
	}
	if got := resumed(t, b, c, first[0].ID, 0); got != "[first]" {
		t.Errorf("resume from the welcome's id %q: got %v, want [first]", first[0].ID, got)
	}
	late := subscribe(t, b, hub.Request{Channels: []string{c}, Initial: welcome})
	if evs := Next(t, late); len(evs) != 1 || evs[0].Type != "welcome" || !hub.Earlier(first[0].ID, evs[0].ID) {
		t.Errorf("a later welcome: got %+v, want it to carry the latest id", evs)
	}
}

// The seed's publish(callable): each subscriber gets what a function
// makes of its properties, with one id for all, in replay too.
func perSubscriberFuncs(t *testing.T, k Kind) {
	greet := func(p hub.Props, arg string) sse.Event {
		if p["name"] == arg {
			return sse.Event{Type: "greeting", Data: "hello you"}
		}
		return sse.Event{Type: "greeting", Data: "hello " + arg}
	}
	b := k.New(t, hub.Options{Funcs: map[string]hub.Func{"greet": greet}})
	c := channel(t, "c")
	ann := subscribe(t, b, hub.Request{Channels: []string{c}, Props: hub.Props{"name": "ann"}})
	bob := subscribe(t, b, hub.Request{Channels: []string{c}, Props: hub.Props{"name": "bob"}})
	publish(t, b, c, hub.Message{Func: "greet", Data: "ann"})
	a, o := Until(t, ann, 1, 5*time.Second), Until(t, bob, 1, 5*time.Second)
	if a[0].Data != "hello you" || a[0].Type != "greeting" || o[0].Data != "hello ann" || o[0].ID != a[0].ID || o[0].ID == "" {
		t.Errorf("ann got %+v, bob got %+v", a, o)
	}
	late := subscribe(t, b, hub.Request{Channels: []string{c}, Props: hub.Props{"name": "ann"}, Recent: 1})
	if got := data(Next(t, late)); got != "[hello you]" {
		t.Errorf("replay to ann: got %v", got)
	}
}

// One channel, several renderings: a subscriber that asks for a rendering
// gets its type and data, with the same id as the event itself, live and in
// replay.
func renderings(t *testing.T, k Kind) {
	b := k.New(t, hub.Options{})
	c := channel(t, "c")
	text := subscribe(t, b, hub.Request{Channels: []string{c}})
	html := subscribe(t, b, hub.Request{Channels: []string{c}, Rendering: "html"})
	ds := subscribe(t, b, hub.Request{Channels: []string{c}, Rendering: "ds"})
	publish(t, b, c, hub.Message{Type: "message", Data: "a <b>\nc", Renderings: map[string]hub.Rendering{
		"html": {Data: "<li>\n  a &lt;b&gt;\n</li>"},
		"ds":   {Type: "patch", Data: "mode append\nelements <li>"},
	}})
	publish(t, b, c, hub.Message{Type: "message", Data: "no rendering"})
	tv, hv, dv := Until(t, text, 2, 5*time.Second), Until(t, html, 2, 5*time.Second), Until(t, ds, 2, 5*time.Second)
	if tv[0].Type != "message" || tv[0].Data != "a <b>\nc" || tv[0].ID == "" {
		t.Errorf("text got %+v", tv[0])
	}
	if hv[0].Type != "" || hv[0].Data != "<li>\n  a &lt;b&gt;\n</li>" || hv[0].ID != tv[0].ID {
		t.Errorf("html got %+v: want an unnamed event with the text's id %q", hv[0], tv[0].ID)
	}
	if dv[0].Type != "patch" || dv[0].Data != "mode append\nelements <li>" || dv[0].ID != tv[0].ID {
		t.Errorf("ds got %+v: want its own type, with the text's id %q", dv[0], tv[0].ID)
	}
	if hv[1].Type != "message" || hv[1].Data != "no rendering" {
		t.Errorf("an event without the rendering: got %+v, want it as published", hv[1])
	}
	late := subscribe(t, b, hub.Request{Channels: []string{c}, Rendering: "ds", Recent: 2})
	if got := Next(t, late); len(got) != 2 || got[0] != dv[0] {
		t.Errorf("replay with the rendering: got %+v, want %+v first", got, dv[0])
	}
}

type counter struct{ published, delivered, dropped atomic.Int64 }

func (c *counter) Published(string)          { c.published.Add(1) }
func (c *counter) Delivered(_ uint64, n int) { c.delivered.Add(int64(n)) }
func (c *counter) Dropped()                  { c.dropped.Add(1) }

// Rule 6: a subscriber that never reads is dropped once its queue is
// full; one that reads gets every event.
func slowSubscriberDropped(t *testing.T, k Kind) {
	obs := &counter{}
	b := k.New(t, hub.Options{History: 100, Queue: 10, Observer: obs})
	c := channel(t, "c")
	slow := subscribe(t, b, hub.Request{Channels: []string{c}})
	fast := subscribe(t, b, hub.Request{Channels: []string{c}})
	for i := range 50 {
		publish(t, b, c, hub.Message{Data: strconv.Itoa(i)})
		if got := data(Until(t, fast, 1, 5*time.Second)); got != fmt.Sprintf("[%d]", i) {
			t.Fatalf("the reading subscriber: got %v, want [%d]", got, i)
		}
	}
	select {
	case <-slow.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the slow subscriber was not dropped")
	}
	if _, err := slow.Next(nil); !errors.Is(err, hub.ErrDropped) || !errors.Is(slow.Err(), hub.ErrDropped) {
		t.Errorf("Next on the dropped subscriber: got %v, want ErrDropped", err)
	}
	if obs.dropped.Load() != 1 || obs.delivered.Load() != 50 {
		t.Errorf("dropped %d delivered %d, want 1 and 50", obs.dropped.Load(), obs.delivered.Load())
	}
}

// Own ids, no ids, a retry control block, and a Final event that ends
// every stream, live and in replay.
func finalAndOptions(t *testing.T, k Kind) {
	b := k.New(t, hub.Options{})
	c := channel(t, "c")
	s := subscribe(t, b, hub.Request{Channels: []string{c}})
	for _, m := range []hub.Message{
		{Type: "ping", Data: "own id", ID: "t-100"},
		{Type: "ping", Data: "no id", NoID: true},
		{Retry: 1500 * time.Millisecond, HasRetry: true},
		{Type: "ping", Data: "plain"},
		{Type: "close", Data: "bye", Final: true},
		{Type: "ping", Data: "after the end"},
	} {
		publish(t, b, c, m)
	}
	var raw []byte
	deadline := time.After(5 * time.Second)
	for {
		select {
		case <-s.Ready():
		case <-deadline:
			t.Fatalf("no final event; got %q", raw)
		}
		var err error
		if raw, err = s.Next(raw); errors.Is(err, hub.ErrFinal) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	want := "event: ping\nid: t-100\ndata: own id\n\nevent: ping\ndata: no id\n\nretry: 1500\n\n"
	if got := string(raw); !strings.HasPrefix(got, want) {
		t.Fatalf("got %q, want it to start %q", got, want)
	}
	evs := ssetest.Events(t, string(raw))
	if len(evs) != 4 || evs[3].Type != "close" || evs[2].ID == "" {
		t.Fatalf("got %+v, want ping, ping, plain with an id, close, and nothing after", evs)
	}
	if _, err := s.Next(nil); !errors.Is(err, hub.ErrFinal) {
		t.Errorf("after the final event: got %v, want ErrFinal", err)
	}
	r := subscribe(t, b, hub.Request{Channels: []string{c}, LastID: "t-100"})
	buf, err := r.Next(nil)
	if !errors.Is(err, hub.ErrFinal) {
		t.Fatalf("replay: got %v, want it to end at the final event", err)
	}
	if got := data(ssetest.Events(t, string(buf))); got != "[no id plain bye]" {
		t.Errorf("replay after t-100: got %v", got)
	}
}

func subscribersListing(t *testing.T, k Kind) {
	b := k.New(t, hub.Options{})
	ctx := context.Background()
	a, c := channel(t, "a"), channel(t, "b")
	s1 := subscribe(t, b, hub.Request{Channels: []string{a}, Props: hub.Props{"user": "ann"}})
	s2 := subscribe(t, b, hub.Request{Channels: []string{a, c}, Props: hub.Props{"user": "bob"}})
	subscribe(t, b, hub.Request{Channels: []string{c}, Props: hub.Props{"user": "cy"}})
	subs, err := b.Subscribers(ctx, a, c)
	if err != nil || len(subs) != 3 {
		t.Fatalf("got %+v %v, want 3", subs, err)
	}
	users := map[string]int{}
	for _, s := range subs {
		users[s.Props["user"]] = len(s.Channels)
	}
	if users["ann"] != 1 || users["bob"] != 2 || users["cy"] != 1 {
		t.Errorf("got %+v", subs)
	}
	if n, _ := b.Count(ctx, a); n != 2 {
		t.Errorf("count of a: got %d, want 2", n)
	}
	s1.Close()
	s2.Close()
	if n, _ := b.Count(ctx, a); n != 0 {
		t.Errorf("after Close: count %d", n)
	}
	if n, _ := b.Count(ctx, channel(t, "nobody")); n != 0 {
		t.Errorf("count of an unused channel: %d", n)
	}
}

func closeEnds(t *testing.T, k Kind) {
	b := k.New(t, hub.Options{})
	c := channel(t, "c")
	s := subscribe(t, b, hub.Request{Channels: []string{c}})
	b.Close()
	select {
	case <-s.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end the subscription")
	}
	if _, err := s.Next(nil); !errors.Is(err, hub.ErrClosed) {
		t.Errorf("got %v, want ErrClosed", err)
	}
}

// Replay by last id while another goroutine publishes: in order, nothing
// twice, nothing skipped between replay and live events.
func replayWhilePublishing(t *testing.T, k Kind) {
	const n = 1000
	b := k.New(t, hub.Options{History: n, Queue: n}) // about replay, not dropping
	c := channel(t, "c")
	rec := subscribe(t, b, hub.Request{Channels: []string{c}})
	done := make(chan error, 1)
	go func() {
		for i := range n {
			if err := b.Publish(context.Background(), []string{c}, hub.Message{Data: strconv.Itoa(i)}); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	type resumer struct {
		s    *hub.Subscription
		from int
	}
	var rs []resumer
	got := 0
	for got < n {
		for _, ev := range Until(t, rec, 1, 10*time.Second) {
			got++
			if got%100 == 0 && got < n { // resume from the event just read
				rs = append(rs, resumer{subscribe(t, b, hub.Request{Channels: []string{c}, LastID: ev.ID}), got})
			}
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		evs := Until(t, r.s, n-r.from, 10*time.Second)
		for i, ev := range evs {
			if ev.Data != strconv.Itoa(r.from+i) {
				t.Fatalf("resumed after %d: event %d is %q", r.from-1, i, ev.Data)
			}
		}
	}
	if len(rs) < 5 {
		t.Fatalf("only %d resuming subscribers", len(rs))
	}
}

// A replay far larger than hub.MaxBatch comes in pieces of about that
// size, Ready firing for each, in order and complete: no stream holds a
// whole history at once.
func replayInPieces(t *testing.T, k Kind) {
	const n, size = 200, 1024
	b := k.New(t, hub.Options{History: n, Queue: n})
	c := channel(t, "c")
	first := subscribe(t, b, hub.Request{Channels: []string{c}})
	for i := range n {
		publish(t, b, c, hub.Message{Data: fmt.Sprintf("%04d", i) + strings.Repeat("x", size)})
	}
	id0 := Until(t, first, 1, 5*time.Second)[0].ID
	s := subscribe(t, b, hub.Request{Channels: []string{c}, LastID: id0})
	var got []sse.Event
	pieces := 0
	deadline := time.After(10 * time.Second)
	for len(got) < n-1 {
		select {
		case <-s.Ready():
		case <-deadline:
			t.Fatalf("got %d of %d events in %d pieces", len(got), n-1, pieces)
		}
		buf, err := s.Next(nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(buf) > hub.MaxBatch+2*size {
			t.Fatalf("a piece of %d bytes: more than hub.MaxBatch (%d) and one event", len(buf), hub.MaxBatch)
		}
		if len(buf) > 0 {
			pieces++
		}
		got = append(got, ssetest.Events(t, string(buf))...)
	}
	for i, ev := range got {
		if want := fmt.Sprintf("%04d", i+1); !strings.HasPrefix(ev.Data, want) {
			t.Fatalf("event %d is %.8q, want %s...: out of order or missing", i, ev.Data, want)
		}
	}
	if pieces < (n-1)*size/hub.MaxBatch {
		t.Errorf("%d events of %d bytes came in %d pieces", n-1, size, pieces)
	}
}
