package handlers_test

import (
	"net/http"
	"regexp"
	"testing"
	"testing/synctest"
	"time"

	"sselab/handlers"
)

var visitLine = regexp.MustCompile(`^New visit from 192\.0\.2\.1 at \d\d:\d\d:\d\d!( \(you\))?$`)

func TestVisits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ts := newServer(t)
		// A viewer who is already watching.
		other, leaveOther, waitOther := ts.open(t.Context(), "/visits/subscribe", "Cookie", "sselab_viewer=00000000000000aa")
		synctest.Wait()

		// A new visitor loads the page, then its page subscribes.
		page := ts.do(http.MethodGet, "/visits/", "")
		wantStatus(t, page.Code, http.StatusOK, "")
		cookies := page.Result().Cookies()
		if len(cookies) != 1 || cookies[0].Name != "sselab_viewer" {
			t.Fatalf("got cookies %v, want a viewer cookie", cookies)
		}
		mine, leaveMine, waitMine := ts.open(t.Context(), "/visits/subscribe", "Cookie", "sselab_viewer="+cookies[0].Value)
		time.Sleep(handlers.CountEvery) // the count is announced once per CountEvery
		synctest.Wait()

		visits := func(raw string) (own, others int, viewers string) {
			for _, ev := range parse(t, raw) {
				switch ev.Type {
				case "":
					m := visitLine.FindStringSubmatch(ev.Data)
					if m == nil {
						t.Errorf("visit data %q", ev.Data)
					} else if m[1] != "" {
						own++
					} else {
						others++
					}
				case "viewers":
					viewers = ev.Data
				}
			}
			return
		}
		if own, others, viewers := visits(other.Flushed()); own != 0 || others != 1 || viewers != "2" {
			t.Errorf("the other viewer: own %d others %d viewers %q, want 0, 1, 2", own, others, viewers)
		}
		if own, others, viewers := visits(mine.Flushed()); own != 1 || others != 0 || viewers != "2" {
			t.Errorf("the visitor: own %d others %d viewers %q, want its own visit marked (you) and 2 viewers", own, others, viewers)
		}
		if evs := parse(t, mine.Flushed()); len(evs) == 0 || evs[0].Type != "welcome" {
			t.Errorf("first event: got %+v, want the welcome", evs)
		}

		leaveMine()
		waitMine()
		time.Sleep(handlers.CountEvery)
		synctest.Wait()
		if _, _, viewers := visits(other.Flushed()); viewers != "1" {
			t.Errorf("after the visitor left: viewers %q, want 1", viewers)
		}
		leaveOther()
		waitOther()
		time.Sleep(handlers.CountEvery) // the last announcement, before the bubble ends
		synctest.Wait()
	})
}

// Over TLS the viewer cookie is __Secure-sselab_viewer, Secure, and it is
// the one read back: the visit and the stream agree on the viewer.
func TestVisitsCookieOverTLS(t *testing.T) {
	ts := newServer(t)
	page := ts.do(http.MethodGet, "https://example.com/visits/", "")
	wantStatus(t, page.Code, http.StatusOK, "")
	ck := page.Result().Cookies()
	if len(ck) != 1 || ck[0].Name != "__Secure-sselab_viewer" || !ck[0].Secure {
		t.Fatalf("got cookies %v, want one __Secure-sselab_viewer, Secure", ck)
	}
	again := ts.do(http.MethodGet, "https://example.com/visits/", "", "Cookie", ck[0].Name+"="+ck[0].Value)
	if got := again.Result().Cookies(); len(got) != 0 {
		t.Errorf("a second visit with the cookie: got cookies %v, want it kept (no new viewer)", got)
	}
}
