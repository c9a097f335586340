package memstore

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/metronome-sync/metronome/store"
)

// TestMessageList runs random appends and drops against a plain slice and
// compares the contents, the count, and that no block but the last is
// partly filled.
func TestMessageList(t *testing.T) {
	random := rand.New(rand.NewPCG(1, 2))
	for run := range 200 {
		var list messageList
		var model []store.Message
		seq := uint32(0)
		for step := range 60 {
			if random.IntN(3) > 0 {
				var batch []store.Message
				for range random.IntN([]int{3, 40, 600}[random.IntN(3)]) {
					seq++
					batch = append(batch, store.Message{Seq: seq, Data: []byte(fmt.Sprint(seq))})
				}
				list.append(batch...)
				model = append(model, batch...)
			} else {
				n := 0
				if len(model) > 0 {
					n = random.IntN(len(model) + 1)
					if random.IntN(4) == 0 {
						n = len(model)
					}
				}
				list.dropFront(n)
				model = model[n:]
			}
			got := list.all()
			if list.len() != len(model) || len(got) != len(model) {
				t.Fatalf("run %d step %d: len %d, all %d, want %d", run, step, list.len(), len(got), len(model))
			}
			for i := range model {
				if got[i].Seq != model[i].Seq || string(got[i].Data) != string(model[i].Data) {
					t.Fatalf("run %d step %d: message %d is seq %d, want %d", run, step, i, got[i].Seq, model[i].Seq)
				}
			}
			for i, block := range list.blocks {
				if i < len(list.blocks)-1 && len(block) != messageBlockMax {
					t.Fatalf("run %d step %d: block %d of %d holds %d messages", run, step, i, len(list.blocks), len(block))
				}
			}
		}
	}
}
