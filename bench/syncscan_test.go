package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// The SYNC frames below follow docs/protocol.md §8.1 (the envelope of §3.4,
// args with url, messages, time, seq, tove, reflector, timeline, flags and
// the snapshot fields) and §4.4 (a message is [time, seq, payload, …]: a
// string payload from a client, an object from the reflector).

// syncMessagesFixture are the messages of the test SYNCs: string payloads
// with every escape and every bracket, comma and brace JSON allows in a
// string, a users object, nested arrays and objects after the payload, and
// look-alikes of the keys the scanner looks for.
var syncMessagesFixture = []string{
	`[61234,4294967290,"<cipher>",12]`,
	`[61800,4294967291,{"what":"users","active":2,"total":2,"joined":["k2j4h5g6f7"],"_size":61}]`,
	`[61801,4294967292,"quote \" backslash \\ close ] open [ comma , brace { } end",3]`,
	`[61802,4294967293,"escaped close \u005d open \u005b comma \u002c quote \u0022 brace \u007d \u007b",4]`,
	`[61803,4294967294,"\\",5]`,
	`[61804,4294967295,"\\\"]],[[",6]`,
	`[61805,0,"\/ \b \f \n \r \t \uD83D\uDE00 é ü 😀",7]`,
	`[61806,1,"{\"messages\":[1,2,3],\"seq\":7,\"action\":\"RECV\"}",8]`,
	`[61807,2,"\"messages\":[",9]`,
	`[61808,3,"tally",[1,[2,[3,[]]]],{"a":[{"b":{"c":[]}}],"messages":[1,2],"seq":5}]`,
	`[61809,4,{"what":"tally","tuttiSeq":4,"tally":{"a,b]":1,"{}":2},"tallyTarget":["x",["y"]]}]`,
	`[61810,5,"",-1.5e-3,true,false,null,0,1E+2]`,
}

const syncSeqFixture = "5"

// syncFields are the fields of the test SYNC's args; messages holds %s.
var syncFields = []string{
	`"url":"http://localhost:8888/files/snapshots/s/0000060010_4294967289-h.snap"`,
	`"messages":[%s]`,
	`"time":62000`,
	`"seq":` + syncSeqFixture,
	`"tove":"tove with \"messages\":[ inside"`,
	`"reflector":"local"`,
	`"timeline":"hypwuaiusow"`,
	`"flags":{}`,
	`"snapshotTime":60010`,
	`"snapshotSeq":4294967289`,
}

// buildSync returns a compact SYNC whose args hold the fields in order,
// messages being the one at messagesAt, and whose envelope keys come in
// the order of keys (a permutation of id, action, args).
func buildSync(messages []string, messagesAt int, keys []string) string {
	var fields []string
	for _, field := range syncFields {
		if strings.HasPrefix(field, `"messages"`) {
			continue
		}
		fields = append(fields, field)
	}
	messagesField := fmt.Sprintf(`"messages":[%s]`, strings.Join(messages, ","))
	fields = append(fields[:messagesAt], append([]string{messagesField}, fields[messagesAt:]...)...)
	envelope := map[string]string{
		"id": `"id":"s"`, "action": `"action":"SYNC"`,
		"args": `"args":{` + strings.Join(fields, ",") + `}`,
	}
	var members []string
	for _, key := range keys {
		members = append(members, envelope[key])
	}
	return "{" + strings.Join(members, ",") + "}"
}

var envelopeOrders = [][]string{
	{"id", "action", "args"}, {"id", "args", "action"}, {"action", "id", "args"},
	{"action", "args", "id"}, {"args", "id", "action"}, {"args", "action", "id"},
}

// spaced returns compact JSON with space before and after every
// structural character outside strings, so between every two tokens.
func spaced(compact, space string) string {
	var out strings.Builder
	out.WriteString(space)
	inString := false
	for i := 0; i < len(compact); i++ {
		c := compact[i]
		switch {
		case inString && c == '\\':
			out.WriteByte(c)
			i++
			c = compact[i]
		case c == '"':
			inString = !inString
		case !inString && strings.IndexByte("{}[]:,", c) >= 0:
			out.WriteString(space)
			out.WriteByte(c)
			out.WriteString(space)
			continue
		}
		out.WriteByte(c)
	}
	out.WriteString(space)
	return out.String()
}

