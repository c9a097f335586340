// Package web holds the assets embedded in the metronome binary: the demo
// app served at "/" when no --web-root is given.
package web

import (
	"embed"
	"io/fs"
)

//go:embed demo
var demo embed.FS

// Demo returns the demo app's files (index.html at the root).
func Demo() fs.FS {
	sub, err := fs.Sub(demo, "demo")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return sub
}
