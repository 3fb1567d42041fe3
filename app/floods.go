package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"sselab/app/sse"
)

// What one connection may ask of the server in a second. A person closes a
// tab now and then; an HTTP/2 rapid-reset flood (HEADERS then RST_STREAM,
// over and over) abandons tens of thousands of requests (the client resets
// the stream, or goes, before the handler is done), each a handler to run,
// and once cost 1.3 cores for as long as it went on. Requests are bounded
// far higher: a publisher posting hundreds a second over one connection is
// served, a loop flooding one is not. And the bytes a connection sends are
// bounded by the requests they make: a request brings at most 80 KiB (its
// headers and a body, 16 and 64 KiB), while a flood of HTTP/2 header blocks
// that net/http refuses itself (431, before any handler: 4 kB of HPACK
// references each, 16 MB once decoded) or of control frames brings
// megabytes and no request at all. Past any bound the connection is told to
// go away and closed, with every stream on it.
const (
	maxConnResets     = 100
	maxConnRequests   = 2000
	connBytesFree     = 1 << 20   // a second's bytes that need no request
	connBytesPerAsked = 128 << 10 // and what each request it makes adds
)

// goAwayGrace is how long a connection past its bound has, after it was
// told to go away, before it is closed: time for the GOAWAY to reach the
// client before the close (net/http's own HTTP/2 server waits a second for
// the same reason), never long enough for a flood to matter, since nothing
// more is read from it meanwhile.
const goAwayGrace = time.Second

// floodListener hands out connections that count what they are asked.
type floodListener struct{ net.Listener }

func (l floodListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &floodConn{Conn: c, deaf: make(chan struct{}), closed: make(chan struct{})}, nil
}

// floodConn is a connection that counts its requests and bytes by the
// second, and past a bound stops reading while it still writes: its
// GOAWAY goes out, and nothing it sends after is read, decoded or answered
// before it is closed.
type floodConn struct {
	net.Conn
	deaf, closed         chan struct{} // closed: Close was called
	deafOnce, closedOnce sync.Once

	mu               sync.Mutex
	second           int64
	requests, resets int
	bytes            int64
	away             bool // past a bound: told to go away, closed after goAwayGrace
	why              string
	readDeadline     time.Time
	deadlineSet      chan struct{} // made by a deaf read, closed when the read deadline changes
}

func (c *floodConn) Read(p []byte) (int, error) {
	select {
	case <-c.deaf:
		return 0, c.waitDeaf()
	default:
	}
	n, err := c.Conn.Read(p)
	if n > 0 && c.count(func() string {
		c.bytes += int64(n)
		if c.bytes > connBytesFree+connBytesPerAsked*int64(c.requests) {
			return fmt.Sprintf("it sent %d bytes in a second for %d requests", c.bytes, c.requests)
		}
		return ""
	}) {
		// Its bytes are the flood: read no more of them. (A flood of
		// requests is read until one is answered with the GOAWAY.)
		c.stopReading()
	}
	return n, err
}

// waitDeaf is a read on a connection that stopped reading: as if nothing
// more arrived. It ends when the connection is closed, or at the read
// deadline (net/http's HTTP/1.1 server sets one to end a read it no
// longer wants).
func (c *floodConn) waitDeaf() error {
	for {
		c.mu.Lock()
		deadline := c.readDeadline
		if c.deadlineSet == nil {
			c.deadlineSet = make(chan struct{})
		}
		changed := c.deadlineSet
		c.mu.Unlock()
		var expired <-chan time.Time
		var t *time.Timer
		if !deadline.IsZero() {
			wait := time.Until(deadline)
			if wait <= 0 {
				return os.ErrDeadlineExceeded
			}
			t = time.NewTimer(wait)
			expired = t.C
		}
		select {
		case <-c.closed:
			return net.ErrClosed
		case <-expired:
			return os.ErrDeadlineExceeded
		case <-changed:
			if t != nil {
				t.Stop()
			}
		}
	}
}

func (c *floodConn) SetReadDeadline(t time.Time) error {
	c.noteReadDeadline(t)
	return c.Conn.SetReadDeadline(t)
}

func (c *floodConn) SetDeadline(t time.Time) error {
	c.noteReadDeadline(t)
	return c.Conn.SetDeadline(t)
}

func (c *floodConn) noteReadDeadline(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.readDeadline = t
	if c.deadlineSet != nil { // a deaf read waits on it
		close(c.deadlineSet)
		c.deadlineSet = nil
	}
}

