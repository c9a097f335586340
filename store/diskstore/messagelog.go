package diskstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"

	"github.com/metronome-sync/metronome/store"
)

// The message log format; see the package documentation.
const (
	// logHeader starts every message log.
	logHeader = "metronome-log-1\n"
	// frameHeaderBytes is the length, sequence number and flags of a frame.
	frameHeaderBytes = 4 + 4 + 1
	// frameChecksumBytes is the CRC-32C at the end of a frame.
	frameChecksumBytes = 4
	// frameFlagCommitEnd marks the last frame of a commit.
	frameFlagCommitEnd = 1
	// MessageBytesMax bounds the data of one message: the frame stores its
	// length in 32 bits.
	MessageBytesMax = 1<<32 - 1
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errNoLog reports that a session has no message log file.
var errNoLog = errors.New("no message log")

// appendFrames appends the frames of one commit of messages to buffer.
func appendFrames(buffer []byte, messages []store.Message) ([]byte, error) {
	for index, message := range messages {
		if uint64(len(message.Data)) > MessageBytesMax {
			return nil, fmt.Errorf("message %d (seq %d) is %d bytes, limit MessageBytesMax is %d",
				index, message.Seq, len(message.Data), uint64(MessageBytesMax))
		}
		var flags byte
		if index == len(messages)-1 {
			flags = frameFlagCommitEnd
		}
		start := len(buffer)
		buffer = binary.LittleEndian.AppendUint32(buffer, uint32(len(message.Data)))
		buffer = binary.LittleEndian.AppendUint32(buffer, message.Seq)
		buffer = append(buffer, flags)
		buffer = append(buffer, message.Data...)
		buffer = binary.LittleEndian.AppendUint32(buffer, crc32.Checksum(buffer[start:], castagnoli))
	}
	return buffer, nil
}

// decodeLog returns the messages of the complete commits at the start of a
// log file's content and the length of the content they occupy (with the
// header). What follows is a torn write. The messages' data point into
// content, with their capacity cut to their length.
func decodeLog(content []byte) (messages []store.Message, validBytes int, err error) {
	if !bytes.HasPrefix(content, []byte(logHeader)) {
		return nil, 0, errors.New("not a message log: the header is missing or wrong")
	}
	offset := len(logHeader)
	validBytes = offset
	var commit []store.Message // messages of a commit whose last frame is not read yet
	for {
		rest := content[offset:]
		if len(rest) < frameHeaderBytes+frameChecksumBytes {
			break
		}
		length := binary.LittleEndian.Uint32(rest)
		if uint64(length) > uint64(len(rest)-frameHeaderBytes-frameChecksumBytes) {
			break
		}
		dataEnd := frameHeaderBytes + int(length)
		if crc32.Checksum(rest[:dataEnd], castagnoli) != binary.LittleEndian.Uint32(rest[dataEnd:]) {
			break
		}
		flags := rest[8]
		if flags&^frameFlagCommitEnd != 0 {
			break
		}
		commit = append(commit, store.Message{
			Seq:  binary.LittleEndian.Uint32(rest[4:]),
			Data: rest[frameHeaderBytes:dataEnd:dataEnd],
		})
		offset += dataEnd + frameChecksumBytes
		if flags&frameFlagCommitEnd != 0 {
			messages = append(messages, commit...)
			commit = commit[:0]
			validBytes = offset
		}
	}
	return messages, validBytes, nil
}

// frameOffset returns the offset of frame number index (counting from 0) in
// valid log content, or its length if index is the number of frames.
func frameOffset(content []byte, index int) int {
	return len(logHeader) + framesOffset(content[len(logHeader):], index)
}

// framesOffset is frameOffset for frames without the log header.
func framesOffset(frames []byte, index int) int {
	offset := 0
	for range index {
		offset += frameHeaderBytes + int(binary.LittleEndian.Uint32(frames[offset:])) + frameChecksumBytes
	}
	return offset
}

// openLog opens the session's message log for appending and returns its
// content. It cuts off a torn write at the end first (syncing the cut when
// Durable), so that appends follow the last complete commit; damage is not
// cut off but quarantined (damage.go). Without a log file it returns
// errNoLog. The caller holds state.mu and state.log is nil.
func (s *Store) openLog(state *session) ([]byte, error) {
	file, err := os.OpenFile(state.logPath(), os.O_WRONLY|os.O_APPEND, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errNoLog
	}
	if err != nil {
		return nil, err
	}
	content, err := os.ReadFile(state.logPath())
	if err != nil {
		file.Close()
		return nil, err
	}
	verdict := judgeLog(state.logPath(), content, s.logRules(state.id))
	if verdict.damage != "" {
		file.Close()
		return nil, s.quarantine(state, verdict.damage)
	}
	if verdict.emptied {
		content = []byte(logHeader)
		if err := rewriteHeader(file); err != nil {
			file.Close()
			return nil, fmt.Errorf("rewriting the header of %s: %w", state.logPath(), err)
		}
	}
	messages, validBytes := verdict.messages, verdict.validBytes
	if validBytes < len(content) {
		err := file.Truncate(int64(validBytes))
		if err == nil && s.syncSessionFiles() {
			err = file.Sync()
		}
		if err != nil {
			file.Close()
			return nil, fmt.Errorf("cutting off the torn end of %s: %w", state.logPath(), err)
		}
	}
	log := &openLog{file: file, size: int64(validBytes), count: len(messages)}
	if len(messages) > 0 {
		log.last = messages[len(messages)-1].Seq
	}
	s.setLog(state, log)
	return content[:validBytes], nil
}

// rewriteHeader makes file (opened for appending) hold only the log header.
func rewriteHeader(file *os.File) error {
	if err := file.Truncate(0); err != nil {
		return err
	}
	_, err := io.WriteString(file, logHeader)
	return err
}

// readLog returns the content of the session's message log, or errNoLog.
// The caller holds state.mu.
func (s *Store) readLog(state *session) ([]byte, error) {
	if state.log == nil {
		return s.openLog(state)
	}
	s.touchLog(state)
	file, err := os.Open(state.logPath())
	if err != nil {
		return nil, err
	}
	defer file.Close()
	content := make([]byte, state.log.size)
	if _, err := io.ReadFull(file, content); err != nil {
		return nil, fmt.Errorf("reading %s: %w", state.logPath(), err)
	}
	return content, nil
}

// useLog makes sure the session's log is open, creating an empty one if
// create is set. Without a log file and without create it returns errNoLog.
// The caller holds state.mu.
func (s *Store) useLog(state *session, create bool) error {
	if state.log != nil {
		s.touchLog(state)
		return nil
	}
	_, err := s.openLog(state)
	if !errors.Is(err, errNoLog) || !create {
		return err
	}
	return s.writeLog(state, nil, 0, s.syncSessionFiles())
}

// writeLog replaces the session's message log with one holding the header
// and frames, which hold count messages, and opens it for appending. The
// caller holds state.mu.
func (s *Store) writeLog(state *session, frames []byte, count int, sync bool) error {
	// Close the old log first: some systems cannot rename over an open file.
	if err := s.closeLog(state); err != nil {
		return err
	}
	if err := s.makeSessionDirectory(state); err != nil {
		return err
	}
	err := s.replaceFile(state.directory, logFileName, sync, func(w io.Writer) error {
		if _, err := io.WriteString(w, logHeader); err != nil {
			return err
		}
		_, err := w.Write(frames)
		return err
	})
	if err != nil {
		return err
	}
	file, err := os.OpenFile(state.logPath(), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	log := &openLog{file: file, size: int64(len(logHeader) + len(frames)), count: count}
	if count > 0 {
		log.last = frameSeq(frames, framesOffset(frames, count-1))
	}
	s.setLog(state, log)
	return nil
}

// frameSeq returns the seq of the frame at offset in frames (without the
// log header).
func frameSeq(frames []byte, offset int) uint32 {
	return binary.LittleEndian.Uint32(frames[offset+4:])
}

// appendToLog writes frames holding count messages, the last with seq
// last, at the end of the open log, and syncs them when Durable without a
// journal. The caller holds state.mu.
func (s *Store) appendToLog(state *session, frames []byte, count int, last uint32) error {
	log := state.log
	_, err := log.file.Write(frames)
	if err == nil && s.syncSessionFiles() {
		err = log.file.Sync()
	}
	if err != nil {
		// The file may end in a part of the frames, or its state on disk
		// is unknown: cut the frames off and make the next use read the
		// file again.
		_ = log.file.Truncate(log.size)
		_ = s.closeLog(state)
		return err
	}
	log.size += int64(len(frames))
	log.count += count
	log.last = last
	return nil
}

// dropFromLog replaces the open log by one without its first count (> 0)
// messages, and returns the seq of the last one dropped. The caller holds
// state.mu.
func (s *Store) dropFromLog(state *session, count int) (uint32, error) {
	content, err := s.readLog(state)
	if err != nil {
		return 0, err
	}
	lastDropped := frameSeq(content, frameOffset(content, count-1))
	// Synced also with the journal: its drop entry holds only a seq, not
	// the messages the new log keeps, so a power cut must find the new
	// log whole or the old one (a rename of a synced file).
	sync := s.durable && s.replaying == nil
	return lastDropped, s.writeLog(state, content[frameOffset(content, count):], state.log.count-count, sync)
}
