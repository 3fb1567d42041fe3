package doctor

import (
	"context"
	"net"
	"net/http"
	"sync"
	"testing"
	"testing/synctest"
)

// The doctor's judgements depend on time: when headers, bytes, events and
// comments came. Its tests run in a synctest bubble, on fake time, with
// the test servers on an in-memory network (net.Pipe), so a 40 s silence
// takes no time and every timing is exactly what the server did.

// pipeNet is a listener and a dialer joined in memory.
type pipeNet struct {
	conns chan net.Conn
	once  sync.Once
	done  chan struct{}
}

func newPipeNet() *pipeNet {
	return &pipeNet{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (p *pipeNet) Accept() (net.Conn, error) {
	select {
	case c := <-p.conns:
		return c, nil
	case <-p.done:
		return nil, net.ErrClosed
	}
}

func (p *pipeNet) Close() error { p.once.Do(func() { close(p.done) }); return nil }

func (p *pipeNet) Addr() net.Addr { return pipeAddr{} }

func (p *pipeNet) DialContext(ctx context.Context, _, _ string) (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case p.conns <- server:
		return client, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-p.done:
		return nil, net.ErrClosed
	}
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "doctor.test:80" }

// serve runs h on an in-memory network until the test ends, and returns
// its base URL and a client that reaches it, one that asks as doctor's
// own does (no transparent decompression).
func serve(t *testing.T, h http.Handler) (string, *http.Client) {
	pn := newPipeNet()
	srv := &http.Server{Handler: h}
	served := make(chan struct{})
	go func() { defer close(served); srv.Serve(pn) }()
	tr := &http.Transport{DialContext: pn.DialContext, DisableCompression: true}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		srv.Close()
		<-served
	})
	return "http://doctor.test", &http.Client{Transport: tr}
}

// bubble runs f in a synctest bubble, as a subtest of its own name.
func bubble(t *testing.T, name string, f func(t *testing.T)) {
	t.Run(name, func(t *testing.T) { synctest.Test(t, f) })
}
