// Package hub is the publish/subscribe core behind every channel stream:
// the Python Publisher library's ideas (channels, per-subscriber publish,
// initial data, a subscriber list) made safe for many subscribers.
//
// Each channel is a bounded log of events, each encoded once with its id;
// a subscription is a cursor into the logs of its channels. History, replay
// after Last-Event-ID and fan-out are one structure: a publish is one
// append plus a non-blocking wake-up per subscriber, and a subscriber that
// falls more than its queue behind is dropped, never waited for.
//
// The Broker interface hides where channels live: Memory keeps them in
// this process; package hub/redisbroker keeps them in Redis Streams so several
// processes serve one site. Both are built on Local, the fan-out of one
// process, which a broker for any other store can use the same way, and
// package hubtest is the suite every broker must pass. The package
// imports nothing from Echo.
package hub

import (
	"context"
	"errors"
	"time"

	"sselab/app/sse"
)

// Props are a subscriber's properties, such as its user or viewer id.
type Props map[string]string

// Message is what a publisher sends. Data goes to every subscriber; when
// Func names a registered Func, each subscriber receives what that function
// returns for its properties instead, with Data as the argument.
type Message struct {
	Type string
	Data string
	Func string

	// ID replaces the broker's id on the wire, such as a timestamp chosen by
	// the publisher; replay finds it in the history too. NoID sends no id
	// line at all.
	ID   string
	NoID bool
	// Retry sends a retry: field. A message with only a retry (no Type, no
	// Data) is a control block: it sets the client's reconnection delay and
	// dispatches no event.
	Retry    time.Duration
	HasRetry bool
	// Final ends the stream of every subscriber after this event, as the
	// seed's close action did.
	Final bool
	// Renderings are other forms of the event, by name, such as the message
	// as server-rendered HTML: a subscriber that asks for one
	// (Request.Rendering) gets it in place of Type and Data, with the same
	// id. Each is encoded once per publish, never per subscriber.
	Renderings map[string]Rendering
}

// Rendering is one other form of a message: its own event type (empty for
// an unnamed event) and data.
type Rendering struct {
	Type, Data string
}

// event is the message as the wire shows it, with the broker's id.
func (m Message) event(brokerID string) sse.Event {
	ev := sse.Event{Type: m.Type, Data: m.Data, Retry: m.Retry, HasRetry: m.HasRetry}
	if m.control() {
		return ev // a control block carries no id: it is not an event
	}
	switch {
	case m.NoID:
	case m.ID != "":
		ev.ID = m.ID
	default:
		ev.ID = brokerID
	}
	return ev
}

func (m Message) control() bool { return m.HasRetry && m.Type == "" && m.Data == "" && m.Func == "" }

// Func makes one subscriber's event from a published argument: the seed's
// publish(callable). Functions are registered by name, so a message that
// names one can travel through Redis to every instance.
type Func func(sub Props, arg string) sse.Event

// Request says what to subscribe to.
type Request struct {
	Channels []string
	Props    Props
	// Initial events are sent first, to this subscriber only (the seed's
	// initial_data). They carry the id of the channel's latest event, so a
	// reconnect from them misses nothing.
	Initial []sse.Event
	// LastID replays every later event of the channels still held before
	// going live. When the broker cannot vouch that nothing after it was
	// lost (later events left the history, or the id is one it cannot
	// place: malformed, from before a restart), the subscription starts
	// with a GapEvent, then what it still holds after the id (for an id it
	// cannot place, what a new subscription gets).
	LastID string
	// Recent replays up to this many of the latest events when LastID is
	// empty, such as the chat's latest messages on page load.
	Recent int
	// Rendering names the rendering of events this subscriber gets
	// (Message.Renderings); events without it come as published.
	Rendering string
}

// Subscriber describes one current subscription.
type Subscriber struct {
	ID       string
	Channels []string
	Props    Props
}

// Broker is where channels live.
type Broker interface {
	// Publish appends m to each channel. It never blocks on a subscriber.
	Publish(ctx context.Context, channels []string, m Message) error
	// Subscribe starts a subscription; Close it when done.
	Subscribe(ctx context.Context, r Request) (*Subscription, error)
	// Subscribers lists the current subscribers of any of the channels.
	Subscribers(ctx context.Context, channels ...string) ([]Subscriber, error)
	// Count is how many subscribers the channels have, without the list.
	Count(ctx context.Context, channels ...string) (int, error)
	// Close ends every subscription and releases the broker.
	Close() error
}

// SecretSharer is a broker that can give every instance using the same
// store one secret, such as the key that signs session cookies: an
// optional capability, asked for with a type assertion on the interface.
type SecretSharer interface {
	SharedSecret(ctx context.Context, name string) (Keys, error)
}

