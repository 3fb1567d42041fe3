package sse

// BufferCap is the capacity of the encoding buffer s keeps between events.
func BufferCap(s *Stream) int { return cap(s.buf) }
