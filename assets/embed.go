// Package assets embeds the site's CSS and scripts, so the binary serves
// them with no files beside it. No build step: plain CSS and JavaScript.
package assets

import "embed"

// FS holds every asset, served under /assets/.
//
//go:embed *.css *.js vendor
var FS embed.FS
