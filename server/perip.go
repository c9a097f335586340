package server

import (
	"net/netip"
	"sync"
)

// # Connections per client address
//
// One client address may hold at most ConnectionsPerIPMax WebSocket
// connections (default DefaultConnectionsPerIPMax); the upgrade of one
// more is refused with 429, so that one machine cannot take the server's
// ConnectionsMax (or its file descriptors) from everyone else. The
// address is the peer's, or the client's as --trusted-proxies reveal it
// (remote.go). Loopback addresses are not limited: they are this
// machine's own tools (a benchmark opens 1,000 connections), and behind a
// proxy on the same host the trusted-proxy rule names the real client.

// ipConnections counts the open connections of each client address.
type ipConnections struct {
	mu     sync.Mutex
	counts map[netip.Addr]int
}

// acquire counts one more connection of address unless it already has
// limit; it reports whether it did.
func (c *ipConnections) acquire(address netip.Addr, limit int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.counts[address] >= limit {
		return false
	}
	if c.counts == nil {
		c.counts = make(map[netip.Addr]int)
	}
	c.counts[address]++
	return true
}

// release ends one connection of address.
func (c *ipConnections) release(address netip.Addr) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.counts[address] <= 1 {
		delete(c.counts, address)
		return
	}
	c.counts[address]--
}

// limitedAddress returns the client address whose connections are limited
// for this remote address (as remoteAddr returns it), or ok false when
// none is: loopback, unparsable, or the limit is off.
func (s *Server) limitedAddress(remote string) (netip.Addr, bool) {
	if s.config.ConnectionsPerIPMax < 0 {
		return netip.Addr{}, false
	}
	address := addrOf(remote)
	if parsed, err := netip.ParseAddr(remote); !address.IsValid() && err == nil {
		address = parsed.Unmap() // a bare address from X-Forwarded-For
	}
	if !address.IsValid() || address.IsLoopback() {
		return netip.Addr{}, false
	}
	return address, true
}
