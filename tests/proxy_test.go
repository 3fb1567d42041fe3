package tests

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"sselab/app/doctor"
)

// The proxy lab: a real nginx (and Caddy) from Debian's packages in front
// of sselab on loopback, with a config the test writes, and what doctor
// says through it. The README's deployment section gives the settings that
// pass here.

// waitListening waits until something accepts connections on addr.
func waitListening(t *testing.T, addr string, exited <-chan struct{}, log func() string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		select {
		case <-exited:
			t.Fatalf("the proxy exited at start:\n%s", log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listening on %s within 10s\n%s", addr, log())
		}
		time.Sleep(20 * time.Millisecond) // polling interval while it starts
	}
}

// startProxy runs cmd (a proxy listening on port) until the test ends.
func startProxy(t *testing.T, cmd *exec.Cmd, port string, log func() string) string {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		// SIGTERM: nginx's master stops its workers before it exits.
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	waitListening(t, "127.0.0.1:"+port, exited, log)
	return "http://127.0.0.1:" + port
}

// nginxPrefix is the nginx.conf shared by every lab; %s are the prefix
// directory, the user line, the port, the upstream and the location's
// own directives.
const nginxConf = `%s
worker_processes 1;
error_log %[2]s/error.log warn;
pid %[2]s/nginx.pid;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path %[2]s/body;
  proxy_temp_path %[2]s/proxy;
  fastcgi_temp_path %[2]s/fastcgi;
  uwsgi_temp_path %[2]s/uwsgi;
  scgi_temp_path %[2]s/scgi;
  server {
    listen 127.0.0.1:%[3]s;
    location / {
      proxy_pass http://%[4]s;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
%[5]s
    }
  }
}
`

// startNginx puts nginx with the given location directives in front of
// upstream (host:port).
func startNginx(t *testing.T, upstream, directives string) string {
	t.Helper()
	bin := requireTool(t, "SSELAB_NGINX", "nginx", "/usr/sbin/nginx")
	dir := t.TempDir()
	user := "" // as root, workers would otherwise run as a user that cannot read dir
	if os.Geteuid() == 0 {
		user = "user root;"
	}
	port := freePort(t)
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, nginxConf, user, dir, port, upstream, directives), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-c", conf, "-g", "daemon off;")
	log := func() string { b, _ := os.ReadFile(filepath.Join(dir, "error.log")); return string(b) }
	return startProxy(t, cmd, port, log)
}

// startCaddy puts Caddy with the given site directives in front of
// upstream.
func startCaddy(t *testing.T, upstream, directives string) string {
	t.Helper()
	bin := requireTool(t, "SSELAB_CADDY", "caddy")
	dir := t.TempDir()
	port := freePort(t)
	conf := filepath.Join(dir, "Caddyfile")
	site := fmt.Sprintf("{\n\tadmin off\n\tauto_https off\n}\nhttp://127.0.0.1:%s {\n%s\n\treverse_proxy %s\n}\n", port, directives, upstream)
	if err := os.WriteFile(conf, []byte(site), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--config", conf, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	return startProxy(t, cmd, port, out.String)
}

func hostOf(t *testing.T, base string) string {
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// What doctor says through each proxy, for a token stream it posts to.
func TestProxyLab(t *testing.T) {
	for _, tt := range []struct {
		name      string
		proxy     string // nginx or caddy
		conf      string
		keepalive string
		fails     []string // exactly these fail
	}{
		{
			name: "nginx buffering and gzip on text/event-stream", proxy: "nginx", keepalive: "2s",
			conf: `      proxy_buffering on;
      proxy_ignore_headers X-Accel-Buffering;
      gzip on;
      gzip_types text/event-stream;
      gzip_min_length 0;`,
			// nginx holds the headers too, until its buffers fill.
			fails: []string{"headers", "flush"},
		},
		{
			name: "nginx buffering without gzip", proxy: "nginx", keepalive: "2s",
			conf: `      proxy_buffering on;
      proxy_ignore_headers X-Accel-Buffering;`,
			// The events pass. Before rule 1's opening comment the
			// headers waited here for the first bytes of the body (the
			// first keepalive, 2 s in); now those bytes come at once.
		},
		{
			name: "nginx as the README recommends", proxy: "nginx", keepalive: "2s",
			conf: `      proxy_read_timeout 1h;
      gzip on;`,
		},
		{
			name: "nginx read timeout 5s under a 15s keepalive", proxy: "nginx", keepalive: "15s",
			conf:  `      proxy_read_timeout 5s;`,
			fails: []string{"keepalive"},
		},
		{
			name: "nginx read timeout 5s over a 2s keepalive", proxy: "nginx", keepalive: "2s",
			conf: `      proxy_read_timeout 5s;`,
		},
		{
			name: "caddy encode gzip on every response", proxy: "caddy", keepalive: "2s",
			// Caddy waits for enough of the body to decide on encoding;
			// the opening comment, flushed, makes it send the headers
			// unencoded at once (before rule 1, headers waited for the
			// first keepalive).
			conf: "\tencode gzip",
		},
		{
			name: "caddy encode gzip on what does not accept text/event-stream", proxy: "caddy", keepalive: "2s",
			conf: "\t@pages not header Accept text/event-stream\n\tencode @pages gzip",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, "-i", "-keepalive", tt.keepalive)
			var base string
			if tt.proxy == "nginx" {
				base = startNginx(t, hostOf(t, s.URL), tt.conf)
			} else {
				base = startCaddy(t, hostOf(t, s.URL), tt.conf)
			}
			r, err := doctor.Run(t.Context(), doctor.Options{
				URL: base + "/tokens/lab/poll", Publish: base + "/tokens/lab/ping", Timeout: 20 * time.Second,
			})
			if err != nil {
				t.Fatal(err)
			}
			var report strings.Builder
			for _, c := range r.Checks {
				fmt.Fprintf(&report, "%s %s: %s\n", c.Status, c.Name, c.Detail)
			}
			for _, c := range r.Checks {
				want := false
				for _, f := range tt.fails {
					want = want || f == c.Name
				}
				if (c.Status == doctor.Fail) != want {
					t.Errorf("%s: want fail %v\n%s", c.Name, want, report.String())
				}
			}
			t.Logf("through %s:\n%s", tt.proxy, report.String())
		})
	}
}
