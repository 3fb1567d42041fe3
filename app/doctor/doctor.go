// Package doctor checks an SSE endpoint, sselab's or anyone's, through
// whatever stands between it and the client: the things that break SSE in
// production are mostly not the server but a proxy that buffers or
// compresses the stream, an idle timeout shorter than the keepalive, a
// replay that repeats or skips. It is gentle: one stream, then one
// reconnection, and with Options.Publish a few posts.
package doctor

import (
	"compress/flate"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	neturl "net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"sselab/app/sse"
)

// Status is a check's verdict.
type Status string

const (
	Pass Status = "pass"
	Warn Status = "warn"
	Fail Status = "fail"
)

// Check is one verdict: what was checked, and what was seen.
type Check struct {
	Name   string `json:"name"`
	Status Status `json:"status"`
	Detail string `json:"detail"`
}

// Report is every check of one endpoint, in a fixed order.
type Report struct {
	URL    string  `json:"url"`
	Checks []Check `json:"checks"`
}

// Failed reports whether any check failed.
func (r Report) Failed() bool {
	for _, c := range r.Checks {
		if c.Status == Fail {
			return true
		}
	}
	return false
}

// Get returns the named check.
func (r Report) Get(name string) Check {
	for _, c := range r.Checks {
		if c.Name == name {
			return c
		}
	}
	return Check{Name: name}
}

// Names are the checks, in the order they are reported.
var Names = []string{"status", "content-type", "cache-control", "content-encoding", "content-length",
	"headers", "first-bytes", "flush", "keepalive", "retry", "ids", "replay"}

// Options say what to check and how long to take.
type Options struct {
	URL     string
	Publish string        // where to POST events of doctor's own, to time them; empty: judge from the spacing of the endpoint's own
	Timeout time.Duration // the whole run; 0: 20 s
	Client  *http.Client  // nil: one that asks as browsers do and never decompresses by itself
	// Observe, if not nil, is told each thing doctor sees or does as it
	// happens, to show a run live. It is called from doctor's goroutines
	// and must not block.
	Observe func(Observation)
}

// Observation is one thing doctor saw or did during a run.
type Observation struct {
	At     time.Duration // since the run began
	Stream int           // 1: the watched stream, 2: the reconnection with Last-Event-ID, 0: a post of doctor's own
	What   string        // headers, event, comment, end, post
	Detail string        // what was seen, values quoted and cut to a line
}

// observer returns what a stream or the publisher calls to report.
func (o Options) observer(start time.Time, stream int) func(what, detail string) {
	if o.Observe == nil {
		return func(string, string) {}
	}
	return func(what, detail string) {
		o.Observe(Observation{At: time.Since(start), Stream: stream, What: what, Detail: detail})
	}
}

// ErrUnreachable wraps why the endpoint could not be reached at all.
var ErrUnreachable = errors.New("could not reach the endpoint")

// Limits of the judgement.
const (
	// A keepalive must come at least this often, or idle proxies cut the
	// stream (many cut at 30-60 s).
	keepaliveBound = 30 * time.Second
	// Posted events must arrive within this of their post, and the
	// body's first bytes within this of the headers.
	flushBound = time.Second
	// A burst: arrivals this close are one read's worth.
	burstGap = 15 * time.Millisecond
	// Events this soon after the headers were sent when the stream opened
	// (initial data, replay), not produced apart: flush ignores them.
	openingBurst = 100 * time.Millisecond
	// A stream that ends after this much silence was cut, not finished.
	cutSilence = 2 * time.Second
	posts      = 5
	postEvery  = 400 * time.Millisecond
	enough     = 6 // events, with a keepalive seen: nothing more to learn
)

