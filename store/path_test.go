package store

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidatePathAccepts(t *testing.T) {
	for _, path := range []string{
		"a",
		"snapshots/kzR8-_abc/0000006218_4294967283-kzR8.snap",
		"apps/com.example.app/persistent/save/hash43",
		"a/b/c.d",
		"...",
		"..a/b..",
		"with space/ünïcödé/日本",
		strings.Repeat("x", PathSegmentBytesMax),
		strings.Repeat(strings.Repeat("y", 99)+"/", 10) + strings.Repeat("z", PathBytesMax-1000),
	} {
		if err := ValidatePath(path); err != nil {
			t.Errorf("ValidatePath(%q) = %v, want nil", path, err)
		}
	}
}

func TestValidatePathRejects(t *testing.T) {
	for _, test := range []struct {
		path string
		want string // a part of the error message
	}{
		{"", "empty"},
		{"/abs", "absolute"},
		{"/", "absolute"},
		{"a//b", "empty segment"},
		{"a/", "empty segment"},
		{".", `"." segment`},
		{"a/./b", `"." segment`},
		{"..", `".." segment`},
		{"../x", `".." segment`},
		{"a/..", `".." segment`},
		{`a\b`, `'\\'`},
		{"a/\x00b", "U+0000"},
		{"a\nb", "U+000A"},
		{"a\x7fb", "U+007F"},
		{"a\u0085b", "U+0085"},
		{"a\xffb", "UTF-8"},
		{strings.Repeat("x", PathSegmentBytesMax+1), "PathSegmentBytesMax"},
		{strings.Repeat("x/", PathBytesMax/2) + "x", "PathBytesMax"},
	} {
		err := ValidatePath(test.path)
		if !errors.Is(err, ErrBadPath) {
			t.Errorf("ValidatePath(%q) = %v, want ErrBadPath", test.path, err)
			continue
		}
		if !strings.Contains(err.Error(), test.want) {
			t.Errorf("ValidatePath(%q) = %q, want it to mention %q", test.path, err, test.want)
		}
	}
}

func TestValidateDirectory(t *testing.T) {
	for _, dir := range []string{"", "a", "snapshots/session"} {
		if err := ValidateDirectory(dir); err != nil {
			t.Errorf("ValidateDirectory(%q) = %v, want nil", dir, err)
		}
	}
	for _, dir := range []string{"/a", "../a", "a/", "a//b"} {
		if err := ValidateDirectory(dir); !errors.Is(err, ErrBadPath) {
			t.Errorf("ValidateDirectory(%q) = %v, want ErrBadPath", dir, err)
		}
	}
}

func TestValidateSessionID(t *testing.T) {
	for _, id := range []string{"kzR8-_abcdefghijklmnopqrstuvwxyz0123456789ABC", "a", "a.b", "...", strings.Repeat("s", SessionIDBytesMax)} {
		if err := ValidateSessionID(id); err != nil {
			t.Errorf("ValidateSessionID(%q) = %v, want nil", id, err)
		}
	}
	for _, test := range []struct {
		id   string
		want string
	}{
		{"", "empty"},
		{".", "relative"},
		{"..", "relative"},
		{"a/b", `'/'`},
		{`a\b`, `'\\'`},
		{"a\x00", "U+0000"},
		{"a\tb", "U+0009"},
		{"\xc3", "UTF-8"},
		{strings.Repeat("s", SessionIDBytesMax+1), "SessionIDBytesMax"},
	} {
		err := ValidateSessionID(test.id)
		if !errors.Is(err, ErrBadSessionID) {
			t.Errorf("ValidateSessionID(%q) = %v, want ErrBadSessionID", test.id, err)
			continue
		}
		if !strings.Contains(err.Error(), test.want) {
			t.Errorf("ValidateSessionID(%q) = %q, want it to mention %q", test.id, err, test.want)
		}
	}
}

// FuzzValidatePath checks that every accepted path, joined to a root, stays
// strictly inside that root and is already in clean form.
func FuzzValidatePath(f *testing.F) {
	for _, seed := range []string{"a/b", "../x", "a/./b", "a//b", "/abs", `a\b`, "a/\x00b", "é/..."} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, path string) {
		if ValidatePath(path) != nil {
			return
		}
		if filepath.Clean(path) != filepath.FromSlash(path) {
			t.Fatalf("accepted %q is not clean: %q", path, filepath.Clean(path))
		}
		root := filepath.FromSlash("/root/dir")
		joined := filepath.Join(root, path)
		if !strings.HasPrefix(joined, root+string(filepath.Separator)) {
			t.Fatalf("accepted %q escapes the root: %q", path, joined)
		}
		if !filepath.IsLocal(path) {
			t.Fatalf("accepted %q is not local", path)
		}
	})
}
