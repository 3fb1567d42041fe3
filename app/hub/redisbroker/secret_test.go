package redisbroker

import (
	"encoding/hex"
	"fmt"
	"slices"
	"testing"
)

// A secret signs with the one Redis holds and accepts those signed with
// before: its own old one, and those other instances put in alsoKey,
// each once, at most alsoKept of them, the newest kept.
func TestSecretUpdate(t *testing.T) {
	h := func(b byte) string { return hex.EncodeToString([]byte{b}) }
	var s secret
	s.update(h(1), nil)
	want := func(signing string, accepted ...string) {
		t.Helper()
		if s.signing != signing || !slices.Equal(s.accepted, accepted) {
			t.Fatalf("signing %s, accepted %v; want %s, %v", s.signing, s.accepted, signing, accepted)
		}
		if len(s.keys) != 1+len(accepted) || hex.EncodeToString(s.keys[0]) != signing {
			t.Fatalf("keys %x: want the signing one first, then the %d accepted", s.keys, len(accepted))
		}
	}
	want(h(1))
	s.update(h(2), []string{h(1)}) // another instance's key won; ours is in alsoKey
	want(h(2), h(1))
	s.update(h(2), []string{h(1), h(3)})
	want(h(2), h(1), h(3))
	s.update(h(3), []string{h(1), h(3)}) // the one signing is never among the accepted
	want(h(3), h(1), h(2))
	var many []string
	for i := range 40 {
		many = append(many, fmt.Sprintf("%02x", 100+i))
	}
	s.update(h(3), many)
	if len(s.accepted) != alsoKept || s.accepted[alsoKept-1] != many[len(many)-1] {
		t.Errorf("%d accepted, the last %s; want %d, the newest kept", len(s.accepted), s.accepted[len(s.accepted)-1], alsoKept)
	}
}
