package tests

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"sselab/app/sse"
)

// h2Client speaks HTTP/2 over TLS to the certificate made at start, or
// unencrypted HTTP/2 (h2c) to a -h2c server.
func h2Client(unencrypted bool) *http.Client {
	p := new(http.Protocols)
	if unencrypted {
		p.SetUnencryptedHTTP2(true)
	} else {
		p.SetHTTP2(true)
	}
	return &http.Client{Transport: &http.Transport{
		Protocols:          p,
		TLSClientConfig:    &tls.Config{InsecureSkipVerify: true}, // the certificate made at start, in a test
		DisableCompression: true,
	}}
}

// Over HTTP/2 (with -tls, and h2c with -h2c) the wire rules hold as they
// are, and many streams share one connection.
func TestHTTP2Streams(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		h2c  bool
	}{{"tls", []string{"-tls"}, false}, {"h2c", []string{"-h2c"}, true}} {
		t.Run(tc.name, func(t *testing.T) {
			base, _ := startBinary(t, tc.args...)
			if tc.h2c {
				base = strings.Replace(base, "https://", "http://", 1)
			}
			client := h2Client(tc.h2c)
			const n = 20
			var wg sync.WaitGroup
			got := make(chan sse.Event, n)
			for range n {
				req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/tokens/h2/poll", nil)
				req.Header.Set("Accept-Encoding", "gzip, deflate, br")
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				if resp.ProtoMajor != 2 {
					t.Fatalf("got %s, want HTTP/2", resp.Proto)
				}
				h := resp.Header
				if !strings.HasPrefix(h.Get("Content-Type"), "text/event-stream") || h.Get("Cache-Control") != "no-cache" ||
					h.Get("Content-Encoding") != "" || h.Get("Content-Length") != "" || h.Get("Connection") != "" || h.Get("X-Accel-Buffering") != "no" {
					t.Fatalf("headers over HTTP/2: %v", h)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					ev, err := sse.NewParser(resp.Body).Next()
					if err == nil {
						got <- ev
					}
				}()
			}
			eventually(t, 10*time.Second, "20 listeners", func() bool {
				req, _ := http.NewRequest(http.MethodPost, base+"/tokens/h2/ping", strings.NewReader("over h2"))
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				var b strings.Builder
				buf := make([]byte, 64)
				k, _ := resp.Body.Read(buf)
				b.Write(buf[:k])
				return strings.HasPrefix(b.String(), "20 ")
			})
			wg.Wait()
			close(got)
			count := 0
			for ev := range got {
				if ev.Type == "ping" {
					count++
				}
			}
			if count != n {
				t.Errorf("%d of %d streams got the ping", count, n)
			}
		})
	}
}

// A connection that floods requests, as an HTTP/2 rapid-reset attack does
// (HEADERS then RST_STREAM, over and over), is told GOAWAY once it passes
// the per-connection rate; from then on nothing it sends is read (a PING
// gets no answer), and it is closed, while another connection is served
// as usual. Before, 252,000 such pairs in 10 s on one connection cost 1.3
// cores and were never cut; then they were cut without a GOAWAY.
func TestRapidResetConnectionClosed(t *testing.T) {
	base, cmd := startBinary(t, "-tls")
	host := strings.TrimPrefix(base, "https://")
	_, fr := dialH2(t, host)
	w := watchH2(fr)
	cpu0 := cpuTime(t, cmd.Process.Pid)
	block := getHealthz(host)
	sent := 0
	deadline := time.Now().Add(10 * time.Second)
	var away *http2.GoAwayFrame
	for id := uint32(1); time.Now().Before(deadline); id += 2 {
		var over bool
		if away, over = w.over(); over {
			break
		}
		if fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndStream: true, EndHeaders: true}) != nil ||
			fr.WriteRSTStream(id, http2.ErrCodeCancel) != nil {
			break
		}
		sent++
	}
	if away == nil {
		t.Fatalf("no GOAWAY after %d HEADERS and RST_STREAM pairs", sent)
	}
	t.Logf("GOAWAY after %d HEADERS and RST_STREAM pairs: last stream %d, %v", sent, away.LastStreamID, away.ErrCode)
	fr.WritePing(false, [8]byte{'a', 'n', 'y', 'o', 'n', 'e', '?'})
	select {
	case <-w.closed:
	case <-time.After(5 * time.Second):
		t.Fatal("the connection was not closed after its GOAWAY")
	}
	t.Logf("server CPU for the flood: %v", cpuTime(t, cmd.Process.Pid)-cpu0)
	if n := w.pongsAfterGoAway.Load(); n > 0 {
		t.Errorf("a PING sent after the GOAWAY was answered: the server still reads the connection it told to go away")
	}
	// The requests that reached the site: the bound is 100 abandoned a
	// second. Unbounded, the flood ran its 10 s: half a million.
	handled := metricOf(t, h2Client(false), base, `sselab_http_requests_total{code="200",route="/healthz"}`)
	t.Logf("%.0f requests reached the site", handled)
	if handled > 2_000 {
		t.Errorf("%.0f requests of the flood reached the site, where the bound is %d abandoned a second", handled, 100)
	}
	// Another client is served.
	resp, err := h2Client(false).Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz after the flood: %s", resp.Status)
	}
}

