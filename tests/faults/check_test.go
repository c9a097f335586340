package faults

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// history is what the server sent one client on one timeline: every
// message, by seq, as the bytes of its message array [time, seq, payload,
// ...] (docs/protocol.md §4.4), and the newest message time.
type history struct {
	timeline string
	messages map[uint32][]byte
	maxTime  int64
}

// syncFrame holds the SYNC fields the checks use (docs/protocol.md §8).
type syncFrame struct {
	Messages []json.RawMessage `json:"messages"`
	Seq      uint32            `json:"seq"`
	Time     int64             `json:"time"`
	Timeline string            `json:"timeline"`
}

// add remembers one message; it returns a problem if the seq was sent
// before with other contents.
func (h *history) add(message []byte) string {
	time, seq, err := parseMessage(message)
	if err != nil {
		return err.Error()
	}
	if h.messages == nil {
		h.messages = map[uint32][]byte{}
	}
	if before, ok := h.messages[seq]; ok && !bytes.Equal(before, message) {
		return fmt.Sprintf("seq %d was sent as %.120s and again as %.120s", seq, before, message)
	}
	h.messages[seq] = bytes.Clone(message)
	h.maxTime = max(h.maxTime, time)
	return ""
}

// describe summarises the history for reports.
func (h *history) describe() string {
	seqs := sortedSeqs(h.messages)
	if len(seqs) == 0 {
		return "no messages"
	}
	return fmt.Sprintf("%d messages, seq %d to %d", len(seqs), seqs[0], seqs[len(seqs)-1])
}

// restart forgets everything and starts from a SYNC (the first one, or
// one on a new timeline).
func (h *history) restart(sync syncFrame) []string {
	*h = history{timeline: sync.Timeline}
	return h.addSync(sync)
}

// addSync remembers a SYNC's messages: the client was sent them too.
func (h *history) addSync(sync syncFrame) []string {
	var problems []string
	for _, message := range sync.Messages {
		if problem := h.add(message); problem != "" {
			problems = append(problems, "SYNC: "+problem)
		}
	}
	return problems
}

// checkSync checks a SYNC on the same timeline as h: its messages are
// consecutive and end at its seq, its time is not before any message the
// client was sent, and every message the client was sent is in it, with
// the same seq and the same bytes. It returns how many remembered messages
// it found and the problems (at most problemsShown, then a count).
func checkSync(h history, sync syncFrame) (found int, problems []string) {
	var report problemList
	bySeq := make(map[uint32][]byte, len(sync.Messages))
	var previous uint32
	for index, message := range sync.Messages {
		_, seq, err := parseMessage(message)
		if err != nil {
			report.add("SYNC message %d: %v", index, err)
			continue
		}
		if index > 0 && seq != previous+1 {
			report.add("SYNC messages are not consecutive: seq %d follows seq %d", seq, previous)
		}
		previous = seq
		bySeq[seq] = message
	}
	if len(sync.Messages) > 0 && previous != sync.Seq {
		report.add("SYNC seq is %d but its last message has seq %d", sync.Seq, previous)
	}
	if sync.Time < h.maxTime {
		report.add("SYNC time %d is before message time %d the client was sent", sync.Time, h.maxTime)
	}
	for _, seq := range sortedSeqs(h.messages) {
		got, ok := bySeq[seq]
		switch {
		case !ok:
			report.add("seq %d was sent to the client (%.100s) and is missing from the SYNC (%s)", seq, h.messages[seq], describeSeqs(sync))
		case !bytes.Equal(got, h.messages[seq]):
			report.add("seq %d was sent as %.100s and the SYNC holds %.100s", seq, h.messages[seq], got)
		default:
			found++
		}
	}
	return found, report.list()
}

// parseMessage returns the time and seq of a message array.
func parseMessage(message []byte) (time int64, seq uint32, err error) {
	var elements []json.RawMessage
	if err := json.Unmarshal(message, &elements); err != nil || len(elements) < 3 {
		return 0, 0, fmt.Errorf("not a message array: %.100s", message)
	}
	time, err = strconv.ParseInt(string(elements[0]), 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("message time: %.100s", message)
	}
	seq64, err := strconv.ParseUint(string(elements[1]), 10, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("message seq: %.100s", message)
	}
	return time, uint32(seq64), nil
}

