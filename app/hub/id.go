package hub

import (
	"strconv"
	"strings"
)

// ID is an event id in comparable form. The memory broker's ids are
// decimal integers ("1763712000123456"); Redis stream ids are
// "milliseconds-sequence". Both parse into an ID, and ids compare in the
// order they were given out. A broker of another store maps its ids onto
// these two numbers in the order it gives them out.
type ID struct{ Hi, Lo uint64 }

func (a ID) Less(b ID) bool { return a.Hi < b.Hi || (a.Hi == b.Hi && a.Lo < b.Lo) }

// ParseID reads a wire id of either form; ok is false for anything that
// is not one.
func ParseID(id string) (ID, bool) {
	hi, lo, found := strings.Cut(id, "-")
	h, err := strconv.ParseUint(hi, 10, 64)
	if err != nil {
		return ID{}, false
	}
	if !found {
		return ID{Hi: h}, true
	}
	l, err := strconv.ParseUint(lo, 10, 64)
	if err != nil {
		return ID{}, false
	}
	return ID{Hi: h, Lo: l}, true
}

// String is the id as the memory broker writes it: a decimal number.
func (a ID) String() string { return strconv.FormatUint(a.Hi, 10) }

// Earlier reports whether wire id a was given before wire id b; what is
// not an id counts as the earliest.
func Earlier(a, b string) bool {
	ka, _ := ParseID(a)
	kb, _ := ParseID(b)
	return ka.Less(kb)
}
