module github.com/metronome-sync/metronome

go 1.26.8

require (
	github.com/gobwas/httphead v0.1.0 // indirect
	github.com/gobwas/ws v1.5.0
	golang.org/x/sys v0.49.0
)

require (
	github.com/coder/websocket v1.8.14
	github.com/fxamacker/cbor/v2 v2.9.0
	golang.org/x/tools v0.52.0
)

require (
	github.com/x448/float16 v0.8.4 // indirect
	golang.org/x/mod v0.42.0 // indirect
	golang.org/x/sync v0.24.0 // indirect
)
