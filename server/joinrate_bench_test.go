package server

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/metronome-sync/metronome/auth"
)

// BenchmarkJoin measures what access control costs a JOIN: each iteration
// dials a new WebSocket connection (over loopback), JOINs a new session,
// reads the SYNC and closes, one after another, without auth, with a
// static token and with a signed (Ed25519) token. With a token the server
// checks it at the upgrade and again at the JOIN (auth.go). Reported:
// joins/s of this one joiner (docs/benchmarks.md, "Access control").
//
//	go test -run '^$' -bench Join -benchtime 3000x ./server/
func BenchmarkJoin(b *testing.B) {
	keys := newTokenKeys(b, 1)
	signed := keys.mint(b, []string{testAppID}, auth.AllRights, time.Hour)
	for _, mode := range []struct {
		name  string
		auth  AuthMode
		token string
	}{
		{"auth=none", AuthNone, ""},
		{"auth=token/static", AuthToken, testStaticToken},
		{"auth=token/signed", AuthToken, signed},
	} {
		b.Run(mode.name, func(b *testing.B) {
			config := Config{Auth: mode.auth, Logger: slog.New(slog.DiscardHandler), SessionsMax: -1}
			if mode.auth == AuthToken {
				config.AuthVerifier = keys.verifier
			}
			server := startServer(b, config)
			prefix := fmt.Sprintf("bench-join-%d", time.Now().UnixNano())
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				sessionID := fmt.Sprintf("%s-%d", prefix, i)
				var c *client
				if mode.token == "" {
					c = dialSession(b, server.Addr(), sessionID, "joiner")
				} else {
					c = dialWithToken(b, server.Addr(), mode.token, sessionID, "joiner")
				}
				c.join()
				c.conn.Close()
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "joins/s")
		})
	}
}
