package hub

import (
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
)

// entry is one event in a channel's log. A plain event is encoded once,
// id included, and the same bytes go to every subscriber. A personal event
// (fn set) is encoded per subscriber.
type entry struct {
	key   key
	id    string // the id on the wire; may differ from the key's (Message.ID)
	frame []byte // the encoded event; nil for a personal event
	msg   Message
	fn    Func
	final bool
}

// channel is a bounded log: ring holds the entries with positions
// [head-len(ring), head). It grows as events come, up to size entries, and
// then wraps, so a channel that holds a few events costs a few entries: a
// client can make a channel with one request, and must not make it cost a
// whole history.
type channel struct {
	mu   sync.RWMutex
	ring []entry
	size uint64 // the history bound
	head uint64
	// subs changes in place under the write lock: O(1) to add and to
	// remove, and no garbage when thousands of streams open at once.
	subs []member
}

// member is a subscription of a channel, with the index of its cursor.
type member struct {
	s *Subscription
	i int
}

func (ch *channel) add(s *Subscription, i int) {
	s.slots[i] = len(ch.subs)
	ch.subs = append(ch.subs, member{s, i})
}

// remove swaps the last member into s's place.
func (ch *channel) remove(s *Subscription, i int) {
	at, last := s.slots[i], len(ch.subs)-1
	moved := ch.subs[last]
	ch.subs[at] = moved
	moved.s.slots[moved.i] = at
	ch.subs[last] = member{}
	ch.subs = ch.subs[:last]
}

func (ch *channel) oldest() uint64 {
	if n := uint64(len(ch.ring)); ch.head > n {
		return ch.head - n
	}
	return 0
}

func (ch *channel) at(pos uint64) *entry { return &ch.ring[pos%ch.size] }

// push appends an entry at head, over the oldest one once the log is full.
// Until then len(ring) == head, so the new entry's index is its position.
func (ch *channel) push(en entry) {
	n := uint64(len(ch.ring))
	if n == ch.size {
		*ch.at(ch.head) = en
		ch.head++
		return
	}
	if n == uint64(cap(ch.ring)) { // grow by doubling, never past size
		grown := make([]entry, n, min(max(2*n, 8), ch.size))
		copy(grown, ch.ring)
		ch.ring = grown
	}
	ch.ring = append(ch.ring, en)
	ch.head++
}

// findID returns the position of the entry whose wire id is id: a
// publisher's own ids (Message.ID) are found this way.
func (ch *channel) findID(id string) (uint64, bool) {
	for pos := ch.head; pos > ch.oldest(); pos-- {
		if ch.at(pos-1).id == id {
			return pos - 1, true
		}
	}
	return 0, false
}

