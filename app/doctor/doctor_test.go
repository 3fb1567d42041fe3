package doctor

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// fault is what a test server gets wrong; the zero fault is a server that
// does everything right.
type fault struct {
	gzip          bool // compresses the stream (flushing the compressor, so only the encoding is wrong)
	buffered      bool // a 256-byte buffer that is never flushed stands between the handler and the client
	noKeepalive   bool // no comments, and only 8 events: then an idle stream
	contentLength bool
	plainText     bool // Content-Type: text/plain
	replayRepeats bool // resumes with the event of Last-Event-ID itself
	replaySkips   bool // resumes one event too late
	headersHeld   bool // writes nothing, headers included, until its first event 1.5 s in
	quiet         bool // flushes the headers, then says nothing for 1.5 s (a new connection; a resumed one replays at once)
}

// eventServer produces an event every 200 ms from the first connection on,
// replays after Last-Event-ID, sends a comment every 500 ms, and takes
// posts at /publish. Its faults are those of f.
type eventServer struct {
	f       fault
	mu      sync.Mutex
	events  []string // event k+1's data is events[k]
	changed chan struct{}
	started bool
}

func startEventServer(t *testing.T, f fault) (string, *http.Client) {
	es := &eventServer{f: f, changed: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /events", es.stream)
	mux.HandleFunc("POST /publish", func(w http.ResponseWriter, r *http.Request) {
		es.add(r.FormValue("data"))
		w.WriteHeader(http.StatusNoContent)
	})
	ctx, cancel := context.WithCancel(context.Background())
	produced := make(chan struct{})
	go func() { defer close(produced); es.produce(ctx) }()
	t.Cleanup(func() { cancel(); <-produced })
	return serve(t, mux)
}

func (es *eventServer) add(data string) {
	es.mu.Lock()
	es.events = append(es.events, data)
	close(es.changed)
	es.changed = make(chan struct{})
	es.mu.Unlock()
}

func (es *eventServer) produce(ctx context.Context) {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for n := 1; ; {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		es.mu.Lock()
		started := es.started
		es.mu.Unlock()
		if !started || es.f.noKeepalive && n > 8 {
			continue
		}
		es.add("event " + strconv.Itoa(n))
		n++
	}
}

func (es *eventServer) stream(w http.ResponseWriter, r *http.Request) {
	es.mu.Lock()
	es.started = true
	next := len(es.events) // a new connection starts live
	es.mu.Unlock()
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		n, err := strconv.Atoi(id)
		if err != nil {
			http.Error(w, "bad Last-Event-ID", http.StatusBadRequest)
			return
		}
		switch {
		case es.f.replayRepeats:
			next = n - 1
		case es.f.replaySkips:
			next = n + 1
		default:
			next = n
		}
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	if es.f.plainText {
		h.Set("Content-Type", "text/plain; charset=utf-8")
	}
	h.Set("Cache-Control", "no-cache")
	if es.f.contentLength {
		h.Set("Content-Length", "1000000")
	}
	rc := http.NewResponseController(w)
	var out io.Writer = w
	flush := func() { rc.Flush() }
	switch {
	case es.f.gzip:
		h.Set("Content-Encoding", "gzip")
		zw := gzip.NewWriter(w)
		defer zw.Close()
		out, flush = zw, func() { zw.Flush(); rc.Flush() }
	case es.f.buffered:
		out, flush = &chunky{w: w, rc: rc}, func() {}
	}
	if es.f.headersHeld {
		select {
		case <-r.Context().Done():
			return
		case <-time.After(1500 * time.Millisecond):
		}
	} else {
		w.WriteHeader(http.StatusOK)
		rc.Flush() // the headers go out at once, even through the buffer
	}
	if es.f.quiet && r.Header.Get("Last-Event-ID") == "" {
		select {
		case <-r.Context().Done():
			return
		case <-time.After(1500 * time.Millisecond):
		}
		es.mu.Lock()
		next = len(es.events) // and then starts live
		es.mu.Unlock()
	}
	fmt.Fprint(out, "retry: 2000\n\n")
	flush()
	keepalive := time.NewTicker(500 * time.Millisecond)
	defer keepalive.Stop()
	for {
		es.mu.Lock()
		evs, changed := es.events[min(max(next, 0), len(es.events)):], es.changed
		es.mu.Unlock()
		for _, data := range evs {
			next++
			fmt.Fprintf(out, "id: %d\ndata: %s\n\n", next, data)
		}
		if len(evs) > 0 {
			flush()
		}
		select {
		case <-r.Context().Done():
			return
		case <-changed:
		case <-keepalive.C:
			if !es.f.noKeepalive {
				fmt.Fprint(out, ": keepalive\n\n")
				flush()
			}
		}
	}
}

// chunky passes on what it is given only 256 bytes at a time, as a proxy
// that buffers does.
type chunky struct {
	w   io.Writer
	rc  *http.ResponseController
	buf []byte
}

func (c *chunky) Write(p []byte) (int, error) {
	c.buf = append(c.buf, p...)
	for len(c.buf) >= 256 {
		if _, err := c.w.Write(c.buf[:256]); err != nil {
			return 0, err
		}
		c.rc.Flush()
		c.buf = c.buf[256:]
	}
	return len(p), nil
}

// Each faulty server fails exactly the check it should, and no other; the
// server without a fault fails none.
func TestFaults(t *testing.T) {
	for _, tt := range []struct {
		name    string
		f       fault
		fails   string // the checks that fail, space-separated; "": none
		publish bool
		timeout time.Duration
	}{
		{name: "sound", fails: ""},
		{name: "sound, timed posts", fails: "", publish: true},
		{name: "gzip", f: fault{gzip: true}, fails: "content-encoding"},
		// The buffer holds the first bytes too.
		{name: "buffered", f: fault{buffered: true}, fails: "first-bytes flush"},
		{name: "buffered, timed posts", f: fault{buffered: true}, fails: "first-bytes flush", publish: true},
		{name: "no keepalive", f: fault{noKeepalive: true}, fails: "keepalive", timeout: 40 * time.Second},
		{name: "content length", f: fault{contentLength: true}, fails: "content-length"},
		{name: "plain text", f: fault{plainText: true}, fails: "content-type"},
		{name: "replay repeats", f: fault{replayRepeats: true}, fails: "replay"},
		{name: "replay skips", f: fault{replaySkips: true}, fails: "replay"},
		{name: "headers held", f: fault{headersHeld: true}, fails: "headers"},
		{name: "quiet at first", f: fault{quiet: true}, fails: "first-bytes"},
	} {
		bubble(t, tt.name, func(t *testing.T) {
			base, client := startEventServer(t, tt.f)
			o := Options{URL: base + "/events", Timeout: tt.timeout, Client: client}
			if tt.publish {
				o.Publish = base + "/publish"
			}
			r, err := Run(t.Context(), o)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range r.Checks {
				if (c.Status == Fail) != slices.Contains(strings.Fields(tt.fails), c.Name) {
					t.Errorf("%s %s: %s", c.Status, c.Name, c.Detail)
				}
			}
			if len(r.Checks) != len(Names) {
				t.Errorf("%d checks, want %d", len(r.Checks), len(Names))
			}
			if tt.fails == "" {
				for _, name := range []string{"flush", "keepalive", "retry", "ids", "replay"} {
					if c := r.Get(name); c.Status != Pass {
						t.Errorf("%s %s: %s; want pass", c.Status, c.Name, c.Detail)
					}
				}
				if tt.publish && !strings.Contains(r.Get("flush").Detail, "posted") {
					t.Errorf("flush was not timed by the posts: %s", r.Get("flush").Detail)
				}
			}
		})
	}
}

// A stream that ends after each event, as the CherryPy time feed's does,
// and one that answers 204: no check fails for the first for want of a
// long stream; the second fails status and checks nothing else.
func TestShortAndFinishedStreams(t *testing.T) { synctest.Test(t, testShortAndFinishedStreams) }

func testShortAndFinishedStreams(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/once", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		fmt.Fprint(w, "data: 12:00:00\n\n")
		http.NewResponseController(w).Flush() // so no Content-Length
	})
	mux.HandleFunc("/done", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	base, client := serve(t, mux)

	r, err := Run(t.Context(), Options{URL: base + "/once", Timeout: 5 * time.Second, Client: client})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range r.Checks {
		if c.Status == Fail {
			t.Errorf("once: %s %s: %s", c.Status, c.Name, c.Detail)
		}
	}
	if c := r.Get("ids"); c.Status != Warn || !strings.Contains(c.Detail, "no ids") {
		t.Errorf("once: ids %s %s, want warn: no ids", c.Status, c.Detail)
	}
	if c := r.Get("replay"); c.Status != Warn || !strings.Contains(c.Detail, "no ids") {
		t.Errorf("once: replay %s %s, want warn: no ids", c.Status, c.Detail)
	}

	r, err = Run(t.Context(), Options{URL: base + "/done", Timeout: 5 * time.Second, Client: client})
	if err != nil {
		t.Fatal(err)
	}
	if c := r.Get("status"); c.Status != Fail || !strings.Contains(c.Detail, "204") {
		t.Errorf("done: status %s %s, want a failure naming 204", c.Status, c.Detail)
	}
	for _, c := range r.Checks[1:] {
		if c.Status != Warn || !strings.HasPrefix(c.Detail, "not checked") {
			t.Errorf("done: %s %s: %s, want warn: not checked", c.Status, c.Name, c.Detail)
		}
	}
}

