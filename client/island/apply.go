package island

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/metronome-sync/metronome/protocol"
)

// Envelope kinds: what a decrypted payload carries.
const (
	KindEvent = 0 // a view's event: Name, Data
	KindPoll  = 1 // a snapshot poll
	// KindSnapshot announces the majority's snapshot of a split vote (Data:
	// a SnapshotAnnouncement), so that the replicas outside the majority
	// can reload it (self-healing, package client/replica). Its uploader
	// sends it as an input; the model ignores it.
	KindSnapshot = 2
)

// SnapshotAnnouncement is the Data of a KindSnapshot envelope: the
// snapshot of the state right after the tally message at Seq (and Time),
// with state hash Hash, is stored at URL.
type SnapshotAnnouncement struct {
	Time int64  `cbor:"time"`
	Seq  uint32 `cbor:"seq"`
	Hash string `cbor:"hash"`
	URL  string `cbor:"url"`
}

// Envelope is the plaintext of a payload that views send (encrypted by the
// session shell): the CBOR array [kind, name, data].
type Envelope struct {
	_    struct{} `cbor:",toarray"`
	Kind int
	Name string
	Data []byte
}

// Message is one reflected message, as the shell hands it to the island.
// Exactly one of Envelope, Users, Tally is set (none: a message the island
// cannot use, which still advances time and seq).
type Message struct {
	Time int64
	Seq  uint32
	// View and Input identify an input (the link's tag); Input is 0 for
	// messages that are not inputs.
	View  string
	Input uint64

	Envelope *Envelope
	// Users is a reflector's users message (docs/protocol.md §7.3, §10):
	// the views that joined and left since the previous one. The reflector
	// builds it; no client can send one. Each entry of Users.Joined and
	// Users.Left is the "user" value of one member's JOIN, as raw JSON,
	// exactly as that client sent it (the reflector only strips
	// whitespace): the Go SDK sends its view id as a JSON string, so an
	// entry reads "k2j4h5g6f7" with the quotes. Other Croquet clients may
	// send any JSON value: the JavaScript client sends its view id as a
	// string, [viewId] when it asked for location, or {"id": viewId,
	// "data": ...} when it has view data. Users.Active and Users.Total
	// (the members present and connected) are not used.
	//
	// The island turns each entry into a view id for EventViewJoin and
	// EventViewExit (Event.View, Context.Views): a JSON string is the view
	// id; an object with a non-empty string "id" has that id; any other
	// value (a number, an array, an object without "id") is its own JSON
	// text, so ["k2j4h5g6f7"] is the view `["k2j4h5g6f7"]`. A view may
	// appear in several joins (one per connection); the model hears of it
	// at the first join and at the last exit.
	Users *protocol.UsersChange
	Tally *protocol.Tally
}

// Effects are what the island asks of its shell, in order.
type Effects struct {
	// Emits are events for the local views (Context.Emit).
	Emits []ViewEvent
	// Votes are snapshot votes to send as TUTTI.
	Votes []Vote
	// Uploads are snapshots this client was chosen to upload and announce
	// with SNAP.
	Uploads []Upload
	// Divergences are disagreements between replicas' state hashes.
	Divergences []Divergence
	// Errors are model failures (panics, bad calls) and unusable messages.
	Errors []error
}

// Reset empties the effects for reuse.
func (e *Effects) Reset() {
	clear(e.Emits)
	e.Emits = e.Emits[:0]
	e.Votes = e.Votes[:0]
	clear(e.Uploads)
	e.Uploads = e.Uploads[:0]
	e.Divergences = e.Divergences[:0]
	e.Errors = e.Errors[:0]
}

// ViewEvent is an event from the model to the local views.
type ViewEvent struct {
	Name string
	Data []byte
}

// Vote is a snapshot vote: TUTTI with Key, at SendTime, payload Payload.
type Vote struct {
	SendTime int64
	Key      string
	Payload  string
}

