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
// busy one; with every connection busy, the new one; and past a tenth of
// the bound idle, the longest idle.
func TestConnsBound(t *testing.T) {
	cs := newConns(20, nil)
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
	if n, i := cs.counts(); n != 20 || i != 1 {
		t.Fatalf("open %d, idle %d; want 20 and 1", n, i)
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
	// Idle past a tenth of the bound: the longest idle goes.
	for _, c := range busy[:3] {
		cs.state(c, http.StateIdle)
	}
	if !busy[0].closed || busy[1].closed || busy[2].closed {
		t.Errorf("three idle with room for two: closed %v %v %v, want the first only", busy[0].closed, busy[1].closed, busy[2].closed)
	}
	if _, i := cs.counts(); i != 2 {
		t.Errorf("idle %d, want 2", i)
	}
	// Hijacked and closed connections are forgotten.
	for _, c := range all {
		cs.state(c, http.StateClosed)
	}
	if n, i := cs.counts(); n != 0 || i != 0 {
		t.Errorf("after every connection closed: open %d, idle %d", n, i)
	}
}
