package hub

import (
	"strconv"
	"strings"
)

// key is an event id in comparable form. The memory broker's ids are
// decimal integers ("1763712000123456"); Redis stream ids are
// "milliseconds-sequence". Both parse into a key, and ids compare in the
// order they were given out.
type key struct{ hi, lo uint64 }

func (a key) less(b key) bool { return a.hi < b.hi || (a.hi == b.hi && a.lo < b.lo) }

// parseKey reads an id; ok is false for anything that is not one.
func parseKey(id string) (key, bool) {
	hi, lo, found := strings.Cut(id, "-")
	h, err := strconv.ParseUint(hi, 10, 64)
	if err != nil {
		return key{}, false
	}
	if !found {
		return key{hi: h}, true
	}
	l, err := strconv.ParseUint(lo, 10, 64)
	if err != nil {
		return key{}, false
	}
	return key{hi: h, lo: l}, true
}

// String is the key as the memory broker's id: a decimal number.
func (a key) String() string { return strconv.FormatUint(a.hi, 10) }
