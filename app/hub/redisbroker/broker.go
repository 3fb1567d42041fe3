// Package redisbroker is the hub's broker for several instances: channels are
// Redis Streams, fanned out in each process by a hub.Local. It uses only
// the hub's exported API, as a broker for any other store would.
package redisbroker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
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

// Broker is the hub's broker for several instances: every channel is a
// Redis Stream. Publish is one script that XADDs, which gives the event its
// id, trims the stream to the history bound, keeps its floor (see
// publishScript), sets its keys to expire after IdleTTL, and PUBLISHes the
// event with its id on the channel's Pub/Sub channel; a channel with local
// subscribers has its expiry renewed by the heartbeat, so only channels
// that nobody listens to and nobody publishes to expire.
//
// Each process holds one Pub/Sub connection, subscribed to the channels
// that have local subscribers, however many, and appends what arrives to a
// hub.Local, so fan-out stays in process. Pub/Sub delivers only while
// connected: whenever a subscription is confirmed (a new channel, or all of
// them again after a reconnect) the loop reads the stream from the last id
// it has, so nothing published meanwhile is missed, and ids skip what came
// twice. An instance holds at most MaxConns connections whatever its
// channels: the Pub/Sub one and a pool for publishing, counting and
// replaying. Replay after Last-Event-ID reads the stream with XRANGE, so it
// works whichever instance the client reconnects to.
//
// When Redis goes away, Publish and Subscribe return hub.ErrUnavailable, open
// streams stay open (their keepalives go on), the loop retries with
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

	secretsMu sync.Mutex
	secrets   map[string]*secret // the shared secrets this instance uses, by key: its heartbeat writes them back

	// The store's memory bound: used is Redis's used_memory when last
	// read, since what this instance has published since.
	memMu    sync.Mutex
	memAt    time.Time
	memUsed  int64
	memSince int64
	// memReading: a publish is reading used_memory; the others do not wait.
	memReading bool
	// subMu orders changes to what the Pub/Sub connection subscribes
	// to; mu guards the maps.
	subMu     sync.Mutex
	ps        *redis.PubSub
	mu        sync.Mutex
	followers map[string]*follower
	presence  map[string]presence // subscription id -> its presence record
	leaving   [][2]string         // presence key and id of ended subscriptions, to remove
	left      chan struct{}       // wakes forget
	flushed   chan struct{}       // closed once leaving, as it is now, is removed

	instMu    sync.Mutex
	instAt    time.Time
	instances []string // the live instances when last read

	pubs chan *publishing // to the batch writers (see batchWriter)
}

// publishing is one Publish's script call, as the batch writers take it.
type publishing struct {
	keys []string
	args []any
	res  []string
	err  error
	done chan struct{}
}

// Publishing: posts that come together go to Redis together. A few batch
// writers each take every publish waiting and send them as one pipeline:
// one write and one read for many posts where each would make its own.
const (
	batchWriters = 4
	batchMost    = 64
)

var (
	_ hub.Broker       = (*Broker)(nil)
	_ hub.SecretSharer = (*Broker)(nil)
)

// follower is a channel this process reads: how many local subscriptions
// share it, and the last event appended to the local log.
type follower struct {
	refs  int        // guarded by Broker.mu
	order sync.Mutex // guards last and key, and orders appends
	last  string
	key   hub.ID
}

// maxConns bounds the Redis connections an instance holds, whatever the
// number of its channels: one Pub/Sub connection that follows them all, and
// a pool of maxConns-1 that publishes, counts and replays.
const maxConns = 16

// brokerTimeout bounds what a request waits for Redis: a hung Redis (a
// stopped process, a lost network) gives new streams rule 7's refusal and
// publishes a 503 within it. answerGrace is how much longer a publish's
// answer is waited for after the script's own deadline.
const (
	brokerTimeout = 2 * time.Second
	answerGrace   = time.Second
)

const (
	keyPrefix   = "sselab:"
	presenceTTL = 30 * time.Second
	// idleCheck: a Pub/Sub connection silent this long is pinged; one
	// that stays silent another idleCheck is made again.
	idleCheck = 10 * time.Second
)

func streamKey(channel string) string { return keyPrefix + "ch:" + channel }

// ownIDsKey marks a channel that was published to with a publisher's own
// ids (Message.ID): only there can a Last-Event-ID that is not a stream
// id be placed, so only there is the history searched for it (place). It
// expires with the stream.
func ownIDsKey(channel string) string { return keyPrefix + "ownids:" + channel }

// lastIDKey holds the last event id given on any stream (publishScript),
// for -channel-ttl after the last publish, as streams are: once it has
// gone, each stream's own last id still orders what follows it.
const lastIDKey = keyPrefix + "lastid"

// eventsChannel is the Pub/Sub channel that carries a stream's new events.
func eventsChannel(channel string) string { return keyPrefix + "ev:" + channel }

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
	// No command is sent twice: a retried pipeline re-ran publishes that
	// Redis had run already, under new ids. A failure is answered (rule
	// 7, a 503) and the client tries again itself.
	opt.MaxRetries = -1
	// go-redis has one logger for the process; send it to the first
	// broker's, at debug level: the broker itself reports what matters (a
	// publish that fails, a channel loop that retries).
	setRedisLogger.Do(func() { redis.SetLogger(redisLogger{log}) })
	// The Pub/Sub connection is outside the pool. go-redis would add a pool
	// of its own for pipelines (10 more connections) and dial past
	// PoolSize under bursts: pipelines share the one pool here, and its
	// size is a hard ceiling.
	opt.PoolSize = maxConns - 1
	opt.MaxActiveConns = maxConns - 1
	opt.PipelinePoolSize = -1
	id := make([]byte, 8)
	rand.Read(id)
	instance := hex.EncodeToString(id)
	opt.ClientName = "sselab-" + instance // in CLIENT LIST, every connection says whose it is
	rdb := redis.NewClient(opt)
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("redis at %s: %w", opt.Addr, err)
	}
	bctx, cancel := context.WithCancel(context.Background())
	local := hub.NewLocal(o, nil)
	r := &Broker{
		rdb: rdb, e: local, opts: local.Options(), log: log, ctx: bctx, cancel: cancel,
		instance:  instance,
		followers: map[string]*follower{},
		secrets:   map[string]*secret{},
		presence:  map[string]presence{},
		left:      make(chan struct{}, 1),
		pubs:      make(chan *publishing, batchMost),
	}
	// Subscribed from the start to a channel of its own, so that the
	// connection is in Pub/Sub mode and answers pings as such.
	r.ps = rdb.Subscribe(ctx, r.selfChannel())
	r.wg.Add(3 + batchWriters)
	go r.listen()
	go r.heartbeat()
	go r.forget()
	for range batchWriters {
		go r.batchWriter()
	}
	return r, nil
}