// decodeEnvelope is the reference: the fields scanEnvelope reads, decoded
// with encoding/json (which, like the scanner, lets the last of duplicate
// keys count); ok is false for a frame that is not a JSON object.
func decodeEnvelope(frame []byte) (e envelope, ok bool) {
	startsWith := func(raw []byte, c byte) bool {
		raw = bytes.TrimLeft(raw, " \t\r\n")
		return len(raw) > 0 && raw[0] == c
	}
	var top map[string]json.RawMessage
	if !json.Valid(frame) || !startsWith(frame, '{') || json.Unmarshal(frame, &top) != nil {
		return e, false
	}
	if raw, found := top["action"]; found {
		json.Unmarshal(raw, &e.action)
	}
	var args map[string]json.RawMessage
	if raw, found := top["args"]; !found || !startsWith(raw, '{') || json.Unmarshal(raw, &args) != nil {
		return e, true
	}
	var elements []json.RawMessage
	if raw, found := args["messages"]; found && startsWith(raw, '[') && json.Unmarshal(raw, &elements) == nil {
		e.hasMessages, e.messages = true, len(elements)
		for _, element := range elements {
			if !startsWith(element, '[') {
				e.notArrays++
			}
		}
	}
	if raw, found := args["seq"]; found && (startsWith(raw, '-') || bytes.ContainsAny(raw[:1], "0123456789")) {
		e.hasSeq = json.Unmarshal(raw, &e.seq) == nil
		if !e.hasSeq {
			e.seq = 0
		}
	}
	return e, true
}

// checkSync scans frame and compares with encoding/json and with the
// expected number of messages.
func checkSync(t *testing.T, name, frame string, want int) {
	t.Helper()
	reference, ok := decodeEnvelope([]byte(frame))
	if !ok {
		t.Fatalf("%s: the test frame is not a JSON object: %s", name, frame)
	}
	if reference.messages != want || !reference.hasSeq || reference.seq != 5 {
		t.Fatalf("%s: encoding/json reads %+v, want %d messages and seq 5 (a bad test frame)", name, reference, want)
	}
	got, err := scanEnvelope([]byte(frame))
	if err != nil {
		t.Fatalf("%s: scanEnvelope: %v\n%s", name, err, frame)
	}
	if got != reference {
		t.Fatalf("%s: scanEnvelope = %+v, encoding/json %+v\n%s", name, got, reference, frame)
	}
	if count, err := countSyncMessages([]byte(frame)); err != nil || count != want {
		t.Fatalf("%s: countSyncMessages = %d, %v; want %d", name, count, err, want)
	}
}

// TestScanSyncFieldOrders puts messages first, in the middle and last of
// args, with the envelope's id, action and args in every order.
func TestScanSyncFieldOrders(t *testing.T) {
	for _, keys := range envelopeOrders {
		for _, at := range []int{0, 1, 4, len(syncFields) - 1} {
			name := fmt.Sprintf("envelope %v, messages at %d", keys, at)
			checkSync(t, name, buildSync(syncMessagesFixture, at, keys), len(syncMessagesFixture))
		}
	}
}

// TestScanSyncWhitespace puts whitespace and newlines between every two
// tokens of the frame.
func TestScanSyncWhitespace(t *testing.T) {
	for _, space := range []string{" ", "\n", "\r\n", "\t", " \n\t\r  \n"} {
		for _, keys := range envelopeOrders[:3] {
			for _, at := range []int{0, 4, len(syncFields) - 1} {
				compact := buildSync(syncMessagesFixture, at, keys)
				frame := spaced(compact, space)
				var check bytes.Buffer
				if err := json.Compact(&check, []byte(frame)); err != nil || check.String() != compact {
					t.Fatalf("spaced(%q) does not compact back to the frame: %v", space, err)
				}
				checkSync(t, fmt.Sprintf("space %q, envelope %v, messages at %d", space, keys, at), frame, len(syncMessagesFixture))
			}
		}
	}
	// json.MarshalIndent's layout too.
	var indented bytes.Buffer
	if err := json.Indent(&indented, []byte(buildSync(syncMessagesFixture, 1, envelopeOrders[0])), "", "  "); err != nil {
		t.Fatal(err)
	}
	checkSync(t, "indented", indented.String(), len(syncMessagesFixture))
}

