package memstore

import (
	"testing"

	"github.com/metronome-sync/metronome/store"
	"github.com/metronome-sync/metronome/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return New() })
}
