//go:build !linux

package server

import (
	"errors"
	"syscall"
)

// readPoller is only implemented on Linux (epoll); elsewhere every
// connection keeps its reader goroutine.
type readPoller struct{}

func sharedReadPoller() *readPoller { return nil }

func (p *readPoller) register(c *conn) uint64 { return 0 }

func (p *readPoller) arm(c *conn) error { return errReadPollUnsupported }

func (p *readPoller) unregister(c *conn) {}

func (p *readPoller) hasInput(c *conn) bool { return true }

var errReadPollUnsupported = errors.New("read poller not supported on this platform")

// readableWaiter is only used with the read poller (Linux).
type readableWaiter struct{}

func (w *readableWaiter) wait(rawConn syscall.RawConn) error { return errReadPollUnsupported }
