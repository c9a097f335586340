package server

import (
	"encoding/json"
	"math"
	"time"
)

// The JSON the admin listener answers with (admin.go), built from a
// session's last published statistics (admin_stats.go) at the time of
// the request: what changes with time alone is extrapolated here.

// sessionSummary is one session of the JSON list (GET /sessions).
type sessionSummary struct {
	ID    string `json:"id"`
	AppID string `json:"appId,omitempty"`
	Name  string `json:"name,omitempty"`
	// Started: a JOIN created the session's island, or it was restored
	// from storage. Loading: the session's actor has published nothing yet.
	Started        bool   `json:"started"`
	Loading        bool   `json:"loading,omitempty"`
	StorageFailure string `json:"storageFailure,omitempty"`
	// Connections counts the session's connections, joined or not, and
	// Members the synced ones; both include members waiting out their
	// leave delay (the reflector's counts).
	Connections int `json:"connections"`
	Members     int `json:"members"`
	// InputsPerSecond: messages stamped per second (client messages, and
	// the reflector's users and tally messages) over the last 1-2 s.
	InputsPerSecond float64 `json:"inputsPerSecond"`
	// Seq is the sequence number of the last stamped message; Stamped
	// the number of messages stamped on this timeline (seq − SeqInitial).
	Seq     uint32 `json:"seq"`
	Stamped uint32 `json:"stamped"`
	// SessionTimeMs is the session time now.
	SessionTimeMs int64 `json:"sessionTimeMs"`
	// BufferedMessages are the messages kept since the last snapshot, for
	// the SYNC of later joiners; BufferedBytes their size in a SYNC.
	BufferedMessages int `json:"bufferedMessages"`
	BufferedBytes    int `json:"bufferedBytes"`
	// SnapshotAgeMs is the session time since the state of the current
	// snapshot; null when the session has none.
	SnapshotAgeMs *int64        `json:"snapshotAgeMs"`
	Persisted     persistedJSON `json:"persisted"`
	// DivergedTallies counts the tallies whose voters reported different
	// state hashes (detail: divergence).
	DivergedTallies int `json:"divergedTallies"`
	// RecentCloses is the number of closes listed in the detail.
	RecentCloses int `json:"recentCloses"`
	// StatsAgeMs is how long ago the session last published statistics
	// (it publishes only when something shown changed).
	StatsAgeMs int64 `json:"statsAgeMs"`
}

// persistedJSON is what is known of the session's persisted data
// (docs/protocol.md §9.2). URLs are not shown.
type persistedJSON struct {
	// PersistentID names the application's persisted data; "" when the
	// session has none (its clients cannot SAVE).
	PersistentID string `json:"persistentId,omitempty"`
	// StartedFromPersistedData: the session was created from persisted
	// data (its SYNC names the data, not a snapshot).
	StartedFromPersistedData bool `json:"startedFromPersistedData"`
	// Saves counts the SAVEs stored since the session was loaded.
	Saves         int    `json:"saves"`
	LastSaveAgeMs *int64 `json:"lastSaveAgeMs,omitempty"`
	// PointerStored (detail only): the store holds a persisted-data
	// pointer for the persistentId; PointerError: it could not be read.
	PointerStored *bool  `json:"pointerStored,omitempty"`
	PointerError  string `json:"pointerError,omitempty"`
}

// sessionDetail is one session in detail (GET /sessions/<id>).
type sessionDetail struct {
	sessionSummary
	Timeline string  `json:"timeline,omitempty"`
	Scale    float64 `json:"scale,omitempty"`
	TickMs   float64 `json:"tickMs,omitempty"`
	// MemberList lists the members in connection order, at most
	// statsMembersMax (Connections counts them all).
	MemberList  []memberJSON   `json:"memberList"`
	Snapshot    *snapshotJSON  `json:"snapshot"`
	OpenTallies int            `json:"openTallies"`
	Divergence  divergenceJSON `json:"divergence"`
	// Closes are the last connections that ended, newest first.
	Closes []closeJSON `json:"closes"`
}

