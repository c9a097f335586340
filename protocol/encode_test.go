package protocol_test

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/metronome-sync/metronome/protocol"
)

func users(active, total int, joined, left []string) []byte {
	return protocol.UsersPayload(active, total, rawList(joined), rawList(left))
}

func rawList(values []string) []json.RawMessage {
	var list []json.RawMessage
	for _, value := range values {
		list = append(list, json.RawMessage(value))
	}
	return list
}

func message(time int64, seq uint32, payload string, extra ...string) []byte {
	return protocol.AppendMessage(nil, time, seq, json.RawMessage(payload), rawList(extra))
}

// TestEncodeTranscript checks the reflector frames of the docs/protocol.md §19
// transcript (and the §8.1 SYNC) byte for byte.
func TestEncodeTranscript(t *testing.T) {
	usersV1 := message(201, 4294967281, string(users(1, 1, []string{`"v1"`}, nil)))
	cipherMessage := message(2611, 4294967282, `"<cipher>"`, `0`)
	tally := protocol.TallyPayload(9000, []protocol.VoteCount{{Vote: "{vote1}", Count: 1}, {Vote: "{vote2}", Count: 1}},
		json.RawMessage(`["handleSnapshotVote"]`), "snapshot@9000", 0)
	tests := []struct {
		name string
		got  []byte
		want string
	}{
		{"SYNC of a brand-new session", protocol.AppendSync(nil, "S", &protocol.Sync{
			Seq: protocol.SeqInitial, Tove: "T1", Reflector: "local", Timeline: "q1w2e3r4t5"}),
			`{"id":"S","action":"SYNC","args":{"url":"","messages":[],"time":0,"seq":4294967280,"tove":"T1","reflector":"local","timeline":"q1w2e3r4t5","flags":{}}}`},
		{"TICK", protocol.AppendTick(nil, "S", 50), `{"id":"S","action":"TICK","args":50}`},
		{"RECV users joined v1", protocol.AppendRecv(nil, "S", usersV1),
			`{"id":"S","action":"RECV","args":[201,4294967281,{"what":"users","active":1,"total":1,"joined":["v1"],"_size":53}]}`},
		{"RECV cipher", protocol.AppendRecv(nil, "S", cipherMessage),
			`{"id":"S","action":"RECV","args":[2611,4294967282,"<cipher>",0]}`},
		{"SYNC of the second client", protocol.AppendSync(nil, "S", &protocol.Sync{
			Messages: [][]byte{usersV1, cipherMessage}, Time: 3000, Seq: 4294967282,
			Tove: "T1", Reflector: "local", Timeline: "q1w2e3r4t5"}),
			`{"id":"S","action":"SYNC","args":{"url":"","messages":[[201,4294967281,{"what":"users","active":1,"total":1,"joined":["v1"],"_size":53}],[2611,4294967282,"<cipher>",0]],"time":3000,"seq":4294967282,"tove":"T1","reflector":"local","timeline":"q1w2e3r4t5","flags":{}}}`},
		{"RECV users joined v2", protocol.AppendRecv(nil, "S", message(3200, 4294967283, string(users(2, 2, []string{`"v2"`}, nil)))),
			`{"id":"S","action":"RECV","args":[3200,4294967283,{"what":"users","active":2,"total":2,"joined":["v2"],"_size":53}]}`},
		{"RECV tally", protocol.AppendRecv(nil, "S", message(9013, 4294967285, string(tally))),
			`{"id":"S","action":"RECV","args":[9013,4294967285,{"what":"tally","sendTime":9000,"tally":{"{vote1}":1,"{vote2}":1},"tallyTarget":["handleSnapshotVote"],"tuttiKey":"snapshot@9000","missingClients":0,"_size":149}]}`},
		{"RECV users left v2", protocol.AppendRecv(nil, "S", message(10400, 4294967286, string(users(1, 1, nil, []string{`"v2"`})))),
			`{"id":"S","action":"RECV","args":[10400,4294967286,{"what":"users","active":1,"total":1,"left":["v2"],"_size":51}]}`},
		{"PONG", protocol.AppendPong(nil, json.RawMessage(`1700000000000`)), `{"action":"PONG","args":1700000000000}`},
		{"PONG without args", protocol.AppendPong(nil, nil), `{"action":"PONG"}`},
		{"PONG object", protocol.AppendPong(nil, json.RawMessage(`{"a":[1,"b"]}`)), `{"action":"PONG","args":{"a":[1,"b"]}}`},
		{"SYNC after a snapshot (§8.1)", protocol.AppendSync(nil, "<sid>", &protocol.Sync{
			URL: "http://localhost:8888/files/snapshots/<sid>/0000060010_4294967289-<hash>.snap",
			Messages: [][]byte{message(61234, 4294967290, `"<cipher>"`, `12`),
				message(61800, 4294967291, string(users(2, 2, []string{`"k2j4h5g6f7"`}, nil)))},
			Time: 62000, Seq: 4294967291, Tove: "<stored tove>", Reflector: "local", Timeline: "hypwuaiusow",
			HasSnapshot: true, SnapshotTime: 60010, SnapshotSeq: 4294967289}),
			`{"id":"<sid>","action":"SYNC","args":{"url":"http://localhost:8888/files/snapshots/<sid>/0000060010_4294967289-<hash>.snap","messages":[[61234,4294967290,"<cipher>",12],[61800,4294967291,{"what":"users","active":2,"total":2,"joined":["k2j4h5g6f7"],"_size":61}]],"time":62000,"seq":4294967291,"tove":"<stored tove>","reflector":"local","timeline":"hypwuaiusow","flags":{},"snapshotTime":60010,"snapshotSeq":4294967289}}`},
		{"SYNC of persisted data, no tove, microverse", protocol.AppendSync(nil, "S", &protocol.Sync{
			URL: "http://h/files/apps/a.b/P/save/H", Time: 7, Seq: protocol.SeqInitial, Reflector: "local",
			Timeline: "t", Flags: protocol.Flags{Microverse: true}, Persisted: true}),
			`{"id":"S","action":"SYNC","args":{"url":"http://h/files/apps/a.b/P/save/H","messages":[],"time":7,"seq":4294967280,"reflector":"local","timeline":"t","flags":{"microverse":true},"persisted":true}}`},
		{"REQU", protocol.AppendRequ(nil, "S"), `{"id":"S","action":"REQU"}`},
		{"INFO", protocol.AppendInfo(nil, "S", "SNAPSHOT_NEEDED", "Reflector message buffer almost full", protocol.LevelWarning),
			`{"id":"S","action":"INFO","args":{"code":"SNAPSHOT_NEEDED","msg":"Reflector message buffer almost full","options":{"level":"warning"}}}`},
		{"INFO escapes", protocol.AppendInfo(nil, "S", "HERALDING_FAILED", "POST \"https://h/\" failed:\n<500>", protocol.LevelError),
			`{"id":"S","action":"INFO","args":{"code":"HERALDING_FAILED","msg":"POST \"https://h/\" failed:\n<500>","options":{"level":"error"}}}`},
		{"session id escaped", protocol.AppendTick(nil, `a"b\c`, 0), `{"id":"a\"b\\c","action":"TICK","args":0}`},
		{"message at the wrap", message(1, 0xFFFFFFFF, `"p"`), `[1,4294967295,"p"]`},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			if !json.Valid(test.got) {
				t.Errorf("not valid JSON: %s", test.got)
			}
			if string(test.got) != test.want {
				t.Errorf("\n got %s\nwant %s", test.got, test.want)
			}
		})
	}
}

