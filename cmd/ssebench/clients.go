package main

import (
	"context"
	"strings"
	"sync"
	"time"

	redis "github.com/redis/go-redis/v9"
)

// redisClients samples redis-server's CLIENT LIST every 200 ms until ctx
// ends, and keeps the most connections any one sselab instance held at
// once (each names its connections sselab-INSTANCE).
type redisClients struct {
	mu   sync.Mutex
	most int
	done chan struct{}
}

func watchClients(ctx context.Context, url string) *redisClients {
	w := &redisClients{done: make(chan struct{})}
	opt, err := redis.ParseURL(url)
	if err != nil {
		close(w.done)
		return w
	}
	opt.ClientName = "ssebench"
	rdb := redis.NewClient(opt)
	go func() {
		defer close(w.done)
		defer rdb.Close()
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			if list, err := rdb.ClientList(ctx).Result(); err == nil {
				w.sample(list)
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

func (rc *redisClients) sample(list string) {
	per := map[string]int{}
	for line := range strings.Lines(list) {
		for field := range strings.FieldsSeq(line) {
			if name, ok := strings.CutPrefix(field, "name=sselab-"); ok {
				per[name]++
			}
		}
	}
	rc.mu.Lock()
	for _, n := range per {
		rc.most = max(rc.most, n)
	}
	rc.mu.Unlock()
}

// Most is the largest number seen; it waits for the sampling to end.
func (rc *redisClients) Most() int {
	<-rc.done
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.most
}