var setRedisLogger sync.Once

// redisLogger puts go-redis's messages into slog.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, "go-redis: "+fmt.Sprintf(format, v...))
}

func unavailable(err error) error { return fmt.Errorf("%w: %v", hub.ErrUnavailable, err) }

// publishScript adds one event to each of n streams and publishes it:
// KEYS are stream and floor key pairs, then the key of the last id given
// (lastIDKey), ARGV the expiry in ms, n, the
// publish's deadline (Unix ms), each stream's history bound, each stream's
// Pub/Sub channel, then the event's fields. It returns each stream's new
// id and the id of the entry before it (” for none). The event has one id
// on every stream, after every id given before on any stream: ids order
// events across channels too, so that a replay of several channels can be
// merged by id and stopped anywhere (see replayAfter). Past its deadline,
// by Redis's clock, it publishes nothing and fails with EXPIRED: the
// caller has answered 503 by then, and a refused post must never appear
// later (a Redis that was stopped runs what waited when it resumes).
//
// A stream's floor key holds the id below which events may have been lost
// to it: its birth (the first event since it was last made, or when a
// subscriber first asked for it), raised to the last event trimmed away.
// Redis keeps no such mark itself (XINFO's max-deleted-entry-id counts
// XDEL, not trimming), so the script trims: when the stream is a sixteenth
// past its bound, it reads the ids it will remove, trims exactly, and
// raises the floor to the last of them.
//
// What is published is the id, a newline, then each field as its length,
// a colon and its bytes (see decodeEvent): exact for any bytes.
var publishScript = redis.NewScript(`
local function less(a, b)
  local ams, aseq = string.match(a, '^(%d+)-(%d+)$')
  local bms, bseq = string.match(b, '^(%d+)-(%d+)$')
  ams, aseq, bms, bseq = tonumber(ams), tonumber(aseq), tonumber(bms), tonumber(bseq)
  return ams < bms or (ams == bms and aseq < bseq)
end
local ttl, n = ARGV[1], tonumber(ARGV[2])
local now = redis.call('TIME')
if tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) > tonumber(ARGV[3]) then
  return redis.error_reply('EXPIRED the publish reached Redis after its deadline: nothing was published')
end
local fields, framed = {}, {}
for i = 2*n + 4, #ARGV do
  fields[#fields + 1] = ARGV[i]
  framed[#framed + 1] = #ARGV[i] .. ':' .. ARGV[i]
end
framed = table.concat(framed)
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
-- One id for the event on every stream, past every id given before on
-- any stream (the last is in KEYS[2n+1]) and past each stream's own last:
-- ids order events across channels as well as along each.
local ms, seq = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000), 0
local function atLeastAfter(id)
  if not id then return end
  local ims, iseq = parse(id)
  if ims and (ims > ms or (ims == ms and iseq >= seq)) then ms, seq = ims, iseq + 1 end
end
atLeastAfter(redis.call('GET', KEYS[2*n+1]) or nil)
local tops = {}
for i = 1, n do
  tops[i] = redis.call('XREVRANGE', KEYS[2*i-1], '+', '-', 'COUNT', 1)
  atLeastAfter(tops[i][1] and tops[i][1][1] or nil)
end
local given = string.format('%d-%d', ms, seq)
redis.call('SET', KEYS[2*n+1], given, 'PX', ttl)
local ids = {}
for i = 1, n do
  local stream, floor, bound = KEYS[2*i-1], KEYS[2*i], tonumber(ARGV[3+i])
  local top = tops[i]
  local fresh = #top == 0 and redis.call('EXISTS', stream) == 0
  local prev = top[1] and top[1][1] or ''
  local id = redis.call('XADD', stream, given, unpack(fields))
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
  redis.call('PUBLISH', ARGV[3+n+i], id .. '\n' .. framed)
  ids[2*i-1], ids[2*i] = id, prev
end
return ids
`)

// decodeEvent reads what publishScript publishes: the id and the fields.
func decodeEvent(payload string) (id string, m hub.Message, ok bool) {
	id, rest, ok := strings.Cut(payload, "\n")
	if !ok {
		return "", m, false
	}
	v := map[string]any{}
	var key string
	for n := 0; rest != ""; n++ {
		size, after, found := strings.Cut(rest, ":")
		l, err := strconv.Atoi(size)
		if !found || err != nil || l < 0 || l > len(after) {
			return "", m, false
		}
		if n%2 == 0 {
			key = after[:l]
		} else {
			v[key] = after[:l]
		}
		rest = after[l:]
	}
	return id, toMessage(v), true
}

