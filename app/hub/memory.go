package hub

import (
	"context"
	"strconv"
	"sync"
	"time"
)

// Memory is the in-process broker, the default.
type Memory struct {
	e   *engine
	mu  sync.Mutex // orders publishes: ids increase along every log
	seq uint64
}

var _ Broker = (*Memory)(nil)

// NewMemory returns an in-memory broker. Its ids are integers that start
// at the boot time in microseconds, so they keep increasing across
// restarts and an id from before a restart is never mistaken for a new one.
func NewMemory(o Options) *Memory {
	return &Memory{e: newEngine(o), seq: uint64(time.Now().UnixMicro())}
}

// Publish appends m to every channel, with one id for all of them.
func (m *Memory) Publish(_ context.Context, channels []string, msg Message) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.seq++
	id := strconv.FormatUint(m.seq, 10)
	for _, name := range channels {
		m.e.append(name, id, key{hi: m.seq}, msg)
	}
	return nil
}

// Subscribe starts a subscription, replaying from the history first when
// asked to.
func (m *Memory) Subscribe(_ context.Context, r Request) (*Subscription, error) {
	m.mu.Lock() // no publish between finding the start and registering
	defer m.mu.Unlock()
	return m.e.subscribe(r, replayStart(m.e, r)), nil
}

// replayStart says where each channel's cursor starts: after LastID if it
// is still in the history of one of the channels, else the latest Recent
// events, else live.
func replayStart(e *engine, r Request) func(*channel) uint64 {
	if r.LastID != "" {
		k, ok := e.keyOf(r.Channels, r.LastID)
		if !ok {
			return nil // an id no longer in the history replays nothing
		}
		return func(ch *channel) uint64 { return ch.after(k) }
	}
	if r.Recent > 0 {
		return func(ch *channel) uint64 {
			return max(ch.oldest(), ch.head-min(ch.head, uint64(r.Recent)))
		}
	}
	return nil
}

// keyOf finds the event with wire id id in the channels' history and
// returns its key: a broker id directly, a publisher's own id by a scan of
// the (bounded) history.
func (e *engine) keyOf(channels []string, id string) (key, bool) {
	for _, name := range channels {
		ch := e.lookup(name)
		if ch == nil {
			continue
		}
		ch.mu.RLock()
		pos, found := uint64(0), false
		if k, ok := parseKey(id); ok {
			pos, found = ch.find(k)
			found = found && ch.at(pos).id == id
		}
		if !found {
			pos, found = ch.findID(id)
		}
		var k key
		if found {
			k = ch.at(pos).key
		}
		ch.mu.RUnlock()
		if found {
			return k, true
		}
	}
	return key{}, false
}

// Subscribers lists the subscribers of any of the channels.
func (m *Memory) Subscribers(_ context.Context, channels ...string) ([]Subscriber, error) {
	return m.e.subscribers(channels...), nil
}

// Count is how many subscribers the channels have.
func (m *Memory) Count(_ context.Context, channels ...string) (int, error) {
	return m.e.count(channels...), nil
}

// Close ends every subscription.
func (m *Memory) Close() error {
	m.e.close()
	return nil
}
