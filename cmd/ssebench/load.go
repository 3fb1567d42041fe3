package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	neturl "net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"sselab/app/sse"
)

// target is a server under load, or with others several instances of one
// site: streams and posts are then dealt out between them in turn.
type target struct {
	name   string
	base   string // http://127.0.0.1:port
	pid    int    // 0: unknown, so no RSS or CPU figures
	others []target
}

func (t target) instances() []target { return append([]target{t}, t.others...) }

// hosts are the host:port of each instance.
func (t target) hosts() []string {
	var out []string
	for _, in := range t.instances() {
		u, _ := neturl.Parse(in.base)
		out = append(out, u.Host)
	}
	return out
}

// rss and cpu add up the instances' figures.
func (t target) rss() (int64, error) {
	var sum int64
	for _, in := range t.instances() {
		kb, err := rssKB(in.pid)
		if err != nil {
			return 0, err
		}
		sum += kb
	}
	return sum, nil
}

func (t target) cpu() (time.Duration, error) {
	var sum time.Duration
	for _, in := range t.instances() {
		d, err := cpuTime(in.pid)
		if err != nil {
			return 0, err
		}
		sum += d
	}
	return sum, nil
}

// result is what one run measured.
type result struct {
	Name             string        `json:"name"`
	Streams          int           `json:"streams"`
	Connected        int           `json:"connected"`
	ConnectAll       time.Duration `json:"connect_all_ns"`
	Published        int           `json:"published"`
	Expected         int64         `json:"expected_deliveries"`
	Delivered        int64         `json:"delivered"`
	DeliveredPct     float64       `json:"delivered_pct"`
	DeliveriesPerSec float64       `json:"deliveries_per_sec"`
	P50              time.Duration `json:"latency_p50_ns"`
	P99              time.Duration `json:"latency_p99_ns"`
	Max              time.Duration `json:"latency_max_ns"`
	PublishP99       time.Duration `json:"publish_p99_ns"` // how long a POST took to be answered
	RSSPerStreamKB   float64       `json:"rss_per_stream_kb"`
	CPUPerDelivery   time.Duration `json:"cpu_per_delivery_ns"`
	RedisConns       int           `json:"redis_connections_max,omitempty"` // the most any instance held, from CLIENT LIST
	Errors           int64         `json:"errors"`
	FirstErrors      []string      `json:"first_errors,omitempty"`
}

// errs counts errors and keeps the first few for the report.
type errs struct {
	n     atomic.Int64
	mu    sync.Mutex
	first []string
}

func (e *errs) add(err error) {
	if e.n.Add(1) <= 5 {
		e.mu.Lock()
		e.first = append(e.first, err.Error())
		e.mu.Unlock()
	}
}

// listener is one open stream and the latencies it saw.
type listener struct {
	conn net.Conn
	lat  []time.Duration
}

// runLoad opens the streams, publishes at a fixed rate, waits for the
// deliveries and measures. Every phase is bounded.
func runLoad(ctx context.Context, cfg config, t target) (result, error) {
	r := result{Name: t.name, Streams: cfg.n}
	var failures errs
	rssBefore, _ := t.rss()

	start := time.Now()
	live := connectAll(ctx, cfg, t.hosts(), &failures)
	r.ConnectAll, r.Connected = time.Since(start), len(live)
	defer func() {
		for _, l := range live {
			l.conn.Close()
		}
	}()

	// Memory per idle stream, once the server has settled.
	if t.pid > 0 {
		time.Sleep(time.Second)
		if after, err := t.rss(); err == nil && r.Connected > 0 {
			r.RSSPerStreamKB = float64(after-rssBefore) / float64(r.Connected)
		}
	}

	// Receive: each stream reads and records the latency of every event.
	var delivered, lastDelivery atomic.Int64
	var readers sync.WaitGroup
	for _, l := range live {
		l.lat = make([]time.Duration, 0, int(cfg.rate*cfg.duration.Seconds())+8)
		readers.Add(1)
		go func() {
			defer readers.Done()
			l.read(&delivered, &lastDelivery)
		}()
	}

	cpuBefore, _ := t.cpu()
	firstPublish := time.Now()
	var bases []string
	for _, in := range t.instances() {
		bases = append(bases, in.base)
	}
	published, took, err := publishAll(ctx, cfg, bases, &failures)
	if err != nil {
		return r, err
	}
	r.Published = published
	r.Expected = int64(r.Published) * int64(r.Connected)
	if cfg.channels > 0 { // each post reaches the streams of one channel
		r.Expected /= int64(cfg.channels)
	}
	slices.Sort(took)
	if n := len(took); n > 0 {
		r.PublishP99 = took[min(n-1, n*99/100)]
	}

	// Drain: wait for the deliveries still on their way, within a bound.
	deadline := time.Now().Add(cfg.drain)
	for delivered.Load() < r.Expected && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // polling interval of a bounded wait
	}
	cpuAfter, _ := t.cpu()
	r.Delivered = delivered.Load()
	if r.Expected > 0 {
		r.DeliveredPct = 100 * float64(r.Delivered) / float64(r.Expected)
	}
	if last := lastDelivery.Load(); last > 0 {
		r.DeliveriesPerSec = float64(r.Delivered) / time.Unix(0, last).Sub(firstPublish).Seconds()
	}
	if t.pid > 0 && r.Delivered > 0 {
		r.CPUPerDelivery = (cpuAfter - cpuBefore) / time.Duration(r.Delivered)
	}
	for _, l := range live {
		l.conn.Close()
	}
	readers.Wait()
	r.P50, r.P99, r.Max = percentiles(live)
	r.Errors = failures.n.Load()
	r.FirstErrors = failures.first
	return r, nil
}