// Close closes the connection. One told to go away may have sent much
// that was never read (a flood, pipelined requests): closed with that
// unread, the kernel resets it, and the client can lose what it was sent
// last, the GOAWAY or the 429 that says why. So its write side is closed
// first, and what it sends is read and dropped for a little while before
// the close (RFC 9112, section 9.6).
func (c *floodConn) Close() error {
	err := net.ErrClosed
	c.closedOnce.Do(func() {
		close(c.closed)
		if !c.goingAway() {
			err = c.Conn.Close()
			return
		}
		err = c.CloseWrite()
		go func() {
			c.Conn.SetReadDeadline(time.Now().Add(lingerTime))
			io.CopyN(io.Discard, c.Conn, lingerBytes)
			c.Conn.Close()
		}()
	})
	return err
}

// What a connection told to go away is given, at most, to see its last
// answers before the close: the time, and the bytes it may still send
// meanwhile (read and dropped, never decoded).
const (
	lingerTime  = time.Second
	lingerBytes = 1 << 20
)

// CloseWrite is the TCP connection's: net/http half-closes a connection
// it ends after an answer with a request body left unread (a 413), so
// that the client reads the answer rather than a reset.
func (c *floodConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// count applies add to this second's counts; the first time it reports a
// bound passed, the connection is marked to go away and closed after
// goAwayGrace, and count reports true.
func (c *floodConn) count(add func() (why string)) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := time.Now().Unix(); s != c.second {
		c.second, c.requests, c.resets, c.bytes = s, 0, 0, 0
	}
	why := add()
	if why == "" || c.away {
		return false
	}
	c.away, c.why = true, why
	time.AfterFunc(goAwayGrace, func() { c.Close() }) // a TLS close may wait on its alert: not here
	return true
}

// begin counts a request that reached the site.
func (c *floodConn) begin() bool {
	return c.count(func() string {
		if c.requests++; c.requests > maxConnRequests {
			return fmt.Sprintf("it made more than %d requests in a second", maxConnRequests)
		}
		return ""
	})
}

// abandon counts a request the client left before it was answered.
func (c *floodConn) abandon() bool {
	return c.count(func() string {
		if c.resets++; c.resets > maxConnResets {
			return fmt.Sprintf("it abandoned more than %d requests in a second", maxConnResets)
		}
		return ""
	})
}

// stopReading makes every read from now on wait as if nothing came.
func (c *floodConn) stopReading() { c.deafOnce.Do(func() { close(c.deaf) }) }

func (c *floodConn) goingAway() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.away
}

type floodConnKey struct{}

// withFloodConn is the http.Server's ConnContext hook: each connection's
// requests carry it. Connections that do not come through floodListener
// (a test's) have none.
func withFloodConn(ctx context.Context, c net.Conn) context.Context {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if fc, ok := c.(*floodConn); ok {
		return context.WithValue(ctx, floodConnKey{}, fc)
	}
	return ctx
}

// limitFloods tells a connection past its bounds to go away, then closes
// it. net/http has no call that sends one connection a GOAWAY; what it has
// is an answer carrying "Connection: close", which over HTTP/2 sends GOAWAY
// (no new streams; those begun may end) and over HTTP/1.1 closes the
// connection after the answer. So the first request on that connection
// after it passed its bound is answered so, at once, without reaching the
// site (a stream with rule 7's refusal: a browser that shares the
// connection comes back on a new one; any other request with 429), and
// from then on nothing more is read from it: what it sends after is never
// decoded, and the requests already read are answered the same way. A
// flood of which no request reaches a handler (header blocks net/http
// refuses itself) gives no answer to carry the GOAWAY: it stops being read
// at once, and is closed without one. Requests without a counter (a test's, through
// ServeHTTP) pass.
func limitFloods(log *slog.Logger, next http.Handler) http.Handler {
	warn := func(c *floodConn, r *http.Request) {
		if log != nil {
			log.Warn("connection told to go away: "+c.why, "remote", r.RemoteAddr, "proto", r.Proto)
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := r.Context().Value(floodConnKey{}).(*floodConn)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		if c.goingAway() {
			c.stopReading()
			goAway(w, r)
			return
		}
		if c.begin() {
			warn(c, r)
			c.stopReading()
			goAway(w, r)
			return
		}
		next.ServeHTTP(w, r)
		if errors.Is(context.Cause(r.Context()), context.Canceled) && c.abandon() {
			warn(c, r)
		}
	})
}

// goAway answers a request on a connection past its bound.
func goAway(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Connection", "close")
	const reason = "this connection made, abandoned or sent too many requests in a second; it is closed, open a new one"
	if strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
		sse.Refuse(w, reason)
		return
	}
	w.Header().Set("Retry-After", "1")
	http.Error(w, reason, http.StatusTooManyRequests)
}
