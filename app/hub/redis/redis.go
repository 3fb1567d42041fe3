// Package redis is the hub's broker for several instances: channels are
// Redis Streams, fanned out in each process by a hub.Local. It uses only
// the hub's exported API, as a broker for any other store would.
package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	redis "github.com/redis/go-redis/v9"

	"sselab/app/hub"
)

// Redis is the broker for several instances: every channel is a Redis
// Stream. Publish is one script that XADDs, which gives the event its id,
// trims the stream to the history bound, keeps its floor (see
// publishScript), and sets its keys to expire after IdleTTL; a channel
// with local subscribers has its expiry renewed by the heartbeat, so only
// channels that nobody listens to and nobody publishes to expire. Each
// process runs Readers XREAD loops, each one blocking XREAD over its share
// of the channels that have local subscribers, however many, and appends
// what it reads to a hub.Local, so fan-out stays in process: an instance
// holds at most MaxConns connections whatever its channels. Replay after Last-Event-ID reads the stream with XRANGE, so it
// works whichever instance the client reconnects to.
//
// When Redis goes away, Publish and Subscribe return hub.ErrUnavailable, open
// streams stay open (their keepalives go on), the loops retry with
// back-off, and go-redis reconnects by itself.
type Broker struct {
	rdb      *redis.Client
	e        *hub.Local
	opts     hub.Options // the local fan-out's, defaults applied
	log      *slog.Logger
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	instance string

	// The store's memory bound: used is Redis's used_memory when last
	// read, since what this instance has published since.
	memMu     sync.Mutex
	memAt     time.Time
	memUsed   int64
	memSince  int64
	mu        sync.Mutex
	followers map[string]*follower
	readers   [Readers]*reader
	presence  map[string]presence // subscription id -> its presence record
}

var (
	_ hub.Broker       = (*Broker)(nil)
	_ hub.SecretSharer = (*Broker)(nil)
)

// follower counts the local subscriptions of a channel this process reads.
type follower struct{ refs int }

// Readers is how many XREAD loops an instance runs: each follows its share
// of the channels with local listeners, any number of them, in one
// blocking XREAD over all their streams. MaxConns bounds the connections
// an instance holds: the readers' plus the pool that publishes, counts and
// replays.
const (
	Readers  = 4
	MaxConns = 16
)

// reader is one XREAD loop and the channels it follows.
type reader struct {
	mu   sync.Mutex
	last map[string]string // followed channel -> the last id read
	wake string            // a stream whose entries make the loop look again
}

const (
	keyPrefix   = "sselab:"
	presenceTTL = 30 * time.Second
	blockFor    = 2 * time.Second
)

func streamKey(channel string) string { return keyPrefix + "ch:" + channel }

// floorKey holds the id below which a stream's events may have been lost
// (see publishScript).
func floorKey(channel string) string { return keyPrefix + "floor:" + channel }

// New connects to the Redis server at url (redis://host:port/db).
func New(ctx context.Context, url string, o hub.Options, log *slog.Logger) (*Broker, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("-redis %q: %w", url, err)
	}
	opt.ContextTimeoutEnabled = true // a cancelled context ends a blocking XREAD
	// go-redis has one logger for the process; send it to the first
	// broker's, at debug level: the broker itself reports what matters (a
	// publish that fails, a channel loop that retries).
	setRedisLogger.Do(func() { redis.SetLogger(redisLogger{log}) })
	// The readers hold a connection each while they block; the rest of the
	// pool publishes, counts and replays.
	opt.PoolSize = MaxConns
	rdb := redis.NewClient(opt)
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("redis at %s: %w", opt.Addr, err)
	}
	id := make([]byte, 8)
	rand.Read(id)
	bctx, cancel := context.WithCancel(context.Background())
	local := hub.NewLocal(o, nil)
	r := &Broker{
		rdb: rdb, e: local, opts: local.Options(), log: log, ctx: bctx, cancel: cancel,
		instance:  hex.EncodeToString(id),
		followers: map[string]*follower{},
		presence:  map[string]presence{},
	}
	for i := range r.readers {
		r.readers[i] = &reader{last: map[string]string{}, wake: fmt.Sprintf("%swake:%s:%d", keyPrefix, r.instance, i)}
		r.wg.Add(1)
		go r.read(r.readers[i])
	}
	r.wg.Add(1)
	go r.heartbeat()
	return r, nil
}

