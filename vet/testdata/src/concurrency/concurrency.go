// Package concurrency holds the goroutine and channel findings.
package concurrency

func work() {}

func goroutines() {
	go work()   // want `go statement: goroutines run in an order the scheduler picks`
	go func() { // want `go statement`
		work()
	}()
}

func channels(done chan struct{}) int { // want `channel type chan struct{}: channels hand values between goroutines`
	results := make(chan chan int, 1) // want `channel type chan chan int`
	inner := make(<-chan int)         // want `channel type <-chan int`
	var out chan<- string             // want `channel type chan<- string`
	_ = out
	results <- nil   // want `channel send: it blocks or not`
	value := <-inner // want `channel receive: what arrives, and when`
	select {         // want `select statement: when several cases are ready Go picks one at random`
	case <-done:
	case results <- nil:
	case received, ok := <-inner:
		_, _ = received, ok
	default:
	}
	for value := range inner { // want `range over channel inner`
		_ = value
	}
	close(done)
	return value
}

func generic[C ~chan int](c C) { // want `channel type chan int`
	for range c { // want `range over channel c`
	}
}
