package hub

import (
	"container/heap"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"sselab/app/sse"
)

// entry is one event in a channel's log. A plain event is encoded once,
// id included, and the same bytes go to every subscriber. A personal event
// (fn set) is encoded per subscriber from its argument. Nothing is held
// twice: a plain event keeps only its frame.
type entry struct {
	key        ID
	id         string // the id on the wire; may differ from the key's (Message.ID)
	frame      []byte // the encoded event; nil for a personal event
	fn         Func
	arg        string      // the personal event's argument
	renderings []rendering // other renderings (Message.Renderings), each encoded once
	size       int64       // bytes charged to the history budget, besides its slot
	final      bool
}

// rendering is one rendering of an event, encoded.
type rendering struct {
	name  string
	frame []byte
}

// slotBytes is what one slot of a log costs, held or empty.
var slotBytes = int64(unsafe.Sizeof(entry{}))

// channelBytes is what a channel costs before it holds anything: the
// struct, its map entry and its name.
const channelBytes = 256

// channel is a bounded log: the entries at positions [start, head) are
// held, position p in ring[p % len(ring)]. The ring grows as events come,
// up to size slots, and shrinks when the budget takes events away, so a
// channel costs what it holds: a client can make a channel with one
// request, and must not make it cost a whole history.
type channel struct {
	name string

	mu          sync.RWMutex
	ring        []entry
	start, head uint64
	size        uint64 // the history bound in events
	state       bool   // holds one value; the behind skip to it (Options.State)
	bytes       int64  // what the log costs now, charged to the Local's total
	// floor: an event whose key is below it may have been lost to this
	// log (taken by a bound, or sent before the channel existed here). A
	// client that resumes from below the floor gets a gap event.
	floor ID
	// active is when the channel was last published to or left; with no
	// subscribers, a channel idle for IdleTTL is forgotten.
	active time.Time
	dead   bool // forgotten: whoever finds it must look again
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

func (ch *channel) at(pos uint64) *entry { return &ch.ring[pos%uint64(len(ch.ring))] }

// resize moves the held entries into a ring of n slots.
func (ch *channel) resize(n uint64, total *atomic.Int64) {
	var ring []entry
	if n > 0 {
		ring = make([]entry, n)
	}
	for p := ch.start; p < ch.head; p++ {
		ring[p%n] = *ch.at(p)
	}
	delta := (int64(n) - int64(len(ch.ring))) * slotBytes
	ch.ring = ring
	ch.bytes += delta
	total.Add(delta)
}

// push appends an entry at head, over the oldest one once the log holds
// size events.
func (ch *channel) push(en entry, total *atomic.Int64) {
	if ch.head-ch.start == uint64(len(ch.ring)) {
		if uint64(len(ch.ring)) < ch.size { // grow by doubling, never past size
			ch.resize(min(max(2*uint64(len(ch.ring)), 1), ch.size), total)
		} else {
			ch.evict(total)
			if len(ch.ring) == 0 { // evict freed the slots of a log of one
				ch.resize(1, total)
			}
		}
	}
	*ch.at(ch.head) = en
	ch.head++
	ch.bytes += en.size
	total.Add(en.size)
}

// evict lets the oldest entry go, raising the floor to it: a client that
// saw it misses nothing, one from before it may have.
func (ch *channel) evict(total *atomic.Int64) {
	en := ch.at(ch.start)
	if ch.floor.Less(en.key) {
		ch.floor = en.key
	}
	ch.bytes -= en.size
	total.Add(-en.size)
	*en = entry{}
	ch.start++
	switch n := uint64(len(ch.ring)); {
	case ch.head == ch.start: // empty: a channel that holds nothing costs no slots
		ch.resize(0, total)
	case n > 8 && ch.head-ch.start <= n/4:
		ch.resize(n/2, total)
	}
}

// findID returns the position of the entry whose wire id is id: a
// publisher's own ids (Message.ID) are found this way.
func (ch *channel) findID(id string) (uint64, bool) {
	for pos := ch.head; pos > ch.start; pos-- {
		if ch.at(pos-1).id == id {
			return pos - 1, true
		}
	}
	return 0, false
}

// find returns the position of the entry with key k, if still held.
func (ch *channel) find(k ID) (uint64, bool) {
	lo, hi := ch.start, ch.head
	for lo < hi { // keys increase along the log: binary search
		mid := lo + (hi-lo)/2
		if ch.at(mid).key.Less(k) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo, lo < ch.head && ch.at(lo).key == k
}

// after returns the position of the first entry with a key above k, and
// whether the log can vouch that nothing after k was lost.
func (ch *channel) after(k ID) (pos uint64, whole bool) {
	pos, found := ch.find(k)
	if found {
		pos++
	}
	return pos, !k.Less(ch.floor)
}

// latest is the id of the newest event, or the floor's when the log is
// empty: a client that resumes from it misses nothing.
func (ch *channel) latest() ID {
	if ch.head > ch.start {
		return ch.at(ch.head - 1).key
	}
	return ch.floor
}

// Local is the fan-out of one process, the building block of every
// broker: the bounded channel logs of this process, the subscriptions as
// cursors into them, and the policy that drops a subscriber that falls
// behind. Memory is Local with ids of its own. A broker over a store
// (Redis in package hub/redisbroker; NATS or Postgres alike) appends what it
// reads from the store with Append, and gives each new subscription what
// the store holds for it with Subscription.Begin.
type Local struct {
	opts     Options
	mu       sync.Mutex
	channels map[string]*channel
	swept    time.Time
	nextSub  atomic.Uint64
	closed   bool
	total    atomic.Int64 // bytes of every log, slots and channels included
	trimAt   atomic.Int64 // the total past which a publish trims
	trimming sync.Mutex   // one trim of the total at a time
	// floor is the key a new channel starts from: ids below it were given
	// before the channel existed here.
	floor func() ID
}

// NewLocal makes the fan-out with the options' bounds. floor gives the id
// a new channel starts from: a client that resumes from below it is told
// of a gap. A broker whose replay comes from its store may give nil.
func NewLocal(o Options, floor func() ID) *Local {
	if floor == nil {
		floor = func() ID { return ID{} }
	}
	e := &Local{opts: o.withDefaults(), channels: map[string]*channel{}, floor: floor, swept: time.Now()}
	e.trimAt.Store(e.opts.HistoryBytes)
	return e
}

// channel returns the named channel, making it if it does not exist, or
// ErrFull when MaxChannels are held already. It comes locked.
func (l *Local) channel(name string) (*channel, error) {
	for {
		l.mu.Lock()
		now := time.Now()
		if now.Sub(l.swept) >= l.opts.IdleTTL/4 {
			l.sweep(now)
		}
		ch := l.channels[name]
		if ch == nil {
			if len(l.channels) >= l.opts.MaxChannels {
				l.mu.Unlock()
				return nil, ErrFull
			}
			size, state := uint64(l.opts.History), slices.Contains(l.opts.State, name)
			if state {
				size = 1
			}
			ch = &channel{name: name, size: size, state: state, floor: l.floor(), active: now, bytes: channelBytes + int64(len(name))}
			l.total.Add(ch.bytes)
			l.channels[name] = ch
		}
		l.mu.Unlock()
		ch.mu.Lock()
		if !ch.dead {
			return ch, nil
		}
		ch.mu.Unlock() // swept between the two locks: look again
	}
}

// sweep forgets the channels that nobody listens to and nobody has
// published to for IdleTTL, with their history. It holds e.mu.
func (l *Local) sweep(now time.Time) {
	l.swept = now
	for name, ch := range l.channels {
		if !ch.mu.TryLock() {
			continue // in use right now: not idle
		}
		if len(ch.subs) == 0 && now.Sub(ch.active) >= l.opts.IdleTTL {
			ch.dead = true
			l.total.Add(-ch.bytes)
			ch.ring, ch.bytes = nil, 0
			delete(l.channels, name)
		}
		ch.mu.Unlock()
	}
}

// lookup returns the named channel, or nil: what only reads channels
// makes none.
func (l *Local) lookup(name string) *channel {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.channels[name]
}

// Options are the options in force, defaults applied.
func (l *Local) Options() Options { return l.opts }

// Encode is a message as a subscriber with props that asked for the named
// rendering receives it, with the broker's id, and whether it is Final: a
// broker encodes what it replays from its store this way.
func (l *Local) Encode(id ID, wireID string, m Message, props Props, rendering string) (frame []byte, final bool) {
	en := l.newEntry(id, wireID, m)
	return en.appendTo(nil, props, rendering), en.final
}

// newEntry is a message as a channel's log holds it, with the broker's id:
// a plain event encoded once for every subscriber, or the function that
// makes each subscriber's own.
func (l *Local) newEntry(k ID, brokerID string, m Message) entry {
	ev := m.event(brokerID)
	en := entry{key: k, id: ev.ID, final: m.Final}
	if f := l.opts.Funcs[m.Func]; m.Func != "" && f != nil {
		en.fn, en.arg = f, m.Data
	} else {
		en.frame = ev.AppendTo(nil)
	}
	en.size = int64(len(en.id) + cap(en.frame) + len(en.arg))
	for _, name := range slices.Sorted(maps.Keys(m.Renderings)) {
		alt := ev
		alt.Type, alt.Data = m.Renderings[name].Type, m.Renderings[name].Data
		v := rendering{name: name, frame: alt.AppendTo(nil)}
		en.renderings = append(en.renderings, v)
		en.size += int64(len(name) + cap(v.frame))
	}
	return en
}

// Append adds an event to a channel, with its id on the wire and in
// comparable form, and wakes the channel's subscribers. Ids must increase
// along a channel.
// Subscribers more than a queue behind are dropped here, so the publisher
// never waits for any of them. Past the history's bound in bytes, the
// oldest events of all channels go first.
func (l *Local) Append(name, id string, k ID, m Message) error {
	en := l.newEntry(k, id, m)
	ch, err := l.channel(name)
	if err != nil {
		return err
	}
	ch.push(en, &l.total)
	for ch.bytes > l.opts.ChannelBytes && ch.head-ch.start > 1 {
		ch.evict(&l.total)
	}
	ch.active = time.Now()
	head := ch.head
	ch.mu.Unlock()

	// Only the read lock from here: subscribers that wake take it too, so
	// they can read while the rest are being woken.
	ch.mu.RLock()
	queue := uint64(l.opts.Queue)
	for _, m := range ch.subs {
		s := m.s
		if s.dropped.Load() {
			continue // its handler is on the way out and will Close it
		}
		if !ch.state && head-s.cursors[m.i].Load() > queue {
			s.drop(ErrDropped)
			l.opts.Observer.Dropped()
			continue
		}
		s.wake()
	}
	ch.mu.RUnlock()
	l.opts.Observer.Published(name)
	if l.total.Load() > l.trimAt.Load() {
		l.trim()
	}
	return nil
}

// trim takes the oldest events of all channels, oldest first, until the
// total is a tenth under its bound, so that trims are rare. A subscriber
// whose next event goes is dropped when it next reads, and resumes with a
// gap event.
func (l *Local) trim() {
	if !l.trimming.TryLock() {
		return // another publisher is trimming already
	}
	defer l.trimming.Unlock()
	l.mu.Lock()
	chans := make([]*channel, 0, len(l.channels))
	for _, ch := range l.channels {
		chans = append(chans, ch)
	}
	l.mu.Unlock()
	h := make(byOldest, 0, len(chans))
	for _, ch := range chans {
		ch.mu.RLock()
		if ch.head > ch.start {
			h = append(h, oldest{ch, ch.at(ch.start).key})
		}
		ch.mu.RUnlock()
	}
	heap.Init(&h)
	target := l.opts.HistoryBytes - l.opts.HistoryBytes/10
	// What cannot be trimmed (channels that hold nothing) may keep the
	// total past the bound: the next trim waits for a tenth more, so that
	// publishes do not each walk every channel for nothing. Channels are
	// bounded by MaxChannels, so this is bounded too.
	defer func() {
		l.trimAt.Store(max(l.opts.HistoryBytes, l.total.Load()+l.opts.HistoryBytes/10))
	}()
	for l.total.Load() > target && len(h) > 0 {
		ch := h[0].ch
		ch.mu.Lock()
		if ch.head > ch.start && !ch.dead {
			ch.evict(&l.total)
		}
		if ch.head > ch.start && !ch.dead {
			h[0].key = ch.at(ch.start).key
			heap.Fix(&h, 0)
		} else {
			heap.Pop(&h)
		}
		ch.mu.Unlock()
	}
}

// oldest is a channel with the key of its oldest entry, for trim's heap.
type oldest struct {
	ch  *channel
	key ID
}

type byOldest []oldest

func (q byOldest) Len() int           { return len(q) }
func (q byOldest) Less(i, j int) bool { return q[i].key.Less(q[j].key) }
func (q byOldest) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *byOldest) Push(x any)        { *q = append(*q, x.(oldest)) }
func (q *byOldest) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}

