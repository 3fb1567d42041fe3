package sse

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func parseAll(t *testing.T, r io.Reader) ([]Event, *Parser) {
	t.Helper()
	p := NewParser(r)
	var evs []Event
	for {
		ev, err := p.Next()
		if errors.Is(err, io.EOF) {
			return evs, p
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		evs = append(evs, ev)
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  []Event
	}{
		{"LF", "data: a\n\n", []Event{{Data: "a"}}},
		{"CRLF", "data: a\r\n\r\n", []Event{{Data: "a"}}},
		{"CR", "data: a\r\r", []Event{{Data: "a"}}},
		{"mixed line ends", "data: a\rdata: b\r\ndata: c\n\n", []Event{{Data: "a\nb\nc"}}},
		{"BOM skipped", "\xEF\xBB\xBFdata: a\n\n", []Event{{Data: "a"}}},
		{"only first BOM skipped", "\xEF\xBB\xBF\xEF\xBB\xBFdata: a\n\ndata: b\n\n", []Event{{Data: "b"}}},
		{"comments ignored", ": hi\ndata: a\n: there\n\n", []Event{{Data: "a"}}},
		{"one space removed", "data:  a\n\n", []Event{{Data: " a"}}},
		{"no space", "data:a\n\n", []Event{{Data: "a"}}},
		{"no colon is an empty value", "data\ndata\n\n", []Event{{Data: "\n"}}},
		{"data joined by LF", "data: a\ndata: b\n\n", []Event{{Data: "a\nb"}}},
		{"type", "event: time\ndata: 1\n\n", []Event{{Type: "time", Data: "1"}}},
		{"a type without data dispatches nothing", "event: retry\nretry: 10\n\ndata: a\n\n", []Event{{Data: "a"}}},
		{"type resets after dispatch", "event: a\ndata: 1\n\ndata: 2\n\n", []Event{{Type: "a", Data: "1"}, {Data: "2"}}},
		{"id persists", "id: 5\ndata: a\n\ndata: b\n\n", []Event{{ID: "5", Data: "a"}, {ID: "5", Data: "b"}}},
		{"empty id resets", "id: 5\ndata: a\n\nid\ndata: b\n\n", []Event{{ID: "5", Data: "a"}, {Data: "b"}}},
		{"id with NUL ignored", "id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n", []Event{{ID: "1", Data: "a"}, {ID: "1", Data: "b"}}},
		{"retry digits", "retry: 250\ndata: a\n\n", []Event{{Data: "a", Retry: 250 * time.Millisecond, HasRetry: true}}},
		{"retry not digits ignored", "retry: 25x\ndata: a\n\nretry: -1\ndata: b\n\nretry:\ndata: c\n\n",
			[]Event{{Data: "a"}, {Data: "b"}, {Data: "c"}}},
		{"no data no dispatch", "event: a\n\nid: 3\n\ndata: x\n\n", []Event{{ID: "3", Data: "x"}}},
		{"unknown field ignored", "foo: bar\ndata: a\n\n", []Event{{Data: "a"}}},
		{"unfinished event discarded", "data: a\n\ndata: b\n", []Event{{Data: "a"}}},
		{"unfinished line discarded", "data: a\n\ndata: b", []Event{{Data: "a"}}},
		{"field names are case sensitive", "Data: a\ndata: b\n\n", []Event{{Data: "b"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := parseAll(t, strings.NewReader(tt.input))
			if !equalEvents(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			// The same input one byte at a time: no rule may depend on
			// how reads are split.
			got, _ = parseAll(t, iotest.OneByteReader(strings.NewReader(tt.input)))
			if !equalEvents(got, tt.want) {
				t.Errorf("one byte at a time: got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func equalEvents(a, b []Event) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestParserState(t *testing.T) {
	var comments []string
	p := NewParser(strings.NewReader("retry: 3000\n: keepalive\nid: 9\n\n"))
	p.OnComment = func(c string) { comments = append(comments, c) }
	if _, err := p.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("got %v, want EOF", err)
	}
	if d, ok := p.Retry(); !ok || d != 3*time.Second {
		t.Errorf("Retry: got %v %v, want 3s true", d, ok)
	}
	if p.LastEventID() != "9" {
		t.Errorf("LastEventID: got %q, want 9", p.LastEventID())
	}
	if len(comments) != 1 || comments[0] != "keepalive" {
		t.Errorf("comments: got %q, want [keepalive]", comments)
	}
}

// A CR at the end of what has arrived must dispatch without waiting for
// the next byte, which may never come on a live stream.
func TestParserDoesNotWaitAfterCR(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	p := NewParser(pr)
	go pw.Write([]byte("data: a\r\r"))
	ev, err := p.Next()
	if err != nil || ev.Data != "a" {
		t.Fatalf("got %+v %v, want data a", ev, err)
	}
}

func TestParserLineLimit(t *testing.T) {
	p := NewParser(strings.NewReader("data: " + strings.Repeat("x", MaxLine+10)))
	if _, err := p.Next(); !errors.Is(err, ErrLineTooLong) {
		t.Errorf("got %v, want ErrLineTooLong", err)
	}
}

// FuzzRoundTrip: for any type, data, id and retry, encoding then parsing
// yields exactly one event with the same fields, after the documented
// normalisation (line breaks in data become LF; CR, LF out of type and id;
// NUL out of id).
func FuzzRoundTrip(f *testing.F) {
	f.Add("time", "1.5", "7", uint32(1000), true, "")
	f.Add("", "a\r\nb\rc\nd", "", uint32(0), false, "c\nd")
	f.Add("x\ny", "\n\n", "\x00", uint32(0), true, "")
	f.Add("", "", "", uint32(0), false, "")
	f.Fuzz(func(t *testing.T, typ, data, id string, retry uint32, hasRetry bool, comment string) {
		in := Event{Type: typ, Data: data, ID: id, Retry: time.Duration(retry) * time.Millisecond, HasRetry: hasRetry, Comment: comment}
		got, p := parseAll(t, strings.NewReader(in.String()))
		if d, ok := p.Retry(); ok != hasRetry || (ok && d != in.Retry) {
			t.Errorf("retry: got %v %v, want %v %v", d, ok, in.Retry, hasRetry)
		}
		if !in.Message() {
			if len(got) != 0 {
				t.Fatalf("control block dispatched %+v", got)
			}
			return
		}
		want := Event{
			Type:     strings.NewReplacer("\r", "", "\n", "").Replace(typ),
			Data:     strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(data),
			ID:       strings.NewReplacer("\r", "", "\n", "", "\x00", "").Replace(id),
			Retry:    in.Retry,
			HasRetry: hasRetry,
		}
		if !hasRetry {
			want.Retry = 0
		}
		if len(got) != 1 || got[0] != want {
			t.Fatalf("encoded %q\ngot %+v\nwant exactly [%+v]", in.String(), got, want)
		}
	})
}

// HadID tells an event with an id: field of its own from one that
// inherits the last event ID, including an id block with no data between.
func TestParserHadID(t *testing.T) {
	p := NewParser(strings.NewReader("id: 1\ndata: a\n\ndata: b\n\nid: 2\n\ndata: c\n\nid\ndata: d\n\n"))
	for _, want := range []struct {
		data, id string
		had      bool
	}{{"a", "1", true}, {"b", "1", false}, {"c", "2", false}, {"d", "", true}} {
		ev, err := p.Next()
		if err != nil {
			t.Fatal(err)
		}
		if ev.Data != want.data || ev.ID != want.id || p.HadID() != want.had {
			t.Errorf("got %q id %q HadID %v, want %q id %q HadID %v", ev.Data, ev.ID, p.HadID(), want.data, want.id, want.had)
		}
	}
}

// chunkReader hands out its input n bytes per Read, as a slow or hostile
// server may.
type chunkReader struct {
	s string
	n int
}

func (r *chunkReader) Read(b []byte) (int, error) {
	if r.s == "" {
		return 0, io.EOF
	}
	k := min(r.n, len(b), len(r.s))
	copy(b, r.s[:k])
	r.s = r.s[k:]
	return k, nil
}

// The parser searches each byte for a line end once, however the input is
// split: a 512 KiB line sent one byte per read once cost 102 s of CPU,
// every read searching the whole line again.
func TestParserLinear(t *testing.T) {
	long := "data: " + strings.Repeat("x", 512<<10) + "\r\n\r\n"
	short := strings.Repeat("data: a\rdata: b\n\r\n", 2000)
	for _, tc := range []struct {
		name, in string
		chunk    int
		events   int
	}{
		{"a long line, a byte per read", long, 1, 1},
		{"a long line, 128 bytes per read", long, 128, 1},
		{"short lines with CR, a byte per read", short, 1, 2000},
		{"short lines with CR, 7 bytes per read", short, 7, 2000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			evs, p := parseAll(t, &chunkReader{tc.in, tc.chunk})
			if len(evs) != tc.events {
				t.Fatalf("got %d events, want %d", len(evs), tc.events)
			}
			if p.scanned > len(tc.in) {
				t.Errorf("searched %d bytes for line ends in %d bytes of input: the search is not linear", p.scanned, len(tc.in))
			}
		})
	}
}
