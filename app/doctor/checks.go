package doctor

import (
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"
)

// judge turns what the streams saw into the checks, in the order of Names.
func judge(s *stream, pub *publisher, again *resumed) []Check {
	if s.status == 0 { // connected, and nothing came back
		var out []Check
		for _, name := range Names {
			c := Check{name, Warn, "not checked: " + s.statusLn}
			switch name {
			case "headers":
				c = Check{name, Fail, s.statusLn + ": something holds the whole response back, headers included (a proxy's buffering or compression waiting for the body, or a handler that writes nothing)"}
			case "flush":
				c = Check{name, Fail, "nothing arrived: " + s.statusLn}
			}
			out = append(out, c)
		}
		return out
	}
	if s.status != http.StatusOK {
		out := []Check{checkStatus(s)}
		for _, name := range Names[1:] {
			out = append(out, Check{name, Warn, "not checked: " + statusText(s)})
		}
		return out
	}
	v := s.snapshot()
	out := []Check{
		checkStatus(s),
		checkContentType(s),
		checkCacheControl(s),
		checkContentEncoding(s),
		checkContentLength(s),
		checkHeaders(s, v),
	}
	if s.noBody == "" {
		out = append(out, checkFirstBytes(s, v))
	}
	if s.noBody != "" {
		for _, name := range Names[len(out):] {
			out = append(out, Check{name, Warn, "not checked: " + s.noBody})
		}
		return out
	}
	return append(out,
		checkFlush(s, v, pub),
		checkKeepalive(s, v),
		checkRetry(v),
		checkIDs(v),
		checkReplay(v, again),
	)
}

func statusText(s *stream) string {
	if s.status == 0 {
		return s.statusLn
	}
	return "the status was " + s.statusLn
}

func checkStatus(s *stream) Check {
	c := Check{Name: "status"}
	switch s.status {
	case http.StatusOK:
		c.Status, c.Detail = Pass, s.statusLn+" over "+s.proto
	case http.StatusNoContent:
		c.Status, c.Detail = Fail, s.statusLn+": EventSource stops for good on 204, which is how a server says a stream is over"
	default:
		c.Status, c.Detail = Fail, s.statusLn+": EventSource fails the connection on any status but 200"
	}
	return c
}

func checkContentType(s *stream) Check {
	ct := s.header.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	switch {
	case ct == "":
		return Check{"content-type", Fail, "none: EventSource accepts only text/event-stream and fails the connection"}
	case err != nil || mt != "text/event-stream":
		return Check{"content-type", Fail, ct + ": EventSource accepts only text/event-stream and fails the connection (a framework's default type, or a proxy's error page in the way)"}
	case params["charset"] != "" && !strings.EqualFold(params["charset"], "utf-8"):
		return Check{"content-type", Warn, ct + ": event streams are always UTF-8; the charset is ignored"}
	}
	return Check{"content-type", Pass, ct}
}

func checkCacheControl(s *stream) Check {
	cc := s.header.Get("Cache-Control")
	l := strings.ToLower(cc)
	switch {
	case strings.Contains(l, "no-cache") || strings.Contains(l, "no-store"):
		return Check{"cache-control", Pass, cc}
	case cc == "":
		return Check{"cache-control", Warn, "none: a cache between may hold or store the stream; send Cache-Control: no-cache"}
	}
	return Check{"cache-control", Warn, cc + ": neither no-cache nor no-store; a cache between may hold or store the stream"}
}

func checkContentEncoding(s *stream) Check {
	enc := s.header.Get("Content-Encoding")
	if enc == "" || strings.EqualFold(enc, "identity") {
		return Check{"content-encoding", Pass, "none, although doctor asked for gzip, deflate, br as browsers do"}
	}
	return Check{"content-encoding", Fail, enc + " on a stream: a compressor holds events back until its buffer fills unless it is flushed after each one (a proxy's or a middleware's compression: leave text/event-stream out of it)"}
}

func checkContentLength(s *stream) Check {
	if cl := s.header.Get("Content-Length"); cl != "" || s.length >= 0 {
		if cl == "" {
			cl = fmt.Sprint(s.length)
		}
		return Check{"content-length", Fail, "Content-Length: " + cl + " on a stream: the client stops reading there, and a proxy that sets it has waited for the whole response"}
	}
	return Check{"content-length", Pass, "none"}
}

func checkHeaders(s *stream, v view) Check {
	in := s.headers.Round(time.Millisecond)
	if s.headers > time.Second {
		if len(v.reads) > 0 && v.reads[0]-s.headers < 50*time.Millisecond {
			return Check{"headers", Fail, fmt.Sprintf("the headers came after %v, with the first bytes of the body: they were held back until the first event (flush them when the stream opens; a buffering proxy does this too)", in)}
		}
		return Check{"headers", Warn, fmt.Sprintf("the headers came after %v", in)}
	}
	return Check{"headers", Pass, fmt.Sprintf("in %v, before the first event", in)}
}

