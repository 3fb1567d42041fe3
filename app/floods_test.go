package app

import (
	"errors"
	"net"
	"os"
	"testing"
	"testing/synctest"
	"time"
)

func newFloodPipe(t *testing.T) (*floodConn, net.Conn) {
	server, client := net.Pipe()
	t.Cleanup(func() { server.Close(); client.Close() })
	return &floodConn{Conn: server, deaf: make(chan struct{}), closed: make(chan struct{})}, client
}

// Each bound trips once, at the first request or byte past it, within
// one second; the next second starts again from nothing.
func TestFloodConnBounds(t *testing.T) {
	for _, tc := range []struct {
		name  string
		bound int
		one   func(c *floodConn) bool
	}{
		{"requests made", maxConnRequests, (*floodConn).begin},
		{"requests abandoned", maxConnResets, (*floodConn).abandon},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c, _ := newFloodPipe(t)
				for range tc.bound {
					if tc.one(c) {
						t.Fatalf("tripped within the bound of %d", tc.bound)
					}
				}
				time.Sleep(time.Second) // a new second: counted again from nothing
				for range tc.bound {
					if tc.one(c) {
						t.Fatalf("tripped within the bound of %d, a second later", tc.bound)
					}
				}
				if !tc.one(c) || !c.goingAway() {
					t.Fatalf("past the bound of %d: not told to go away", tc.bound)
				}
				if tc.one(c) {
					t.Errorf("tripped twice")
				}
			})
		})
	}
}

// Past its bytes (1 MiB beyond 128 KiB per request made), a connection
// stops reading: a read waits as if nothing came, until its deadline or
// the close a second later.
func TestFloodConnBytes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, client := newFloodPipe(t)
		c.begin() // one request: 1 MiB + 128 KiB
		go client.Write(make([]byte, connBytesFree+connBytesPerAsked+4096))
		buf := make([]byte, 4096)
		read := 0
		for !c.goingAway() {
			n, err := c.Read(buf)
			if err != nil {
				t.Fatal(err)
			}
			read += n
		}
		if read <= connBytesFree+connBytesPerAsked {
			t.Errorf("told to go away after %d bytes, within the bound", read)
		}
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if _, err := c.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("a read after it stopped reading: %v, want the deadline", err)
		}
		c.SetReadDeadline(time.Time{})
		if _, err := c.Read(buf); !errors.Is(err, net.ErrClosed) {
			t.Errorf("a read waiting for the close: %v, want closed", err)
		}
	})
}