var setRedisLogger sync.Once

// redisLogger puts go-redis's messages into slog.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, "go-redis: "+fmt.Sprintf(format, v...))
}

func unavailable(err error) error { return fmt.Errorf("%w: %v", hub.ErrUnavailable, err) }

// publishScript adds one event to each of n streams: KEYS are stream and
// floor key pairs, ARGV the expiry in ms, n, each stream's history bound,
// then the event's fields. It returns the ids.
//
// A stream's floor key holds the id below which events may have been lost
// to it: its birth (the first event since it was last made, or when a
// subscriber first asked for it), raised to the last event trimmed away.
// Redis keeps no such mark itself (XINFO's max-deleted-entry-id counts
// XDEL, not trimming), so the script trims: when the stream is a sixteenth
// past its bound, it reads the ids it will remove, trims exactly, and
// raises the floor to the last of them.
var publishScript = redis.NewScript(`
local function less(a, b)
  local ams, aseq = string.match(a, '^(%d+)-(%d+)$')
  local bms, bseq = string.match(b, '^(%d+)-(%d+)$')
  ams, aseq, bms, bseq = tonumber(ams), tonumber(aseq), tonumber(bms), tonumber(bseq)
  return ams < bms or (ams == bms and aseq < bseq)
end
local ttl, n = ARGV[1], tonumber(ARGV[2])
local fields = {}
for i = n + 3, #ARGV do fields[#fields + 1] = ARGV[i] end
local ids = {}
for i = 1, n do
  local stream, floor, bound = KEYS[2*i-1], KEYS[2*i], tonumber(ARGV[2+i])
  local fresh = redis.call('EXISTS', stream) == 0
  local id = redis.call('XADD', stream, '*', unpack(fields))
  if fresh then redis.call('SET', floor, id, 'NX') end
  local len = redis.call('XLEN', stream)
  if len > bound + math.floor(bound / 16) then
    local gone = redis.call('XRANGE', stream, '-', '+', 'COUNT', len - bound)
    local last = gone[#gone][1]
    redis.call('XTRIM', stream, 'MAXLEN', '=', bound)
    local was = redis.call('GET', floor)
    if not was or less(was, last) then redis.call('SET', floor, last) end
  end
  redis.call('PEXPIRE', stream, ttl)
  redis.call('PEXPIRE', floor, ttl)
  ids[i] = id
end
return ids
`)

// Publish adds m to each channel's stream, or returns hub.ErrFull while Redis
// holds more than StoreBytes.
func (r *Broker) Publish(ctx context.Context, channels []string, m hub.Message) error {
	fields := encodeMessage(m)
	size := 0
	for _, f := range fields {
		size += len(f.(string))
	}
	if err := r.roomFor(ctx, size*len(channels)); err != nil {
		return err
	}
	keys := make([]string, 0, 2*len(channels))
	args := []any{r.opts.IdleTTL.Milliseconds(), len(channels)}
	for _, name := range channels {
		keys = append(keys, streamKey(name), floorKey(name))
		args = append(args, r.maxLen(name))
	}
	if err := publishScript.Run(ctx, r.rdb, keys, append(args, fields...)...).Err(); err != nil {
		return unavailable(err)
	}
	return nil
}

func (r *Broker) maxLen(channel string) int {
	if slices.Contains(r.opts.State, channel) {
		return 1
	}
	return r.opts.History
}

