package server

import (
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/metronome-sync/metronome/protocol"
)

// # JOINs per client address
//
// Every JOIN costs the server a SYNC: the session's snapshot pointer and
// every message since, often far more bytes than the JOIN itself. One
// connection may JOIN at most JoinsPerConnectionMax times (the reflector
// closes it after that), and one address may hold ConnectionsPerIPMax
// connections (perip.go); this rate bounds the rest: the JOINs of one
// client address per second, a token bucket of JoinsPerIPBurst tokens
// refilled at JoinsPerIPPerSecond.
//
// Each WebSocket upgrade takes a token before the upgrade (every connection
// is opened to JOIN); without one the upgrade is refused with 429, which
// costs the server no SYNC, and the client tries again later. A second or
// third JOIN on one connection takes another token; without one the
// connection is closed with 4003 (reconnect). Loopback addresses are not
// limited, as in perip.go.

// joinBucketsPruneSize is the number of buckets above which full ones
// (addresses that have not joined for burst/rate seconds) are dropped, at
// most once per second: memory follows the addresses seen in the last
// few seconds.
const joinBucketsPruneSize = 1024

type joinLimiter struct {
	mu        sync.Mutex
	buckets   map[netip.Addr]*joinBucket
	lastPrune time.Time
}

type joinBucket struct {
	tokens float64
	at     time.Time // when tokens was last brought up to date
}

// take takes one token of address at time now, from a bucket of burst
// tokens refilled at rate per second; it reports whether there was one.
func (l *joinLimiter) take(address netip.Addr, now time.Time, rate float64, burst int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buckets == nil {
		l.buckets = make(map[netip.Addr]*joinBucket)
	}
	if len(l.buckets) > joinBucketsPruneSize && now.Sub(l.lastPrune) >= time.Second {
		l.lastPrune = now
		for key, bucket := range l.buckets {
			if bucket.refilled(now, rate, burst) >= float64(burst) {
				delete(l.buckets, key)
			}
		}
	}
	bucket := l.buckets[address]
	if bucket == nil {
		bucket = &joinBucket{tokens: float64(burst), at: now}
		l.buckets[address] = bucket
	}
	bucket.tokens, bucket.at = bucket.refilled(now, rate, burst), now
	if bucket.tokens < 1 {
		return false
	}
	bucket.tokens--
	return true
}

// refilled returns the bucket's tokens at time now.
func (b *joinBucket) refilled(now time.Time, rate float64, burst int) float64 {
	tokens := b.tokens
	if elapsed := now.Sub(b.at); elapsed > 0 {
		tokens += elapsed.Seconds() * rate
	}
	return min(tokens, float64(burst))
}

// joinRateLimited reports whether the JOINs of address are limited.
func (s *Server) joinRateLimited() bool { return s.config.JoinsPerIPPerSecond > 0 }

// takeJoin takes a JOIN token of a limited client address (limitedAddress).
func (s *Server) takeJoin(address netip.Addr) bool {
	if !s.joinRateLimited() {
		return true
	}
	if s.joins.take(address, time.Now(), s.config.JoinsPerIPPerSecond, s.config.JoinsPerIPBurst) {
		return true
	}
	s.metrics.joinsRateLimited.Add(1)
	return false
}

// joinRateRefusal is the reason given when an address has no JOIN token.
func (s *Server) joinRateRefusal(address netip.Addr) string {
	return fmt.Sprintf("too many JOINs from %s (JoinsPerIPPerSecond=%g, JoinsPerIPBurst=%d): try again in a second",
		address, s.config.JoinsPerIPPerSecond, s.config.JoinsPerIPBurst)
}

// refuseRejoin is called by the reader for every JOIN frame on a
// connection. The first JOIN was paid for at the upgrade; a later one takes
// another token, or the connection is closed with 4003. It reports
// whether the connection was closed.
func (c *conn) refuseRejoin() bool {
	c.joinsRead++
	if c.joinsRead == 1 || !c.joinLimited {
		return false
	}
	s := c.server
	if s.takeJoin(c.joinAddress) {
		return false
	}
	reason := s.joinRateRefusal(c.joinAddress)
	s.logger.Info("join refused: rate per address", "conn", c.id, "remote", c.remote, "why", reason)
	s.metrics.countClose(protocol.CloseReconnect)
	c.close(protocol.CloseReconnect, "please reconnect: "+reason)
	return true
}
