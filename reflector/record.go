package reflector

import (
	"encoding/json"
	"fmt"

	"github.com/metronome-sync/metronome/protocol"
)

// Record is the durable state of a session (the "savable" island fields of
// docs/protocol.md §7.1, without the messages, which are stored as a log beside it).
type Record struct {
	ID           string `json:"id"`
	Name         string `json:"name,omitempty"`
	AppID        string `json:"appId,omitempty"`
	PersistentID string `json:"persistentId,omitempty"`
	Timeline     string `json:"timeline"`
	Tove         string `json:"tove,omitempty"`
	Location     bool   `json:"location,omitempty"`
	// Time is the session time when the record was written; TimeReserved
	// is a lease: the session never stamps or ticks beyond it without first
	// writing a new record, so after a crash time resumes at TimeReserved.
	Time         int64   `json:"time"`
	TimeReserved int64   `json:"timeReserved"`
	Seq          uint32  `json:"seq"`
	Scale        float64 `json:"scale"`
	TickMs       float64 `json:"tick"`
	DelayMs      float64 `json:"delay"`
	// SnapshotTime is -1 when there is no snapshot.
	SnapshotTime     int64            `json:"snapshotTime"`
	SnapshotSeq      uint32           `json:"snapshotSeq"`
	SnapshotURL      string           `json:"snapshotUrl"`
	PersistentURL    string           `json:"persistentUrl,omitempty"`
	LastTick         int64            `json:"lastTick"`
	LastMessageTime  int64            `json:"lastMsgTime"`
	CompletedTallies []CompletedTally `json:"completedTallies,omitempty"`
	// TalliesForgottenSendTime is the newest sendTime of a completed tally
	// dropped from CompletedTallies; votes up to it are refused.
	TalliesForgottenSendTime int64 `json:"talliesForgottenSendTime,omitempty"`
}

// CompletedTally remembers a finished TUTTI so late votes are ignored.
type CompletedTally struct {
	Key      string `json:"key"`
	SendTime int64  `json:"sendTime"`
}

func (r *Record) encode() []byte {
	data, err := json.Marshal(r)
	if err != nil {
		// A Record has only plain fields; failure is a bug.
		panic(fmt.Sprintf("reflector: encoding record: %v", err))
	}
	return data
}

// DecodeRecord parses a stored record.
func DecodeRecord(data []byte) (Record, error) {
	var record Record
	if err := json.Unmarshal(data, &record); err != nil {
		return Record{}, fmt.Errorf("reflector: stored record is not valid: %w", err)
	}
	if record.Timeline == "" {
		return Record{}, fmt.Errorf("reflector: stored record has no timeline")
	}
	if record.SnapshotTime >= 0 && record.SnapshotURL == "" {
		// A snapshot is only ever recorded with its URL: a damaged record
		// (a renamed key reads as 0) must not pass for one whose snapshot
		// covers the messages before it.
		return Record{}, fmt.Errorf("reflector: stored record has a snapshot at time %d without a URL", record.SnapshotTime)
	}
	if record.Scale <= 0 {
		record.Scale = 1
	}
	if record.TickMs <= 0 {
		record.TickMs = protocol.TickMsDefault
	}
	return record, nil
}
