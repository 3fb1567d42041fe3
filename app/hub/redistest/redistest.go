// Package redistest runs a real redis-server for tests, on a free loopback
// port, and can restart it to test recovery.
package redistest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// Server is a running redis-server.
type Server struct {
	URL  string
	exe  string
	port int
	cmd  *exec.Cmd
	t    testing.TB
}

// find is redis-server: SSELAB_REDIS_SERVER, else on PATH; "" if absent.
func find() string {
	if exe := os.Getenv("SSELAB_REDIS_SERVER"); exe != "" {
		return exe
	}
	exe, _ := exec.LookPath("redis-server")
	return exe
}

// Available reports whether Start can run a server, or must skip (or fail
// under SSELAB_REQUIRE_ALL=1).
func Available() bool { return find() != "" || os.Getenv("SSELAB_REQUIRE_ALL") == "1" }

// Start runs redis-server (SSELAB_REDIS_SERVER, else on PATH) with no
// persistence, and stops it when the test ends. Without one the test is
// skipped, or fails under SSELAB_REQUIRE_ALL=1.
func Start(t testing.TB) *Server {
	t.Helper()
	exe := find()
	if exe == "" {
		msg := "redis-server not found on PATH (or set SSELAB_REDIS_SERVER)"
		if os.Getenv("SSELAB_REQUIRE_ALL") == "1" {
			t.Fatalf("%s, and SSELAB_REQUIRE_ALL=1", msg)
		}
		t.Skip(msg + "; install it to run this test")
	}
	s := &Server{exe: exe, t: t}
	for try := 0; ; try++ {
		s.port = freePort(t)
		if err := s.start(); err == nil {
			break
		} else if try == 4 {
			t.Fatalf("starting redis-server: %v", err)
		}
	}
	s.URL = fmt.Sprintf("redis://127.0.0.1:%d/0", s.port)
	t.Cleanup(s.Stop)
	return s
}

func freePort(t testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func (s *Server) start() error {
	s.cmd = exec.Command(s.exe, "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--protected-mode", "no")
	if err := s.cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- s.cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("redis-server exited: %v", err)
		default:
		}
		if ping(s.port) {
			go func(cmd *exec.Cmd) { <-exited }(s.cmd)
			return nil
		}
		time.Sleep(20 * time.Millisecond) // polling interval while it starts
	}
	s.cmd.Process.Kill()
	return fmt.Errorf("redis-server did not answer PING within 10s")
}

// ping sends an inline PING and waits for +PONG.
func ping(port int) bool {
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 200*time.Millisecond)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	buf := make([]byte, 7)
	n, _ := c.Read(buf)
	return string(buf[:n]) == "+PONG\r\n"
}

// Stop kills the server and waits until its port is closed.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Kill()
	deadline := time.Now().Add(10 * time.Second)
	for ping(s.port) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond) // polling interval while it stops
	}
	s.cmd = nil
}

// Restart stops the server and starts a new, empty one on the same port,
// as a crash and restart without persistence would.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	if err := s.start(); err != nil {
		s.t.Fatalf("restarting redis-server: %v", err)
	}
}

// Pause stops the server process (SIGSTOP) without closing anything: its
// connections stay open and nothing answers, as a Redis that hangs.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume lets a paused server run again (SIGCONT).
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	s.t.Helper()
	if s.cmd == nil || s.cmd.Process == nil {
		s.t.Fatal("redis-server is not running")
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("signalling redis-server: %v", err)
	}
}
