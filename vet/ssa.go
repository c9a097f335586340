package vet

import (
	"go/ast"
	"go/types"

	"golang.org/x/tools/go/analysis"
	"golang.org/x/tools/go/ssa"
)

// buildSSA builds the SSA form of the pass's package and returns its
// functions: the declared functions and methods, the package initializer
// (which holds the package-level variable initializers) and every function
// literal inside them.
//
// It does what golang.org/x/tools/go/analysis/passes/buildssa does, with two
// differences. The package is built in debug mode, because go/ssa drops a
// conversion between identical types (float64(p) for a float64 p) while the
// compiler keeps it as a rounding that forbids fusion: the DebugRef
// instructions of debug mode are the only record of where those conversions
// are. And it does not require buildssa's ctrlflow pass, whose facts would
// make the checker run it on every dependency of the package.
func buildSSA(pass *analysis.Pass) []*ssa.Function {
	program := ssa.NewProgram(pass.Fset, ssa.BuilderMode(0))
	for _, imported := range pass.Pkg.Imports() {
		program.CreatePackage(imported, nil, nil, true)
	}
	pkg := program.CreatePackage(pass.Pkg, pass.Files, pass.TypesInfo, false)
	pkg.SetDebugMode(true)
	pkg.Build()

	var functions []*ssa.Function
	var addWithLiterals func(function *ssa.Function)
	addWithLiterals = func(function *ssa.Function) {
		functions = append(functions, function)
		for _, literal := range function.AnonFuncs {
			addWithLiterals(literal)
		}
	}
	for _, file := range pass.Files {
		for _, declaration := range file.Decls {
			if declaration, isFunc := declaration.(*ast.FuncDecl); isFunc {
				if function := program.FuncValue(pass.TypesInfo.Defs[declaration.Name].(*types.Func)); function != nil {
					addWithLiterals(function)
				}
			}
		}
	}
	if initializer := pkg.Func("init"); initializer != nil {
		addWithLiterals(initializer)
	}
	return functions
}

// explicitlyRounded returns the values of function that some explicit
// conversion to a floating-point type takes as its operand, e.g. p in
// float64(p) or the product in float64(a*b). The compiler rounds such a
// value where it is converted, so it is never fused there.
func explicitlyRounded(info *types.Info, function *ssa.Function) map[ssa.Value]bool {
	rounded := map[ssa.Value]bool{}
	for _, block := range function.Blocks {
		for _, instruction := range block.Instrs {
			reference, isReference := instruction.(*ssa.DebugRef)
			if !isReference {
				continue
			}
			if call, isCall := ast.Unparen(reference.Expr).(*ast.CallExpr); isCall && isFloatConversion(info, call) {
				rounded[reference.X] = true
			}
		}
	}
	return rounded
}

// isFloatConversion reports whether call is an explicit conversion to a
// floating-point type.
func isFloatConversion(info *types.Info, call *ast.CallExpr) bool {
	target, found := info.Types[call.Fun]
	return found && target.IsType() && len(call.Args) == 1 && anyCoreType(target.Type, isFloatType)
}

// lastInstruction is the instruction that ends block (a jump, branch,
// return or panic), or nil for an empty block.
func lastInstruction(block *ssa.BasicBlock) ssa.Instruction {
	if len(block.Instrs) == 0 {
		return nil
	}
	return block.Instrs[len(block.Instrs)-1]
}

func isFloatType(t types.Type) bool {
	basic, isBasic := t.Underlying().(*types.Basic)
	return isBasic && basic.Info()&types.IsFloat != 0
}

func isIntegerType(t types.Type) bool {
	basic, isBasic := t.Underlying().(*types.Basic)
	return isBasic && basic.Info()&types.IsInteger != 0
}