// Keys are a secret's keys, asked for each time they are used: the first
// signs, every one is accepted. They can change while the process runs:
// instances that came to hold different secrets (the store lost the
// shared one, and another instance made its own before this one wrote
// it back) come to agree, each signing with the one the store holds and
// accepting the others'. The slice is not to be changed; a new one
// stands for new keys.
type Keys func() [][]byte

// StaticKeys are keys that never change.
func StaticKeys(key []byte) Keys {
	ks := [][]byte{key}
	return func() [][]byte { return ks }
}

// Observer is told what the hub does, for metrics. Any method may be
// called from many goroutines at once; shard is a hint that lets an
// implementation spread its counters so that they do not contend.
type Observer interface {
	Published(channel string)
	Delivered(shard uint64, n int)
	Dropped()
}

// ErrDropped ends a subscription that fell too far behind. Its client
// reconnects and catches up from the history by Last-Event-ID.
var ErrDropped = errors.New("hub: subscriber dropped: it fell too far behind")

// ErrFinal is returned by Next, with the final event in the buffer, when a
// Final message ended the stream.
var ErrFinal = errors.New("hub: the stream was ended by its publisher")

// ErrMore is returned by Next, with the last of a partial replay in the
// buffer, when a broker's store had more to replay than one subscription
// may hold (see Preface.Partial): write the buffer and end the stream;
// its client reconnects with the last id it got and is replayed the rest.
var ErrMore = errors.New("hub: the replay goes on after a reconnect")

// ErrFull is returned when a bound would be passed (more channels than
// MaxChannels, or a store past its memory bound): the caller refuses the
// request rather than grow, and the client tries again later.
var ErrFull = errors.New("hub: at capacity")

// GapEvent is the type of the event that starts a resumed subscription
// when events after the client's id may have been lost.
const GapEvent = "gap"

// ErrClosed ends subscriptions when the broker closes.
var ErrClosed = errors.New("hub: closed")

// ErrUnavailable wraps a failure of the broker's backing store: publishing
// cannot be done now, and may work later.
var ErrUnavailable = errors.New("hub: broker unavailable")

// Options configure a broker. Every bound has a default, so that a
// broker made with Options{} cannot be made to grow without limit.
type Options struct {
	History int // events kept per channel (default 1000)
	// State names channels of state rather than events, such as a viewer
	// count: each holds only its latest value, and a subscriber that falls
	// behind skips to it instead of being dropped. Publish their values
	// with NoID: they are not part of a stream's id sequence.
	State []string
	// HistoryBytes bounds the history of all channels together, slots and
	// channels included (default 64 MiB); past it the oldest events of all
	// channels go first. ChannelBytes bounds one channel's (default 8 MiB).
	HistoryBytes int64
	ChannelBytes int64
	// MaxChannels bounds how many channels exist at once (default
	// 100,000); past it, what would make a channel gets ErrFull.
	MaxChannels int
	// IdleTTL: a channel that nobody listens to and nobody publishes to
	// for this long is forgotten with its history (default 10 minutes).
	IdleTTL time.Duration
	// StoreBytes (Redis only) refuses publishes with ErrFull while the
	// Redis server's used_memory is past it (default 200 MiB).
	StoreBytes int64
	Queue      int             // events a subscriber may be behind before it is dropped (default 256)
	Funcs      map[string]Func // per-subscriber functions by name
	Observer   Observer        // may be nil
}

// Defaults of Options.
const (
	DefaultHistory      = 1000
	DefaultHistoryBytes = 64 << 20
	DefaultChannelBytes = 8 << 20
	DefaultMaxChannels  = 100_000
	DefaultIdleTTL      = 10 * time.Minute
	DefaultQueue        = 256
	DefaultStoreBytes   = 200 << 20
)

func (o Options) withDefaults() Options {
	if o.History <= 0 {
		o.History = DefaultHistory
	}
	if o.HistoryBytes <= 0 {
		o.HistoryBytes = DefaultHistoryBytes
	}
	if o.ChannelBytes <= 0 {
		o.ChannelBytes = DefaultChannelBytes
	}
	if o.MaxChannels <= 0 {
		o.MaxChannels = DefaultMaxChannels
	}
	if o.IdleTTL <= 0 {
		o.IdleTTL = DefaultIdleTTL
	}
	if o.StoreBytes <= 0 {
		o.StoreBytes = DefaultStoreBytes
	}
	if o.Queue <= 0 {
		o.Queue = DefaultQueue
	}
	if o.Queue > o.History {
		o.Queue = o.History // a cursor must never point outside the log
	}
	if o.Observer == nil {
		o.Observer = nopObserver{}
	}
	return o
}

type nopObserver struct{}

func (nopObserver) Published(string)      {}
func (nopObserver) Delivered(uint64, int) {}
func (nopObserver) Dropped()              {}