// TestScanSyncMessages: payloads with escapes, brackets, commas and braces
// in strings, nested arrays and objects, one message at a time and all
// together, and the empty array.
func TestScanSyncMessages(t *testing.T) {
	for i, message := range syncMessagesFixture {
		checkSync(t, fmt.Sprintf("message %d alone", i), buildSync([]string{message}, 1, envelopeOrders[0]), 1)
		checkSync(t, fmt.Sprintf("message %d three times", i), buildSync([]string{message, message, message}, 1, envelopeOrders[0]), 3)
	}
	checkSync(t, "no messages", buildSync(nil, 1, envelopeOrders[0]), 0)
	for _, empty := range []string{"[]", "[ ]", "[\n]", "[\r\n\t ]"} {
		frame := strings.Replace(buildSync(nil, 0, envelopeOrders[0]), "[]", empty, 1)
		checkSync(t, fmt.Sprintf("messages %q", empty), frame, 0)
	}
	// A key written with escapes is the same key.
	frame := strings.Replace(buildSync(syncMessagesFixture[:2], 0, envelopeOrders[0]), `"messages"`, `"\u006dessages"`, 1)
	checkSync(t, "escaped key", frame, 2)
	// Duplicate keys: the last counts, as with encoding/json.
	frame = strings.Replace(buildSync(syncMessagesFixture[:2], 0, envelopeOrders[0]), `"time"`, `"messages":[[1,2,"x"]],"time"`, 1)
	checkSync(t, "duplicate messages", frame, 1)
}

// TestScanEnvelopeActions: the action of any frame, SYNC or not.
func TestScanEnvelopeActions(t *testing.T) {
	for _, tc := range []struct{ frame, action string }{
		{`{"id":"s","action":"TICK","args":12345}`, "TICK"},
		{`{"args":[1,2,"{\"action\":\"SYNC\"}",0],"action":"RECV","id":"s"}`, "RECV"},
		{`{"action":"PONG","args":1}`, "PONG"},
		{`{"id":"s","action":"REQU"}`, "REQU"},
		{` { "id" : "s" , "action" : "INFO" , "args" : { "code" : "x" , "messages" : 3 } } `, "INFO"},
		{`{"id":"s","action":"\u0053YNC","args":{"messages":[],"seq":0}}`, "SYNC"},
		{`{"id":"s","args":{"messages":[[1,2,{"action":"RECV"}]],"seq":1},"action":"SYNC"}`, "SYNC"},
		{`{"id":"s"}`, ""},
		{`{"action":7}`, ""},
	} {
		got, err := scanEnvelope([]byte(tc.frame))
		reference, ok := decodeEnvelope([]byte(tc.frame))
		if err != nil || !ok || got.action != tc.action || got != reference {
			t.Errorf("scanEnvelope(%s) = %+v, %v; want action %q and encoding/json's %+v", tc.frame, got, err, tc.action, reference)
		}
	}
}

