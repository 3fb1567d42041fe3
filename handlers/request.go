package handlers

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

// Limits on what a client may send, from the contract.
const (
	// MaxBody is the largest request body, however it is sent.
	MaxBody = 64 << 10
	// MaxLastEventID is the longest Last-Event-ID accepted.
	MaxLastEventID = 256
)

// cookieName is a cookie's name as this request's scheme has it: over TLS
// it carries the __Secure- prefix, which browsers accept only on a Secure
// cookie. Cookies ignore the port, and a browser refuses to let a plain-HTTP
// page overwrite a Secure cookie of the same name (Chromium, after "Leave
// Secure Cookies Alone"), so without the prefix a learner who ran sselab
// -tls and then sselab on the same host would never get a cookie again.
func cookieName(c echo.Context, name string) string {
	if c.IsTLS() {
		return "__Secure-" + name
	}
	return name
}

// badRequest is a 400 whose plain-text body names what was wrong.
func badRequest(format string, args ...any) error {
	return echo.NewHTTPError(http.StatusBadRequest, fmt.Sprintf(format, args...))
}

// quote shows a client's value in a message, shortened: a reason names
// what was wrong without echoing a megabyte back.
func quote(s string) string {
	const n = 64
	if len(s) <= n {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:n]) + fmt.Sprintf("… (%d bytes)", len(s))
}

// durationParam reads a query duration such as 250ms within [lo, hi].
func durationParam(c echo.Context, name string, def, lo, hi time.Duration) (time.Duration, error) {
	v := c.QueryParam(name)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < lo || d > hi {
		return 0, badRequest("%s must be a duration from %v to %v, such as 250ms; got %s", name, lo, hi, quote(v))
	}
	return d, nil
}

// intParam reads a query integer within [lo, hi].
func intParam(c echo.Context, name string, def, lo, hi int) (int, error) {
	v := c.QueryParam(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, badRequest("%s must be an integer from %d to %d; got %s", name, lo, hi, quote(v))
	}
	return n, nil
}

func flagParam(c echo.Context, name string) (bool, error) {
	switch v := c.QueryParam(name); v {
	case "", "0", "false":
		return false, nil
	case "1", "true":
		return true, nil
	default:
		return false, badRequest("%s must be 1 or 0; got %s", name, quote(v))
	}
}

// lastEventID is the id a reconnecting client resumes from: the
// Last-Event-ID header that EventSource sends, or the lastEventId query
// parameter, so curl and devtools can try replay by hand. Over
// MaxLastEventID bytes it is refused.
func lastEventID(c echo.Context) (string, error) {
	id := c.Request().Header.Get("Last-Event-ID")
	if id == "" {
		id = c.QueryParam("lastEventId")
	}
	if len(id) > MaxLastEventID {
		return "", badRequest("Last-Event-ID is %d bytes; the limit is %d", len(id), MaxLastEventID)
	}
	return id, nil
}

// bodyError turns a failure to read the body into the answer it deserves:
// 413 past MaxBody, 408 when it did not arrive in time.
func bodyError(err error) error {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return echo.NewHTTPError(http.StatusRequestEntityTooLarge,
			fmt.Sprintf("the request body is larger than %d bytes (64 KiB), the limit", tooLarge.Limit)).WithInternal(err)
	}
	if errors.Is(err, echo.ErrStatusRequestEntityTooLarge) {
		return err
	}
	var timeout interface{ Timeout() bool }
	if errors.As(err, &timeout) && timeout.Timeout() {
		return echo.NewHTTPError(http.StatusRequestTimeout, "the request body did not arrive in time").WithInternal(err)
	}
	return badRequest("the request body could not be read: %v", err)
}

// formValue reads a form field, refusing a body that cannot be read
// whole, instead of taking it for an empty field.
func formValue(c echo.Context, name string) (string, error) {
	r := c.Request()
	var err error
	if strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/form-data") {
		err = r.ParseMultipartForm(MaxBody)
	} else {
		err = r.ParseForm()
	}
	if err != nil && !errors.Is(err, http.ErrNotMultipart) {
		return "", bodyError(err)
	}
	return r.FormValue(name), nil
}

// isForm says whether the body is a form rather than raw data.
func isForm(c echo.Context) bool {
	ct := c.Request().Header.Get("Content-Type")
	return strings.HasPrefix(ct, "application/x-www-form-urlencoded") || strings.HasPrefix(ct, "multipart/form-data")
}

// readBody reads the whole body.
func readBody(c echo.Context) (string, error) {
	b, err := io.ReadAll(c.Request().Body)
	if err != nil {
		return "", bodyError(err)
	}
	return string(b), nil
}
