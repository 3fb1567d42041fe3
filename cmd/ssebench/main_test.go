package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"sselab/app/sse"
)

// buildDir holds what the tests build; TestMain removes it.
var buildDir string

// sselabBinary builds sselab once for every test that runs it.
var sselabBinary = func() func(*testing.T) string {
	var once sync.Once
	var bin string
	var err error
	return func(t *testing.T) string {
		t.Helper()
		once.Do(func() {
			bin = filepath.Join(buildDir, "sselab")
			if out, berr := exec.Command("go", "build", "-o", bin, "sselab/cmd/sselab").CombinedOutput(); berr != nil {
				err = fmt.Errorf("go build: %v\n%s", berr, out)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		return bin
	}
}()

// The tool starts its baseline as `<itself> baseline-server`; under go test
// itself is this test binary, which must then serve the baseline too.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "baseline-server" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		defer stop()
		if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "ssebench-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	buildDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func TestRefusesTargetsOutsideLoopback(t *testing.T) {
	for _, url := range []string{"http://10.1.2.3:8080", "http://192.168.0.10", "http://[2001:db8::1]:80", "ftp://127.0.0.1"} {
		err := run(t.Context(), []string{"-url", url, "-load-cpu", "-1"}, &bytes.Buffer{}, &bytes.Buffer{})
		if err == nil || !(strings.Contains(err.Error(), "only loads loopback") || strings.Contains(err.Error(), "want http://127.0.0.1")) {
			t.Errorf("%s: got %v, want a refusal", url, err)
		}
	}
}

// A small run of the whole tool against sselab and the baseline: every
// event reaches every stream. A smoke test, not a measurement.
func TestSmallRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds sselab and runs two servers")
	}
	bin := sselabBinary(t)
	var out bytes.Buffer
	err := run(t.Context(), []string{"-sselab", bin, "-n", "40", "-rate", "5", "-duration", "1s", "-sources", "4",
		"-server-cpu", "-1", "-load-cpu", "-1", "-json"}, &out, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Baseline, Sselab result
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("%v in %s", err, out.String())
	}
	for _, r := range []result{rep.Baseline, rep.Sselab} {
		if r.Connected != 40 || r.Published != 5 || r.Delivered != 200 || r.DeliveredPct != 100 || r.Errors != 0 {
			t.Errorf("%s: %+v, want 40 streams each receiving 5 events", r.Name, r)
		}
		if r.P50 <= 0 || r.RSSPerStreamKB == 0 {
			t.Errorf("%s: latency %v and RSS per stream %v were not measured", r.Name, r.P50, r.RSSPerStreamKB)
		}
	}
}

func TestSendTime(t *testing.T) {
	for _, tt := range []struct {
		data string
		ns   int64
		ok   bool
	}{
		{"1763712000123456789 xxxx", 1763712000123456789, true},
		{"[12:00:00] anonymous: 1763712000123456789 xx", 1763712000123456789, true},
		{`<li class="msg"><time>12:00:00</time> <b>anonymous</b>: <span class="text">1763712000123456789 x</span></li>`, 1763712000123456789, true},
		{"17637120001234567890 twenty digits", 0, false},
		{"no time", 0, false},
	} {
		if ns, ok := sendTime(tt.data); ns != tt.ns || ok != tt.ok {
			t.Errorf("%q: got %d %v, want %d %v", tt.data, ns, ok, tt.ns, tt.ok)
		}
	}
}

// The -redis scenario at a small scale: sselab in memory mode beside
// sselab on a redis-server the tool starts; every event reaches every
// stream in both. A smoke test, not a measurement.
func TestSmallRedisRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds sselab and runs two servers and redis-server")
	}
	needRedis(t)
	bin := sselabBinary(t)
	var out bytes.Buffer
	err := run(t.Context(), []string{"-sselab", bin, "-redis", "-n", "40", "-rate", "5", "-duration", "1s", "-sources", "4",
		"-server-cpu", "-1", "-load-cpu", "-1", "-json"}, &out, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	var rep struct{ Memory, Redis result }
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("%v in %s", err, out.String())
	}
	for _, r := range []result{rep.Memory, rep.Redis} {
		if r.Connected != 40 || r.Published != 5 || r.Delivered != 200 || r.Errors != 0 {
			t.Errorf("%s: %+v, want 40 streams each receiving 5 events", r.Name, r)
		}
	}
	if c := rep.Redis.RedisConns; c < 2 || c > 16 {
		t.Errorf("the instance held %d Redis connections at most, want 2..16 (Pub/Sub and the pool)", c)
	}
	if rep.Redis.Name != "sselab redis" {
		t.Errorf("the second side is %q, want sselab redis", rep.Redis.Name)
	}
}

// -channels at a small scale: 40 streams over 4 channels, each broadcast
// posted to every channel, every event delivered, publish latency measured.
func TestSmallChannelsRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds sselab and runs a server")
	}
	bin := sselabBinary(t)
	var out bytes.Buffer
	err := run(t.Context(), []string{"-sselab", bin, "-baseline=false", "-channels", "4", "-n", "40", "-rate", "5", "-duration", "1s",
		"-sources", "4", "-server-cpu", "-1", "-load-cpu", "-1", "-json"}, &out, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	var rep struct{ Sselab result }
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("%v in %s", err, out.String())
	}
	if r := rep.Sselab; r.Connected != 40 || r.Published != 20 || r.Delivered != 200 || r.Errors != 0 || r.PublishP99 <= 0 {
		t.Errorf("%+v, want 40 streams over 4 channels, 20 posts, each reaching its 10 streams", r)
	}
	if err := run(t.Context(), []string{"-sselab", bin, "-channels", "4"}, &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
		t.Error("-channels with the baseline: want a refusal")
	}
}