// connectAll opens cfg.n streams from many loopback source addresses, so
// that the ephemeral port range never limits N, stream i to hosts[i mod
// len(hosts)], and returns those that opened.
func connectAll(ctx context.Context, cfg config, hosts []string, failures *errs) []*listener {
	listeners := make([]*listener, cfg.n)
	cctx, cancel := context.WithTimeout(ctx, cfg.connectTimeout)
	defer cancel()
	jobs := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < cfg.dialers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				l, err := connect(cctx, hosts[i%len(hosts)], cfg.streamOf(i), sourceAddr(i, cfg.sources), "")
				if err != nil {
					failures.add(fmt.Errorf("stream %d: %w", i, err))
					continue
				}
				listeners[i] = l
			}
		}()
	}
	for i := 0; i < cfg.n && cctx.Err() == nil; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	return slices.DeleteFunc(listeners, func(l *listener) bool { return l == nil })
}

// publishAll publishes at a fixed rate: at each tick one post, or with
// -channels K one post to each of the K channels, sent by 64 posting
// goroutines (a post's time is its own, not its wait for one), post k to
// bases[k mod len(bases)]. It returns how many posts succeeded and how long
// each took.
func publishAll(ctx context.Context, cfg config, bases []string, failures *errs) (int, []time.Duration, error) {
	const posters = 64
	pub := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: posters, DisableCompression: true}}
	total := int(cfg.rate * cfg.duration.Seconds())
	tick := time.NewTicker(time.Duration(float64(time.Second) / cfg.rate))
	defer tick.Stop()
	jobs := make(chan string, posters)
	var posts sync.WaitGroup
	var published atomic.Int64
	var mu sync.Mutex
	var took []time.Duration
	for range posters {
		posts.Add(1)
		go func() {
			defer posts.Done()
			for url := range jobs {
				start := time.Now()
				if err := publish(ctx, pub, url, cfg.payload, cfg.form); err != nil {
					failures.add(err)
					continue
				}
				mu.Lock()
				took = append(took, time.Since(start))
				mu.Unlock()
				published.Add(1)
			}
		}()
	}
	var err error
loop:
	for i := 0; i < total; i++ {
		select {
		case <-ctx.Done():
			err = ctx.Err()
			break loop
		case <-tick.C:
		}
		for j, path := range cfg.publishPaths() {
			jobs <- bases[(i+j)%len(bases)] + path
		}
	}
	close(jobs)
	posts.Wait()
	return int(published.Load()), took, err
}

// percentiles of every latency the listeners recorded.
func percentiles(live []*listener) (p50, p99, maximum time.Duration) {
	var all []time.Duration
	for _, l := range live {
		all = append(all, l.lat...)
	}
	slices.Sort(all)
	n := len(all)
	if n == 0 {
		return 0, 0, 0
	}
	return all[n/2], all[min(n-1, n*99/100)], all[n-1]
}

// sourceAddr spreads streams over 127.0.1.1 .. 127.0.1.sources.
func sourceAddr(i, sources int) *net.TCPAddr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 1, byte(1+i%sources))}
}

// connect opens one stream, with Last-Event-ID when lastID is given, and
// reads its response headers.
func connect(ctx context.Context, host, path string, local *net.TCPAddr, lastID string) (*listener, error) {
	d := net.Dialer{LocalAddr: local}
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	resume := ""
	if lastID != "" {
		resume = "Last-Event-ID: " + lastID + "\r\n"
	}
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n%s\r\n", path, host, resume)
	br := bufio.NewReaderSize(conn, 4096)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		conn.Close()
		return nil, err
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		conn.Close()
		return nil, fmt.Errorf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	conn.SetDeadline(time.Time{})
	return &listener{conn: &bodyConn{Conn: conn, body: resp.Body}}, nil
}

// bodyConn reads the decoded (de-chunked) body of the response.
type bodyConn struct {
	net.Conn
	body io.ReadCloser
}

func (c *bodyConn) Read(p []byte) (int, error) { return c.body.Read(p) }

// read parses events until the connection closes. Each event's data starts
// with its send time in Unix nanoseconds.
func (l *listener) read(delivered, last *atomic.Int64) {
	p := sse.NewParser(l.conn)
	for {
		ev, err := p.Next()
		if err != nil {
			return
		}
		now := time.Now()
		ns, ok := sendTime(ev.Data)
		if !ok {
			continue
		}
		l.lat = append(l.lat, now.Sub(time.Unix(0, ns)))
		delivered.Add(1)
		last.Store(now.UnixNano())
	}
}

// sendTime finds the send time an event carries: the first run of 19
// digits (Unix nanoseconds), wherever the server put the posted text, such
// as inside a chat line or an HTML fragment.
func sendTime(data string) (int64, bool) {
	run := 0
	for i := 0; i < len(data); i++ {
		if data[i] >= '0' && data[i] <= '9' {
			if run++; run == 19 && (i+1 == len(data) || data[i+1] < '0' || data[i+1] > '9') {
				ns, err := strconv.ParseInt(data[i-18:i+1], 10, 64)
				return ns, err == nil
			}
			continue
		}
		run = 0
	}
	return 0, false
}

// publish posts one event carrying its send time, padded to size bytes: as
// the body, or as form field field when one is given (the chat's message).
func publish(ctx context.Context, c *http.Client, url string, size int, field string) error {
	data := strconv.FormatInt(time.Now().UnixNano(), 10) + " "
	if pad := size - len(data); pad > 0 {
		data += strings.Repeat("x", pad)
	}
	body, contentType := data, "text/plain"
	if field != "" {
		body, contentType = neturl.Values{field: {data}}.Encode(), "application/x-www-form-urlencoded"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode/100 != 2 {
		return errors.New("publish: " + resp.Status)
	}
	return nil
}
