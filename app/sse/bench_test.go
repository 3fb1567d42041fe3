package sse

import (
	"io"
	"strings"
	"testing"
)

func BenchmarkEncode(b *testing.B) {
	ev := Event{Type: "ping", ID: "1763712000123456", Data: "1763712000123456789 xxxxxxxxxxxxxxxxxxxx"}
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = ev.AppendTo(buf[:0])
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkEncodeMultiline(b *testing.B) {
	ev := Event{Type: "message", Data: strings.Repeat("a line of chat text\n", 20)}
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = ev.AppendTo(buf[:0])
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkParse(b *testing.B) {
	one := Event{Type: "ping", ID: "1763712000123456", Data: "1763712000123456789 xxxxxxxxxxxxxxxxxxxx"}.String()
	stream := strings.Repeat(one, 1000)
	b.ReportAllocs()
	b.SetBytes(int64(len(stream)))
	for b.Loop() {
		p := NewParser(strings.NewReader(stream))
		for {
			if _, err := p.Next(); err == io.EOF {
				break
			}
		}
	}
}

// BenchmarkParseLongLineSmallReads is the attack issue 20 found: a 900 KiB
// line sent 128 bytes at a time once cost the parser 4.1 s of CPU, every
// read searching the whole line again.
func BenchmarkParseLongLineSmallReads(b *testing.B) {
	in := "data: " + strings.Repeat("x", 900<<10) + "\n\n"
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		p := NewParser(&chunkReader{in, 128})
		for {
			if _, err := p.Next(); err != nil {
				break
			}
		}
	}
}
