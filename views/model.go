// Package views holds the templ components of every page. Handlers build
// the view models below; templates only display them.
package views

import "time"

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
