package vet

import (
	"go/ast"
	"go/constant"
	"go/token"
	"go/types"
	"math"

	"golang.org/x/tools/go/ssa"
)

// The Go specification leaves the result of converting a float to an
// integer type implementation-defined when the value, truncated, does not
// fit, and the targets disagree: int64(NaN) is -9223372036854775808 on
// amd64 and 0 on arm64 and wasm; int32(3e9) is -2147483648 on amd64,
// 2147483647 on arm64 and -1294967296 on wasm; uint64(-1.0) is
// 18446744073709551615 on amd64 and 0 on arm64.
const floatToIntDiffers = "if the value is NaN, infinite or out of range after truncation, the result differs between targets (int64(NaN) is -9223372036854775808 on amd64 and 0 on arm64 and wasm)"

// checkConversions reports the conversions of functions from a float to an
// integer type whose operand is not known to be in range.
func (c *checker) checkConversions(functions []*ssa.Function) {
	calls := map[token.Pos]*ast.CallExpr{}
	for _, file := range c.pass.Files {
		ast.Inspect(file, func(node ast.Node) bool {
			if call, isCall := node.(*ast.CallExpr); isCall {
				calls[call.Lparen] = call
			}
			return true
		})
	}
	for _, function := range functions {
		for _, block := range function.Blocks {
			for _, instruction := range block.Instrs {
				conversion, isConversion := instruction.(*ssa.Convert)
				if !isConversion || !anyCoreType(conversion.X.Type(), isFloatType) || !anyCoreType(conversion.Type(), isIntegerType) {
					continue
				}
				low, high, known := integerRange(conversion.Type())
				if known && provablyInRange(conversion, low, high) {
					continue
				}
				call := calls[conversion.Pos()]
				if call == nil {
					continue // not an explicit conversion in this package's source
				}
				c.report(call, categoryFloatToInt, "conversion "+types.ExprString(call)+" from "+c.typeName(call.Args[0])+" to "+c.typeName(call)+": "+floatToIntDiffers+"; check the converted value first, with comparisons that are false for NaN, e.g. if v >= 0 && v < 1000 { n = "+c.typeName(call)+"(v) } (vet accepts a conversion whose operand is a constant in range or is compared with constants on both sides on every path to it), or say why it is in range with //metronome:allow")
			}
		}
	}
}

// integerRange returns the smallest and largest value of integer type t; for
// a type parameter, those that every integer type of its constraint can
// hold. int, uint and uintptr have 64 bits on amd64, arm64 and wasm.
func integerRange(t types.Type) (low, high constant.Value, known bool) {
	anyCoreType(t, func(u types.Type) bool {
		basic, isBasic := u.(*types.Basic)
		if !isBasic || basic.Info()&types.IsInteger == 0 {
			return false
		}
		typeLow, typeHigh := basicIntegerRange(basic.Kind())
		if !known || constant.Compare(typeLow, token.GTR, low) {
			low = typeLow
		}
		if !known || constant.Compare(typeHigh, token.LSS, high) {
			high = typeHigh
		}
		known = true
		return false // visit every term
	})
	return low, high, known
}

func basicIntegerRange(kind types.BasicKind) (low, high constant.Value) {
	switch kind {
	case types.Int8:
		return constant.MakeInt64(math.MinInt8), constant.MakeInt64(math.MaxInt8)
	case types.Int16:
		return constant.MakeInt64(math.MinInt16), constant.MakeInt64(math.MaxInt16)
	case types.Int32:
		return constant.MakeInt64(math.MinInt32), constant.MakeInt64(math.MaxInt32)
	case types.Int, types.Int64:
		return constant.MakeInt64(math.MinInt64), constant.MakeInt64(math.MaxInt64)
	case types.Uint8:
		return constant.MakeInt64(0), constant.MakeUint64(math.MaxUint8)
	case types.Uint16:
		return constant.MakeInt64(0), constant.MakeUint64(math.MaxUint16)
	case types.Uint32:
		return constant.MakeInt64(0), constant.MakeUint64(math.MaxUint32)
	}
	return constant.MakeInt64(0), constant.MakeUint64(math.MaxUint64) // uint, uint64, uintptr
}

// bounds is what the branches on the way to a conversion establish about
// its operand v.
type bounds struct {
	notNaN bool // v is not NaN
	low    bool // v truncates to at least the target's minimum (if not NaN)
	high   bool // v truncates to at most the target's maximum (if not NaN)
}