// checkFirstBytes: Firefox, and WebKit over HTTP/2, fire open only when the
// first body byte arrives, so a stream with nothing to say yet shows
// CONNECTING until it says something.
func checkFirstBytes(s *stream, v view) Check {
	const why = ": Firefox, and Safari over HTTP/2, report a stream open only when its first body byte arrives, so a page shows CONNECTING until then; send a comment right after the headers"
	if len(v.reads) == 0 {
		if v.ended {
			return Check{"first-bytes", Warn, "the response ended with no body"}
		}
		if v.watched < flushBound {
			return Check{"first-bytes", Warn, fmt.Sprintf("no body bytes in the %v watched", v.watched.Round(time.Millisecond))}
		}
		return Check{"first-bytes", Fail, fmt.Sprintf("no body bytes in the %v after the headers%s", (v.watched - s.headers).Round(100*time.Millisecond), why)}
	}
	first := v.reads[0] - s.headers
	if first > flushBound {
		return Check{"first-bytes", Fail, fmt.Sprintf("the first body bytes came %v after the headers%s", first.Round(100*time.Millisecond), why)}
	}
	return Check{"first-bytes", Pass, fmt.Sprintf("the first body bytes came %v after the headers", first.Round(time.Millisecond))}
}

// dispatched are the events a page would hear: gap is the server's signal,
// not one of the stream's events.
func dispatched(v view) []arrival {
	return slices.DeleteFunc(slices.Clone(v.events), func(a arrival) bool { return a.ev.Type == "gap" })
}

func checkFlush(s *stream, v view, pub *publisher) Check {
	note := ""
	if pub != nil {
		got := pub.arrivals(v)
		pub.mu.Lock()
		sent, errs := slices.Clone(pub.sentAt), slices.Clone(pub.errs)
		pub.mu.Unlock()
		var delays []time.Duration
		accepted, missing := 0, 0
		for i, at := range sent {
			if at < 0 {
				continue
			}
			accepted++
			if got[i] < 0 {
				missing++
				continue
			}
			delays = append(delays, got[i]-at)
		}
		switch {
		case accepted == 0 && len(errs) > 0:
			note = fmt.Sprintf("posting to -publish failed (%s); ", errs[0])
		case accepted == 0:
			note = "no post was made in time; "
		case missing == accepted:
			return Check{"flush", Fail, fmt.Sprintf("none of %d events posted %v apart arrived within %v: something between buffers the stream (a proxy's buffering, compression), or -publish posts where this stream does not listen", accepted, postEvery, v.watched.Round(100*time.Millisecond))}
		case missing > 0:
			return Check{"flush", Fail, fmt.Sprintf("%d of %d events posted %v apart never arrived within %v: something between buffers the stream (a proxy's buffering, compression)", missing, accepted, postEvery, v.watched.Round(100*time.Millisecond))}
		default:
			lo, hi := slices.Min(delays), slices.Max(delays)
			if hi > flushBound {
				return Check{"flush", Fail, fmt.Sprintf("%d events posted %v apart arrived %v to %v after their posts, %s: something between buffers the stream (a proxy's buffering, compression)", len(delays), postEvery, lo.Round(time.Millisecond), hi.Round(time.Millisecond), spread(got))}
			}
			return Check{"flush", Pass, fmt.Sprintf("%d events posted %v apart each arrived %v to %v after its post", len(delays), postEvery, lo.Round(time.Millisecond), hi.Round(time.Millisecond))}
		}
	}
	all := dispatched(v)
	var apart []time.Duration
	for _, a := range all {
		if a.at > s.headers+openingBurst {
			apart = append(apart, a.at)
		}
	}
	watched := v.watched.Round(100 * time.Millisecond)
	if len(all) == 0 {
		return Check{"flush", Warn, note + fmt.Sprintf("no events in %v: nothing to judge; give -publish URL to post events of doctor's own", watched)}
	}
	if heldWhole(s, v, all) {
		return Check{"flush", Fail, note + fmt.Sprintf("all %d events arrived at once with the headers, after %v, and the response ended: it was held back until its end (buffering middleware, a proxy's buffering, compression); a server that flushes sends its headers at once and each event as it is made",
			len(all), s.headers.Round(100*time.Millisecond))}
	}
	if len(apart) < 2 {
		return Check{"flush", Warn, note + fmt.Sprintf("%d event(s) in %v, %d of them after the stream opened: too few to judge their spacing; give -publish URL to post events of doctor's own", len(all), watched, len(apart))}
	}
	bursts, largest := bursts(apart)
	first := apart[0] - s.headers
	switch {
	case bursts == 1 && len(apart) >= 3:
		return Check{"flush", Fail, note + fmt.Sprintf("%d events arrived within %v of each other, %v after the headers: events are produced apart, so something between holds them back (a proxy's buffering, compression, a writer that is not flushed)",
			len(apart), (apart[len(apart)-1]-apart[0]).Round(time.Millisecond), first.Round(100*time.Millisecond))}
	case 2*bursts <= len(apart) && largest >= 3:
		return Check{"flush", Fail, note + fmt.Sprintf("%d events arrived in %d bursts, the largest of %d events at once: something between holds them back until a buffer fills (a proxy's buffering, compression)", len(apart), bursts, largest)}
	}
	return Check{"flush", Pass, note + fmt.Sprintf("%d events arrived apart over %v (median spacing %v)", len(apart), (apart[len(apart)-1]-apart[0]).Round(time.Millisecond), medianGap(apart).Round(time.Millisecond))}
}

