package timefeed

import (
	"testing"
	"time"
)

func TestToggles(t *testing.T) {
	var f Feed
	if f.On() || f.Plain() {
		t.Fatal("a new feed must start off, as the seed does")
	}
	if got := f.ToggleFeed(); !got || !f.On() {
		t.Errorf("ToggleFeed: got %v, want true", got)
	}
	if got := f.ToggleFeed(); got || f.On() {
		t.Errorf("second ToggleFeed: got %v, want false", got)
	}
	if got := f.ToggleType(); !got || !f.Plain() || f.On() {
		t.Errorf("ToggleType: got %v, want only the type switch on", got)
	}
}

func TestEvent(t *testing.T) {
	ev := Event(time.Unix(1763712000, 123456789))
	if ev.Type != "time" || ev.Data != "1763712000.123456" {
		t.Errorf("got %+v, want time 1763712000.123456", ev)
	}
}
