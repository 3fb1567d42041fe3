package hub

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"sselab/app/hub/redistest"
	"sselab/app/sse"
	"sselab/app/sse/ssetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// read drains what a subscription has now into events.
func read(t *testing.T, s *Subscription) []sse.Event {
	t.Helper()
	buf, err := s.Next(nil)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return parseFrames(t, buf)
}

func parseFrames(t *testing.T, b []byte) []sse.Event { return ssetest.Events(t, string(b)) }

// waitRead blocks until the subscription has events, then reads them.
func waitRead(t *testing.T, s *Subscription) []sse.Event {
	t.Helper()
	select {
	case <-s.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("no wake-up within 5s")
	}
	return read(t, s)
}

func publish(t *testing.T, b Broker, ch string, data string) {
	t.Helper()
	if err := b.Publish(context.Background(), []string{ch}, Message{Data: data}); err != nil {
		t.Fatal(err)
	}
}

func TestPublishSubscribe(t *testing.T) {
	b := NewMemory(Options{})
	defer b.Close()
	s, _ := b.Subscribe(t.Context(), Request{Channels: []string{"a"}})
	defer s.Close()
	other, _ := b.Subscribe(t.Context(), Request{Channels: []string{"b"}})
	defer other.Close()
	publish(t, b, "a", "one")
	publish(t, b, "a", "two\nlines")
	evs := waitRead(t, s)
	if len(evs) != 2 || evs[0].Data != "one" || evs[1].Data != "two\nlines" {
		t.Fatalf("got %+v", evs)
	}
	if !idLess(evs[0].ID, evs[1].ID) {
		t.Errorf("ids %q, %q do not increase", evs[0].ID, evs[1].ID)
	}
	if evs := read(t, other); len(evs) != 0 {
		t.Errorf("channel b got %+v, want nothing", evs)
	}
}

func TestPublishToSeveralChannelsAndSubscribeToSeveral(t *testing.T) {
	b := NewMemory(Options{})
	defer b.Close()
	both, _ := b.Subscribe(t.Context(), Request{Channels: []string{"a", "b"}})
	defer both.Close()
	onlyB, _ := b.Subscribe(t.Context(), Request{Channels: []string{"b"}})
	defer onlyB.Close()
	b.Publish(t.Context(), []string{"a", "b"}, Message{Type: "news", Data: "x"})
	if evs := read(t, both); len(evs) != 2 || evs[0].Type != "news" {
		t.Errorf("subscriber of a and b: got %+v, want the event from each channel", evs)
	}
	if evs := read(t, onlyB); len(evs) != 1 {
		t.Errorf("subscriber of b: got %+v, want one", evs)
	}
}

// Replay by last id: in order, no duplicate, no gap between replay and
// live events, while another goroutine keeps publishing.
func TestReplayWhilePublishing(t *testing.T) {
	const n = 3000
	b := NewMemory(Options{History: n, Queue: n}) // this test is about replay, not dropping
	defer b.Close()
	recorder, _ := b.Subscribe(t.Context(), Request{Channels: []string{"c"}})
	defer recorder.Close()

	var ids sync.Map // data -> id, as the recorder saw them
	var recorded atomic.Int64
	go func() {
		for i := 0; i < n; i++ {
			publish(t, b, "c", strconv.Itoa(i))
		}
	}()
	subscribed := 0
	var subs []*Subscription
	var starts []int
	for recorded.Load() < n {
		<-recorder.Ready()
		for _, ev := range read(t, recorder) {
			ids.Store(ev.Data, ev.ID)
			k := recorded.Add(1) - 1
			// Every 300 events, a new subscriber resumes from the event
			// before last while publishing goes on.
			if k > 0 && k%300 == 0 {
				id, _ := ids.Load(strconv.Itoa(int(k) - 1))
				s, err := b.Subscribe(t.Context(), Request{Channels: []string{"c"}, LastID: id.(string)})
				if err != nil {
					t.Fatal(err)
				}
				subs = append(subs, s)
				starts = append(starts, int(k))
				subscribed++
			}
		}
	}
	for i, s := range subs {
		want := starts[i]
		for want < n {
			<-s.Ready()
			for _, ev := range read(t, s) {
				if ev.Data != strconv.Itoa(want) {
					t.Fatalf("subscriber from %d: got %q, want %d", starts[i], ev.Data, want)
				}
				want++
			}
		}
		s.Close()
	}
	if subscribed < 5 {
		t.Fatalf("only %d resuming subscribers", subscribed)
	}
}

