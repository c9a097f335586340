//go:build !unix

package diskstore

import "errors"

// FreeBytes is not known on this system.
func (s *Store) FreeBytes() (int64, error) {
	return 0, errors.New("diskstore: free space is not known on this system")
}
