// Package sse is the Server-Sent Events wire format: an encoder, a stream
// writer for HTTP responses, and a parser that follows the WHATWG
// specification. It imports nothing from any web framework, so it can be
// copied into any Go project.
//
// The format (https://html.spec.whatwg.org/multipage/server-sent-events.html)
// is a sequence of UTF-8 lines. An event is a block of "field: value" lines
// ended by a blank line; lines starting with ':' are comments.
package sse

import (
	"context"
	"io"
	"strconv"
	"strings"
	"time"
)

// Event is one block of the stream.
//
// The encoder keeps every field inside its own line, whatever it holds:
//   - Data may contain CR, LF or CRLF: each line break starts a new "data:"
//     line of the same event, and the browser joins them with LF. So CRLF
//     and lone CR arrive as LF; nothing else in Data changes.
//   - Type and ID are single-line fields: CR and LF are removed from them,
//     and NUL is removed from ID (a browser ignores an id containing NUL).
//   - Comment may span lines: each line becomes its own ": " comment line.
//
// Callers should still validate user input; the encoder's normalisation is
// the last line of defence that makes forging a field impossible.
type Event struct {
	Type    string        // "event:" field; empty means the default "message"
	Data    string        // "data:" lines
	ID      string        // "id:" field; empty means no id line
	Retry   time.Duration // "retry:" field in milliseconds, sent when HasRetry
	Comment string        // ": comment" lines, written first

	HasRetry bool
	// NoData writes Type's event: line and no data: line: a block that
	// EventSource dispatches nothing for (the specification drops an event
	// whose data is empty) but that names itself to clients which read a
	// block only when it has data or a type (see RetryBlock).
	NoData bool
}

// RetryType is the event: line of RetryBlock.
const RetryType = "retry"

// RetryBlock is the block that tells a client when to come back: a comment
// naming the reason, retry: d, and event: retry with no data. EventSource
// and Datastar take retry: from any block; htmx 4's hx-sse extension only
// from a block it dispatches, one with data or an event: line. With the
// event: line and no data, one block reaches all three, and EventSource
// still dispatches nothing.
func RetryBlock(reason string, d time.Duration) Event {
	return Event{Comment: reason, Retry: d, HasRetry: true, Type: RetryType, NoData: true}
}

// Message reports whether the event carries a message the browser
// dispatches. An event with only a comment and/or retry is a control block:
// the encoder writes no "data:" line for it, and EventSource dispatches
// nothing. Any other event gets at least one "data:" line, so that an event
// with empty data still reaches the listener (the spec drops events whose
// data buffer is empty).
func (e Event) Message() bool {
	if e.NoData {
		return false
	}
	return e.Type != "" || e.Data != "" || e.ID != "" || (!e.HasRetry && e.Comment == "")
}

// AppendTo appends the encoded event, blank line included, to b. It
// allocates only when b must grow, so a caller that reuses b encodes without
// allocating.
func (e Event) AppendTo(b []byte) []byte {
	if e.Comment != "" {
		b = appendLines(b, ":", e.Comment)
	}
	if e.HasRetry {
		ms := e.Retry.Milliseconds()
		if ms < 0 {
			ms = 0
		}
		b = append(b, "retry: "...)
		b = strconv.AppendInt(b, ms, 10)
		b = append(b, '\n')
	}
	if e.Message() {
		if e.Type != "" {
			b = appendField(b, "event: ", e.Type, "\r\n")
		}
		if e.ID != "" {
			b = appendField(b, "id: ", e.ID, "\r\n\x00")
		}
		b = appendLines(b, "data:", e.Data)
	} else if e.Type != "" {
		b = appendField(b, "event: ", e.Type, "\r\n")
	}
	return append(b, '\n')
}

// String returns the encoded event.
func (e Event) String() string { return string(e.AppendTo(nil)) }

// appendField writes a one-line field, dropping every byte of drop.
func appendField(b []byte, name, value, drop string) []byte {
	b = append(b, name...)
	for {
		i := strings.IndexAny(value, drop)
		if i < 0 {
			break
		}
		b = append(b, value[:i]...)
		value = value[i+1:]
	}
	b = append(b, value...)
	return append(b, '\n')
}

// appendLines writes one "prefix value" line per line of value, splitting on
// CRLF, CR and LF. The space after the prefix is always written, so a value
// that itself starts with a space survives the parser's removal of one.
func appendLines(b []byte, prefix, value string) []byte {
	for {
		b = append(b, prefix...)
		b = append(b, ' ')
		i := strings.IndexAny(value, "\r\n")
		if i < 0 {
			b = append(b, value...)
			return append(b, '\n')
		}
		b = append(b, value[:i]...)
		b = append(b, '\n')
		if value[i] == '\r' && i+1 < len(value) && value[i+1] == '\n' {
			i++
		}
		value = value[i+1:]
	}
}

// Component is what renders HTML into a writer: the shape of a templ
// component (templ.Component), so that this package needs no templ.
type Component interface {
	Render(ctx context.Context, w io.Writer) error
}

// Render makes an event whose data is c rendered: into a buffer first, so
// that a template error never half-writes an event, and then as the data
// of ev, which the encoder splits over several data: lines wherever the
// HTML has a line break (a browser joins them again with LF). This is how
// server-rendered fragments go over SSE:
//
//	ev, err := sse.Render(ctx, views.ChatItem(msg), sse.Event{Type: "message", ID: id})
//	if err != nil {
//		return err // nothing was written
//	}
//	return stream.Send(ev)
func Render(ctx context.Context, c Component, ev Event) (Event, error) {
	var b strings.Builder
	if err := c.Render(ctx, &b); err != nil {
		return Event{}, err
	}
	ev.Data = b.String()
	return ev, nil
}