// Publish adds m to each channel's stream, or returns hub.ErrFull while Redis
// holds more than StoreBytes.
func (b *Broker) Publish(ctx context.Context, channels []string, m hub.Message) error {
	fields := encodeMessage(m)
	size := 0
	for _, f := range fields {
		size += len(f.(string))
	}
	// The script refuses to run past deadline; the answer is waited for a
	// little longer, so that a publish Redis ran in time is not answered
	// 503 (instances and Redis on one clock, or within answerGrace).
	deadline := time.Now().Add(brokerTimeout)
	ctx, cancel := context.WithDeadline(ctx, deadline.Add(answerGrace))
	defer cancel()
	if err := b.roomFor(ctx, size*len(channels)); err != nil {
		return err
	}
	keys := make([]string, 0, 2*len(channels)+1)
	args := make([]any, 0, 3+2*len(channels)+len(fields))
	args = append(args, b.opts.IdleTTL.Milliseconds(), len(channels), deadline.UnixMilli())
	for _, name := range channels {
		keys = append(keys, streamKey(name), floorKey(name))
		args = append(args, b.maxLen(name))
	}
	for _, name := range channels {
		args = append(args, eventsChannel(name))
	}
	keys = append(keys, lastIDKey)
	if m.ID != "" {
		if _, err := b.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
			for _, name := range channels {
				pl.Set(ctx, ownIDsKey(name), "1", b.opts.IdleTTL)
			}
			return nil
		}); err != nil {
			return unavailable(err)
		}
	}
	res, err := b.runPublish(ctx, keys, append(args, fields...))
	if err != nil {
		return unavailable(err)
	}
	// Where this instance follows a channel and has its previous event,
	// the new one is appended here at once: its Pub/Sub copy, one hop
	// later, then finds it had already. Otherwise an earlier event is still
	// on its way, and Pub/Sub brings both in order.
	var local hub.Message
	for i, name := range channels {
		if 2*i+1 >= len(res) {
			break
		}
		if i == 0 {
			local = toMessage(fieldMap(fields))
		}
		b.appendNext(name, res[2*i], local, res[2*i+1], true)
	}
	return nil
}

// runPublish hands the script call to the batch writers and waits for its
// result. A caller that gives up (its context ends) leaves the call to
// finish without it: if Redis runs it in time, the event is published and
// Pub/Sub brings it; past its deadline the script refuses it.
func (b *Broker) runPublish(ctx context.Context, keys []string, args []any) ([]string, error) {
	p := &publishing{keys: keys, args: args, done: make(chan struct{})}
	select {
	case b.pubs <- p:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-b.ctx.Done():
		return nil, errClosed
	}
	select {
	case <-p.done:
		return p.res, p.err
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-b.ctx.Done():
		return nil, errClosed
	}
}

var errClosed = errors.New("the broker is closed")

// batchWriter sends the publishes waiting, up to batchMost, as one
// pipeline, and answers each. A script Redis no longer has (after a
// restart) is loaded again by the call that finds it missing.
func (b *Broker) batchWriter() {
	defer b.wg.Done()
	batch := make([]*publishing, 0, batchMost)
	cmds := make([]*redis.Cmd, 0, batchMost)
	for {
		batch = batch[:0]
		select {
		case p := <-b.pubs:
			batch = append(batch, p)
		case <-b.ctx.Done():
			return
		}
	more:
		for len(batch) < batchMost {
			select {
			case p := <-b.pubs:
				batch = append(batch, p)
			default:
				break more
			}
		}
		// Bounded like a publish: a Redis that stops answering fails the
		// batch instead of holding its writer.
		ctx, cancel := context.WithTimeout(b.ctx, brokerTimeout+answerGrace)
		cmds = cmds[:0]
		b.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
			for _, p := range batch {
				cmds = append(cmds, publishScript.EvalSha(ctx, pl, p.keys, p.args...))
			}
			return nil
		})
		for i, p := range batch {
			p.res, p.err = cmds[i].StringSlice()
			if p.err != nil && redis.HasErrorPrefix(p.err, "NOSCRIPT") {
				p.res, p.err = publishScript.Run(ctx, b.rdb, p.keys, p.args...).StringSlice()
			}
			close(p.done)
		}
		cancel()
	}
}

// fieldMap is encodeMessage's fields as XRANGE gives them.
func fieldMap(fields []any) map[string]any {
	m := make(map[string]any, len(fields)/2)
	for i := 0; i+1 < len(fields); i += 2 {
		m[fields[i].(string)] = fields[i+1]
	}
	return m
}

func (b *Broker) maxLen(channel string) int {
	if slices.Contains(b.opts.State, channel) {
		return 1
	}
	return b.opts.History
}

// roomFor refuses a publish while Redis holds more than StoreBytes. It
// reads used_memory at most once a second or after each MiB this instance
// published, so instances together pass the bound by little. One publish
// reads it while the others go on with the last reading (plus what was
// published since): none waits behind that round trip, except before the
// first reading.
func (b *Broker) roomFor(ctx context.Context, n int) error {
	b.memMu.Lock()
	defer b.memMu.Unlock()
	if !b.memReading && (time.Since(b.memAt) > time.Second || b.memSince > 1<<20) {
		b.memReading = true
		// Before the first reading there is nothing to go on with: the
		// others wait for it, holding the lock.
		first, counted := b.memAt.IsZero(), b.memSince // counted: what the reading will include
		if !first {
			b.memMu.Unlock()
		}
		info, err := b.rdb.Info(ctx, "memory").Result()
		if !first {
			b.memMu.Lock()
		}
		b.memReading = false
		if err != nil {
			return unavailable(err)
		}
		b.memUsed, b.memAt, b.memSince = usedMemory(info), time.Now(), b.memSince-counted
	}
	if b.memUsed+b.memSince > b.opts.StoreBytes {
		return fmt.Errorf("%w: Redis holds %d bytes, past the bound of %d", hub.ErrFull, b.memUsed+b.memSince, b.opts.StoreBytes)
	}
	b.memSince += int64(n)
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
	for _, name := range slices.Sorted(maps.Keys(m.Renderings)) {
		v = append(v, "rendering:"+name, m.Renderings[name].Data, "rendering-type:"+name, m.Renderings[name].Type)
	}
	return v
}

func toMessage(v map[string]any) hub.Message {
	str := func(k string) string { s, _ := v[k].(string); return s }
	m := hub.Message{Type: str("type"), Data: str("data"), Func: str("func"), ID: str("id"), NoID: str("noid") == "1", Final: str("final") == "1"}
	for k := range v {
		if name, ok := strings.CutPrefix(k, "rendering:"); ok {
			if m.Renderings == nil {
				m.Renderings = map[string]hub.Rendering{}
			}
			m.Renderings[name] = hub.Rendering{Type: str("rendering-type:" + name), Data: str(k)}
		}
	}
	if ms, err := strconv.ParseInt(str("retry"), 10, 64); err == nil {
		m.Retry, m.HasRetry = time.Duration(ms)*time.Millisecond, true
	}
	return m
}

