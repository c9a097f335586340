package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/metronome-sync/metronome/reflector"
	"github.com/metronome-sync/metronome/store"
	"github.com/metronome-sync/metronome/store/diskstore"
)

func TestCheckHelpTeaches(t *testing.T) {
	for _, args := range [][]string{{"check", "--help"}, {"help", "check"}} {
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != 0 {
			t.Fatalf("%q exited %d", args, code)
		}
		help := stderr.String()
		for _, want := range []string{
			"metronome check", "--data-dir", "-durable", "-repair", "-json", "stopped", "lock",
			"CRC-32C", "record.json", "journal", "quarantine/", "tmp/",
			"intact", "torn", "recoverable", "damaged", "new timeline",
			"Exit status: 0", "1 something is damaged", "2 usage error", "Examples:",
		} {
			if !strings.Contains(help, want) {
				t.Errorf("%q does not mention %q:\n%s", args, want, help)
			}
		}
	}
	var stdout, stderr bytes.Buffer
	run([]string{"help"}, &stdout, &stderr)
	if !strings.Contains(stdout.String(), "metronome check") {
		t.Errorf("metronome help does not list check:\n%s", stdout.String())
	}
}

// checkMessages returns messages the reflector can restore: [time, seq, ...].
func checkMessages(seqs ...uint32) []store.Message {
	messages := make([]store.Message, len(seqs))
	for i, seq := range seqs {
		messages[i] = store.Message{Seq: seq, Data: fmt.Appendf(nil, `[%d,%d,"message %d"]`, 100*seq, seq, seq)}
	}
	return messages
}

// checkDataDir returns a data directory, closed cleanly, holding sessions
// a and b with a record and messages 1-3 each.
func checkDataDir(t *testing.T, durable bool) string {
	t.Helper()
	directory := t.TempDir()
	s, err := diskstore.Open(directory, diskstore.Options{Durable: durable})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b"} {
		// A snapshot at seq 0 and the messages after it: a record the
		// reflector restores.
		record, err := json.Marshal(reflector.Record{ID: id, Timeline: "timeline-" + id, Scale: 1, SnapshotTime: 0, SnapshotSeq: 0, SnapshotURL: "snapshots/" + id, Seq: 3})
		if err != nil {
			t.Fatal(err)
		}
		batch := store.Batch{Append: checkMessages(1, 2, 3), Record: record}
		if err := s.Commit(context.Background(), id, batch); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return directory
}

func checkLogPath(directory, id string) string {
	return filepath.Join(directory, "sessions", id, "messages.log")
}

// sessionColumns returns the session, verdict, messages and seqs columns
// of the session's line in check's output, or nil.
func sessionColumns(output, id string) []string {
	for line := range strings.Lines(output) {
		if fields := strings.Fields(line); len(fields) >= 4 && fields[0] == id {
			return fields[:4]
		}
	}
	return nil
}

// sessionLine is "id verdict messages seqs", as sessionColumns reads them.
func sessionLine(output, id string) string {
	return strings.Join(sessionColumns(output, id), " ")
}

