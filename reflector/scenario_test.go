package reflector_test

import (
	"flag"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/metronome-sync/metronome/protocol"
	"github.com/metronome-sync/metronome/reflector"
)

// Scenario tests: text files in testdata/*.txt, run by a small interpreter
// in the style of etcd-raft's data-driven tests. A file is a sequence of
// blocks separated by blank lines; lines starting with '#' are comments.
// A block is one command line, a "----" line and the expected output (no
// blank lines). Regenerate expected output with
//
//	go test ./reflector -run TestScenarios -rewrite
//
// and review the diff.
//
// Commands (ms are monotonic milliseconds, the clock never goes backwards):
//
//	config Key=value ...         override DefaultConfig fields (before new)
//	new [id=S] [timeline=T]      reflector.New at the current clock
//	restore                      reflector.Restore from the model store
//	crash [torn]                 forget the session and its connections; the store
//	                             stays (torn: the last commit's record was written
//	                             but not its DropFront)
//	at <ms>                      set the clock (timers due before it run late,
//	                             at the next step; the output says so)
//	run-until <ms>               step Wake at every NextWake() <= ms, then set the clock
//	connect c1                   step Connect (connection names are never reused)
//	recv c1 <frame>              decode the rest of the line with DecodeClientFrame, step Receive;
//	                             $repeat(N,c) in the frame stands for N times the character c
//	disconnect c1                step Disconnect
//	wake                         step Wake
//	pointer [url=U]              step PointerLoaded; without url=, answer the last
//	                             lookup from the model store's pointers
//	shutdown                     step Shutdown
//	state                        print the session's counters and record
//	show-store                   print the model store
//	hide <prefix>                from now on, leave out output lines starting
//	                             with prefix (e.g. "hide store record" where a
//	                             fix may add record fields); checks still run
//
// Output: the step's effects one per line (see renderEffects), then
// next-wake. Every effect is also checked against the protocol invariants
// (harness_test.go); a broken invariant is printed as a VIOLATION line and
// fails the test.

var rewriteFlag = flag.Bool("rewrite", false, "rewrite the expected output of scenario files in testdata/")

func TestScenarios(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no scenario files in testdata/")
	}
	for _, path := range files {
		base := filepath.Base(path)
		t.Run(strings.TrimSuffix(base, ".txt"), func(t *testing.T) {
			runScenarioFile(t, path)
		})
	}
}

// scenarioItem is a run of comment/blank lines, or a command block.
type scenarioItem struct {
	text     []string // comment and blank lines, kept verbatim
	line     int      // line number of the command
	command  string
	expected []string
	isBlock  bool
}

func parseScenario(t *testing.T, path string) []scenarioItem {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	var items []scenarioItem
	var text []string
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			text = append(text, line)
			continue
		}
		if text != nil {
			items = append(items, scenarioItem{text: text})
			text = nil
		}
		block := scenarioItem{isBlock: true, line: i + 1, command: line}
		if i+1 >= len(lines) || lines[i+1] != "----" {
			t.Fatalf("%s:%d: command %q is not followed by a ---- line", path, i+1, line)
		}
		i += 2
		for ; i < len(lines) && strings.TrimSpace(lines[i]) != ""; i++ {
			block.expected = append(block.expected, lines[i])
		}
		i-- // the blank line (or EOF) is text
		items = append(items, block)
	}
	if text != nil {
		items = append(items, scenarioItem{text: text})
	}
	return items
}