type memberJSON struct {
	Conn   uint64 `json:"conn"`
	Remote string `json:"remote,omitempty"`
	// ViewID is the view id the client announced in its JOIN user value;
	// User the value itself (JSON), cut after adminUserBytesMax bytes.
	ViewID string `json:"viewId,omitempty"`
	User   string `json:"user,omitempty"`
	Joined bool   `json:"joined"`
	Synced bool   `json:"synced"`
	// Leaving: the connection is gone, the member waits out its leave
	// delay.
	Leaving bool `json:"leaving,omitempty"`
}

type snapshotJSON struct {
	Time int64  `json:"time"`
	Seq  uint32 `json:"seq"`
	// AgeMs is the session time since the snapshot's state.
	AgeMs int64 `json:"ageMs"`
	// URL is where clients download it, any access token replaced by
	// "<token>".
	URL string `json:"url"`
	// AcceptedAgoMs: how long ago the server accepted it; absent when it
	// was accepted before the session was loaded.
	AcceptedAgoMs *int64 `json:"acceptedAgoMs,omitempty"`
}

type divergenceJSON struct {
	// Checked counts the completed tallies whose votes carry a state hash
	// (the snapshot and persistence votes), Diverged those with more than
	// one hash. Unchecked counts tallies that completed too fast to be
	// looked at. Counted since the session was loaded.
	Checked   int                `json:"checked"`
	Diverged  int                `json:"diverged"`
	Unchecked int                `json:"unchecked,omitempty"`
	Last      *divergedTallyJSON `json:"last"`
}

type divergedTallyJSON struct {
	AgoMs    int64  `json:"agoMs"`
	Key      string `json:"key"`
	SendTime int64  `json:"sendTime"`
	// Time is the session time when the tally completed.
	Time    int64 `json:"time"`
	Missing int   `json:"missingVotes"`
	// Hashes are the state hashes voted for, with their votes and views.
	Hashes []hashVotesJSON `json:"hashes"`
	// Cut: some hashes, views or votes are not listed.
	Cut bool `json:"cut,omitempty"`
}

type hashVotesJSON struct {
	Hash  string   `json:"hash"`
	Votes int      `json:"votes"`
	Views []string `json:"views"`
}

type closeJSON struct {
	AgoMs  int64  `json:"agoMs"`
	Conn   uint64 `json:"conn"`
	Remote string `json:"remote,omitempty"`
	// Code 0: the connection was lost, no close was sent.
	Code   int    `json:"code"`
	Reason string `json:"reason,omitempty"`
}

// summarize returns the summary of a session at wall time now (stats
// nil: not published yet).
func summarize(id string, stats *sessionStats, now time.Time) sessionSummary {
	summary := sessionSummary{ID: id}
	if stats == nil {
		summary.Loading = true
		return summary
	}
	record := &stats.record
	summary.AppID, summary.Name = record.AppID, record.Name
	summary.Started, summary.StorageFailure = stats.started, stats.storageFailure
	summary.Connections, summary.Members = stats.connections, stats.synced
	summary.InputsPerSecond = stats.inputsPerSecond(now)
	summary.Seq, summary.Stamped = record.Seq, stats.stamped
	summary.SessionTimeMs = stats.sessionTimeAt(now)
	summary.BufferedMessages, summary.BufferedBytes = stats.buffered, stats.bufferedBytes
	if stats.started && record.SnapshotTime >= 0 {
		age := summary.SessionTimeMs - record.SnapshotTime
		summary.SnapshotAgeMs = &age
	}
	summary.Persisted = persistedJSON{PersistentID: record.PersistentID,
		StartedFromPersistedData: record.PersistentURL != "" && record.SnapshotURL == "", Saves: stats.saves}
	if !stats.lastSave.IsZero() {
		summary.Persisted.LastSaveAgeMs = agoMs(stats.lastSave, now)
	}
	summary.DivergedTallies = stats.divergence.diverged
	summary.RecentCloses = len(stats.closes)
	summary.StatsAgeMs = msSince(stats.publishedAt, now)
	return summary
}

