// Package tokens holds the event kinds of the token streams, the Tornado
// eventsource seed's Event classes: a kind decides which actions clients
// may post, how a posted value becomes event data, and whether and how
// events get ids. The handler only asks its kind, so a new kind needs no
// change to the handler.
package tokens

import (
	"encoding/json"
	"fmt"
	"regexp"
	"time"
)

// Kind is what an event kind decides.
type Kind interface {
	// Actions are the actions clients may post, such as ping and close.
	Actions() []string
	// Value turns a posted value into event data, or says in plain words
	// why the value is refused (the client gets a 400 with that reason).
	Value(action, posted string) (string, error)
	// ID says whether an event made now carries an id, and which: "" with
	// ok true means the broker's own id, which replay by Last-Event-ID
	// finds directly; any other string is sent as the id and found in the
	// history by a scan.
	ID(now time.Time) (id string, ok bool)
	// Rules describe the kind for the page that explains it.
	Rules() Rules
}

// Rules are what a page tells a learner about a kind.
type Rules struct {
	JSON bool // data must be valid JSON
	IDs  bool // events carry ids
}

// The seed's actions.
const (
	Ping  = "ping"
	Close = "close"
	Retry = "retry"
)

// String is the seed's StringEvent: any text, no ids. With IDs set it is
// StringIdEvent: every event carries an id.
type String struct{ IDs bool }

// Actions are ping, close and retry.
func (String) Actions() []string { return []string{Ping, Close, Retry} }

// Value accepts any text.
func (String) Value(_, posted string) (string, error) { return posted, nil }

// ID is the broker's id when IDs is set.
func (k String) ID(time.Time) (string, bool) { return "", k.IDs }

// Rules: any text, ids when IDs is set.
func (k String) Rules() Rules { return Rules{IDs: k.IDs} }

// JSON is the seed's JSONEvent: data must be valid JSON. With IDs set it
// is JSONIdEvent.
type JSON struct{ IDs bool }

// Actions are ping, close and retry.
func (JSON) Actions() []string { return []string{Ping, Close, Retry} }

// Value accepts valid JSON only, and names the parser's complaint.
func (JSON) Value(_, posted string) (string, error) {
	var v any
	if err := json.Unmarshal([]byte(posted), &v); err != nil {
		return "", fmt.Errorf("data must be valid JSON: %v", err)
	}
	return posted, nil
}

// ID is the broker's id when IDs is set.
func (k JSON) ID(time.Time) (string, bool) { return "", k.IDs }

// Rules: JSON data, ids when IDs is set.
func (k JSON) Rules() Rules { return Rules{JSON: true, IDs: k.IDs} }

// For is the kind that `sselab serve -j` and `-i` choose.
func For(jsonData, ids bool) Kind {
	if jsonData {
		return JSON{IDs: ids}
	}
	return String{IDs: ids}
}

var tokenPattern = regexp.MustCompile(`^[A-Za-z0-9:._-]{1,64}$`)

// ValidToken checks a token: 1 to 64 of A-Z a-z 0-9 : . _ -
func ValidToken(token string) error {
	if !tokenPattern.MatchString(token) {
		return fmt.Errorf("token must be 1 to 64 characters of A-Z a-z 0-9 : . _ -; got %q", token)
	}
	return nil
}

// Channel is the broker channel of a token.
func Channel(token string) string { return "token:" + token }
