package protocol

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// The fast decoders are checked against the encoding/json path they replace
// (decodeClientFrame and decodeMessage with fast false), which stays in the
// package as their fallback: same frame or message, same *Error.

// fastDecodeSeeds are inputs at the edges of what the fast path handles.
var fastDecodeSeeds = []string{
	`{"action":"SEND","args":[1,2,"p",3]}`,
	`{"action":"SEND","args":[1,2,"p"]}`,
	`{"action":"SEND","args":[1,2,"p", 3 , {"a" : [1, 2]} ]}`,
	`  {"action" : "SEND" , "args" : [ 0 , 0 , "x" , 42 ] }  `,
	`{"Action":"SEND","args":[1,2,"p",3]}`,
	`{"ACTION":"SEND","ARGS":[1,2,"p",3]}`,
	`{"act\u0069on":"SEND","args":[1,2,"p",3]}`,
	`{"action":"SE\u004eD","args":[1,2,"p",3]}`,
	`{"action":"SEND","args":[1,2,"p",3],"action":"PULSE"}`,
	`{"action":"SEND","args":[1,2,"p",3],"args":null}`,
	`{"action":"SEND","ta\u017fs":{"debounce":100,"msgID":"x"},"args":[1,2,"p"]}`,
	`{"action":"SEND","tags":{"debounce":100,"msgID":"snap"},"args":[1,2,"p"]}`,
	`{"action":"SEND","args":[1,2,"p",3],"id":"Oq7ScyMxXY7c","other":[{"x":[true,false,null]}]}`,
	`{"action":"SEND","args":[1,2,{"p":1},3]}`,
	`{"action":"SEND","args":[1,2,"p",1,2,3,4,5,6,7,8,9,10,11,12,13]}`,
	`{"action":"SEND","args":[1,2,"p",1,2,3,4,5,6,7,8,9,10,11,12,13,14]}`,
	`{"action":"SEND","args":[]}`,
	`{"action":"SEND","args":[1,2]}`,
	`{"action":"SEND","args":[1,2,"p",]}`,
	`{"action":"SEND","args":[1,2,"p"]]}`,
	`{"action":"SEND","args":[01,2,"p"]}`,
	`{"action":"SEND","args":[-0.5e+10,2E-3,"p\"\\\/\b\f\n\r\t\u00e9"]}`,
	`{"action":"SEND","args":[1.,2,"p"]}`,
	`{"action":"SEND","args":[-,2,"p"]}`,
	`{"action":"SEND","args":[1,2,"p\x"]}`,
	`{"action":"SEND","args":[1,2,"p\u12"]}`,
	`{"action":"SEND","args":[1,2,"p"` + "\t\n\r" + `]}`,
	`{"action":"SEND","args":[1,2,"é"],"é":1}`,
	`{"action":"SEND","args":[1,2,"p"]} x`,
	`{"action":"SEND","args":[1,2,"p"]}{}`,
	`{"action":"SEND","args":[1,2,"p"] "x":1}`,
	`{"action":SEND}`,
	`{"action":null}`,
	`{"action":1}`,
	`{}`,
	`{ }`,
	`{"action":"PULSE"}`,
	`{"action":"SEND","args":[1,2,"p",[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`,
	`{"action":"SEND","args":[1,2,"p",tru]}`,
	`{"action":"SEND","args":[1,2,"p",nul]}`,
	`[1,2,"p",3]`,
	` [1,2,"p",3] `,
	`"SEND"`,
	"{\"action\":\"SEND\",\"args\":[1,2,\"p\x01\"]}",
	"{\"action\":\"SE\xffND\",\"args\":[1,2,\"p\xff\"]}",
}

func addFastDecodeSeeds(f *testing.F) {
	paths, err := filepath.Glob(filepath.Join("testdata", "frames", "*.json"))
	if err != nil {
		f.Fatal(err)
	}
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, seed := range fastDecodeSeeds {
		f.Add([]byte(seed))
	}
}

