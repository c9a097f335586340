package archtest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// shells are the packages that drive reflector sessions (through package
// host) and client replicas (through package client/replica): the one
// implementation of executing the pure machines' effects on each side, so
// that the simulator tests what the server and the SDK run.
var shells = map[string][]string{
	"server": {"host"},
	"sim":    {"host", "client/replica"},
	"client": {"client/replica"},
}

// TestShellsDependOnTheHost: go list shows every shell importing its host.
func TestShellsDependOnTheHost(t *testing.T) {
	for _, shell := range slices.Sorted(maps.Keys(shells)) {
		output, err := exec.Command("go", "list", "-f", "{{join .Imports \"\\n\"}}", module+"/"+shell).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", shell, err)
		}
		for _, host := range shells[shell] {
			if !slices.Contains(strings.Fields(string(output)), module+"/"+host) {
				t.Errorf("%s does not import %s/%s: it must drive its machines through the one host", shell, module, host)
			}
		}
	}
}

// TestShellsExecuteNoEffects: no shell creates, restores or steps a core
// session, a link or a model runtime itself (New, Restore; stepping one
// needs an Effects value) or reads the core's storage and lookups: that is
// the hosts' job, and a second executor is how the copies drifted apart
// before.
func TestShellsExecuteNoEffects(t *testing.T) {
	forbiddenSelectors := map[string]map[string]string{
		"reflector": {
			"New":     "creates a core session (host.Open does)",
			"Restore": "restores a core session (host.Open does)",
			"Effects": "holds core effects (the host accumulates and executes them)",
			"Storage": "handles the storage effect (host.Session.Flush commits it)",
		},
		"link": {
			"New":     "creates a link (replica.New does)",
			"Effects": "holds link effects (the replica executes them)",
		},
		"island": {
			"New":     "creates a model runtime (the replica does)",
			"Restore": "restores a model runtime (the replica does)",
			"Effects": "holds model effects (the replica executes them)",
		},
	}
	for _, shell := range slices.Sorted(maps.Keys(shells)) {
		output, err := exec.Command("go", "list", "-f", "{{.Dir}}\n{{join .GoFiles \"\\n\"}}", module+"/"+shell).Output()
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Fields(string(output))
		dir, files := lines[0], lines[1:]
		for _, file := range files {
			path := filepath.Join(dir, file)
			fileSet := token.NewFileSet()
			parsed, err := parser.ParseFile(fileSet, path, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			ast.Inspect(parsed, func(node ast.Node) bool {
				switch n := node.(type) {
				case *ast.SelectorExpr:
					if pkg, ok := n.X.(*ast.Ident); ok {
						if why := forbiddenSelectors[pkg.Name][n.Sel.Name]; why != "" && !isObserverParameter(parsed, n) {
							t.Errorf("%s: %s.%s %s", fileSet.Position(n.Pos()), pkg.Name, n.Sel.Name, why)
						}
					}
					if n.Sel.Name == "Storage" || n.Sel.Name == "LookupPointers" {
						t.Errorf("%s: .%s: a shell reads the core's effects; the host executes them", fileSet.Position(n.Pos()), n.Sel.Name)
					}
				}
				return true
			})
		}
	}
}

// isObserverParameter allows *reflector.Effects as the parameter type of
// an Observer's Flushed method (the host reports the executed effects for
// logs and metrics).
func isObserverParameter(file *ast.File, selector *ast.SelectorExpr) bool {
	if selector.Sel.Name != "Effects" {
		return false
	}
	allowed := false
	ast.Inspect(file, func(node ast.Node) bool {
		decl, ok := node.(*ast.FuncDecl)
		if !ok || decl.Name.Name != "Flushed" || decl.Recv == nil {
			return true
		}
		for _, field := range decl.Type.Params.List {
			if star, ok := field.Type.(*ast.StarExpr); ok && star.X == selector {
				allowed = true
			}
		}
		return false
	})
	return allowed
}