// A finite stream held back whole, as by the Pylons seed's buffering
// middleware: its events are made 150 ms apart but everything, headers
// included, leaves at the end. Headers and flush fail, nothing else; the
// same stream flushed fails nothing.
func TestWholeResponseHeldBack(t *testing.T) { synctest.Test(t, testWholeResponseHeldBack) }

func testWholeResponseHeldBack(t *testing.T) {
	send := func(w http.ResponseWriter, r *http.Request, flush bool) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		w.WriteHeader(http.StatusOK)
		rc := http.NewResponseController(w)
		var held strings.Builder // what a buffering layer collects
		for i := range 10 {
			if i > 0 {
				time.Sleep(150 * time.Millisecond) // the producer's own pace
			}
			ev := fmt.Sprintf("retry: 2000\ndata: %d %s\n\n", i, strings.Repeat("x", 500)) // no ids: no replay to judge
			if flush {
				fmt.Fprint(w, ev)
				rc.Flush()
			} else {
				held.WriteString(ev)
			}
		}
		fmt.Fprint(w, held.String()) // over 2 kB: chunked, no Content-Length
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/held", func(w http.ResponseWriter, r *http.Request) { send(w, r, false) })
	mux.HandleFunc("/flushed", func(w http.ResponseWriter, r *http.Request) { send(w, r, true) })
	base, client := serve(t, mux)
	for path, fails := range map[string]string{"/held": "flush headers", "/flushed": ""} {
		var headersAt time.Duration
		r, err := Run(t.Context(), Options{URL: base + path, Timeout: 10 * time.Second, Client: client, Observe: func(o Observation) {
			if o.What == "headers" {
				headersAt = o.At
			}
		}})
		if err != nil {
			t.Fatal(err)
		}
		// Observed as they came: a held response's headers after the
		// last event was made (9 x 150 ms), a flushed one's at once.
		if held := fails != ""; held != (headersAt >= 9*150*time.Millisecond) {
			t.Errorf("%s: the headers observed at %v", path, headersAt)
		}
		var failed []string
		for _, c := range r.Checks {
			if c.Status == Fail {
				failed = append(failed, c.Name)
			}
		}
		slices.Sort(failed)
		if strings.Join(failed, " ") != fails {
			t.Errorf("%s: failed %v, want %q; checks %v", path, failed, fails, r.Checks)
		}
		if c := r.Get("flush"); fails != "" && !strings.Contains(c.Detail, "held back until its end") {
			t.Errorf("%s: flush says %q", path, c.Detail)
		}
	}
}