// start says where a subscription's cursor starts in a channel, given the
// channel's lock, and whether the client must be told of a gap.
type start func(ch *channel) (pos uint64, gap bool)

// Subscribe registers a live subscription: it receives what is appended
// from now on. A broker with a store calls Begin on it before returning
// it, to send first what the store holds for it.
func (l *Local) Subscribe(r Request) (*Subscription, error) {
	return l.subscribe(r, nil, true)
}

// subscribe registers a subscription. start gives each channel's first
// position; nil means live only. Initial events carry the latest id of the
// local logs, or LastID when replay starts there.
func (l *Local) subscribe(r Request, from start, placed bool) (*Subscription, error) {
	n := l.nextSub.Add(1)
	s := &Subscription{
		id:        strconv.FormatUint(n, 10),
		shard:     n,
		props:     r.Props,
		rendering: r.Rendering,
		names:     slices.Clone(r.Channels),
		local:     l,
		notify:    make(chan struct{}, 1),
		done:      make(chan struct{}),
		cursors:   make([]atomic.Uint64, len(r.Channels)),
		slots:     make([]int, len(r.Channels)),
	}
	var latest ID
	gap := false
	for i, name := range r.Channels {
		ch, err := l.channel(name)
		if err != nil {
			s.Close()
			return nil, err
		}
		pos := ch.head
		if from != nil {
			var g bool
			pos, g = from(ch)
			gap = gap || g
		}
		s.cursors[i].Store(pos)
		if l := ch.latest(); latest.Less(l) {
			latest = l
		}
		ch.add(s, i)
		s.chans = append(s.chans, ch)
		ch.mu.Unlock()
	}
	if gap {
		s.initial = Gap(r.LastID, placed).AppendTo(s.initial)
	}
	id := latest.String()
	if r.LastID != "" && from != nil && !gap {
		id = r.LastID // initial events mark the position replay starts from
	}
	for _, ev := range r.Initial {
		ev.ID = id
		s.initial = ev.AppendTo(s.initial)
	}
	l.mu.Lock()
	if l.closed {
		s.drop(ErrClosed)
	}
	l.mu.Unlock()
	s.wake()
	return s, nil
}

