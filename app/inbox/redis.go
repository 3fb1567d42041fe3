package inbox

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"sselab/app/hub"
)

// Redis is a Store in the Redis server the broker uses: every instance
// started with the same -redis shares its accounts and sessions. Keys
// live under sselab:inbox:; sessions and counters expire by themselves.
type Redis struct {
	rdb *redis.Client
	// room, if set, refuses writes while Redis is past the broker's
	// memory bound (-redis-max-memory): accounts and sessions are held
	// to it as channels are.
	room func(ctx context.Context, n int) error
}

// roomFor is ErrFull past the memory bound.
func (r *Redis) roomFor(ctx context.Context, n int) error {
	if r.room == nil {
		return nil
	}
	if err := r.room(ctx, n); err != nil {
		if errors.Is(err, hub.ErrFull) {
			return ErrFull
		}
		return err
	}
	return nil
}

const redisPrefix = "sselab:inbox:"

// StoreFor is the store beside broker's channels: in its Redis when it has
// one (the Redis broker's Redis method), so that every instance shares
// accounts and sessions; else in this process's memory.
func StoreFor(broker any) Store {
	if r, ok := broker.(redisBroker); ok {
		s := NewRedis(r.Redis())
		s.room = r.RoomFor
		return s
	}
	return NewMemory()
}

// redisBroker is what StoreFor needs of the Redis broker.
type redisBroker interface {
	Redis() *redis.Client
	RoomFor(ctx context.Context, n int) error // past the store's memory bound: hub.ErrFull
}

// NewRedis keeps the store in rdb, the broker's client (which fails fast:
// no retries, a bound on each command); whoever made rdb closes it.
func NewRedis(rdb *redis.Client) *Redis { return &Redis{rdb: rdb} }

func accountKey(name string) string { return redisPrefix + "account:" + name }
func sessionKey(id string) string   { return redisPrefix + "session:" + id }

func (r *Redis) Account(ctx context.Context, name string) (Account, bool, error) {
	v, err := r.rdb.HGetAll(ctx, accountKey(name)).Result()
	if err != nil {
		return Account{}, false, err
	}
	if len(v) == 0 {
		return Account{}, false, nil
	}
	gen, _ := strconv.ParseInt(v["gen"], 10, 64)
	return Account{Name: name, Hash: v["hash"], Gen: gen}, true, nil
}

// claimScript makes an account unless it or its skeleton exists, and
// counts accounts against MaxAccounts, in one step.
var claimScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return {'exists', ARGV[3]} end
local owner = redis.call('GET', KEYS[2])
if owner then return {'lookalike', owner} end
if tonumber(redis.call('GET', KEYS[3]) or '0') >= tonumber(ARGV[4]) then return {'full', ''} end
redis.call('HSET', KEYS[1], 'hash', ARGV[1], 'gen', '0')
redis.call('SET', KEYS[2], ARGV[3])
redis.call('INCR', KEYS[3])
return {'ok', ''}`)

func (r *Redis) Claim(ctx context.Context, a Account, skeleton string) (string, error) {
	if err := r.roomFor(ctx, 3*len(a.Name)+len(a.Hash)+len(skeleton)+100); err != nil {
		return "", err
	}
	v, err := claimScript.Run(ctx, r.rdb, []string{accountKey(a.Name), redisPrefix + "skeleton:" + skeleton, redisPrefix + "accounts"},
		a.Hash, "", a.Name, MaxAccounts).StringSlice()
	if err != nil {
		return "", err
	}
	switch v[0] {
	case "exists":
		return v[1], ErrExists
	case "lookalike":
		return v[1], ErrLookalike
	case "full":
		return "", ErrFull
	}
	return "", nil
}

func (r *Redis) PutSession(ctx context.Context, id string, s Session) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	ttl := time.Until(s.Expires)
	if ttl <= 0 {
		return nil
	}
	if err := r.roomFor(ctx, len(b)+100); err != nil {
		return err
	}
	return r.rdb.Set(ctx, sessionKey(id), b, ttl).Err()
}

func (r *Redis) Session(ctx context.Context, id string) (Session, bool, error) {
	b, err := r.rdb.Get(ctx, sessionKey(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return Session{}, false, nil
	}
	if err != nil {
		return Session{}, false, err
	}
	var s Session
	if err := json.Unmarshal(b, &s); err != nil || !time.Now().Before(s.Expires) {
		return Session{}, false, nil
	}
	return s, true, nil
}

func (r *Redis) EndSession(ctx context.Context, id string) error {
	return r.rdb.Del(ctx, sessionKey(id)).Err()
}

func (r *Redis) EndAll(ctx context.Context, name string) (int64, error) {
	if n, err := r.rdb.Exists(ctx, accountKey(name)).Result(); err != nil || n == 0 {
		return 0, err
	}
	return r.rdb.HIncrBy(ctx, accountKey(name), "gen", 1).Result()
}

// hitScript counts an attempt in a window that starts with the first.
var hitScript = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return {n, redis.call('PTTL', KEYS[1])}`)

func (r *Redis) Hit(ctx context.Context, key string, window time.Duration) (int64, time.Duration, error) {
	v, err := hitScript.Run(ctx, r.rdb, []string{redisPrefix + "hits:" + key}, window.Milliseconds()).Int64Slice()
	if err != nil {
		return 0, 0, err
	}
	return v[0], time.Duration(max(v[1], 0)) * time.Millisecond, nil
}
