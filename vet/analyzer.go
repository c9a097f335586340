package vet

import (
	"cmp"
	"go/ast"
	"slices"

	"golang.org/x/tools/go/analysis"
	"golang.org/x/tools/go/analysis/passes/inspect"
	"golang.org/x/tools/go/ast/inspector"
)

// Analyzer reports constructs that make a replicated model nondeterministic.
// See the package documentation for the rules and the allow comment.
var Analyzer = &analysis.Analyzer{
	Name:     "metronome",
	Doc:      "report nondeterminism in models of replicated simulations (map iteration, goroutines, channels, clocks, randomness, I/O, platform-dependent math, fusable multiply-adds, float-to-integer conversions, pointer addresses)",
	URL:      "https://pkg.go.dev/github.com/metronome-sync/metronome/vet",
	Requires: []*analysis.Analyzer{inspect.Analyzer},
	Run:      run,
}

// Diagnostic categories, one per rule, so tools can filter findings.
const (
	categoryMapOrder       = "map-order"
	categoryConcurrency    = "concurrency"
	categoryTime           = "time"
	categoryImport         = "import"
	categoryMath           = "math"
	categoryFusedMultiply  = "fused-multiply-add"
	categoryFloatToInt     = "float-to-int"
	categoryPointerAddress = "pointer-address"
	categoryAllow          = "allow"
)

// checker holds one pass and the findings collected so far; the findings are
// reported at the end, after the allow comments have been applied.
type checker struct {
	pass     *analysis.Pass
	findings []analysis.Diagnostic
}

func (c *checker) report(node analysis.Range, category, message string, fixes ...analysis.SuggestedFix) {
	c.findings = append(c.findings, analysis.Diagnostic{
		Pos:            node.Pos(),
		End:            node.End(),
		Category:       category,
		Message:        message,
		SuggestedFixes: fixes,
	})
}

func run(pass *analysis.Pass) (any, error) {
	c := &checker{pass: pass}
	root := pass.ResultOf[inspect.Analyzer].(*inspector.Inspector).Root()
	nodeTypes := []ast.Node{
		(*ast.ImportSpec)(nil),
		(*ast.Ident)(nil),
		(*ast.RangeStmt)(nil),
		(*ast.CallExpr)(nil),
		(*ast.GoStmt)(nil),
		(*ast.ChanType)(nil),
		(*ast.SendStmt)(nil),
		(*ast.UnaryExpr)(nil),
		(*ast.SelectStmt)(nil),
		(*ast.BinaryExpr)(nil),
		(*ast.AssignStmt)(nil),
	}
	for cursor := range root.Preorder(nodeTypes...) {
		switch node := cursor.Node().(type) {
		case *ast.ImportSpec:
			c.checkImport(node)
		case *ast.Ident:
			c.checkIdent(node)
		case *ast.RangeStmt:
			c.checkRange(node)
		case *ast.CallExpr:
			c.checkCall(cursor, node)
		case *ast.GoStmt, *ast.ChanType, *ast.SendStmt, *ast.UnaryExpr, *ast.SelectStmt:
			c.checkConcurrency(cursor)
		case *ast.BinaryExpr:
			c.checkMultiplyAdd(node)
		case *ast.AssignStmt:
			c.checkMultiplyAssign(node)
		}
	}
	// What reaches an addition or a conversion through variables, calls and
	// branches is found on the SSA form.
	functions := buildSSA(pass)
	c.checkFusion(functions)
	c.checkConversions(functions)
	for _, diagnostic := range applyAllows(pass, c.findings) {
		pass.Report(diagnostic)
	}
	return nil, nil
}

// sortDiagnostics orders diagnostics by position, then message, so that the
// analyzer's output does not depend on traversal details.
func sortDiagnostics(diagnostics []analysis.Diagnostic) {
	slices.SortStableFunc(diagnostics, func(a, b analysis.Diagnostic) int {
		return cmp.Or(cmp.Compare(a.Pos, b.Pos), cmp.Compare(a.Message, b.Message))
	})
}
