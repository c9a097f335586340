// Package archtest holds the test that keeps the package boundaries of
// docs/architecture.md true: the pure core imports no I/O, clock,
// randomness, goroutine machinery or logging.
package archtest
