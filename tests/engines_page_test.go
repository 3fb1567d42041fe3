package tests

import (
	"encoding/json"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"sselab/views"
)

// enginesTable is the page's measured table, beside the handler that
// embeds it.
const enginesTable = "../handlers/engines.json"

// The /engines/ page in each engine and protocol: every probe answers, and
// the answers are the ones its table shows for that engine, so the table
// cannot drift from what the engines do. With SSELAB_UPDATE_ENGINES=1 the
// test writes the table from what it measured instead (then read the diff).
func TestEnginesPage(t *testing.T) {
	var mu sync.Mutex
	got := views.EnginesMeasured{}
	update := os.Getenv("SSELAB_UPDATE_ENGINES") == "1"
	var want views.EnginesMeasured
	raw, err := os.ReadFile(enginesTable)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatalf("%s: %v", enginesTable, err)
	}
	t.Cleanup(func() {
		if !update || t.Failed() {
			return
		}
		out, _ := json.MarshalIndent(got, "", "  ")
		if err := os.WriteFile(enginesTable, append(out, '\n'), 0o644); err != nil {
			t.Error(err)
		}
	})
	inEachEngineAndProtocol(t, nil, func(t *testing.T, b *tab, s *server) {
		column := b.engine + "/" + map[bool]string{false: "http1", true: "tls"}[strings.HasPrefix(s.URL, "https:")]
		b.Go(s.URL + "/engines/")
		b.Until(60*time.Second, "every probe answered", `document.body.dataset.probed === "1"`)
		b.Click("bfcache")
		b.Until(20*time.Second, "the back/forward cache probe answered", `location.pathname === "/engines/" &&
			(window.engineAnswers?.bfcache ?? "…") !== "…"`)
		var answers map[string]string
		b.Eval(`window.engineAnswers`, &answers)
		// What the page shows is what it measured.
		for _, p := range views.EngineProbes {
			if cell := b.Text("yours-" + p.ID); cell != answers[p.ID] {
				t.Errorf("%s: %s shows %q, measured %q", column, p.ID, cell, answers[p.ID])
			}
		}
		mu.Lock()
		defer mu.Unlock()
		for _, p := range views.EngineProbes {
			a := answers[p.ID]
			if a == "" || a == "…" || strings.HasPrefix(a, "error") || strings.Contains(a, "within") {
				t.Errorf("%s: %s has no answer: %q", column, p.ID, a)
			}
			if got[p.ID] == nil {
				got[p.ID] = map[string]string{}
			}
			got[p.ID][column] = a
			if !update && want[p.ID][column] != a {
				t.Errorf("%s: %s answered %q; the table says %q (measure again: SSELAB_UPDATE_ENGINES=1 go test ./tests/ -run TestEnginesPage)",
					column, p.ID, a, want[p.ID][column])
			}
		}
	})
}

// The table has a cell for every probe in every column: none is left
// empty by an engine's run that did not happen.
func TestEnginesTableComplete(t *testing.T) {
	raw, err := os.ReadFile(enginesTable)
	if err != nil {
		t.Fatal(err)
	}
	var m views.EnginesMeasured
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	var missing []string
	for _, p := range views.EngineProbes {
		for _, c := range views.EngineColumns {
			if m[p.ID][c.Key] == "" {
				missing = append(missing, p.ID+" in "+c.Key)
			}
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("%s has no answer for %s", enginesTable, strings.Join(missing, ", "))
	}
}