// A channel's log costs what it holds: one request can make a channel, so
// it must not cost a whole history. Reading channels makes none. Past its
// bound, the log keeps exactly the latest History events, in order.
func TestChannelLogGrowsWithItsEvents(t *testing.T) {
	b := NewMemory(Options{History: 100})
	defer b.Close()
	ctx := t.Context()
	b.Count(ctx, "counted")
	b.Subscribers(ctx, "listed", "also listed")
	for _, name := range []string{"counted", "listed", "also listed"} {
		if b.e.lookup(name) != nil {
			t.Errorf("reading channel %q made it", name)
		}
	}

	publish(t, b, "c", "0")
	if got := cap(b.e.lookup("c").ring); got > 8 {
		t.Errorf("a channel with one event holds room for %d", got)
	}
	for i := 1; i < 250; i++ { // grows 8, 16, 32, 64, 100, then wraps
		publish(t, b, "c", strconv.Itoa(i))
		if i == 36 {
			checkRecent(t, b, 100, 0, 36)
		}
	}
	if got := cap(b.e.lookup("c").ring); got != 100 {
		t.Errorf("a full log holds room for %d, want its History 100", got)
	}
	checkRecent(t, b, 100, 150, 249)
}

// checkRecent checks that the latest events of channel c are from..to.
func checkRecent(t *testing.T, b *Memory, n, from, to int) {
	t.Helper()
	s, _ := b.Subscribe(t.Context(), Request{Channels: []string{"c"}, Recent: n})
	defer s.Close()
	evs := read(t, s)
	if len(evs) != to-from+1 {
		t.Fatalf("recent: got %d events, want %d..%d", len(evs), from, to)
	}
	for i, ev := range evs {
		if ev.Data != strconv.Itoa(from+i) {
			t.Fatalf("recent event %d: got %q, want %d", i, ev.Data, from+i)
		}
	}
}

type countingObserver struct{ published, delivered, dropped atomic.Int64 }

func (o *countingObserver) Published(string)          { o.published.Add(1) }
func (o *countingObserver) Delivered(_ uint64, n int) { o.delivered.Add(int64(n)) }
func (o *countingObserver) Dropped()                  { o.dropped.Add(1) }

// A subscriber that never reads is dropped once its queue is full, and the
// others receive every event; the publisher is never held up.
func TestSlowSubscriberDropped(t *testing.T) {
	obs := &countingObserver{}
	b := NewMemory(Options{History: 100, Queue: 10, Observer: obs})
	defer b.Close()
	slow, _ := b.Subscribe(t.Context(), Request{Channels: []string{"c"}})
	defer slow.Close()
	fast, _ := b.Subscribe(t.Context(), Request{Channels: []string{"c"}})
	defer fast.Close()
	got := 0
	for i := 0; i < 50; i++ {
		publish(t, b, "c", strconv.Itoa(i))
		for _, ev := range read(t, fast) {
			if ev.Data != strconv.Itoa(got) {
				t.Fatalf("fast subscriber: got %q, want %d", ev.Data, got)
			}
			got++
		}
	}
	if got != 50 {
		t.Errorf("fast subscriber got %d events, want 50", got)
	}
	select {
	case <-slow.Done():
	default:
		t.Fatal("the slow subscriber was not dropped")
	}
	if cause := slow.Err(); !errors.Is(cause, ErrDropped) {
		t.Errorf("cause: got %v, want ErrDropped", cause)
	}
	if _, err := slow.Next(nil); !errors.Is(err, ErrDropped) {
		t.Errorf("Next on the dropped subscriber: got %v, want ErrDropped", err)
	}
	if obs.dropped.Load() != 1 {
		t.Errorf("dropped counted %d times, want 1", obs.dropped.Load())
	}
	if obs.published.Load() != 50 || obs.delivered.Load() != 50 {
		t.Errorf("published %d delivered %d, want 50 and 50", obs.published.Load(), obs.delivered.Load())
	}
	if subs, _ := b.Subscribers(t.Context(), "c"); len(subs) != 2 {
		t.Errorf("before Close: %d subscribers listed, want 2", len(subs))
	}
	slow.Close()
	if subs, _ := b.Subscribers(t.Context(), "c"); len(subs) != 1 {
		t.Errorf("after Close: %d subscribers listed, want 1", len(subs))
	}
}