// Observe tells a run as it happens: both streams' headers (the second
// asked with Last-Event-ID), the events, the comments, each post and its
// answer, and when a held response's headers really came.
func TestObserve(t *testing.T) { synctest.Test(t, testObserve) }

func testObserve(t *testing.T) {
	base, client := startEventServer(t, fault{})
	var mu sync.Mutex
	var seen []Observation
	_, err := Run(t.Context(), Options{URL: base + "/events", Publish: base + "/publish", Timeout: 10 * time.Second, Client: client,
		Observe: func(o Observation) { mu.Lock(); seen = append(seen, o); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	count := map[string]int{}
	for _, o := range seen {
		count[fmt.Sprint(o.Stream, " ", o.What)]++
		if o.Stream == 2 && o.What == "headers" && !strings.Contains(o.Detail, "Last-Event-ID: ") {
			t.Errorf("the reconnection's headers: %q, want the Last-Event-ID it asked with", o.Detail)
		}
		if o.Stream == 0 && !strings.Contains(o.Detail, "204 No Content") {
			t.Errorf("a post: %q, want its answer", o.Detail)
		}
	}
	if len(seen) == 0 || seen[0].Stream != 1 || seen[0].What != "headers" || !strings.Contains(seen[0].Detail, "200 OK over HTTP/1.1") {
		t.Errorf("first observation %+v, want the stream's headers", seen[:min(1, len(seen))])
	}
	if count["0 post"] != 5 || count["1 event"] < 5 || count["1 comment"] < 1 || count["2 headers"] != 1 || count["2 event"] < 1 {
		t.Errorf("observations %v, want 5 posts, their events, a keepalive, and the reconnection with its replay", count)
	}
}

// Nobody listening, or no URL at all: an error, not a report.
func TestUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	if _, err := Run(t.Context(), Options{URL: url + "/events", Timeout: 5 * time.Second}); !errors.Is(err, ErrUnreachable) {
		t.Errorf("closed port: got %v, want ErrUnreachable", err)
	}
	for _, bad := range []string{"", "localhost:8080/x", "ftp://host/x"} {
		if _, err := Run(t.Context(), Options{URL: bad}); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}

// Whatever an endpoint sends, a run holds a bounded amount: a fast
// stream of 80 MiB, and a gzip bomb of as much from a few kilobytes, are
// read to 64 MiB and no further, and what the run keeps is far less than
// what came. Before, a fast endless stream or a 10 MB gzip bomb took
// sselab doctor to 3 GB in 14 s.
func TestRunMemoryBounded(t *testing.T) {
	const total = 80 << 20
	event := "data: " + strings.Repeat("x", 1000) + "\n\n"
	write := func(w io.Writer, flush func() error) {
		for n := 0; n < total; n += len(event) {
			if _, err := io.WriteString(w, event); err != nil {
				return
			}
			if n%(1<<20) == 0 {
				flush()
			}
		}
		flush()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/fast", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		write(w, http.NewResponseController(w).Flush)
		<-r.Context().Done()
	})
	mux.HandleFunc("/bomb", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Content-Encoding", "gzip")
		zw, _ := gzip.NewWriterLevel(w, gzip.BestCompression)
		write(zw, func() error { zw.Flush(); return http.NewResponseController(w).Flush() })
		zw.Close()
		<-r.Context().Done()
	})
	for _, path := range []string{"/fast", "/bomb"} {
		bubble(t, path, func(t *testing.T) {
			base, client := serve(t, mux)
			var stopped bool
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			_, err := Run(t.Context(), Options{URL: base + path, Timeout: 5 * time.Second, Client: client, Observe: func(o Observation) {
				if o.What == "end" && strings.Contains(o.Detail, "stopped reading after 64 MiB") {
					stopped = true
					runtime.GC() // what the stream holds once it has read all it will
					runtime.ReadMemStats(&after)
				}
			}})
			if err != nil {
				t.Fatal(err)
			}
			if !stopped {
				t.Errorf("%s: no end observation saying doctor stopped reading at 64 MiB", path)
			}
			if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 16<<20 {
				t.Errorf("%s: the run held %d MiB once it had read all it would", path, grew>>20)
			}
		})
	}
}
