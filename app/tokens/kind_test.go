package tokens

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The README's two examples of new kinds, tested here so they stay true.

// JoinedLines joins multi-line data into one line separated by ";".
type JoinedLines struct{ String }

func (JoinedLines) Value(_, posted string) (string, error) {
	return strings.Join(strings.Split(strings.ReplaceAll(posted, "\r\n", "\n"), "\n"), ";"), nil
}

// TimestampIDs gives every event its time, in microseconds, as id.
type TimestampIDs struct{ String }

func (TimestampIDs) ID(now time.Time) (string, bool) {
	return strconv.FormatInt(now.UnixMicro(), 10), true
}

var (
	_ Kind = JoinedLines{}
	_ Kind = TimestampIDs{}
)

func TestKinds(t *testing.T) {
	now := time.Unix(1763712000, 123456000)
	tests := []struct {
		name    string
		kind    Kind
		posted  string
		data    string
		wantErr string
		id      string
		hasID   bool
	}{
		{"string", String{}, "a\nb", "a\nb", "", "", false},
		{"string with ids", String{IDs: true}, "x", "x", "", "", true},
		{"json", JSON{}, `{"a": [1, 2]}`, `{"a": [1, 2]}`, "", "", false},
		{"json with ids", JSON{IDs: true}, `42`, `42`, "", "", true},
		{"json refuses text", JSON{}, `hello`, "", "data must be valid JSON: invalid character 'h'", "", false},
		{"json refuses a trailing comma", JSON{}, `[1,]`, "", "data must be valid JSON", "", false},
		{"json refuses nothing", JSON{}, ``, "", "data must be valid JSON: unexpected end of JSON input", "", false},
		{"joined lines", JoinedLines{}, "a\nb\r\nc", "a;b;c", "", "", false},
		{"timestamp ids", TimestampIDs{}, "x", "x", "", "1763712000123456", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := tt.kind.Value(Ping, tt.posted)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || data != tt.data {
				t.Errorf("Value: got %q %v, want %q", data, err, tt.data)
			}
			if id, ok := tt.kind.ID(now); id != tt.id || ok != tt.hasID {
				t.Errorf("ID: got %q %v, want %q %v", id, ok, tt.id, tt.hasID)
			}
			if !slices.Equal(tt.kind.Actions(), []string{Ping, Close, Retry}) {
				t.Errorf("Actions: got %v", tt.kind.Actions())
			}
		})
	}
}

func TestFor(t *testing.T) {
	for _, tt := range []struct {
		j, i bool
		want Kind
	}{{false, false, String{}}, {false, true, String{IDs: true}}, {true, false, JSON{}}, {true, true, JSON{IDs: true}}} {
		if got := For(tt.j, tt.i); got != tt.want {
			t.Errorf("For(%v, %v): got %#v, want %#v", tt.j, tt.i, got, tt.want)
		}
	}
}

func TestValidToken(t *testing.T) {
	for _, ok := range []string{"a", "abc-DEF_1.2:3", strings.Repeat("x", 64)} {
		if err := ValidToken(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", strings.Repeat("x", 65), "a b", "a/b", "é", "a\nb", "<script>"} {
		if err := ValidToken(bad); err == nil {
			t.Errorf("%q: got no error", bad)
		}
	}
}
