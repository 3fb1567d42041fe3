package app

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"sselab/app/hub"
)

// Config is everything `sselab serve` can be told.
type Config struct {
	Addr      string        // listen address
	Keepalive time.Duration // comment interval on long-lived streams
	Retry     time.Duration // retry: sent by the time feed
	History   int           // events kept per channel for replay
	// Bounds on what clients can make the server hold (see hub.Options).
	HistoryBytes int64         // all channels' history together
	ChannelBytes int64         // one channel's history
	MaxChannels  int           // channels held at once
	ChannelTTL   time.Duration // an idle channel with no listener is forgotten after this
	RedisMemory  int64         // with -redis: publishes refused while Redis uses more
	Queue        int           // events a subscriber may fall behind before it is dropped
	MaxStreams   int           // open streams; past it new ones are refused as rule 7 says
	MaxConns     int           // open connections, of every protocol; the longest waiting goes first (see conns)
	RedisURL     string        // channels through Redis when set
	SessionKey   string        // signs chat session cookies; empty: random, or shared through Redis
	SessionTTL   time.Duration // an inbox sign-in lasts this long
	JSON         bool          // token data must be JSON
	IDs          bool          // token events carry ids
	Debug        bool          // debug logging
	Pprof        string        // address of the pprof listener; empty: none
	TLS          bool          // serve HTTPS, with HTTP/2
	TLSCert      string        // certificate file for -tls; empty: made at start
	TLSKey       string        // its key file
	H2C          bool          // serve unencrypted HTTP/2 too, to a proxy that speaks it
}

// DefaultConfig is the configuration with no flags.
func DefaultConfig() Config {
	return Config{
		Addr:       "localhost:8080",
		Keepalive:  15 * time.Second,
		Retry:      time.Second,
		History:    hub.DefaultHistory,
		Queue:      hub.DefaultQueue,
		MaxStreams: 10000,
		MaxConns:   12000,

		HistoryBytes: hub.DefaultHistoryBytes,
		ChannelBytes: hub.DefaultChannelBytes,
		MaxChannels:  hub.DefaultMaxChannels,
		ChannelTTL:   hub.DefaultIdleTTL,
		RedisMemory:  hub.DefaultStoreBytes,
		SessionTTL:   24 * time.Hour,
	}
}

