package handlers

import (
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"sselab/app/hub"
)

// publishes counts what the broker publishes, per channel.
type publishes struct {
	mu sync.Mutex
	n  map[string]int
}

func (p *publishes) Published(ch string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n[ch]++
}
func (p *publishes) Delivered(uint64, int) {}
func (p *publishes) Dropped()              {}
func (p *publishes) count(ch string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n[ch]
}

// Joins and leaves within CountEvery share one announcement of the count:
// a burst of viewers costs one publish, not one per viewer.
func TestVisitsCountCoalesced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		obs := &publishes{n: map[string]int{}}
		b := hub.NewMemory(hub.Options{State: []string{ViewersChannel}, Observer: obs})
		defer b.Close()
		h := NewVisits(b, time.Minute)
		for range 100 {
			h.announce()
		}
		time.Sleep(CountEvery)
		synctest.Wait()
		if n := obs.count(ViewersChannel); n != 1 {
			t.Fatalf("100 joins within %v: %d announcements, want 1", CountEvery, n)
		}
		h.announce() // a later join is announced again
		time.Sleep(CountEvery)
		synctest.Wait()
		if n := obs.count(ViewersChannel); n != 2 {
			t.Errorf("a join after the first announcement: %d announcements in all, want 2", n)
		}
	})
}
