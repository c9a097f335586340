package diskstore

import (
	"testing"

	"github.com/metronome-sync/metronome/store"
	"github.com/metronome-sync/metronome/store/storetest"
)

func openForTest(t *testing.T, directory string, options Options) *Store {
	t.Helper()
	s, err := Open(directory, options)
	if err != nil {
		t.Fatalf("Open(%q): %v", directory, err)
	}
	return s
}

func TestConformance(t *testing.T) {
	for _, test := range []struct {
		name    string
		options Options
	}{
		{"Durable", Options{Durable: true}},
		{"NotDurable", Options{}},
		// Few open logs make every subtest close and reopen logs.
		{"TwoOpenLogs", Options{OpenLogFilesMax: 2}},
	} {
		t.Run(test.name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) store.Store {
				return openForTest(t, t.TempDir(), test.options)
			})
		})
	}
}

func TestReopen(t *testing.T) {
	for _, test := range []struct {
		name    string
		options Options
	}{
		{"Durable", Options{Durable: true}},
		{"NotDurable", Options{}},
	} {
		t.Run(test.name, func(t *testing.T) {
			storetest.RunReopen(t, func(t *testing.T, directory string) store.Store {
				return openForTest(t, directory, test.options)
			})
		})
	}
}
