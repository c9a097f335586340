// Package snapshotgc decides which uploaded snapshot files may be deleted.
// It is pure — no I/O, no clock, no goroutines: times are milliseconds
// passed in — so that the server (server/snapshotgc.go) and the simulator
// (sim/) run the same rule, and so that the rule is tested on its own. The
// shells list the files, keep the References, and delete what Collectable
// returns.
//
// # What may go
//
// A session's snapshot files live in its snapshot directory
// (SnapshotDirectory): every snapshot its clients uploaded, one of which
// the session's record references (the SNAP accepted last), which every
// SYNC sends to joining clients. A joining client downloads the snapshot
// its SYNC names, and a failed download is fatal for it (close 4200): so a
// snapshot must stay available for a while after it stopped being the
// referenced one, until every SYNC that named it has been used.
//
// How long is that? A client gives up on a SYNC that does not arrive
// within 5 s of its JOIN (JavaScript client: JOIN_FAILED_DELAY; Go SDK:
// link.SyncTimeoutMsDefault), so a SYNC is used within 5 s of being sent.
// The JavaScript client then fetches the snapshot at once, with up to 3
// retries after 0.1 s, 1 s and 5 s; each try that never reaches the
// server may take as long as the operating system takes to give up on a
// TCP connection (Linux: 127 s of SYN retries). Once a GET has reached
// the server, the file is open and deleting it changes nothing for that
// download. So a SYNC's URL must stay valid for 5 s + 4 × 127 s + 6.1 s ≈
// 8.7 min in the worst case, and normally for under a second. The
// server keeps every superseded snapshot for at least
// server.DefaultSnapshotKeepMin (10 min) after the SNAP that superseded it.
//
// Snapshot times only grow: the reflector accepts a SNAP only if its time
// is later than the current snapshot's (docs/protocol.md §6.5), and the
// file names carry that time (ParseName). A Reference records that from
// SinceMs on, the session referenced the snapshot at Time or a later one:
// every file of an earlier time was no longer named by any SYNC sent after
// SinceMs. Once that is KeepMs ago, those files may go (Collectable):
// the anchor is the newest reference seen at least KeepMs ago. Besides,
// a file is always kept if
//
//   - its name does not parse as a snapshot's (not ours to judge);
//   - its time is not earlier than the anchor's (the referenced snapshot,
//     and newer ones uploaded but not announced yet);
//   - its name is the name of a remembered reference not older than the
//     anchor (a client that names its file with another time than its
//     SNAP's; an older reference was replaced before the anchor's
//     SinceMs, whatever its name);
//   - it was stored less than KeepMs ago.
//
// With no anchor nothing goes. Forgetting references is therefore always
// safe, only less thorough: that is how References stays bounded.
package snapshotgc

