package app

import (
	"container/list"
	"net"
	"net/http"
	"sync"
)

// conns bounds the server's connections, of every protocol, as
// http.Server.ConnState sees them: at most max open at once, of which at
// most max/10 idle (a keep-alive connection between requests, an HTTP/2
// connection with no stream). Past either bound the connection that has
// waited longest without a request in flight goes first: an idle one, or
// one that has not finished sending its first request. When every
// connection is busy, a new one is closed at once. Streams are capped
// below this by -max-streams, so that they alone never fill it, and
// /healthz keeps answering however many idle or slow connections come.
//
// Before this, 20,000 idle keep-alive connections took the process to
// its descriptor limit, and /healthz failed for as long as they stayed.
type conns struct {
	max, maxIdle int
	onClose      func() // counts a connection closed by the bound, for /metrics

	mu    sync.Mutex
	open  map[net.Conn]*list.Element // nil element: busy (a request in flight)
	wait  list.List                  // new or idle connections, longest waiting first
	nIdle int                        // of wait, the idle ones (not new)
}

// waiting is an element of conns.wait.
type waiting struct {
	c    net.Conn
	idle bool
}

func newConns(n int, onClose func()) *conns {
	return &conns{max: n, maxIdle: max(1, n/10), onClose: onClose, open: map[net.Conn]*list.Element{}}
}

// state is the http.Server's ConnState hook.
func (cs *conns) state(c net.Conn, st http.ConnState) {
	var closing []net.Conn
	cs.mu.Lock()
	switch st {
	case http.StateNew:
		cs.open[c] = cs.wait.PushBack(&waiting{c: c})
		for len(cs.open) > cs.max {
			victim := cs.evict()
			if victim == nil { // every other connection is busy: this one goes
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
			cs.open[c] = cs.wait.PushBack(&waiting{c: c, idle: true})
			cs.nIdle++
			for cs.nIdle > cs.maxIdle {
				closing = append(closing, cs.evictIdle())
			}
		}
	case http.StateHijacked, http.StateClosed:
		cs.forget(c)
	}
	cs.mu.Unlock()
	for _, v := range closing {
		v.Close() // the server then reports StateClosed, already forgotten
		if cs.onClose != nil {
			cs.onClose()
		}
	}
}

// evict forgets the connection that has waited longest, new or idle, and
// returns it to be closed; nil when none waits.
func (cs *conns) evict() net.Conn {
	front := cs.wait.Front()
	if front == nil {
		return nil
	}
	c := front.Value.(*waiting).c
	cs.forget(c)
	return c
}

// evictIdle forgets the longest idle connection (there is one: nIdle > 0).
func (cs *conns) evictIdle() net.Conn {
	for el := cs.wait.Front(); el != nil; el = el.Next() {
		if w := el.Value.(*waiting); w.idle {
			cs.forget(w.c)
			return w.c
		}
	}
	panic("conns: nIdle counts an idle connection that is not waiting")
}

func (cs *conns) unwait(el *list.Element) {
	if el.Value.(*waiting).idle {
		cs.nIdle--
	}
	cs.wait.Remove(el)
}

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

// counts is how many connections are open, and how many of them idle.
func (cs *conns) counts() (open, idle int) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return len(cs.open), cs.nIdle
}