// roomFor refuses a publish while Redis holds more than StoreBytes. It
// reads used_memory at most once a second or after each MiB this instance
// published, so instances together pass the bound by little.
func (r *Broker) roomFor(ctx context.Context, n int) error {
	r.memMu.Lock()
	defer r.memMu.Unlock()
	if time.Since(r.memAt) > time.Second || r.memSince > 1<<20 {
		info, err := r.rdb.Info(ctx, "memory").Result()
		if err != nil {
			return unavailable(err)
		}
		r.memUsed, r.memAt, r.memSince = usedMemory(info), time.Now(), 0
	}
	if r.memUsed+r.memSince > r.opts.StoreBytes {
		return fmt.Errorf("%w: Redis holds %d bytes, past the bound of %d", hub.ErrFull, r.memUsed+r.memSince, r.opts.StoreBytes)
	}
	r.memSince += int64(n)
	return nil
}

// usedMemory reads used_memory from INFO memory.
func usedMemory(info string) int64 {
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

// encodeMessage is a message as stream fields; empty fields are left out.
func encodeMessage(m hub.Message) []any {
	v := []any{"type", m.Type, "data", m.Data}
	add := func(k, val string) {
		if val != "" {
			v = append(v, k, val)
		}
	}
	add("func", m.Func)
	add("id", m.ID)
	if m.NoID {
		add("noid", "1")
	}
	if m.HasRetry {
		add("retry", strconv.FormatInt(m.Retry.Milliseconds(), 10))
	}
	if m.Final {
		add("final", "1")
	}
	for _, name := range slices.Sorted(maps.Keys(m.Views)) {
		v = append(v, "view:"+name, m.Views[name])
	}
	return v
}

func toMessage(v map[string]any) hub.Message {
	str := func(k string) string { s, _ := v[k].(string); return s }
	m := hub.Message{Type: str("type"), Data: str("data"), Func: str("func"), ID: str("id"), NoID: str("noid") == "1", Final: str("final") == "1"}
	for k, val := range v {
		if name, ok := strings.CutPrefix(k, "view:"); ok {
			if m.Views == nil {
				m.Views = map[string]string{}
			}
			m.Views[name], _ = val.(string)
		}
	}
	if ms, err := strconv.ParseInt(str("retry"), 10, 64); err == nil {
		m.Retry, m.HasRetry = time.Duration(ms)*time.Millisecond, true
	}
	return m
}

// Subscribe follows the channels, replays from the streams when asked,
// then goes live from the local logs, skipping what the replay covered.
func (r *Broker) Subscribe(ctx context.Context, req hub.Request) (*hub.Subscription, error) {
	release, err := r.followAll(req.Channels)
	if err != nil {
		return nil, err
	}
	// Registered before the replay is read: whatever the replay misses
	// arrives live, and what both have is skipped by id. Initial events
	// come with the preface: their id is the stream's, which the local
	// logs may lack.
	live := req
	live.Initial = nil
	s, err := r.e.Subscribe(live)
	if err != nil {
		release()
		return nil, err
	}
	p, err := r.replay(ctx, req, s.Props())
	if err != nil {
		s.Close()
		release()
		return nil, err
	}
	gone := r.present(ctx, s.ID(), req)
	p.Close = func() { gone(); release() }
	s.Begin(p)
	return s, nil
}

// followAll makes sure this process reads every channel; release undoes
// it.
func (r *Broker) followAll(channels []string) (release func(), err error) {
	for i, name := range channels {
		if err := r.follow(name); err != nil {
			for _, n := range channels[:i] {
				r.unfollow(n)
			}
			return nil, err
		}
	}
	return func() {
		for _, n := range channels {
			r.unfollow(n)
		}
	}, nil
}

// present records a local subscription where every instance sees it, and
// returns what removes the record.
func (r *Broker) present(ctx context.Context, id string, req hub.Request) (gone func()) {
	rec, _ := json.Marshal(hub.Subscriber{ID: r.instance + "-" + id, Channels: req.Channels, Props: req.Props})
	p := presence{channels: slices.Clone(req.Channels), record: string(rec)}
	r.mu.Lock()
	r.presence[id] = p
	r.mu.Unlock()
	if _, err := r.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		for _, ch := range p.channels {
			pl.HSet(ctx, r.presenceKey(ch), id, p.record)
			pl.Expire(ctx, r.presenceKey(ch), presenceTTL)
		}
		return nil
	}); err != nil {
		r.log.Warn("redis: recording a subscriber", "err", err)
	}
	return func() {
		r.mu.Lock()
		delete(r.presence, id)
		r.mu.Unlock()
		ctx := context.WithoutCancel(ctx)
		if _, err := r.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
			for _, ch := range p.channels {
				pl.HDel(ctx, r.presenceKey(ch), id)
			}
			return nil
		}); err != nil {
			r.log.Debug("redis: removing a subscriber", "err", err)
		}
	}
}

