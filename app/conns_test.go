package app

import (
	"net"
	"net/http"
	"testing"
)

// pipeConn is a connection whose Close the test can see.
type pipeConn struct {
	net.Conn
	closed bool
}

func (p *pipeConn) Close() error { p.closed = true; return nil }

func newPipeConn(t *testing.T) *pipeConn {
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	return &pipeConn{Conn: a}
}

// The bound closes the connection that has waited longest without a
// request in flight (idle, or not done sending its first request), never a
// busy one; with every connection busy, the new one; and past a quarter of
// the bound waiting, the one that waited longest.
func TestConnsBound(t *testing.T) {
	cs := newConns(20)
	var all []*pipeConn
	open := func(st ...http.ConnState) *pipeConn {
		c := newPipeConn(t)
		all = append(all, c)
		cs.state(c, http.StateNew)
		for _, s := range st {
			cs.state(c, s)
		}
		return c
	}
	var busy []*pipeConn
	for range 18 {
		busy = append(busy, open(http.StateActive)) // streams
	}
	slow := open() // has not sent its request yet
	idle := open(http.StateActive, http.StateIdle)
	if n, w := cs.counts(); n != 20 || w != 2 {
		t.Fatalf("open %d, waiting %d; want 20 and 2", n, w)
	}
	fresh := open()
	if !slow.closed || idle.closed || fresh.closed {
		t.Errorf("at the bound: slow closed %v, idle %v, fresh %v; want only the one that waited longest, slow", slow.closed, idle.closed, fresh.closed)
	}
	cs.state(slow, http.StateClosed) // as the server reports it
	cs.state(fresh, http.StateActive)
	newest := open()
	if !idle.closed || newest.closed {
		t.Errorf("idle closed %v, newest %v; want the idle one to go", idle.closed, newest.closed)
	}
	cs.state(newest, http.StateActive)
	last := open() // every other connection busy
	if !last.closed {
		t.Error("with every connection busy, a new one stayed open")
	}
	for _, c := range busy {
		if c.closed {
			t.Fatal("a busy connection was closed")
		}
	}
	// Waiting past a quarter of the bound: the longest waiting goes.
	for _, c := range busy[:6] {
		cs.state(c, http.StateIdle)
	}
	for i, c := range busy[:6] {
		if c.closed != (i == 0) {
			t.Errorf("six idle with room for five: connection %d closed %v, want only the first closed", i, c.closed)
		}
	}
	if _, w := cs.counts(); w != 5 {
		t.Errorf("waiting %d, want 5", w)
	}
	// Hijacked and closed connections are forgotten.
	for _, c := range all {
		cs.state(c, http.StateClosed)
	}
	if n, w := cs.counts(); n != 0 || w != 0 {
		t.Errorf("after every connection closed: open %d, waiting %d", n, w)
	}
}

// Slow-loris: connections that never finish their first request (or TLS
// handshake) are a quarter of the bound at most, the oldest going first.
func TestConnsSlowLoris(t *testing.T) {
	cs := newConns(100)
	var all []*pipeConn
	for range 50 {
		c := newPipeConn(t)
		all = append(all, c)
		cs.state(c, http.StateNew)
	}
	for i, c := range all {
		if want := i < 25; c.closed != want {
			t.Errorf("connection %d of 50 silent ones: closed %v, want %v (the newest 25 stay)", i, c.closed, want)
		}
	}
}
