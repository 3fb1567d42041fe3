package sse

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"
)

// ErrLineTooLong is returned when a line exceeds the parser's limit.
var ErrLineTooLong = errors.New("sse: line too long")

// MaxLine is the longest line the parser accepts; a hostile server cannot
// make it buffer without bound.
const MaxLine = 1 << 20

const bom = "\xEF\xBB\xBF"

// Parser reads events from a stream as the WHATWG specification's
// "interpret an event stream" algorithm does:
//   - lines end in CRLF, LF or CR, and a leading UTF-8 BOM is skipped;
//   - a line starting with ':' is a comment (passed to OnComment if set);
//   - "name: value" sets a field, with one optional space after the colon
//     removed; a line without a colon is a field with an empty value;
//   - data lines are joined with LF; a blank line dispatches the event;
//   - an id containing NUL is ignored; retry is used only when all digits;
//   - an event with no data is not dispatched, and an unfinished event at
//     the end of the stream is discarded.
//
// The returned Event's ID is the last event ID in force when it was
// dispatched (ids persist across events, as in the browser), and Retry is
// set when a valid retry field came in the same block.
type Parser struct {
	r         io.Reader
	buf       []byte // unread bytes are buf[start:]
	start     int
	clean     int // buf[start:start+clean] is known to hold no CR or LF
	scanned   int // bytes searched for a line end, in all: linear in the input
	err       error
	begun     bool // the BOM check has been done
	skipLF    bool // the previous line ended in CR: a following LF belongs to it
	lastID    string
	retry     time.Duration
	hasRetry  bool
	OnComment func(text string)

	typ, id   string
	data      strings.Builder
	hasData   bool
	blockRtry time.Duration
	blockHas  bool
	blockID   bool // the block has an id field
	hadID     bool // the last dispatched event had one
}

// NewParser returns a parser reading from r.
func NewParser(r io.Reader) *Parser {
	return &Parser{r: r, buf: make([]byte, 0, 4096)}
}

// LastEventID is the id a reconnecting client sends as Last-Event-ID.
func (p *Parser) LastEventID() string { return p.lastID }

// HadID reports whether the event Next returned last had an id: field of
// its own. Its ID is the last event ID either way, as the spec keeps it
// from one event to the next; this tells an event that carries an id from
// one that inherits it (such as a state value sent without one).
func (p *Parser) HadID() bool { return p.hadID }

// Retry is the reconnection time the server asked for, if it did.
func (p *Parser) Retry() (time.Duration, bool) { return p.retry, p.hasRetry }

// Next returns the next dispatched event. At the end of the stream it
// returns io.EOF (any unfinished event is discarded), or the read error.
func (p *Parser) Next() (Event, error) {
	for {
		line, err := p.line()
		if err != nil {
			return Event{}, err
		}
		if len(line) == 0 {
			if ev, ok := p.dispatch(); ok {
				return ev, nil
			}
			continue
		}
		p.field(line)
	}
}

func (p *Parser) dispatch() (Event, bool) {
	p.lastID = p.id
	ev := Event{Type: p.typ, ID: p.lastID, Retry: p.blockRtry, HasRetry: p.blockHas}
	ok := p.hasData
	if ok {
		ev.Data = strings.TrimSuffix(p.data.String(), "\n")
		p.hadID = p.blockID
	}
	p.typ, p.hasData, p.blockHas, p.blockRtry, p.blockID = "", false, false, 0, false
	p.data.Reset()
	return ev, ok
}

func (p *Parser) field(line []byte) {
	if line[0] == ':' {
		if p.OnComment != nil {
			p.OnComment(strings.TrimPrefix(string(line[1:]), " "))
		}
		return
	}
	name, value := line, []byte(nil)
	if i := bytes.IndexByte(line, ':'); i >= 0 {
		name, value = line[:i], line[i+1:]
		value = bytes.TrimPrefix(value, []byte{' '})
	}
	switch string(name) {
	case "event":
		p.typ = string(value)
	case "data":
		p.data.Write(value)
		p.data.WriteByte('\n')
		p.hasData = true
	case "id":
		if bytes.IndexByte(value, 0) < 0 {
			p.id, p.blockID = string(value), true
		}
	case "retry":
		if len(value) > 0 && allDigits(value) {
			ms, err := strconv.ParseInt(string(value), 10, 64)
			if err != nil || ms > int64(time.Duration(1<<63-1)/time.Millisecond) {
				return // all digits but too large to represent: ignore
			}
			p.retry, p.hasRetry = time.Duration(ms)*time.Millisecond, true
			p.blockRtry, p.blockHas = p.retry, true
		}
	}
}

func allDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// line returns the next line without its terminator. The slice is valid
// until the next call.
func (p *Parser) line() ([]byte, error) {
	for {
		unread := p.buf[p.start:]
		if p.skipLF && len(unread) > 0 {
			p.skipLF = false
			if unread[0] == '\n' {
				p.start++
				p.clean = 0
				continue
			}
		}
		if !p.begun && (len(unread) >= len(bom) || p.err != nil || !bytes.HasPrefix([]byte(bom), unread)) {
			p.begun = true
			if bytes.HasPrefix(unread, []byte(bom)) {
				p.start += len(bom)
				p.clean = 0
				continue
			}
		}
		if p.begun {
			// Only the bytes that came since the last search are searched:
			// a long line arriving a few bytes at a time costs its length,
			// not its length squared.
			if i := bytes.IndexAny(unread[p.clean:], "\r\n"); i >= 0 {
				p.scanned += i + 1
				i += p.clean
				p.start += i + 1
				p.clean = 0
				p.skipLF = unread[i] == '\r'
				return unread[:i], nil
			}
			p.scanned += len(unread) - p.clean
			p.clean = len(unread)
		}
		if p.err != nil {
			return nil, p.err
		}
		if len(unread) >= MaxLine {
			return nil, ErrLineTooLong
		}
		p.fill()
	}
}

// fill reads more input, first moving unread bytes to the front.
func (p *Parser) fill() {
	if p.start > 0 {
		n := copy(p.buf, p.buf[p.start:])
		p.buf, p.start = p.buf[:n], 0
	}
	if len(p.buf) == cap(p.buf) {
		p.buf = append(p.buf, make([]byte, len(p.buf))...)[:len(p.buf)]
	}
	n, err := p.r.Read(p.buf[len(p.buf):cap(p.buf)])
	p.buf = p.buf[:len(p.buf)+n]
	if err != nil {
		p.err = err
	}
}
