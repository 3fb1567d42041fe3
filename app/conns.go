package app

import (
	"container/list"
	"net"
	"net/http"
	"sync"
)

// conns bounds the server's connections, of every protocol, as
// http.Server.ConnState sees them: at most max open at once, of which at
// most max/4 waiting: idle (a keep-alive connection between requests, an
// HTTP/2 connection with no stream) or new (its TLS handshake or first
// request not done: what a slow-loris client holds). Past either bound the
// connection that has waited longest goes first. When every connection is
// busy, a new one is closed at once. Streams are capped
// below this by -max-streams, so that they alone never fill it, and
// /healthz keeps answering however many idle or slow connections come.
//
// Before this, 20,000 idle keep-alive connections took the process to
// its descriptor limit, and /healthz failed for as long as they stayed.
type conns struct {
	max, maxWait int

	mu   sync.Mutex
	open map[net.Conn]*list.Element // nil element: busy (a request in flight)
	wait list.List                  // of net.Conn: new or idle connections, longest waiting first
}

func newConns(n int) *conns {
	return &conns{max: n, maxWait: max(1, n/4), open: map[net.Conn]*list.Element{}}
}

// state is the http.Server's ConnState hook.
func (cs *conns) state(c net.Conn, st http.ConnState) {
	var closing []net.Conn
	cs.mu.Lock()
	switch st {
	case http.StateNew:
		cs.open[c] = cs.wait.PushBack(c)
		for len(cs.open) > cs.max || cs.wait.Len() > cs.maxWait {
			victim := cs.evict()
			if victim == nil { // every connection is busy: this one goes
				cs.forget(c)
				closing = append(closing, c)
				break
			}
			closing = append(closing, victim)
		}
	case http.StateActive:
		if el, ok := cs.open[c]; ok && el != nil {
			cs.unwait(el)
			cs.open[c] = nil
		}
	case http.StateIdle:
		if el, ok := cs.open[c]; ok {
			if el != nil {
				cs.unwait(el)
			}
			cs.open[c] = cs.wait.PushBack(c)
			for cs.wait.Len() > cs.maxWait {
				closing = append(closing, cs.evict())
			}
		}
	case http.StateHijacked, http.StateClosed:
		cs.forget(c)
	}
	cs.mu.Unlock()
	for _, v := range closing {
		v.Close() // the server then reports StateClosed, already forgotten
	}
}

// evict forgets the connection that has waited longest, new or idle, and
// returns it to be closed; nil when none waits.
func (cs *conns) evict() net.Conn {
	front := cs.wait.Front()
	if front == nil {
		return nil
	}
	c := front.Value.(net.Conn)
	cs.forget(c)
	return c
}

func (cs *conns) unwait(el *list.Element) { cs.wait.Remove(el) }

func (cs *conns) forget(c net.Conn) {
	el, ok := cs.open[c]
	if !ok {
		return
	}
	if el != nil {
		cs.unwait(el)
	}
	delete(cs.open, c)
}

// counts is how many connections are open, and how many of them wait.
func (cs *conns) counts() (open, waiting int) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return len(cs.open), cs.wait.Len()
}
