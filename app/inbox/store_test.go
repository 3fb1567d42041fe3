package inbox_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"sselab/app/hub"
	"sselab/app/hub/redistest"
	"sselab/app/inbox"
)

// Both stores keep the same promises: a name is claimed once, a look-alike
// of it not at all, sessions end one by one or all at once (by the
// account's generation), attempts are counted in a window.
func TestStores(t *testing.T) {
	for _, k := range []struct {
		name string
		new  func(t *testing.T) inbox.Store
	}{
		{"memory", func(*testing.T) inbox.Store { return inbox.NewMemory() }},
		{"redis", func(t *testing.T) inbox.Store {
			opt, err := redis.ParseURL(redistest.Start(t).URL)
			if err != nil {
				t.Fatal(err)
			}
			rdb := redis.NewClient(opt)
			t.Cleanup(func() { rdb.Close() })
			return inbox.NewRedis(rdb)
		}},
	} {
		t.Run(k.name, func(t *testing.T) {
			s, ctx := k.new(t), context.Background()
			if _, err := s.Claim(ctx, inbox.Account{Name: "alice", Hash: "h1"}, inbox.Skeleton("alice")); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Claim(ctx, inbox.Account{Name: "alice", Hash: "h2"}, inbox.Skeleton("alice")); !errors.Is(err, inbox.ErrExists) {
				t.Errorf("a second claim: %v, want ErrExists", err)
			}
			if owner, err := s.Claim(ctx, inbox.Account{Name: "аlice", Hash: "h3"}, inbox.Skeleton("аlice")); !errors.Is(err, inbox.ErrLookalike) || owner != "alice" {
				t.Errorf("a look-alike: %q %v, want ErrLookalike naming alice", owner, err)
			}
			a, ok, err := s.Account(ctx, "alice")
			if err != nil || !ok || a.Hash != "h1" || a.Gen != 0 {
				t.Fatalf("account: %+v %v %v", a, ok, err)
			}
			if _, ok, _ := s.Account(ctx, "аlice"); ok {
				t.Error("the look-alike got an account")
			}
			exp := time.Now().Add(time.Minute)
			for _, id := range []string{"s1", "s2"} {
				if err := s.PutSession(ctx, id, inbox.Session{User: "alice", Expires: exp}); err != nil {
					t.Fatal(err)
				}
			}
			if got, ok, _ := s.Session(ctx, "s1"); !ok || got.User != "alice" || !got.Expires.Equal(exp.Round(0)) && got.Expires.Sub(exp).Abs() > time.Millisecond {
				t.Errorf("session: %+v %v", got, ok)
			}
			s.EndSession(ctx, "s1")
			if _, ok, _ := s.Session(ctx, "s1"); ok {
				t.Error("an ended session is still there")
			}
			if gen, err := s.EndAll(ctx, "alice"); err != nil || gen != 1 {
				t.Errorf("EndAll: %d %v, want generation 1", gen, err)
			}
			if a, _, _ := s.Account(ctx, "alice"); a.Gen != 1 {
				t.Errorf("generation after EndAll: %d", a.Gen)
			}
			s.PutSession(ctx, "old", inbox.Session{User: "alice", Expires: time.Now().Add(-time.Second)})
			if _, ok, _ := s.Session(ctx, "old"); ok {
				t.Error("an expired session is still there")
			}
			for i := 1; i <= 3; i++ {
				n, left, err := s.Hit(ctx, "k", time.Minute)
				if err != nil || n != int64(i) || left <= 0 || left > time.Minute {
					t.Errorf("hit %d: %d, %v, %v", i, n, left, err)
				}
			}
		})
	}
}

// A password verifies against its own hash only; the hash is argon2id's
// PHC string with a fresh salt, and a tampered or foreign one is refused.
func TestHash(t *testing.T) {
	ctx := context.Background()
	h1, err := inbox.Hash(ctx, "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	h2, _ := inbox.Hash(ctx, "correct horse")
	if !strings.HasPrefix(h1, "$argon2id$v=19$m=19456,t=2,p=1$") || h1 == h2 {
		t.Errorf("hashes %q and %q: want argon2id with a fresh salt each", h1, h2)
	}
	if ok, err := inbox.Verify(ctx, "correct horse", h1); !ok || err != nil {
		t.Errorf("the right password: %v %v", ok, err)
	}
	if ok, _ := inbox.Verify(ctx, "correct horsf", h1); ok {
		t.Error("a wrong password verified")
	}
	for _, bad := range []string{"", "$2a$10$abc", strings.Replace(h1, "m=19456", "m=999999999", 1), h1[:len(h1)-4]} {
		if ok, err := inbox.Verify(ctx, "correct horse", bad); ok || err == nil {
			t.Errorf("hash %q: %v %v, want an error", bad, ok, err)
		}
	}
}

func TestSkeleton(t *testing.T) {
	same := [][2]string{{"alice", "аlice"}, {"alice", "Alice"}, {"bill", "bi11"}, {"paypal", "pаypаl"}}
	for _, p := range same {
		if inbox.Skeleton(p[0]) != inbox.Skeleton(p[1]) {
			t.Errorf("%q and %q: different skeletons", p[0], p[1])
		}
	}
	if inbox.Skeleton("alice") == inbox.Skeleton("alina") {
		t.Error("alice and alina: one skeleton")
	}
}

// fullBroker is a Redis broker past its memory bound.
type fullBroker struct{ rdb *redis.Client }

func (b fullBroker) Redis() *redis.Client { return b.rdb }
func (fullBroker) RoomFor(context.Context, int) error {
	return fmt.Errorf("%w: Redis holds more than its bound", hub.ErrFull)
}

// Past the broker's memory bound (-redis-max-memory) no account and no
// session is written: the store refuses with ErrFull, as publishes are.
func TestRedisStoreKeepsTheMemoryBound(t *testing.T) {
	opt, err := redis.ParseURL(redistest.Start(t).URL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	s, ctx := inbox.StoreFor(fullBroker{rdb}), context.Background()
	if _, err := s.Claim(ctx, inbox.Account{Name: "ann", Hash: "h"}, "ann"); !errors.Is(err, inbox.ErrFull) {
		t.Errorf("claim past the bound: %v, want ErrFull", err)
	}
	if err := s.PutSession(ctx, "s", inbox.Session{User: "ann", Expires: time.Now().Add(time.Minute)}); !errors.Is(err, inbox.ErrFull) {
		t.Errorf("session past the bound: %v, want ErrFull", err)
	}
	if n, _ := rdb.DBSize(ctx).Result(); n != 0 {
		t.Errorf("%d keys written past the bound", n)
	}
}
