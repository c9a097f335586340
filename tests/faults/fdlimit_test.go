package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestDescriptorFlood: a stranger opens far more connections than the
// server has file descriptors for (idle TCP connections that send nothing,
// and idle WebSocket upgrades), while a session is running in durable
// mode. The server runs with an open-file limit of filesLimit (prlimit),
// from which it derives how many connections it keeps open at once
// (server/listenlimit.go, cmd/metronome/serve.go). What must hold: the
// running session keeps exchanging messages during the flood, no storage
// error is logged (the journal and the session files keep their
// descriptors), the server says why new connections wait, and once the
// flood ends a new client joins as usual.
func TestDescriptorFlood(t *testing.T) {
	if raceEnabled {
		t.Skip("skipped under -race: the fault suite runs on its own, without -race (scripts/test.sh)")
	}
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Skipf("needs prlimit (util-linux) to lower the server's open-file limit: %v", err)
	}
	binary := serverBinary(t)
	const (
		filesLimit = 700
		// floodConnections is well beyond filesLimit: without the
		// listener's bound the server would run out of descriptors.
		floodConnections = 1200
		// upgradesTried is more than the WebSocket connections the limit
		// leaves (filesLimit - 512).
		upgradesTried = 220
	)
	directory := t.TempDir()
	logPath := filepath.Join(directory, "server.log")
	srv := startServerCommand(t, []string{prlimit, fmt.Sprintf("--nofile=%d:%d", filesLimit, filesLimit), binary},
		filepath.Join(directory, "data"), logPath)
	defer func() {
		if t.Failed() {
			t.Logf("server log:\n%s", srv.logTail())
		}
	}()

	session := "victim"
	members := []*client{newClient(session, "a"), newClient(session, "b")}
	for _, member := range members {
		if _, err := member.join(srv.url(session)); err != nil {
			t.Fatalf("joining before the flood: %v", err)
		}
		member.run(20 * time.Millisecond)
	}
	defer func() {
		for _, member := range members {
			member.stop()
		}
	}()
	// bulk joins now and sends during the flood (a new connection would
	// wait until the flood ends).
	bulk := newClient(session, "bulk")
	if _, err := bulk.join(srv.url(session)); err != nil {
		t.Fatalf("joining before the flood: %v", err)
	}
	bulk.run(0)
	defer bulk.stop()

	// The flood: idle WebSocket upgrades (each to its own session), then
	// idle TCP connections that never send a request.
	upgraded, refused := 0, 0
	var flood []net.Conn
	defer func() {
		for _, conn := range flood {
			conn.Close()
		}
	}()
	for i := 0; i < upgradesTried; i++ {
		conn, status, err := rawUpgrade(srv.addr, fmt.Sprintf("flood-%d", i))
		switch {
		case err != nil:
			refused++ // waits in the backlog past the dial timeout, or reset
		case status == http.StatusSwitchingProtocols:
			upgraded++
			flood = append(flood, conn)
		default:
			refused++
			conn.Close()
		}
	}
	idle := 0
	for i := 0; i < floodConnections; i++ {
		conn, err := net.DialTimeout("tcp", srv.addr, time.Second)
		if err != nil {
			break // the backlog is full: the kernel refuses more
		}
		idle++
		flood = append(flood, conn)
	}
	t.Logf("flood: %d of %d WebSocket upgrades accepted (%d refused or waiting), %d idle TCP connections opened; open-file limit %d",
		upgraded, upgradesTried, refused, idle, filesLimit)
	if upgraded >= upgradesTried {
		t.Errorf("all %d upgrades were accepted with an open-file limit of %d: the limit derived from it did not apply", upgradesTried, filesLimit)
	}

	// During the flood the session goes on, and a member sends more than
	// a journal file holds (32 MiB): the journal switches files, which
	// takes new descriptors, and so does the checkpoint that follows.
	before := members[0].ownMessages() + members[1].ownMessages()
	const bulkMessages, bulkBytes = 400, 100_000
	go func() {
		filler := strings.Repeat("z", bulkBytes)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for i := 1; i <= bulkMessages; i++ {
			frame, _ := json.Marshal(map[string]any{"id": session, "action": "SEND", "args": []any{0, 0, fmt.Sprintf("bulk#%d-%s", i, filler)}})
			if err := bulk.conn.Write(ctx, websocket.MessageText, frame); err != nil {
				return
			}
			time.Sleep(10 * time.Millisecond) // within the 200 frames/s of one connection
		}
	}()
	deadline := time.Now().Add(60 * time.Second)
	for bulk.ownMessages() < bulkMessages || members[0].ownMessages()+members[1].ownMessages() < before+100 {
		if time.Now().After(deadline) {
			t.Fatalf("during the flood the session delivered %d of %d bulk messages and %d small ones in 60 s",
				bulk.ownMessages(), bulkMessages, members[0].ownMessages()+members[1].ownMessages()-before)
		}
		if code, _ := bulk.status(); code != -1 {
			t.Fatalf("the bulk sender was closed with %d during the flood", code)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, member := range members {
		if code, _ := member.status(); code != -1 {
			t.Errorf("member %s was closed with %d during the flood", member.view, code)
		}
	}

	for _, conn := range flood {
		conn.Close()
	}
	flood = nil
	// After the flood a new client joins (the idle connections' slots are
	// free once the server sees them closed).
	late := newClient(session, "late")
	var joinErr error
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if _, joinErr = late.join(srv.url(session)); joinErr == nil {
			break
		}
	}
	if joinErr != nil {
		t.Fatalf("joining after the flood: %v", joinErr)
	}
	late.run(0)
	defer late.stop()

	log := srv.readLog()
	for _, forbidden := range []string{"too many open files", "storage failed", "level=ERROR"} {
		if lines := linesWith(log, forbidden); len(lines) > 0 {
			t.Errorf("the log says %q:\n%s", forbidden, strings.Join(lines[:min(len(lines), 5)], "\n"))
		}
	}
	if len(linesWith(log, "open connections at their limit")) == 0 {
		t.Error("the server did not warn that connections wait for the open-connection limit")
	}
	for _, member := range members {
		member.mu.Lock()
		problems := member.problems
		member.mu.Unlock()
		if len(problems) > 0 {
			t.Errorf("member %s: %s", member.view, strings.Join(problems, "; "))
		}
	}
}

// rawUpgrade opens a WebSocket connection to a session and leaves it idle
// (no JOIN); it returns the connection and the HTTP status of the upgrade.
func rawUpgrade(addr, session string) (net.Conn, int, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return nil, 0, err
	}
	_ = conn.SetDeadline(time.Now().Add(200 * time.Millisecond))
	request := "GET /reflector/" + session + " HTTP/1.1\r\nHost: " + addr +
		"\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
	if _, err := conn.Write([]byte(request)); err != nil {
		conn.Close()
		return nil, 0, err
	}
	buffer := make([]byte, 512)
	n, err := conn.Read(buffer)
	if err != nil {
		conn.Close()
		return nil, 0, err
	}
	_ = conn.SetDeadline(time.Time{})
	var status int
	if _, err := fmt.Sscanf(string(buffer[:n]), "HTTP/1.1 %d", &status); err != nil {
		conn.Close()
		return nil, 0, fmt.Errorf("upgrade answer %q: %w", buffer[:n], err)
	}
	return conn, status, nil
}
