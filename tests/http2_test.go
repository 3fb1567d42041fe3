package tests

import (
	"crypto/tls"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

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
