package diskstore

import (
	"os"
	"sync"
)

// groupSyncer makes appended messages durable for many sessions at once.
// Each session writes its own log; instead of one fsync per log, a commit
// waits for a file-system-wide sync (syncfs on Linux) that started after its
// write returned. While one sync runs, every commit that arrives queues for
// the next one, so N concurrent sessions cost about two syncs, not N
// (group commit across sessions). Where syncfs is not available, each
// commit fsyncs its own file.
type groupSyncer struct {
	mu        sync.Mutex
	done      *sync.Cond
	started   uint64 // syncs begun
	completed uint64 // the highest sync finished
	running   bool
	results   map[uint64]error // errors of recent syncs, by number
}

// groupSyncResultsMax bounds the remembered results of finished syncs.
const groupSyncResultsMax = 64

func newGroupSyncer() *groupSyncer {
	syncer := &groupSyncer{results: make(map[uint64]error)}
	syncer.done = sync.NewCond(&syncer.mu)
	return syncer
}

// sync returns once everything written to file (and to the rest of its
// file system) before the call is durable.
func (g *groupSyncer) sync(file *os.File) error {
	if !fileSystemSyncAvailable {
		return file.Sync()
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	// A sync already running may have started before our write: we need
	// one that starts after now.
	needed := g.started + 1
	for g.completed < needed {
		if g.running {
			g.done.Wait()
			continue
		}
		g.running = true
		g.started++
		number := g.started
		g.mu.Unlock()
		err := syncFileSystem(file)
		g.mu.Lock()
		g.running = false
		g.completed = number
		g.results[number] = err
		delete(g.results, number-groupSyncResultsMax)
		g.done.Broadcast()
	}
	if err, known := g.results[needed]; known {
		return err
	}
	// Our sync's result was forgotten (very many syncs ran meanwhile); a
	// later sync covered our write too, so its result answers.
	return g.results[g.completed]
}
