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