// heldWhole reports the signature of a response held back until its end:
// headers that came late and with the first bytes of the body, three or
// more events all in that first moment, and the end soon after them.
// Spacing cannot be judged then (every event is in the opening burst), but
// no server that flushes sends a stream this way.
func heldWhole(s *stream, v view, all []arrival) bool {
	if s.headers <= time.Second || len(v.reads) == 0 || v.reads[0]-s.headers >= 50*time.Millisecond || len(all) < 3 || !v.ended {
		return false
	}
	// The end follows the last event closely, but not necessarily within
	// the opening burst: a loaded machine (a CI runner under -race) can
	// take longer than that between the last byte and the end.
	return all[len(all)-1].at-s.headers < openingBurst && v.endAt-all[len(all)-1].at < flushBound
}

// spread says how close together arrivals were.
func spread(at []time.Duration) string {
	var seen []time.Duration
	for _, a := range at {
		if a >= 0 {
			seen = append(seen, a)
		}
	}
	if len(seen) < 2 {
		return "one of them seen"
	}
	return fmt.Sprintf("within %v of each other", (slices.Max(seen) - slices.Min(seen)).Round(time.Millisecond))
}

// bursts groups arrival times that are less than burstGap apart.
func bursts(at []time.Duration) (n, largest int) {
	size := 0
	for i := range at {
		if i == 0 || at[i]-at[i-1] >= burstGap {
			n++
			size = 0
		}
		size++
		largest = max(largest, size)
	}
	return n, largest
}

func medianGap(at []time.Duration) time.Duration {
	var gaps []time.Duration
	for i := 1; i < len(at); i++ {
		gaps = append(gaps, at[i]-at[i-1])
	}
	slices.Sort(gaps)
	return gaps[len(gaps)/2]
}

func checkKeepalive(s *stream, v view) Check {
	end := v.watched
	if v.ended {
		end = v.endAt
	}
	// The silences: from the headers to the first bytes, between reads,
	// from the last bytes to the end.
	last, longest := s.headers, time.Duration(0)
	for _, r := range v.reads {
		longest = max(longest, r-last)
		last = r
	}
	final := end - last
	longest = max(longest, final)
	comments := ""
	if n := len(v.comments); n > 0 {
		comments = fmt.Sprintf("; %d keepalive comment(s) came before", n)
	} else {
		comments = "; no keepalive comment came before"
	}
	round := func(d time.Duration) time.Duration { return d.Round(100 * time.Millisecond) }
	switch {
	case v.ended && final >= cutSilence:
		return Check{"keepalive", Fail, fmt.Sprintf("the stream was cut after %v of silence, %v after it opened%s: an idle timeout between you and the server (a proxy's read timeout, a load balancer's idle timeout) is shorter than the keepalive interval", round(final), round(v.endAt), comments)}
	case longest >= keepaliveBound:
		return Check{"keepalive", Fail, fmt.Sprintf("nothing arrived for %v%s: idle proxies cut streams silent for 30-60 s; send a comment line every 15 s or so", round(longest), comments)}
	case len(v.comments) > 0:
		every := v.comments[0] - s.headers
		if len(v.comments) > 1 {
			every = medianGap(v.comments)
		}
		return Check{"keepalive", Pass, fmt.Sprintf("a comment every %v; the longest silence %v", round(every), round(longest))}
	case v.ended:
		return Check{"keepalive", Pass, fmt.Sprintf("the stream ended by itself after %v; its longest silence was %v", round(v.endAt), round(longest))}
	case v.watched >= keepaliveBound+5*time.Second:
		return Check{"keepalive", Pass, fmt.Sprintf("the longest silence in %v was %v", round(v.watched), round(longest))}
	}
	return Check{"keepalive", Warn, fmt.Sprintf("no keepalive comment in %v of watching (the longest silence %v): an idle stream may be cut by a proxy; watch longer (-timeout 45s) to know", round(v.watched), round(longest))}
}

