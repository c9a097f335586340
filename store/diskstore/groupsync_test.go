package diskstore

import (
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
)

// Every concurrent caller returns only after a sync that started after its
// call; errors reach the callers of the failed sync.
func TestGroupSyncerConcurrentCallers(t *testing.T) {
	directory := t.TempDir()
	syncer := newGroupSyncer()
	const callers = 40
	var group sync.WaitGroup
	errs := make([]error, callers)
	for i := range callers {
		group.Add(1)
		go func() {
			defer group.Done()
			file, err := os.Create(filepath.Join(directory, strconv.Itoa(i)))
			if err != nil {
				errs[i] = err
				return
			}
			defer file.Close()
			if _, err := file.WriteString("data"); err != nil {
				errs[i] = err
				return
			}
			errs[i] = syncer.sync(file)
		}()
	}
	group.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("caller %d: %v", i, err)
		}
	}
	if fileSystemSyncAvailable {
		syncer.mu.Lock()
		defer syncer.mu.Unlock()
		if syncer.started == 0 || syncer.started > callers || syncer.completed != syncer.started || syncer.running {
			t.Errorf("after %d callers: started %d, completed %d, running %v", callers, syncer.started, syncer.completed, syncer.running)
		}
		t.Logf("%d callers were served by %d file-system syncs", callers, syncer.started)
	}
}

func TestGroupSyncerReportsErrors(t *testing.T) {
	file, err := os.Create(filepath.Join(t.TempDir(), "closed"))
	if err != nil {
		t.Fatal(err)
	}
	file.Close()
	if err := newGroupSyncer().sync(file); err == nil {
		t.Fatal("sync of a closed file succeeded")
	}
}
