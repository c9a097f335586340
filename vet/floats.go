package vet

import (
	"go/ast"
	"go/token"
	"go/types"

	"golang.org/x/tools/go/analysis"
)

// The Go specification lets a compiler fuse x*y + z into one fused
// multiply-add instruction, which rounds once instead of twice. The gc
// compiler does so on arm64, ppc64, s390x and riscv64, and on amd64 built
// with GOAMD64=v3, but not on wasm or plain amd64, so the same expression
// gives different bits on different replicas. An explicit conversion,
// float64(x*y) + z, rounds the product and forbids fusion; math.FMA fuses on
// every target.
const fusedMultiplyAdd = "the compiler may fuse it into one FMA instruction on arm64 (and amd64 with GOAMD64=v3) but not on wasm, so it rounds differently between replicas"

// checkMultiplyAdd reports x*y + z, z + x*y, x*y - z and z - x*y on floats.
func (c *checker) checkMultiplyAdd(expression *ast.BinaryExpr) {
	if expression.Op != token.ADD && expression.Op != token.SUB {
		return
	}
	if !c.isRuntimeFloat(expression) {
		return
	}
	var products []ast.Expr
	for _, operand := range []ast.Expr{expression.X, expression.Y} {
		if c.floatProduct(operand) != nil {
			products = append(products, operand)
		}
	}
	if len(products) == 0 {
		return
	}
	c.report(expression, categoryFusedMultiply, "floating-point multiply-add "+types.ExprString(expression)+": "+fusedMultiplyAdd+"; write "+c.roundedText(expression.X)+" "+expression.Op.String()+" "+c.roundedText(expression.Y)+" to round the product first, or math.FMA for one rounding everywhere",
		c.roundProductsFix(products)...)
}

// checkMultiplyAssign reports z += x*y and z -= x*y on floats.
func (c *checker) checkMultiplyAssign(assignment *ast.AssignStmt) {
	if (assignment.Tok != token.ADD_ASSIGN && assignment.Tok != token.SUB_ASSIGN) || len(assignment.Rhs) != 1 {
		return
	}
	if c.floatProduct(assignment.Rhs[0]) == nil {
		return
	}
	c.report(assignment, categoryFusedMultiply, "floating-point multiply-add "+types.ExprString(assignment.Lhs[0])+" "+assignment.Tok.String()+" "+types.ExprString(assignment.Rhs[0])+": "+fusedMultiplyAdd+"; write "+types.ExprString(assignment.Lhs[0])+" "+assignment.Tok.String()+" "+c.roundedText(assignment.Rhs[0])+" to round the product first, or math.FMA for one rounding everywhere",
		c.roundProductsFix(assignment.Rhs)...)
}

// isRuntimeFloat reports whether expression is a floating-point value (or of
// a type parameter that may be one) that is computed at run time: constants
// are folded exactly by the compiler.
func (c *checker) isRuntimeFloat(expression ast.Expr) bool {
	typeAndValue, found := c.pass.TypesInfo.Types[expression]
	if !found || typeAndValue.Value != nil || typeAndValue.Type == nil {
		return false
	}
	return anyCoreType(typeAndValue.Type, isFloatType)
}

// floatProduct returns operand (without parentheses) if it is a run-time
// floating-point multiplication, else nil.
func (c *checker) floatProduct(operand ast.Expr) *ast.BinaryExpr {
	product, isBinary := ast.Unparen(operand).(*ast.BinaryExpr)
	if !isBinary || product.Op != token.MUL || !c.isRuntimeFloat(product) {
		return nil
	}
	return product
}

// roundedText is operand as source text, wrapped in a conversion to its own
// type if it is a floating-point product.
func (c *checker) roundedText(operand ast.Expr) string {
	product := c.floatProduct(operand)
	if product == nil {
		return types.ExprString(operand)
	}
	return c.typeName(product) + "(" + types.ExprString(product) + ")"
}

func (c *checker) typeName(expression ast.Expr) string {
	return types.TypeString(c.pass.TypesInfo.TypeOf(expression), func(p *types.Package) string {
		if p == c.pass.Pkg {
			return ""
		}
		return p.Name()
	})
}

// roundProductsFix wraps each product operand in a conversion to its type.
// It is offered only for float32 and float64, whose names need no import.
func (c *checker) roundProductsFix(operands []ast.Expr) []analysis.SuggestedFix {
	var edits []analysis.TextEdit
	for _, operand := range operands {
		if _, isBasic := types.Unalias(c.pass.TypesInfo.TypeOf(operand)).(*types.Basic); !isBasic {
			return nil
		}
		name := c.typeName(operand)
		if _, isParen := operand.(*ast.ParenExpr); isParen {
			edits = append(edits, analysis.TextEdit{Pos: operand.Pos(), End: operand.Pos(), NewText: []byte(name)})
			continue
		}
		edits = append(edits,
			analysis.TextEdit{Pos: operand.Pos(), End: operand.Pos(), NewText: []byte(name + "(")},
			analysis.TextEdit{Pos: operand.End(), End: operand.End(), NewText: []byte(")")})
	}
	return []analysis.SuggestedFix{{Message: "round the product with an explicit conversion", TextEdits: edits}}
}
