package auth

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// allowedImports is everything the package may import: the standard
// library's encodings and cryptography, no I/O, clock, randomness,
// goroutines or logging (the package doc's promise).
var allowedImports = map[string]bool{
	"bytes": true, "crypto/ed25519": true, "crypto/sha256": true, "crypto/subtle": true, "crypto/x509": true,
	"encoding/base64": true, "encoding/json": true, "encoding/pem": true, "errors": true, "fmt": true,
	"io": true, "slices": true, "strings": true, "time": true,
}

// TestPurity checks the package's imports, and that it never reads the
// clock: time is imported for time.Time values only.
func TestPurity(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fileSet := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		source, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		file, err := parser.ParseFile(fileSet, name, source, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, spec := range file.Imports {
			path, _ := strconv.Unquote(spec.Path.Value)
			if !allowedImports[path] {
				t.Errorf("%s imports %s, which package auth must not use", name, path)
			}
		}
		ast.Inspect(file, func(node ast.Node) bool {
			selector, ok := node.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if pkg, ok := selector.X.(*ast.Ident); ok && pkg.Name == "time" && (selector.Sel.Name == "Now" || selector.Sel.Name == "Since" || selector.Sel.Name == "Until") {
				t.Errorf("%s: time.%s reads the clock; take the time as a parameter", fileSet.Position(selector.Pos()), selector.Sel.Name)
			}
			return true
		})
		ast.Inspect(file, func(node ast.Node) bool {
			if _, ok := node.(*ast.GoStmt); ok {
				t.Errorf("%s: package auth starts no goroutines", fileSet.Position(node.Pos()))
			}
			return true
		})
	}
}
