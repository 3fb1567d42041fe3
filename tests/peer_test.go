package tests

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	gosse "github.com/tmaxmax/go-sse"

	"sselab/app/doctor"
)

// Doctor on a peer: a server built the way github.com/tmaxmax/go-sse's
// README builds one (its default provider, Joe, with a FiniteReplayer that
// numbers the events), taking posts at /publish. The README shows what
// doctor says; this test keeps that true.
func TestDoctorOnGoSSE(t *testing.T) {
	skipShort(t)
	if raceDetector {
		// go-sse v0.11.0's Joe writes a replay to a response from its own
		// goroutine, after the handler may have returned ("superfluous
		// response.WriteHeader call" in every run): -race reports it, now
		// and then, as a race in the library. .ci/run runs this test
		// without -race too.
		t.Skip("go-sse writes to a response after its handler returned: a data race in the library; run without -race")
	}
	replayer, err := gosse.NewFiniteReplayer(100, true)
	if err != nil {
		t.Fatal(err)
	}
	srv := &gosse.Server{Provider: &gosse.Joe{Replayer: replayer}}
	mux := http.NewServeMux()
	mux.Handle("GET /events", srv)
	mux.HandleFunc("POST /publish", func(w http.ResponseWriter, r *http.Request) {
		m := &gosse.Message{}
		m.AppendData(r.FormValue("data"))
		if err := srv.Publish(m); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	hs := httptest.NewServer(mux)
	defer hs.Close()
	defer srv.Shutdown(t.Context())

	r, err := doctor.Run(t.Context(), doctor.Options{URL: hs.URL + "/events", Publish: hs.URL + "/publish", Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var report strings.Builder
	for _, c := range r.Checks {
		fmt.Fprintf(&report, "%s %s: %s\n", c.Status, c.Name, c.Detail)
	}
	t.Logf("go-sse:\n%s", report.String())
	// go-sse sends its headers with the first event (its Upgrade says
	// so; its first bytes come with them), no Cache-Control, no keepalive
	// of its own and no retry:.
	want := map[string]doctor.Status{
		"status": doctor.Pass, "content-type": doctor.Pass, "cache-control": doctor.Warn, "content-encoding": doctor.Pass,
		"content-length": doctor.Pass, "headers": doctor.Fail, "first-bytes": doctor.Pass, "flush": doctor.Pass, "keepalive": doctor.Warn,
		"retry": doctor.Warn, "ids": doctor.Pass, "replay": doctor.Pass,
	}
	for _, c := range r.Checks {
		if c.Status != want[c.Name] {
			t.Errorf("%s: got %s, want %s\n%s", c.Name, c.Status, want[c.Name], report.String())
		}
	}
}
