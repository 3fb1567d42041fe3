package app

import (
	"errors"
	"flag"
	"io"
	"os"
	"regexp"
	"strings"
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
	for _, bad := range [][]string{{"-k", "0"}, {"-keepalive", "-1s"}, {"-history", "0"}, {"-max-streams", "0"}, {"-max-channels", "0"}, {"-queue", "0"}, {"-history-bytes", "0"}, {"extra"}, {"-retry", "x"}} {
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

// TestReadmeFlagDefaults holds the README's flags table to what
// `sselab serve -h` prints: each default is written once, in the code.
func TestReadmeFlagDefaults(t *testing.T) {
	var help strings.Builder
	if _, err := parseServe([]string{"-h"}, func(string) string { return "" }, &help); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("serve -h: %v", err)
	}
	printed := map[string]string{} // flag -> its printed default
	var name string
	for _, line := range strings.Split(help.String(), "\n") {
		if f, ok := strings.CutPrefix(line, "  -"); ok {
			name = strings.FieldsFunc(f, func(r rune) bool { return r == ' ' || r == '\t' })[0]
			printed[name] = ""
		}
		if _, d, ok := strings.Cut(line, "(default "); ok && name != "" {
			printed[name] = strings.Trim(strings.TrimSuffix(d, ")"), `"`)
		}
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Skipf("no README beside the module: %v", err)
	}
	_, table, _ := strings.Cut(string(readme), "| Flag | Default | Meaning |")
	rows := regexp.MustCompile("(?m)^\\| `-([a-z0-9-]+)[^|]*\\| *(`([^`]*)`)?[^|]*\\|").FindAllStringSubmatch(table, -1)
	if len(rows) < 15 {
		t.Fatalf("found %d rows in the README's flags table", len(rows))
	}
	for _, r := range rows {
		flagName, want := r[1], r[3]
		got, ok := printed[flagName]
		if !ok {
			t.Errorf("README lists -%s; serve -h does not", flagName)
			continue
		}
		if got != want {
			t.Errorf("-%s: README says default %q, serve -h prints %q", flagName, want, got)
		}
		delete(printed, flagName)
	}
	for _, short := range []string{"H", "P", "k", "j", "i", "tls-key"} { // listed beside their long names
		delete(printed, short)
	}
	for f := range printed {
		t.Errorf("serve -h has -%s; the README's flags table does not", f)
	}
}
