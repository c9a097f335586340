package store

// CloneMessages copies messages and their data into one new buffer. Every
// Data slice has its capacity cut to its length, so appending to one cannot
// overwrite the next. It returns nil for no messages. Stores that keep
// what they were given (store/memstore) or hand out what they decoded
// (store/jsstore) use it so that callers and the store never share memory.
func CloneMessages(messages []Message) []Message {
	if len(messages) == 0 {
		return nil
	}
	total := 0
	for _, message := range messages {
		total += len(message.Data)
	}
	buffer := make([]byte, 0, total)
	clones := make([]Message, len(messages))
	for index, message := range messages {
		start := len(buffer)
		buffer = append(buffer, message.Data...)
		clones[index] = Message{Seq: message.Seq, Data: buffer[start:len(buffer):len(buffer)]}
	}
	return clones
}