// TestEncodersAppend checks that every encoder keeps what dst already holds,
// so one buffer can collect several frames.
func TestEncodersAppend(t *testing.T) {
	const prefix = "prefix:"
	encoders := map[string]func([]byte) []byte{
		"AppendMessage":  func(dst []byte) []byte { return protocol.AppendMessage(dst, 1, 2, json.RawMessage(`"p"`), nil) },
		"AppendRecv":     func(dst []byte) []byte { return protocol.AppendRecv(dst, "S", []byte(`[1,2,"p"]`)) },
		"AppendTick":     func(dst []byte) []byte { return protocol.AppendTick(dst, "S", 1) },
		"AppendRequ":     func(dst []byte) []byte { return protocol.AppendRequ(dst, "S") },
		"AppendInfo":     func(dst []byte) []byte { return protocol.AppendInfo(dst, "S", "c", "m", protocol.LevelWarning) },
		"AppendPong":     func(dst []byte) []byte { return protocol.AppendPong(dst, json.RawMessage(`1`)) },
		"AppendSync":     func(dst []byte) []byte { return protocol.AppendSync(dst, "S", &protocol.Sync{}) },
		"AppendJSString": func(dst []byte) []byte { return protocol.AppendJSString(dst, "s") },
	}
	for name, encode := range encoders {
		alone := encode(nil)
		appended := encode([]byte(prefix))
		if string(appended) != prefix+string(alone) {
			t.Errorf("%s on %q = %q, want %q", name, prefix, appended, prefix+string(alone))
		}
		if !json.Valid(alone) {
			t.Errorf("%s: not valid JSON: %s", name, alone)
		}
	}
}

