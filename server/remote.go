package server

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// ParseTrustedProxies parses a comma-separated list of addresses and
// prefixes ("10.0.0.0/8, 127.0.0.1") for Config.TrustedProxies. A bare
// address is a prefix of one address.
func ParseTrustedProxies(list string) ([]netip.Prefix, error) {
	var prefixes []netip.Prefix
	for _, item := range strings.Split(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if prefix, err := netip.ParsePrefix(item); err == nil {
			prefixes = append(prefixes, prefix.Masked())
			continue
		}
		address, err := netip.ParseAddr(item)
		if err != nil {
			return nil, fmt.Errorf("trusted proxies: %q is neither an address nor a prefix (e.g. 10.0.0.0/8)", item)
		}
		prefixes = append(prefixes, netip.PrefixFrom(address.Unmap(), address.Unmap().BitLen()))
	}
	return prefixes, nil
}

// remoteAddr is the client's address for logs: the peer's address, unless
// the peer is a trusted proxy (Config.TrustedProxies); then the nearest
// address in X-Forwarded-For that is not itself a trusted proxy (the
// header is read right to left: every proxy appends the address it saw).
// A stranger cannot choose what is logged for it by sending the header.
func (s *Server) remoteAddr(r *http.Request) string {
	peer := addrOf(r.RemoteAddr)
	if !s.trusted(peer) {
		return r.RemoteAddr
	}
	forwarded := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(forwarded) - 1; i >= 0; i-- {
		hop := strings.TrimSpace(forwarded[i])
		address, err := netip.ParseAddr(hop)
		if err != nil {
			return r.RemoteAddr // a malformed header: trust none of it
		}
		if !s.trusted(address.Unmap()) {
			return hop
		}
	}
	return r.RemoteAddr
}

func (s *Server) trusted(address netip.Addr) bool {
	if !address.IsValid() {
		return false
	}
	for _, prefix := range s.config.TrustedProxies {
		if prefix.Contains(address) {
			return true
		}
	}
	return false
}

// addrOf parses the address of "host:port" (invalid if it is not one).
func addrOf(hostPort string) netip.Addr {
	host, _, err := net.SplitHostPort(hostPort)
	if err != nil {
		return netip.Addr{}
	}
	address, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return address.Unmap()
}
