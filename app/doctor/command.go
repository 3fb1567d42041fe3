package doctor

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"sync"
	"time"
)

// Exit is an error that asks for a particular exit status; Err, when not
// nil, is printed first.
type Exit struct {
	Code int
	Err  error
}

func (e Exit) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e Exit) Unwrap() error { return e.Err }

// ExitCode is the exit status the command asks for.
func (e Exit) ExitCode() int { return e.Code }

// Command is `sselab doctor`: it checks an SSE endpoint and prints one line per check. It exits
// 0 when no check failed, 1 when one did, 2 when the endpoint could not be
// reached or the arguments are wrong.
func Command(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sselab doctor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, `print {"url": ..., "checks": [{"name": ..., "status": ..., "detail": ...}]}`)
	publish := fs.String("publish", "", "POST events of doctor's own here (a form with the fields data and message) and time each one's arrival")
	timeout := fs.Duration("timeout", 20*time.Second, "the whole check takes at most this long")
	verbose := fs.Bool("v", false, "print to stderr what doctor sees and does as it happens (headers, events, comments, posts, the end, the reconnection)")
	const usage = "sselab doctor [-json] [-v] [-publish URL] [-timeout DURATION] URL"
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: %s\n", usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return Exit{2, err}
	}
	if fs.NArg() != 1 || *timeout <= 0 {
		fs.Usage()
		return Exit{2, fmt.Errorf("usage: %s", usage)}
	}
	o := Options{URL: fs.Arg(0), Publish: *publish, Timeout: *timeout}
	if *verbose {
		var mu sync.Mutex // doctor observes from several goroutines
		o.Observe = func(ob Observation) {
			who := "doctor  "
			if ob.Stream > 0 {
				who = fmt.Sprintf("stream %d", ob.Stream)
			}
			mu.Lock()
			defer mu.Unlock()
			fmt.Fprintf(stderr, "%8.3fs  %s  %-8s %s\n", ob.At.Seconds(), who, ob.What, ob.Detail)
		}
	}
	r, err := Run(ctx, o)
	if err != nil {
		return Exit{2, err}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			return err
		}
	} else {
		for _, c := range r.Checks {
			fmt.Fprintf(stdout, "%s %s: %s\n", c.Status, c.Name, c.Detail)
		}
	}
	if r.Failed() {
		return Exit{Code: 1}
	}
	return nil
}
