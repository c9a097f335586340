package store

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits on the names a store accepts. They keep every name usable as a
// relative path on common file systems (255 bytes is NAME_MAX on Linux,
// macOS and Windows).
const (
	// PathBytesMax bounds a whole file path or pointer key.
	PathBytesMax = 1024

	// PathSegmentBytesMax bounds one "/"-separated segment of a path.
	PathSegmentBytesMax = 255

	// SessionIDBytesMax bounds a session id. It equals
	// protocol.SessionIDBytesMax; this package imports no protocol code.
	SessionIDBytesMax = 128
)

// ValidatePath checks a file path or pointer key: a relative, "/"-separated
// path that stays inside the directory it is joined to. It rejects empty
// paths, absolute paths, empty, "." and ".." segments, backslashes, invalid
// UTF-8, control characters (C0, DEL and C1), segments longer than
// PathSegmentBytesMax and paths longer than PathBytesMax. Every other
// printable character is allowed; clients use base64url, '.', '_' and '-'.
//
// The error wraps ErrBadPath and says what is wrong.
func ValidatePath(path string) error {
	if path == "" {
		return fmt.Errorf("%w: path is empty", ErrBadPath)
	}
	if len(path) > PathBytesMax {
		return fmt.Errorf("%w: path is %d bytes, limit PathBytesMax is %d", ErrBadPath, len(path), PathBytesMax)
	}
	if path[0] == '/' {
		return fmt.Errorf("%w: path %q is absolute (starts with \"/\")", ErrBadPath, path)
	}
	if problem := characterProblem(path, '\\'); problem != "" {
		return fmt.Errorf("%w: path %q %s", ErrBadPath, path, problem)
	}
	for index, segment := range strings.Split(path, "/") {
		switch {
		case segment == "":
			return fmt.Errorf("%w: path %q has an empty segment (number %d)", ErrBadPath, path, index+1)
		case segment == "." || segment == "..":
			return fmt.Errorf("%w: path %q has a %q segment", ErrBadPath, path, segment)
		case len(segment) > PathSegmentBytesMax:
			return fmt.Errorf("%w: path segment %d is %d bytes, limit PathSegmentBytesMax is %d", ErrBadPath, index+1, len(segment), PathSegmentBytesMax)
		}
	}
	return nil
}

// ValidateDirectory checks the directory argument of
// FileCatalog.WalkFiles: "" (every file) or a path that ValidatePath
// accepts.
func ValidateDirectory(dir string) error {
	if dir == "" {
		return nil
	}
	return ValidatePath(dir)
}

// ValidateSessionID checks that a session id can be used as the name of one
// directory: not empty, at most SessionIDBytesMax bytes, not "." or "..",
// valid UTF-8 without "/", "\" or control characters.
//
// The error wraps ErrBadSessionID and says what is wrong.
func ValidateSessionID(sessionID string) error {
	switch {
	case sessionID == "":
		return fmt.Errorf("%w: session id is empty", ErrBadSessionID)
	case len(sessionID) > SessionIDBytesMax:
		return fmt.Errorf("%w: session id is %d bytes, limit SessionIDBytesMax is %d", ErrBadSessionID, len(sessionID), SessionIDBytesMax)
	case sessionID == "." || sessionID == "..":
		return fmt.Errorf("%w: session id %q is a relative directory name", ErrBadSessionID, sessionID)
	}
	if problem := characterProblem(sessionID, '\\', '/'); problem != "" {
		return fmt.Errorf("%w: session id %q %s", ErrBadSessionID, sessionID, problem)
	}
	return nil
}

// characterProblem describes the first character of name that is invalid
// UTF-8, a control character or one of forbidden, or returns "".
func characterProblem(name string, forbidden ...rune) string {
	for offset, character := range name {
		switch {
		case character == utf8.RuneError && !strings.HasPrefix(name[offset:], string(utf8.RuneError)):
			return fmt.Sprintf("is not valid UTF-8 at byte %d", offset)
		case unicode.IsControl(character):
			return fmt.Sprintf("has control character %U at byte %d", character, offset)
		}
		for _, bad := range forbidden {
			if character == bad {
				return fmt.Sprintf("has a %q at byte %d", character, offset)
			}
		}
	}
	return ""
}
