package handlers

import (
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
	"golang.org/x/text/secure/precis"
)

// Limits of what people write, from the contract: the chat's and the
// inbox's names and messages.
const (
	MaxUserChars    = 32
	MaxMessageBytes = 4096
)

// normalUser is a name as the chat and the inbox show it: the PRECIS Nickname profile
// (RFC 8266, golang.org/x/text/secure/precis) maps its width and
// compatibility forms to one (NFKC: a fullwidth ａｎｎ is ann), trims and
// collapses spaces, and refuses what cannot be shown as a name: controls,
// invisible fillers and other default-ignorable code points. Then 1 to
// MaxUserChars characters. Names are not owned on the chat (anyone may
// pick any name, as in the seed): a look-alike in another script is a
// matter for a demo where names are owned.
func normalUser(raw string) (string, error) {
	if !utf8.ValidString(raw) {
		return "", fmt.Errorf("user must be UTF-8 text")
	}
	if strings.TrimSpace(raw) == "" {
		return "", fmt.Errorf("user must be 1 to %d printable characters; got 0", MaxUserChars)
	}
	name, err := precis.Nickname.String(raw)
	if err != nil {
		return "", fmt.Errorf("user %s is not a name that can be shown: printable letters, digits, symbols and spaces only (%v)", quote(raw), err)
	}
	if n := utf8.RuneCountInString(name); n < 1 || n > MaxUserChars {
		return "", fmt.Errorf("user must be 1 to %d printable characters; got %d", MaxUserChars, n)
	}
	return name, nil
}

// checkMessage refuses a message over MaxMessageBytes (413), not UTF-8 or
// empty (400).
func checkMessage(msg string) error {
	switch {
	case len(msg) > MaxMessageBytes:
		return echo.NewHTTPError(http.StatusRequestEntityTooLarge,
			fmt.Sprintf("message is %d bytes; the limit is %d bytes of UTF-8", len(msg), MaxMessageBytes))
	case !utf8.ValidString(msg):
		return badRequest("message must be valid UTF-8")
	case strings.TrimSpace(msg) == "":
		return badRequest("message is empty: write something first")
	}
	return nil
}
