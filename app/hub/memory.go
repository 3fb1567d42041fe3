package hub

import (
	"context"
	"strconv"
	"sync"
	"time"
)

// Memory is the in-process broker, the default.
type Memory struct {
	e   *Local
	mu  sync.Mutex // orders publishes: ids increase along every log
	seq uint64
}

var _ Broker = (*Memory)(nil)

// NewMemory returns an in-memory broker. Its ids are integers that start
// at the boot time in microseconds, so they keep increasing across
// restarts: an id from before a restart is below every id of this run,
// and a client that resumes from one is told of the gap and given every
// event this run holds.
func NewMemory(o Options) *Memory {
	m := &Memory{seq: uint64(time.Now().UnixMicro())}
	// A channel made now starts at the current id: what came before was
	// not seen here, or was forgotten with the channel.
	m.e = NewLocal(o, func() ID { return ID{Hi: m.seq} })
	return m
}

// Publish appends m to every channel, with one id for all of them. It
// returns ErrFull, publishing nothing, when a channel would have to be
// made past MaxChannels.
func (m *Memory) Publish(_ context.Context, channels []string, msg Message) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	// Every channel is made (or refused) before the id is given: a refusal
	// publishes nothing, and a new channel's floor is below its first event.
	for _, name := range channels {
		ch, err := m.e.channel(name)
		if err != nil {
			return err
		}
		ch.mu.Unlock()
	}
	m.seq++
	id := strconv.FormatUint(m.seq, 10)
	for _, name := range channels {
		if err := m.e.Append(name, id, ID{Hi: m.seq}, msg); err != nil {
			return err
		}
	}
	return nil
}

// Subscribe starts a subscription, replaying from the history first when
// asked to.
func (m *Memory) Subscribe(_ context.Context, r Request) (*Subscription, error) {
	m.mu.Lock() // no publish between finding the start and registering
	defer m.mu.Unlock()
	from, placed := m.replayStart(r)
	return m.e.subscribe(r, from, placed)
}

// replayStart says where each channel's cursor starts: after LastID, else
// the latest Recent events, else live. An id it cannot place (malformed,
// or from the future) starts as a new subscription would, with a gap.
func (m *Memory) replayStart(r Request) (start, bool) {
	recent := func(ch *channel) uint64 {
		return max(ch.start, ch.head-min(ch.head, uint64(r.Recent)))
	}
	fresh := func(ch *channel) uint64 {
		if r.Recent > 0 {
			return recent(ch)
		}
		return ch.head
	}
	if r.LastID == "" {
		if r.Recent > 0 {
			return func(ch *channel) (uint64, bool) { return recent(ch), false }, true
		}
		return nil, true
	}
	k, ok := m.e.keyOf(r.Channels, r.LastID)
	if !ok || m.seq < k.Hi {
		return func(ch *channel) (uint64, bool) { return fresh(ch), true }, false
	}
	return func(ch *channel) (uint64, bool) {
		pos, whole := ch.after(k)
		return pos, !whole
	}, true
}

// keyOf places a client's id: a broker id is its own key; a publisher's
// own id (Message.ID) is found by a scan of the (bounded) history.
func (l *Local) keyOf(channels []string, id string) (ID, bool) {
	for _, name := range channels {
		ch := l.lookup(name)
		if ch == nil {
			continue
		}
		ch.mu.RLock()
		pos, found := uint64(0), false
		if k, ok := ParseID(id); ok {
			pos, found = ch.find(k)
			found = found && ch.at(pos).id == id
		}
		if !found {
			pos, found = ch.findID(id)
		}
		var k ID
		if found {
			k = ch.at(pos).key
		}
		ch.mu.RUnlock()
		if found {
			return k, true
		}
	}
	return ParseID(id)
}

// Subscribers lists the subscribers of any of the channels.
func (m *Memory) Subscribers(_ context.Context, channels ...string) ([]Subscriber, error) {
	return m.e.Subscribers(channels...), nil
}

// Count is how many subscribers the channels have.
func (m *Memory) Count(_ context.Context, channels ...string) (int, error) {
	return m.e.Count(channels...), nil
}

// Close ends every subscription.
func (m *Memory) Close() error {
	m.e.Close()
	return nil
}