// find returns the position of the entry with key k, if still held.
func (ch *channel) find(k key) (uint64, bool) {
	lo, hi := ch.oldest(), ch.head
	for lo < hi { // keys increase along the log: binary search
		mid := lo + (hi-lo)/2
		if ch.at(mid).key.less(k) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo, lo < ch.head && ch.at(lo).key == k
}

// after returns the position of the first entry with a key above k.
func (ch *channel) after(k key) uint64 {
	pos, found := ch.find(k)
	if found {
		pos++
	}
	return pos
}

// engine is the local fan-out shared by both brokers: the channel logs of
// this process and their subscriptions.
type engine struct {
	opts     Options
	mu       sync.Mutex
	channels map[string]*channel
	nextSub  atomic.Uint64
	closed   bool
}

func newEngine(o Options) *engine {
	return &engine{opts: o.withDefaults(), channels: map[string]*channel{}}
}

// channel returns the named channel, making it if it does not exist.
func (e *engine) channel(name string) *channel {
	e.mu.Lock()
	defer e.mu.Unlock()
	ch := e.channels[name]
	if ch == nil {
		ch = &channel{size: uint64(e.opts.History)}
		e.channels[name] = ch
	}
	return ch
}

// lookup returns the named channel, or nil: what only reads channels
// makes none.
func (e *engine) lookup(name string) *channel {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.channels[name]
}

// newEntry is a message as a channel's log holds it, with the broker's id:
// a plain event encoded once for every subscriber, or the function that
// makes each subscriber's own.
func (e *engine) newEntry(k key, brokerID string, m Message) entry {
	ev := m.event(brokerID)
	en := entry{key: k, id: ev.ID, msg: m, final: m.Final}
	if f := e.opts.Funcs[m.Func]; m.Func != "" && f != nil {
		en.fn = f
	} else {
		en.frame = ev.AppendTo(nil)
	}
	return en
}

// append adds an event with its id to a channel and wakes its subscribers.
// Subscribers more than a queue behind are dropped here, so the publisher
// never waits for any of them.
func (e *engine) append(name, id string, k key, m Message) {
	en := e.newEntry(k, id, m)
	ch := e.channel(name)
	ch.mu.Lock()
	ch.push(en)
	head := ch.head
	ch.mu.Unlock()

	// Only the read lock from here: subscribers that wake take it too, so
	// they can read while the rest are being woken.
	ch.mu.RLock()
	defer ch.mu.RUnlock()
	queue := uint64(e.opts.Queue)
	for _, m := range ch.subs {
		s := m.s
		if s.dropped.Load() {
			continue // its handler is on the way out and will Close it
		}
		if head-s.cursors[m.i].Load() > queue {
			s.drop(ErrDropped)
			e.opts.Observer.Dropped()
			continue
		}
		s.wake()
	}
	e.opts.Observer.Published(name)
}

// subscribe registers a subscription. start gives each channel's first
// position given the channel's lock; nil means live only. Initial events
// carry the latest id of the local logs, or LastID when replay starts there.
func (e *engine) subscribe(r Request, start func(ch *channel) uint64) *Subscription {
	n := e.nextSub.Add(1)
	s := &Subscription{
		id:      strconv.FormatUint(n, 10),
		shard:   n,
		props:   r.Props,
		names:   slices.Clone(r.Channels),
		engine:  e,
		notify:  make(chan struct{}, 1),
		done:    make(chan struct{}),
		cursors: make([]atomic.Uint64, len(r.Channels)),
		slots:   make([]int, len(r.Channels)),
	}
	latest := ""
	for i, name := range r.Channels {
		ch := e.channel(name)
		ch.mu.Lock()
		pos := ch.head
		if start != nil {
			pos = start(ch)
		}
		s.cursors[i].Store(pos)
		if ch.head > 0 {
			if id := ch.at(ch.head - 1).id; latest == "" || idLess(latest, id) {
				latest = id
			}
		}
		ch.add(s, i)
		s.chans = append(s.chans, ch)
		ch.mu.Unlock()
	}
	if latest == "" {
		latest = "0"
	}
	if r.LastID != "" && start != nil {
		latest = r.LastID // initial events mark the position replay starts from
	}
	for _, ev := range r.Initial {
		ev.ID = latest
		s.initial = ev.AppendTo(s.initial)
	}
	e.mu.Lock()
	if e.closed {
		s.drop(ErrClosed)
	}
	e.mu.Unlock()
	s.wake()
	return s
}

func idLess(a, b string) bool {
	ka, _ := parseKey(a)
	kb, _ := parseKey(b)
	return ka.less(kb)
}

func (e *engine) subscribers(channels ...string) []Subscriber {
	seen := map[*Subscription]bool{}
	var out []Subscriber
	for _, name := range channels {
		ch := e.lookup(name)
		if ch == nil {
			continue
		}
		ch.mu.RLock()
		for _, m := range ch.subs {
			if !seen[m.s] {
				seen[m.s] = true
				out = append(out, Subscriber{ID: m.s.id, Channels: slices.Clone(m.s.names), Props: m.s.props})
			}
		}
		ch.mu.RUnlock()
	}
	slices.SortFunc(out, func(a, b Subscriber) int { return compareIDs(a.ID, b.ID) })
	return out
}

// compareIDs orders subscription ids, which are decimal numbers.
func compareIDs(a, b string) int {
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	if a < b {
		return -1
	}
	if a > b {
		return 1
	}
	return 0
}

// count is the number of subscriptions of any of the channels, without
// building the list.
func (e *engine) count(channels ...string) int {
	if len(channels) == 1 {
		ch := e.lookup(channels[0])
		if ch == nil {
			return 0
		}
		ch.mu.RLock()
		defer ch.mu.RUnlock()
		return len(ch.subs)
	}
	seen := map[*Subscription]bool{}
	for _, name := range channels {
		ch := e.lookup(name)
		if ch == nil {
			continue
		}
		ch.mu.RLock()
		for _, m := range ch.subs {
			seen[m.s] = true
		}
		ch.mu.RUnlock()
	}
	return len(seen)
}

func (e *engine) close() {
	e.mu.Lock()
	e.closed = true
	chans := make([]*channel, 0, len(e.channels))
	for _, ch := range e.channels {
		chans = append(chans, ch)
	}
	e.mu.Unlock()
	for _, ch := range chans {
		ch.mu.RLock()
		for _, m := range ch.subs {
			m.s.drop(ErrClosed)
		}
		ch.mu.RUnlock()
	}
}

// appendTo encodes the entry for one subscriber.
func (en *entry) appendTo(buf []byte, props Props) []byte {
	if en.fn == nil {
		return append(buf, en.frame...)
	}
	ev := en.fn(props, en.msg.Data)
	ev.ID = en.id
	return ev.AppendTo(buf)
}

// Subscription is one subscriber's cursor into its channels.
type Subscription struct {
	id      string
	shard   uint64 // spreads counter updates, so subscribers do not contend
	props   Props
	names   []string
	engine  *engine
	chans   []*channel
	cursors []atomic.Uint64
	slots   []int // per channel: the index of this subscription in its subs
	notify  chan struct{}
	dropped atomic.Bool
	closed  sync.Once

	// A subscription has no context of its own (one per stream would cost
	// memory on every open stream); done and cause say how it ended.
	mu     sync.Mutex
	done   chan struct{}
	cause  error
	onDrop func(cause error)

	initial []byte   // initial events, sent first
	replay  [][]byte // events fetched from a store before going live (Redis)
	final   bool     // the replay ends with a Final event
	skip    []key    // per channel: live entries up to this key were replayed already
	onClose func()   // the broker's own clean-up
}

// ID identifies the subscription among the broker's subscribers.
func (s *Subscription) ID() string { return s.id }

// Ready has a value when Next may have something to send.
func (s *Subscription) Ready() <-chan struct{} { return s.notify }

// Done is closed when the subscription ends: dropped, closed, or its
// broker closed. Err says which.
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Err is why the subscription ended (ErrDropped, ErrFinal, ErrClosed), or
// nil while it lasts.
func (s *Subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cause
}

// OnDrop registers f to run, in the goroutine that ends the subscription,
// when it ends for any reason but Close. Close waits for a running f and
// prevents later ones, so f may use what its caller owns until Close
// returns: a stream handler uses it to cut a write blocked on a client that
// stopped reading.
func (s *Subscription) OnDrop(f func(cause error)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onDrop = f
}

func (s *Subscription) wake() {
	select {
	case s.notify <- struct{}{}:
	default: // a wake-up is pending already
	}
}

func (s *Subscription) drop(cause error) {
	if !s.dropped.CompareAndSwap(false, true) {
		return
	}
	s.mu.Lock()
	s.cause = cause
	close(s.done)
	if s.onDrop != nil {
		s.onDrop(cause) // under mu: Close waits for it
	}
	s.mu.Unlock()
	s.wake()
}

// Next appends every pending event, encoded, to buf: first the initial
// events, then any replay, then the channels' logs from the cursors. It
// holds a channel's read lock only to copy bytes, never while writing to a
// client. It returns ErrDropped or ErrClosed when the subscription ended.
func (s *Subscription) Next(buf []byte) ([]byte, error) {
	if s.dropped.Load() {
		return buf, s.Err()
	}
	if s.initial != nil {
		buf, s.initial = append(buf, s.initial...), nil
	}
	for _, f := range s.replay {
		buf = append(buf, f...)
	}
	delivered := len(s.replay)
	s.replay = nil
	if s.final {
		s.engine.opts.Observer.Delivered(s.shard, delivered)
		s.drop(ErrFinal)
		return buf, ErrFinal
	}
	for i, ch := range s.chans {
		ch.mu.RLock()
		pos, head := s.cursors[i].Load(), ch.head
		if pos < ch.oldest() {
			ch.mu.RUnlock()
			s.drop(ErrDropped)
			return buf, ErrDropped
		}
		for ; pos < head; pos++ {
			en := ch.at(pos)
			if s.skip != nil && !s.skip[i].less(en.key) {
				continue // replayed from the store already
			}
			buf = en.appendTo(buf, s.props)
			delivered++
			if en.final {
				s.cursors[i].Store(pos + 1)
				ch.mu.RUnlock()
				s.engine.opts.Observer.Delivered(s.shard, delivered)
				s.drop(ErrFinal)
				return buf, ErrFinal
			}
		}
		s.cursors[i].Store(pos)
		ch.mu.RUnlock()
	}
	if delivered > 0 {
		s.engine.opts.Observer.Delivered(s.shard, delivered)
	}
	return buf, nil
}

// Close ends the subscription and removes it from the subscriber list.
func (s *Subscription) Close() {
	s.closed.Do(func() {
		for i, ch := range s.chans {
			ch.mu.Lock()
			ch.remove(s, i)
			ch.mu.Unlock()
		}
		s.mu.Lock()
		s.onDrop = nil
		s.mu.Unlock()
		s.drop(ErrClosed)
		if s.onClose != nil {
			s.onClose()
		}
	})
}
