package inbox

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/mtibben/confusables"
	"golang.org/x/crypto/argon2"
)

// argon2id's cost, as OWASP's password storage guidance gives it (19 MiB,
// two passes, one lane). Each hash holds its memory while it runs, so
// hashing is bounded: at most hashSlots at once, and who waits longer
// than the request may is refused.
const (
	argonTime    = 2
	argonMemory  = 19 * 1024 // KiB
	argonThreads = 1
	argonKeyLen  = 32
	saltLen      = 16
	hashSlots    = 2
)

var slots = make(chan struct{}, hashSlots)

// ErrBusy: every hashing slot stayed taken while the request waited.
var ErrBusy = errors.New("inbox: too many sign-ins at once")

// Hash returns the PHC string of password's argon2id hash with a fresh
// salt: $argon2id$v=19$m=19456,t=2,p=1$salt$key.
func Hash(ctx context.Context, password string) (string, error) {
	salt := make([]byte, saltLen)
	rand.Read(salt)
	key, err := derive(ctx, password, salt, argonTime, argonMemory, argonThreads)
	if err != nil {
		return "", err
	}
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// Verify reports whether password matches the PHC string hash, in time
// that does not depend on where they differ.
func Verify(ctx context.Context, password, hash string) (bool, error) {
	parts := strings.Split(hash, "$")
	var v int
	var m, t uint32
	var p uint8
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, errors.New("inbox: not an argon2id hash")
	}
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return false, errors.New("inbox: an argon2 version this build does not know")
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || m > 64*1024 || t > 10 || p < 1 || p > 4 {
		return false, errors.New("inbox: argon2 parameters out of bounds")
	}
	b64 := base64.RawStdEncoding
	salt, err1 := b64.DecodeString(parts[4])
	want, err2 := b64.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) != argonKeyLen {
		return false, errors.New("inbox: a malformed hash")
	}
	got, err := derive(ctx, password, salt, t, m, p)
	if err != nil {
		return false, err
	}
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// derive runs argon2id in one of the slots.
func derive(ctx context.Context, password string, salt []byte, t, m uint32, p uint8) ([]byte, error) {
	select {
	case slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ErrBusy
	}
	defer func() { <-slots }()
	return argon2.IDKey([]byte(password), salt, t, m, p, argonKeyLen), nil
}

// Skeleton is what a name looks like: Unicode's confusable skeleton
// (UTS #39) of its lower case, so that "alice", "Alice" and "аlice" with a
// Cyrillic а have one, and only one of them can be owned.
func Skeleton(name string) string {
	return confusables.Skeleton(strings.ToLower(name))
}