import (
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// HistoryMax bounds the references remembered per session. A session
// whose clients snapshot every 5 s (the JavaScript client's least
// interval) has 120 references within the default keep margin of 10 min;
// beyond HistoryMax the oldest are forgotten, which delays deletions
// (see the package documentation) but never makes one early.
const HistoryMax = 64

// SnapshotDirectory returns the snapshot directory that holds path and
// the id of the session it belongs to (docs/protocol.md §8.4):
//
//	snapshots/<sessionId>/...                                  (JavaScript client without apiKey, Go SDK)
//	apps/<appId>/snap/<codeHash>/<persistentId>.<sessionId>/... (JavaScript client with an apiKey)
//
// ok is false for any other path. In the second form the session is ""
// unless the segment holds exactly one ".", so that the split is certain
// (persistent ids are base64url: they have none).
func SnapshotDirectory(path string) (directory, session string, ok bool) {
	segments := strings.Split(path, "/")
	switch {
	case len(segments) >= 3 && segments[0] == "snapshots":
		return strings.Join(segments[:2], "/"), segments[1], true
	case len(segments) >= 6 && segments[0] == "apps" && segments[2] == "snap":
		owner := segments[4]
		if strings.Count(owner, ".") == 1 {
			session = owner[strings.IndexByte(owner, '.')+1:]
		}
		return strings.Join(segments[:5], "/"), session, true
	}
	return "", "", false
}

// ParseName returns the session time in a snapshot's file name:
//
//	<time10>_<seq>-<hash>.snap   (JavaScript client without apiKey; Go SDK)
//	<time10>_<seq>.<hash>        (JavaScript client with an apiKey)
//
// where <time10> is the time rounded up and zero-padded to at least 10
// digits. ok is false for any other name.
func ParseName(name string) (time int64, ok bool) {
	digits, rest, found := strings.Cut(name, "_")
	if !found || len(digits) < 10 || !allDigits(digits) {
		return 0, false
	}
	end := strings.IndexAny(rest, "-.")
	if end <= 0 || !allDigits(rest[:end]) || len(rest) == end+1 {
		return 0, false
	}
	time, err := strconv.ParseInt(digits, 10, 64)
	return time, err == nil
}

func allDigits(text string) bool {
	for i := range len(text) {
		if text[i] < '0' || text[i] > '9' {
			return false
		}
	}
	return text != ""
}

// NameOfURL returns the last path segment of a snapshot URL (unescaped),
// the name its file has in the session's snapshot directory.
func NameOfURL(rawURL string) string {
	path := rawURL
	if parsed, err := url.Parse(rawURL); err == nil {
		path = parsed.Path
	}
	return path[strings.LastIndexByte(path, '/')+1:]
}

// Reference is one snapshot a session referenced: the time of its SNAP
// (the record's snapshotTime), the name of its file (NameOfURL of the
// record's snapshotUrl), and SinceMs, a time at which the session already
// referenced it (or a later one) and no SYNC naming an earlier snapshot
// was sent any more. A shell must never use an earlier time than that: it
// uses when it observed the reference durably stored.
type Reference struct {
	Time    int64
	Name    string
	SinceMs int64
}

// File is one file in a session's snapshot directory.
type File struct {
	Path       string
	Bytes      int64
	ModifiedMs int64
}

// Anchor returns the newest (latest Time) reference observed at least
// keepMs before nowMs.
func Anchor(history []Reference, nowMs, keepMs int64) (Reference, bool) {
	var anchor Reference
	found := false
	for _, reference := range history {
		if nowMs-reference.SinceMs >= keepMs && (!found || reference.Time > anchor.Time) {
			anchor, found = reference, true
		}
	}
	return anchor, found
}

// Collectable returns the files of a session's snapshot directories that
// may be deleted at nowMs, given the session's remembered references and
// the keep margin (see the package documentation).
func Collectable(files []File, history []Reference, nowMs, keepMs int64) []File {
	anchor, ok := Anchor(history, nowMs, keepMs)
	if !ok {
		return nil
	}
	var collectable []File
	for _, file := range files {
		name := file.Path[strings.LastIndexByte(file.Path, '/')+1:]
		time, parsed := ParseName(name)
		switch {
		case !parsed, time >= anchor.Time, nowMs-file.ModifiedMs < keepMs:
			continue
		case slices.ContainsFunc(history, func(r Reference) bool { return r.Time >= anchor.Time && r.Name == name }):
			continue
		}
		collectable = append(collectable, file)
	}
	return collectable
}

// References remembers, per session, the references a shell observed. It
// is not safe for concurrent use.
type References struct {
	sessions map[string][]Reference
}

// Observe records that from nowMs on the session references the
// snapshot at time, named name (or a later one). A reference already
// remembered keeps its earlier SinceMs. Past HistoryMax the oldest
// reference is forgotten.
func (r *References) Observe(session string, time int64, name string, nowMs int64) {
	history := r.sessions[session]
	for _, reference := range history {
		if reference.Time == time && reference.Name == name {
			return
		}
	}
	if len(history) == HistoryMax {
		history = slices.Delete(history, 0, 1)
	}
	if r.sessions == nil {
		r.sessions = make(map[string][]Reference)
	}
	r.sessions[session] = append(history, Reference{Time: time, Name: name, SinceMs: nowMs})
}

// History returns a copy of the session's references, oldest first.
func (r *References) History(session string) []Reference {
	return slices.Clone(r.sessions[session])
}

// Has reports whether anything is remembered of the session.
func (r *References) Has(session string) bool { return len(r.sessions[session]) > 0 }

// Forget drops what is remembered of the session: its stored reference
// may have changed without being observed (a failed commit), or its data
// is gone (deleted, or quarantined and restarted on a new timeline).
func (r *References) Forget(session string) { delete(r.sessions, session) }

// Sessions returns the sessions with remembered references, sorted.
func (r *References) Sessions() []string {
	return slices.Sorted(maps.Keys(r.sessions))
}

// Collected prunes the session's references after its files were
// collected at nowMs: references older than the anchor protect nothing
// that may not go, and once every reference is an anchor candidate (all
// observed keepMs ago) there is nothing left to wait for, so the session
// is forgotten until its next snapshot.
func (r *References) Collected(session string, nowMs, keepMs int64) {
	history := r.sessions[session]
	anchor, ok := Anchor(history, nowMs, keepMs)
	if !ok {
		return
	}
	kept := history[:0]
	waiting := false
	for _, reference := range history {
		if reference.Time >= anchor.Time {
			kept = append(kept, reference)
			waiting = waiting || nowMs-reference.SinceMs < keepMs
		}
	}
	if !waiting {
		delete(r.sessions, session)
		return
	}
	r.sessions[session] = kept
}
