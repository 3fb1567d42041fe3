package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	neturl "net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"sselab/app/sse"
)

// The restart scenario: N streams on instance A, events posted to instance
// B, both on one redis-server and served with -i (token events with ids);
// A gets SIGTERM a third of the way through.
// Every client reconnects to B with its Last-Event-ID, after the retry A
// parted with (rule 8 spreads it over 1-5 s) or, without the spread, after
// the same fixed delay for all, as clients do that all keep one retry
// value (3 s, the default reconnection time of Chromium's EventSource).

// sameRetry is the fixed delay of the run without the spread.
const sameRetry = 3 * time.Second

// restartResult is what one restart run measured.
type restartResult struct {
	Kind         string        `json:"kind"` // the clients' reconnect rules (clientKind)
	Streams      int           `json:"streams"`
	Published    int           `json:"published"`
	AllBack      time.Duration `json:"all_back_ns"` // from SIGTERM until the last client had its first event from B
	BackP50      time.Duration `json:"back_p50_ns"`
	PeakPerSec   float64       `json:"peak_reconnects_per_sec"` // the most reconnects in any 100 ms, per second
	Reconnects   int64         `json:"reconnects"`              // attempts, refused ones included
	Back         int           `json:"back"`                    // clients that had an event from B
	Lost         int64         `json:"lost"`                    // events a client never got, all clients
	Duplicated   int64         `json:"duplicated"`              // events a client got twice or more
	ClientsHurt  int           `json:"clients_with_loss_or_duplicate"`
	ShutdownTook time.Duration `json:"shutdown_ns"`       // SIGTERM to A's exit
	Parted       int           `json:"parted_with_retry"` // clients A told a retry before its stream ended
	LastEnd      time.Duration `json:"last_end_ns"`       // SIGTERM to the last stream's end on A
	Errors       int64         `json:"errors"`
	FirstErrors  []string      `json:"first_errors,omitempty"`
}

// restartClient is one stream that moves from A to B.
type restartClient struct {
	seen   []atomic.Uint32 // times each event (by sequence number) arrived
	lastID string
	parted bool          // A sent a retry
	gaveUp atomic.Bool   // its rules stopped it from coming back
	end    time.Duration // since SIGTERM, when its stream on A ended
	back   time.Duration // since SIGTERM, when its first event from B came; 0: not back
}