var sizeSuffix = regexp.MustCompile(`,"_size":(0|[1-9][0-9]*)}$`)

// checkPayloadSize checks a users or tally payload against a reference: the
// payload must end with ,"_size":N} where N is the number of UTF-16 code
// units of the payload's JSON without _size, as JavaScript's
// JSON.stringify(payload).length counts them before _size is added. It
// returns the payload without _size.
func checkPayloadSize(t *testing.T, payload []byte) []byte {
	t.Helper()
	if !json.Valid(payload) {
		t.Fatalf("payload is not valid JSON: %q", payload)
	}
	match := sizeSuffix.FindSubmatchIndex(payload)
	if match == nil {
		t.Fatalf("payload does not end with _size: %s", payload)
	}
	withoutSize := append(append([]byte(nil), payload[:match[0]]...), '}')
	if !json.Valid(withoutSize) {
		t.Fatalf("payload without _size is not valid JSON: %s", withoutSize)
	}
	want := len(utf16.Encode([]rune(string(withoutSize))))
	got, err := strconv.Atoi(string(payload[match[2]:match[3]]))
	if err != nil || got != want {
		t.Errorf("_size = %s, want %d UTF-16 units (%d bytes) of %s", payload[match[2]:match[3]], want, len(withoutSize), withoutSize)
	}
	return withoutSize
}

// sizeCases are payloads whose _size is checked against the reference
// here and against node in TestPayloadSizeMatchesNode.
func sizeCases() map[string][]byte {
	viewData := `{"id":"a9s8d7f6g5","data":"ünï 😀 日本"}`
	return map[string][]byte{
		"users ASCII":           users(1, 1, []string{`"v1"`}, nil),
		"users none":            users(0, 0, nil, nil),
		"users §7.3":            users(2, 2, []string{`"k2j4h5g6f7"`}, []string{`{"id":"a9s8d7f6g5","data":"<cipher>"}`}),
		"users non-ASCII":       users(2, 3, []string{`"grüße"`, `"日本"`}, []string{`["vïew"]`}),
		"users astral":          users(1, 2, []string{`"😀"`, viewData}, []string{`"𝄞"`}),
		"users large counts":    users(1000000, 1000001, []string{`"v1"`}, []string{`"v2"`, `"v3"`}),
		"tally ASCII":           protocol.TallyPayload(9000, []protocol.VoteCount{{Vote: "{vote1}", Count: 1}}, json.RawMessage(`["handleSnapshotVote"]`), "snapshot@9000", 0),
		"tally no votes":        protocol.TallyPayload(0, nil, nil, "k@0", 3),
		"tally non-ASCII votes": protocol.TallyPayload(12210, []protocol.VoteCount{{Vote: `{"hash":"é"}`, Count: 2}, {Vote: "日本", Count: 1}}, json.RawMessage(`null`), "persist@12210", 1),
		"tally astral":          protocol.TallyPayload(5, []protocol.VoteCount{{Vote: "😀😀", Count: 1}, {Vote: "a\u2028b", Count: 4}}, json.RawMessage(`["t","🎉"]`), "emoji🎉@5", 0),
		"tally escapes":         protocol.TallyPayload(5, []protocol.VoteCount{{Vote: "quote\" backslash\\ tab\t nul\x00", Count: 1}}, json.RawMessage(`{"a":"\"x\""}`), "k\"@5", 0),
	}
}

func TestPayloadSizeCountsUTF16Units(t *testing.T) {
	cases := sizeCases()
	for _, name := range sortedNames(cases) {
		payload := cases[name]
		t.Run(name, func(t *testing.T) {
			if !utf8.Valid(payload) {
				t.Errorf("payload is not valid UTF-8: %q", payload)
			}
			checkPayloadSize(t, payload)
		})
	}
}