// presence is a local subscription as the other instances see it.
type presence struct {
	channels []string
	record   string // a hub.Subscriber as JSON
}

// replay reads what the subscriber must see before live events: what the
// streams hold after LastID, else the Recent latest.
func (r *Broker) replay(ctx context.Context, req hub.Request, props hub.Props) (hub.Preface, error) {
	p := hub.Preface{Skip: make([]hub.ID, len(req.Channels)), InitialID: "0", LastID: req.LastID, Initial: req.Initial, Placed: true}
	encode := func(i int, msgs []redis.XMessage) {
		for _, xm := range msgs {
			k, ok := hub.ParseID(xm.ID)
			if !ok || p.Final {
				continue
			}
			frame, final := r.e.Encode(k, xm.ID, toMessage(xm.Values), props, req.View)
			p.Replay = append(p.Replay, frame)
			p.Skip[i], p.Final = k, final
		}
	}
	states := make([]streamState, len(req.Channels))
	for i, name := range req.Channels {
		st, err := r.state(ctx, name)
		if err != nil {
			return hub.Preface{}, err
		}
		states[i] = st
		if hub.Earlier(p.InitialID, st.last) {
			p.InitialID = st.last
		}
	}
	if req.LastID != "" {
		last, k, placed, err := r.place(ctx, req.Channels, req.LastID, states)
		if err != nil {
			return hub.Preface{}, err
		}
		if placed {
			for i, name := range req.Channels {
				p.Skip[i] = k // the client has everything up to its id
				if k.Less(states[i].floor) {
					p.Gap = true
				}
				msgs, err := r.rdb.XRangeN(ctx, streamKey(name), "("+last, "+", int64(r.opts.History)).Result()
				if err != nil {
					return hub.Preface{}, unavailable(err)
				}
				encode(i, msgs)
			}
			if !p.Gap {
				p.InitialID = req.LastID // initial events mark where replay starts
			}
			return p, nil
		}
		p.Gap, p.Placed = true, false // what a new subscription gets
	}
	if req.Recent > 0 {
		for i, name := range req.Channels {
			msgs, err := r.rdb.XRevRangeN(ctx, streamKey(name), "+", "-", int64(req.Recent)).Result()
			if err != nil {
				return hub.Preface{}, unavailable(err)
			}
			slices.Reverse(msgs)
			encode(i, msgs)
		}
	}
	return p, nil
}

// streamState is what replay needs to know of a stream.
type streamState struct {
	exists bool   // the stream has events
	last   string // the newest id given, or the birth id of a stream with none
	floor  hub.ID // ids below it may have been lost: trimmed, or before the stream was born
}

func (r *Broker) state(ctx context.Context, channel string) (streamState, error) {
	var info *redis.XInfoStreamCmd
	var floor *redis.StringCmd
	_, err := r.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		// A stream not made yet is born now: a client told this id and
		// resuming from it has missed nothing that comes later. It is the
		// last id of the millisecond before, so that no XADD from now on,
		// even in this millisecond, can get an id at or below it.
		now := strconv.FormatInt(time.Now().UnixMilli()-1, 10) + "-" + strconv.FormatUint(math.MaxUint64, 10)
		pl.SetNX(ctx, floorKey(channel), now, r.opts.IdleTTL)
		info = pl.XInfoStream(ctx, streamKey(channel))
		floor = pl.Get(ctx, floorKey(channel))
		return nil
	})
	missing := info.Err() != nil && strings.Contains(info.Err().Error(), "no such key")
	if err != nil && !missing {
		return streamState{}, unavailable(err)
	}
	st := streamState{exists: !missing, last: floor.Val()}
	if k, ok := hub.ParseID(floor.Val()); ok {
		st.floor = k
	}
	if missing {
		return st, nil
	}
	st.last = info.Val().LastGeneratedID
	return st, nil
}

