package protocol_test

import (
	"testing"

	"github.com/metronome-sync/metronome/protocol"
)

// TestCloseIsFatal: from 4100 on the standard client gives up, except after
// its own "going dormant" close.
func TestCloseIsFatal(t *testing.T) {
	for code, fatal := range map[int]bool{
		protocol.CloseNormal: false, protocol.CloseClientError: false, protocol.CloseSlowClient: false,
		protocol.CloseReconnect: false, protocol.CloseOutdatedProtocol: true, protocol.CloseTooManyFrames: true,
		protocol.CloseClientDormant: false, protocol.CloseNeverJoined: true, protocol.CloseClientFatal: true,
	} {
		if got := protocol.CloseIsFatal(code); got != fatal {
			t.Errorf("CloseIsFatal(%d) = %v, want %v", code, got, fatal)
		}
	}
}
