// Package cel judges objects with CEL expressions, as Flux does: the health of custom resources
// that kstatus cannot judge (healthCheckExprs) and the readiness of a dependency (readyExpr).
// Expressions are compiled once and kept by their text, so that a reconcile of an unchanged
// spec compiles nothing.
package cel

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/ext"
)

// costLimit bounds the work of one evaluation: expressions are written by tenants and run in
// the controller's process.
const costLimit = 1_000_000

// Expression is a compiled expression that returns a bool.
type Expression struct {
	src  string
	prog cel.Program
}

// String returns the expression's text.
func (e *Expression) String() string { return e.src }

// Eval evaluates the expression with vars and returns its result; an expression that does
// not return a bool is an error.
func (e *Expression) Eval(ctx context.Context, vars map[string]any) (bool, error) {
	v, _, err := e.prog.ContextEval(ctx, vars)
	if err != nil {
		return false, fmt.Errorf("evaluate %q: %w", e.src, err)
	}
	b, ok := v.(types.Bool)
	if !ok {
		return false, fmt.Errorf("evaluate %q: the result is %s, not a bool", e.src, v.Type().TypeName())
	}
	return bool(b), nil
}

// ErrCompile wraps every expression that does not compile.
var ErrCompile = errors.New("invalid CEL expression")

// kind of expression: how it is compiled, part of the cache key.
type kind int

const (
	// object expressions see the top-level fields of an object as variables; they are parsed,
	// not type-checked, since those fields are not declared (Flux's healthCheckExprs).
	object kind = iota
	// dependency expressions see `self` and `dep`, and are type-checked to return a bool.
	dependency
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

type cacheKey struct {
	kind kind
	src  string
}

// cache keeps compiled expressions by text; it is emptied when full, which costs only a
// recompile.
var cache = struct {
	sync.Mutex
	m map[cacheKey]*Expression
}{m: map[cacheKey]*Expression{}}

const cacheSize = 1024

func compile(k kind, src string) (*Expression, error) {
	key := cacheKey{k, src}
	cache.Lock()
	e, ok := cache.m[key]
	cache.Unlock()
	if ok {
		return e, nil
	}
	e, err := build(k, src)
	if err != nil {
		return nil, err
	}
	cache.Lock()
	if len(cache.m) >= cacheSize {
		cache.m = map[cacheKey]*Expression{}
	}
	cache.m[key] = e
	cache.Unlock()
	return e, nil
}

// envs are made once per kind: making an environment costs more than compiling in it.
var envs = struct {
	once [2]sync.Once
	env  [2]*cel.Env
	err  [2]error
}{}

// The library Flux offers its expressions, so that expressions copied from Flux's docs and
// its cheatsheet compile here.
func newEnv(k kind) (*cel.Env, error) {
	opts := []cel.EnvOption{
		cel.HomogeneousAggregateLiterals(),
		cel.EagerlyValidateDeclarations(true),
		cel.DefaultUTCTimeZone(true),
		cel.CrossTypeNumericComparisons(true),
		cel.OptionalTypes(),
		ext.Strings(),
		ext.Sets(),
		ext.Encoders(),
	}
	if k == dependency {
		opts = append(opts,
			cel.Variable("self", cel.ObjectType("google.protobuf.Struct")),
			cel.Variable("dep", cel.ObjectType("google.protobuf.Struct")))
	}
	return cel.NewEnv(opts...)
}

func build(k kind, src string) (*Expression, error) {
	envs.once[k].Do(func() { envs.env[k], envs.err[k] = newEnv(k) })
	env, err := envs.env[k], envs.err[k]
	if err != nil {
		return nil, err
	}
	var ast *cel.Ast
	var iss *cel.Issues
	if k == dependency {
		ast, iss = env.Compile(src)
	} else {
		ast, iss = env.Parse(src)
	}
	if iss.Err() != nil {
		return nil, fmt.Errorf("%w %q: %s", ErrCompile, src, iss.Err())
	}
	if k == dependency && ast.OutputType() != cel.BoolType {
		return nil, fmt.Errorf("%w %q: returns %s, not bool", ErrCompile, src, ast.OutputType())
	}
	prog, err := env.Program(ast,
		cel.EvalOptions(cel.OptOptimize),
		cel.InterruptCheckFrequency(100),
		cel.CostLimit(costLimit))
	if err != nil {
		return nil, fmt.Errorf("%w %q: %v", ErrCompile, src, err)
	}
	return &Expression{src: src, prog: prog}, nil
}