// damageFile applies change to the file's content.
func damageFile(t *testing.T, path string, change func([]byte) []byte) {
	t.Helper()
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, change(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// flipFirstMessage damages the first message's data: valid frames follow.
func flipFirstMessage(content []byte) []byte {
	content[16+9] ^= 0x20
	return content
}

func TestCheckVerdictsAndExitStatus(t *testing.T) {
	journal := runtime.GOOS == "linux"
	for _, test := range []struct {
		name    string
		durable bool
		damage  func(t *testing.T, directory string)
		args    []string
		code    int
		// lines are sessions' columns, want other text of the output.
		lines []string
		want  []string
	}{
		{name: "intact", durable: true, code: 0,
			lines: []string{"a intact 3 1-3", "b intact 3 1-3"},
			want:  []string{"OK: 2 sessions: 2 intact, 0 torn, 0 recoverable, 0 damaged"}},
		{name: "byte flipped mid-log", durable: false, code: 1,
			damage: func(t *testing.T, directory string) { damageFile(t, checkLogPath(directory, "a"), flipFirstMessage) },
			lines:  []string{"a damaged (0) (-)", "b intact 3 1-3"},
			want:   []string{"valid frames after it", "new timeline", "DAMAGED: 2 sessions: 1 intact, 0 torn, 0 recoverable, 1 damaged"}},
		{name: "torn tail, not durable", durable: false, args: []string{"--durable=false"}, code: 0,
			damage: func(t *testing.T, directory string) {
				damageFile(t, checkLogPath(directory, "b"), func(content []byte) []byte { return append(content, 7, 0, 0) })
			},
			lines: []string{"a intact 3 1-3", "b torn 3 1-3"},
			want:  []string{"3 bytes of a torn write", "OK: 2 sessions: 1 intact, 1 torn"}},
		{name: "record missing", durable: false, args: []string{"--durable=false"}, code: 1,
			damage: func(t *testing.T, directory string) {
				if err := os.Remove(filepath.Join(directory, "sessions", "b", "record.json")); err != nil {
					t.Fatal(err)
				}
			},
			lines: []string{"a intact 3 1-3", "b damaged 3 1-3"},
			want:  []string{"no record.json", "reflector cannot restore"}},
		{name: "record not a record", durable: false, args: []string{"--durable=false"}, code: 1,
			damage: func(t *testing.T, directory string) {
				damageFile(t, filepath.Join(directory, "sessions", "a", "record.json"), func([]byte) []byte { return []byte(`{"timeline":""}`) })
			},
			lines: []string{"a damaged 3 1-3", "b intact 3 1-3"},
			want:  []string{"stored record has no timeline"}},
	} {
		t.Run(test.name, func(t *testing.T) {
			directory := checkDataDir(t, test.durable)
			if test.damage != nil {
				test.damage(t, directory)
			}
			before, _ := os.ReadFile(checkLogPath(directory, "a"))
			var stdout, stderr bytes.Buffer
			code := run(append([]string{"check", "--data-dir", directory}, test.args...), &stdout, &stderr)
			if code != test.code {
				t.Errorf("exit %d, want %d; stdout:\n%s\nstderr:\n%s", code, test.code, stdout.String(), stderr.String())
			}
			for _, want := range test.lines {
				id, _, _ := strings.Cut(want, " ")
				if got := sessionLine(stdout.String(), id); got != want {
					t.Errorf("session line %q, want %q:\n%s", got, want, stdout.String())
				}
			}
			for _, want := range test.want {
				if !strings.Contains(stdout.String(), want) {
					t.Errorf("stdout does not contain %q:\n%s", want, stdout.String())
				}
			}
			if after, _ := os.ReadFile(checkLogPath(directory, "a")); !bytes.Equal(before, after) {
				t.Errorf("check changed a's log")
			}
		})
	}
	if journal {
		// With the journal, a clean log was synced: a torn-looking tail is
		// damage, under the default --durable.
		directory := checkDataDir(t, true)
		damageFile(t, checkLogPath(directory, "b"), func(content []byte) []byte { return append(content, 7, 0, 0) })
		var stdout, stderr bytes.Buffer
		if code := run([]string{"check", "--data-dir", directory}, &stdout, &stderr); code != 1 || sessionLine(stdout.String(), "b") != "b damaged (3) (1-3)" {
			t.Errorf("garbage after a synced log: exit %d, want 1 and b damaged:\n%s", code, stdout.String())
		}
	}
}

func TestCheckRepair(t *testing.T) {
	directory := checkDataDir(t, false)
	damageFile(t, checkLogPath(directory, "a"), flipFirstMessage)
	damageFile(t, checkLogPath(directory, "b"), func(content []byte) []byte { return append(content, 7, 0, 0) })
	if err := os.WriteFile(filepath.Join(directory, "tmp", "new-1"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := run([]string{"check", "--data-dir", directory, "--durable=false", "--repair"}, &stdout, &stderr)
	output := stdout.String()
	if code != 1 {
		t.Errorf("check --repair of a damaged directory: exit %d, want 1 (something was damaged)\n%s%s", code, output, stderr.String())
	}
	if a, b := sessionLine(output, "a"), sessionLine(output, "b"); a != "a damaged (0) (-)" || b != "b torn 3 1-3" {
		t.Errorf("sessions %q and %q, want a damaged and b torn", a, b)
	}
	for _, want := range []string{
		"left by interrupted writes, removed at start: tmp/new-1",
		"repair: session a quarantined to " + filepath.Join(directory, "quarantine", "a-"),
		"after the repair: OK: 1 sessions: 1 intact",
	} {
		if !strings.Contains(output, want) {
			t.Errorf("output does not contain %q:\n%s", want, output)
		}
	}
	stdout.Reset()
	if code := run([]string{"check", "--data-dir", directory, "--durable=false"}, &stdout, &stderr); code != 0 ||
		sessionLine(stdout.String(), "b") != "b intact 3 1-3" || sessionColumns(stdout.String(), "a") != nil || !strings.Contains(stdout.String(), "quarantine/ holds 1 entries") {
		t.Errorf("check after the repair: exit %d, want 0, b intact, a in quarantine:\n%s", code, stdout.String())
	}
}

func TestCheckJSON(t *testing.T) {
	directory := checkDataDir(t, false)
	damageFile(t, checkLogPath(directory, "a"), flipFirstMessage)
	var stdout, stderr bytes.Buffer
	if code := run([]string{"check", "--data-dir", directory, "--durable=false", "--json"}, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1; stderr %s", code, stderr.String())
	}
	var output checkOutput
	if err := json.Unmarshal(stdout.Bytes(), &output); err != nil {
		t.Fatalf("--json output is not JSON: %v\n%s", err, stdout.String())
	}
	sessions := output.Check.Sessions
	if len(sessions) != 2 || sessions[0].ID != "a" || sessions[0].Verdict != diskstore.VerdictDamaged ||
		sessions[1].Verdict != diskstore.VerdictIntact || sessions[1].Messages != 3 || output.Repair != nil {
		t.Errorf("--json report %+v, want a damaged, b intact with 3 messages, no repair", output)
	}
	if !strings.Contains(stdout.String(), `"verdict": "damaged"`) {
		t.Errorf("verdicts are not named in the JSON:\n%s", stdout.String())
	}
}

func TestCheckCannotRead(t *testing.T) {
	directory := checkDataDir(t, false)
	s, err := diskstore.Open(directory, diskstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := run([]string{"check", "--data-dir", directory}, &stdout, &stderr)
	s.Close()
	if runtime.GOOS == "linux" && (code != 2 || !strings.Contains(stderr.String(), "is in use by pid") || !strings.Contains(stderr.String(), "stop the server first")) {
		t.Errorf("check of a directory in use: exit %d, want 2; stderr %q", code, stderr.String())
	}
	for _, test := range []struct {
		args   []string
		stderr string
	}{
		{[]string{"check", "--data-dir", filepath.Join(directory, "missing")}, "no such file or directory"},
		{[]string{"check", "--data-dir", ""}, "--data-dir is empty"},
		{[]string{"check", "--data-dir", directory, "extra"}, `unexpected argument "extra"`},
		{[]string{"check", "--no-such-flag"}, "no-such-flag"},
	} {
		stderr.Reset()
		if code := run(test.args, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), test.stderr) {
			t.Errorf("%q: exit %d, want 2; stderr %q does not contain %q", test.args, code, stderr.String(), test.stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(directory, "missing")); err == nil {
		t.Errorf("check created the missing directory")
	}
}