// parseServe reads the serve flags. Environment variables give defaults;
// flags win. The seed's -H -P -d -j -k -i are accepted beside the long ones.
func parseServe(args []string, getenv func(string) string, stderr io.Writer) (Config, error) {
	cfg := DefaultConfig()
	cfg.RedisURL = getenv("REDIS_URL")
	cfg.SessionKey = getenv("SSELAB_SESSION_KEY")
	if v := getenv("SSELAB_ADDR"); v != "" {
		cfg.Addr = v
	}
	var host, port string
	fs := flag.NewFlagSet("sselab serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Addr, "addr", cfg.Addr, "listen address, host:port (env SSELAB_ADDR)")
	fs.StringVar(&host, "H", "", "listen host (the seed's flag; overrides the host of -addr)")
	fs.StringVar(&port, "P", "", "listen port (the seed's flag; overrides the port of -addr)")
	fs.Var((*duration)(&cfg.Keepalive), "keepalive", "`duration` between keepalive comments on long-lived streams")
	fs.Func("k", "keepalive interval in milliseconds (the seed's flag; same as -keepalive)", func(s string) error {
		ms, err := strconv.Atoi(s)
		if err != nil || ms <= 0 {
			return errors.New("want a positive number of milliseconds")
		}
		cfg.Keepalive = time.Duration(ms) * time.Millisecond
		return nil
	})
	fs.Var((*duration)(&cfg.Retry), "retry", "reconnection `delay` the time feed asks browsers for")
	fs.IntVar(&cfg.History, "history", cfg.History, "events kept per channel for Last-Event-ID replay")
	fs.Var((*size)(&cfg.HistoryBytes), "history-bytes", "`size` of the history of all channels together, e.g. 64MiB; past it the oldest events go first")
	fs.Var((*size)(&cfg.ChannelBytes), "channel-bytes", "`size` of the history of one channel")
	fs.IntVar(&cfg.MaxChannels, "max-channels", cfg.MaxChannels, "channels held at once; past it, publishing to or listening on a new channel is refused")
	fs.Var((*duration)(&cfg.ChannelTTL), "channel-ttl", "a channel nobody listens to or publishes to is forgotten, with its history, after this `duration`")
	fs.Var((*size)(&cfg.RedisMemory), "redis-max-memory", "with -redis: refuse publishes while Redis uses more than this `size`")
	fs.IntVar(&cfg.Queue, "queue", cfg.Queue, "events a subscriber may fall behind before it is disconnected")
	fs.IntVar(&cfg.MaxStreams, "max-streams", cfg.MaxStreams, "open streams before new ones are refused (rule 7: 200, a comment, retry:, the end)")
	fs.IntVar(&cfg.MaxConns, "max-conns", cfg.MaxConns, "open connections of every protocol, a quarter of them waiting (idle, or not done with their handshake or first request); past it the one that waited longest goes first (lowered to fit the descriptor limit)")
	fs.StringVar(&cfg.RedisURL, "redis", cfg.RedisURL, "Redis URL, e.g. redis://localhost:6379/0 (env REDIS_URL); empty: in memory")
	fs.StringVar(&cfg.SessionKey, "session-key", cfg.SessionKey, "secret that signs chat session cookies (env SSELAB_SESSION_KEY); empty: random per process, or shared through Redis with -redis")
	fs.Var((*duration)(&cfg.SessionTTL), "session-ttl", "an inbox sign-in ends after this `duration`, its streams with it")
	fs.BoolVar(&cfg.JSON, "json", false, "token event data must be valid JSON")
	fs.BoolVar(&cfg.JSON, "j", false, "same as -json")
	fs.BoolVar(&cfg.IDs, "id", false, "token events carry ids")
	fs.BoolVar(&cfg.IDs, "i", false, "same as -id")
	fs.BoolVar(&cfg.Debug, "d", false, "debug logging")
	fs.StringVar(&cfg.Pprof, "pprof", "", "serve net/http/pprof on this address, e.g. localhost:6060 (keep it off public interfaces)")
	fs.BoolVar(&cfg.TLS, "tls", false, "serve HTTPS with HTTP/2 and HTTP/1.1, with a certificate made at start for localhost unless -tls-cert is given")
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "certificate file (PEM) for -tls")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "key file (PEM) for -tls")
	fs.BoolVar(&cfg.H2C, "h2c", false, "serve unencrypted HTTP/2 (h2c) beside HTTP/1.1, to a proxy in front that speaks it")
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if cfg.TLSCert != "" || cfg.TLSKey != "" {
		if cfg.TLSCert == "" || cfg.TLSKey == "" {
			return Config{}, errors.New("-tls-cert and -tls-key go together")
		}
		cfg.TLS = true
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("serve takes no arguments, got %q", fs.Args())
	}
	if host != "" || port != "" {
		h, p, err := net.SplitHostPort(cfg.Addr)
		if err != nil {
			return Config{}, fmt.Errorf("-addr %q: %w", cfg.Addr, err)
		}
		if host != "" {
			h = host
		}
		if port != "" {
			p = port
		}
		cfg.Addr = net.JoinHostPort(h, p)
	}
	switch {
	case cfg.History < 1:
		return Config{}, errors.New("-history must be at least 1")
	case cfg.Queue < 1:
		return Config{}, errors.New("-queue must be at least 1")
	case cfg.MaxStreams < 1:
		return Config{}, errors.New("-max-streams must be at least 1")
	case cfg.MaxConns < 1:
		return Config{}, errors.New("-max-conns must be at least 1")
	case cfg.MaxChannels < 1:
		return Config{}, errors.New("-max-channels must be at least 1")
	}
	return cfg, nil
}

// duration is a positive time.Duration flag; flag prints its default.
type duration time.Duration

func (d *duration) String() string { // 10m, not 10m0s
	s := time.Duration(*d).String()
	if t, ok := strings.CutSuffix(s, "m0s"); ok {
		s = t + "m"
	}
	if t, ok := strings.CutSuffix(s, "h0m"); ok {
		s = t + "h"
	}
	return s
}
func (d *duration) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil || v <= 0 {
		return errors.New("want a positive duration such as 15s or 500ms")
	}
	*d = duration(v)
	return nil
}

// size is a positive byte-size flag (65536, 512KiB, 64MiB, 1GiB); it
// prints in the largest unit that divides it.
type size int64

func (n *size) Set(s string) error { return byteSize(s, (*int64)(n)) }
func (n *size) String() string {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if *n != 0 && int64(*n)%u.mult == 0 {
			return strconv.FormatInt(int64(*n)/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(int64(*n), 10)
}

// byteSize reads a size such as 65536, 512KiB, 64MiB or 1GiB.
func byteSize(s string, n *int64) error {
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}, {"", 1}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseInt(num, 10, 64)
			if err != nil || v <= 0 || v > (1<<50)/u.mult {
				break
			}
			*n = v * u.mult
			return nil
		}
	}
	return errors.New("want a positive size such as 65536, 512KiB, 64MiB or 1GiB")
}
