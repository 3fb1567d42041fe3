package tests

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"sselab/app/doctor"
)

// Against sselab's own stream routes every check passes, or warns where
// the contract allows it (no ids on the time feed and the generator, no
// retry: field on channel streams, counts without ids).
func TestDoctorOnOwnRoutes(t *testing.T) {
	s := startServer(t, "-i", "-keepalive", "1s")
	if code, _, _ := do(t, "POST", s.URL+"/time/timeSwitch", ""); code != 200 {
		t.Fatalf("time switch: %d", code)
	}
	for _, tt := range []struct {
		path, publish string
		visits        bool     // visit /visits/ meanwhile, so that events come
		pass          []string // checks that must pass, beyond the headers'
	}{
		{path: "/tokens/doc/poll", publish: "/tokens/doc/ping", pass: []string{"flush", "keepalive", "ids", "replay"}},
		{path: "/chat/stream", publish: "/chat/post", pass: []string{"flush", "keepalive", "ids", "replay"}},
		{path: "/fragments/stream", publish: "/chat/post", pass: []string{"flush", "keepalive", "ids", "replay"}},
		{path: "/visits/subscribe", visits: true, pass: []string{"flush", "keepalive", "replay"}},
		{path: "/eventsource/event_sender?interval=200ms", pass: []string{"flush", "keepalive"}},
		{path: "/time/sendTime?mode=stream&interval=250ms", pass: []string{"flush", "keepalive", "retry"}},
		{path: "/time/sendTime", pass: []string{"retry"}},
	} {
		t.Run(tt.path, func(t *testing.T) {
			o := doctor.Options{URL: s.URL + tt.path, Timeout: 10 * time.Second}
			if tt.publish != "" {
				o.Publish = s.URL + tt.publish
			}
			stop := make(chan struct{})
			var visitors sync.WaitGroup
			defer func() { close(stop); visitors.Wait() }()
			if tt.visits {
				visitors.Add(1)
				go func() {
					defer visitors.Done()
					for {
						select {
						case <-stop:
							return
						case <-time.After(300 * time.Millisecond): // a visitor every 300 ms
						}
						if resp, err := http.Get(s.URL + "/visits/"); err == nil {
							io.Copy(io.Discard, resp.Body)
							resp.Body.Close()
						}
					}
				}()
			}
			r, err := doctor.Run(t.Context(), o)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range r.Checks {
				if c.Status == doctor.Fail {
					t.Errorf("%s %s: %s", c.Status, c.Name, c.Detail)
				}
			}
			for _, name := range append([]string{"status", "content-type", "cache-control", "content-encoding", "content-length", "headers"}, tt.pass...) {
				if c := r.Get(name); c.Status != doctor.Pass {
					t.Errorf("%s %s: %s; want pass", c.Status, c.Name, c.Detail)
				}
			}
		})
	}
}

// The command as the README gives it: one line per check, the exit status
// 0, 1 or 2, and -json.
func TestDoctorCommand(t *testing.T) {
	s := startServer(t, "-i", "-keepalive", "1s")
	run := func(args ...string) (string, int) {
		t.Helper()
		cmd := exec.Command(binary(t), append([]string{"doctor"}, args...)...)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		var exit *exec.ExitError
		switch {
		case err == nil:
			return out.String(), 0
		case errors.As(err, &exit):
			return out.String() + errOut.String(), exit.ExitCode()
		}
		t.Fatal(err)
		return "", -1
	}

	out, code := run("-timeout", "8s", "-publish", s.URL+"/tokens/cmd/ping", s.URL+"/tokens/cmd/poll")
	if code != 0 || !strings.Contains(out, "pass flush: 5 events posted") || strings.Count(out, "\n") != len(doctor.Names) {
		t.Errorf("a sound stream: exit %d, want 0, with a line per check:\n%s", code, out)
	}

	// -v: what doctor sees, as it happens, on stderr; stdout unchanged.
	cmd := exec.Command(binary(t), "doctor", "-v", "-timeout", "8s", s.URL+"/eventsource/event_sender?interval=100ms")
	var vout, verr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &vout, &verr
	if err := cmd.Run(); err != nil || strings.Count(vout.String(), "\n") != len(doctor.Names) ||
		!strings.Contains(verr.String(), "stream 1  headers  200 OK over HTTP/1.1") || strings.Count(verr.String(), "stream 1  event ") != 10 ||
		!strings.Contains(verr.String(), "stream 1  end      the server ended the response") {
		t.Errorf("-v: %v, want the verdicts on stdout and the run on stderr:\n%s\n%s", err, vout.String(), verr.String())
	}

	// A page is no stream: content-type fails.
	out, code = run("-timeout", "5s", s.URL+"/chat/")
	if code != 1 || !strings.Contains(out, "fail content-type: text/html") {
		t.Errorf("a page: exit %d, want 1, content-type failing:\n%s", code, out)
	}

	out, code = run("-json", "-timeout", "5s", s.URL+"/tokens/cmd/poll")
	var rep struct {
		URL    string
		Checks []struct{ Name, Status, Detail string }
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 0 || rep.URL != s.URL+"/tokens/cmd/poll" || len(rep.Checks) != len(doctor.Names) {
		t.Errorf("-json: exit %d, %v, got %+v from\n%s", code, err, rep, out)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String() + "/x"
	ln.Close()
	if out, code = run("-timeout", "5s", closed); code != 2 || !strings.Contains(out, "could not reach") {
		t.Errorf("nobody listening: exit %d, want 2:\n%s", code, out)
	}
	for _, args := range [][]string{{}, {"-timeout", "soon", s.URL}, {"a", "b"}, {"not a url"}} {
		if out, code = run(args...); code != 2 {
			t.Errorf("doctor %q: exit %d, want 2:\n%s", args, code, out)
		}
	}
}
