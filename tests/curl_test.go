package tests

import (
	"html"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// curlLines are the curl command lines of the README's route table and of
// the home page's, as a reader would paste them.
func curlLines(t *testing.T, base string) map[string][]string {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	lines := map[string][]string{}
	// A line may first sign in, into a cookie jar of its own: j=$(mktemp) && curl ...
	inline := regexp.MustCompile("`((?:j=\\$\\(mktemp\\) && )?curl [^`]+)`")
	for line := range strings.Lines(string(readme)) {
		if strings.HasPrefix(line, "| `") {
			for _, m := range inline.FindAllStringSubmatch(line, -1) {
				lines["README"] = append(lines["README"], m[1])
			}
		}
	}
	_, _, home := do(t, http.MethodGet, base+"/", "")
	for _, m := range regexp.MustCompile(`<code class="curl">(.*?)</code>`).FindAllStringSubmatch(home, -1) {
		lines["home page"] = append(lines["home page"], html.UnescapeString(m[1]))
	}
	if len(lines["README"]) < 20 || len(lines["home page"]) < 20 {
		t.Fatalf("found %d README lines and %d home page lines", len(lines["README"]), len(lines["home page"]))
	}
	return lines
}

// Every curl line of the README's route table and of the home page, run
// with bash -c as written (the README's host:port replaced by the test
// server's), answers 2xx or 3xx, a stream line streams, and the token
// lines deliver what they say to a listener. Each source gets a fresh
// server; its stream lines run first, side by side, then the rest in order.
func TestCurlLinesAsWritten(t *testing.T) {
	requireTool(t, "SSELAB_CURL", "curl")
	t.Parallel()
	for _, source := range []string{"README", "home page"} {
		t.Run(source, func(t *testing.T) {
			s := startServer(t, "-keepalive", "500ms")
			lines := curlLines(t, s.URL)
			host := strings.TrimPrefix(s.URL, "http://")
			listener := follow(t, s.URL+"/tokens/demo/poll")
			eventually(t, 5*time.Second, "the demo token's listener", func() bool { return listeners(t, s.URL) >= 1 })
			var streams, rest []string
			for _, line := range lines[source] {
				line = strings.ReplaceAll(line, "localhost:8080", host)
				if strings.Contains(line, " -N ") {
					streams = append(streams, line)
				} else {
					rest = append(rest, line)
				}
			}
			var wg sync.WaitGroup
			for _, line := range streams {
				wg.Add(1)
				go func() { defer wg.Done(); runCurl(t, line, true) }()
			}
			wg.Wait()
			for _, line := range rest {
				runCurl(t, line, false)
			}
			got := map[string]bool{}
			deadline := time.After(5 * time.Second)
		read:
			for !got["ping 42"] {
				select {
				case ev := <-listener:
					got[ev.Type+" "+ev.Data] = true
				case <-deadline:
					break read
				}
			}
			if !got["ping 42"] {
				t.Errorf("the listener of token demo got %v, want the ping 42 that `curl -d 42 …/ping` sends", got)
			}
		})
	}
}

// curlHome holds a curlrc with what every line gets, so that the lines
// themselves run as written: a stream is read for 6 s (the buffered
// generator's 4.5 s included), and the status is printed last.
var curlHome = sync.OnceValue(func() string {
	dir, _ := os.MkdirTemp("", "sselab-curl-")
	os.WriteFile(filepath.Join(dir, ".curlrc"), []byte("max-time = 6\nsilent\nwrite-out = \"\\n%{http_code}\\n\"\n"), 0o644)
	return dir
})

func runCurl(t *testing.T, line string, stream bool) {
	cmd := exec.Command("bash", "-c", line)
	cmd.Env = append(os.Environ(), "CURL_HOME="+curlHome(), "HOME="+curlHome())
	out, err := cmd.Output()
	var exit *exec.ExitError
	if err != nil && !(stream && asExit(err, &exit) && exit.ExitCode() == 28) { // 28: the time was up
		t.Errorf("%s: %v\n%s", line, err, out)
		return
	}
	body := strings.TrimRight(string(out), "\n")
	code := body[strings.LastIndexByte(body, '\n')+1:]
	if code == "" || (code[0] != '2' && code[0] != '3') {
		t.Errorf("%s: status %q\n%s", line, code, out)
	}
	if stream && !strings.Contains(body, "data:") && !strings.Contains(body, "retry:") && !strings.Contains(body, ": keepalive") {
		t.Errorf("%s: nothing on the stream\n%s", line, out)
	}
}

func asExit(err error, target **exec.ExitError) bool {
	e, ok := err.(*exec.ExitError)
	*target = e
	return ok
}

// listeners is how many token streams are open.
func listeners(t *testing.T, base string) float64 {
	return metric(t, base, `sselab_open_streams{route="/tokens/:token/poll"}`)
}
