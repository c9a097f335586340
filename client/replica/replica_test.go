package replica_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/metronome-sync/metronome/client/island"
	"github.com/metronome-sync/metronome/client/link"
	"github.com/metronome-sync/metronome/client/replica"
	"github.com/metronome-sync/metronome/protocol"
)

// counter is a tiny model: it counts "add" events.
type counter struct{ N int }

var app = island.App[counter]{ID: "test.counter", Version: "1", SnapshotIntervalMs: 5000,
	Events: map[string]island.Handler[counter]{
		"add": func(m *counter, _ *island.Context, _ island.Event) { m.N++ },
	}}

// shell records what the replica asked of it.
type shell struct {
	log         []string
	downloads   []string
	failed      error
	frames      [][]byte
	uploads     []island.Upload
	divergences []island.Divergence
	votes       int
}

func (s *shell) Dial(conn link.ConnID)               { s.log = append(s.log, fmt.Sprintf("dial %d", conn)) }
func (s *shell) Send(conn link.ConnID, frame []byte) { s.frames = append(s.frames, frame) }
func (s *shell) Close(conn link.ConnID, code int, _ string) {
	s.log = append(s.log, fmt.Sprintf("close %d %d", conn, code))
}
func (s *shell) Download(url string)                   { s.downloads = append(s.downloads, url) }
func (s *shell) Upload(upload island.Upload, _ []byte) { s.uploads = append(s.uploads, upload) }

type plainCodec struct{}

func (plainCodec) Seal(e island.Envelope) (json.RawMessage, error) {
	data, err := island.Encode(e)
	if err != nil {
		return nil, err
	}
	return json.Marshal(base64.StdEncoding.EncodeToString(data))
}
func (plainCodec) Open(payload json.RawMessage) (island.Envelope, error) {
	var text string
	var e island.Envelope
	if err := json.Unmarshal(payload, &text); err != nil {
		return e, err
	}
	data, err := base64.StdEncoding.DecodeString(text)
	if err != nil {
		return e, err
	}
	err = island.Decode(data, &e)
	return e, err
}
func (plainCodec) SealSnapshot(data []byte) []byte            { return data }
func (plainCodec) OpenSnapshot(sealed []byte) ([]byte, error) { return sealed, nil }
func (plainCodec) CheckTove(string) error                     { return nil }

func (s *shell) Reset(sync *protocol.ServerSync, restored bool) error {
	s.log = append(s.log, fmt.Sprintf("reset %q restored=%v", sync.URL, restored))
	return nil
}
func (s *shell) Applied(_ string, seq uint32, _ func() string) error {
	s.log = append(s.log, fmt.Sprintf("applied %d", seq))
	return nil
}
func (s *shell) Unusable(uint32, error) error { return nil }
func (s *shell) Voted(int64, string)          { s.votes++ }
func (s *shell) Emitted(string, []byte)       {}
func (s *shell) Diverged(d island.Divergence) error {
	s.divergences = append(s.divergences, d)
	return nil
}
func (s *shell) ModelError(error) error { return nil }
func (s *shell) Joined()                {}
func (s *shell) Note(string)            {}
func (s *shell) Failed(err error)       { s.failed = err }

func newReplica(t *testing.T, s *shell) *replica.Replica[counter] {
	t.Helper()
	r, err := replica.New(replica.Options[counter]{App: app, Link: link.Config{SessionID: "S", ViewID: "v1", Seed: 1},
		Transport: s, Files: s, Codec: plainCodec{}, Observer: s})
	if err != nil {
		t.Fatal(err)
	}
	r.Step(0, link.Start{})
	r.Step(0, link.Opened{Conn: 1})
	return r
}

// snapshotOf returns a snapshot of a counter at n, time 900, seq 4294967290.
func snapshotOf(t *testing.T, n int) []byte {
	t.Helper()
	var out island.Effects
	i := island.New(app, "v0", &out)
	add, err := plainCodec{}.Seal(island.Envelope{Kind: island.KindEvent, Name: "add"})
	if err != nil {
		t.Fatal(err)
	}
	envelope, _ := plainCodec{}.Open(add)
	for k := range n {
		i.Apply(island.Message{Time: 900, Seq: 4294967290 - uint32(n) + uint32(k) + 1, Envelope: &envelope}, &out)
	}
	data, _ := i.Snapshot()
	return data
}

func recv(t *testing.T, seq uint32) []byte {
	t.Helper()
	payload, err := plainCodec{}.Seal(island.Envelope{Kind: island.KindEvent, Name: "add"})
	if err != nil {
		t.Fatal(err)
	}
	return protocol.AppendRecv(nil, "S", protocol.AppendMessage(nil, 1000, seq, payload, nil))
}