// place finds where a client's id stands in the streams: a stream id, a
// publisher's own id (Message.ID) found by a scan of the bounded history,
// or, ids being ordered, any id up to the newest given. It returns the
// stream id to read after, and its key.
func (r *Broker) place(ctx context.Context, channels []string, id string, states []streamState) (string, hub.ID, bool, error) {
	newest := hub.ID{}
	for _, st := range states {
		if l, _ := hub.ParseID(st.last); newest.Less(l) {
			newest = l
		}
	}
	if k, ok := hub.ParseID(id); ok && !newest.Less(k) {
		return strconv.FormatUint(k.Hi, 10) + "-" + strconv.FormatUint(k.Lo, 10), k, true, nil
	}
	for _, name := range channels {
		msgs, err := r.rdb.XRevRangeN(ctx, streamKey(name), "+", "-", int64(r.opts.History)).Result()
		if err != nil {
			return "", hub.ID{}, false, unavailable(err)
		}
		for _, xm := range msgs {
			if own := toMessage(xm.Values).ID; own != "" && own == id {
				k, _ := hub.ParseID(xm.ID)
				return xm.ID, k, true, nil
			}
		}
	}
	return "", hub.ID{}, false, nil // malformed, or from the future: not an id given here
}

// follow makes sure this process reads the channel: one of the readers
// adds it to its XREAD, from the stream's newest entry now (a subscriber's
// replay reads the stream itself, so nothing before is needed).
func (r *Broker) follow(name string) error {
	r.mu.Lock()
	if f := r.followers[name]; f != nil {
		f.refs++
		r.mu.Unlock()
		return nil
	}
	r.mu.Unlock()
	top, err := r.rdb.XRevRangeN(r.ctx, streamKey(name), "+", "-", 1).Result()
	if err != nil {
		return unavailable(err)
	}
	from := "0-0"
	if len(top) > 0 {
		from = top[0].ID
	}
	r.mu.Lock()
	if f := r.followers[name]; f != nil { // another subscription got here first
		f.refs++
		r.mu.Unlock()
		return nil
	}
	if r.ctx.Err() != nil {
		r.mu.Unlock()
		return hub.ErrClosed
	}
	r.followers[name] = &follower{refs: 1}
	rd := r.readerOf(name)
	rd.mu.Lock()
	rd.last[name] = from
	rd.mu.Unlock()
	r.mu.Unlock()
	// Wake the reader from its blocking XREAD, so that it reads the new
	// stream at once rather than after blockFor.
	if _, err := r.rdb.Pipelined(r.ctx, func(pl redis.Pipeliner) error {
		pl.XAdd(r.ctx, &redis.XAddArgs{Stream: rd.wake, MaxLen: 8, Values: []any{"follow", name}})
		pl.Expire(r.ctx, rd.wake, time.Minute)
		return nil
	}); err != nil {
		r.log.Debug("redis: waking a reader", "err", err)
	}
	return nil
}

func (r *Broker) unfollow(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f := r.followers[name]
	if f == nil {
		return
	}
	if f.refs--; f.refs == 0 {
		delete(r.followers, name)
		rd := r.readerOf(name)
		rd.mu.Lock()
		delete(rd.last, name)
		rd.mu.Unlock()
	}
}

func (r *Broker) readerOf(channel string) *reader {
	h := fnv.New32a()
	h.Write([]byte(channel))
	return r.readers[h.Sum32()%Readers]
}