// Gap is the event that tells a resuming client that events after its id
// may be lost: they left the history (placed), or the id is not one this
// server can place (malformed, from another run).
func Gap(lastID string, placed bool) sse.Event {
	if !placed {
		return sse.Event{Type: GapEvent, Data: "id " + clip(lastID, 64) +
			" is not one this server can place (malformed, or from another run): what follows is what a new connection gets"}
	}
	return sse.Event{Type: GapEvent, Data: "some events after id " + clip(lastID, 64) +
		" are no longer held: what follows is every event still held after it"}
}

// clip shortens s for a message: a client's id is not echoed whole.
func clip(s string, n int) string {
	if len(s) <= n {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:n]) + "…"
}

// Subscribers lists this process's subscribers of any of the channels.
func (l *Local) Subscribers(channels ...string) []Subscriber {
	seen := map[*Subscription]bool{}
	var out []Subscriber
	for _, name := range channels {
		ch := l.lookup(name)
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

// Count is the number of this process's subscriptions of any of the
// channels, without building the list.
func (l *Local) Count(channels ...string) int {
	if len(channels) == 1 {
		ch := l.lookup(channels[0])
		if ch == nil {
			return 0
		}
		ch.mu.RLock()
		defer ch.mu.RUnlock()
		return len(ch.subs)
	}
	seen := map[*Subscription]bool{}
	for _, name := range channels {
		ch := l.lookup(name)
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

// Close ends every subscription.
func (l *Local) Close() {
	l.mu.Lock()
	l.closed = true
	chans := make([]*channel, 0, len(l.channels))
	for _, ch := range l.channels {
		chans = append(chans, ch)
	}
	l.mu.Unlock()
	for _, ch := range chans {
		ch.mu.RLock()
		for _, m := range ch.subs {
			m.s.drop(ErrClosed)
		}
		ch.mu.RUnlock()
	}
}

// appendTo encodes the entry for one subscriber: the rendering it asked for
// when the entry has it, else the event itself.
func (en *entry) appendTo(buf []byte, props Props, rendering string) []byte {
	if rendering != "" {
		for _, v := range en.renderings {
			if v.name == rendering {
				return append(buf, v.frame...)
			}
		}
	}
	if en.fn == nil {
		return append(buf, en.frame...)
	}
	ev := en.fn(props, en.arg)
	ev.ID = en.id
	return ev.AppendTo(buf)
}

// Subscription is one subscriber's cursor into its channels.
type Subscription struct {
	id        string
	shard     uint64 // spreads counter updates, so subscribers do not contend
	props     Props
	rendering string // the rendering it asked for (Request.Rendering)
	names     []string
	local     *Local
	chans     []*channel
	cursors   []atomic.Uint64
	slots     []int // per channel: the index of this subscription in its subs
	notify    chan struct{}
	dropped   atomic.Bool
	closed    sync.Once

	// A subscription has no context of its own (one per stream would cost
	// memory on every open stream); done and cause say how it ended.
	mu     sync.Mutex
	done   chan struct{}
	cause  error
	onDrop func(cause error)

	initial []byte   // a gap event and initial events, sent first
	replay  [][]byte // events fetched from a store before going live (Redis)
	final   bool     // the replay ends with a Final event
	partial bool     // the replay is not all: the stream ends after it (ErrMore)
	skip    []ID     // per channel: live entries up to this key were replayed already
	onClose func()   // the broker's own clean-up
}

// ID identifies the subscription among the broker's subscribers.
func (s *Subscription) ID() string { return s.id }

// Props are the subscriber's properties.
func (s *Subscription) Props() Props { return s.props }

// Preface is what a broker with a store sends a new subscription before
// its live events, in this order: a gap event, the initial events, the
// replay.
type Preface struct {
	Gap    bool   // events after LastID may have been lost
	Placed bool   // LastID is an id the store gave (the gap's wording)
	LastID string // the client's Last-Event-ID
	// Initial events carry InitialID: the id a client resumes from
	// without missing anything.
	Initial   []sse.Event
	InitialID string
	Replay    [][]byte // encoded events from the store (Local.Encode)
	// Skip, per channel of the request, is the last id the replay covered:
	// live events up to it are not sent again.
	Skip  []ID
	Final bool // the replay ends with a Final event
	// Partial: the store holds more after the replay than the
	// subscription was given; once it is sent the stream ends (ErrMore).
	Partial bool
	Close   func() // the broker's own clean-up when the subscription closes
}

// Begin sets what the subscription sends before its live events. A broker
// calls it once, before it returns the subscription from Subscribe.
func (s *Subscription) Begin(p Preface) {
	if p.Gap {
		s.initial = Gap(p.LastID, p.Placed).AppendTo(s.initial)
	}
	for _, ev := range p.Initial {
		ev.ID = p.InitialID
		s.initial = ev.AppendTo(s.initial)
	}
	s.replay, s.skip, s.final, s.partial, s.onClose = p.Replay, p.Skip, p.Final, p.Partial, p.Close
}

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

// MaxBatch bounds what one Next appends: past it, Next stops after the
// event under way and Ready fires again for the rest. A replay of a whole
// history (a thousand events of 60 kB) is written in pieces, so no stream
// holds more than about this much at once, however far behind it starts
// and however slowly its client reads.
const MaxBatch = 64 << 10

// Next appends the pending events, encoded, to buf: first a gap event
// and the initial events, then any replay, then the channels' logs from
// the cursors, until buf holds MaxBatch bytes (Ready then fires again for
// the rest). It holds a channel's read lock only to copy bytes, never
// while writing to a client.
//
// It returns nil while the subscription lasts; ErrFinal, with the final
// event in buf, when a Final message ended it (write buf, then end the
// stream); ErrDropped or ErrClosed when it ended otherwise (end the stream:
// the client resumes by Last-Event-ID).
func (s *Subscription) Next(buf []byte) ([]byte, error) {
	if s.dropped.Load() {
		return buf, s.Err()
	}
	if s.initial != nil {
		buf, s.initial = append(buf, s.initial...), nil
	}
	delivered := 0
	for len(s.replay) > 0 {
		if len(buf) >= MaxBatch {
			return s.more(buf, delivered)
		}
		buf = append(buf, s.replay[0]...)
		s.replay[0] = nil // the replay's memory goes as it is sent
		s.replay = s.replay[1:]
		delivered++
	}
	s.replay = nil
	if s.final {
		s.local.opts.Observer.Delivered(s.shard, delivered)
		s.drop(ErrFinal)
		return buf, ErrFinal
	}
	if s.partial {
		s.local.opts.Observer.Delivered(s.shard, delivered)
		s.drop(ErrMore)
		return buf, ErrMore
	}
	for i, ch := range s.chans {
		ch.mu.RLock()
		pos, head := s.cursors[i].Load(), ch.head
		if pos < ch.start && ch.state {
			pos = ch.start // only the latest value matters
		}
		if pos < ch.start {
			ch.mu.RUnlock()
			s.drop(ErrDropped)
			return buf, ErrDropped
		}
		full := false
		for ; pos < head; pos++ {
			if len(buf) >= MaxBatch {
				full = true
				break
			}
			en := ch.at(pos)
			if s.skip != nil && !s.skip[i].Less(en.key) {
				continue // replayed from the store already
			}
			buf = en.appendTo(buf, s.props, s.rendering)
			delivered++
			if en.final {
				s.cursors[i].Store(pos + 1)
				ch.mu.RUnlock()
				s.local.opts.Observer.Delivered(s.shard, delivered)
				s.drop(ErrFinal)
				return buf, ErrFinal
			}
		}
		s.cursors[i].Store(pos)
		ch.mu.RUnlock()
		if full {
			return s.more(buf, delivered)
		}
	}
	if delivered > 0 {
		s.local.opts.Observer.Delivered(s.shard, delivered)
	}
	return buf, nil
}

// more ends a Next whose batch is full: what is left comes on the next
// call, which Ready asks for.
func (s *Subscription) more(buf []byte, delivered int) ([]byte, error) {
	if delivered > 0 {
		s.local.opts.Observer.Delivered(s.shard, delivered)
	}
	s.wake()
	return buf, nil
}

// Close ends the subscription and removes it from the subscriber list.
func (s *Subscription) Close() {
	s.closed.Do(func() {
		for i, ch := range s.chans {
			ch.mu.Lock()
			ch.remove(s, i)
			ch.active = time.Now()
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