// needRedis skips without redis-server, and fails under SSELAB_REQUIRE_ALL.
func needRedis(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil && os.Getenv("SSELAB_REDIS_SERVER") == "" {
		if os.Getenv("SSELAB_REQUIRE_ALL") == "1" {
			t.Fatal("redis-server not found, and SSELAB_REQUIRE_ALL=1")
		}
		t.Skip("redis-server not found on PATH (or set SSELAB_REDIS_SERVER)")
	}
}

// Two instances on one redis-server at a small scale: streams and posts
// are dealt out between them, and every event reaches every stream, on
// whichever instance it was posted. A smoke test, not a measurement.
func TestSmallTwoInstancesRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds sselab and runs three servers and redis-server")
	}
	needRedis(t)
	bin := sselabBinary(t)
	var out bytes.Buffer
	err := run(t.Context(), []string{"-sselab", bin, "-redis", "-instances", "2", "-n", "40", "-rate", "5", "-duration", "1s", "-sources", "4",
		"-server-cpu", "-1", "-load-cpu", "-1", "-json"}, &out, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Instances int
		Redis     result
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("%v in %s", err, out.String())
	}
	if r := rep.Redis; rep.Instances != 2 || r.Connected != 40 || r.Published != 5 || r.Delivered != 200 || r.Errors != 0 {
		t.Errorf("%d instances, %+v: want 2, and 40 streams each receiving 5 events", rep.Instances, r)
	}
	if err := run(t.Context(), []string{"-sselab", bin, "-instances", "2"}, &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
		t.Error("-instances 2 without -redis: want a refusal")
	}
}

// The restart scenario at a small scale: 30 streams move from instance A
// to B when A stops, with A's spread retry and with the same delay for
// all; every client comes back with every event once. A smoke test, not a
// measurement.
func TestSmallRestartRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds sselab and runs two servers and redis-server, twice")
	}
	round := restartRound1(t, "30")
	for name, r := range round {
		if r.Back != 30 || r.Published != 30 || r.Lost != 0 || r.Duplicated != 0 || r.Errors != 0 || r.AllBack <= 0 {
			t.Errorf("%s: %+v, want 30 clients back with all 30 events once", name, r)
		}
	}
	if with := round["spread"]; with.Parted != 30 {
		t.Errorf("spread: %d clients told a retry by A, want 30", with.Parted)
	}
}

// restartRound1 runs the restart scenario with n streams, one round, and
// returns its results by kind.
func restartRound1(t *testing.T, n string, args ...string) map[string]restartResult {
	t.Helper()
	needRedis(t)
	var out bytes.Buffer
	err := run(t.Context(), append([]string{"-sselab", sselabBinary(t), "-restart", "-n", n, "-rate", "10", "-duration", "3s", "-sources", "4",
		"-server-cpu", "-1", "-load-cpu", "-1", "-json"}, args...), &out, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Rounds []map[string]restartResult
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("%v in %s", err, out.String())
	}
	if len(rep.Rounds) != 1 {
		t.Fatalf("%d rounds in %s, want 1", len(rep.Rounds), out.String())
	}
	return rep.Rounds[0]
}

// The restart scenario with each client's own rules, at a small scale:
// every kind comes back with every event once, except Datastar's default,
// which a clean end stops for good.
func TestSmallRestartClientsRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds sselab and runs two servers and redis-server, once per client kind")
	}
	round := restartRound1(t, "20", "-clients")
	if len(round) != len(clientKinds) {
		t.Fatalf("round %+v, want each of %d kinds", round, len(clientKinds))
	}
	for name, r := range round {
		want := 20
		if name == "datastar_auto" {
			want = 0
		}
		if r.Back != want || r.Parted != 20 || r.Duplicated != 0 || r.Errors != 0 || want > 0 && r.Lost != 0 {
			t.Errorf("%s: %+v, want %d clients back, every event once", name, r, want)
		}
	}
}

// The rules as each client's source has them: which delay follows rule 8's
// parting block.
func TestClientKindsRules(t *testing.T) {
	block := []byte(": open\n\n" + sse.RetryBlock("the server is restarting", 3*time.Second).String())
	if !namedRetry(block) {
		t.Fatalf("rule 8's block %q: want its retry: named", block)
	}
	if namedRetry([]byte(": open\n\nretry: 3000\n\n")) {
		t.Fatal("retry: alone: want it not named")
	}
	const r = 3 * time.Second
	for range 100 {
		if d, ok := (&htmx4{}).parted(r, true, true); !ok || d < r*7/10 || d > r*13/10 {
			t.Fatalf("htmx 4 after a named retry: %v, want %v ±30%%", d, r)
		}
		if d, _ := (&htmx4{}).parted(r, true, false); d < 350*time.Millisecond || d > 650*time.Millisecond {
			t.Fatalf("htmx 4 after retry: alone: %v, want its own 500 ms ±30%%", d)
		}
	}
	if _, ok := (&datastar{}).parted(r, true, true); ok {
		t.Error("Datastar's default came back after a clean end")
	}
	ds := &datastar{always: true}
	got := []time.Duration{}
	d, _ := ds.parted(r, true, false)
	got = append(got, d)
	for {
		d, ok := ds.failed()
		if !ok {
			break
		}
		got = append(got, d)
	}
	if len(got) != 10 || got[0] != r || got[1] != 2*r || got[9] != 30*time.Second {
		t.Errorf("Datastar 'always': delays %v, want 10: the retry, then doubling to 30 s", got)
	}
}