// TestSnapshotDownloadIsAnEvent: a SYNC from a snapshot asks Files for it
// and holds the messages that follow until SnapshotLoaded; then they are
// applied in order on the restored model.
func TestSnapshotDownloadIsAnEvent(t *testing.T) {
	s := &shell{}
	r := newReplica(t, s)
	sync := &protocol.Sync{URL: "files/snap", Time: 950, Seq: 4294967291, Timeline: "tl", HasSnapshot: true,
		SnapshotTime: 900, SnapshotSeq: 4294967290, Messages: [][]byte{protocol.AppendMessage(nil, 950, 4294967291, mustSeal(t), nil)}}
	r.Step(10, link.Received{Conn: 1, Data: protocol.AppendSync(nil, "S", sync)})
	r.Step(20, link.Received{Conn: 1, Data: recv(t, 4294967292)})
	if len(s.downloads) != 1 || s.downloads[0] != "files/snap" {
		t.Fatalf("downloads %q, want the snapshot", s.downloads)
	}
	if r.Island() != nil || strings.Contains(strings.Join(s.log, "\n"), "applied") {
		t.Fatalf("messages applied before the snapshot was loaded: %q", s.log)
	}
	r.Step(30, replica.SnapshotLoaded{URL: "files/other", Data: []byte("junk")})
	if r.Island() != nil || r.Failed() != nil {
		t.Fatal("a download the replica is not waiting for was used")
	}
	r.Step(40, replica.SnapshotLoaded{URL: "files/snap", Data: snapshotOf(t, 3)})
	if r.Island() == nil || r.Island().Model().N != 5 {
		t.Fatalf("after the snapshot: model %+v, want 3 + the 2 held messages", r.Island())
	}
	want := `reset "files/snap" restored=true` + "\napplied 4294967291\napplied 4294967292"
	if got := strings.Join(s.log[1:], "\n"); got != want {
		t.Errorf("log\n%s\nwant\n%s", got, want)
	}
	if !r.FromSnapshot() {
		t.Error("FromSnapshot is false")
	}
}

// TestFailedDownloadStopsTheReplica: a snapshot that cannot be loaded is
// fatal: the connection is closed with 4200 and the Observer told.
func TestFailedDownloadStopsTheReplica(t *testing.T) {
	s := &shell{}
	r := newReplica(t, s)
	sync := &protocol.Sync{URL: "files/snap", Time: 950, Seq: 4294967290, Timeline: "tl", HasSnapshot: true,
		SnapshotTime: 900, SnapshotSeq: 4294967290}
	r.Step(10, link.Received{Conn: 1, Data: protocol.AppendSync(nil, "S", sync)})
	r.Step(20, replica.SnapshotLoaded{URL: "files/snap", Err: errors.New("404")})
	if r.Failed() == nil || s.failed == nil || !strings.Contains(s.failed.Error(), "404") {
		t.Fatalf("failed %v / %v, want the download error", r.Failed(), s.failed)
	}
	if last := s.log[len(s.log)-1]; last != fmt.Sprintf("close 1 %d", protocol.CloseClientFatal) {
		t.Errorf("last transport call %q, want a 4200 close", last)
	}
	if r.NextWake() != link.Never {
		t.Error("a failed replica still wants wakes")
	}
}

func mustSeal(t *testing.T) json.RawMessage {
	t.Helper()
	payload, err := plainCodec{}.Seal(island.Envelope{Kind: island.KindEvent, Name: "add"})
	if err != nil {
		t.Fatal(err)
	}
	return payload
}

// TestSnapshotIntervalLimitsAgree: the least snapshot interval an App may
// ask for is exactly what the islands and the reflector's debounce of the
// link's polls let through; and New refuses an App that asks for less.
func TestSnapshotIntervalLimitsAgree(t *testing.T) {
	limits := []int64{island.SnapshotIntervalMsMin, island.SnapshotPollGapMs, link.PollDebounceMs}
	if limits[0] != limits[1] || limits[0] != limits[2] {
		t.Fatalf("SnapshotIntervalMsMin, SnapshotPollGapMs, PollDebounceMs = %v: they must be equal", limits)
	}
	tooShort := app
	tooShort.SnapshotIntervalMs = island.SnapshotIntervalMsMin - 1
	_, err := replica.New(replica.Options[counter]{App: tooShort, Link: link.Config{SessionID: "S", ViewID: "v"}})
	if err == nil || !strings.Contains(err.Error(), "App.SnapshotIntervalMs") {
		t.Fatalf("New with SnapshotIntervalMs %d: %v", tooShort.SnapshotIntervalMs, err)
	}
}
