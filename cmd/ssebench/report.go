package main

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"slices"
	"text/tabwriter"
	"time"
)

// report prints the median of each figure over the rounds, sselab beside
// the baseline, with ratios.
func report(w io.Writer, cfg config, rounds [][2]result) error {
	base, sut := median(rounds, 0), median(rounds, 1)
	left, right, compare := "baseline", "sselab", cfg.baseline
	if cfg.redis {
		left, right, compare = "memory", "redis", true
	}
	if cfg.json {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{
			"date": time.Now().UTC().Format(time.RFC3339), "cpus": runtime.NumCPU(),
			"streams": cfg.n, "rate": cfg.rate, "duration": cfg.duration.String(), "payload": cfg.payload,
			"rounds": cfg.rounds, "instances": cfg.instances, left: base, right: sut,
		})
	}
	if cfg.instances > 1 {
		right = fmt.Sprintf("redis, %d instances", cfg.instances)
	}
	fmt.Fprintf(w, "ssebench %s, %d CPUs, N=%d streams, %g broadcasts/s for %v, %d-byte payload, %d round(s)\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.NumCPU(), cfg.n, cfg.rate, cfg.duration, cfg.payload, cfg.rounds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "\t%s\t%s\tratio\t\n", left, right)
	row := func(name string, b, s float64, format string) {
		ratio := "-"
		if b > 0 && compare {
			ratio = fmt.Sprintf("%.2f", s/b)
		}
		bs := "-"
		if compare {
			bs = fmt.Sprintf(format, b)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", name, bs, fmt.Sprintf(format, s), ratio)
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	row("streams connected", float64(base.Connected), float64(sut.Connected), "%.0f")
	row("connect all (s)", base.ConnectAll.Seconds(), sut.ConnectAll.Seconds(), "%.2f")
	row("fan-out p50 (ms)", ms(base.P50), ms(sut.P50), "%.2f")
	row("fan-out p99 (ms)", ms(base.P99), ms(sut.P99), "%.2f")
	row("fan-out max (ms)", ms(base.Max), ms(sut.Max), "%.2f")
	row("publish p99 (ms)", ms(base.PublishP99), ms(sut.PublishP99), "%.2f")
	row("deliveries/s", base.DeliveriesPerSec, sut.DeliveriesPerSec, "%.0f")
	row("delivered (%)", base.DeliveredPct, sut.DeliveredPct, "%.2f")
	row("RSS per stream (kB)", base.RSSPerStreamKB, sut.RSSPerStreamKB, "%.1f")
	row("CPU per delivery (µs)", us(base.CPUPerDelivery), us(sut.CPUPerDelivery), "%.2f")
	if cfg.redis {
		fmt.Fprintf(tw, "Redis connections (most per instance)\t-\t%d\t-\t\n", sut.RedisConns)
	}
	row("errors", float64(base.Errors), float64(sut.Errors), "%.0f")
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range []result{base, sut} {
		for _, e := range r.FirstErrors {
			fmt.Fprintf(w, "%s error: %s\n", r.Name, e)
		}
	}
	return nil
}

// median takes each figure's median over the rounds (side 0: baseline).
func median(rounds [][2]result, side int) result {
	out := rounds[len(rounds)/2][side]
	pick := func(get func(result) float64) float64 {
		var v []float64
		for _, r := range rounds {
			v = append(v, get(r[side]))
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	d := func(get func(result) time.Duration) time.Duration {
		return time.Duration(pick(func(r result) float64 { return float64(get(r)) }))
	}
	out.ConnectAll = d(func(r result) time.Duration { return r.ConnectAll })
	out.P50 = d(func(r result) time.Duration { return r.P50 })
	out.P99 = d(func(r result) time.Duration { return r.P99 })
	out.Max = d(func(r result) time.Duration { return r.Max })
	out.PublishP99 = d(func(r result) time.Duration { return r.PublishP99 })
	out.CPUPerDelivery = d(func(r result) time.Duration { return r.CPUPerDelivery })
	out.RSSPerStreamKB = pick(func(r result) float64 { return r.RSSPerStreamKB })
	out.DeliveriesPerSec = pick(func(r result) float64 { return r.DeliveriesPerSec })
	out.DeliveredPct = pick(func(r result) float64 { return r.DeliveredPct })
	out.RedisConns = int(pick(func(r result) float64 { return float64(r.RedisConns) }))
	return out
}
