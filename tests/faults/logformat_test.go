package faults

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"testing"
)

// The file formats of the disk store, as its package documentation
// describes them (store/diskstore/diskstore.go, journal.go): the tests
// damage these files at chosen places and describe what is left of them.
const (
	logHeader          = "metronome-log-1\n"
	journalHeader      = "metronome-journal-1\n"
	frameHeaderBytes   = 4 + 4 + 1 // length, seq, flags
	frameOverheadBytes = frameHeaderBytes + 4
	frameFlagCommitEnd = 1
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// frameStarts returns the offsets of the frames of a message log, by
// their lengths alone (checksums are not checked).
func frameStarts(content []byte) []int {
	var starts []int
	for offset := len(logHeader); offset+frameOverheadBytes <= len(content); {
		starts = append(starts, offset)
		offset += frameOverheadBytes + int(binary.LittleEndian.Uint32(content[offset:]))
	}
	return starts
}

// summarizeLog describes a message log: the messages of its complete
// commits whose frames are all intact, and the bytes after them.
func summarizeLog(content []byte) string {
	if !bytes.HasPrefix(content, []byte(logHeader)) {
		return fmt.Sprintf("%d bytes without the log header", len(content))
	}
	offset, validBytes, messages, pending := len(logHeader), len(logHeader), 0, 0
	var first, last uint32
	for offset+frameOverheadBytes <= len(content) {
		frame := content[offset:]
		length := int(binary.LittleEndian.Uint32(frame))
		if length > len(frame)-frameOverheadBytes {
			break
		}
		dataEnd := frameHeaderBytes + length
		if crc32.Checksum(frame[:dataEnd], castagnoli) != binary.LittleEndian.Uint32(frame[dataEnd:]) {
			break
		}
		seq := binary.LittleEndian.Uint32(frame[4:])
		if messages+pending == 0 {
			first = seq
		}
		pending++
		offset += dataEnd + 4
		if frame[8]&frameFlagCommitEnd != 0 {
			messages, pending, validBytes, last = messages+pending, 0, offset, seq
		}
	}
	rest := content[validBytes:]
	kind := "not all zero"
	if len(bytes.Trim(rest, "\x00")) == 0 {
		kind = "all zero"
	}
	if messages == 0 {
		return fmt.Sprintf("no complete commit, then %d bytes (%s)", len(rest), kind)
	}
	return fmt.Sprintf("%d messages, seq %d to %d, in %d intact bytes, then %d bytes (%s)",
		messages, first, last, validBytes, len(rest), kind)
}

// TestSummarizeLog: the description used in reports is right about a
// log with a torn tail.
func TestSummarizeLog(t *testing.T) {
	content := []byte(logHeader)
	for seq := uint32(1); seq <= 3; seq++ {
		start := len(content)
		data := fmt.Sprintf(`[%d,%d,"m"]`, seq, seq)
		content = binary.LittleEndian.AppendUint32(content, uint32(len(data)))
		content = binary.LittleEndian.AppendUint32(content, seq)
		content = append(content, byte(seq%2)) // commits end at seqs 1 and 3
		content = append(content, data...)
		content = binary.LittleEndian.AppendUint32(content, crc32.Checksum(content[start:], castagnoli))
	}
	if starts := frameStarts(content); len(starts) != 3 || starts[0] != len(logHeader) {
		t.Errorf("frameStarts = %v", starts)
	}
	intact := len(content)
	content = append(content, make([]byte, 10)...)
	want := fmt.Sprintf("3 messages, seq 1 to 3, in %d intact bytes, then 10 bytes (all zero)", intact)
	if got := summarizeLog(content); got != want {
		t.Errorf("summarizeLog = %q, want %q", got, want)
	}
}
