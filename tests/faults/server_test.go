package faults

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// server is one run of `metronome serve`, its output in its own log file.
type server struct {
	t       *testing.T
	command *exec.Cmd
	addr    string
	logPath string
	exited  chan struct{}
	waitErr error
}

// Server timing.
const (
	// serverStartTimeout bounds the time from exec to a healthy /healthz
	// (it includes the journal's replay).
	serverStartTimeout = 30 * time.Second
	// serverStopTimeout bounds a graceful shutdown (SIGTERM).
	serverStopTimeout  = 30 * time.Second
	healthPollInterval = 20 * time.Millisecond
)

// startServer starts the binary on dataDirectory with a free port, its
// output appended to logPath, and waits until /healthz answers 200.
func startServer(t *testing.T, binary, dataDirectory, logPath string) *server {
	t.Helper()
	return startServerCommand(t, []string{binary}, dataDirectory, logPath)
}

// startServerCommand is startServer with the binary run by a wrapper
// (e.g. prlimit): command is the wrapper's arguments followed by the
// binary; serve and its flags are appended.
func startServerCommand(t *testing.T, command []string, dataDirectory, logPath string) *server {
	t.Helper()
	s := &server{t: t, addr: freeAddress(t), logPath: logPath, exited: make(chan struct{})}
	logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	s.command = exec.Command(command[0], append(command[1:], "serve", "--addr", s.addr, "--data-dir", dataDirectory,
		"--durable=true", "--log-level", "info", "--log-format", "text")...)
	s.command.Stdout, s.command.Stderr = logFile, logFile
	s.command.Env = environmentWithoutServerSettings()
	// The server dies with the test process, whatever ends it.
	s.command.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.command.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s.waitErr = s.command.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() { s.kill() })
	if err := s.waitHealthy(); err != nil {
		s.kill()
		t.Fatalf("the server on %s did not start: %v\n%s", dataDirectory, err, s.logTail())
	}
	return s
}

// environmentWithoutServerSettings is the test's environment without the
// METRONOME_ variables that configure the server: the flags above set
// what matters, and nothing else from the caller's shell may change it.
func environmentWithoutServerSettings() []string {
	var environment []string
	for _, variable := range os.Environ() {
		if !strings.HasPrefix(variable, "METRONOME_") {
			environment = append(environment, variable)
		}
	}
	return environment
}

// freeAddress returns a loopback address with a port that was free a
// moment ago.
func freeAddress(t *testing.T) string {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close()
	return listener.Addr().String()
}

func (s *server) waitHealthy() error {
	deadline := time.Now().Add(serverStartTimeout)
	client := http.Client{Timeout: time.Second}
	for {
		select {
		case <-s.exited:
			return fmt.Errorf("it exited: %v", s.waitErr)
		default:
		}
		status, body, err := health(&client, s.addr)
		if err == nil && status == http.StatusOK {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no healthy /healthz within %s (last: %d %q, %v)", serverStartTimeout, status, body, err)
		}
		time.Sleep(healthPollInterval)
	}
}

// health asks /healthz.
func health(client *http.Client, addr string) (int, string, error) {
	response, err := client.Get("http://" + addr + "/healthz")
	if err != nil {
		return 0, "", err
	}
	defer response.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(response.Body, 4096))
	return response.StatusCode, strings.TrimSpace(string(body)), nil
}

// url returns the WebSocket URL of a session.
func (s *server) url(session string) string { return "ws://" + s.addr + "/reflector/" + session }

// freeze stops the process (SIGSTOP) without letting it run another
// instruction: nothing more reaches the disk or the clients from it.
func (s *server) freeze() {
	s.t.Helper()
	if err := s.command.Process.Signal(syscall.SIGSTOP); err != nil {
		s.t.Fatalf("SIGSTOP: %v", err)
	}
}

// kill ends the process with SIGKILL (also a frozen one) and waits for it.
func (s *server) kill() {
	select {
	case <-s.exited:
		return
	default:
	}
	s.command.Process.Signal(syscall.SIGKILL)
	<-s.exited
}

// terminate asks for a graceful shutdown (SIGTERM) and waits for it; it
// fails the test if the server does not exit cleanly in time.
func (s *server) terminate() {
	s.t.Helper()
	s.sigterm(serverStopTimeout, "SIGTERM")
	if s.waitErr != nil {
		s.t.Errorf("SIGTERM: the server exited with %v\n%s", s.waitErr, s.logTail())
	}
}

// sigterm sends SIGTERM and waits up to timeout for the server to exit:
// if it does not, it is killed and the test fails (the message starts with
// what).
func (s *server) sigterm(timeout time.Duration, what string) {
	s.t.Helper()
	s.command.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(timeout):
		s.kill()
		s.t.Fatalf("%s: the server did not exit within %s\n%s", what, timeout, s.logTail())
	}
}

// errorLines returns the ERROR lines of the log that mention every one
// of words.
func (s *server) errorLines(words ...string) []string {
	s.t.Helper()
	return errorLines(s.readLog(), words...)
}

func (s *server) readLog() []byte {
	s.t.Helper()
	content, err := os.ReadFile(s.logPath)
	if err != nil {
		s.t.Fatal(err)
	}
	return content
}

// errorLines returns the lines of a text-format log at level ERROR that
// contain every one of words.
func errorLines(log []byte, words ...string) []string {
	return linesWith(log, append([]string{"level=ERROR"}, words...)...)
}

// linesWith returns the lines of log that contain every one of words.
func linesWith(log []byte, words ...string) []string {
	var lines []string
	scanner := bufio.NewScanner(bytes.NewReader(log))
	scanner.Buffer(nil, 1<<20)
lines:
	for scanner.Scan() {
		for _, word := range words {
			if !strings.Contains(scanner.Text(), word) {
				continue lines
			}
		}
		lines = append(lines, scanner.Text())
	}
	return lines
}

// logTail returns the end of the log, for failure messages.
func (s *server) logTail() string {
	content, err := os.ReadFile(s.logPath)
	if err != nil {
		return err.Error()
	}
	const tailBytes = 1500
	if len(content) > tailBytes {
		content = content[len(content)-tailBytes:]
	}
	return fmt.Sprintf("--- end of %s:\n%s", filepath.Base(s.logPath), content)
}
