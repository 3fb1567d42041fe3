package redisbroker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"sselab/app/hub"
	"sselab/app/hub/hubtest"
	"sselab/app/hub/redistest"
	"sselab/app/sse"
)

func newRedis(t *testing.T, url string, o hub.Options) *Broker {
	t.Helper()
	r, err := New(t.Context(), url, o, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// readUntil reads from s until it has n events or the deadline passes.
func readUntil(t *testing.T, s *hub.Subscription, n int, within time.Duration) []sse.Event {
	return hubtest.Until(t, s, n, within)
}

func read(t *testing.T, s *hub.Subscription) []sse.Event { return hubtest.Next(t, s) }

func publish(t *testing.T, b hub.Broker, ch, data string) {
	t.Helper()
	if err := b.Publish(context.Background(), []string{ch}, hub.Message{Data: data}); err != nil {
		t.Fatal(err)
	}
}

// The Redis broker passes the suite every broker must pass; a restart is
// a redis-server restarted without persistence.
func TestConformance(t *testing.T) {
	srv := redistest.Start(t)
	hubtest.Run(t, hubtest.Kind{
		New: func(t *testing.T, o hub.Options) hub.Broker { return newRedis(t, srv.URL, o) },
		Restart: func(t *testing.T, o hub.Options) hub.Broker {
			srv.Restart()
			return newRedis(t, srv.URL, o)
		},
	})
}

// Every stream expires after IdleTTL unless it is published to or
// listened to, and past StoreBytes publishes are refused.
func TestBounds(t *testing.T) {
	srv := redistest.Start(t)
	b := newRedis(t, srv.URL, hub.Options{IdleTTL: time.Hour})
	publish(t, b, "c", "x")
	for _, k := range []string{streamKey("c"), floorKey("c")} {
		ttl, err := b.rdb.PTTL(t.Context(), k).Result()
		if err != nil || ttl <= 0 || ttl > time.Hour {
			t.Errorf("%s: PTTL %v %v, want within an hour", k, ttl, err)
		}
	}
	tight := newRedis(t, srv.URL, hub.Options{StoreBytes: 1})
	if err := tight.Publish(t.Context(), []string{"c"}, hub.Message{Data: "x"}); !errors.Is(err, hub.ErrFull) {
		t.Errorf("publishing past StoreBytes: got %v, want ErrFull", err)
	}
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRedisAcrossInstances(t *testing.T) {
	srv := redistest.Start(t)
	funcs := map[string]hub.Func{"mark": func(p hub.Props, arg string) sse.Event {
		if p["me"] == arg {
			return sse.Event{Data: "mine"}
		}
		return sse.Event{Data: "theirs"}
	}}
	a := newRedis(t, srv.URL, hub.Options{Funcs: funcs})
	b := newRedis(t, srv.URL, hub.Options{Funcs: funcs})

	onB, err := b.Subscribe(t.Context(), hub.Request{Channels: []string{"c"}, Props: hub.Props{"me": "x"}})
	if err != nil {
		t.Fatal(err)
	}
	defer onB.Close()
	for i := 0; i < 5; i++ {
		publish(t, a, "c", strconv.Itoa(i))
	}
	a.Publish(t.Context(), []string{"c"}, hub.Message{Func: "mark", Data: "x"})
	evs := readUntil(t, onB, 6, 5*time.Second)
	for i := 0; i < 5; i++ {
		if evs[i].Data != strconv.Itoa(i) || evs[i].ID == "" {
			t.Fatalf("event %d on instance b: got %+v", i, evs[i])
		}
	}
	if evs[5].Data != "mine" {
		t.Errorf("per-subscriber publish across instances: got %q, want mine", evs[5].Data)
	}

	// Replay on instance a from an id seen on instance b.
	onA, err := a.Subscribe(t.Context(), hub.Request{Channels: []string{"c"}, LastID: evs[2].ID, Props: hub.Props{"me": "y"}})
	if err != nil {
		t.Fatal(err)
	}
	defer onA.Close()
	publish(t, b, "c", "live")
	got := readUntil(t, onA, 4, 5*time.Second)
	want := []string{"3", "4", "theirs", "live"}
	for i, w := range want {
		if got[i].Data != w {
			t.Fatalf("replay then live on a: got %+v, want %v", got, want)
		}
	}
	if len(got) != 4 {
		t.Fatalf("got %d events, want exactly 4 (no duplicates)", len(got))
	}

	// The subscriber list spans instances.
	subs, err := a.Subscribers(t.Context(), "c")
	if err != nil || len(subs) != 2 {
		t.Fatalf("subscribers of c seen from a: got %+v %v, want 2", subs, err)
	}
	if n, err := b.Count(t.Context(), "c"); err != nil || n != 2 {
		t.Errorf("count of c seen from b: got %d %v, want 2", n, err)
	}
	recent, _ := b.Subscribe(t.Context(), hub.Request{Channels: []string{"c"}, Recent: 2})
	if evs := read(t, recent); len(evs) != 2 || evs[1].Data != "live" {
		t.Errorf("recent 2: got %+v", evs)
	}
	if n, _ := a.Count(t.Context(), "c"); n != 3 {
		t.Errorf("count with a third subscriber: got %d, want 3", n)
	}
	recent.Close()
	onA.Close()
	if n, _ := a.Count(t.Context(), "c"); n != 1 {
		t.Errorf("count after two closed: got %d, want 1", n)
	}
	if n, _ := a.Count(t.Context(), "nobody"); n != 0 {
		t.Errorf("count of an empty channel: got %d", n)
	}
	// An instance that closes takes its subscribers with it.
	b.Close()
	if subs, _ := a.Subscribers(t.Context(), "c"); len(subs) != 0 {
		t.Errorf("after instance b closed: got %+v, want no subscribers", subs)
	}
}

// Replay and live meet without a gap or a duplicate while another
// instance keeps publishing.
func TestRedisReplayWhilePublishing(t *testing.T) {
	srv := redistest.Start(t)
	a := newRedis(t, srv.URL, hub.Options{History: 5000, Queue: 5000})
	b := newRedis(t, srv.URL, hub.Options{History: 5000, Queue: 5000})
	const n = 1000
	rec, _ := a.Subscribe(t.Context(), hub.Request{Channels: []string{"c"}})
	defer rec.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < n; i++ {
			a.Publish(context.Background(), []string{"c"}, hub.Message{Data: strconv.Itoa(i)})
		}
	}()
	first := readUntil(t, rec, 100, 10*time.Second)
	s, err := b.Subscribe(t.Context(), hub.Request{Channels: []string{"c"}, LastID: first[49].ID})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got := readUntil(t, s, n-50, 20*time.Second)
	for i, ev := range got {
		if ev.Data != strconv.Itoa(50+i) {
			t.Fatalf("event %d: got %q, want %d", i, ev.Data, 50+i)
		}
	}
	<-done
}

func TestRedisRecovers(t *testing.T) {
	srv := redistest.Start(t)
	a := newRedis(t, srv.URL, hub.Options{})
	b := newRedis(t, srv.URL, hub.Options{})
	s, err := b.Subscribe(t.Context(), hub.Request{Channels: []string{"c"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	publish(t, a, "c", "before")
	readUntil(t, s, 1, 5*time.Second)

	srv.Stop()
	err = a.Publish(t.Context(), []string{"c"}, hub.Message{Data: "lost"})
	if !errors.Is(err, hub.ErrUnavailable) {
		t.Fatalf("publish while Redis is down: got %v, want hub.ErrUnavailable", err)
	}
	select {
	case <-s.Done():
		t.Fatal("the subscription ended while Redis was down; it must stay open")
	default:
	}

	srv.Restart()
	// Publishing works again once go-redis has reconnected; the follower
	// on b picks the channel up again by itself.
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := a.Publish(t.Context(), []string{"c"}, hub.Message{Data: "after"})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("publish after the restart: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // polling interval while go-redis reconnects
	}
	if evs := readUntil(t, s, 1, 15*time.Second); evs[0].Data != "after" {
		t.Errorf("after the restart: got %+v, want after", evs)
	}
}

// A channel is followed once however many local subscriptions share it,
// and no longer once its last subscription closes; one loop reads them
// all.
func TestRedisFollowersEndWithSubscriptions(t *testing.T) {
	srv := redistest.Start(t)
	r := newRedis(t, srv.URL, hub.Options{})
	var subs []*hub.Subscription
	for _, ch := range []string{"a", "b", "c", "a"} {
		s, err := r.Subscribe(t.Context(), hub.Request{Channels: []string{ch}})
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, s)
	}
	check := func(want string) {
		t.Helper()
		if got := fmt.Sprint(r.followed()); got != want {
			t.Errorf("followed: got %s, want %s", got, want)
		}
		if n := countStacks("sselab/app/hub/redisbroker.(*Broker).listen("); n != 1 {
			t.Errorf("%d listen loops, want 1", n)
		}
	}
	check("[a b c]")
	subs[0].Close() // the first "a"
	subs[1].Close() // "b"
	check("[a c]")
	subs[2].Close()
	subs[3].Close()
	check("[]")
}

func countStacks(frame string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return bytes.Count(buf[:n], []byte("\n"+frame))
		}
		buf = make([]byte, 2*len(buf))
	}
}

// Issue 13's finding: 100 token channels with one listener each on one
// instance, then one ping to each. With one blocking XREAD per channel the
// pool was held by reads: pings waited, answers said 0 listeners and
// listeners missed their ping. Every ping must arrive, and the instance
// must hold no more connections than its bound, however many channels.
func TestManyChannelsFewConnections(t *testing.T) {
	srv := redistest.Start(t)
	r := newRedis(t, srv.URL, hub.Options{})
	const n = 100
	subs := make([]*hub.Subscription, n)
	for i := range subs {
		s, err := r.Subscribe(t.Context(), hub.Request{Channels: []string{"token:" + strconv.Itoa(i)}})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		subs[i] = s
	}
	// All at once, as a hundred posters would: pipelines and scripts in
	// parallel, which is when a pool dials past its size.
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ch := "token:" + strconv.Itoa(i)
			if c, err := r.Count(t.Context(), ch); err != nil || c != 1 {
				t.Errorf("%s: count %d %v, want 1", ch, c, err)
			}
			if _, err := r.Subscribers(t.Context(), ch, "other"); err != nil {
				t.Error(err)
			}
			if err := r.Publish(t.Context(), []string{ch}, hub.Message{Data: "ping " + strconv.Itoa(i)}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for i, s := range subs {
		if got := readUntil(t, s, 1, 10*time.Second); got[0].Data != "ping "+strconv.Itoa(i) {
			t.Errorf("listener %d: got %+v", i, got)
		}
	}
	if conns := clients(t, r); conns == 0 || conns > maxConns {
		t.Errorf("%d Redis connections for %d channels, want at most %d", conns, n, maxConns)
	}
	if got := len(r.followed()); got != n {
		t.Errorf("%d channels followed, want %d", got, n)
	}
}

// clients counts the connections the Redis server sees from the broker's
// instance, by the name each of them gives.
func clients(t *testing.T, r *Broker) int {
	t.Helper()
	list, err := r.rdb.ClientList(t.Context()).Result()
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(list, " name=sselab-"+r.instance+" ")
}

// Pub/Sub delivers only while connected. Events published while the
// instance's Pub/Sub connection is down (killed by the server here) are
// read from the stream once it is back: every one arrives, in order, once.
func TestPubSubLossIsCaughtUp(t *testing.T) {
	srv := redistest.Start(t)
	r := newRedis(t, srv.URL, hub.Options{})
	s, err := r.Subscribe(t.Context(), hub.Request{Channels: []string{"room"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	publish(t, r, "room", "before")
	if got := readUntil(t, s, 1, 5*time.Second); got[0].Data != "before" {
		t.Fatalf("got %+v", got)
	}
	if err := r.rdb.ClientKillByFilter(t.Context(), "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	const n = 50
	for i := range n {
		publish(t, r, "room", strconv.Itoa(i))
	}
	got := readUntil(t, s, n, 15*time.Second)
	for i, ev := range got {
		if ev.Data != strconv.Itoa(i) {
			t.Fatalf("event %d: got %q, want %d (all: %v)", i, ev.Data, i, got)
		}
	}
	publish(t, r, "room", "after")
	if got := readUntil(t, s, 1, 5*time.Second); got[0].Data != "after" {
		t.Errorf("after: got %+v (a duplicate?)", got)
	}
}

// What the publish script sends over Pub/Sub comes back exact, whatever
// the bytes.
func TestEventFraming(t *testing.T) {
	srv := redistest.Start(t)
	r := newRedis(t, srv.URL, hub.Options{})
	ps := r.rdb.Subscribe(t.Context(), eventsChannel("odd"))
	defer ps.Close()
	if _, err := ps.Receive(t.Context()); err != nil { // the confirmation
		t.Fatal(err)
	}
	m := hub.Message{Type: "t:1", Data: "a\nb\r\n:9:\x00\xff\u00e9" + strings.Repeat("x", 70000), ID: "12:3", Renderings: map[string]hub.Rendering{"html": {Type: "t:2\x00", Data: "<p>1:2</p>"}, "plain": {Data: "x"}}}
	if err := r.Publish(t.Context(), []string{"odd"}, m); err != nil {
		t.Fatal(err)
	}
	msg, err := ps.ReceiveMessage(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	id, got, ok := decodeEvent(msg.Payload)
	if _, valid := hub.ParseID(id); !ok || !valid {
		t.Fatalf("payload not decoded: id %q ok %v", id, ok)
	}
	if got.Type != m.Type || got.Data != m.Data || got.ID != m.ID || !maps.Equal(got.Renderings, m.Renderings) {
		t.Errorf("decoded %+v, want %+v", got, m)
	}
	for _, bad := range []string{"", "1-1", "1-1\n5:ab", "1-1\nx:ab", "1-1\n-1:ab"} {
		if _, _, ok := decodeEvent(bad); ok {
			t.Errorf("decodeEvent(%q) accepted", bad)
		}
	}
}

// An instance appends its own publishes at once when it has the event
// before them, and leaves the rest to Pub/Sub: with two instances posting
// to one channel at the same time, a subscriber still gets every event
// once, in the order of ids.
func TestOwnPublishesKeepOrder(t *testing.T) {
	srv := redistest.Start(t)
	a := newRedis(t, srv.URL, hub.Options{})
	b := newRedis(t, srv.URL, hub.Options{})
	s, err := a.Subscribe(t.Context(), hub.Request{Channels: []string{"room"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const n = 200
	var wg sync.WaitGroup
	for _, in := range []*Broker{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				if err := in.Publish(context.Background(), []string{"room"}, hub.Message{Data: in.instance + " " + strconv.Itoa(i)}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	got := readUntil(t, s, 2*n, 15*time.Second) // while they post: the queue is shorter than 2n
	wg.Wait()
	if len(got) != 2*n {
		t.Fatalf("got %d events, want %d", len(got), 2*n)
	}
	seen := map[string]bool{}
	for i, ev := range got {
		if seen[ev.Data] {
			t.Fatalf("%q twice", ev.Data)
		}
		seen[ev.Data] = true
		if i > 0 && !hub.Earlier(got[i-1].ID, ev.ID) {
			t.Fatalf("event %d: id %s after %s", i, ev.ID, got[i-1].ID)
		}
	}
	if n, _ := a.Count(t.Context(), "room"); n != 1 {
		t.Errorf("count %d, want 1", n)
	}
}

// A replay past maxReplayBytes comes in parts: each stream holds at most
// about 8 MiB of it and ends (ErrMore); its client, reconnecting with the
// last id it got, gets the rest, in order, nothing twice. With two
// channels too, published to in turn as fast as Redis takes it: their
// events are merged by id, ids only increase along the stream, and a part
// can end anywhere without skipping the other channel's events.
func TestReplayInParts(t *testing.T) {
	for _, channels := range [][]string{{"parts"}, {"parts-a", "parts-b"}} {
		t.Run(strconv.Itoa(len(channels)), func(t *testing.T) {
			srv := redistest.Start(t)
			b := newRedis(t, srv.URL, hub.Options{History: 1000, HistoryBytes: 1 << 30, ChannelBytes: 1 << 30})
			const n, size = 200, 60_000
			first, err := b.Subscribe(t.Context(), hub.Request{Channels: channels})
			if err != nil {
				t.Fatal(err)
			}
			defer first.Close()
			for i := range n {
				publish(t, b, channels[i%len(channels)], fmt.Sprintf("%04d", i)+strings.Repeat("x", size))
			}
			last := readUntil(t, first, 1, 5*time.Second)[0].ID
			got, parts := 1, 0
			for got < n {
				s, err := b.Subscribe(t.Context(), hub.Request{Channels: channels, LastID: last})
				if err != nil {
					t.Fatal(err)
				}
				parts++
				held := 0
				for {
					buf, err := s.Next(nil)
					held += len(buf)
					for _, ev := range ssetestEvents(t, buf) {
						if want := fmt.Sprintf("%04d", got); !strings.HasPrefix(ev.Data, want) {
							t.Fatalf("part %d: event %.4q, want %s: out of order, missing or twice", parts, ev.Data, want)
						}
						if !hub.Earlier(last, ev.ID) {
							t.Fatalf("part %d: id %s after %s: ids must increase along the stream", parts, ev.ID, last)
						}
						got++
						last = ev.ID
					}
					if errors.Is(err, hub.ErrMore) || got == n {
						break
					}
					if err != nil {
						t.Fatal(err)
					}
				}
				s.Close()
				if held > 8<<20 { // 4 MiB, and then the page under way: 64 events of 60 kB
					t.Errorf("part %d held %d bytes of replay: the whole 12 MB of history came at once", parts, held)
				}
				if parts > n {
					t.Fatal("no end to the parts")
				}
			}
			if parts < 2 {
				t.Errorf("%d events of %d bytes came in %d part", n, size, parts)
			}
		})
	}
}

func ssetestEvents(t *testing.T, buf []byte) []sse.Event {
	t.Helper()
	var evs []sse.Event
	p := sse.NewParser(bytes.NewReader(buf))
	for {
		ev, err := p.Next()
		if err != nil {
			return evs
		}
		evs = append(evs, ev)
	}
}

// An id replay cannot place (malformed, from another store) reads no
// history on a channel that never had publishers' own ids: 20 such
// requests once read a whole history each, filling Redis's output buffers
// and refusing every publish for a second. Where own ids were published,
// the history is searched, a page at a time, and the id placed.
func TestUnplaceableIDReadsNoHistory(t *testing.T) {
	srv := redistest.Start(t)
	b := newRedis(t, srv.URL, hub.Options{})
	for i := range 300 {
		publish(t, b, "plain", strconv.Itoa(i))
	}
	opt, _ := redis.ParseURL(srv.URL)
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	reads := func() int {
		info, err := rdb.Info(t.Context(), "commandstats").Result()
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.Lines(info) {
			if rest, ok := strings.CutPrefix(line, "cmdstat_xrevrange:calls="); ok {
				n, _ := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
				return n
			}
		}
		return 0
	}
	held, err := b.Subscribe(t.Context(), hub.Request{Channels: []string{"plain"}}) // the channel stays followed
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	rdb.ConfigResetStat(t.Context())
	for range 20 {
		s, err := b.Subscribe(t.Context(), hub.Request{Channels: []string{"plain"}, LastID: "not-an-id-of-this-store"})
		if err != nil {
			t.Fatal(err)
		}
		if evs := readUntil(t, s, 1, 5*time.Second); evs[0].Type != hub.GapEvent {
			t.Errorf("an unplaceable id: first %+v, want a gap", evs[0])
		}
		s.Close()
	}
	if n := reads(); n != 0 {
		t.Errorf("20 unplaceable ids made %d XREVRANGE calls; want none: the channel has no own ids", n)
	}
	if err := b.Publish(t.Context(), []string{"own"}, hub.Message{Data: "x", ID: "mine-1"}); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		publish(t, b, "own", strconv.Itoa(i))
	}
	s, err := b.Subscribe(t.Context(), hub.Request{Channels: []string{"own"}, LastID: "mine-1"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if evs := readUntil(t, s, 100, 5*time.Second); evs[0].Type == hub.GapEvent || evs[0].Data != "0" {
		t.Errorf("after a publisher's own id: first %+v, want the event after it", evs[0])
	}
}
