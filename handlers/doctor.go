package handlers

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"sselab/app/doctor"
	"sselab/app/sse"
	"sselab/views"
)

// DoctorRuns is how many doctor runs the page may have under way at once,
// across all its visitors: each holds one or two streams to this server
// for up to DoctorTimeout.
const DoctorRuns = 2

// DoctorTimeout bounds one run from the page, as -timeout does on the
// command line.
const DoctorTimeout = 20 * time.Second

// doctorTargets are the routes of the other demos that the doctor page
// can check, each with the lesson it shows.
var doctorTargets = []views.DoctorTarget{
	{Name: "generator", Label: "The finite generator", Route: "/eventsource/event_sender", Path: "/eventsource/event_sender",
		Expect: "Flush passes, judged from the generator's own 500 ms spacing; the stream ends after ten events, and ids warn: the generator sends none unless asked (?resume=1)."},
	{Name: "buffered", Label: "The generator behind buffering middleware (the Pylons lesson)", Route: "/eventsource/event_sender", Path: "/eventsource/event_sender?buffered=1",
		Expect: "Headers and flush fail: a layer that collects the body holds the headers and all ten events until the end. This is what a buffering proxy or a compressor does to a stream."},
	{Name: "tokens", Label: "A token stream, with doctor's own pings", Route: "/tokens/:token/poll",
		Path: "/tokens/{token}/poll", Publish: "/tokens/{token}/ping",
		Expect: "Nothing fails: doctor posts five pings and times each one's arrival. Ids and replay warn unless the server runs with -i (the Tornado seed's flag: token events carry ids); keepalive passes once a comment came within the run (-keepalive, 15 s by default)."},
}

// DoctorTargets are the doctor page's targets whose routes are served
// (served holds the paths of the site's routes): a deleted demo takes its
// targets with it.
func DoctorTargets(served map[string]bool) []views.DoctorTarget {
	var ts []views.DoctorTarget
	for _, t := range doctorTargets {
		if served[t.Route] {
			ts = append(ts, t)
		}
	}
	return ts
}

// Doctor is sselab doctor in the browser: the server checks one of its own
// stream routes through its own listener, the way the command checks any
// endpoint, and streams each verdict to the page. Only the routes it was
// given can be checked: the page cannot be used to make this server
// connect anywhere else.
type Doctor struct {
	keepalive time.Duration
	// cert is the server's own certificate with -tls, to which the run's
	// client is pinned; nil over plain HTTP.
	cert    []byte
	targets []views.DoctorTarget
	slots   chan struct{}

	mu      sync.Mutex
	running map[string]bool // client addresses with a run under way: one each
}

// NewDoctor returns the doctor page's handlers. cert is the DER of the
// certificate the server presents with -tls (nil without). targets are
// the only routes it checks; in a target's paths {token} becomes a token
// of the run's own, so that its pings reach nobody else.
func NewDoctor(keepalive time.Duration, cert []byte, targets []views.DoctorTarget) *Doctor {
	return &Doctor{keepalive: keepalive, cert: cert, targets: targets, slots: make(chan struct{}, DoctorRuns), running: map[string]bool{}}
}

func (h *Doctor) target(name string) (views.DoctorTarget, bool) {
	for _, t := range h.targets {
		if t.Name == name {
			return t, true
		}
	}
	return views.DoctorTarget{}, false
}

// Page serves the page.
func (h *Doctor) Page(c echo.Context) error {
	return render(c, http.StatusOK, views.DoctorPage(views.DoctorVM{Targets: h.targets, Timeout: DoctorTimeout, Runs: DoctorRuns}))
}