// Subscribe follows the channels, replays from the streams when asked,
// then goes live from the local logs, skipping what the replay covered.
func (b *Broker) Subscribe(ctx context.Context, req hub.Request) (*hub.Subscription, error) {
	release, err := b.followAll(req.Channels)
	if err != nil {
		return nil, err
	}
	// Registered before the replay is read: whatever the replay misses
	// arrives live, and what both have is skipped by id. Initial events
	// come with the preface: their id is the stream's, which the local
	// logs may lack.
	live := req
	live.Initial = nil
	s, err := b.e.Subscribe(live)
	if err != nil {
		release()
		return nil, err
	}
	rec, gone := b.present(s.ID(), req)
	// A Redis that does not answer in time is unavailable: the stream is
	// refused at once (rule 7), not left without headers for the freeze.
	rctx, cancel := context.WithTimeout(ctx, brokerTimeout)
	p, err := b.replay(rctx, req, s.Props(), rec)
	cancel()
	if err != nil {
		s.Close()
		gone()
		release()
		return nil, err
	}
	p.Close = func() { gone(); release() }
	s.Begin(p)
	return s, nil
}

// followAll makes sure this process reads every channel; release undoes
// it.
func (b *Broker) followAll(channels []string) (release func(), err error) {
	for i, name := range channels {
		if err := b.follow(name); err != nil {
			for _, n := range channels[:i] {
				b.unfollow(n)
			}
			return nil, err
		}
	}
	return func() {
		for _, n := range channels {
			b.unfollow(n)
		}
	}, nil
}

// present records a local subscription here; the replay's round trip
// records it where every instance sees it (see presence.write). gone
// removes both.
func (b *Broker) present(id string, req hub.Request) (rec presence, gone func()) {
	sub := hub.Subscriber{ID: b.instance + "-" + id, Channels: slices.Clone(req.Channels), Props: req.Props}
	record, _ := json.Marshal(sub)
	p := presence{id: id, channels: sub.Channels, record: string(record), sub: sub}
	b.mu.Lock()
	b.presence[id] = p
	b.mu.Unlock()
	return p, func() {
		b.mu.Lock()
		delete(b.presence, id)
		for _, ch := range p.channels {
			b.leaving = append(b.leaving, [2]string{b.presenceKey(ch), id})
		}
		if b.flushed == nil {
			b.flushed = make(chan struct{})
		}
		done := b.flushed
		b.mu.Unlock()
		select {
		case b.left <- struct{}{}:
		default: // a flush is due already
		}
		// Waits for the removal, so that a count right after sees it, but
		// not for long: a stream's end, and its parting retry when the
		// server stops (rule 8), never waits on a busy Redis.
		t := time.NewTimer(leaveWait)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
		case <-b.ctx.Done(): // Close removes what is left
		}
	}
}

// leaveWait bounds how long an ending subscription waits for its record's
// removal.
const leaveWait = 100 * time.Millisecond

// forget removes the records of subscriptions that ended, all those that
// ended meanwhile in one round trip: each end waits for its removal, as
// before, but a thousand ends at once (an instance stopping, rule 8) take
// a few round trips, not a thousand in turn.
func (b *Broker) forget() {
	defer b.wg.Done()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-b.left:
		}
		b.mu.Lock()
		gone, done := b.leaving, b.flushed
		b.leaving, b.flushed = nil, nil
		b.mu.Unlock()
		if len(gone) == 0 {
			continue
		}
		if _, err := b.rdb.Pipelined(b.ctx, func(pl redis.Pipeliner) error {
			for _, g := range gone {
				pl.HDel(b.ctx, g[0], g[1])
			}
			return nil
		}); err != nil {
			b.log.Debug("redis: removing subscribers", "err", err)
		}
		close(done)
	}
}

// presence is a local subscription as the other instances see it.
type presence struct {
	id       string
	channels []string
	record   string // sub as JSON
	sub      hub.Subscriber
}

// write records the subscription in Redis, in pl.
func (p presence) write(ctx context.Context, pl redis.Pipeliner, r *Broker) {
	for _, ch := range p.channels {
		pl.HSet(ctx, r.presenceKey(ch), p.id, p.record)
		pl.Expire(ctx, r.presenceKey(ch), presenceTTL)
	}
}

// replay reads what the subscriber must see before live events: what the
// streams hold after LastID, else the Recent latest. Each stream's state,
// what follows an id that is a stream id, and the subscriber's presence
// record go in one round trip; only an id of a publisher's own, or one
// not given here, takes more.
func (b *Broker) replay(ctx context.Context, req hub.Request, props hub.Props, rec presence) (hub.Preface, error) {
	p := hub.Preface{Skip: make([]hub.ID, len(req.Channels)), InitialID: "0", LastID: req.LastID, Initial: req.Initial, Placed: true}
	size := 0 // of the replay encoded so far
	encode := func(i int, msgs []redis.XMessage) {
		for _, xm := range msgs {
			k, ok := hub.ParseID(xm.ID)
			if !ok || p.Final {
				continue
			}
			frame, final := b.e.Encode(k, xm.ID, toMessage(xm.Values), props, req.Rendering)
			p.Replay = append(p.Replay, frame)
			size += len(frame)
			p.Skip[i], p.Final = k, final
		}
	}
	n := len(req.Channels)
	infos, floors := make([]*redis.XInfoStreamCmd, n), make([]*redis.StringCmd, n)
	after, recent := make([]*redis.XMessageSliceCmd, n), make([]*redis.XMessageSliceCmd, n)
	lastKey, isKey := hub.ParseID(req.LastID)
	from := strconv.FormatUint(lastKey.Hi, 10) + "-" + strconv.FormatUint(lastKey.Lo, 10)
	_, err := b.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		// A stream not made yet is born now: a client told this id and
		// resuming from it has missed nothing that comes later. It is the
		// last id of the millisecond before, so that no XADD from now on,
		// even in this millisecond, can get an id at or below it.
		born := strconv.FormatInt(time.Now().UnixMilli()-1, 10) + "-" + strconv.FormatUint(math.MaxUint64, 10)
		for i, name := range req.Channels {
			pl.SetNX(ctx, floorKey(name), born, b.opts.IdleTTL)
			infos[i] = pl.XInfoStream(ctx, streamKey(name))
			floors[i] = pl.Get(ctx, floorKey(name))
			switch {
			case isKey:
				after[i] = pl.XRangeN(ctx, streamKey(name), "("+from, "+", replayPage)
			case req.LastID == "" && req.Recent > 0:
				recent[i] = pl.XRevRangeN(ctx, streamKey(name), "+", "-", int64(req.Recent))
			}
		}
		rec.write(ctx, pl, b)
		return nil
	})
	if err != nil && !onlyMissing(err) {
		return hub.Preface{}, unavailable(err)
	}
	states := make([]streamState, n)
	for i := range req.Channels {
		st := streamState{exists: infos[i].Err() == nil, last: floors[i].Val()}
		if k, ok := hub.ParseID(st.last); ok {
			st.floor = k
		}
		if st.exists {
			st.last = infos[i].Val().LastGeneratedID
		}
		states[i] = st
		if hub.Earlier(p.InitialID, st.last) {
			p.InitialID = st.last
		}
	}
	if req.LastID != "" {
		newest := hub.ID{}
		for _, st := range states {
			if l, _ := hub.ParseID(st.last); newest.Less(l) {
				newest = l
			}
		}
		last, k, placed := from, lastKey, isKey && !newest.Less(lastKey)
		if !placed { // a publisher's own id, or not one given here
			if last, k, placed, err = b.place(ctx, req.Channels, req.LastID); err != nil {
				return hub.Preface{}, err
			}
		}
		if placed {
			if err := b.replayAfter(ctx, &p, req.Channels, states, k, last, from, after, encode, &size); err != nil {
				return hub.Preface{}, err
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
			var msgs []redis.XMessage
			if recent[i] != nil {
				msgs, err = recent[i].Result()
			} else {
				msgs, err = b.rdb.XRevRangeN(ctx, streamKey(name), "+", "-", int64(req.Recent)).Result()
			}
			if err != nil {
				return hub.Preface{}, unavailable(err)
			}
			slices.Reverse(msgs)
			encode(i, msgs)
		}
	}
	return p, nil
}

