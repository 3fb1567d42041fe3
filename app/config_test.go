package app

import (
	"io"
	"testing"
	"time"
)

func TestParseServe(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want func(Config) bool
	}{
		{"defaults", nil, nil, func(c Config) bool {
			return c.Addr == "localhost:8080" && c.Keepalive == 15*time.Second && c.History == 1000 && c.MaxStreams == 10000
		}},
		{"env addr", nil, map[string]string{"SSELAB_ADDR": ":9000", "REDIS_URL": "redis://x"}, func(c Config) bool {
			return c.Addr == ":9000" && c.RedisURL == "redis://x"
		}},
		{"flag beats env", []string{"-addr", ":1"}, map[string]string{"SSELAB_ADDR": ":9000"}, func(c Config) bool { return c.Addr == ":1" }},
		{"seed host and port", []string{"-H", "0.0.0.0", "-P", "8888"}, nil, func(c Config) bool { return c.Addr == "0.0.0.0:8888" }},
		{"seed -k is milliseconds", []string{"-k", "250"}, nil, func(c Config) bool { return c.Keepalive == 250*time.Millisecond }},
		{"-keepalive", []string{"-keepalive", "2s"}, nil, func(c Config) bool { return c.Keepalive == 2*time.Second }},
		{"seed -j -i", []string{"-j", "-i"}, nil, func(c Config) bool { return c.JSON && c.IDs }},
		{"long -json -id", []string{"-json", "-id"}, nil, func(c Config) bool { return c.JSON && c.IDs }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseServe(tt.args, env(tt.env), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if !tt.want(c) {
				t.Errorf("got %+v", c)
			}
		})
	}
	for _, bad := range [][]string{{"-k", "0"}, {"-keepalive", "-1s"}, {"-history", "0"}, {"-max-streams", "0"}, {"extra"}, {"-retry", "x"}} {
		if _, err := parseServe(bad, env(nil), io.Discard); err == nil {
			t.Errorf("%q: got no error, want one", bad)
		}
	}
}

func FuzzByteSize(f *testing.F) {
	for _, s := range []string{"64MiB", "65536", "1GiB", "0", "-1KiB", "99999999999GiB", "MiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var n int64
		if err := byteSize(s, &n); err == nil && (n <= 0 || n > 1<<50) {
			t.Fatalf("%q: accepted as %d", s, n)
		}
	})
}
