package snapshotgc

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestSnapshotDirectory(t *testing.T) {
	tests := []struct {
		path, directory, session string
		ok                       bool
	}{
		{"snapshots/sid/0000000010_1-abc.snap", "snapshots/sid", "sid", true},
		{"snapshots/sid/deeper/file", "snapshots/sid", "sid", true},
		{"apps/app/snap/code/pid.sid/0000000010_1.hash", "apps/app/snap/code/pid.sid", "sid", true},
		{"apps/app/snap/code/pid.s.id/0000000010_1.hash", "apps/app/snap/code/pid.s.id", "", true}, // ambiguous
		{"apps/app/snap/code/nodot/0000000010_1.hash", "apps/app/snap/code/nodot", "", true},
		{"snapshots/file", "", "", false},
		{"apps/app/pid/save/hash", "", "", false},
		{"apps/app/pid/data/hash", "", "", false},
		{"apps/app/snap/code/pid.sid", "", "", false},
		{"other/x/y", "", "", false},
	}
	for _, test := range tests {
		directory, session, ok := SnapshotDirectory(test.path)
		if directory != test.directory || session != test.session || ok != test.ok {
			t.Errorf("SnapshotDirectory(%q) = %q, %q, %v; want %q, %q, %v", test.path, directory, session, ok, test.directory, test.session, test.ok)
		}
	}
}

