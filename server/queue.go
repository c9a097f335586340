package server

import "sync"

// eventQueue is a session actor's inbound queue: many producers (the
// connections' readers, pointer lookups), one consumer (the actor). It is
// bounded: a producer takes a slot before queueing and blocks while the
// queue is full (back-pressure on its socket); the consumer gives the slot
// back after handling the event. Its memory follows its use, so an idle
// session holds no event buffer.
type eventQueue[T any] struct {
	slots chan struct{}
	// ready holds a token while the queue is not empty.
	ready chan struct{}
	// done is closed when the consumer is gone: producers stop waiting.
	done chan struct{}

	mu     sync.Mutex
	events []T
	spare  []T
	// batchMax bounds the events one take returns; keepMax the capacity
	// kept after a burst.
	batchMax, keepMax int
}

func newEventQueue[T any](eventsMax, batchMax, keepMax int) *eventQueue[T] {
	return &eventQueue[T]{
		slots:    make(chan struct{}, eventsMax),
		ready:    make(chan struct{}, 1),
		done:     make(chan struct{}),
		batchMax: batchMax,
		keepMax:  keepMax,
	}
}

// put queues an event, waiting for a slot; the event is dropped if the
// consumer is gone.
func (q *eventQueue[T]) put(event T) {
	select {
	case q.slots <- struct{}{}:
	case <-q.done:
		return
	}
	q.mu.Lock()
	q.events = append(q.events, event)
	q.mu.Unlock()
	q.signal()
}

func (q *eventQueue[T]) signal() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// take returns up to batchMax queued events (valid until the next call)
// and signals ready again if more are queued. Call release once per event
// when it has been handled.
func (q *eventQueue[T]) take() []T {
	q.mu.Lock()
	defer q.mu.Unlock()
	clear(q.spare)
	if cap(q.spare) > q.keepMax {
		q.spare = nil
	}
	batch := q.events
	if len(batch) > q.batchMax {
		q.events = append(q.spare[:0], batch[q.batchMax:]...)
		batch = batch[:q.batchMax]
		q.signal()
	} else {
		q.events = q.spare[:0]
	}
	q.spare = batch
	return batch
}

// release gives back the slot of one handled event.
func (q *eventQueue[T]) release() { <-q.slots }

// close tells producers the consumer is gone.
func (q *eventQueue[T]) close() { close(q.done) }