// Run checks ?target= and streams a started event, a seen event (JSON:
// at_ms, stream, what, detail) for each thing doctor sees or does as it
// happens,
// one check event per check (JSON: name, status, detail) and a done
// event, then ends. The page closes its EventSource on done, so the end is
// not a reconnect.
func (h *Doctor) Run(c echo.Context) error {
	name := c.QueryParam("target")
	t, ok := h.target(name)
	if !ok {
		names := make([]string, len(h.targets))
		for i, t := range h.targets {
			names[i] = t.Name
		}
		return badRequest("target must be one of %s; got %s", strings.Join(names, ", "), quote(name))
	}
	// One run per client address at a time, so that one visitor with two
	// loops cannot hold every slot (the others once got none in a minute).
	who := c.RealIP()
	h.mu.Lock()
	mine := h.running[who]
	h.running[who] = true
	h.mu.Unlock()
	if mine {
		return sse.Refuse(c.Response(), "a doctor run of yours (from "+who+") is under way: one at a time; try again when it is done")
	}
	defer func() {
		h.mu.Lock()
		delete(h.running, who)
		h.mu.Unlock()
	}()
	select {
	case h.slots <- struct{}{}:
		defer func() { <-h.slots }()
	default:
		return sse.Refuse(c.Response(), fmt.Sprintf("%d doctor runs are under way (the limit); try again shortly", DoctorRuns))
	}
	base, client, err := h.self(c.Request())
	if err != nil {
		return err
	}
	defer client.CloseIdleConnections()
	tok := runToken() // one token per run, for the stream and its pings
	at := func(path string) string { return base + strings.ReplaceAll(path, "{token}", tok) }
	o := doctor.Options{URL: at(t.Path), Timeout: DoctorTimeout, Client: client}
	if t.Publish != "" {
		o.Publish = at(t.Publish)
	}

	s, err := sse.Open(c.Response())
	if err != nil {
		return err
	}
	started, _ := json.Marshal(map[string]string{"url": o.URL, "publish": o.Publish, "timeout": DoctorTimeout.String()})
	if err := s.Send(sse.Event{Type: "started", Data: string(started)}); err != nil {
		return err
	}

	// The run ends with the request: when the page leaves, or the server
	// stops, its context ends doctor's connections, and the handler waits
	// for it to return.
	ctx, cancel := context.WithCancel(c.Request().Context())
	seen := &seenLog{wake: make(chan struct{}, 1)}
	o.Observe = seen.add
	var report doctor.Report
	var runErr error
	finished := make(chan struct{})
	go func() {
		report, runErr = doctor.Run(ctx, o)
		close(finished)
		seen.poke()
	}()
	defer func() { cancel(); <-finished }()

	// A run stopped with its request (a restart, say) gets no report: what
	// it saw last is doctor being cut off, not the endpoint. Loop gives
	// the end of the request precedence over what is ready.
	return sse.Loop(c.Request().Context(), s, h.keepalive, seen.wake, func() (bool, error) {
		// Whether the run has finished is read before what it saw is taken:
		// Run returns only once its last observation is made, so a
		// finished run's observations are all taken here, none left behind
		// its report.
		var over bool
		select {
		case <-finished:
			over = true
		default:
		}
		// What doctor saw so far, as it saw it: one seen event each.
		for _, ob := range seen.take() {
			data, err := json.Marshal(seenEvent{AtMS: ob.At.Milliseconds(), Stream: ob.Stream, What: ob.What, Detail: ob.Detail})
			if err != nil {
				return true, err
			}
			if err := s.Send(sse.Event{Type: "seen", Data: string(data)}); err != nil {
				return true, err
			}
		}
		if !over {
			return false, nil
		}
		if runErr != nil {
			return true, s.Send(sse.Event{Type: "failed", Data: "doctor could not check " + o.URL + ": " + runErr.Error()})
		}
		return true, sendReport(s, report)
	})
}

// sendReport sends a check event per check, then done with the counts.
func sendReport(s *sse.Stream, r doctor.Report) error {
	counts := map[doctor.Status]int{}
	for _, ch := range r.Checks {
		data, err := json.Marshal(ch)
		if err != nil {
			return err
		}
		counts[ch.Status]++
		if err := s.Send(sse.Event{Type: "check", Data: string(data)}); err != nil {
			return err
		}
	}
	return s.Send(sse.Event{Type: "done",
		Data: fmt.Sprintf("%d pass, %d warn, %d fail", counts[doctor.Pass], counts[doctor.Warn], counts[doctor.Fail])})
}

// seenEvent is the data of a seen event: when (ms since the run began),
// which stream (1 the watched one, 2 the reconnection, 0 a post of
// doctor's own), what (headers, event, comment, end, post, more) and what
// was seen.
type seenEvent struct {
	AtMS   int64  `json:"at_ms"`
	Stream int    `json:"stream"`
	What   string `json:"what"`
	Detail string `json:"detail"`
}

// maxSeen bounds the seen events of one run: a stream that floods events
// shows the first ones, then says how many more there were.
const maxSeen = 200

// seenLog takes what doctor observes, from doctor's goroutines, to the
// run's stream, which one goroutine writes.
type seenLog struct {
	mu      sync.Mutex
	pending []doctor.Observation
	count   int
	wake    chan struct{} // one token: something is pending, or the run finished
}

func (l *seenLog) add(o doctor.Observation) {
	l.mu.Lock()
	l.count++
	switch {
	case l.count <= maxSeen:
		l.pending = append(l.pending, o)
	case l.count == maxSeen+1:
		l.pending = append(l.pending, doctor.Observation{At: o.At, Stream: o.Stream, What: "more",
			Detail: fmt.Sprintf("the first %d observations are shown; the checks use them all", maxSeen)})
	}
	l.mu.Unlock()
	l.poke()
}

func (l *seenLog) poke() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (l *seenLog) take() []doctor.Observation {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.pending
	l.pending = nil
	return p
}

// self is this server's own address, as the connection of r reached it,
// and a client for it: the run goes through the same listener, and the
// same protocol, as a visitor's stream does. With -tls the client accepts
// only the server's own certificate.
func (h *Doctor) self(r *http.Request) (string, *http.Client, error) {
	addr, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return "", nil, errors.New("doctor: the request carries no local address")
	}
	tr := &http.Transport{
		DialContext:        (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		DisableCompression: true, // doctor asks for compression itself, to see what it gets
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
		tr.ForceAttemptHTTP2 = true
		cert := h.cert
		tr.TLSClientConfig = &tls.Config{
			// Verification is the pin below: the peer must present this
			// server's own certificate, byte for byte.
			InsecureSkipVerify: true,
			VerifyConnection: func(cs tls.ConnectionState) error {
				if len(cs.PeerCertificates) == 0 || !bytes.Equal(cs.PeerCertificates[0].Raw, cert) {
					return errors.New("doctor: the server did not present its own certificate")
				}
				return nil
			},
		}
	}
	return scheme + "://" + addr.String(), &http.Client{Transport: tr}, nil
}

// runToken is a fresh token name for one run.
func runToken() string {
	b := make([]byte, 6)
	rand.Read(b)
	return "doctor-" + hex.EncodeToString(b)
}
