package doctor

import (
	"testing"

	"go.uber.org/goleak"
)

// No test leaves a goroutine behind: a run's stream readers, posts and
// connections end with it.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