// replayAfter encodes what every channel holds after the id last (k in
// comparable form), a page of each at a time and merged by id, so that
// ids along the stream only increase. Past maxReplayBytes it stops, at
// the first new id (one publish to several channels has one id on each):
// every event before, of every channel, was sent, so the client,
// reconnecting with the last id it got, is replayed the rest (ErrMore)
// with nothing skipped and nothing twice. after holds the first pages the
// pipeline read, from the id from.
func (b *Broker) replayAfter(ctx context.Context, p *hub.Preface, channels []string, states []streamState, k hub.ID, last, from string,
	after []*redis.XMessageSliceCmd, encode func(int, []redis.XMessage), size *int) error {
	n := len(channels)
	// pages[i]: what is read of channel i and not sent yet; more[i]: its
	// last read was a full page, ending at tail[i].
	pages, more, tail := make([][]redis.XMessage, n), make([]bool, n), make([]string, n)
	took := func(i int, msgs []redis.XMessage) {
		pages[i], more[i] = msgs, len(msgs) == replayPage
		if len(msgs) > 0 {
			tail[i] = msgs[len(msgs)-1].ID
		}
	}
	for i, name := range channels {
		p.Skip[i] = k // the client has everything up to its id
		if k.Less(states[i].floor) {
			p.Gap = true
		}
		var msgs []redis.XMessage
		var err error
		if after[i] != nil && last == from {
			msgs, err = after[i].Result()
		} else {
			msgs, err = b.rdb.XRangeN(ctx, streamKey(name), "("+last, "+", replayPage).Result()
		}
		if err != nil {
			return unavailable(err)
		}
		took(i, msgs)
	}
	sent := k
	for !p.Final {
		next, nextK := -1, hub.ID{}
		for i, name := range channels {
			if len(pages[i]) == 0 && more[i] {
				msgs, err := b.rdb.XRangeN(ctx, streamKey(name), "("+tail[i], "+", replayPage).Result()
				if err != nil {
					return unavailable(err)
				}
				took(i, msgs)
			}
			if len(pages[i]) == 0 {
				continue
			}
			if id, _ := hub.ParseID(pages[i][0].ID); next < 0 || id.Less(nextK) {
				next, nextK = i, id
			}
		}
		if next < 0 {
			return nil
		}
		if *size >= maxReplayBytes && sent.Less(nextK) {
			p.Partial = true
			return nil
		}
		encode(next, pages[next][:1])
		pages[next], sent = pages[next][1:], nextK
	}
	return nil
}

// onlyMissing reports whether a pipeline's error is only what a stream not
// made yet gives: XINFO's "no such key", or GET's nil.
func onlyMissing(err error) bool {
	return errors.Is(err, redis.Nil) || strings.Contains(err.Error(), "no such key")
}

// replayPage is how many events one read of a replay asks Redis for, and
// maxReplayBytes how much replay one subscription is given: 1,000 pings of 60 kB replayed to 8 streams that did not read once
// held 984 MB here, and 20 requests reading whole histories at once held
// 905 MB of Redis's output buffers.
const (
	replayPage     = 64
	maxReplayBytes = 4 << 20
)

// streamState is what replay needs to know of a stream.
type streamState struct {
	exists bool   // the stream has events
	last   string // the newest id given, or the birth id of a stream with none
	floor  hub.ID // ids below it may have been lost: trimmed, or before the stream was born
}

// place finds a publisher's own id (Message.ID) by a scan of the bounded
// history; stream ids (any id up to the newest given, ids being ordered)
// replay places without it. It returns the stream id to read after, and
// its key.
func (b *Broker) place(ctx context.Context, channels []string, id string) (string, hub.ID, bool, error) {
	for _, name := range channels {
		// Only a channel with publishers' own ids can place one: any
		// other id is unplaceable at once, whatever the history holds.
		if n, err := b.rdb.Exists(ctx, ownIDsKey(name)).Result(); err != nil {
			return "", hub.ID{}, false, unavailable(err)
		} else if n == 0 {
			continue
		}
		// Newest first, a page at a time: no reply larger than a page.
		for top, read := "+", 0; read < b.opts.History+b.opts.History/16+1; {
			msgs, err := b.rdb.XRevRangeN(ctx, streamKey(name), top, "-", replayPage).Result()
			if err != nil {
				return "", hub.ID{}, false, unavailable(err)
			}
			for _, xm := range msgs {
				if own := toMessage(xm.Values).ID; own != "" && own == id {
					k, _ := hub.ParseID(xm.ID)
					return xm.ID, k, true, nil
				}
			}
			if len(msgs) < replayPage {
				break
			}
			read += len(msgs)
			top = "(" + msgs[len(msgs)-1].ID
		}
	}
	return "", hub.ID{}, false, nil // malformed, or from the future: not an id given here
}

