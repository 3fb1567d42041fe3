// Package inbox keeps the accounts and sessions of the private inbox
// demo: passwords stored only as slow hashes (argon2id), sessions that end
// on sign-out, "everywhere" or expiry, and counters that rate-limit
// sign-in. The store is in memory, or in the Redis server the broker uses
// (-redis), so that every instance knows every account and session.
package inbox

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Account is a claimed name.
type Account struct {
	Name string
	Hash string // PHC string of argon2id (see Hash)
	// Gen is bumped by "sign out everywhere": a session made under an
	// older Gen is over.
	Gen int64
}

// Session is one sign-in.
type Session struct {
	User    string
	Gen     int64
	Expires time.Time
}

// Bounds of a store: past them it refuses (ErrFull) rather than grows.
const (
	MaxAccounts = 100_000
	MaxSessions = 200_000
	MaxCounters = 100_000
)

var (
	// ErrFull: a bound of the store would be passed.
	ErrFull = errors.New("inbox: the store is full")
	// ErrLookalike: a name that looks like another's (same skeleton).
	ErrLookalike = errors.New("inbox: the name looks like one in use")
	// ErrExists: the name is claimed already.
	ErrExists = errors.New("inbox: the name is taken")
)

// Store keeps accounts, sessions and attempt counters.
type Store interface {
	// Account is the account of name; ok is false when there is none.
	Account(ctx context.Context, name string) (a Account, ok bool, err error)
	// Claim makes the account, unless the name is taken (ErrExists) or
	// another name has its skeleton (ErrLookalike, with that name).
	Claim(ctx context.Context, a Account, skeleton string) (owner string, err error)
	// PutSession stores a session under id until it expires.
	PutSession(ctx context.Context, id string, s Session) error
	// Session is the session of id; ok is false when there is none (never
	// made, ended or expired).
	Session(ctx context.Context, id string) (s Session, ok bool, err error)
	// EndSession removes a session.
	EndSession(ctx context.Context, id string) error
	// EndAll makes every session of name made so far invalid; the
	// account's new Gen.
	EndAll(ctx context.Context, name string) (int64, error)
	// Hit counts one attempt under key in a window that starts with the
	// first: the count so far, and the time left in the window.
	Hit(ctx context.Context, key string, window time.Duration) (n int64, left time.Duration, err error)
}

// Memory is a Store in this process.
type Memory struct {
	mu        sync.Mutex
	now       func() time.Time
	accounts  map[string]Account
	skeletons map[string]string
	sessions  map[string]Session
	counters  map[string]counter
}

type counter struct {
	n     int64
	until time.Time
}

// NewMemory returns an empty store in memory.
func NewMemory() *Memory {
	return &Memory{now: time.Now, accounts: map[string]Account{}, skeletons: map[string]string{},
		sessions: map[string]Session{}, counters: map[string]counter{}}
}

func (m *Memory) Account(_ context.Context, name string) (Account, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a, ok := m.accounts[name]
	return a, ok, nil
}

func (m *Memory) Claim(_ context.Context, a Account, skeleton string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.accounts[a.Name]; ok {
		return a.Name, ErrExists
	}
	if owner, ok := m.skeletons[skeleton]; ok {
		return owner, ErrLookalike
	}
	if len(m.accounts) >= MaxAccounts {
		return "", ErrFull
	}
	m.accounts[a.Name], m.skeletons[skeleton] = a, a.Name
	return "", nil
}

func (m *Memory) PutSession(_ context.Context, id string, s Session) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.sessions) >= MaxSessions {
		now := m.now()
		for k, v := range m.sessions {
			if !now.Before(v.Expires) {
				delete(m.sessions, k)
			}
		}
		if len(m.sessions) >= MaxSessions {
			return ErrFull
		}
	}
	m.sessions[id] = s
	return nil
}

func (m *Memory) Session(_ context.Context, id string) (Session, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.sessions[id]
	if ok && !m.now().Before(s.Expires) {
		delete(m.sessions, id)
		return Session{}, false, nil
	}
	return s, ok, nil
}

func (m *Memory) EndSession(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.sessions, id)
	return nil
}

func (m *Memory) EndAll(_ context.Context, name string) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a, ok := m.accounts[name]
	if !ok {
		return 0, nil
	}
	a.Gen++
	m.accounts[name] = a
	return a.Gen, nil
}

func (m *Memory) Hit(_ context.Context, key string, window time.Duration) (int64, time.Duration, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	c, ok := m.counters[key]
	if !ok || !now.Before(c.until) {
		if len(m.counters) >= MaxCounters {
			for k, v := range m.counters {
				if !now.Before(v.until) {
					delete(m.counters, k)
				}
			}
		}
		if len(m.counters) >= MaxCounters {
			return 0, 0, ErrFull
		}
		c = counter{until: now.Add(window)}
	}
	c.n++
	m.counters[key] = c
	return c.n, c.until.Sub(now), nil
}