// A connection that floods answered requests is told to go away too,
// past 2,000 in a second (a publisher posting hundreds a second is
// served): over HTTP/2 by GOAWAY, over HTTP/1.1 (pipelined, so that the
// server's pace and not the client's sets the rate) by an answer with
// "Connection: close", a 429 naming why, and the close.
func TestRequestFloodConnectionClosed(t *testing.T) {
	t.Run("HTTP/2", func(t *testing.T) {
		base, _ := startBinary(t, "-tls")
		host := strings.TrimPrefix(base, "https://")
		_, fr := dialH2(t, host)
		w := watchH2(fr)
		block := getHealthz(host)
		sent := int32(0)
		deadline := time.Now().Add(20 * time.Second)
		var away *http2.GoAwayFrame
		for id := uint32(1); time.Now().Before(deadline); {
			var over bool
			if away, over = w.over(); over {
				break
			}
			if sent-w.answered.Load() >= 100 { // within the streams the server allows at once
				runtime.Gosched()
				continue
			}
			if fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndStream: true, EndHeaders: true}) != nil {
				break
			}
			id += 2
			sent++
		}
		if away == nil {
			t.Fatalf("no GOAWAY after %d requests, %d answered", sent, w.answered.Load())
		}
		t.Logf("GOAWAY after %d requests, %d answered", sent, w.answered.Load())
		select {
		case <-w.closed:
		case <-time.After(5 * time.Second):
			t.Fatal("the connection was not closed after its GOAWAY")
		}
	})
	t.Run("HTTP/1.1", func(t *testing.T) {
		base, _ := startBinary(t)
		c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		go func() { // pipelined requests, until the server stops reading
			req := []byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
			for range 20_000 {
				if _, err := c.Write(req); err != nil {
					return
				}
			}
		}()
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		br := bufio.NewReader(c)
		n := 0
		for {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("after %d answers: %v, and no 429", n, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			n++
			if resp.StatusCode == http.StatusOK {
				continue
			}
			if resp.StatusCode != http.StatusTooManyRequests || !resp.Close || !strings.Contains(string(body), "too many requests") {
				t.Fatalf("answer %d: %s, Connection: close %v, %q; want 429, the close and a reason", n, resp.Status, resp.Close, body)
			}
			break
		}
		t.Logf("429 after %d answers", n)
		if _, err := br.ReadByte(); err == nil {
			t.Errorf("the connection went on after its 429")
		}
	})
}

// A flood of header blocks that net/http refuses itself (431, before any
// handler sees a request) brings bytes and no request: 4 kB of HPACK
// references each, 16 MB once decoded. Such a connection is closed once
// it has sent a megabyte more than its requests account for. Before, one
// connection flooding so cost more than a core for as long as it went on.
func TestHeaderBlockFloodConnectionClosed(t *testing.T) {
	base, cmd := startBinary(t, "-tls")
	host := strings.TrimPrefix(base, "https://")
	c, fr := dialH2(t, host)
	closed := make(chan struct{})
	go func() { // the server's frames (431s), until it closes
		defer close(closed)
		io.Copy(io.Discard, c)
	}()
	cpu0 := cpuTime(t, cmd.Process.Pid)
	first, refs := hpackBomb(host)
	c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	sent := 0
	for id := uint32(1); ; id += 2 {
		block := refs
		if id == 1 {
			block = first
		}
		if fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndStream: true, EndHeaders: true}) != nil {
			break // the server stopped reading, or closed the connection
		}
		sent++
	}
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatalf("the connection is open after %d header blocks in 10 s", sent)
	}
	t.Logf("closed after %d header blocks written; server CPU %v", sent, cpuTime(t, cmd.Process.Pid)-cpu0)
}

// h2Watch is what a hand-made HTTP/2 connection's reader saw, until the
// server ended the connection.
type h2Watch struct {
	goAway           chan *http2.GoAwayFrame // the first GOAWAY
	closed           chan struct{}
	answered         atomic.Int32 // streams the server ended
	pongsAfterGoAway atomic.Int32 // PING answers after the GOAWAY
}

// over reports whether the connection's end has begun: its first GOAWAY
// read (returned), or the connection closed.
func (w *h2Watch) over() (*http2.GoAwayFrame, bool) {
	select { // the GOAWAY first: once read, the close may follow at once
	case g := <-w.goAway:
		return g, true
	default:
	}
	select {
	case <-w.closed:
		select { // a GOAWAY read just before the close
		case g := <-w.goAway:
			return g, true
		default:
			return nil, true
		}
	default:
		return nil, false
	}
}