// payloadOf returns a message's payload if it is a string (client
// messages; reflector messages have objects).
func payloadOf(message []byte) string {
	var elements []json.RawMessage
	if json.Unmarshal(message, &elements) != nil || len(elements) < 3 {
		return ""
	}
	var payload string
	if json.Unmarshal(elements[2], &payload) != nil {
		return ""
	}
	return payload
}

// isOwnPayload reports whether a payload was sent by view (client.send).
func isOwnPayload(payload, view string) bool { return strings.HasPrefix(payload, view+"#") }

func sortedSeqs(messages map[uint32][]byte) []uint32 {
	seqs := make([]uint32, 0, len(messages))
	for seq := range messages {
		seqs = append(seqs, seq)
	}
	// Seqs start near 2^32 and wrap (docs/protocol.md §4.5): order them
	// from the smallest distance to the first one.
	if len(seqs) == 0 {
		return seqs
	}
	first := seqs[0]
	for _, seq := range seqs {
		if int32(seq-first) < 0 {
			first = seq
		}
	}
	slices.SortFunc(seqs, func(a, b uint32) int { return cmp.Compare(a-first, b-first) })
	return seqs
}

func describeSeqs(sync syncFrame) string {
	if len(sync.Messages) == 0 {
		return "no messages"
	}
	_, first, _ := parseMessage(sync.Messages[0])
	_, last, _ := parseMessage(sync.Messages[len(sync.Messages)-1])
	return fmt.Sprintf("%d messages, seq %d to %d", len(sync.Messages), first, last)
}

// problemList collects problems, keeping the first problemsShown.
type problemList struct {
	shown []string
	more  int
}

const problemsShown = 5

func (p *problemList) add(format string, args ...any) {
	if len(p.shown) == problemsShown {
		p.more++
		return
	}
	p.shown = append(p.shown, fmt.Sprintf(format, args...))
}

func (p *problemList) list() []string {
	if p.more > 0 {
		return append(p.shown, fmt.Sprintf("and %d more", p.more))
	}
	return p.shown
}

// TestChecksCanFail feeds the checks the violations they exist for, so a
// check that cannot fail is caught here rather than silently passing.
func TestChecksCanFail(t *testing.T) {
	message := func(seq uint32, payload string) []byte {
		return fmt.Appendf(nil, `[%d,%d,%q]`, 100+seq, seq, payload)
	}
	remembered := func(seqs ...uint32) history {
		h := history{timeline: "T"}
		for _, seq := range seqs {
			h.add(message(seq, fmt.Sprint("m", seq)))
		}
		return h
	}
	sync := func(seqs ...uint32) syncFrame {
		s := syncFrame{Timeline: "T", Time: 1000}
		for _, seq := range seqs {
			s.Messages = append(s.Messages, message(seq, fmt.Sprint("m", seq)))
			s.Seq = seq
		}
		return s
	}
	wrap := uint32(1<<32 - 2)
	if found, problems := checkSync(remembered(wrap, wrap+1, wrap+2), sync(wrap, wrap+1, wrap+2, wrap+3)); len(problems) > 0 || found != 3 {
		t.Errorf("a good SYNC: found %d, problems %q", found, problems)
	}
	cases := map[string]syncFrame{
		"lost message": sync(1, 2),
		"seq reused":   func() syncFrame { s := sync(1, 2, 3); s.Messages[2] = message(3, "other"); return s }(),
		"gap":          func() syncFrame { s := sync(1, 2, 3, 5); return s }(),
		"wrong seq":    func() syncFrame { s := sync(1, 2, 3); s.Seq = 7; return s }(),
		"time back":    func() syncFrame { s := sync(1, 2, 3); s.Time = 50; return s }(),
	}
	for name, bad := range cases {
		if _, problems := checkSync(remembered(1, 2, 3), bad); len(problems) == 0 {
			t.Errorf("%s: checkSync found no problem", name)
		}
	}
	h := remembered(1)
	if problem := h.add(message(1, "other")); problem == "" {
		t.Error("a seq sent twice with other contents: no problem")
	}
	log := []byte("time=1 level=INFO msg=x session=a quarantine/a\n" +
		"time=2 level=ERROR msg=\"session storage is damaged\" session=b err=\"moved to /d/quarantine/b-1\"\n")
	if len(errorLines(log, "session=a")) != 0 || len(errorLines(log, "session=b", "/quarantine/")) != 1 {
		t.Errorf("errorLines does not tell ERROR lines about a session from others")
	}
}