// restartRound runs the scenario once.
func restartRound(ctx context.Context, cfg config, kind clientKind) (restartResult, error) {
	res := restartResult{Kind: kind.name, Streams: cfg.n}
	rs, url, err := startRedis(cfg)
	if err != nil {
		return res, err
	}
	defer rs.stop()
	maxStreams := strconv.Itoa(cfg.n + 1000)
	a, err := start(ctx, cfg, "sselab A", cfg.sselab, "serve", "-i", "-max-streams", maxStreams, "-redis", url)
	if err != nil {
		return res, err
	}
	defer a.stop()
	b, err := start(ctx, cfg, "sselab B", cfg.sselab, "serve", "-i", "-max-streams", maxStreams, "-redis", url)
	if err != nil {
		return res, err
	}
	defer b.stop()
	ua, _ := neturl.Parse(a.base)
	ub, _ := neturl.Parse(b.base)

	var failures errs
	live := connectAll(ctx, cfg, []string{ua.Host}, &failures)
	if len(live) < cfg.n {
		return res, fmt.Errorf("restart: only %d of %d streams opened on A: %v", len(live), cfg.n, failures.first)
	}
	total := int(cfg.rate * cfg.duration.Seconds())
	clients := make([]*restartClient, len(live))
	var sigterm atomic.Int64 // Unix ns of the SIGTERM; 0 before
	var mu sync.Mutex        // guards attempts
	var attempts []time.Duration
	var reconnects atomic.Int64
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for i, l := range live {
		c := &restartClient{seen: make([]atomic.Uint32, total)}
		clients[i] = c
		wg.Add(1)
		go func() {
			defer wg.Done()
			// On A until it parts.
			var last tail
			p := sse.NewParser(io.TeeReader(l.conn, &last))
			c.consume(p, 0)
			l.conn.Close()
			c.end = time.Since(time.Unix(0, sigterm.Load()))
			rules := kind.newPolicy()
			r, ok := p.Retry()
			c.parted = ok
			delay, again := rules.parted(r, ok, namedRetry(last.b))
			for again && rctx.Err() == nil {
				if !pause(rctx, delay) {
					return
				}
				at := time.Since(time.Unix(0, sigterm.Load()))
				mu.Lock()
				attempts = append(attempts, at)
				mu.Unlock()
				reconnects.Add(1)
				nl, err := connect(rctx, ub.Host, cfg.streamOf(i), sourceAddr(i, cfg.sources), c.lastID)
				if err != nil {
					failures.add(fmt.Errorf("reconnect %d: %w", i, err))
					delay, again = rules.failed()
					continue
				}
				// Closing the connection when the run ends unblocks the read.
				stop := context.AfterFunc(rctx, func() { nl.conn.Close() })
				c.consume(sse.NewParser(nl.conn), sigterm.Load())
				stop()
				nl.conn.Close()
				delay, again = rules.failed() // B ended it: only at the run's end
			}
			c.gaveUp.Store(!again)
		}()
	}

	// Publish on B; SIGTERM A a third of the way through.
	killAt := total / 3
	pub := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8, DisableCompression: true}}
	tick := time.NewTicker(time.Duration(float64(time.Second) / cfg.rate))
	defer tick.Stop()
	var posts sync.WaitGroup
	exited := make(chan time.Duration, 1)
	for seq := 0; seq < total; seq++ {
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-tick.C:
		}
		if seq == killAt {
			sigterm.Store(time.Now().UnixNano())
			if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				return res, err
			}
			go func() {
				t := time.Now()
				a.cmd.Wait()
				exited <- time.Since(t)
			}()
		}
		posts.Add(1)
		go func() {
			defer posts.Done()
			data := strconv.FormatInt(time.Now().UnixNano(), 10) + " seq=" + strconv.Itoa(seq)
			if err := postText(ctx, pub, b.base+cfg.publishPath, data); err != nil {
				failures.add(fmt.Errorf("post %d: %w", seq, err))
			}
		}()
	}
	posts.Wait()
	res.Published = total
	res.ShutdownTook = <-exited

	// Drain: until every client has every event, within a bound.
	deadline := time.Now().Add(cfg.drain)
	for time.Now().Before(deadline) && !allHave(clients) && !allGaveUp(clients) {
		time.Sleep(20 * time.Millisecond) // polling interval of a bounded wait
	}
	cancel()
	wg.Wait()

	var backs []time.Duration
	for _, c := range clients {
		if c.back > 0 {
			backs = append(backs, c.back)
		}
		if c.parted {
			res.Parted++
		}
		res.LastEnd = max(res.LastEnd, c.end)
		hurt := false
		for i := range c.seen {
			switch n := c.seen[i].Load(); {
			case n == 0:
				res.Lost++
				hurt = true
			case n > 1:
				res.Duplicated += int64(n) - 1
				hurt = true
			}
		}
		if hurt {
			res.ClientsHurt++
		}
	}
	res.Back = len(backs)
	slices.Sort(backs)
	if len(backs) > 0 {
		res.AllBack, res.BackP50 = backs[len(backs)-1], backs[len(backs)/2]
	}
	res.Reconnects = reconnects.Load()
	res.PeakPerSec = peakRate(attempts, 100*time.Millisecond)
	res.Errors, res.FirstErrors = failures.n.Load(), failures.first
	if res.Back < len(clients) {
		res.AllBack = 0 // not everybody came back: no such time
	}
	return res, nil
}

// consume reads events until the stream ends, counting each sequence
// number; after a reconnect (since > 0) the first event marks the client
// back.
func (c *restartClient) consume(p *sse.Parser, since int64) {
	for {
		ev, err := p.Next()
		if err != nil {
			return
		}
		if ev.ID != "" {
			c.lastID = ev.ID
		}
		_, after, ok := strings.Cut(ev.Data, " seq=")
		seq, err := strconv.Atoi(after)
		if !ok || err != nil || seq < 0 || seq >= len(c.seen) {
			continue
		}
		if since > 0 && c.back == 0 {
			c.back = time.Since(time.Unix(0, since))
		}
		c.seen[seq].Add(1)
	}
}

// allGaveUp reports whether no client will come back (Datastar's default).
func allGaveUp(clients []*restartClient) bool {
	for _, c := range clients {
		if !c.gaveUp.Load() {
			return false
		}
	}
	return true
}