// describe returns the detail of a session at wall time now.
func describe(id string, stats *sessionStats, now time.Time) sessionDetail {
	detail := sessionDetail{sessionSummary: summarize(id, stats, now), MemberList: []memberJSON{}, Closes: []closeJSON{}}
	if stats == nil {
		return detail
	}
	record := &stats.record
	detail.Timeline, detail.Scale, detail.TickMs = record.Timeline, record.Scale, record.TickMs
	for _, member := range stats.members {
		viewID, user := describeUser(member.view.User)
		detail.MemberList = append(detail.MemberList, memberJSON{Conn: uint64(member.view.Conn), Remote: member.remote,
			ViewID: viewID, User: user, Joined: member.view.Joined, Synced: member.view.Synced, Leaving: !member.view.Connected})
	}
	if age := detail.SnapshotAgeMs; age != nil {
		detail.Snapshot = &snapshotJSON{Time: record.SnapshotTime, Seq: record.SnapshotSeq, AgeMs: *age, URL: redactTokens(record.SnapshotURL)}
		if !stats.snapshotAccepted.IsZero() {
			detail.Snapshot.AcceptedAgoMs = agoMs(stats.snapshotAccepted, now)
		}
	}
	detail.OpenTallies = stats.openTallies
	divergence := &stats.divergence
	detail.Divergence = divergenceJSON{Checked: divergence.checked, Diverged: divergence.diverged, Unchecked: divergence.unchecked}
	if last := divergence.last; last != nil {
		tally := &divergedTallyJSON{AgoMs: msSince(last.at, now), Key: last.key, SendTime: last.sendTime, Time: last.time,
			Missing: last.missing, Cut: last.cut}
		for _, hash := range last.hashes {
			tally.Hashes = append(tally.Hashes, hashVotesJSON{Hash: hash.hash, Votes: hash.votes, Views: append([]string{}, hash.views...)})
		}
		detail.Divergence.Last = tally
	}
	for i := len(stats.closes) - 1; i >= 0; i-- {
		record := &stats.closes[i]
		detail.Closes = append(detail.Closes, closeJSON{AgoMs: msSince(record.at, now), Conn: uint64(record.conn),
			Remote: record.remote, Code: record.code, Reason: record.reason})
	}
	return detail
}

// msSince returns the milliseconds from at to now; agoMs the same as a
// pointer, for optional fields.
func msSince(at, now time.Time) int64 { return now.Sub(at).Milliseconds() }

func agoMs(at, now time.Time) *int64 {
	ago := msSince(at, now)
	return &ago
}

// sessionTimeAt extrapolates the session time to wall time now: it runs
// at Scale times the wall clock.
func (s *sessionStats) sessionTimeAt(now time.Time) int64 {
	if !s.started {
		return 0
	}
	elapsed := float64(now.Sub(s.publishedAt).Milliseconds()) * s.record.Scale
	return s.sessionTime + int64(math.Floor(max(elapsed, 0)))
}

// inputsPerSecond returns the messages stamped per second from the start
// of the rate window to now. A session publishes within
// statsPublishInterval of a change, so nothing was stamped between its
// last publication and now minus that interval.
func (s *sessionStats) inputsPerSecond(now time.Time) float64 {
	end := s.publishedAt
	if quiet := now.Add(-statsPublishInterval); quiet.After(end) {
		end = quiet
	}
	window := end.Sub(s.rateFrom).Seconds()
	if window <= 0 {
		return 0
	}
	rate := float64(s.stamped-s.rateFromStamped) / window
	return math.Round(rate*10) / 10
}

// describeUser returns the view id in a JOIN user value (the JavaScript
// client sends "viewId", ["viewId"] or {"id": "viewId", "data": ...},
// docs/protocol.md §6.1) and the value itself, cut after
// adminUserBytesMax bytes.
func describeUser(user json.RawMessage) (viewID, text string) {
	if user == nil {
		return "", ""
	}
	text = string(user)
	if len(text) > adminUserBytesMax {
		text = text[:adminUserBytesMax] + "…"
	}
	var value any
	if json.Unmarshal(user, &value) != nil {
		return "", text
	}
	switch v := value.(type) {
	case string:
		viewID = v
	case []any:
		if len(v) > 0 {
			viewID, _ = v[0].(string)
		}
	case map[string]any:
		viewID, _ = v["id"].(string)
	}
	return viewID, text
}
