package server

import (
	"context"
	"slices"
	"strings"
	"sync"

	"github.com/metronome-sync/metronome/store"
	"github.com/metronome-sync/metronome/store/snapshotgc"
)

// # What the uploaded files use
//
// fileUsage counts the bytes of the uploaded files: in total, per kind
// (for metronome_storage_bytes) and per session snapshot directory (for
// FilesSessionBytesMax, and to find a session's snapshots). It is measured
// once, by walking the store's files when the server is created, and then
// kept exact by every change, all of which go through the server: a PUT
// adds its file (less the one it replaced), a deletion (snapshotgc.go)
// takes it away. So a PUT checks its quotas against counters, never by
// walking the files. Uploads in progress reserve the size they declared,
// so that concurrent uploads cannot pass a quota together.

// fileKind is what an uploaded file is, by its path (docs/protocol.md
// §8.4, §9.2, §9.3).
type fileKind int

const (
	fileKindSnapshots fileKind = iota // snapshots/..., apps/<appId>/snap/...
	fileKindPersisted                 // apps/<appId>/<persistentId>/save/...
	fileKindData                      // apps/<appId>/<persistentId>/data/... (Data API)
	fileKindOther                     // any other path
	fileKindCount
)

func (k fileKind) String() string {
	return [...]string{"snapshots", "persisted", "data", "other"}[k]
}

// classifyFile returns the kind of a valid file path and, for a snapshot
// in a session's snapshot directory, that directory and the session id
// ("" when the directory does not tell it).
func classifyFile(path string) (kind fileKind, directory, session string) {
	if directory, session, ok := snapshotgc.SnapshotDirectory(path); ok {
		return fileKindSnapshots, directory, session
	}
	segments := strings.Split(path, "/")
	switch {
	case segments[0] == "snapshots", len(segments) >= 3 && segments[0] == "apps" && segments[2] == "snap":
		return fileKindSnapshots, "", ""
	case len(segments) >= 5 && segments[0] == "apps" && segments[3] == "save":
		return fileKindPersisted, "", ""
	case len(segments) >= 5 && segments[0] == "apps" && segments[3] == "data":
		return fileKindData, "", ""
	}
	return fileKindOther, "", ""
}

type fileUsage struct {
	mu    sync.Mutex
	kinds [fileKindCount]int64
	total int64
	files int64
	// reserved is what uploads in progress declared.
	reserved    int64
	directories map[string]*directoryUsage
	// sessions lists each session's snapshot directories.
	sessions map[string][]string
}

// directoryUsage is one session snapshot directory's share.
type directoryUsage struct {
	session  string
	bytes    int64
	files    int64
	reserved int64
}

// measureFileUsage walks every file of the catalog.
func measureFileUsage(ctx context.Context, catalog store.FileCatalog) (*fileUsage, error) {
	usage := &fileUsage{directories: make(map[string]*directoryUsage), sessions: make(map[string][]string)}
	err := catalog.WalkFiles(ctx, "", func(file store.FileInfo) error {
		usage.add(file.Path, file.Bytes, 1)
		return nil
	})
	return usage, err
}

// add counts a change of bytes and files at path (negative: removed).
func (u *fileUsage) add(path string, bytes, files int64) {
	kind, directory, session := classifyFile(path)
	u.mu.Lock()
	defer u.mu.Unlock()
	u.kinds[kind] += bytes
	u.total += bytes
	u.files += files
	if directory == "" {
		return
	}
	entry := u.directoryLocked(directory, session)
	entry.bytes += bytes
	entry.files += files
	u.dropIfEmptyLocked(directory)
}

func (u *fileUsage) directoryLocked(directory, session string) *directoryUsage {
	entry := u.directories[directory]
	if entry == nil {
		entry = &directoryUsage{session: session}
		u.directories[directory] = entry
		if session != "" {
			u.sessions[session] = append(u.sessions[session], directory)
		}
	}
	return entry
}

func (u *fileUsage) dropIfEmptyLocked(directory string) {
	entry := u.directories[directory]
	if entry == nil || entry.files != 0 || entry.reserved != 0 || entry.bytes != 0 {
		return
	}
	delete(u.directories, directory)
	if entry.session != "" {
		remaining := slices.DeleteFunc(u.sessions[entry.session], func(d string) bool { return d == directory })
		if len(remaining) == 0 {
			delete(u.sessions, entry.session)
		} else {
			u.sessions[entry.session] = remaining
		}
	}
}