// follow makes sure this process reads the channel: the Pub/Sub
// connection subscribes to it, and the listen loop, once the subscription
// is confirmed, reads the stream after its newest entry now, then goes on
// from Pub/Sub (a subscriber's replay reads the stream itself, so nothing
// before is needed).
func (b *Broker) follow(name string) error {
	b.subMu.Lock()
	defer b.subMu.Unlock()
	b.mu.Lock()
	if f := b.followers[name]; f != nil {
		f.refs++
		b.mu.Unlock()
		return nil
	}
	b.mu.Unlock()
	if b.ctx.Err() != nil {
		return hub.ErrClosed
	}
	top, err := b.rdb.XRevRangeN(b.ctx, streamKey(name), "+", "-", 1).Result()
	if err != nil {
		return unavailable(err)
	}
	f := &follower{refs: 1, last: "0-0"}
	if len(top) > 0 {
		f.last = top[0].ID
		f.key, _ = hub.ParseID(f.last)
	}
	b.mu.Lock()
	b.followers[name] = f
	b.mu.Unlock()
	// An error here is the connection's: go-redis subscribes again when
	// it reconnects, and the confirmation reads what was missed.
	if err := b.ps.Subscribe(b.ctx, eventsChannel(name)); err != nil {
		b.log.Debug("redis: subscribing", "channel", name, "err", err)
	}
	return nil
}

func (b *Broker) unfollow(name string) {
	b.subMu.Lock()
	defer b.subMu.Unlock()
	b.mu.Lock()
	f := b.followers[name]
	gone := f != nil && f.refs == 1
	if f != nil {
		f.refs--
	}
	if gone {
		delete(b.followers, name)
	}
	b.mu.Unlock()
	if gone && b.ctx.Err() == nil {
		if err := b.ps.Unsubscribe(b.ctx, eventsChannel(name)); err != nil {
			b.log.Debug("redis: unsubscribing", "channel", name, "err", err)
		}
	}
}

// followed lists the channels this process reads.
func (b *Broker) followed() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Sorted(maps.Keys(b.followers))
}

func (b *Broker) selfChannel() string { return keyPrefix + "instance:" + b.instance }

// listen is the Pub/Sub loop: it appends each event to the local log,
// which wakes the local subscribers, and reads a stream after each
// confirmed subscription to it. A connection silent for idleCheck is
// pinged; go-redis reconnects and subscribes again after an error.
func (b *Broker) listen() {
	defer b.wg.Done()
	ctx := b.ctx
	backoff := 100 * time.Millisecond
	pinged := false
	for ctx.Err() == nil {
		msg, err := b.ps.ReceiveTimeout(ctx, idleCheck)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
				if pinged { // no answer to the ping: a new connection
					b.log.Warn("redis: Pub/Sub connection silent; connecting again")
					b.renew()
				} else if err := b.ps.Ping(ctx); err != nil {
					b.log.Debug("redis: Pub/Sub ping", "err", err)
				}
				pinged = !pinged
				continue
			}
			b.log.Warn("redis: reading events; retrying", "err", err, "in", backoff)
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		backoff, pinged = 100*time.Millisecond, false
		switch m := msg.(type) {
		case *redis.Message:
			name, ok := strings.CutPrefix(m.Channel, keyPrefix+"ev:")
			if id, ev, valid := decodeEvent(m.Payload); ok && valid {
				b.deliver(name, id, ev)
			}
		case *redis.Subscription:
			if name, ok := strings.CutPrefix(m.Channel, keyPrefix+"ev:"); ok && m.Kind == "subscribe" {
				b.catchUp(ctx, name)
			}
		}
	}
}

// renew replaces the Pub/Sub connection with a new one subscribed to every
// followed channel; each confirmation reads what was missed.
func (b *Broker) renew() {
	b.subMu.Lock()
	defer b.subMu.Unlock()
	channels := []string{b.selfChannel()}
	for _, name := range b.followed() {
		channels = append(channels, eventsChannel(name))
	}
	b.ps.Close()
	b.ps = b.rdb.Subscribe(b.ctx, channels...)
}

// deliver appends an event to the local log if the channel is followed and
// the event is new to it.
func (b *Broker) deliver(name, id string, m hub.Message) { b.appendNext(name, id, m, "", false) }

// appendNext appends an event to the local log if the channel is followed
// and the event is new to it; with after, only if the last event appended
// is after (nothing between them is still on its way). Appends to a
// channel are in the order of ids, one at a time.
func (b *Broker) appendNext(name, id string, m hub.Message, after string, onlyAfter bool) {
	k, ok := hub.ParseID(id)
	if !ok {
		return
	}
	b.mu.Lock()
	f := b.followers[name]
	b.mu.Unlock()
	if f == nil {
		return // not followed here
	}
	f.order.Lock()
	defer f.order.Unlock()
	if !f.key.Less(k) || onlyAfter && f.last != after {
		return // had already, or an earlier event comes first, through Pub/Sub
	}
	f.last, f.key = id, k
	if err := b.e.Append(name, id, k, m); err != nil {
		b.log.Warn("redis: a channel's event not delivered here", "channel", name, "err", err)
	}
}