// allHave reports whether every client has every event.
func allHave(clients []*restartClient) bool {
	for _, c := range clients {
		for i := range c.seen {
			if c.seen[i].Load() == 0 {
				return false
			}
		}
	}
	return true
}

// pause waits for d, or less if ctx ends; it reports whether d passed.
func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// peakRate is the most attempts in any window, per second.
func peakRate(at []time.Duration, window time.Duration) float64 {
	slices.Sort(at)
	best, j := 0, 0
	for i := range at {
		for at[i]-at[j] >= window {
			j++
		}
		best = max(best, i-j+1)
	}
	return float64(best) / window.Seconds()
}

func postText(ctx context.Context, c *http.Client, url, data string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(data))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "text/plain")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode/100 != 2 {
		return errors.New(resp.Status)
	}
	return nil
}

// reportRestart prints the runs of one round side by side, a column per
// client kind (with the ratio of the first two when there are two).
func reportRestart(w io.Writer, cfg config, kinds []clientKind, rs []restartResult) error {
	fmt.Fprintf(w, "ssebench restart %s: N=%d streams on A, %g posts/s to B for %v, A stopped after a third\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), cfg.n, cfg.rate, cfg.duration)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "\t")
	for _, k := range kinds {
		fmt.Fprintf(tw, "%s\t", k.label)
	}
	if len(kinds) == 2 {
		fmt.Fprint(tw, "ratio\t")
	}
	fmt.Fprintln(tw)
	row := func(name, format string, f func(r restartResult) float64) {
		fmt.Fprintf(tw, "%s\t", name)
		for _, r := range rs {
			fmt.Fprintf(tw, format+"\t", f(r))
		}
		if len(rs) == 2 {
			ratio := "-"
			if b := f(rs[1]); b > 0 {
				ratio = fmt.Sprintf("%.2f", f(rs[0])/b)
			}
			fmt.Fprintf(tw, "%s\t", ratio)
		}
		fmt.Fprintln(tw)
	}
	row("clients back", "%.0f", func(r restartResult) float64 { return float64(r.Back) })
	row("all back after (s)", "%.2f", func(r restartResult) float64 { return r.AllBack.Seconds() })
	row("back p50 (s)", "%.2f", func(r restartResult) float64 { return r.BackP50.Seconds() })
	row("peak reconnects/s", "%.0f", func(r restartResult) float64 { return r.PeakPerSec })
	row("reconnect attempts", "%.0f", func(r restartResult) float64 { return float64(r.Reconnects) })
	row("events lost", "%.0f", func(r restartResult) float64 { return float64(r.Lost) })
	row("events duplicated", "%.0f", func(r restartResult) float64 { return float64(r.Duplicated) })
	row("told a retry by A", "%.0f", func(r restartResult) float64 { return float64(r.Parted) })
	row("last stream on A ended (s)", "%.2f", func(r restartResult) float64 { return r.LastEnd.Seconds() })
	row("A's shutdown (s)", "%.2f", func(r restartResult) float64 { return r.ShutdownTook.Seconds() })
	row("errors", "%.0f", func(r restartResult) float64 { return float64(r.Errors) })
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range rs {
		for _, e := range r.FirstErrors {
			fmt.Fprintf(w, "%s error: %s\n", r.Kind, e)
		}
	}
	return nil
}

// runRestart runs the scenario -rounds times: with the spread and without
// it, or (-clients) once per client kind, and prints each round.
func runRestart(ctx context.Context, cfg config, w io.Writer) error {
	kinds := []clientKind{kindSpread, kindSame}
	if cfg.clients {
		kinds = clientKinds
	}
	var all []map[string]restartResult
	for range cfg.rounds {
		round := map[string]restartResult{}
		var results []restartResult
		for _, k := range kinds {
			r, err := restartRound(ctx, cfg, k)
			if err != nil {
				return err
			}
			round[k.name] = r
			results = append(results, r)
		}
		all = append(all, round)
		if !cfg.json {
			if err := reportRestart(w, cfg, kinds, results); err != nil {
				return err
			}
		}
	}
	if cfg.json {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"streams": cfg.n, "rate": cfg.rate, "duration": cfg.duration.String(), "rounds": all})
	}
	return nil
}
