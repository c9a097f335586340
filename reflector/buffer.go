package reflector

// messageBuffer holds the stamped messages since the last snapshot, in seq
// order. Their encodings are stored back to back, separated by commas, in
// chunks that are never reallocated: a SYNC copies a few long runs instead
// of one slice per message (50,000 buffered messages are a handful of
// memmoves), and a buffered message costs no allocation of its own.
//
// The stored bytes are immutable: the slices handed out (to storage, to
// frames) stay valid after the buffer drops them.
type messageBuffer struct {
	messages []bufferedMessage
	// chunks[i] is chunk number chunkBase+i; only the last one grows, and
	// only within its capacity.
	chunks    [][]byte
	chunkBase uint32
}

// bufferedMessage is a stamped message kept since the last snapshot. It
// holds no pointer (the garbage collector does not scan the buffer's up to
// 100,000 entries): its encoding is bytes [offset, offset+size) of chunk
// number chunk.
type bufferedMessage struct {
	time   int64
	seq    uint32
	chunk  uint32 // absolute chunk number: chunks[chunk-chunkBase]
	offset uint32
	size   uint32
}

// Chunk sizes: the first chunk of a session is small (an idle session
// holds one users message), each new chunk doubles, up to
// bufferChunkBytesMax; a message larger than that gets a chunk of its size.
const (
	bufferChunkBytesMin = 512
	bufferChunkBytesMax = 16 << 10
)

func (b *messageBuffer) len() int { return len(b.messages) }

func (b *messageBuffer) at(i int) *bufferedMessage { return &b.messages[i] }

func (b *messageBuffer) last() *bufferedMessage { return &b.messages[len(b.messages)-1] }

// add copies an encoded message into the buffer and returns the stored
// copy (whose capacity ends with it: appending to it cannot write into the
// buffer).
func (b *messageBuffer) add(seq uint32, time int64, data []byte) []byte {
	n := len(b.chunks)
	var chunk []byte
	if n > 0 {
		chunk = b.chunks[n-1]
	}
	separator := 0
	if len(chunk) > 0 {
		separator = 1
	}
	if n == 0 || len(chunk)+separator+len(data) > cap(chunk) {
		size := bufferChunkBytesMin
		if n > 0 {
			size = min(2*cap(chunk), bufferChunkBytesMax)
		}
		chunk = make([]byte, 0, max(size, len(data)))
		b.chunks = append(b.chunks, chunk)
		n++
		separator = 0
	}
	if separator == 1 {
		chunk = append(chunk, ',')
	}
	offset := len(chunk)
	chunk = append(chunk, data...)
	b.chunks[n-1] = chunk
	b.messages = append(b.messages, bufferedMessage{time: time, seq: seq,
		chunk: b.chunkBase + uint32(n-1), offset: uint32(offset), size: uint32(len(data))})
	return chunk[offset:len(chunk):len(chunk)]
}

// dropFront forgets the first n messages, and the chunks only they used.
func (b *messageBuffer) dropFront(n int) {
	if n <= 0 {
		return
	}
	b.messages = append([]bufferedMessage(nil), b.messages[n:]...)
	if len(b.messages) == 0 {
		// Keep the last chunk: the next message goes into its free space.
		if last := len(b.chunks) - 1; last > 0 {
			b.chunkBase += uint32(last)
			b.chunks = append([][]byte(nil), b.chunks[last:]...)
		}
		return
	}
	if first := b.messages[0].chunk - b.chunkBase; first > 0 {
		b.chunkBase += first
		b.chunks = append([][]byte(nil), b.chunks[first:]...)
	}
}

// runs appends to dst the encodings of all buffered messages as runs of
// comma-separated messages (one per chunk): joined with commas, they are
// the messages of a SYNC.
func (b *messageBuffer) runs(dst [][]byte) [][]byte {
	if len(b.messages) == 0 {
		return dst
	}
	first := &b.messages[0]
	for i, chunk := range b.chunks[first.chunk-b.chunkBase:] {
		if i == 0 {
			chunk = chunk[first.offset:]
		}
		if len(chunk) > 0 {
			dst = append(dst, chunk)
		}
	}
	return dst
}

// index returns the position of the message with seq, or -1. Seqs are
// consecutive (modulo 2^32), so this is arithmetic, not a search.
func (b *messageBuffer) index(seq uint32) int {
	if len(b.messages) == 0 {
		return -1
	}
	i := int(seq - b.messages[0].seq) // wraps correctly across 2^32
	if i < 0 || i >= len(b.messages) || b.messages[i].seq != seq {
		return -1
	}
	return i
}

// scratchKeepBytesMax is the largest message encoding buffer a session
// keeps for the next message.
const scratchKeepBytesMax = 4 << 10