func TestPayloadSizeLiterals(t *testing.T) {
	tests := []struct {
		got  []byte
		want string
	}{
		// "é" is 2 bytes and 1 UTF-16 unit; "😀" is 4 bytes and 2 units.
		{users(1, 1, []string{`"é"`}, nil), `{"what":"users","active":1,"total":1,"joined":["é"],"_size":52}`},
		{users(1, 1, []string{`"😀"`}, nil), `{"what":"users","active":1,"total":1,"joined":["😀"],"_size":53}`},
		{protocol.TallyPayload(1, []protocol.VoteCount{{Vote: "😀", Count: 1}}, nil, "k", 0),
			`{"what":"tally","sendTime":1,"tally":{"😀":1},"tallyTarget":null,"tuttiKey":"k","missingClients":0,"_size":99}`},
	}
	for _, test := range tests {
		if string(test.got) != test.want {
			t.Errorf("\n got %s\nwant %s", test.got, test.want)
		}
	}
}

func TestPayloadsDecode(t *testing.T) {
	var usersPayload struct {
		What   string            `json:"what"`
		Active int               `json:"active"`
		Total  int               `json:"total"`
		Joined []json.RawMessage `json:"joined"`
		Left   []json.RawMessage `json:"left"`
	}
	joined := []string{`"v1"`, `{"id":"v2","data":"ü😀"}`, `["v3",{"region":"eu"}]`}
	if err := json.Unmarshal(users(3, 4, joined, []string{`"v0"`}), &usersPayload); err != nil {
		t.Fatal(err)
	}
	if usersPayload.What != "users" || usersPayload.Active != 3 || usersPayload.Total != 4 ||
		!reflect.DeepEqual(usersPayload.Joined, rawList(joined)) || !reflect.DeepEqual(usersPayload.Left, rawList([]string{`"v0"`})) {
		t.Errorf("users payload decoded to %+v", usersPayload)
	}

	var tallyPayload struct {
		What           string          `json:"what"`
		SendTime       int64           `json:"sendTime"`
		Tally          map[string]int  `json:"tally"`
		TallyTarget    json.RawMessage `json:"tallyTarget"`
		TuttiKey       string          `json:"tuttiKey"`
		MissingClients int             `json:"missingClients"`
	}
	votes := []protocol.VoteCount{{Vote: `{"cpuTime":"0.7","hash":"h\u00e9"}`, Count: 2}, {Vote: "\x00<&>\u2028", Count: 1}}
	if err := json.Unmarshal(protocol.TallyPayload(18615, votes, json.RawMessage(`["handleSnapshotVote"]`), "snapshot@18615", 1), &tallyPayload); err != nil {
		t.Fatal(err)
	}
	want := map[string]int{votes[0].Vote: 2, votes[1].Vote: 1}
	if tallyPayload.What != "tally" || tallyPayload.SendTime != 18615 || !reflect.DeepEqual(tallyPayload.Tally, want) ||
		string(tallyPayload.TallyTarget) != `["handleSnapshotVote"]` || tallyPayload.TuttiKey != "snapshot@18615" || tallyPayload.MissingClients != 1 {
		t.Errorf("tally payload decoded to %+v", tallyPayload)
	}
}

// jsStrings are strings whose JSON.stringify form is easy to get wrong.
func jsStrings() []string {
	var control strings.Builder
	for c := rune(0); c < 0x20; c++ {
		control.WriteRune(c)
	}
	return []string{
		"",
		"plain",
		`say "hi"`,
		`back\slash`,
		`\"`,
		"/slash/",
		control.String(),
		"\x00",
		"\x1f",
		"\b\f\n\r\t\v",
		"\x7f",
		"<script>alert('&amp;')</script>",
		"line\u2028separator\u2029paragraph",
		"\u0085\u00a0\u00ad\u200b\ufeff",
		"grüße, 日本語",
		"😀🎉𝄞",
		"\uFFFD\uFFFF",
		`{"cpuTime":"0.7","hash":"kzR8","viewId":"k2j4h5g6f7"}`,
	}
}