func TestParseName(t *testing.T) {
	tests := []struct {
		name string
		time int64
		ok   bool
	}{
		{"0000006218_4294967283-kzR8aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.snap", 6218, true},
		{"0000000100_5-0123456789abcdef.snap", 100, true},
		{"0000006218_4294967283.kzR8aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 6218, true},
		{"12345678901_0-hash.snap", 12345678901, true},
		{"6218_1-hash.snap", 0, false}, // not padded
		{"0000006218_-hash.snap", 0, false},
		{"0000006218_1", 0, false},
		{"0000006218_1-", 0, false},
		{"000000621x_1-hash.snap", 0, false},
		{"limit.snap", 0, false},
		{"", 0, false},
	}
	for _, test := range tests {
		if time, ok := ParseName(test.name); time != test.time || ok != test.ok {
			t.Errorf("ParseName(%q) = %d, %v; want %d, %v", test.name, time, ok, test.time, test.ok)
		}
	}
}

func TestNameOfURL(t *testing.T) {
	for url, want := range map[string]string{
		"http://h:8888/files/snapshots/sid/0000000010_1-h.snap":        "0000000010_1-h.snap",
		"https://h/k/tok/files/apps/a/snap/c/p.s/0000000010_1.h?x=1#y": "0000000010_1.h",
		"http://h/files/snapshots/sid/a%20b":                           "a b",
		"sim://snapshots/s/0000000010_1-h.snap":                        "0000000010_1-h.snap",
		"u":                                                            "u",
	} {
		if got := NameOfURL(url); got != want {
			t.Errorf("NameOfURL(%q) = %q, want %q", url, got, want)
		}
	}
}

// name is a JavaScript client's snapshot name at time.
func name(time int64) string { return fmt.Sprintf("%010d_%d-hash%d.snap", time, time, time) }

func file(time, modifiedMs int64) File {
	return File{Path: "snapshots/s/" + name(time), Bytes: 10, ModifiedMs: modifiedMs}
}

func paths(files []File) []string {
	var result []string
	for _, f := range files {
		result = append(result, f.Path)
	}
	return result
}

// TestCollectable: the decision, case by case. Keep margin 100 ms.
func TestCollectable(t *testing.T) {
	const keep = 100
	files := []File{
		file(10, 0), file(20, 0), file(30, 0), file(40, 0), // uploaded long ago
		file(50, 0),   // newer than every reference: not announced yet
		file(15, 990), // stored 10 ms ago with an old name
		{Path: "snapshots/s/notes.txt", ModifiedMs: 0},
		{Path: "snapshots/s/0000000005_1-lying.snap", ModifiedMs: 0}, // a reference whose name lies
	}
	tests := []struct {
		name    string
		history []Reference
		want    []string
	}{
		{"nothing observed", nil, nil},
		{"the reference was observed too recently", []Reference{{Time: 30, Name: name(30), SinceMs: 950}}, nil},
		{"the reference aged: everything older goes", []Reference{{Time: 30, Name: name(30), SinceMs: 900}},
			[]string{"snapshots/s/" + name(10), "snapshots/s/" + name(20), "snapshots/s/0000000005_1-lying.snap"}},
		{"the anchor is the newest aged reference, not the newest", []Reference{
			{Time: 20, Name: name(20), SinceMs: 800},
			{Time: 30, Name: name(30), SinceMs: 850},
			{Time: 40, Name: name(40), SinceMs: 950},
		}, []string{"snapshots/s/" + name(10), "snapshots/s/" + name(20), "snapshots/s/0000000005_1-lying.snap"}},
		{"a remembered reference is kept whatever its name says", []Reference{
			{Time: 20, Name: name(20), SinceMs: 800},
			{Time: 35, Name: "0000000005_1-lying.snap", SinceMs: 950},
		}, []string{"snapshots/s/" + name(10)}},
		{"unless the anchor replaced it", []Reference{
			{Time: 8, Name: "0000000005_1-lying.snap", SinceMs: 700},
			{Time: 30, Name: name(30), SinceMs: 900},
		}, []string{"snapshots/s/" + name(10), "snapshots/s/" + name(20), "snapshots/s/0000000005_1-lying.snap"}},
	}
	for _, test := range tests {
		if got := paths(Collectable(files, test.history, 1000, keep)); !slices.Equal(got, test.want) {
			t.Errorf("%s: Collectable = %q, want %q", test.name, got, test.want)
		}
	}
}

func TestReferences(t *testing.T) {
	var r References
	if r.Has("s") || len(r.History("s")) != 0 {
		t.Fatal("an empty References remembers something")
	}
	r.Observe("s", 10, name(10), 100)
	r.Observe("s", 10, name(10), 500) // again: keeps the first time
	r.Observe("s", 20, name(20), 600)
	r.Observe("t", 5, name(5), 100)
	if got := r.History("s"); !slices.Equal(got, []Reference{{10, name(10), 100}, {20, name(20), 600}}) {
		t.Errorf("History = %v", got)
	}
	if got := r.Sessions(); !slices.Equal(got, []string{"s", "t"}) {
		t.Errorf("Sessions = %v", got)
	}
	// At 650 with a margin of 100 only the first is an anchor: the second
	// still waits, so both stay... the first as the anchor.
	r.Collected("s", 650, 100)
	if got := r.History("s"); len(got) != 2 {
		t.Errorf("after Collected at 650: %v, want both", got)
	}
	// At 700 the second is the anchor and nothing waits: forgotten.
	r.Collected("s", 700, 100)
	if r.Has("s") {
		t.Errorf("after Collected at 700: %v, want the session forgotten", r.History("s"))
	}
	r.Forget("t")
	if r.Has("t") {
		t.Error("Forget kept the session")
	}
	for i := range HistoryMax + 5 {
		r.Observe("u", int64(i), name(int64(i)), int64(i))
	}
	if got := r.History("u"); len(got) != HistoryMax || got[0].Time != 5 {
		t.Errorf("past HistoryMax: %d references from time %d, want %d from 5", len(got), got[0].Time, HistoryMax)
	}
}

// TestNoSyncNamesACollectedSnapshot plays random sessions: clients upload
// snapshots (some never announced), the reflector accepts SNAPs and sends
// SYNCs naming its current snapshot, the shell observes each accepted SNAP
// some time later (when it is durable) and collects at random moments,
// forgetting its references now and then (a restart, a failed commit:
// the next observation starts over). A SYNC is used up to syncUseMs after
// it was sent; the keep margin is longer. No file named by a SYNC may be
// deleted before the SYNC was used.
func TestNoSyncNamesACollectedSnapshot(t *testing.T) {
	const syncUseMs, keepMs = 400, 500
	for seed := range uint64(200) {
		random := rand.New(rand.NewPCG(seed, 1))
		var references References
		files := map[string]int64{}   // path → stored at
		deleted := map[string]int64{} // path → deleted at
		lastUse := map[string]int64{} // name → the latest a SYNC naming it may be used
		current, currentName := int64(-1), ""
		time := int64(0)
		pendingObservation := []Reference{}
		for now := int64(0); now < 20_000; now += 1 + random.Int64N(50) {
			switch random.IntN(10) {
			case 0, 1: // an upload, announced at once or never
				time += 1 + random.Int64N(100)
				path := "snapshots/s/" + name(time)
				files[path] = now
				if random.IntN(4) > 0 {
					current, currentName = time, name(time)
					pendingObservation = append(pendingObservation, Reference{Time: time, Name: currentName, SinceMs: -1})
				}
			case 2, 3, 4: // a SYNC naming the current snapshot
				if current >= 0 {
					lastUse[currentName] = now + syncUseMs
					if at, gone := deleted["snapshots/s/"+currentName]; gone {
						t.Fatalf("seed %d: at %d a SYNC names %s, deleted at %d", seed, now, currentName, at)
					}
				}
			case 5, 6: // the commits become durable: the shell observes the newest
				if n := len(pendingObservation); n > 0 {
					last := pendingObservation[n-1]
					references.Observe("s", last.Time, last.Name, now)
					pendingObservation = pendingObservation[:0]
				}
			case 7: // collect
				var list []File
				for _, path := range slices.Sorted(maps.Keys(files)) {
					list = append(list, File{Path: path, ModifiedMs: files[path]})
				}
				for _, f := range Collectable(list, references.History("s"), now, keepMs) {
					n := f.Path[len("snapshots/s/"):]
					if use, ok := lastUse[n]; ok && use > now {
						t.Fatalf("seed %d: at %d collects %s, which a SYNC may still use until %d", seed, now, f.Path, use)
					}
					if n == currentName {
						t.Fatalf("seed %d: at %d collects the current snapshot %s", seed, now, f.Path)
					}
					delete(files, f.Path)
					deleted[f.Path] = now
				}
				references.Collected("s", now, keepMs)
			case 8:
				if random.IntN(10) == 0 {
					references.Forget("s")
				}
			}
		}
	}
}