// watchH2 reads fr's frames until the connection ends.
func watchH2(fr *http2.Framer) *h2Watch {
	w := &h2Watch{goAway: make(chan *http2.GoAwayFrame, 1), closed: make(chan struct{})}
	go func() {
		defer close(w.closed)
		away := false
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			if f.Header().Flags.Has(http2.FlagHeadersEndStream) && (f.Header().Type == http2.FrameHeaders || f.Header().Type == http2.FrameData) {
				w.answered.Add(1)
			}
			switch f := f.(type) {
			case *http2.GoAwayFrame:
				if !away {
					away = true
					w.goAway <- f
				}
			case *http2.PingFrame:
				if away && f.IsAck() {
					w.pongsAfterGoAway.Add(1)
				}
			}
		}
	}()
	return w
}

// cpuTime is the CPU a process has used, user and system, from
// /proc/PID/stat (in clock ticks of 10 ms).
func cpuTime(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name, which is in parentheses: utime and
	// stime are the 12th and 13th of them.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// HTTP/2 clients as browsers are, each on a connection of its own, each
// with one stream: the process stays under the contract's 512 MiB because
// streams are charged by what they cost over their protocol, and past the
// budget new ones get rule 7's refusal. At CI scale 1,000 clients, all
// served; with SSELAB_FULL_SCALE=1, 10,000, of which 4,096 are served
// (574 MiB on 790c508, every stream open; 436 MiB with the budget,
// 2026-12-04).
func TestHTTP2ClientsWithinMemory(t *testing.T) {
	n, wantOpen := 1000, 1000
	if os.Getenv("SSELAB_FULL_SCALE") == "1" {
		n, wantOpen = 10_000, 4096
	}
	base, cmd := startBinary(t, "-tls")
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64) // handshakes at once
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			client := h2Client(false) // a connection of its own
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, fmt.Sprintf("%s/tokens/t%d/poll", base, i%100), nil)
			resp, err := client.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			t.Cleanup(func() { resp.Body.Close(); client.CloseIdleConnections() })
			io.ReadFull(resp.Body, make([]byte, len(": open\n")))
		}()
	}
	wg.Wait()
	eventually(t, 10*time.Second, "the streams counted", func() bool {
		return metricOf(t, h2Client(false), base, "sselab_open_streams{") == float64(wantOpen)
	})
	rss := vmRSS(t, cmd.Process.Pid)
	t.Logf("%d HTTP/2 clients, %d streams open: RSS %d MiB", n, wantOpen, rss>>20)
	if rss > 512<<20 {
		t.Errorf("%d HTTP/2 clients: RSS %d MiB, past the 512 MiB the contract promises", n, rss>>20)
	}
}

// The connection bound over -tls: idle HTTP/2 connections (a request
// answered, then nothing) are a quarter of -max-conns at most, the oldest
// closed first, and TLS connections that never finish their handshake
// cannot keep /healthz from answering.
func TestConnectionBoundHTTP2(t *testing.T) {
	base, _ := startBinary(t, "-tls", "-max-conns", "40", "-max-streams", "30")
	host := strings.TrimPrefix(base, "https://")
	type h2conn struct {
		c  *tls.Conn
		fr *http2.Framer
	}
	var idle []h2conn
	for range 30 {
		c, fr := dialH2(t, host)
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: getHealthz(host), EndStream: true, EndHeaders: true})
		for { // until the answer has ended: then the connection is idle
			f, err := fr.ReadFrame()
			if err != nil {
				t.Fatalf("reading the answer: %v", err)
			}
			if f.Header().StreamID == 1 && f.Header().Flags.Has(http2.FlagDataEndStream) {
				break
			}
		}
		idle = append(idle, h2conn{c, fr})
	}
	open := func(h h2conn) bool {
		h.c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		for {
			f, err := h.fr.ReadFrame()
			if err != nil {
				return errors.Is(err, os.ErrDeadlineExceeded)
			}
			if _, goaway := f.(*http2.GoAwayFrame); goaway {
				return false
			}
		}
	}
	eventually(t, 5*time.Second, "a quarter of the bound left idle", func() bool {
		n := 0
		for _, h := range idle {
			if open(h) {
				n++
			}
		}
		return n == 10
	})
	for range 60 { // TCP connections that never begin their TLS handshake
		c, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
	}
	resp, err := h2Client(false).Get(base + "/healthz")
	if err != nil {
		t.Fatalf("/healthz with 60 silent connections at a bound of 40: %v", err)
	}
	resp.Body.Close()
}

// dialH2 opens an HTTP/2 connection to a -tls server by hand (the
// preface and SETTINGS sent), for frames no client library would send; it
// is closed when the test ends.
func dialH2(t *testing.T, host string) (*tls.Conn, *http2.Framer) {
	t.Helper()
	c, err := tls.Dial("tcp", host, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}}) // the certificate made at start
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return c, fr
}

// getHealthz is the HPACK block of GET /healthz on host.
func getHealthz(host string) []byte {
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", host}, {":path", "/healthz"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	return hb.Bytes()
}
