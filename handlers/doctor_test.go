package handlers_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"sselab/app/doctor"
	"sselab/app/sse"
	"sselab/handlers"
	"sselab/views"
)

// doctorServer serves the doctor's routes and two streams of the test's
// own to check, on a real listener (a run reaches its target through the
// server's own address): /three, three events with ids, then the end; and
// /quiet, which holds until the client leaves.
func doctorServer(t *testing.T) *httptest.Server {
	t.Helper()
	doc := handlers.NewDoctor(time.Second, nil, []views.DoctorTarget{
		{Name: "three", Route: "/three", Path: "/three"},
		{Name: "quiet", Route: "/quiet", Path: "/quiet"},
	})
	e := echo.New()
	e.GET("/doctor/run", doc.Run)
	e.GET("/doctor/", doc.Page)
	e.GET("/three", func(c echo.Context) error {
		s, err := sse.Open(c.Response())
		if err != nil {
			return err
		}
		for i := range 3 {
			if err := s.Send(sse.Event{ID: string(rune('1' + i)), Data: "tick"}); err != nil {
				return err
			}
		}
		return nil
	})
	e.GET("/quiet", func(c echo.Context) error {
		if _, err := sse.Open(c.Response()); err != nil {
			return err
		}
		<-c.Request().Context().Done()
		return nil
	})
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return srv
}

// readEvents reads the run's events until done or failed (or the end).
func readEvents(t *testing.T, resp *http.Response) []sse.Event {
	t.Helper()
	var evs []sse.Event
	p := sse.NewParser(resp.Body)
	for {
		ev, err := p.Next()
		if err != nil {
			return evs
		}
		evs = append(evs, ev)
		if ev.Type == "done" || ev.Type == "failed" {
			return evs
		}
	}
}

// A run streams started, what doctor sees as it sees it, one check event
// per check in doctor's order, and done with the counts.
func TestDoctorRun(t *testing.T) {
	srv := doctorServer(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/doctor/run?target=three", nil)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	evs := readEvents(t, resp)
	if len(evs) == 0 || evs[0].Type != "started" {
		t.Fatalf("events %+v, want started first", evs)
	}
	var started map[string]string
	if err := json.Unmarshal([]byte(evs[0].Data), &started); err != nil || started["url"] != srv.URL+"/three" {
		t.Errorf("started %q, want the run's URL %s/three", evs[0].Data, srv.URL)
	}
	var checks []string
	seen := 0
	for _, ev := range evs[1:] {
		switch ev.Type {
		case "seen":
			var s struct {
				Stream int
				What   string
			}
			if err := json.Unmarshal([]byte(ev.Data), &s); err != nil || s.What == "" {
				t.Errorf("seen %q: %v", ev.Data, err)
			}
			seen++
		case "check":
			var c doctor.Check
			if err := json.Unmarshal([]byte(ev.Data), &c); err != nil {
				t.Errorf("check %q: %v", ev.Data, err)
			}
			checks = append(checks, c.Name)
		}
	}
	if seen < 4 { // the headers and three events, at least
		t.Errorf("%d seen events, want the headers and each event", seen)
	}
	if strings.Join(checks, " ") != strings.Join(doctor.Names, " ") {
		t.Errorf("checks %v, want %v", checks, doctor.Names)
	}
	if last := evs[len(evs)-1]; last.Type != "done" || !strings.Contains(last.Data, " pass, ") {
		t.Errorf("last event %+v, want done with the counts", last)
	}
}

// from is a client of srv whose connections come from 127.0.0.n: another
// visitor, as the server sees it.
func from(srv *httptest.Server, n int) *http.Client {
	local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(n))}
	return &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{LocalAddr: local}).DialContext}}
}

// Only the doctor's own targets can be checked (the page cannot make the
// server connect anywhere else), one run per visitor at a time, and no
// more than DoctorRuns at once: a run past them is refused the rule 7 way.
func TestDoctorRunRefusals(t *testing.T) {
	srv := doctorServer(t)
	for _, q := range []string{"", "?target=http://example.com/", "?target=generator"} {
		resp, err := srv.Client().Get(srv.URL + "/doctor/run" + q)
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(t, resp)
		wantStatus(t, resp.StatusCode, http.StatusBadRequest, body)
		wantContains(t, body, "target must be one of three, quiet")
	}

	// DoctorRuns runs of a stream that does not end: each holds its slot
	// until its request ends, and the next is refused.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var held []*http.Response
	for i := range handlers.DoctorRuns {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/doctor/run?target=quiet", nil)
		resp, err := from(srv, i+1).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := sse.NewParser(resp.Body).Next()
		if err != nil || ev.Type != "started" {
			t.Fatalf("run: %+v %v, want started", ev, err)
		}
		held = append(held, resp)
		if i == 0 { // the same visitor again, while its run is under way
			resp, err := from(srv, 1).Get(srv.URL + "/doctor/run?target=three")
			if err != nil {
				t.Fatal(err)
			}
			body := readAll(t, resp)
			wantStatus(t, resp.StatusCode, http.StatusOK, body)
			wantContains(t, body, "a doctor run of yours (from 127.0.0.1) is under way: one at a time")
			wantContains(t, body, "retry: ")
		}
	}
	resp, err := from(srv, handlers.DoctorRuns+1).Get(srv.URL + "/doctor/run?target=three")
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, resp)
	wantStatus(t, resp.StatusCode, http.StatusOK, body)
	wantContains(t, body, "doctor runs are under way (the limit)")
	wantContains(t, body, "retry: ")
	cancel()
	for _, r := range held {
		r.Body.Close()
	}
	// The slots are free again once those runs' requests ended.
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := srv.Client().Get(srv.URL + "/doctor/run?target=three")
		if err != nil {
			t.Fatal(err)
		}
		if body := readAll(t, resp); strings.Contains(body, "event: done") {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("5 s after the runs' clients left, a run still gets %q", body)
		}
	}
}

// The page lists the targets it was given, and DoctorTargets drops those
// whose routes are not served: a deleted demo takes its targets with it.
func TestDoctorPageAndTargets(t *testing.T) {
	srv := doctorServer(t)
	resp, err := srv.Client().Get(srv.URL + "/doctor/")
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, resp)
	wantStatus(t, resp.StatusCode, http.StatusOK, body)
	wantContains(t, body, `value="three"`)

	all := handlers.DoctorTargets(map[string]bool{"/eventsource/event_sender": true, "/tokens/:token/poll": true})
	some := handlers.DoctorTargets(map[string]bool{"/tokens/:token/poll": true})
	if len(all) != 3 || len(some) != 1 || some[0].Name != "tokens" {
		t.Errorf("DoctorTargets: %d with every route, %+v with the tokens' only", len(all), some)
	}
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