func TestPerSubscriberPublish(t *testing.T) {
	funcs := map[string]Func{
		"greet": func(p Props, arg string) sse.Event {
			if p["name"] == arg {
				return sse.Event{Type: "greeting", Data: "hello you"}
			}
			return sse.Event{Type: "greeting", Data: "hello " + arg}
		},
	}
	b := NewMemory(Options{Funcs: funcs})
	defer b.Close()
	ann, _ := b.Subscribe(t.Context(), Request{Channels: []string{"c"}, Props: Props{"name": "ann"}})
	defer ann.Close()
	bob, _ := b.Subscribe(t.Context(), Request{Channels: []string{"c"}, Props: Props{"name": "bob"}})
	defer bob.Close()
	b.Publish(t.Context(), []string{"c"}, Message{Func: "greet", Data: "ann"})
	a, o := read(t, ann), read(t, bob)
	if len(a) != 1 || a[0].Data != "hello you" || a[0].Type != "greeting" {
		t.Errorf("ann: got %+v", a)
	}
	if len(o) != 1 || o[0].Data != "hello ann" || o[0].ID != a[0].ID || o[0].ID == "" {
		t.Errorf("bob: got %+v, want hello ann with the same id as ann's", o)
	}
	// Replay evaluates the function for the replaying subscriber.
	late, _ := b.Subscribe(t.Context(), Request{Channels: []string{"c"}, Props: Props{"name": "ann"}, Recent: 1})
	defer late.Close()
	if r := read(t, late); len(r) != 1 || r[0].Data != "hello you" {
		t.Errorf("replay to ann: got %+v", r)
	}
}

func TestInitialEvents(t *testing.T) {
	b := NewMemory(Options{})
	defer b.Close()
	publish(t, b, "c", "before")
	rec, _ := b.Subscribe(t.Context(), Request{Channels: []string{"c"}, Recent: 1})
	before := read(t, rec)[0]
	rec.Close()
	s, _ := b.Subscribe(t.Context(), Request{Channels: []string{"c"}, Initial: []sse.Event{{Type: "welcome", Data: "hi"}}})
	defer s.Close()
	publish(t, b, "c", "after")
	evs := read(t, s)
	if len(evs) != 2 || evs[0].Type != "welcome" || evs[1].Data != "after" {
		t.Fatalf("got %+v, want welcome then after", evs)
	}
	if evs[0].ID != before.ID {
		t.Errorf("initial event id: got %q, want the latest id %q, so a reconnect from it misses nothing", evs[0].ID, before.ID)
	}
}

func TestSubscribersListing(t *testing.T) {
	b := NewMemory(Options{})
	defer b.Close()
	s1, _ := b.Subscribe(t.Context(), Request{Channels: []string{"a"}, Props: Props{"user": "ann"}})
	s2, _ := b.Subscribe(t.Context(), Request{Channels: []string{"a", "b"}, Props: Props{"user": "bob"}})
	s3, _ := b.Subscribe(t.Context(), Request{Channels: []string{"b"}, Props: Props{"user": "cy"}})
	defer s3.Close()
	subs, _ := b.Subscribers(t.Context(), "a", "b")
	if len(subs) != 3 || subs[0].Props["user"] != "ann" || subs[1].Props["user"] != "bob" || len(subs[1].Channels) != 2 {
		t.Fatalf("got %+v", subs)
	}
	subs, _ = b.Subscribers(t.Context(), "a")
	if len(subs) != 2 {
		t.Errorf("channel a: got %d subscribers, want 2", len(subs))
	}
	s1.Close()
	s2.Close()
	if subs, _ := b.Subscribers(t.Context(), "a"); len(subs) != 0 {
		t.Errorf("after Close: got %+v", subs)
	}
}

