// Package cel judges objects with CEL expressions, as Flux does: the health of custom resources
// that kstatus cannot judge (healthCheckExprs) and the readiness of a dependency (readyExpr).
// Compiling, caching and the cost bound are shared/cel's.
package cel

import (
	"context"

	plumbcel "github.com/plumb-dev/plumb/shared/cel"
)

// Expression is a compiled expression that returns a bool.
type Expression struct{ e *plumbcel.Expression }

// String returns the expression's text.
func (e *Expression) String() string { return e.e.String() }

// Eval evaluates the expression with vars and returns its result; an expression that does
// not return a bool is an error.
func (e *Expression) Eval(ctx context.Context, vars map[string]any) (bool, error) {
	return e.e.Bool(ctx, vars)
}

// ErrCompile wraps every expression that does not compile.
var ErrCompile = plumbcel.ErrCompile

var (
	// object expressions see the top-level fields of an object as variables; they are parsed,
	// not type-checked, since those fields are not declared (Flux's healthCheckExprs).
	object = plumbcel.ParseOnly()
	// dependency expressions see `self` and `dep`, and are type-checked to return a bool.
	dependency = plumbcel.NewKind(plumbcel.BoolType, false, "self", "dep")
)

// Object compiles an expression whose variables are an object's top-level fields (apiVersion,
// kind, metadata, spec, status), as healthCheckExprs are.
func Object(src string) (*Expression, error) { return compile(object, src) }

// Dependency compiles a readyExpr: a bool expression of `self` (the depending object) and
// `dep` (the dependency).
func Dependency(src string) (*Expression, error) { return compile(dependency, src) }

// EvalDependency evaluates a readyExpr with self and dep as unstructured content.
func (e *Expression) EvalDependency(ctx context.Context, self, dep map[string]any) (bool, error) {
	return e.Eval(ctx, map[string]any{"self": self, "dep": dep})
}

func compile(k *plumbcel.Kind, src string) (*Expression, error) {
	e, err := plumbcel.Compile(k, src)
	if err != nil {
		return nil, err
	}
	return &Expression{e}, nil
}
