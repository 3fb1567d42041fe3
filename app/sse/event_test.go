package sse

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"
)

func TestEncode(t *testing.T) {
	tests := []struct {
		name string
		ev   Event
		want string
	}{
		{"data only", Event{Data: "hello"}, "data: hello\n\n"},
		{"empty data still dispatches", Event{Type: "ping"}, "event: ping\ndata: \n\n"},
		{"zero event is an empty message", Event{}, "data: \n\n"},
		{"all fields", Event{Type: "time", ID: "7", Data: "1.5", Retry: 1500 * time.Millisecond, HasRetry: true, Comment: "hi"},
			": hi\nretry: 1500\nevent: time\nid: 7\ndata: 1.5\n\n"},
		{"LF splits data", Event{Data: "a\nb"}, "data: a\ndata: b\n\n"},
		{"CRLF splits data once", Event{Data: "a\r\nb"}, "data: a\ndata: b\n\n"},
		{"CR splits data", Event{Data: "a\rb"}, "data: a\ndata: b\n\n"},
		{"trailing break gives an empty line", Event{Data: "a\n"}, "data: a\ndata: \n\n"},
		{"blank lines inside data", Event{Data: "a\n\n\nb"}, "data: a\ndata: \ndata: \ndata: b\n\n"},
		{"leading space kept", Event{Data: " x"}, "data:  x\n\n"},
		{"forged field in data stays data", Event{Data: "x\n\nevent: evil\ndata: y"},
			"data: x\ndata: \ndata: event: evil\ndata: data: y\n\n"},
		{"type loses CR and LF", Event{Type: "a\r\nid: 1\nb", Data: "d"}, "event: aid: 1b\ndata: d\n\n"},
		{"id loses CR LF NUL", Event{ID: "1\n\x002\r", Data: "d"}, "id: 12\ndata: d\n\n"},
		{"multi-line comment", Event{Comment: "a\nb"}, ": a\n: b\n\n"},
		{"retry only is a control block", Event{Retry: time.Second, HasRetry: true}, "retry: 1000\n\n"},
		{"retry zero is sent", Event{HasRetry: true}, "retry: 0\n\n"},
		{"negative retry clamps to zero", Event{Retry: -time.Second, HasRetry: true}, "retry: 0\n\n"},
		{"comment only", Event{Comment: "keepalive"}, ": keepalive\n\n"},
		{"no data: a type and no data line", Event{Type: "x\ny", NoData: true}, "event: xy\n\n"},
		{"retry block", RetryBlock("too many streams", 2500*time.Millisecond), ": too many streams\nretry: 2500\nevent: retry\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.ev.String(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestAppendToReusesBuffer(t *testing.T) {
	buf := make([]byte, 0, 256)
	ev := Event{Type: "t", ID: "1", Data: "a\nb"}
	allocs := testing.AllocsPerRun(100, func() { buf = ev.AppendTo(buf[:0]) })
	if allocs != 0 {
		t.Errorf("got %v allocations, want 0", allocs)
	}
}

type component func(ctx context.Context, w io.Writer) error

func (c component) Render(ctx context.Context, w io.Writer) error { return c(ctx, w) }

// Render puts HTML over several lines into one event of several data:
// lines, and a template that fails writes nothing.
func TestRender(t *testing.T) {
	li := component(func(_ context.Context, w io.Writer) error {
		_, err := io.WriteString(w, "<li>\n  <b>ann</b>: hi\r\n</li>")
		return err
	})
	ev, err := Render(context.Background(), li, Event{Type: "message", ID: "7"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ev.String(), "event: message\nid: 7\ndata: <li>\ndata:   <b>ann</b>: hi\ndata: </li>\n\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	broken := component(func(_ context.Context, w io.Writer) error {
		io.WriteString(w, "<li>half")
		return errors.New("template failed")
	})
	if ev, err := Render(context.Background(), broken, Event{}); err == nil || ev.Data != "" {
		t.Errorf("a failing template: got %+v %v, want no event and the error", ev, err)
	}
}