func checkRetry(v view) Check {
	switch {
	case !v.hasRetry:
		return Check{"retry", Warn, "no retry: field: clients reconnect after their own default (about 3 s in browsers); send one to choose, and spread it so that clients do not all come back at once"}
	case v.retry < 500*time.Millisecond:
		return Check{"retry", Warn, fmt.Sprintf("retry: %d: clients reconnect almost at once, all together after a restart", v.retry.Milliseconds())}
	}
	return Check{"retry", Pass, fmt.Sprintf("retry: %d ms", v.retry.Milliseconds())}
}

func checkIDs(v view) Check {
	evs := dispatched(v)
	seen := map[string]bool{}
	with := 0
	var without []string // the types of events without an id of their own
	for _, a := range evs {
		if !a.own || a.ev.ID == "" {
			if t := typeName(a.ev.Type); !slices.Contains(without, t) {
				without = append(without, t)
			}
			continue
		}
		with++
		if seen[a.ev.ID] {
			return Check{"ids", Fail, fmt.Sprintf("the id %q came on two events: a client resuming from it cannot say which", a.ev.ID)}
		}
		seen[a.ev.ID] = true
	}
	switch {
	case len(evs) == 0:
		return Check{"ids", Warn, "no events to look at"}
	case with == 0:
		return Check{"ids", Warn, fmt.Sprintf("no ids on %d events: a client that reconnects cannot say where it was, and misses or repeats events", len(evs))}
	case with < len(evs):
		return Check{"ids", Warn, fmt.Sprintf("ids on %d of %d events; events of type %s carry none (fine for state that is not replayed)", with, len(evs), strings.Join(without, ", "))}
	}
	return Check{"ids", Pass, fmt.Sprintf("every event has an id of its own (%d events; the last %q)", with, evs[len(evs)-1].ev.ID)}
}

func typeName(t string) string {
	if t == "" {
		return "message"
	}
	return t
}

// resumed is the second connection: from which event of the first it
// resumed, and what it got.
type resumed struct {
	from int // index in the first stream's events
	s    *stream
	err  error
}

func checkReplay(v view, again *resumed) Check {
	if again == nil {
		if len(dispatched(v)) == 0 {
			return Check{"replay", Warn, "no events: nothing to resume from"}
		}
		return Check{"replay", Warn, "no ids: nothing to resume from"}
	}
	from := v.events[again.from]
	expected := v.afterID(again.from)
	head := fmt.Sprintf("reconnecting with Last-Event-ID: %s", from.ev.ID)
	if again.err != nil {
		return Check{"replay", Fail, head + " failed: " + again.err.Error()}
	}
	if again.s.status != http.StatusOK {
		return Check{"replay", Fail, head + " was answered " + statusText(again.s)}
	}
	got := again.s.snapshot().events
	for _, a := range got {
		if a.ev.Type == "gap" {
			return Check{"replay", Fail, head + ` gave a gap event: the server could not vouch for what followed an id it had given seconds before`}
		}
	}
	same := func(a, b arrival) bool { return a.ev.ID == b.ev.ID && a.ev.Data == b.ev.Data && a.ev.Type == b.ev.Type }
	had := owned(v.events[:again.from+1]) // what the client had when it reconnected
	got = owned(got)
	next := 0 // the next expected event
	for i, a := range got {
		if slices.ContainsFunc(had, func(h arrival) bool { return same(a, h) }) {
			if same(a, from) {
				return Check{"replay", Fail, head + " gave that event again: the replay repeats the last event the client had"}
			}
			return Check{"replay", Fail, fmt.Sprintf("%s gave the event with id %q again, which came before it", head, a.ev.ID)}
		}
		if slices.ContainsFunc(got[:i], func(b arrival) bool { return same(a, b) }) {
			return Check{"replay", Fail, fmt.Sprintf("%s sent the event with id %q twice", head, a.ev.ID)}
		}
		if next < len(expected) && same(a, expected[next]) {
			next++
			continue
		}
		if j := slices.IndexFunc(expected, func(e arrival) bool { return same(a, e) }); j > next {
			return Check{"replay", Fail, fmt.Sprintf("%s skipped the event with id %q that had followed it (gave %q in its place)", head, expected[next].ev.ID, a.ev.ID)}
		}
		// Anything else is new to the client: an event published since,
		// or one the server gives each new connection.
	}
	if next < len(expected) {
		return Check{"replay", Fail, fmt.Sprintf("%s gave %d of the %d events that had followed it; the next due, with id %q, never came", head, next, len(expected), expected[next].ev.ID)}
	}
	if len(expected) == 0 {
		return Check{"replay", Pass, head + " repeated nothing (no event had come after it)"}
	}
	return Check{"replay", Pass, fmt.Sprintf("%s gave the %d events that had followed it, in order, nothing twice", head, len(expected))}
}
