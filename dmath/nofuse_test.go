package dmath

import (
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"path/filepath"
	"strings"
	"testing"
)

// TestNoFusableProducts is the guarantee behind the package: in dmath's
// own code (not its tests), every non-constant floating-point product is
// the direct operand of an explicit float64(...) or float32(...)
// conversion, so the compiler can never fuse it into a multiply-add, and
// there are no *= assignments on floats. Fusion works on the compiled form
// (across statements and after inlining), so the only safe rule is to round
// every product, not just those written next to a + or -.
func TestNoFusableProducts(t *testing.T) {
	fileSet := token.NewFileSet()
	paths, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var files []*ast.File
	for _, path := range paths {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fileSet, path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, file)
	}
	info := &types.Info{Types: map[ast.Expr]types.TypeAndValue{}}
	config := types.Config{Importer: importer.ForCompiler(fileSet, "source", nil)}
	if _, err := config.Check("dmath", fileSet, files, info); err != nil {
		t.Fatal(err)
	}
	isFloat := func(expression ast.Expr) bool {
		typeAndValue, ok := info.Types[expression]
		if !ok || typeAndValue.Value != nil { // constants are folded exactly at compile time
			return false
		}
		basic, ok := typeAndValue.Type.Underlying().(*types.Basic)
		return ok && basic.Info()&types.IsFloat != 0
	}
	problems := 0
	for _, file := range files {
		var stack []ast.Node
		ast.Inspect(file, func(node ast.Node) bool {
			if node == nil {
				stack = stack[:len(stack)-1]
				return true
			}
			switch n := node.(type) {
			case *ast.BinaryExpr:
				if n.Op == token.MUL && isFloat(n) && !isRoundedByConversion(stack, info) {
					t.Errorf("%s: product %s is not wrapped in float64(...)", fileSet.Position(n.Pos()), types.ExprString(n))
					problems++
				}
			case *ast.AssignStmt:
				if n.Tok == token.MUL_ASSIGN && isFloat(n.Lhs[0]) {
					t.Errorf("%s: %s *= ... on a float; write x = float64(x * y)", fileSet.Position(n.Pos()), types.ExprString(n.Lhs[0]))
					problems++
				}
			}
			stack = append(stack, node)
			return true
		})
	}
	if problems == 0 {
		t.Logf("checked %d files: every float product is rounded explicitly", len(files))
	}
}

// isRoundedByConversion reports whether the innermost enclosing node of
// the expression being visited, skipping parentheses, is a conversion to a
// floating-point type.
func isRoundedByConversion(stack []ast.Node, info *types.Info) bool {
	for i := len(stack) - 1; i >= 0; i-- {
		switch parent := stack[i].(type) {
		case *ast.ParenExpr:
			continue
		case *ast.CallExpr:
			target, ok := info.Types[parent.Fun]
			if !ok || !target.IsType() {
				return false
			}
			basic, ok := target.Type.Underlying().(*types.Basic)
			return ok && basic.Info()&types.IsFloat != 0
		default:
			return false
		}
	}
	return false
}

// TestNoFusableProductsDetects makes sure the checker above is not
// vacuous: it must find the products in an unrounded formula.
func TestNoFusableProductsDetects(t *testing.T) {
	source := "package p\nfunc f(a, b, c float64) float64 { x := a*b; return x + float64(b*c) + a*c }\n"
	fileSet := token.NewFileSet()
	file, err := parser.ParseFile(fileSet, "p.go", source, 0)
	if err != nil {
		t.Fatal(err)
	}
	info := &types.Info{Types: map[ast.Expr]types.TypeAndValue{}}
	if _, err := (&types.Config{}).Check("p", fileSet, []*ast.File{file}, info); err != nil {
		t.Fatal(err)
	}
	unrounded := 0
	var stack []ast.Node
	ast.Inspect(file, func(node ast.Node) bool {
		if node == nil {
			stack = stack[:len(stack)-1]
			return true
		}
		if n, ok := node.(*ast.BinaryExpr); ok && n.Op == token.MUL && !isRoundedByConversion(stack, info) {
			unrounded++
		}
		stack = append(stack, node)
		return true
	})
	if unrounded != 2 {
		t.Fatalf("found %d unrounded products in %q, want 2 (a*b and a*c)", unrounded, source)
	}
}