// TestScanSyncMalformed: malformed frames are errors, never a count.
func TestScanSyncMalformed(t *testing.T) {
	good := buildSync(syncMessagesFixture, 1, envelopeOrders[0])
	// Every truncation of a SYNC: an error saying that it is not
	// terminated, whatever token it ends in.
	for cut := 1; cut < len(good); cut++ {
		_, err := scanEnvelope([]byte(good[:cut]))
		if !errors.Is(err, errTruncated) {
			t.Fatalf("SYNC cut after %d of %d bytes (%q): %v, want errTruncated", cut, len(good), good[max(0, cut-20):cut], err)
		}
	}
	spacedGood := spaced(good, " \n")
	for cut := 1; cut < len(strings.TrimRight(spacedGood, " \n")); cut++ {
		if _, err := countSyncMessages([]byte(spacedGood[:cut])); err == nil {
			t.Fatalf("spaced SYNC cut after %d bytes: no error", cut)
		}
	}
	base := `{"id":"s","action":"SYNC","args":{"url":"","messages":%s,"time":1,"seq":5}}`
	for _, tc := range []struct {
		name, frame, want string
	}{
		{"unterminated messages", `{"id":"s","action":"SYNC","args":{"url":"","messages":[[1,2,"a"],[3,4,"b"]`, "args.messages: not terminated"},
		{"unterminated message", `{"id":"s","action":"SYNC","args":{"messages":[[1,2,"a"],[3,4,"b"`, "message 1: not terminated"},
		{"unterminated string", `{"id":"s","action":"SYNC","args":{"messages":[[1,2,"a]]}}`, "not terminated"},
		{"ends in an escape", `{"id":"s","action":"SYNC","args":{"messages":[[1,2,"a\`, "not terminated"},
		{"ends in a \\u escape", `{"id":"s","action":"SYNC","args":{"messages":[[1,2,"a\u00`, "not terminated"},
		{"bracket closed by a brace", fmt.Sprintf(base, `[[1,2,"a"}]`), "want ',' or ']'"},
		{"brace closed by a bracket", fmt.Sprintf(base, `[[1,2,{"a":1]]]`), "want ',' or '}'"},
		{"extra closing bracket", fmt.Sprintf(base, `[[1,2,"a"]]]`), "want ',' or '}'"},
		{"trailing comma", fmt.Sprintf(base, `[[1,2,"a"],]`), "unexpected ']'"},
		{"leading comma", fmt.Sprintf(base, `[,[1,2,"a"]]`), "unexpected ','"},
		{"missing comma", fmt.Sprintf(base, `[[1,2,"a"] [3,4,"b"]]`), "want ',' or ']' after element 1"},
		{"bad escape", fmt.Sprintf(base, `[[1,2,"a\x"]]`), "invalid escape"},
		{"bad \\u escape", fmt.Sprintf(base, `[[1,2,"a\u00g0"]]`), "invalid \\u escape"},
		{"control character", fmt.Sprintf(base, "[[1,2,\"a\nb\"]]"), "control character"},
		{"leading zero", fmt.Sprintf(base, `[[01,2,"a"]]`), "want ',' or ']'"},
		{"bare minus", fmt.Sprintf(base, `[[-,2,"a"]]`), "no digit"},
		{"bad literal", fmt.Sprintf(base, `[[1,2,"a",nul]]`), "unexpected"},
		{"single quotes", fmt.Sprintf(base, `[[1,2,'a']]`), "unexpected"},
		{"unquoted key", `{"id":"s","action":"SYNC","args":{messages:[]}}`, "want a key"},
		{"missing colon", `{"id":"s","action":"SYNC","args":{"messages" []}}`, "want ':'"},
		{"data after the object", fmt.Sprintf(base, `[]`) + `,{}`, "after the object"},
		{"two objects", fmt.Sprintf(base, `[]`) + fmt.Sprintf(base, `[]`), "after the object"},
		{"not an object", `[1,2,3]`, "want a JSON object"},
		{"empty", ``, "empty frame"},
		{"space only", " \n", "empty frame"},
		{"deep nesting", fmt.Sprintf(base, "["+strings.Repeat("[", 5000)+strings.Repeat("]", 5001)), "nested deeper"},
		{"messages not an array", fmt.Sprintf(base, `{"a":1}`), "no args.messages array"},
		{"messages null", fmt.Sprintf(base, `null`), "no args.messages array"},
		{"messages missing", `{"id":"s","action":"SYNC","args":{"url":"","seq":5}}`, "no args.messages array"},
		{"args not an object", `{"id":"s","action":"SYNC","args":[[1,2,"a"]]}`, "no args.messages array"},
		{"elements not arrays", fmt.Sprintf(base, `[[1,2,"a"],"b",3]`), "2 of the 3 elements"},
		{"not a SYNC", `{"id":"s","action":"TICK","args":{"messages":[]}}`, `action "TICK"`},
	} {
		count, err := countSyncMessages([]byte(tc.frame))
		if err == nil || !strings.Contains(err.Error(), tc.want) || count != 0 {
			t.Errorf("%s: countSyncMessages = %d, %v; want an error with %q", tc.name, count, err, tc.want)
		}
	}
	// The seq: an integer in [0, 2^32), else absent.
	for _, tc := range []struct {
		seq    string
		hasSeq bool
		want   uint32
	}{
		{"0", true, 0}, {"4294967295", true, 4294967295}, {" 17 ", true, 17},
		{"4294967296", false, 0}, {"-1", false, 0}, {"1.0", false, 0}, {"1e3", false, 0},
		{"99999999999", false, 0}, {`"5"`, false, 0}, {"null", false, 0},
	} {
		frame := `{"id":"s","action":"SYNC","args":{"messages":[],"seq":` + tc.seq + `}}`
		got, err := scanEnvelope([]byte(frame))
		reference, _ := decodeEnvelope([]byte(frame))
		if err != nil || got.hasSeq != tc.hasSeq || got.seq != tc.want || got != reference {
			t.Errorf("seq %s: %+v, %v; want hasSeq %v seq %d and encoding/json's %+v", tc.seq, got, err, tc.hasSeq, tc.want, reference)
		}
	}
}

// chunkFrames splits a message the way the reference reflector does
// (docs/protocol.md §3.3) at the given offsets.
func chunkFrames(message string, cuts ...int) []string {
	bounds := append(append([]int{0}, cuts...), len(message))
	var chunks []string
	for i := 0; i+1 < len(bounds); i++ {
		first, last := "0", "0"
		if i == 0 {
			first = "1"
		}
		if i+2 == len(bounds) {
			last = "1"
		}
		chunks = append(chunks, "_CHUNK"+first+last+message[bounds[i]:bounds[i+1]])
	}
	return chunks
}

// TestChunkedSync splits a SYNC into two chunks at every byte, and into
// three, and checks the glued message; out-of-order chunks are errors.
func TestChunkedSync(t *testing.T) {
	message := buildSync(syncMessagesFixture, 1, envelopeOrders[3])
	var a chunkAssembler
	defer a.release()
	assemble := func(chunks []string) (string, error) {
		for i, chunk := range chunks {
			got, complete, err := a.add([]byte(chunk))
			if err != nil {
				return "", err
			}
			if complete != (i == len(chunks)-1) {
				return "", fmt.Errorf("chunk %d of %d: complete %v", i, len(chunks), complete)
			}
			if complete {
				return string(got), nil
			}
		}
		return "", errors.New("no message")
	}
	for cut := 0; cut <= len(message); cut++ {
		for _, cuts := range [][]int{{cut}, {cut / 2, cut}} {
			got, err := assemble(chunkFrames(message, cuts...))
			if err != nil || got != message {
				t.Fatalf("cuts %v: %v, glued %d bytes of %d", cuts, err, len(got), len(message))
			}
			if count, err := countSyncMessages([]byte(got)); err != nil || count != len(syncMessagesFixture) {
				t.Fatalf("cuts %v: %d messages, %v", cuts, count, err)
			}
		}
	}
	// A frame that is not a chunk passes through; a single chunk is a
	// message.
	if got, complete, err := a.add([]byte(`{"action":"TICK"}`)); err != nil || !complete || string(got) != `{"action":"TICK"}` {
		t.Fatalf("plain frame: %q %v %v", got, complete, err)
	}
	if got, complete, err := a.add([]byte(`_CHUNK11{}`)); err != nil || !complete || string(got) != `{}` {
		t.Fatalf("single chunk: %q %v %v", got, complete, err)
	}
	for _, tc := range []struct {
		name   string
		chunks []string
		want   string
	}{
		{"continuation first", []string{"_CHUNK01{}"}, "continues no message"},
		{"two first chunks", []string{"_CHUNK10{", "_CHUNK10{"}, "first chunk after 1 chunks"},
		{"plain frame between chunks", []string{"_CHUNK10{", `{"action":"TICK"}`}, "not a chunk"},
		{"short header", []string{"_CHUNK1"}, "incomplete"},
		{"bad header", []string{"_CHUNK2x{}"}, "want _CHUNK, then 0 or 1 twice"},
	} {
		var b chunkAssembler
		var err error
		for _, chunk := range tc.chunks {
			if _, _, err = b.add([]byte(chunk)); err != nil {
				break
			}
		}
		b.release()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.want)
		}
	}
}

// serverFrame is one unmasked server frame.
func serverFrame(op ws.OpCode, fin bool, payload string) []byte {
	var frame bytes.Buffer
	if err := ws.WriteFrame(&frame, ws.NewFrame(op, fin, []byte(payload))); err != nil {
		panic(err)
	}
	return frame.Bytes()
}

// TestFrameReaderFragmentedSync splits a SYNC into two WebSocket fragments
// (a text frame and a continuation frame) at every byte, with a ping
// between them, and reads it back whole; the frame parser of the receive
// loops gets the same stream. Fragments out of sequence are errors.
func TestFrameReaderFragmentedSync(t *testing.T) {
	message := spaced(buildSync(syncMessagesFixture, 0, envelopeOrders[4]), " ")
	for cut := 0; cut <= len(message); cut++ {
		var stream []byte
		stream = append(stream, serverFrame(ws.OpText, false, message[:cut])...)
		stream = append(stream, serverFrame(ws.OpPing, true, "p")...)
		stream = append(stream, serverFrame(ws.OpContinuation, true, message[cut:])...)
		stream = append(stream, serverFrame(ws.OpText, true, `{"id":"s","action":"TICK","args":1}`)...)
		pings := 0
		reader := newFrameReader(bytes.NewReader(stream), func(header ws.Header, payload []byte) error {
			if header.OpCode == ws.OpPing && string(payload) == "p" {
				pings++
			}
			return nil
		})
		got, err := reader.next()
		if err != nil || string(got) != message || pings != 1 {
			t.Fatalf("cut %d: %v, %d pings, read %d bytes of %d", cut, err, pings, len(got), len(message))
		}
		if count, err := countSyncMessages(got); err != nil || count != len(syncMessagesFixture) {
			t.Fatalf("cut %d: %d messages, %v", cut, count, err)
		}
		if got, err := reader.next(); err != nil || !strings.Contains(string(got), "TICK") {
			t.Fatalf("cut %d: the frame after the SYNC: %q, %v", cut, got, err)
		}
		if cut%97 == 0 {
			var parser frameParser
			var messages []string
			for i := 0; i < len(stream); i += 61 {
				piece := append([]byte(nil), stream[i:min(i+61, len(stream))]...)
				if err := parser.feed(piece, func(m []byte) error {
					messages = append(messages, string(m))
					return nil
				}, nil); err != nil {
					t.Fatalf("cut %d: frame parser: %v", cut, err)
				}
			}
			if len(messages) != 2 || messages[0] != message {
				t.Fatalf("cut %d: frame parser gave %d messages", cut, len(messages))
			}
		}
	}
	for _, tc := range []struct {
		name   string
		frames [][]byte
		want   string
	}{
		{"continuation first", [][]byte{serverFrame(ws.OpContinuation, true, "{}")}, "without a first fragment"},
		{"text inside a fragmented message", [][]byte{serverFrame(ws.OpText, false, "{"), serverFrame(ws.OpText, true, "}")}, "inside a fragmented message"},
		{"fragmented ping", [][]byte{serverFrame(ws.OpPing, false, "p")}, "fragmented control frame"},
	} {
		stream := bytes.Join(tc.frames, nil)
		_, err := newFrameReader(bytes.NewReader(stream), nil).next()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: frame reader: %v, want an error with %q", tc.name, err, tc.want)
		}
		var parser frameParser
		err = parser.feed(stream, func([]byte) error { return nil }, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: frame parser: %v, want an error with %q", tc.name, err, tc.want)
		}
	}
	// A truncated stream ends the read with an error, not a message.
	stream := serverFrame(ws.OpText, true, message)
	for _, cut := range []int{1, 3, len(stream) / 2, len(stream) - 1} {
		if got, err := newFrameReader(bytes.NewReader(stream[:cut]), nil).next(); err == nil {
			t.Fatalf("stream cut after %d of %d bytes: read %d bytes without an error", cut, len(stream), len(got))
		}
	}
}

// TestJoinReferenceStyleSync runs a joiner against a reflector that
// answers like the reference: a WebSocket ping first, a TICK, then a SYNC
// whose messages are not the last field, with whitespace, chunked
// (docs/protocol.md §3.3) and each chunk fragmented with pings between
// the fragments.
func TestJoinReferenceStyleSync(t *testing.T) {
	var messages []string // ≈ 2.7 MB: chunks over largeFrameBytes, glued in a growing buffer
	for i := range 20_000 {
		messages = append(messages, syncMessagesFixture[i%len(syncMessagesFixture)])
	}
	sync := spaced(buildSync(messages, 1, envelopeOrders[5]), "\n")
	cuts := []int{len(sync) / 3, 2 * len(sync) / 3}
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close()
	served := make(chan error, 1)
	go func() {
		served <- func() error {
			conn, err := listener.Accept()
			if err != nil {
				return err
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := ws.Upgrade(conn); err != nil {
				return err
			}
			reader := bufio.NewReader(conn)
			join, err := ws.ReadFrame(reader)
			if err != nil {
				return err
			}
			ws.Cipher(join.Payload, join.Header.Mask, 0)
			if e, err := scanEnvelope(join.Payload); err != nil || e.action != "JOIN" {
				return fmt.Errorf("JOIN frame %q: %+v %v", join.Payload, e, err)
			}
			var out []byte
			out = append(out, serverFrame(ws.OpPing, true, "hello")...)
			out = append(out, serverFrame(ws.OpText, true, `{"id":"s","action":"TICK","args":61999}`)...)
			for _, chunk := range chunkFrames(sync, cuts...) {
				half := len(chunk) / 2
				out = append(out, serverFrame(ws.OpText, false, chunk[:half])...)
				out = append(out, serverFrame(ws.OpPing, true, "mid")...)
				out = append(out, serverFrame(ws.OpContinuation, true, chunk[half:])...)
			}
			if _, err := conn.Write(out); err != nil {
				return err
			}
			// Wait for the client's pongs and close.
			_, err = io.Copy(io.Discard, reader)
			return err
		}()
	}()
	run := &latencyRun{config: LatencyConfig{URL: "ws://" + listener.Addr().String() + "/reflector", IOTimeout: 10 * time.Second}}
	joiner := &loadClient{run: run, sessionID: "s", viewID: "bench-joiner-0"}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := joiner.dial(ctx); err != nil {
		t.Fatal(err)
	}
	var gotBytes, gotMessages int
	_, err = joiner.join(func(frame []byte, count int, received time.Time) error {
		gotBytes, gotMessages = len(frame), count
		return nil
	})
	joiner.frames.release()
	joiner.close()
	if err != nil {
		t.Fatalf("join: %v", err)
	}
	if gotBytes != len(sync) || gotMessages != len(messages) || joiner.lastSeq != 5 {
		t.Fatalf("SYNC of %d bytes with %d messages, seq %d; want %d bytes, %d messages, seq 5",
			gotBytes, gotMessages, joiner.lastSeq, len(sync), len(messages))
	}
	if err := <-served; err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("server: %v", err)
	}
}

// FuzzScanEnvelope compares the scanner with encoding/json on any input:
// the same frames are accepted and the same fields read.
func FuzzScanEnvelope(f *testing.F) {
	f.Add(buildSync(syncMessagesFixture, 1, envelopeOrders[0]))
	f.Add(spaced(buildSync(syncMessagesFixture[:3], 0, envelopeOrders[4]), "\n "))
	f.Add(`{"id":"s","action":"SYNC","args":{"url":"","messages":[],"time":1,"seq":4294967280}}`)
	f.Add(`{"id":"s","action":"TICK","args":12345}`)
	f.Add(`{"args":{"seq":1e3,"messages":[[1,2,"\u005d",[{}]],"x"]},"action":"\u0053YNC"}`)
	f.Add(`{"id":"s","action":"SYNC","args":{"messages":[[1,2,"a"]`)
	for _, message := range syncMessagesFixture {
		f.Add(`{"action":"SYNC","args":{"messages":[` + message + `],"seq":1}}`)
	}
	f.Fuzz(func(t *testing.T, frame string) {
		got, err := scanEnvelope([]byte(frame))
		reference, ok := decodeEnvelope([]byte(frame))
		if err != nil && strings.Contains(err.Error(), "nested deeper") {
			return // encoding/json allows 10,000 levels
		}
		if (err == nil) != ok {
			t.Fatalf("scanEnvelope error %v, encoding/json accepts: %v", err, ok)
		}
		if !ok {
			return
		}
		if !utf8.ValidString(frame) {
			// encoding/json replaces invalid UTF-8 in the action.
			got.action, reference.action = "", ""
		}
		if got != reference {
			t.Fatalf("scanEnvelope = %+v, encoding/json %+v", got, reference)
		}
	})
}

// BenchmarkScanSync scans a SYNC of 50,000 messages of 64-byte payloads,
// the size of the join scenario's largest runs (≈ 4 MB).
func BenchmarkScanSync(b *testing.B) {
	var messages []string
	for i := range 50_000 {
		messages = append(messages, fmt.Sprintf(`[%d,%d,"b:0:%d:123456789:%s",0]`, 60000+i, 4294967281+i, i, strings.Repeat("x", 40)))
	}
	frame := []byte(buildSync(messages, 1, envelopeOrders[0]))
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		if count, err := countSyncMessages(frame); err != nil || count != len(messages) {
			b.Fatal(count, err)
		}
	}
}
