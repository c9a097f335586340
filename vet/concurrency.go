package vet

import (
	"go/ast"
	"go/token"
	"go/types"

	"golang.org/x/tools/go/ast/inspector"
)

const useQueue = "a model is single-threaded: call the code directly, keep pending work in a slice, or schedule a future message (island.Context.Future)"

// checkConcurrency reports go statements and every use of channels: their
// timing is the scheduler's choice and differs between replicas. Channel
// operations that are the cases of a select are covered by the select's
// finding, and a channel of channels is reported once.
func (c *checker) checkConcurrency(cursor inspector.Cursor) {
	parent := cursor.Parent().Node()
	switch node := cursor.Node().(type) {
	case *ast.GoStmt:
		c.report(node, categoryConcurrency, "go statement: goroutines run in an order the scheduler picks, differently on every replica; "+useQueue)
	case *ast.SelectStmt:
		c.report(node, categoryConcurrency, "select statement: when several cases are ready Go picks one at random, and readiness depends on goroutine timing; "+useQueue)
	case *ast.ChanType:
		if _, nested := parent.(*ast.ChanType); nested {
			return
		}
		c.report(node, categoryConcurrency, "channel type "+types.ExprString(node)+": channels hand values between goroutines, whose timing differs between replicas; "+useQueue)
	case *ast.SendStmt:
		if isSelectCase(parent) {
			return
		}
		c.report(node, categoryConcurrency, "channel send: it blocks or not depending on other goroutines' timing, which differs between replicas; "+useQueue)
	case *ast.UnaryExpr:
		if node.Op != token.ARROW || isSelectCaseReceive(cursor) {
			return
		}
		c.report(node, categoryConcurrency, "channel receive: what arrives, and when, depends on other goroutines' timing, which differs between replicas; "+useQueue)
	}
}

func isSelectCase(node ast.Node) bool {
	_, isCase := node.(*ast.CommClause)
	return isCase
}

// isSelectCaseReceive reports whether the receive at cursor is the
// communication of a select case: "case <-ch", "case v := <-ch" or
// "case v, ok = <-ch".
func isSelectCaseReceive(cursor inspector.Cursor) bool {
	parent := cursor.Parent()
	switch parent.Node().(type) {
	case *ast.ExprStmt, *ast.AssignStmt:
		return isSelectCase(parent.Parent().Node())
	}
	return false
}

// isChannel reports whether a value of type t is (or, for a type parameter,
// may be) a channel.
func isChannel(t types.Type) bool {
	return anyCoreType(t, func(u types.Type) bool {
		_, isChan := u.(*types.Chan)
		return isChan
	})
}

// anyCoreType reports whether the underlying type of t satisfies match; for a
// type parameter, whether the underlying type of any term of its constraint
// does.
func anyCoreType(t types.Type, match func(types.Type) bool) bool {
	parameter, isParameter := types.Unalias(t).(*types.TypeParam)
	if !isParameter {
		return match(t.Underlying())
	}
	constraint, isInterface := parameter.Constraint().Underlying().(*types.Interface)
	if !isInterface {
		return false
	}
	for i := range constraint.NumEmbeddeds() {
		embedded := constraint.EmbeddedType(i)
		if union, isUnion := embedded.(*types.Union); isUnion {
			for j := range union.Len() {
				if match(union.Term(j).Type().Underlying()) {
					return true
				}
			}
		} else if anyCoreType(embedded, match) {
			return true
		}
	}
	return false
}
