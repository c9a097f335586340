package vet

import (
	"go/ast"
	"go/token"
	"go/types"
	"strconv"
	"strings"

	"golang.org/x/tools/go/ssa"
)

// The Go specification lets the compiler fuse a multiplication and an
// addition "possibly across statements", and the compiler does so on SSA
// values, after inlining: on arm64, ppc64le, s390x, riscv64 and amd64 v3,
// gc 1.26 fuses
//
//	p := a * b; x = p + c          // a product in a local variable
//	x = mul(a, b) + c              // func mul(a, b float64) float64 { return a * b }
//
// but not float64(p) + c, nor a product that reaches the addition through a
// phi (assigned in a branch), nor a helper marked //go:noinline or with more
// than one return. The rules below follow those observations; the syntactic
// x*y + z is reported by checkMultiplyAdd, with a fix.

// inlineBudgetNodes approximates the gc inliner's budget (80 IR nodes) by
// the number of syntax nodes in a function's body: a helper bigger than
// that is assumed not to be inlined, so its product is not followed.
const inlineBudgetNodes = 80

// helperDepthMax bounds how far product helpers that return the result of
// other product helpers are followed.
const helperDepthMax = 8

// fusionSites indexes, by the position go/ssa gives their arithmetic, the
// source of every addition and subtraction (x + y, x += y, x++) and of
// every multiplication and call of the package.
type fusionSites struct {
	additions map[token.Pos]ast.Node
	products  map[token.Pos]*ast.BinaryExpr
	calls     map[token.Pos]*ast.CallExpr
}

func indexFusionSites(files []*ast.File) fusionSites {
	sites := fusionSites{map[token.Pos]ast.Node{}, map[token.Pos]*ast.BinaryExpr{}, map[token.Pos]*ast.CallExpr{}}
	for _, file := range files {
		ast.Inspect(file, func(node ast.Node) bool {
			switch node := node.(type) {
			case *ast.BinaryExpr:
				switch node.Op {
				case token.ADD, token.SUB:
					sites.additions[node.OpPos] = node
				case token.MUL:
					sites.products[node.OpPos] = node
				}
			case *ast.AssignStmt:
				if node.Tok == token.ADD_ASSIGN || node.Tok == token.SUB_ASSIGN {
					sites.additions[node.Pos()] = node
				}
			case *ast.IncDecStmt:
				sites.additions[node.Pos()] = node
			case *ast.CallExpr:
				sites.calls[node.Lparen] = node
			}
			return true
		})
	}
	return sites
}

// fusion finds the multiply-adds whose product reaches the addition through
// a local variable or an inlinable helper.
type fusion struct {
	*checker
	sites fusionSites
	// helpers memoizes productHelper: nil for a function that is not one.
	helpers map[*ssa.Function]*returnedProduct
}

// returnedProduct is a product that a helper returns unrounded, and the
// function that computes it: the helper, or a helper that it calls.
type returnedProduct struct {
	expression *ast.BinaryExpr
	function   *ssa.Function
}

// checkFusion reports the additions and subtractions of functions that add
// an unrounded product which is not written in the addition itself.
func (c *checker) checkFusion(functions []*ssa.Function) {
	f := &fusion{checker: c, sites: indexFusionSites(c.pass.Files), helpers: map[*ssa.Function]*returnedProduct{}}
	for _, function := range functions {
		rounded := explicitlyRounded(c.pass.TypesInfo, function)
		for _, block := range function.Blocks {
			for _, instruction := range block.Instrs {
				if addition, isBinary := instruction.(*ssa.BinOp); isBinary && (addition.Op == token.ADD || addition.Op == token.SUB) && anyCoreType(addition.Type(), isFloatType) {
					f.checkAddition(addition, rounded)
				}
			}
		}
	}
}

// checkAddition reports addition if one of its operands is an unrounded
// product that the source does not write as an operand of the addition
// (that case is checkMultiplyAdd's).
func (f *fusion) checkAddition(addition *ssa.BinOp, rounded map[ssa.Value]bool) {
	site, found := f.sites.additions[addition.Pos()]
	if !found {
		return
	}
	sources := operandSources(site)
	for i, operand := range []ssa.Value{addition.X, addition.Y} {
		if rounded[operand] || sources[i] == nil {
			continue
		}
		source := ast.Unparen(sources[i])
		switch operand := operand.(type) {
		case *ssa.BinOp, *ssa.UnOp:
			product, negated := f.unroundedProduct(operand, rounded)
			if product == nil || source == product {
				continue
			}
			how := " holds"
			if negated {
				how = " negates"
			}
			f.report(site, categoryFusedMultiply, "floating-point multiply-add "+siteText(site)+": "+types.ExprString(source)+how+" the unrounded product "+types.ExprString(product)+" (line "+f.line(product)+"), and "+fusedIndirectly+"; round the product where it is computed, "+f.typeName(product)+"("+types.ExprString(product)+"), or where it is added, "+f.typeName(source)+"("+types.ExprString(source)+")")
			return
		case *ssa.Call:
			product := f.productHelper(staticCallee(operand), 0)
			call := f.sites.calls[operand.Pos()]
			if product == nil || call == nil {
				continue
			}
			how := types.ExprString(call) + " returns"
			if source != call {
				how = types.ExprString(source) + " holds " + types.ExprString(call) + ", which returns"
			}
			holder := product.function.Name()
			f.report(site, categoryFusedMultiply, "floating-point multiply-add "+siteText(site)+" through an inlined call: "+how+" the unrounded product "+types.ExprString(product.expression)+" of "+holder+" (line "+f.line(product.expression)+"), and "+fusedIndirectly+"; round the product in "+holder+", return "+f.typeName(product.expression)+"("+types.ExprString(product.expression)+"), or where it is added, "+f.typeName(source)+"("+types.ExprString(source)+")")
			return
		}
	}
}