// checkFastDecode checks every fast decoder on data against its reference.
func checkFastDecode(t *testing.T, data []byte) {
	t.Helper()
	frame, err := decodeClientFrame(data, true)
	wantFrame, wantErr := decodeClientFrame(data, false)
	if !reflect.DeepEqual(err, wantErr) || !reflect.DeepEqual(frame, wantFrame) {
		t.Fatalf("DecodeClientFrame(%q)\nfast:      %#v, %v\nreference: %#v, %v", data, frame, err, wantFrame, wantErr)
	}
	raws := [][]byte{data}
	if frame.Args != nil {
		raws = append(raws, frame.Args)
	}
	for _, raw := range raws {
		message, err := decodeMessage("args", raw, true)
		wantMessage, wantErr := decodeMessage("args", raw, false)
		if !reflect.DeepEqual(err, wantErr) || !reflect.DeepEqual(message, wantMessage) {
			t.Fatalf("DecodeMessage(%q)\nfast:      %#v, %v\nreference: %#v, %v", raw, message, err, wantMessage, wantErr)
		}
	}

	// The scanners on their own: what they accept, encoding/json accepts
	// with the same values.
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) > 0 && trimmed[0] == '{' {
		if envelope, ok := scanEnvelope(trimmed); ok {
			var want rawEnvelope
			if err := json.Unmarshal(data, &want); err != nil {
				t.Fatalf("scanEnvelope accepted %q, encoding/json: %v", data, err)
			}
			for _, pair := range [][2]json.RawMessage{{envelope.Action, want.Action}, {envelope.Args, want.Args}, {envelope.Tags, want.Tags}} {
				if !bytes.Equal(pair[0], pair[1]) || (pair[0] == nil) != (pair[1] == nil) {
					t.Fatalf("scanEnvelope(%q) = %q, encoding/json %q", data, pair[0], pair[1])
				}
			}
		}
	}
	end := scanValue(data, 0, 0)
	valid := json.Valid(data)
	if end == len(data) && !valid {
		t.Fatalf("scanValue accepted %q, encoding/json does not", data)
	}
	// ... and the fast path does not give up on ordinary valid JSON (an
	// upper bound of the nesting depth is the number of brackets).
	depthBound := bytes.Count(data, []byte("[")) + bytes.Count(data, []byte("{"))
	if valid && depthBound < fastScanDepthMax && len(data) > 0 && !isJSONSpace(data[0]) && !isJSONSpace(data[len(data)-1]) && end != len(data) {
		t.Fatalf("scanValue(%q) = %d, want %d", data, end, len(data))
	}
	if value, ok := unquoteFast(data); ok {
		want, wantOK := unquoteJSON(data)
		if !wantOK || value != want {
			t.Fatalf("unquoteFast(%q) = %q, encoding/json %q, %v", data, value, want, wantOK)
		}
	}
}

func TestFastDecodeMatchesReference(t *testing.T) {
	for _, seed := range fastDecodeSeeds {
		checkFastDecode(t, []byte(seed))
	}
	paths, err := filepath.Glob(filepath.Join("testdata", "frames", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		checkFastDecode(t, data)
		// Every prefix (a frame cut short) and every frame with one byte
		// dropped goes through the same comparison.
		for cut := range data {
			checkFastDecode(t, data[:cut])
			checkFastDecode(t, append(append([]byte(nil), data[:cut]...), data[cut+1:]...))
		}
	}
}

// TestFastDecodeTakesFastPath makes sure the fast path does not silently
// fall back for the frames it exists for.
func TestFastDecodeTakesFastPath(t *testing.T) {
	frames := []string{"send.json", "send-debounce.json", "pulse.json"}
	for _, name := range frames {
		data, err := os.ReadFile(filepath.Join("testdata", "frames", name))
		if err != nil {
			t.Fatal(err)
		}
		envelope, ok := scanEnvelope(bytes.TrimLeft(data, " \t\r\n"))
		if !ok {
			t.Fatalf("%s: scanEnvelope fell back", name)
		}
		if _, ok := knownAction(envelope.Action); !ok {
			t.Fatalf("%s: action %s not known", name, envelope.Action)
		}
		if strings.HasPrefix(name, "send") {
			if _, ok := decodeMessageFast(envelope.Args); !ok {
				t.Fatalf("%s: decodeMessageFast fell back on %s", name, envelope.Args)
			}
		}
	}
}

// TestFastDecodeDoesNotAlias checks that a decoded frame survives the
// reuse of the read buffer (the server reads the next frame into it).
func TestFastDecodeDoesNotAlias(t *testing.T) {
	data := []byte(`{"action":"SEND","args":[1,2,"payload",3]}`)
	frame, err := DecodeClientFrame(data)
	if err != nil {
		t.Fatal(err)
	}
	for i := range data {
		data[i] = 'x'
	}
	message, err := DecodeMessage("args", frame.Args)
	if err != nil {
		t.Fatal(err)
	}
	if string(message.Payload) != `"payload"` || len(message.Extra) != 1 || string(message.Extra[0]) != "3" {
		t.Fatalf("decoded message %+v changed with the input buffer", message)
	}
	// An append to the payload must not overwrite the args after it.
	_ = append(message.Payload, "!!!!"...)
	if string(message.Extra[0]) != "3" {
		t.Fatalf("append to the payload overwrote the extra element: %s", message.Extra[0])
	}
}

// FuzzFastDecode compares the fast decoders with the encoding/json
// reference on random input.
func FuzzFastDecode(f *testing.F) {
	addFastDecodeSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		checkFastDecode(t, data)
	})
}
