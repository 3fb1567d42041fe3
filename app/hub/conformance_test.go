package hub_test

import (
	"testing"

	"sselab/app/hub"
	"sselab/app/hub/hubtest"
)

func newMemory(t *testing.T, o hub.Options) hub.Broker {
	b := hub.NewMemory(o)
	t.Cleanup(func() { b.Close() })
	return b
}

// The memory broker passes the suite every broker must pass.
func TestConformance(t *testing.T) {
	hubtest.Run(t, hubtest.Kind{New: newMemory, Restart: newMemory})
}