func TestAppendJSString(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{"", `""`},
		{`say "hi"`, `"say \"hi\""`},
		{`back\slash`, `"back\\slash"`},
		{"/", `"/"`},
		{"\x00", `"\u0000"`},
		{"\x01\x1a\x1f", `"\u0001\u001a\u001f"`},
		{"\b\f\n\r\t", `"\b\f\n\r\t"`},
		{"\v", `"\u000b"`},
		{"\x7f", "\"\x7f\""},
		{"<>&", `"<>&"`},
		{"\u2028\u2029", "\"\u2028\u2029\""},
		{"é😀", `"é😀"`},
	}
	for _, test := range tests {
		if got := string(protocol.AppendJSString(nil, test.in)); got != test.want {
			t.Errorf("AppendJSString(%q) = %s, want %s", test.in, got, test.want)
		}
	}
	for _, in := range jsStrings() {
		encoded := protocol.AppendJSString(nil, in)
		if !utf8.Valid(encoded) {
			t.Errorf("AppendJSString(%q) = %q is not valid UTF-8", in, encoded)
		}
		var decoded string
		if err := json.Unmarshal(encoded, &decoded); err != nil || decoded != in {
			t.Errorf("AppendJSString(%q) = %s decodes to %q, %v", in, encoded, decoded, err)
		}
	}
}

// runNode runs a node script with input on stdin and returns its stdout.
// It skips the test when node is not installed.
func runNode(t *testing.T, script string, input []byte) []byte {
	t.Helper()
	path, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not on PATH")
	}
	command := exec.Command(path, "-e", script)
	command.Stdin = bytes.NewReader(input)
	var stderr bytes.Buffer
	command.Stderr = &stderr
	output, err := command.Output()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, stderr.Bytes())
	}
	return output
}

// TestAppendJSStringMatchesNode compares AppendJSString with JavaScript's
// JSON.stringify byte for byte.
func TestAppendJSStringMatchesNode(t *testing.T) {
	inputs := jsStrings()
	input, err := json.Marshal(inputs)
	if err != nil {
		t.Fatal(err)
	}
	// JSON.stringify escapes line feeds, so one output per line is safe.
	output := runNode(t, `
const inputs = JSON.parse(require("fs").readFileSync(0, "utf8"));
process.stdout.write(inputs.map((s) => JSON.stringify(s) + "\n").join(""));
`, input)
	lines := strings.Split(strings.TrimSuffix(string(output), "\n"), "\n")
	if len(lines) != len(inputs) {
		t.Fatalf("node printed %d lines for %d strings:\n%s", len(lines), len(inputs), output)
	}
	for i, in := range inputs {
		if got := string(protocol.AppendJSString(nil, in)); got != lines[i] {
			t.Errorf("AppendJSString(%q)\n  = %q\nnode %q", in, got, lines[i])
		}
	}
}

// TestPayloadSizeMatchesNode checks _size against node: the payload without
// _size, parsed and stringified by JavaScript, has _size UTF-16 units and
// the same bytes.
func TestPayloadSizeMatchesNode(t *testing.T) {
	cases := sizeCases()
	names := sortedNames(cases)
	var bodies []string
	for _, name := range names {
		bodies = append(bodies, string(checkPayloadSize(t, cases[name])))
	}
	input, err := json.Marshal(bodies)
	if err != nil {
		t.Fatal(err)
	}
	// JSON.stringify escapes line feeds and tabs, so "length<TAB>json" lines are safe.
	output := runNode(t, `
const bodies = JSON.parse(require("fs").readFileSync(0, "utf8"));
process.stdout.write(bodies.map((b) => { const s = JSON.stringify(JSON.parse(b)); return s.length + "\t" + s + "\n"; }).join(""));
`, input)
	lines := strings.Split(strings.TrimSuffix(string(output), "\n"), "\n")
	if len(lines) != len(bodies) {
		t.Fatalf("node printed %d lines for %d payloads:\n%s", len(lines), len(bodies), output)
	}
	for i, name := range names {
		payload := cases[name]
		length, text, _ := strings.Cut(lines[i], "\t")
		size := sizeSuffix.FindSubmatch(payload)[1]
		if string(size) != length {
			t.Errorf("%s: _size = %s, JSON.stringify(payload).length = %s", name, size, length)
		}
		if text != bodies[i] {
			t.Errorf("%s: payload without _size\n  = %s\nnode %s", name, bodies[i], text)
		}
	}
}
