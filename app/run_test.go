package app

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
)

func TestPprofListener(t *testing.T) {
	addr, stop, err := servePprof("127.0.0.1:0", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	resp, err := http.Get("http://" + addr + "/debug/pprof/heap?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "# HeapInuse") {
		t.Errorf("got %d %.80q, want the heap profile", resp.StatusCode, body)
	}
}

func TestRunCommands(t *testing.T) {
	var out, errb bytes.Buffer
	if err := Run(context.Background(), []string{"help"}, func(string) string { return "" }, &out, &errb); err != nil {
		t.Errorf("help: %v", err)
	}
	// help lists the commands the demos bring, each by its name.
	for _, c := range commands(Demos()) {
		if !strings.Contains(out.String(), "sselab "+c.Name+" ") {
			t.Errorf("help: %q does not list sselab %s", out.String(), c.Name)
		}
	}
	if err := Run(context.Background(), []string{"explode"}, func(string) string { return "" }, &out, &errb); err == nil || !strings.Contains(err.Error(), `unknown command "explode"`) {
		t.Errorf("unknown command: got %v", err)
	}
	if err := Run(context.Background(), []string{"serve", "-h"}, func(string) string { return "" }, &out, &errb); err != nil || !strings.Contains(errb.String(), "-max-streams") {
		t.Errorf("serve -h: %v, flags %q", err, errb.String())
	}
}
