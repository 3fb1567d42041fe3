package hub

import "testing"

// Client ids are parsed into keys; whatever a client sends, parsing never
// panics, and what parses orders consistently with its own form.
func FuzzParseKey(f *testing.F) {
	for _, s := range []string{"1763712000123456", "1763712000123-5", "-", "1-", "18446744073709551616", "0-0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, ok := ParseID(s)
		if !ok {
			return
		}
		if k.Lo == 0 {
			back, ok := ParseID(k.String())
			if !ok || back != k {
				t.Fatalf("%q: key %v formats as %q, which parses as %v", s, k, k.String(), back)
			}
		}
		if k.Less(k) {
			t.Fatalf("%q: a key less than itself", s)
		}
	})
}