// catchUp appends what the stream holds after the last event this process
// has of it: what was published before the Pub/Sub subscription took
// effect, or while the connection was down.
func (b *Broker) catchUp(ctx context.Context, name string) {
	for {
		b.mu.Lock()
		f := b.followers[name]
		b.mu.Unlock()
		if f == nil {
			return
		}
		f.order.Lock()
		from := f.last
		f.order.Unlock()
		msgs, err := b.rdb.XRangeN(ctx, streamKey(name), "("+from, "+", 512).Result()
		if err != nil {
			b.log.Warn("redis: reading a stream after subscribing", "channel", name, "err", err)
			return
		}
		for _, xm := range msgs {
			b.deliver(name, xm.ID, toMessage(xm.Values))
		}
		if len(msgs) < 512 {
			return
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

func (b *Broker) presenceKey(channel string) string {
	return presenceKey(b.instance, channel)
}

func presenceKey(instance, channel string) string {
	return keyPrefix + "presence:" + instance + ":" + channel
}

// heartbeat keeps this instance and its subscriber records alive, and
// writes them again after Redis lost them (a restart without persistence).
func (b *Broker) heartbeat() {
	defer b.wg.Done()
	tick := time.NewTicker(presenceTTL / 3)
	defer tick.Stop()
	for {
		b.mu.Lock()
		byChannel := map[string][]any{}
		for id, p := range b.presence {
			for _, ch := range p.channels {
				byChannel[ch] = append(byChannel[ch], id, p.record)
			}
		}
		b.mu.Unlock()
		b.secretsMu.Lock()
		secrets := map[string]string{}
		for k, s := range b.secrets {
			secrets[k] = s.signing
		}
		b.secretsMu.Unlock()
		held := map[string]*redis.StringCmd{}
		also := map[string]*redis.StringSliceCmd{}
		_, err := b.rdb.Pipelined(b.ctx, func(pl redis.Pipeliner) error {
			expiry := time.Now().Add(presenceTTL).UnixMilli()
			pl.ZAdd(b.ctx, instancesKey, redis.Z{Score: float64(expiry), Member: b.instance})
			// A secret Redis lost is written back, in the same beat as this
			// instance's record: an instance that starts meanwhile finds
			// one or the other missing, and waits (see SharedSecret).
			for k, v := range secrets {
				pl.SetNX(b.ctx, k, v, 0)
				held[k] = pl.Get(b.ctx, k)
				also[k] = pl.SMembers(b.ctx, alsoKey(k))
			}
			for ch, recs := range byChannel {
				pl.HSet(b.ctx, b.presenceKey(ch), recs...)
				pl.Expire(b.ctx, b.presenceKey(ch), presenceTTL)
				// A channel that is listened to does not expire.
				pl.PExpire(b.ctx, streamKey(ch), b.opts.IdleTTL)
				pl.PExpire(b.ctx, floorKey(ch), b.opts.IdleTTL)
				pl.PExpire(b.ctx, ownIDsKey(ch), b.opts.IdleTTL)
			}
			return nil
		})
		if err != nil && b.ctx.Err() == nil {
			b.log.Debug("redis: presence heartbeat", "err", err)
		}
		for k, cmd := range held {
			v, err := cmd.Result()
			if err != nil {
				continue
			}
			if v != secrets[k] {
				// Another instance made a secret while Redis had lost this
				// one's: sign with that one from now on, and have every
				// instance accept this one's too.
				b.log.Warn("redis: another instance made a different secret while Redis had lost this one's: this instance signs with the other's now, and every instance accepts both",
					"key", k)
				b.rdb.Pipelined(b.ctx, func(pl redis.Pipeliner) error {
					pl.SAdd(b.ctx, alsoKey(k), secrets[k])
					pl.Expire(b.ctx, alsoKey(k), alsoTTL)
					return nil
				})
			}
			b.secretsMu.Lock()
			b.secrets[k].update(v, also[k].Val())
			b.secretsMu.Unlock()
		}
		select {
		case <-b.ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// liveInstances are the instances whose heartbeat has not expired, read
// at most once per instancesFor: counting, which every ping and visit
// does, then takes one round trip, not two. An instance that starts is
// counted by the others within instancesFor; one that stops has removed
// its records already.
func (b *Broker) liveInstances(ctx context.Context) ([]string, error) {
	b.instMu.Lock()
	defer b.instMu.Unlock()
	if time.Since(b.instAt) < instancesFor {
		return b.instances, nil
	}
	now := strconv.FormatInt(time.Now().UnixMilli(), 10)
	ids, err := b.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{Key: instancesKey, Start: "(" + now, Stop: "+inf", ByScore: true}).Result()
	if err != nil {
		return nil, unavailable(err)
	}
	if !slices.Contains(ids, b.instance) {
		ids = append(ids, b.instance) // before its first heartbeat lands
	}
	b.instances, b.instAt = ids, time.Now()
	return ids, nil
}

const instancesFor = time.Second

// Subscribers lists the subscribers of every instance: this instance's
// from its own records, the others' from Redis. When Redis cannot be read
// it returns this instance's own, with the error.
func (b *Broker) Subscribers(ctx context.Context, channels ...string) ([]hub.Subscriber, error) {
	seen := map[string]bool{}
	var out []hub.Subscriber
	b.mu.Lock()
	for _, p := range b.presence {
		if !seen[p.sub.ID] && slices.ContainsFunc(channels, func(ch string) bool { return slices.Contains(p.channels, ch) }) {
			seen[p.sub.ID] = true
			out = append(out, p.sub)
		}
	}
	b.mu.Unlock()
	sorted := func() []hub.Subscriber {
		slices.SortFunc(out, func(a, b hub.Subscriber) int { return strings.Compare(a.ID, b.ID) })
		return out
	}
	others, err := b.otherInstances(ctx)
	if err != nil {
		return sorted(), err
	}
	var cmds []*redis.MapStringStringCmd
	_, err = b.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		for _, in := range others {
			for _, ch := range channels {
				cmds = append(cmds, pl.HGetAll(ctx, presenceKey(in, ch)))
			}
		}
		return nil
	})
	if err != nil {
		return sorted(), unavailable(err)
	}
	for _, cmd := range cmds {
		for _, rec := range cmd.Val() {
			var s hub.Subscriber
			if json.Unmarshal([]byte(rec), &s) == nil && !seen[s.ID] {
				seen[s.ID] = true
				out = append(out, s)
			}
		}
	}
	return sorted(), nil
}

// otherInstances are the live instances but this one.
func (b *Broker) otherInstances(ctx context.Context) ([]string, error) {
	ids, err := b.liveInstances(ctx)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return id == b.instance }), nil
}

// Count is how many subscribers the channels have on every instance: for
// one channel, this instance's count and one pipeline of an HLEN per other
// live instance (none when it is alone).
func (b *Broker) Count(ctx context.Context, channels ...string) (int, error) {
	if len(channels) != 1 {
		subs, err := b.Subscribers(ctx, channels...)
		return len(subs), err
	}
	n := b.e.Count(channels...)
	others, err := b.otherInstances(ctx)
	if err != nil || len(others) == 0 {
		return n, err
	}
	var cmds []*redis.IntCmd
	_, err = b.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		for _, in := range others {
			cmds = append(cmds, pl.HLen(ctx, presenceKey(in, channels[0])))
		}
		return nil
	})
	if err != nil {
		return n, unavailable(err)
	}
	for _, cmd := range cmds {
		n += int(cmd.Val())
	}
	return n, nil
}

