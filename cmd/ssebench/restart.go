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
	Spread       bool          `json:"spread"`
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
	end    time.Duration // since SIGTERM, when its stream on A ended
	back   time.Duration // since SIGTERM, when its first event from B came; 0: not back
}

// restartRound runs the scenario once.
func restartRound(ctx context.Context, cfg config, spread bool) (restartResult, error) {
	res := restartResult{Spread: spread, Streams: cfg.n}
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
			p := sse.NewParser(l.conn)
			c.consume(p, 0)
			l.conn.Close()
			c.end = time.Since(time.Unix(0, sigterm.Load()))
			delay := sameRetry
			r, ok := p.Retry()
			if c.parted = ok; ok && spread {
				delay = r
			}
			for rctx.Err() == nil {
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
					delay = time.Second
					continue
				}
				// Closing the connection when the run ends unblocks the read.
				stop := context.AfterFunc(rctx, func() { nl.conn.Close() })
				c.consume(sse.NewParser(nl.conn), sigterm.Load())
				stop()
				nl.conn.Close()
				delay = time.Second
			}
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
	for time.Now().Before(deadline) && !allHave(clients) {
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

// reportRestart prints the runs with and without the spread side by side.
func reportRestart(w io.Writer, cfg config, with, without restartResult) error {
	fmt.Fprintf(w, "ssebench restart %s: N=%d streams on A, %g posts/s to B for %v, A stopped after a third\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), cfg.n, cfg.rate, cfg.duration)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "\tspread (rule 8)\tsame %v for all\tratio\t\n", sameRetry)
	row := func(name string, a, b float64, format string) {
		ratio := "-"
		if b > 0 {
			ratio = fmt.Sprintf("%.2f", a/b)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", name, fmt.Sprintf(format, a), fmt.Sprintf(format, b), ratio)
	}
	row("clients back", float64(with.Back), float64(without.Back), "%.0f")
	row("all back after (s)", with.AllBack.Seconds(), without.AllBack.Seconds(), "%.2f")
	row("back p50 (s)", with.BackP50.Seconds(), without.BackP50.Seconds(), "%.2f")
	row("peak reconnects/s", with.PeakPerSec, without.PeakPerSec, "%.0f")
	row("reconnect attempts", float64(with.Reconnects), float64(without.Reconnects), "%.0f")
	row("events lost", float64(with.Lost), float64(without.Lost), "%.0f")
	row("events duplicated", float64(with.Duplicated), float64(without.Duplicated), "%.0f")
	row("told a retry by A", float64(with.Parted), float64(without.Parted), "%.0f")
	row("last stream on A ended (s)", with.LastEnd.Seconds(), without.LastEnd.Seconds(), "%.2f")
	row("A's shutdown (s)", with.ShutdownTook.Seconds(), without.ShutdownTook.Seconds(), "%.2f")
	row("errors", float64(with.Errors), float64(without.Errors), "%.0f")
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range []restartResult{with, without} {
		for _, e := range r.FirstErrors {
			fmt.Fprintf(w, "spread=%v error: %s\n", r.Spread, e)
		}
	}
	return nil
}

// runRestart runs the scenario with the spread and without it, -rounds
// times, and prints each round.
func runRestart(ctx context.Context, cfg config, w io.Writer) error {
	var all []map[string]restartResult
	for range cfg.rounds {
		with, err := restartRound(ctx, cfg, true)
		if err != nil {
			return err
		}
		without, err := restartRound(ctx, cfg, false)
		if err != nil {
			return err
		}
		all = append(all, map[string]restartResult{"spread": with, "same_retry": without})
		if !cfg.json {
			if err := reportRestart(w, cfg, with, without); err != nil {
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