// fusedIndirectly completes the message of a multiply-add whose product is
// not written in the addition.
const fusedIndirectly = "the compiler may fuse them into one FMA instruction, across statements and inlined calls, on arm64 (and amd64 with GOAMD64=v3) but not on wasm, so it rounds differently between replicas"

// unroundedProduct returns the source of value if value is a floating-point
// multiplication, or the negation of one (the compiler fuses -(x*y) + z
// too), that no explicit conversion in the function rounds.
func (f *fusion) unroundedProduct(value ssa.Value, rounded map[ssa.Value]bool) (product *ast.BinaryExpr, negated bool) {
	if negation, isUnary := value.(*ssa.UnOp); isUnary && negation.Op == token.SUB && !rounded[value] {
		value, negated = negation.X, true
	}
	multiplication, isBinary := value.(*ssa.BinOp)
	if !isBinary || rounded[value] || multiplication.Op != token.MUL || !anyCoreType(multiplication.Type(), isFloatType) {
		return nil, false
	}
	return f.sites.products[multiplication.Pos()], negated
}

// operandSources returns the source expressions of the two SSA operands of
// the addition at site: x and y of x + y, the variable and the value of
// x += y, the variable of x++ (whose second operand is the constant 1).
func operandSources(site ast.Node) [2]ast.Expr {
	switch site := site.(type) {
	case *ast.BinaryExpr:
		return [2]ast.Expr{site.X, site.Y}
	case *ast.AssignStmt:
		return [2]ast.Expr{site.Lhs[0], site.Rhs[0]}
	case *ast.IncDecStmt:
		return [2]ast.Expr{site.X, nil}
	}
	return [2]ast.Expr{}
}

func siteText(site ast.Node) string {
	switch site := site.(type) {
	case *ast.AssignStmt:
		return types.ExprString(site.Lhs[0]) + " " + site.Tok.String() + " " + types.ExprString(site.Rhs[0])
	case *ast.IncDecStmt:
		return types.ExprString(site.X) + site.Tok.String()
	case ast.Expr:
		return types.ExprString(site)
	}
	return ""
}

func (f *fusion) line(node ast.Node) string {
	return strconv.Itoa(f.pass.Fset.Position(node.Pos()).Line)
}

// staticCallee is the function that call calls, if it is known statically;
// for an instance of a generic function, the generic function, whose body
// is the one with syntax.
func staticCallee(call *ssa.Call) *ssa.Function {
	callee := call.Call.StaticCallee()
	if callee != nil && callee.Origin() != nil {
		return callee.Origin()
	}
	return callee
}

// productHelper returns the product that function returns unrounded, if the
// compiler may inline function and so expose the product to the caller's
// addition; else nil. This approximates the gc inliner: function is declared
// in this package (a function, method or literal), is not marked
// //go:noinline, has at most inlineBudgetNodes syntax nodes, is not
// recursive, and has a single return statement, with one result, which is an
// unrounded floating-point product (directly, through a local variable or
// from another product helper).
func (f *fusion) productHelper(function *ssa.Function, depth int) *returnedProduct {
	if function == nil || function.Pkg == nil || function.Pkg.Pkg != f.pass.Pkg || function.Syntax() == nil {
		return nil
	}
	if product, known := f.helpers[function]; known {
		return product
	}
	f.helpers[function] = nil // a recursive function is not inlined
	if depth >= helperDepthMax || !inlinable(function.Syntax()) {
		return nil
	}
	result := singleResult(function)
	rounded := explicitlyRounded(f.pass.TypesInfo, function)
	if result == nil || rounded[result] {
		return nil
	}
	var product *returnedProduct
	if call, isCall := result.(*ssa.Call); isCall {
		product = f.productHelper(staticCallee(call), depth+1)
	} else if expression, _ := f.unroundedProduct(result, rounded); expression != nil {
		product = &returnedProduct{expression, function}
	}
	f.helpers[function] = product
	return product
}

// singleResult returns the value of function's only return statement, if it
// has exactly one, with one result.
func singleResult(function *ssa.Function) ssa.Value {
	var result ssa.Value
	returns := 0
	for _, block := range function.Blocks {
		if ret, isReturn := lastInstruction(block).(*ssa.Return); isReturn {
			returns++
			if len(ret.Results) == 1 {
				result = ret.Results[0]
			}
		}
	}
	if returns != 1 {
		return nil
	}
	return result
}

// inlinable reports whether the function with the given syntax may be
// inlined: it is small and not marked //go:noinline.
func inlinable(syntax ast.Node) bool {
	var body *ast.BlockStmt
	switch syntax := syntax.(type) {
	case *ast.FuncDecl:
		if syntax.Doc != nil {
			for _, comment := range syntax.Doc.List {
				if strings.HasPrefix(comment.Text, "//go:noinline") {
					return false
				}
			}
		}
		body = syntax.Body
	case *ast.FuncLit:
		body = syntax.Body
	}
	if body == nil {
		return false
	}
	nodes := 0
	ast.Inspect(body, func(node ast.Node) bool {
		if node != nil {
			nodes++
		}
		return nodes <= inlineBudgetNodes
	})
	return nodes <= inlineBudgetNodes
}