// SharedSecret returns a random 32-byte secret that every instance using
// this Redis shares, made by whichever asks first. Instances that would
// disagree on it do not start: one that finds no secret while others are
// live refuses, saying why (they write theirs back within a heartbeat).
// One case no start can see: Redis lost everything, this instance's
// record too, and another starts and makes a secret of its own before
// this one's next heartbeat writes it back. That heartbeat finds the
// other's secret: this instance signs with it from then on, and adds its
// own to those every instance accepts (alsoKey), so that what either
// signed is accepted by both within a heartbeat.
func (b *Broker) SharedSecret(ctx context.Context, name string) (hub.Keys, error) {
	k := keyPrefix + "secret:" + name
	v, err := b.rdb.Get(ctx, k).Result()
	if errors.Is(err, redis.Nil) {
		// None yet: make one, unless other instances are live. Then Redis
		// lost theirs (a restart without persistence, a flush), and a new
		// one here would sign sessions they refuse: they write theirs back
		// with their next heartbeat.
		now := strconv.FormatInt(time.Now().UnixMilli(), 10)
		live, lerr := b.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{Key: instancesKey, Start: "(" + now, Stop: "+inf", ByScore: true}).Result()
		if lerr != nil {
			return nil, unavailable(lerr)
		}
		if others := slices.DeleteFunc(live, func(id string) bool { return id == b.instance }); len(others) > 0 {
			return nil, fmt.Errorf("redis holds no %s, but %d other sselab instance(s) are live: Redis lost its data; they write it back within %v, so start this one again then, or give every instance the same -session-key",
				name, len(others), presenceTTL/3)
		}
		fresh := make([]byte, 32)
		rand.Read(fresh)
		if serr := b.rdb.SetNX(ctx, k, hex.EncodeToString(fresh), 0).Err(); serr != nil {
			return nil, unavailable(serr)
		}
		v, err = b.rdb.Get(ctx, k).Result()
	}
	if err != nil {
		return nil, unavailable(err)
	}
	also, err := b.rdb.SMembers(ctx, alsoKey(k)).Result()
	if err != nil {
		return nil, unavailable(err)
	}
	s := &secret{}
	s.update(v, also)
	b.secretsMu.Lock()
	b.secrets[k] = s
	b.secretsMu.Unlock()
	return func() [][]byte {
		b.secretsMu.Lock()
		defer b.secretsMu.Unlock()
		return s.keys
	}, nil
}

// alsoKey holds the secrets that instances signed with before they came
// to agree on the one at k: each is accepted for as long as a session
// cookie lives.
func alsoKey(k string) string { return k + ":also" }

const (
	alsoTTL  = 30 * 24 * time.Hour // the chat's session cookie's MaxAge
	alsoKept = 16                  // secrets accepted besides the one signing, at most
)

// secret is one shared secret as this instance holds it, hex-encoded:
// the one it signs with (the one Redis holds, once a heartbeat has
// seen it) and the others it accepts. Guarded by Broker.secretsMu.
type secret struct {
	signing  string
	accepted []string
	keys     [][]byte // signing, then accepted, decoded: what Keys returns
}

// update makes current the secret that signs; the one that signed
// before, and those in also, are accepted.
func (s *secret) update(current string, also []string) {
	old := s.signing
	s.signing = current
	for _, v := range append([]string{old}, also...) {
		if v != "" && v != current && !slices.Contains(s.accepted, v) {
			s.accepted = append(s.accepted, v)
		}
	}
	s.accepted = slices.DeleteFunc(s.accepted, func(v string) bool { return v == current })
	if n := len(s.accepted); n > alsoKept {
		s.accepted = s.accepted[n-alsoKept:]
	}
	keys := make([][]byte, 0, 1+len(s.accepted))
	for _, v := range append([]string{current}, s.accepted...) {
		if k, err := hex.DecodeString(v); err == nil {
			keys = append(keys, k)
		}
	}
	s.keys = keys
}

// Redis is the broker's client, for a demo that keeps more than channels
// in the same store (the inbox's accounts and sessions). The broker owns
// it: Close closes it.
func (b *Broker) Redis() *redis.Client { return b.rdb }

// RoomFor is nil when n more bytes may be written to Redis, and ErrFull
// while it holds more than StoreBytes: the bound publishes keep, for what
// else is written there.
func (b *Broker) RoomFor(ctx context.Context, n int) error { return b.roomFor(ctx, n) }

// Close stops the loops, ends every subscription and disconnects.
func (b *Broker) Close() error {
	b.cancel()
	b.subMu.Lock()
	b.ps.Close()
	b.subMu.Unlock()
	b.wg.Wait()
	b.e.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	// Every record of this instance goes: those of subscriptions still
	// open, and of those that ended and were not removed yet.
	b.mu.Lock()
	keys := map[string]bool{}
	for _, p := range b.presence {
		for _, ch := range p.channels {
			keys[b.presenceKey(ch)] = true
		}
	}
	for _, g := range b.leaving {
		keys[g[0]] = true
	}
	b.leaving = nil
	b.mu.Unlock()
	b.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		pl.ZRem(ctx, instancesKey, b.instance)
		for k := range keys {
			pl.Del(ctx, k)
		}
		return nil
	})
	return b.rdb.Close()
}