// Run checks the endpoint. It returns ErrUnreachable (wrapped) when no
// connection could be made; everything else is a verdict in the report.
func Run(ctx context.Context, o Options) (Report, error) {
	if o.Timeout <= 0 {
		o.Timeout = 20 * time.Second
	}
	u, err := neturl.Parse(o.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return Report{}, fmt.Errorf("%q is not an http:// or https:// URL", o.URL)
	}
	if o.Publish != "" {
		if p, err := neturl.Parse(o.Publish); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return Report{}, fmt.Errorf("-publish %q is not an http:// or https:// URL", o.Publish)
		}
	}
	if o.Client == nil {
		tr := &http.Transport{
			Proxy:              http.ProxyFromEnvironment,
			DialContext:        (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			ForceAttemptHTTP2:  true,
			DisableCompression: true, // doctor asks for compression itself, to see what it gets
		}
		defer tr.CloseIdleConnections() // nothing of the run outlives it
		o.Client = &http.Client{Transport: tr}
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	start := time.Now()
	// The stream is watched until it ends, until nothing more can be
	// learnt, or until the replay's share of the time is all that is left.
	replayShare := min(4*time.Second, o.Timeout/4)
	w := newStream()
	w.observe = o.observer(start, 1)
	var pub *publisher
	stopPosting := func() {}
	if o.Publish != "" {
		// Posting starts once the headers came, or after a while without
		// them: some servers send no headers until their first event.
		pub = newPublisher(o.Client, o.Publish)
		pub.observe = o.observer(start, 0)
		pctx, stop := context.WithCancel(ctx)
		go pub.run(pctx, w)
		// Posts not made by the end of the watch are not made at all.
		stopPosting = func() { stop(); <-pub.done }
		defer stopPosting()
	}
	if err := w.open(ctx, o.Client, o.URL, ""); err != nil {
		return Report{}, err
	}
	w.watch(ctx, start.Add(o.Timeout-replayShare), pub)
	stopPosting()
	var again *resumed
	if w.status == http.StatusOK && w.noBody == "" {
		if from := w.resumePoint(); from >= 0 {
			v := w.snapshot()
			again = &resumed{from: from, s: newStream()}
			again.s.observe = o.observer(start, 2)
			if again.err = again.s.open(ctx, o.Client, o.URL, v.events[from].ev.ID); again.err == nil {
				again.s.watchReplay(ctx, len(v.afterID(from)))
			}
		}
	}
	return Report{URL: o.URL, Checks: judge(w, pub, again)}, nil
}

// arrival is something read off the stream, and when.
// What one stream's reading may keep, whatever the endpoint sends: a fast
// endless stream or a gzip bomb once took sselab doctor (and the doctor
// page's server) to 3 GB in 14 s. The checks need the first events and
// their timing, not every byte.
const (
	maxBodyBytes = 64 << 20 // decoded body bytes read per stream; past it doctor stops reading
	maxArrivals  = 10_000   // events, comments and reads kept per stream
	maxKeptData  = 256      // data bytes kept per event; longer data is kept as its SHA-256
)

// errBodyLimit ends the reading of a stream past maxBodyBytes.
var errBodyLimit = fmt.Errorf("doctor stopped reading after %d MiB of body", maxBodyBytes>>20)

// capped reads at most left bytes, then fails with errBodyLimit.
type capped struct {
	r    io.Reader
	left int64
}

func (c *capped) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, errBodyLimit
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

// kept is an event as a stream keeps it: long data by its digest, which
// is all the replay check compares.
func kept(ev sse.Event) sse.Event {
	if len(ev.Data) > maxKeptData {
		sum := sha256.Sum256([]byte(ev.Data))
		ev.Data = "sha256:" + hex.EncodeToString(sum[:])
	}
	return ev
}

type arrival struct {
	at  time.Duration // since the request was sent
	ev  sse.Event
	own bool // it had an id: field of its own, not the last event's
}

// stream is one connection to the endpoint and what came through it.
type stream struct {
	sent     time.Time
	opened   chan struct{} // closed once open returns
	status   int
	statusLn string
	header   http.Header
	length   int64
	headers  time.Duration // when the response headers came
	proto    string
	noBody   string // why the body cannot be read, if it cannot
	body     io.ReadCloser
	cancel   context.CancelFunc

	mu      sync.Mutex
	changed chan struct{} // closed and made anew at each arrival
	seen    view          // what came so far; copies of it are judged
	stopped bool          // doctor stopped watching: what ends the read then is doctor

	observe  func(what, detail string) // see Options.Observe
	readDone chan struct{}             // closed when the reading goroutine ends (see startRead)
}

func newStream() *stream {
	return &stream{sent: time.Now(), opened: make(chan struct{}), changed: make(chan struct{}), cancel: func() {},
		observe: func(string, string) {}}
}

// open sends the request as EventSource does, with Last-Event-ID when
// given, and reads the response headers.
func (s *stream) open(ctx context.Context, c *http.Client, url, lastID string) error {
	defer close(s.opened)
	sctx, cancel := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(sctx, http.MethodGet, url, nil)
	if err != nil {
		cancel()
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	req.Header.Set("Accept-Encoding", "gzip, deflate, br")
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	s.cancel = cancel // s.sent is the stream's making, just before
	resp, err := c.Do(req)
	if err != nil {
		cancel()
		var op *net.OpError
		var dns *net.DNSError
		if errors.As(err, &op) && op.Op == "dial" || errors.As(err, &dns) {
			return fmt.Errorf("%w: %v", ErrUnreachable, err)
		}
		if ctx.Err() != nil {
			s.status, s.statusLn = 0, fmt.Sprintf("no response headers within %v", time.Since(s.sent).Round(100*time.Millisecond))
			s.seen.ended = true
			s.observe("end", s.statusLn)
			return nil
		}
		return fmt.Errorf("%w: %v", ErrUnreachable, err)
	}
	s.headers = time.Since(s.sent)
	s.status, s.statusLn, s.header, s.length, s.proto = resp.StatusCode, resp.Status, resp.Header, resp.ContentLength, resp.Proto
	s.body = resp.Body
	about := resp.Status + " over " + resp.Proto + ", Content-Type: " + resp.Header.Get("Content-Type")
	if enc := resp.Header.Get("Content-Encoding"); enc != "" {
		about += ", Content-Encoding: " + enc
	}
	if lastID != "" {
		about += " (asked with Last-Event-ID: " + lastID + ")"
	}
	s.observe("headers", about)
	return nil
}

// reader is the body as the stream's bytes, decoded when compressed, each
// read's time recorded.
func (s *stream) reader() io.Reader {
	var r io.Reader = &timedReader{s: s, r: s.body}
	switch enc := strings.ToLower(strings.TrimSpace(s.header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(r)
		if err != nil {
			s.noBody = "the gzip body could not be read: " + err.Error()
			return nil
		}
		zr.Multistream(false)
		r = zr
	case "deflate":
		r = flate.NewReader(r)
	default:
		s.noBody = "the body is " + enc + "-encoded, which doctor does not decode"
		return nil
	}
	return r
}

type timedReader struct {
	s *stream
	r io.Reader
}

func (t *timedReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n > 0 {
		t.s.mu.Lock()
		if len(t.s.seen.reads) < maxArrivals {
			t.s.seen.reads = append(t.s.seen.reads, time.Since(t.s.sent))
		}
		t.s.mu.Unlock()
	}
	return n, err
}

// startRead reads the stream in a goroutine of its own; waitRead, once the
// stream is cancelled, waits for that goroutine, so that nothing of a run
// (an observation, say) outlives Run.
func (s *stream) startRead() {
	s.readDone = make(chan struct{})
	go func() {
		defer close(s.readDone)
		s.read()
	}()
}

func (s *stream) waitRead() {
	if s.readDone != nil {
		<-s.readDone
	}
}

// read parses the stream until it ends or is cancelled.
func (s *stream) read() {
	defer s.body.Close()
	r := s.reader()
	if r == nil {
		s.finish(nil)
		return
	}
	p := sse.NewParser(&capped{r: r, left: maxBodyBytes})
	p.OnComment = func(text string) {
		s.mu.Lock()
		at := time.Since(s.sent)
		// A comment that is the body's first thing, with the headers, is
		// the stream saying it is open (rule 1), not a keepalive.
		if len(s.seen.events) == 0 && len(s.seen.comments) == 0 && !s.seen.opening && at-s.headers < openingBurst {
			s.seen.opening = true
		} else if len(s.seen.comments) < maxArrivals {
			s.seen.comments = append(s.seen.comments, at)
		}
		s.mu.Unlock()
		s.observe("comment", short(text))
		s.notify()
	}
	for {
		ev, err := p.Next()
		if err != nil {
			s.finish(err)
			return
		}
		s.mu.Lock()
		if len(s.seen.events) < maxArrivals {
			s.seen.events = append(s.seen.events, arrival{time.Since(s.sent), kept(ev), p.HadID()})
		}
		s.seen.retry, s.seen.hasRetry = p.Retry()
		s.mu.Unlock()
		about := ev.Type
		if about == "" {
			about = "message"
		}
		if p.HadID() {
			about += " id " + strconv.Quote(ev.ID)
		}
		s.observe("event", about+": "+short(ev.Data))
		s.notify()
	}
}

// short is a value cut to a line's length for an observation.
func short(v string) string {
	const n = 80
	if len(v) > n {
		v = strings.ToValidUTF8(v[:n], "") + "…"
	}
	return strconv.Quote(v)
}

func (s *stream) finish(err error) {
	s.mu.Lock()
	stopped := s.stopped
	if !stopped {
		s.seen.ended, s.seen.endAt, s.seen.endErr = true, time.Since(s.sent), err
	}
	s.mu.Unlock()
	switch {
	case stopped: // doctor's own doing
	case s.noBody != "":
		s.observe("end", "not read: "+s.noBody)
	case err == nil || errors.Is(err, io.EOF):
		s.observe("end", "the server ended the response")
	default:
		s.observe("end", "the response was cut: "+err.Error())
	}
	s.notify()
}

func (s *stream) notify() {
	s.mu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// view is what a stream has seen so far.
type view struct {
	events   []arrival
	opening  bool            // the body began with a comment, at once
	comments []time.Duration // keepalive comments: every comment but the opening one
	reads    []time.Duration
	retry    time.Duration
	hasRetry bool
	ended    bool
	endAt    time.Duration
	endErr   error
	watched  time.Duration
}

func (s *stream) snapshot() view {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.seen
	v.events, v.comments, v.reads = slices.Clone(v.events), slices.Clone(v.comments), slices.Clone(v.reads)
	return v
}

// watch reads the stream until it ends, until until, or until enough is
// known: enough events (all posted ones, with -publish) and a keepalive.
func (s *stream) watch(ctx context.Context, until time.Time, pub *publisher) {
	defer func() {
		s.mu.Lock()
		s.seen.watched, s.stopped = time.Since(s.sent), true
		s.mu.Unlock()
		s.cancel()
		s.waitRead()
	}()
	if s.body == nil {
		return
	}
	if s.status != http.StatusOK {
		s.body.Close()
		return
	}
	s.startRead()
	timer := time.NewTimer(time.Until(until))
	defer timer.Stop()
	posted := pubDone(pub) // nil once heard: a closed channel would spin the loop
	for {
		s.mu.Lock()
		changed := s.changed
		ended, known := s.seen.ended, len(s.seen.events) >= enough && len(s.seen.comments) > 0
		s.mu.Unlock()
		if ended || known && (pub == nil || pub.finished(s)) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
			return
		case <-changed:
		case <-posted:
			posted = nil
		}
	}
}

func pubDone(p *publisher) <-chan struct{} {
	if p == nil {
		return nil
	}
	return p.done
}

// watchReplay reads a resumed stream until it has want events and a short
// while more (to see a duplicate), until it ends, or until ctx ends.
func (s *stream) watchReplay(ctx context.Context, want int) {
	defer func() {
		s.mu.Lock()
		s.stopped = true
		s.mu.Unlock()
		s.cancel()
		s.waitRead()
	}()
	if s.body == nil || s.status != http.StatusOK {
		if s.body != nil {
			s.body.Close()
		}
		return
	}
	s.startRead()
	var grace <-chan time.Time
	for {
		s.mu.Lock()
		changed, n, ended := s.changed, len(s.seen.events), s.seen.ended
		s.mu.Unlock()
		if ended {
			return
		}
		if n > want && grace == nil {
			return // one past what was expected: a duplicate or a newer event, either way judged
		}
		if n == want && grace == nil {
			grace = time.After(300 * time.Millisecond)
		}
		select {
		case <-ctx.Done():
			return
		case <-grace:
			return
		case <-changed:
		}
	}
}

// resumePoint picks the event to resume from: one with an id, in the
// middle of those seen, so that events came after it. -1: none.
func (s *stream) resumePoint() int {
	v := s.snapshot()
	var withID []int
	for i, a := range v.events {
		if a.own && a.ev.ID != "" && a.ev.Type != "gap" {
			withID = append(withID, i)
		}
	}
	if len(withID) == 0 {
		return -1
	}
	return withID[(len(withID)-1)/2]
}

// afterID are the events with ids of their own seen after the i-th.
func (v view) afterID(i int) []arrival { return owned(v.events[i+1:]) }

// owned are the events that carried an id of their own: the ones a replay
// owes (state sent without an id is not replayed).
func owned(evs []arrival) []arrival {
	return slices.DeleteFunc(slices.Clone(evs), func(a arrival) bool { return !a.own || a.ev.ID == "" })
}

// publisher posts doctor's own events and times each one's arrival.
type publisher struct {
	c     *http.Client
	url   string
	nonce string
	done  chan struct{}

	mu     sync.Mutex
	sentAt []time.Duration // since the stream's request, per post; -1: not accepted
	errs   []string

	observe func(what, detail string) // see Options.Observe
}

func newPublisher(c *http.Client, url string) *publisher {
	return &publisher{c: c, url: url, nonce: fmt.Sprintf("doctor-%x", time.Now().UnixNano()&0xffffffffff), done: make(chan struct{}),
		observe: func(string, string) {}}
}

// run posts the events, postEvery apart, once the stream's headers came
// and it had a moment to settle, or after 1.5 s without headers. Each is
// a form with the fields data and message (what sselab's tokens and chat
// read), its text naming the post.
func (p *publisher) run(ctx context.Context, s *stream) {
	defer close(p.done)
	wait := time.NewTimer(1500 * time.Millisecond)
	defer wait.Stop()
	select {
	case <-ctx.Done():
		return
	case <-wait.C:
	case <-s.opened:
		if s.status != http.StatusOK {
			return // nothing to time
		}
		wait.Reset(300 * time.Millisecond)
		select {
		case <-ctx.Done():
			return
		case <-wait.C:
		}
	}
	tick := time.NewTicker(postEvery)
	defer tick.Stop()
	for i := range posts {
		if i > 0 {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
		text := p.text(i)
		body := neturl.Values{"data": {text}, "message": {text}}.Encode()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, strings.NewReader(body))
		if err != nil {
			return
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		at := time.Since(s.sent)
		resp, err := p.c.Do(req)
		p.mu.Lock()
		answer := ""
		switch {
		case err != nil:
			p.sentAt = append(p.sentAt, -1)
			p.errs = append(p.errs, err.Error())
			answer = err.Error()
		case resp.StatusCode/100 != 2:
			p.sentAt = append(p.sentAt, -1)
			p.errs = append(p.errs, resp.Status)
			answer = resp.Status
		default:
			p.sentAt = append(p.sentAt, at)
			answer = resp.Status
		}
		p.mu.Unlock()
		p.observe("post", strconv.Quote(text)+" to "+p.url+": "+answer)
		if resp != nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
			resp.Body.Close()
		}
	}
}

// finished reports whether every post is done and every accepted one
// arrived.
func (p *publisher) finished(s *stream) bool {
	select {
	case <-p.done:
	default:
		return false
	}
	got := p.arrivals(s.snapshot())
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, at := range p.sentAt {
		if at >= 0 && got[i] < 0 {
			return false
		}
	}
	return true
}

// arrivals maps each post to when its event arrived; -1: not seen.
func (p *publisher) arrivals(v view) []time.Duration {
	out := make([]time.Duration, posts)
	for i := range out {
		out[i] = -1
	}
	for _, a := range v.events {
		for i := range posts {
			if out[i] < 0 && strings.Contains(a.ev.Data, p.text(i)) {
				out[i] = a.at
			}
		}
	}
	return out
}

// text is what post i says.
func (p *publisher) text(i int) string { return fmt.Sprintf("%s-%d.", p.nonce, i) }
