package hub

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"sselab/app/hub/redistest"
	"sselab/app/sse"
)

// kind makes brokers of one kind for the resume suite; restart makes a
// broker as a restarted process would find things: for memory, nothing;
// for Redis without persistence, an empty store.
type kind struct {
	name    string
	make    func(t *testing.T, o Options) Broker
	restart func(t *testing.T, o Options) Broker
}

func kinds(t *testing.T) []kind {
	ks := []kind{{
		name: "memory",
		make: func(t *testing.T, o Options) Broker {
			b := NewMemory(o)
			t.Cleanup(func() { b.Close() })
			return b
		},
	}}
	ks[0].restart = ks[0].make
	if !redistest.Available() {
		t.Log("redis-server not found: only the memory broker is tested")
		return ks
	}
	srv := redistest.Start(t)
	return append(ks, kind{
		name: "redis",
		make: func(t *testing.T, o Options) Broker { return newRedis(t, srv.URL, o) },
		restart: func(t *testing.T, o Options) Broker {
			srv.Restart() // no persistence: every stream is gone
			return newRedis(t, srv.URL, o)
		},
	})
}

// resume subscribes with lastID and returns what arrives at once: event
// types and data, "gap" for a gap event.
func resume(t *testing.T, b Broker, channels []string, lastID string, recent int) []string {
	t.Helper()
	s, err := b.Subscribe(t.Context(), Request{Channels: channels, LastID: lastID, Recent: recent})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var got []string
	for _, ev := range read(t, s) {
		if ev.Type == GapEvent {
			got = append(got, "gap")
			continue
		}
		got = append(got, ev.Data)
	}
	return got
}

// publishN publishes data 0..n-1 to channel c and returns the ids a
// subscriber saw.
func publishN(t *testing.T, b Broker, c string, from, n int) []string {
	t.Helper()
	s, err := b.Subscribe(t.Context(), Request{Channels: []string{c}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var ids []string
	for i := from; i < from+n; i++ {
		publish(t, b, c, strconv.Itoa(i))
		ids = append(ids, readUntil(t, s, 1, 5*time.Second)[0].ID)
	}
	return ids
}

// Rule 5 of the contract, for every broker: replay from any id, and a gap
// event whenever the broker cannot vouch that nothing was lost.
func TestResume(t *testing.T) {
	for _, k := range kinds(t) {
		t.Run(k.name, func(t *testing.T) {
			o := Options{History: 5}
			b := k.make(t, o)
			c := []string{"c"}
			ids := publishN(t, b, "c", 0, 8) // the history holds 3..7
			publishN(t, b, "other", 100, 1)
			id8 := publishN(t, b, "c", 8, 1)[0]

			tests := []struct {
				name   string
				lastID string
				want   string
			}{
				{"after a held id", ids[4], "[5 6 7 8]"},
				{"after the last but one", ids[7], "[8]"},
				{"after an evicted id: a gap, then all held", ids[1], "[gap 4 5 6 7 8]"},
				{"after an id no event of it has, between two it has: no gap", before(id8), "[8]"},
				{"a malformed id: a gap, then what a new subscription gets", "not-an-id", "[gap]"},
				{"an id from the future", "99999999999999999", "[gap]"},
				{"an id over the length limit of nothing", strings.Repeat("9", 300), "[gap]"},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					if got := fmt.Sprint(resume(t, b, c, tt.lastID, 0)); got != tt.want {
						t.Errorf("resume from %.20q: got %v, want %v", tt.lastID, got, tt.want)
					}
				})
			}
			if got := fmt.Sprint(resume(t, b, c, "not-an-id", 2)); got != "[gap 7 8]" {
				t.Errorf("a malformed id with Recent 2: got %v, want [gap 7 8]", got)
			}

			// After a restart, a client that resumes gets a gap and
			// everything posted since, like a fresh client.
			last := ids[len(ids)-1]
			waitPast(t, last)
			b = k.restart(t, o)
			publish(t, b, "c", "after")
			if got := fmt.Sprint(resume(t, b, c, last, 0)); got != "[gap after]" {
				t.Errorf("after a restart: got %v, want [gap after]", got)
			}
		})
	}
}

// before is the id just before id, in the broker's own form.
func before(id string) string {
	k, _ := parseKey(id)
	if !strings.Contains(id, "-") {
		return strconv.FormatUint(k.hi-1, 10)
	}
	if k.lo > 0 {
		k.lo--
	} else {
		k.hi, k.lo = k.hi-1, 1<<63
	}
	return strconv.FormatUint(k.hi, 10) + "-" + strconv.FormatUint(k.lo, 10)
}

// waitPast waits until the clock is past a memory id (microseconds), so
// that a broker made now starts above it, as any real restart does.
func waitPast(t *testing.T, id string) {
	k, _ := parseKey(id)
	deadline := time.Now().Add(5 * time.Second)
	for uint64(time.Now().UnixMicro()) <= k.hi && k.lo == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond) // polling the clock, not waiting for an event
	}
}

// Initial events carry an id a client can resume from without a gap,
// also on a channel that holds nothing yet.
func TestInitialIDResumesWithoutGap(t *testing.T) {
	for _, k := range kinds(t) {
		t.Run(k.name, func(t *testing.T) {
			b := k.make(t, Options{})
			s, err := b.Subscribe(t.Context(), Request{Channels: []string{"fresh"}, Initial: []sse.Event{{Type: "welcome"}}})
			if err != nil {
				t.Fatal(err)
			}
			evs := read(t, s)
			s.Close()
			if len(evs) != 1 || evs[0].ID == "" {
				t.Fatalf("got %+v, want one welcome with an id", evs)
			}
			publish(t, b, "fresh", "first")
			if got := fmt.Sprint(resume(t, b, []string{"fresh"}, evs[0].ID, 0)); got != "[first]" {
				t.Errorf("resume from the welcome's id %q: got %v, want [first]", evs[0].ID, got)
			}
		})
	}
}
