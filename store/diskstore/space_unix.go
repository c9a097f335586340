//go:build unix

package diskstore

import "golang.org/x/sys/unix"

// FreeBytes returns the space left for an unprivileged writer on the file
// system of the data directory (statfs(2)): the server keeps uploads from
// taking the last of it, which the journal needs.
func (s *Store) FreeBytes() (int64, error) {
	var stat unix.Statfs_t
	if err := unix.Statfs(s.root, &stat); err != nil {
		return 0, err
	}
	return int64(stat.Bavail) * int64(stat.Bsize), nil
}
