// Package views holds the templ components of every page. Handlers build
// the view models below; templates only display them.
package views

import (
	"context"
	"time"
)

// NavItem is one link of the nav every page carries; Current marks the
// page being shown.
type NavItem struct {
	Label, Href string
	Current     bool
}

type navKey struct{}

type navState struct {
	items []NavItem
	path  string
}

// WithNav gives the layout its nav, and the path of the page being shown,
// through the request's context, so that no page's view model has to
// carry them.
func WithNav(ctx context.Context, nav []NavItem, path string) context.Context {
	return context.WithValue(ctx, navKey{}, navState{nav, path})
}

func navOf(ctx context.Context) []NavItem {
	st, _ := ctx.Value(navKey{}).(navState)
	items := make([]NavItem, len(st.items))
	for i, n := range st.items {
		n.Current = n.Href == st.path
		items[i] = n
	}
	return items
}

// Demo is one entry of the home page.
type Demo struct {
	Title, Href, Seed, Lesson string
}

// RouteRow is one row of the route table.
type RouteRow struct {
	Method, Path, Doc, Curl string
}

// HomeVM is the home page.
type HomeVM struct {
	Demos  []Demo
	Routes []RouteRow
}

// TimeFeedVM is the time feed page.
type TimeFeedVM struct {
	FeedOn, TypeSwitchOn bool
	Retry                time.Duration
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// VisitsVM is the visits page.
type VisitsVM struct {
	Viewers int
}

// ChatVM is the chat page. An empty User shows the name form.
type ChatVM struct {
	User       string
	MaxMessage int
}

// TokensVM is the token streams page.
type TokensVM struct {
	Actions []string
	JSON    bool // data must be JSON (serve -j)
	IDs     bool // events carry ids (serve -i)
}

// ConnectionsVM is the connections page.
type ConnectionsVM struct {
	Streams int    // how many streams the page opens
	Proto   string // the protocol the page came over
}

// ChatMessage is one chat message, for its server-rendered fragment.
type ChatMessage struct {
	Time, User, Text string
}

// DoctorTarget is one route the doctor page can check, and what the
// learner should expect to see.
type DoctorTarget struct {
	Name, Label   string
	Route         string // the route (Echo's pattern) it needs served
	Path, Publish string // {token} becomes a token of the run's own
	Expect        string
}

// DoctorVM is the doctor page.
type DoctorVM struct {
	Targets []DoctorTarget
	Timeout time.Duration // one run's bound
	Runs    int           // runs under way at once, across all visitors
}
