package client

import "sync"

// CallbacksQueuedMax bounds the callbacks (Subscribe handlers, OnVote,
// OnDivergence) waiting for the callback goroutine. A view slower than its
// model would otherwise let them pile up without end; past the bound new
// callbacks are dropped, counted in Stats.CallbacksDropped and logged.
const CallbacksQueuedMax = 1 << 16

// callbackQueue runs the views' callbacks on their own goroutine, in the
// order the session goroutine queued them. The session goroutine never
// waits for a callback, so a callback may call any Session method (which
// waits for the session goroutine) without a deadlock.
type callbackQueue struct {
	mu      sync.Mutex
	queued  []func()
	dropped int
	ready   chan struct{} // holds a token while queued is not empty
}

func newCallbackQueue() *callbackQueue {
	return &callbackQueue{ready: make(chan struct{}, 1)}
}

// push queues f; it reports false when the queue is full (f is dropped).
func (q *callbackQueue) push(f func()) bool {
	q.mu.Lock()
	if len(q.queued) >= CallbacksQueuedMax {
		q.dropped++
		q.mu.Unlock()
		return false
	}
	q.queued = append(q.queued, f)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
	return true
}

// take returns the queued callbacks and empties the queue.
func (q *callbackQueue) take() []func() {
	q.mu.Lock()
	defer q.mu.Unlock()
	batch := q.queued
	q.queued = nil
	return batch
}

// droppedCount returns how many callbacks were dropped.
func (q *callbackQueue) droppedCount() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.dropped
}

// run executes callbacks until done is closed, then the ones still queued.
func (q *callbackQueue) run(done <-chan struct{}) {
	for {
		select {
		case <-q.ready:
			for _, f := range q.take() {
				f()
			}
		case <-done:
			for _, f := range q.take() {
				f()
			}
			return
		}
	}
}
