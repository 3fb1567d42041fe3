package tests

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
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
// (HEADERS then RST_STREAM, over and over), is closed once it passes the
// per-connection rate, while another connection is served as usual.
// Before, 252,000 such pairs in 10 s on one connection cost 1.3 cores and
// were never cut.
func TestRapidResetConnectionClosed(t *testing.T) {
	base, _ := startBinary(t, "-tls")
	host := strings.TrimPrefix(base, "https://")
	_, fr := dialH2(t, host)
	closed := make(chan struct{})
	go func() { // reads until the server ends the connection
		defer close(closed)
		for {
			if _, err := fr.ReadFrame(); err != nil {
				return
			}
		}
	}()
	block := getHealthz(host)
	sent := 0
	deadline := time.Now().Add(10 * time.Second)
flood:
	for id := uint32(1); time.Now().Before(deadline); id += 2 {
		select {
		case <-closed:
			break flood
		default:
		}
		if fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndStream: true, EndHeaders: true}) != nil ||
			fr.WriteRSTStream(id, http2.ErrCodeCancel) != nil {
			break
		}
		sent++
	}
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatalf("the connection was not closed after %d HEADERS and RST_STREAM pairs in 10 s", sent)
	}
	t.Logf("closed after %d HEADERS and RST_STREAM pairs", sent)
	// The bound is 200 requests a second; the frames already on their way
	// when it passes are the rest. Unbounded, the flood ran its 10 s: half
	// a million pairs.
	if sent > 20_000 {
		t.Errorf("the connection was closed only after %d HEADERS and RST_STREAM pairs", sent)
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