// quotaExceeded says which quota an upload would pass.
type quotaExceeded struct {
	// flag and field name the limit; limit is its value, used what the
	// directory or all files hold (with the uploads in progress), where
	// the snapshot directory or "" for all files.
	flag, field string
	limit, used int64
	where       string
}

// reserve admits an upload of bytes at path unless it would take all
// files past totalMax or its snapshot directory past directoryMax (a
// limit ≤ 0 is off); the upload then holds the bytes until release.
func (u *fileUsage) reserve(path string, bytes, totalMax, directoryMax int64) *quotaExceeded {
	_, directory, session := classifyFile(path)
	u.mu.Lock()
	defer u.mu.Unlock()
	if totalMax > 0 && u.total+u.reserved+bytes > totalMax {
		return &quotaExceeded{flag: "--files-total-bytes-max", field: "FilesTotalBytesMax", limit: totalMax, used: u.total + u.reserved}
	}
	if directory != "" && directoryMax > 0 {
		entry := u.directories[directory]
		used := int64(0)
		if entry != nil {
			used = entry.bytes + entry.reserved
		}
		if used+bytes > directoryMax {
			return &quotaExceeded{flag: "--files-session-bytes-max", field: "FilesSessionBytesMax", limit: directoryMax, used: used, where: directory}
		}
	}
	u.reserved += bytes
	if directory != "" {
		u.directoryLocked(directory, session).reserved += bytes
	}
	return nil
}

// release gives back what reserve took.
func (u *fileUsage) release(path string, bytes int64) {
	_, directory, _ := classifyFile(path)
	u.mu.Lock()
	defer u.mu.Unlock()
	u.reserved -= bytes
	if entry := u.directories[directory]; entry != nil {
		entry.reserved -= bytes
		u.dropIfEmptyLocked(directory)
	}
}

// room returns how many bytes (at most limit) an upload of unknown size
// may still store at path within the quotas, and the quota that bounds
// it below limit (nil: none does).
func (u *fileUsage) room(path string, limit, totalMax, directoryMax int64) (int64, *quotaExceeded) {
	_, directory, _ := classifyFile(path)
	u.mu.Lock()
	defer u.mu.Unlock()
	room, bound := limit, (*quotaExceeded)(nil)
	if totalMax > 0 && totalMax-u.total-u.reserved < room {
		room = totalMax - u.total - u.reserved
		bound = &quotaExceeded{flag: "--files-total-bytes-max", field: "FilesTotalBytesMax", limit: totalMax, used: u.total + u.reserved}
	}
	if entry := u.directories[directory]; directory != "" && directoryMax > 0 {
		used := int64(0)
		if entry != nil {
			used = entry.bytes + entry.reserved
		}
		if directoryMax-used < room {
			room = directoryMax - used
			bound = &quotaExceeded{flag: "--files-session-bytes-max", field: "FilesSessionBytesMax", limit: directoryMax, used: used, where: directory}
		}
	}
	return max(room, 0), bound
}

// directoriesOf returns the session's snapshot directories, sorted.
func (u *fileUsage) directoriesOf(session string) []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Sorted(slices.Values(u.sessions[session]))
}

// snapshotDirectory is one entry of snapshotDirectories.
type snapshotDirectory struct {
	directory, session string
	files              int64
}

// snapshotDirectories lists the session snapshot directories, sorted.
func (u *fileUsage) snapshotDirectories() []snapshotDirectory {
	u.mu.Lock()
	list := make([]snapshotDirectory, 0, len(u.directories))
	for directory, entry := range u.directories {
		list = append(list, snapshotDirectory{directory: directory, session: entry.session, files: entry.files})
	}
	u.mu.Unlock()
	slices.SortFunc(list, func(a, b snapshotDirectory) int { return strings.Compare(a.directory, b.directory) })
	return list
}

// byKind returns the bytes of each kind.
func (u *fileUsage) byKind() [fileKindCount]int64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.kinds
}

// directoryBytes returns the bytes under a snapshot directory (tests).
func (u *fileUsage) directoryBytes(directory string) int64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	if entry := u.directories[directory]; entry != nil {
		return entry.bytes
	}
	return 0
}