func runScenarioFile(t *testing.T, path string) {
	items := parseScenario(t, path)
	runner := &scenarioRunner{t: t, path: path, config: reflector.DefaultConfig()}
	var rewritten []string
	failed := false
	for i := range items {
		item := &items[i]
		if !item.isBlock {
			rewritten = append(rewritten, item.text...)
			continue
		}
		runner.line = item.line
		actual := runner.filter(runner.execute(item.command))
		for _, line := range actual {
			if strings.HasPrefix(line, "VIOLATION") {
				t.Errorf("%s:%d: %s: %s", path, item.line, item.command, line)
			}
		}
		rewritten = append(rewritten, item.command, "----")
		rewritten = append(rewritten, actual...)
		if !*rewriteFlag && strings.Join(actual, "\n") != strings.Join(item.expected, "\n") {
			failed = true
			t.Errorf("%s:%d: %s\n--- expected\n%s\n--- actual\n%s", path, item.line, item.command,
				strings.Join(item.expected, "\n"), strings.Join(actual, "\n"))
		}
	}
	if *rewriteFlag {
		if err := os.WriteFile(path, []byte(strings.Join(rewritten, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	} else if failed {
		t.Logf("%s: to accept the actual output run: go test ./reflector -run TestScenarios -rewrite", path)
	}
}

type scenarioRunner struct {
	t      *testing.T
	path   string
	line   int
	config reflector.Config

	now     int64
	session *reflector.Session
	store   modelStore
	driver  hostDriver
	check   *checker

	conns       map[string]reflector.ConnID
	names       map[reflector.ConnID]string
	nextConn    reflector.ConnID
	lookupKey   string
	sessionID   string
	haveSession bool
	hidden      []string // output line prefixes to leave out
}

func (r *scenarioRunner) fatalf(format string, args ...any) {
	r.t.Helper()
	r.t.Fatalf("%s:%d: %s", r.path, r.line, fmt.Sprintf(format, args...))
}

func (r *scenarioRunner) name(id reflector.ConnID) string {
	if name, ok := r.names[id]; ok {
		return name
	}
	return "conn" + strconv.FormatUint(uint64(id), 10)
}

// keyValues parses key=value arguments.
func (r *scenarioRunner) keyValues(fields []string) map[string]string {
	values := make(map[string]string, len(fields))
	for _, field := range fields {
		key, value, ok := strings.Cut(field, "=")
		if !ok {
			r.fatalf("argument %q is not key=value", field)
		}
		values[key] = value
	}
	return values
}

func (r *scenarioRunner) needSession() {
	if r.session == nil {
		r.fatalf("no session: use new or restore first")
	}
}

func (r *scenarioRunner) conn(name string) reflector.ConnID {
	id, ok := r.conns[name]
	if !ok {
		r.fatalf("unknown connection %q", name)
	}
	return id
}

func (r *scenarioRunner) execute(command string) []string {
	verb, rest, _ := strings.Cut(command, " ")
	fields := strings.Fields(rest)
	switch verb {
	case "config":
		if r.haveSession {
			r.fatalf("config must come before new")
		}
		r.setConfig(r.keyValues(fields))
		return nil
	case "new":
		args := r.keyValues(fields)
		id, timeline := "S", "T1"
		if v, ok := args["id"]; ok {
			id = v
		}
		if v, ok := args["timeline"]; ok {
			timeline = v
		}
		if err := r.config.Validate(); err != nil {
			return []string{"error: " + err.Error()}
		}
		r.startSession(id)
		// A new session of its own: only the persisted pointers, which are
		// per application, carry over from an earlier session in the file.
		r.store.record, r.store.log = nil, nil
		r.check = newChecker(id)
		if err := r.driver.open(r.config, id, timeline, &r.store, r.now); err != nil {
			r.fatalf("new: %v", err)
		}
		r.session = r.driver.host.Core()
		return []string{renderWake(r.session.NextWake())}
	case "restore":
		if r.sessionID == "" {
			r.fatalf("restore needs an earlier new (for the session id)")
		}
		if r.store.record == nil {
			return []string{"error: nothing stored"}
		}
		if err := r.driver.open(r.config, r.sessionID, "", &r.store, r.now); err != nil {
			return []string{"error: " + err.Error()}
		}
		session := r.driver.host.Core()
		r.startSession(r.sessionID)
		r.check.dropAll()
		r.session = session
		record := session.Record()
		return []string{
			fmt.Sprintf("restored timeline=%s time=%d seq=%d buffered=%d snapshotSeq=%d snapshotUrl=%q",
				record.Timeline, record.Time, record.Seq, session.BufferedMessages(), record.SnapshotSeq, record.SnapshotURL),
			renderWake(session.NextWake()),
		}
	case "crash":
		r.needSession()
		torn := ""
		switch {
		case len(fields) == 1 && fields[0] == "torn":
			if !r.store.tear() {
				r.fatalf("crash torn: the last commit dropped nothing")
			}
			torn = " (torn: the last drop was lost)"
		case len(fields) != 0:
			r.fatalf("usage: crash [torn]")
		}
		r.session = nil
		r.check.dropAll()
		return []string{fmt.Sprintf("crashed%s: the store keeps record=%v and %d messages", torn, r.store.record != nil, len(r.store.log))}
	case "at":
		if len(fields) != 1 {
			r.fatalf("usage: at <ms>")
		}
		r.setClock(fields[0])
		if r.session != nil {
			if wake := r.session.NextWake(); wake < r.now {
				return []string{fmt.Sprintf("late: next-wake %d is before %d", wake, r.now)}
			}
		}
		return nil
	case "run-until":
		r.needSession()
		if len(fields) != 1 {
			r.fatalf("usage: run-until <ms>")
		}
		until := r.parseTime(fields[0])
		var lines []string
		for steps := 0; ; steps++ {
			wake := r.session.NextWake()
			if wake > until || r.session.Ended() {
				break
			}
			if steps > 100_000 {
				r.fatalf("run-until: more than 100000 wakes (next-wake stuck at %d?)", wake)
			}
			if wake < r.now {
				lines = append(lines, fmt.Sprintf("VIOLATION next-wake %d is before the clock %d after a Wake", wake, r.now))
				break
			}
			r.now = wake
			lines = append(lines, fmt.Sprintf("@%d", r.now))
			lines = append(lines, r.step(reflector.Wake{}, false)...)
		}
		if until > r.now {
			r.now = until
		}
		return append(lines, renderWake(r.session.NextWake()))
	case "connect":
		r.needSession()
		if len(fields) != 1 {
			r.fatalf("usage: connect <name>")
		}
		name := fields[0]
		if _, exists := r.conns[name]; exists {
			r.fatalf("connection name %q is already used; names are never reused", name)
		}
		r.nextConn++
		id := r.nextConn
		r.conns[name] = id
		r.names[id] = name
		r.check.connect(id, name)
		return r.step(reflector.Connect{Conn: id}, true)
	case "recv":
		r.needSession()
		name, frame, _ := strings.Cut(rest, " ")
		id := r.conn(name)
		if r.check.conns[id].disconnected {
			r.fatalf("recv on %s, which is disconnected", name)
		}
		decoded, err := protocol.DecodeClientFrame([]byte(r.expand(frame)))
		r.check.receive(id, decoded, err)
		return r.step(reflector.Receive{Conn: id, Frame: decoded, Err: err}, true)
	case "disconnect":
		r.needSession()
		if len(fields) != 1 {
			r.fatalf("usage: disconnect <name>")
		}
		id := r.conn(fields[0])
		// Timers due before the event run first and may still address the
		// connection; the Disconnect itself never does.
		r.check.disconnecting = id
		return r.step(reflector.Disconnect{Conn: id}, true)
	case "wake":
		r.needSession()
		return r.step(reflector.Wake{}, true)
	case "pointer":
		r.needSession()
		args := r.keyValues(fields)
		url, given := args["url"]
		if !given {
			if r.lookupKey == "" {
				r.fatalf("pointer: no lookup to answer; give url=")
			}
			var err error
			if url, err = r.driver.pointerURL(r.lookupKey); err != nil {
				r.fatalf("%v", err)
			}
		}
		return r.step(reflector.PointerLoaded{URL: url}, true)
	case "shutdown":
		r.needSession()
		return r.step(reflector.Shutdown{}, true)
	case "state":
		r.needSession()
		connections, synced := r.session.Members()
		record := r.session.Record()
		return []string{
			fmt.Sprintf("connections=%d synced=%d buffered=%d ended=%v", connections, synced, r.session.BufferedMessages(), r.session.Ended()),
			fmt.Sprintf("timeline=%s time=%d timeReserved=%d seq=%d tick=%g delay=%g scale=%g",
				record.Timeline, record.Time, record.TimeReserved, record.Seq, record.TickMs, record.DelayMs, record.Scale),
			fmt.Sprintf("snapshotTime=%d snapshotSeq=%d snapshotUrl=%q persistentUrl=%q",
				record.SnapshotTime, record.SnapshotSeq, record.SnapshotURL, record.PersistentURL),
		}
	case "hide":
		if strings.TrimSpace(rest) == "" {
			r.fatalf("usage: hide <prefix>")
		}
		r.hidden = append(r.hidden, strings.TrimSpace(rest))
		return nil
	case "show-store":
		var lines []string
		if r.store.record != nil {
			lines = append(lines, "record "+string(r.store.record))
		}
		for _, message := range r.store.log {
			lines = append(lines, fmt.Sprintf("log seq=%d %s", message.Seq, message.Data))
		}
		keys := make([]string, 0, len(r.store.pointers))
		for key := range r.store.pointers {
			keys = append(keys, key)
		}
		sort.Strings(keys)
		for _, key := range keys {
			lines = append(lines, fmt.Sprintf("pointer %s %s", key, r.store.pointers[key]))
		}
		if lines == nil {
			lines = []string{"empty"}
		}
		return lines
	}
	r.fatalf("unknown command %q", verb)
	return nil
}

// expand replaces every $repeat(N,c) with N times the character c, so
// scenarios can send frames too large to write out.
func (r *scenarioRunner) expand(frame string) string {
	for {
		start := strings.Index(frame, "$repeat(")
		if start < 0 {
			return frame
		}
		end := strings.Index(frame[start:], ")")
		if end < 0 {
			r.fatalf("$repeat without closing parenthesis")
		}
		countText, char, ok := strings.Cut(frame[start+len("$repeat("):start+end], ",")
		count, err := strconv.Atoi(countText)
		if !ok || err != nil || len(char) != 1 || count < 0 {
			r.fatalf("bad %s: want $repeat(N,c)", frame[start:start+end+1])
		}
		frame = frame[:start] + strings.Repeat(char, count) + frame[start+end+1:]
	}
}

// outputLineBytesMax bounds an output line; longer lines (huge frames) are
// shortened to their start, their length and a hash of the whole line.
const outputLineBytesMax = 1000

// filter leaves out hidden lines (violations are never hidden) and
// shortens huge ones.
func (r *scenarioRunner) filter(lines []string) []string {
	kept := lines[:0]
	for _, line := range lines {
		if len(line) > outputLineBytesMax {
			hash := fnv.New64a()
			hash.Write([]byte(line))
			cut := 200
			for cut > 0 && !utf8.RuneStart(line[cut]) {
				cut--
			}
			line = fmt.Sprintf("%s...(%d bytes, fnv64a %016x)", line[:cut], len(line), hash.Sum64())
		}
		hide := false
		for _, prefix := range r.hidden {
			if strings.HasPrefix(line, prefix) && !strings.HasPrefix(line, "VIOLATION") {
				hide = true
			}
		}
		if !hide {
			kept = append(kept, line)
		}
	}
	return kept
}

func (r *scenarioRunner) startSession(id string) {
	r.haveSession = true
	r.sessionID = id
	r.conns = make(map[string]reflector.ConnID)
	r.names = make(map[reflector.ConnID]string)
	r.lookupKey = ""
}

func (r *scenarioRunner) parseTime(text string) int64 {
	ms, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		r.fatalf("bad time %q", text)
	}
	if ms < r.now {
		r.fatalf("time %d is before the clock %d: time never goes backwards", ms, r.now)
	}
	return ms
}

func (r *scenarioRunner) setClock(text string) {
	r.now = r.parseTime(text)
}

// step runs one event, applies its storage to the model store, checks the
// invariants and renders everything.
func (r *scenarioRunner) step(event reflector.Event, withWake bool) []string {
	out, err := r.driver.step(r.now, event)
	if n := len(out.LookupPointers); n > 0 {
		r.lookupKey = out.LookupPointers[n-1]
	}
	lines := renderEffects(out, r.name)
	if err != nil {
		lines = append(lines, "VIOLATION storage: "+err.Error())
	}
	r.check.observe(out)
	r.check.settle(r.session, &r.store)
	r.check.checkRestore(r.config, r.session, &r.store, r.now)
	for _, violation := range r.check.takeViolations() {
		lines = append(lines, "VIOLATION "+violation)
	}
	if out.Ended {
		r.check.dropAll()
	}
	if withWake {
		lines = append(lines, renderWake(r.session.NextWake()))
	}
	return lines
}

// setConfig sets exported Config fields by name.
func (r *scenarioRunner) setConfig(values map[string]string) {
	config := reflect.ValueOf(&r.config).Elem()
	keys := make([]string, 0, len(values))
	for key := range values {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	for _, key := range keys {
		value := values[key]
		field := config.FieldByName(key)
		if !field.IsValid() {
			r.fatalf("config: no field %q", key)
		}
		switch field.Kind() {
		case reflect.String:
			field.SetString(value)
		case reflect.Int, reflect.Int64:
			n, err := strconv.ParseInt(value, 10, 64)
			if err != nil {
				r.fatalf("config: %s=%q is not an integer", key, value)
			}
			field.SetInt(n)
		default:
			r.fatalf("config: field %s has unsupported kind %s", key, field.Kind())
		}
	}
}
