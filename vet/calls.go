package vet

import (
	"go/ast"
	"go/constant"
	"go/token"
	"go/types"

	"golang.org/x/tools/go/ast/edge"
	"golang.org/x/tools/go/ast/inspector"
	"golang.org/x/tools/go/types/typeutil"
)

const mapOrder = "Go randomizes map iteration order on purpose, so every replica visits the entries in a different order"

// span is a source range for a finding that is not a whole node.
type span struct{ pos, end token.Pos }

func (s span) Pos() token.Pos { return s.pos }
func (s span) End() token.Pos { return s.end }

// checkRange reports range loops over maps and channels. Ranging over
// slices, arrays, strings, integers and iterators is deterministic (an
// iterator's own order is checked where it is made, e.g. maps.Keys).
func (c *checker) checkRange(loop *ast.RangeStmt) {
	rangeType := c.pass.TypesInfo.TypeOf(loop.X)
	if rangeType == nil {
		return
	}
	header := span{loop.For, loop.X.End()}
	expression := types.ExprString(loop.X)
	switch {
	case isMap(rangeType):
		c.report(header, categoryMapOrder, "range over map "+expression+": "+mapOrder+"; iterate over sorted keys: for _, k := range slices.Sorted(maps.Keys("+expression+"))")
	case isChannel(rangeType):
		c.report(header, categoryConcurrency, "range over channel "+expression+": what arrives, and when, depends on other goroutines' timing, which differs between replicas; "+useQueue)
	}
}

func isMap(t types.Type) bool {
	return anyCoreType(t, func(u types.Type) bool {
		_, isMap := u.(*types.Map)
		return isMap
	})
}

// sortedConsumers are the functions whose result does not depend on the
// order of the sequence they consume.
var sortedConsumers = map[string]bool{
	"slices.Sorted": true, "slices.SortedFunc": true, "slices.SortedStableFunc": true,
	"maps.Collect": true, "maps.Insert": true,
}

// checkCall reports calls whose result depends on map order or on pointer
// addresses.
func (c *checker) checkCall(cursor inspector.Cursor, call *ast.CallExpr) {
	if c.isPointerToUintptr(call) {
		c.report(call, categoryPointerAddress, "conversion of a pointer to uintptr: the address is chosen by the allocator and differs between replicas; identify objects by an id the model assigns")
		return
	}
	function, isFunc := typeutil.Callee(c.pass.TypesInfo, call).(*types.Func)
	if !isFunc || function.Pkg() == nil {
		return
	}
	name := function.Name()
	receiver := ""
	if signature, _ := function.Type().(*types.Signature); signature != nil && signature.Recv() != nil {
		if named, isNamed := types.Unalias(derefType(signature.Recv().Type())).(*types.Named); isNamed {
			receiver = named.Obj().Name()
		}
	}
	switch qualified := function.Pkg().Path() + "." + name; {
	case receiver == "" && (qualified == "maps.Keys" || qualified == "maps.Values" || qualified == "maps.All"):
		c.checkMapSequence(cursor, call, name)
	case receiver == "Value" && function.Pkg().Path() == "reflect":
		switch name {
		case "MapKeys", "MapRange":
			c.report(call, categoryMapOrder, "reflect.Value."+name+": "+mapOrder+"; sort the keys before use, or iterate the map itself over slices.Sorted(maps.Keys(m))")
		case "Pointer", "UnsafePointer", "UnsafeAddr":
			c.report(call, categoryPointerAddress, "reflect.Value."+name+": the address is chosen by the allocator and differs between replicas; identify objects by an id the model assigns")
		}
	case receiver == "":
		if index, isFormatting := formatArgument[qualified]; isFormatting && index < len(call.Args) {
			c.checkFormat(call.Args[index], qualified)
		}
	}
}

func derefType(t types.Type) types.Type {
	if pointer, isPointer := t.(*types.Pointer); isPointer {
		return pointer.Elem()
	}
	return t
}

// checkMapSequence reports maps.Keys, maps.Values and maps.All unless their
// sequence goes straight into a function that sorts it or builds a map.
func (c *checker) checkMapSequence(cursor inspector.Cursor, call *ast.CallExpr, name string) {
	if cursor.ParentEdgeKind() == edge.CallExpr_Args {
		consumer, isFunc := typeutil.Callee(c.pass.TypesInfo, cursor.Parent().Node().(*ast.CallExpr)).(*types.Func)
		if isFunc && consumer.Pkg() != nil && sortedConsumers[consumer.Pkg().Path()+"."+consumer.Name()] {
			return
		}
	}
	instead := "slices.Sorted(" + types.ExprString(call) + ")"
	if name != "Keys" {
		instead = "the sorted keys, for _, k := range slices.Sorted(maps.Keys(m)), and index the map"
	}
	c.report(call, categoryMapOrder, "maps."+name+" yields entries in map order: "+mapOrder+"; use "+instead)
}

// formatArgument maps a formatting function to the index of its format
// argument.
var formatArgument = map[string]int{
	"fmt.Printf": 0, "fmt.Sprintf": 0, "fmt.Errorf": 0, "fmt.Fprintf": 1, "fmt.Appendf": 1,
	"log.Printf": 0, "log.Fatalf": 0, "log.Panicf": 0,
}

// checkFormat reports a constant format string that uses the %p verb.
func (c *checker) checkFormat(format ast.Expr, function string) {
	value := c.pass.TypesInfo.Types[format].Value
	if value == nil || value.Kind() != constant.String || !hasPointerVerb(constant.StringVal(value)) {
		return
	}
	c.report(format, categoryPointerAddress, function+" with %p prints a pointer address, which the allocator chooses differently on every replica; print an id the model assigns")
}

// hasPointerVerb reports whether a fmt format string contains the %p verb,
// with any flags, width, precision or argument index.
func hasPointerVerb(format string) bool {
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			continue
		}
		i++
		for i < len(format) && isVerbModifier(format[i]) {
			i++
		}
		if i < len(format) && format[i] == 'p' {
			return true
		}
	}
	return false
}

func isVerbModifier(b byte) bool {
	switch {
	case b >= '0' && b <= '9':
		return true
	case b == '+', b == '-', b == '#', b == ' ', b == '.', b == '*', b == '[', b == ']':
		return true
	}
	return false
}

// isPointerToUintptr reports whether call converts a pointer or an
// unsafe.Pointer to uintptr.
func (c *checker) isPointerToUintptr(call *ast.CallExpr) bool {
	target := c.pass.TypesInfo.Types[call.Fun]
	if !target.IsType() || len(call.Args) != 1 {
		return false
	}
	if basic, isBasic := target.Type.Underlying().(*types.Basic); !isBasic || basic.Kind() != types.Uintptr {
		return false
	}
	argument := c.pass.TypesInfo.TypeOf(call.Args[0])
	if argument == nil {
		return false
	}
	switch underlying := argument.Underlying().(type) {
	case *types.Pointer:
		return true
	case *types.Basic:
		return underlying.Kind() == types.UnsafePointer
	}
	return false
}