// provablyInRange reports whether the operand of conversion truncates to a
// value in [low, high]: it is such a constant, or every path to the
// conversion passes branches that compare it with constants and show that
// it is not NaN and bounded on both sides.
func provablyInRange(conversion *ssa.Convert, low, high constant.Value) bool {
	// v truncates into [low, high] exactly when low-1 < v < high+1.
	below := constant.BinaryOp(low, token.SUB, constant.MakeInt64(1))
	above := constant.BinaryOp(high, token.ADD, constant.MakeInt64(1))
	operand := conversion.X
	if value, isConstant := operand.(*ssa.Const); isConstant {
		return value.Value != nil && constant.Compare(value.Value, token.GTR, below) && constant.Compare(value.Value, token.LSS, above)
	}
	var known bounds
	for block := conversion.Block(); block != nil; block = block.Idom() {
		// A block entered only from a branch is reached only when the
		// branch's condition has the value of that edge.
		if len(block.Preds) != 1 {
			continue
		}
		branch, isIf := lastInstruction(block.Preds[0]).(*ssa.If)
		if !isIf || block.Preds[0].Succs[0] == block.Preds[0].Succs[1] {
			continue
		}
		known.learn(operand, branch.Cond, block == block.Preds[0].Succs[0], below, above)
	}
	return known.notNaN && known.low && known.high
}

// learn adds what condition having the value taken says about operand.
func (known *bounds) learn(operand, condition ssa.Value, taken bool, below, above constant.Value) {
	switch condition := condition.(type) {
	case *ssa.UnOp:
		if condition.Op == token.NOT {
			known.learn(operand, condition.X, !taken, below, above)
		}
	case *ssa.Call:
		// math.IsNaN(v) or dmath.IsNaN(v) being false.
		callee := condition.Call.StaticCallee()
		if !taken && callee != nil && callee.Name() == "IsNaN" && callee.Pkg != nil &&
			(callee.Pkg.Pkg.Path() == "math" || callee.Pkg.Pkg.Path() == dmathPath) &&
			len(condition.Call.Args) == 1 && condition.Call.Args[0] == operand {
			known.notNaN = true
		}
	case *ssa.BinOp:
		known.learnComparison(operand, condition, taken, below, above)
	}
}

// learnComparison adds what "v op k" (or "k op v", or "v op v") having the
// value taken says about the operand v. A comparison with NaN is false
// except for !=, so a true <, <=, >, >= or == and a false != exclude NaN;
// once NaN is excluded, a false comparison is the true opposite one.
func (known *bounds) learnComparison(operand ssa.Value, comparison *ssa.BinOp, taken bool, below, above constant.Value) {
	op := comparison.Op
	var limit *ssa.Const
	switch {
	case comparison.X == operand && comparison.Y == operand:
		if (op == token.EQL && taken) || (op == token.NEQ && !taken) {
			known.notNaN = true // v == v
		}
		return
	case comparison.X == operand:
		limit, _ = comparison.Y.(*ssa.Const)
	case comparison.Y == operand:
		limit, _ = comparison.X.(*ssa.Const)
		op = mirror(op)
	}
	if limit == nil || limit.Value == nil {
		return
	}
	if (taken && op != token.NEQ) || (!taken && op == token.NEQ) {
		known.notNaN = true
	}
	if !taken {
		op = negate(op)
	}
	k := limit.Value
	switch op {
	case token.GEQ:
		known.low = known.low || constant.Compare(k, token.GTR, below)
	case token.GTR:
		known.low = known.low || constant.Compare(k, token.GEQ, below)
	case token.LEQ:
		known.high = known.high || constant.Compare(k, token.LSS, above)
	case token.LSS:
		known.high = known.high || constant.Compare(k, token.LEQ, above)
	case token.EQL:
		inRange := constant.Compare(k, token.GTR, below) && constant.Compare(k, token.LSS, above)
		known.low = known.low || inRange
		known.high = known.high || inRange
	}
}

// mirror turns "k op v" into "v mirror(op) k".
func mirror(op token.Token) token.Token {
	switch op {
	case token.LSS:
		return token.GTR
	case token.LEQ:
		return token.GEQ
	case token.GTR:
		return token.LSS
	case token.GEQ:
		return token.LEQ
	}
	return op
}

// negate is the comparison that holds when op does not, for values that
// are not NaN.
func negate(op token.Token) token.Token {
	switch op {
	case token.LSS:
		return token.GEQ
	case token.LEQ:
		return token.GTR
	case token.GTR:
		return token.LEQ
	case token.GEQ:
		return token.LSS
	case token.EQL:
		return token.NEQ
	case token.NEQ:
		return token.EQL
	}
	return op
}