// Upload is a snapshot to upload and announce.
type Upload struct {
	Time int64
	Seq  uint32
	Hash string
	Data []byte
	// Announce: the vote split and this is the majority's snapshot, so the
	// replicas outside the majority wait for it. Once it is stored, its
	// URL goes to the session in a KindSnapshot input as well as to the
	// reflector in a SNAP (the reflector tells no one of a SNAP).
	Announce bool
}

// Divergence reports replicas whose state hashes differed at a snapshot
// vote. The island fills in the vote; the replica (package client/replica)
// adds what self-healing did about it: Recovered, Repeated, Reason.
type Divergence struct {
	// Time is the vote's session time (the snapshot poll's).
	Time int64
	// Groups are the distinct hashes with the views that voted for each,
	// the majority first.
	Groups []HashGroup
	// Local is true when this replica is not in the majority group.
	Local bool
	// Seq is the tally message's sequence number: the majority's snapshot
	// of this vote is the state right after it.
	Seq uint32
	// Majority: the first group holds more than half of the votes. Only
	// then is a state known to be the session's, and only then does a
	// replica outside it recover.
	Majority bool
	// LocalHash is this replica's vote ("" if it did not vote).
	LocalHash string
	// Suspect, for a Local divergence, is the first message that reached
	// the model's handlers (a view's event, or views joining or leaving)
	// after this replica's state was last known to be the majority's: its
	// last agreeing vote, the snapshot it last started from, or the
	// session's start. The divergence began there or later (a future
	// message run in between may be the cause too). nil if no such message
	// was applied since.
	Suspect *MessageRef
	// Recovered: this replica was outside the majority, reloaded the
	// majority's snapshot, replayed the messages after it, and carries on
	// with the majority's state.
	Recovered bool
	// Repeated: this replica diverged again within
	// replica.RecoveryRepeatTallies votes after recovering: the model
	// keeps diverging (see Suspect).
	Repeated bool
	// Reason says why a Local divergence was not recovered ("" otherwise).
	Reason string
}

// MessageRef names one reflected message, for reports.
type MessageRef struct {
	Seq  uint32
	Time int64
	// What is a short description: `event "add" from view k2j4h5g6f7`,
	// `views joined k2j4h5g6f7; left x8f0a`.
	What string
}

func (m MessageRef) String() string {
	return fmt.Sprintf("seq %d at session time %d (%s)", m.Seq, m.Time, m.What)
}

// HashGroup is the views that voted for one hash.
type HashGroup struct {
	Hash  string
	Views []string
}

func (d Divergence) Error() string {
	parts := make([]string, len(d.Groups))
	for i, group := range d.Groups {
		parts[i] = fmt.Sprintf("%s (%s)", group.Hash, strings.Join(group.Views, ", "))
	}
	text := fmt.Sprintf("replicas diverged at session time %d: state hashes %s", d.Time, strings.Join(parts, " vs "))
	if !d.Local {
		return text
	}
	text += fmt.Sprintf("; this replica (%s) is outside the majority", d.LocalHash)
	switch {
	case d.Recovered:
		text += fmt.Sprintf("; it reloaded the majority's snapshot of seq %d and recovered", d.Seq)
	case d.Reason != "":
		text += "; not recovered: " + d.Reason
	}
	if d.Repeated {
		text += "; it keeps diverging"
	}
	if d.Suspect != nil {
		text += "; the first message since it last agreed with the majority: " + d.Suspect.String()
	}
	return text
}

// Advance moves session time to t (a TICK), running the future messages
// that are due.
func (i *Island[M]) Advance(t int64, out *Effects) {
	i.ctx.out = out
	for len(i.state.Futures) > 0 && i.state.Futures[0].At <= t {
		f := i.state.Futures[0]
		i.state.Futures = i.state.Futures[1:]
		if i.state.Time < f.At {
			i.state.Time = f.At
		}
		i.dispatch(Event{Name: f.Name, Data: f.Data}, out)
	}
	if len(i.state.Futures) == 0 {
		i.state.Futures = nil
	}
	if t > i.state.Time {
		i.state.Time = t
	}
}