// followed lists the channels this process reads.
func (r *Broker) followed() []string {
	var out []string
	for _, rd := range r.readers {
		rd.mu.Lock()
		for name := range rd.last {
			out = append(out, name)
		}
		rd.mu.Unlock()
	}
	slices.Sort(out)
	return out
}

// read is one reader's loop: one blocking XREAD over every stream it
// follows and its wake stream; it appends every new entry to the local
// log, which wakes the local subscribers.
func (r *Broker) read(rd *reader) {
	defer r.wg.Done()
	ctx := r.ctx
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		rd.mu.Lock()
		keys := make([]string, 0, 2*len(rd.last)+2)
		ids := make([]string, 0, len(rd.last)+1)
		for name, last := range rd.last {
			keys = append(keys, streamKey(name))
			ids = append(ids, last)
		}
		rd.mu.Unlock()
		// "$": only wakes from now on; a follow made before this call is
		// in keys already.
		keys = append(append(keys, rd.wake), append(ids, "$")...)
		res, err := r.rdb.XRead(ctx, &redis.XReadArgs{Streams: keys, Count: 512, Block: blockFor}).Result()
		if errors.Is(err, redis.Nil) {
			continue // nothing new within blockFor
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.log.Warn("redis: reading channels; retrying", "err", err, "in", backoff)
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		for _, st := range res {
			name, ok := strings.CutPrefix(st.Stream, keyPrefix+"ch:")
			if !ok || len(st.Messages) == 0 {
				continue // the wake stream
			}
			for _, xm := range st.Messages {
				if k, ok := hub.ParseID(xm.ID); ok {
					if err := r.e.Append(name, xm.ID, k, toMessage(xm.Values)); err != nil {
						r.log.Warn("redis: a channel's event not delivered here", "channel", name, "err", err)
					}
				}
			}
			newest := st.Messages[len(st.Messages)-1].ID
			rd.mu.Lock()
			// Only forward: a channel followed again meanwhile may start
			// past what this read returned.
			if last, still := rd.last[name]; still && hub.Earlier(last, newest) {
				rd.last[name] = newest
			}
			rd.mu.Unlock()
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Who listens where, for every instance to see: the sorted set
// sselab:instances holds each live instance with its expiry time as score,
// and sselab:presence:INSTANCE:CHANNEL maps each of its subscriptions of
// that channel to a hub.Subscriber record. Counting a channel's subscribers is
// then one HLEN per live instance, whatever the number of subscribers.
const instancesKey = keyPrefix + "instances"

func (r *Broker) presenceKey(channel string) string {
	return presenceKey(r.instance, channel)
}

func presenceKey(instance, channel string) string {
	return keyPrefix + "presence:" + instance + ":" + channel
}

// heartbeat keeps this instance and its subscriber records alive, and
// writes them again after Redis lost them (a restart without persistence).
func (r *Broker) heartbeat() {
	defer r.wg.Done()
	tick := time.NewTicker(presenceTTL / 3)
	defer tick.Stop()
	for {
		r.mu.Lock()
		byChannel := map[string][]any{}
		for id, p := range r.presence {
			for _, ch := range p.channels {
				byChannel[ch] = append(byChannel[ch], id, p.record)
			}
		}
		r.mu.Unlock()
		_, err := r.rdb.Pipelined(r.ctx, func(pl redis.Pipeliner) error {
			expiry := time.Now().Add(presenceTTL).UnixMilli()
			pl.ZAdd(r.ctx, instancesKey, redis.Z{Score: float64(expiry), Member: r.instance})
			for ch, recs := range byChannel {
				pl.HSet(r.ctx, r.presenceKey(ch), recs...)
				pl.Expire(r.ctx, r.presenceKey(ch), presenceTTL)
				// A channel that is listened to does not expire.
				pl.PExpire(r.ctx, streamKey(ch), r.opts.IdleTTL)
				pl.PExpire(r.ctx, floorKey(ch), r.opts.IdleTTL)
			}
			return nil
		})
		if err != nil && r.ctx.Err() == nil {
			r.log.Debug("redis: presence heartbeat", "err", err)
		}
		select {
		case <-r.ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// liveInstances are the instances whose heartbeat has not expired.
func (r *Broker) liveInstances(ctx context.Context) ([]string, error) {
	now := strconv.FormatInt(time.Now().UnixMilli(), 10)
	ids, err := r.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{Key: instancesKey, Start: "(" + now, Stop: "+inf", ByScore: true}).Result()
	if err != nil {
		return nil, unavailable(err)
	}
	if !slices.Contains(ids, r.instance) {
		ids = append(ids, r.instance) // before its first heartbeat lands
	}
	return ids, nil
}

// Subscribers lists the subscribers of every instance. When Redis cannot
// be read it returns this instance's own, with the error.
func (r *Broker) Subscribers(ctx context.Context, channels ...string) ([]hub.Subscriber, error) {
	instances, err := r.liveInstances(ctx)
	if err != nil {
		return r.e.Subscribers(channels...), err
	}
	var cmds []*redis.MapStringStringCmd
	_, err = r.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		for _, in := range instances {
			for _, ch := range channels {
				cmds = append(cmds, pl.HGetAll(ctx, presenceKey(in, ch)))
			}
		}
		return nil
	})
	if err != nil {
		return r.e.Subscribers(channels...), unavailable(err)
	}
	seen := map[string]bool{}
	var out []hub.Subscriber
	for _, cmd := range cmds {
		for _, rec := range cmd.Val() {
			var s hub.Subscriber
			if json.Unmarshal([]byte(rec), &s) == nil && !seen[s.ID] {
				seen[s.ID] = true
				out = append(out, s)
			}
		}
	}
	slices.SortFunc(out, func(a, b hub.Subscriber) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// Count is how many subscribers the channels have on every instance: for
// one channel, two round trips: the live instances, then one pipeline of
// an HLEN per instance.
func (r *Broker) Count(ctx context.Context, channels ...string) (int, error) {
	if len(channels) != 1 {
		subs, err := r.Subscribers(ctx, channels...)
		return len(subs), err
	}
	instances, err := r.liveInstances(ctx)
	if err != nil {
		return r.e.Count(channels...), err
	}
	var cmds []*redis.IntCmd
	_, err = r.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		for _, in := range instances {
			cmds = append(cmds, pl.HLen(ctx, presenceKey(in, channels[0])))
		}
		return nil
	})
	if err != nil {
		return r.e.Count(channels...), unavailable(err)
	}
	n := 0
	for _, cmd := range cmds {
		n += int(cmd.Val())
	}
	return n, nil
}

// SharedSecret returns a random 32-byte secret that every instance using
// this Redis shares, made by whichever asks first.
func (r *Broker) SharedSecret(ctx context.Context, name string) ([]byte, error) {
	k := keyPrefix + "secret:" + name
	fresh := make([]byte, 32)
	rand.Read(fresh)
	if err := r.rdb.SetNX(ctx, k, hex.EncodeToString(fresh), 0).Err(); err != nil {
		return nil, unavailable(err)
	}
	v, err := r.rdb.Get(ctx, k).Result()
	if err != nil {
		return nil, unavailable(err)
	}
	return hex.DecodeString(v)
}

// Close stops the loops, ends every subscription and disconnects.
func (r *Broker) Close() error {
	r.cancel()
	r.wg.Wait()
	r.e.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	r.mu.Lock()
	keys := map[string]bool{}
	for _, p := range r.presence {
		for _, ch := range p.channels {
			keys[r.presenceKey(ch)] = true
		}
	}
	r.mu.Unlock()
	r.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		pl.ZRem(ctx, instancesKey, r.instance)
		for k := range keys {
			pl.Del(ctx, k)
		}
		for _, rd := range r.readers {
			pl.Del(ctx, rd.wake)
		}
		return nil
	})
	return r.rdb.Close()
}
