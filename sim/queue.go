package sim

import "container/heap"

// event is something scheduled to happen at a simulated time. Events at
// the same time run in the order they were scheduled.
type event struct {
	at    int64
	order uint64
	run   func()
}

type eventHeap []event

func (h eventHeap) Len() int { return len(h) }
func (h eventHeap) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].order < h[j].order
}
func (h eventHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *eventHeap) Push(x any)   { *h = append(*h, x.(event)) }
func (h *eventHeap) Pop() any {
	old := *h
	n := len(old)
	e := old[n-1]
	old[n-1] = event{}
	*h = old[:n-1]
	return e
}

// queue is the simulator's agenda.
type queue struct {
	events eventHeap
	order  uint64
}

func (q *queue) schedule(at int64, run func()) {
	q.order++
	heap.Push(&q.events, event{at: at, order: q.order, run: run})
}

func (q *queue) next() (event, bool) {
	if len(q.events) == 0 {
		return event{}, false
	}
	return heap.Pop(&q.events).(event), true
}
