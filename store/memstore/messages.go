package memstore

import "github.com/metronome-sync/metronome/store"

// messageList holds a session's messages in blocks of at most
// messageBlockMax: appending never copies the messages already held (a
// single slice doubling on append holds up to twice what it needs, and
// copies everything each time it grows), and dropping from the front
// frees whole blocks without copying the rest. The first block grows from
// small, so a session with a few messages holds a few.
type messageList struct {
	blocks [][]store.Message
	start  int // dropped messages at the front of blocks[0]
	count  int
	// bytes is the size of the messages' data (StorageUsage).
	bytes int64
}

// messageBlockMax is the size of a full block (8 KiB of messages).
const messageBlockMax = 256

func (l *messageList) len() int { return l.count }

func (l *messageList) append(messages ...store.Message) {
	for len(messages) > 0 {
		last := len(l.blocks) - 1
		if last < 0 || len(l.blocks[last]) == messageBlockMax {
			l.blocks = append(l.blocks, nil)
			last++
		}
		block := l.blocks[last]
		n := min(len(messages), messageBlockMax-len(block))
		if len(block)+n > cap(block) {
			// Grow the block (only the first one is ever smaller than
			// a full block): double, at most to a full block.
			size := min(max(2*cap(block), len(block)+n, 4), messageBlockMax)
			if len(l.blocks) > 1 {
				size = messageBlockMax
			}
			grown := make([]store.Message, len(block), size)
			copy(grown, block)
			block = grown
		}
		l.blocks[last] = append(block, messages[:n]...)
		for _, message := range messages[:n] {
			l.bytes += int64(len(message.Data))
		}
		messages = messages[n:]
		l.count += n
	}
}

// dropFront forgets the first n messages (n ≤ len).
func (l *messageList) dropFront(n int) {
	l.count -= n
	l.bytes -= l.frontBytes(n)
	n += l.start
	from := l.start // the first message of blocks[0] not yet cleared
	for len(l.blocks) > 0 && n >= len(l.blocks[0]) && len(l.blocks[0]) == messageBlockMax {
		n -= len(l.blocks[0])
		l.blocks[0] = nil
		l.blocks = l.blocks[1:]
		from = 0
	}
	if len(l.blocks) == 0 {
		l.start = 0
		return
	}
	clear(l.blocks[0][from:n]) // let the dropped messages' data be freed
	if len(l.blocks) == 1 && n == len(l.blocks[0]) {
		// Everything dropped: keep the block for the next messages.
		l.blocks[0] = l.blocks[0][:0]
		n = 0
	}
	l.start = n
}

// all returns the messages, oldest first (sharing their data).
func (l *messageList) all() []store.Message {
	if l.count == 0 {
		return nil
	}
	messages := make([]store.Message, 0, l.count)
	for i, block := range l.blocks {
		if i == 0 {
			block = block[l.start:]
		}
		messages = append(messages, block...)
	}
	return messages
}

// frontBytes returns the size of the data of the first n messages.
func (l *messageList) frontBytes(n int) int64 {
	var total int64
	skip := l.start
	for _, block := range l.blocks {
		block = block[skip:]
		skip = 0
		for _, message := range block[:min(n, len(block))] {
			total += int64(len(message.Data))
		}
		if n -= min(n, len(block)); n == 0 {
			break
		}
	}
	return total
}