func TestCloseEndsSubscriptions(t *testing.T) {
	b := NewMemory(Options{})
	s, _ := b.Subscribe(t.Context(), Request{Channels: []string{"c"}})
	defer s.Close()
	b.Close()
	<-s.Done()
	if _, err := s.Next(nil); !errors.Is(err, ErrClosed) {
		t.Errorf("got %v, want ErrClosed", err)
	}
	late, _ := b.Subscribe(t.Context(), Request{Channels: []string{"c"}})
	defer late.Close()
	if _, err := late.Next(nil); !errors.Is(err, ErrClosed) {
		t.Errorf("subscribing after Close: got %v, want ErrClosed", err)
	}
}

func TestMessageOptions(t *testing.T) {
	for _, tb := range brokers(t) {
		t.Run(tb.name, func(t *testing.T) {
			b := tb.b
			ch := "opts-" + tb.name
			s, err := b.Subscribe(t.Context(), Request{Channels: []string{ch}})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			for _, m := range []Message{
				{Type: "ping", Data: "own id", ID: "t-100"},
				{Type: "ping", Data: "no id", NoID: true},
				{Retry: 1500 * time.Millisecond, HasRetry: true},
				{Type: "ping", Data: "plain"},
				{Type: "close", Data: "bye", Final: true},
				{Type: "ping", Data: "after the end"},
			} {
				if err := b.Publish(t.Context(), []string{ch}, m); err != nil {
					t.Fatal(err)
				}
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
				raw, err = s.Next(raw)
				if errors.Is(err, ErrFinal) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			want := "event: ping\nid: t-100\ndata: own id\n\n" +
				"event: ping\ndata: no id\n\n" +
				"retry: 1500\n\n"
			if got := string(raw); len(got) < len(want) || got[:len(want)] != want {
				t.Fatalf("got %q, want it to start %q", got, want)
			}
			evs := parseFrames(t, raw)
			if n := len(evs); n != 4 || evs[3].Type != "close" || evs[2].Data != "plain" || evs[2].ID == "" {
				t.Fatalf("got %+v, want ping, ping, plain with an id, close, and nothing after", evs)
			}
			if _, err := s.Next(nil); !errors.Is(err, ErrFinal) {
				t.Errorf("after the final event: got %v, want ErrFinal", err)
			}

			// Replay finds a publisher's own id, and stops at the final event.
			r, err := b.Subscribe(t.Context(), Request{Channels: []string{ch}, LastID: "t-100"})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			buf, err := r.Next(nil)
			if !errors.Is(err, ErrFinal) {
				t.Fatalf("replay: got %v, want it to end at the final event", err)
			}
			if evs := parseFrames(t, buf); len(evs) != 3 || evs[0].Data != "no id" || evs[2].Type != "close" {
				t.Errorf("replay after t-100: got %+v", evs)
			}
		})
	}
}

type namedBroker struct {
	name string
	b    Broker
}

// brokers returns a memory broker and, when redis-server is available, a
// Redis one, for tests that both must pass.
func brokers(t *testing.T) []namedBroker {
	t.Helper()
	m := NewMemory(Options{})
	t.Cleanup(func() { m.Close() })
	out := []namedBroker{{"memory", m}}
	if redistest.Available() {
		out = append(out, namedBroker{"redis", newRedis(t, redistest.Start(t).URL, Options{})})
	} else {
		t.Log("redis-server not found: only the memory broker is tested")
	}
	return out
}