// Apply applies the next reflected message: future messages due before
// it run first.
func (i *Island[M]) Apply(m Message, out *Effects) {
	i.Advance(m.Time, out)
	i.state.Seq, i.state.HasSeq = m.Seq, true
	switch {
	case m.Envelope != nil:
		if m.Input != 0 {
			applied := i.state.Inputs[m.View]
			if applied == nil {
				applied = &InputSet{}
				i.state.Inputs[m.View] = applied
			}
			if applied.Has(m.Input) {
				i.state.Duplicates++ // a re-sent input that took effect before
				return
			}
			applied.Add(m.Input)
		}
		switch m.Envelope.Kind {
		case KindEvent:
			i.noteModelMessage(m, func() string { return describeEvent(m.Envelope.Name, m.View) })
			i.dispatch(Event{Name: m.Envelope.Name, View: m.View, Data: m.Envelope.Data}, out)
		case KindPoll:
			i.poll(out)
		case KindSnapshot:
			// For the replica (self-healing): not model state.
		}
	case m.Users != nil:
		i.noteModelMessage(m, func() string { return describeUsers(m.Users) })
		i.users(m.Users, out)
	case m.Tally != nil:
		i.tally(m, out)
	}
}

func (i *Island[M]) dispatch(e Event, out *Effects) {
	handler := i.app.Events[e.Name]
	if handler == nil {
		return
	}
	i.ctx.out = out
	i.call(func() { handler(&i.state.Model, &i.ctx, e) }, out)
}

func (i *Island[M]) users(change *protocol.UsersChange, out *Effects) {
	for _, raw := range change.Joined {
		view := userViewID(raw)
		i.state.Views[view]++
		if i.state.Views[view] == 1 {
			i.dispatch(Event{Name: EventViewJoin, View: view}, out)
		}
	}
	for _, raw := range change.Left {
		view := userViewID(raw)
		if i.state.Views[view] == 0 {
			continue
		}
		i.state.Views[view]--
		if i.state.Views[view] == 0 {
			delete(i.state.Views, view)
			i.dispatch(Event{Name: EventViewExit, View: view}, out)
		}
	}
}

// userViewID reads a user value (Message.Users): a JSON string is the view
// id, an object's non-empty string "id" is, and any other value is its own
// JSON text.
func userViewID(raw json.RawMessage) string {
	var id string
	if json.Unmarshal(raw, &id) == nil {
		return id
	}
	var user struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(raw, &user) == nil && user.ID != "" {
		return user.ID
	}
	return string(raw)
}

// snapshotVote is the vote payload (docs/protocol.md §9.1), stable key order.
type snapshotVote struct {
	CPUTime float64 `json:"cpuTime"`
	Hash    string  `json:"hash"`
	ViewID  string  `json:"viewId"`
}

// SnapshotKeyPrefix starts the TUTTI key of snapshot votes.
const SnapshotKeyPrefix = "snapshot@"

func (i *Island[M]) poll(out *Effects) {
	if i.state.HasSeq && i.state.LastPoll > 0 && i.state.Time-i.state.LastPoll < SnapshotPollGapMs {
		return
	}
	i.state.LastPoll = i.state.Time
	_, hash := i.Snapshot()
	i.lastVoteTime, i.lastVoteHash = i.state.Time, hash
	i.sinceVote = nil
	// cpuTime ranks would-be uploaders; a value derived from the view id
	// spreads the work without measuring anything.
	vote, _ := json.Marshal(snapshotVote{CPUTime: float64(hashString(i.viewID)%100000) / 1000, Hash: hash, ViewID: i.viewID})
	out.Votes = append(out.Votes, Vote{SendTime: i.state.Time, Key: SnapshotKeyPrefix + strconv.FormatInt(i.state.Time, 10), Payload: string(vote)})
}

func hashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// tally analyses a snapshot vote's result identically in every replica:
// group the votes by hash; the largest group is the consensus (ties: the
// smaller hash); its voter with the least cpuTime uploads.
func (i *Island[M]) tally(m Message, out *Effects) {
	tally := m.Tally
	if !strings.HasPrefix(tally.Key, SnapshotKeyPrefix) {
		return
	}
	type voter struct {
		view string
		cpu  float64
	}
	groups := map[string][]voter{}
	var hashes []string
	for _, payload := range slices.Sorted(maps.Keys(tally.Votes)) {
		count := tally.Votes[payload]
		var vote snapshotVote
		if json.Unmarshal([]byte(payload), &vote) != nil || vote.Hash == "" || count < 1 {
			continue
		}
		if _, seen := groups[vote.Hash]; !seen {
			hashes = append(hashes, vote.Hash)
		}
		groups[vote.Hash] = append(groups[vote.Hash], voter{vote.ViewID, vote.CPUTime})
	}
	if len(hashes) == 0 {
		return
	}
	slices.SortFunc(hashes, func(a, b string) int {
		if d := len(groups[b]) - len(groups[a]); d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	votes := 0
	for _, hash := range hashes {
		votes += len(groups[hash])
	}
	// A strict majority: more than half of the votes cast agree.
	strict := 2*len(groups[hashes[0]]) > votes
	localHash := ""
	for _, hash := range hashes {
		if slices.ContainsFunc(groups[hash], func(v voter) bool { return v.view == i.viewID }) {
			localHash = hash
			if hash != hashes[0] {
				break // voted twice (across a reconnect): the odd vote counts
			}
		}
	}
	if localHash == hashes[0] && (len(hashes) == 1 || strict) && tally.SendTime == i.lastVoteTime {
		i.sinceAgreed = i.sinceVote // this replica's last vote agreed with the session
	}
	if len(hashes) > 1 {
		d := Divergence{Time: tally.SendTime, Seq: m.Seq, Majority: strict, LocalHash: localHash}
		for _, hash := range hashes {
			views := make([]string, 0, len(groups[hash]))
			for _, v := range groups[hash] {
				views = append(views, v.view)
			}
			slices.Sort(views)
			d.Groups = append(d.Groups, HashGroup{Hash: hash, Views: views})
		}
		if localHash != "" && localHash != hashes[0] {
			d.Local, d.Suspect = true, i.sinceAgreed
		}
		out.Divergences = append(out.Divergences, d)
	}
	majority := groups[hashes[0]]
	slices.SortFunc(majority, func(a, b voter) int {
		if a.cpu != b.cpu {
			if a.cpu < b.cpu {
				return -1
			}
			return 1
		}
		return strings.Compare(a.view, b.view)
	})
	if majority[0].view == i.viewID {
		data, hash := i.Snapshot()
		out.Uploads = append(out.Uploads, Upload{Time: m.Time, Seq: m.Seq, Hash: hash, Data: data, Announce: len(hashes) > 1 && strict})
	}
}

// noteModelMessage remembers m, a message that reaches the model's
// handlers, as the first one after the last vote and after the last point
// where this replica's state was known to be the session's, if it is
// (Divergence.Suspect).
func (i *Island[M]) noteModelMessage(m Message, describe func() string) {
	if i.sinceVote != nil && i.sinceAgreed != nil {
		return
	}
	ref := &MessageRef{Seq: m.Seq, Time: m.Time, What: describe()}
	if i.sinceVote == nil {
		i.sinceVote = ref
	}
	if i.sinceAgreed == nil {
		i.sinceAgreed = ref
	}
}

func describeEvent(name, view string) string {
	if view == "" {
		return fmt.Sprintf("event %q", name)
	}
	return fmt.Sprintf("event %q from view %s", name, view)
}

func describeUsers(change *protocol.UsersChange) string {
	var parts []string
	for _, list := range []struct {
		verb  string
		users []json.RawMessage
	}{{"joined", change.Joined}, {"left", change.Left}} {
		if len(list.users) == 0 {
			continue
		}
		views := make([]string, len(list.users))
		for k, raw := range list.users {
			views[k] = userViewID(raw)
		}
		parts = append(parts, "views "+list.verb+" "+strings.Join(views, ", "))
	}
	if len(parts) == 0 {
		return "a users message with no views"
	}
	return strings.Join(parts, "; ")
}

// Context is what model code may use inside a handler.
type Context struct {
	island interface {
		now() int64
		random() uint64
		future(delayMs int64, name string, data []byte) error
		publish(name string, data []byte) error
		views() []string
	}
	out   *Effects
	depth int
}

// Now returns the session time in ms.
func (c *Context) Now() int64 { return c.island.now() }

// Random returns 64 random bits from the session's seeded generator: the
// same sequence in every replica.
func (c *Context) Random() uint64 { return c.island.random() }

// Float64 returns a random number in [0, 1).
func (c *Context) Float64() float64 { return float64(c.Random()>>11) / (1 << 53) }

// Intn returns a random number in [0, n); n must be positive.
func (c *Context) Intn(n int) int { return int(c.Random() % uint64(n)) }

// Future schedules the event name with data to run delayMs of session
// time from now (Croquet's future()).
func (c *Context) Future(delayMs int64, name string, data any) {
	encoded, err := encodeData(data)
	if err == nil {
		err = c.island.future(delayMs, name, encoded)
	}
	if err != nil {
		c.out.Errors = append(c.out.Errors, err)
	}
}

// Publish sends an event from the model to the model: its handler runs at
// once, in this replica as in every other.
func (c *Context) Publish(name string, data any) {
	encoded, err := encodeData(data)
	if err == nil {
		err = c.island.publish(name, encoded)
	}
	if err != nil {
		c.out.Errors = append(c.out.Errors, err)
	}
}

// Emit sends an event from the model to the local views. It does not
// change the model; views may ignore it.
func (c *Context) Emit(name string, data any) {
	encoded, err := encodeData(data)
	if err != nil {
		c.out.Errors = append(c.out.Errors, err)
		return
	}
	c.out.Emits = append(c.out.Emits, ViewEvent{Name: name, Data: encoded})
}

// Views returns the views in the session, sorted.
func (c *Context) Views() []string { return c.island.views() }

func encodeData(data any) ([]byte, error) {
	if data == nil {
		return nil, nil
	}
	return encoding.Marshal(data)
}

func (i *Island[M]) now() int64 { return i.state.Time }

func (i *Island[M]) random() uint64 {
	i.state.Random += 0x9e3779b97f4a7c15
	z := i.state.Random
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func (i *Island[M]) future(delayMs int64, name string, data []byte) error {
	if delayMs < 0 || delayMs > FutureDelayMaxMs {
		return fmt.Errorf("island: Future(%d ms, %q): the delay must be in [0, %d] ms (FutureDelayMaxMs)", delayMs, name, FutureDelayMaxMs)
	}
	if len(i.state.Futures) >= FuturesMax {
		return fmt.Errorf("island: Future(%q): %d future messages are pending (FuturesMax)", name, len(i.state.Futures))
	}
	i.state.FutureOrder++
	f := futureMessage{At: i.state.Time + delayMs, Order: i.state.FutureOrder, Name: name, Data: data}
	at, _ := slices.BinarySearchFunc(i.state.Futures, f, func(a, b futureMessage) int {
		if a.At != b.At {
			if a.At < b.At {
				return -1
			}
			return 1
		}
		if a.Order < b.Order {
			return -1
		}
		if a.Order > b.Order {
			return 1
		}
		return 0
	})
	i.state.Futures = slices.Insert(i.state.Futures, at, f)
	return nil
}

func (i *Island[M]) publish(name string, data []byte) error {
	if i.ctx.depth >= PublishDepthMax {
		return fmt.Errorf("island: Publish(%q) nested %d deep (PublishDepthMax): a publish loop", name, PublishDepthMax)
	}
	handler := i.app.Events[name]
	if handler == nil {
		return nil
	}
	i.ctx.depth++
	defer func() { i.ctx.depth-- }()
	handler(&i.state.Model, &i.ctx, Event{Name: name, Data: data})
	return nil
}

func (i *Island[M]) views() []string {
	return slices.Sorted(maps.Keys(i.state.Views))
}
