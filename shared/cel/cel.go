// Package cel compiles and evaluates the CEL expressions that users write in Plumb's kinds, with
// the library Flux offers its own (strings, sets, encoders, optional types), so that expressions
// copied from Flux's docs compile here. Each use is a Kind: the variables an expression sees and
// what it must return. Compiled expressions are kept by kind and text, so that a reconcile of an
// unchanged spec compiles nothing, and every evaluation is bounded in cost: expressions are
// written by tenants and run in the controller's process.
package cel

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/ext"
)

// costLimit bounds the work of one evaluation.
const costLimit = 1_000_000

// ErrCompile wraps every expression that does not compile or returns the wrong type.
var ErrCompile = errors.New("invalid CEL expression")

// The result types a Kind may ask for.
var (
	BoolType   = cel.BoolType
	StringType = cel.StringType
)

// Kind says which variables an expression sees and what it returns.
type Kind struct {
	vars []string
	out  *cel.Type
	// dyn accepts an expression whose type is known only when it runs; its result is checked
	// then.
	dyn bool
	// parseOnly skips type checking: the variables are not declared (an object's top-level
	// fields, as Flux's healthCheckExprs see them), so only evaluation can tell.
	parseOnly bool
}

// NewKind is a kind of expression of the named variables (each a JSON object) that returns out,
// or a value whose type is known only when it runs when dyn is set. A nil out accepts any
// result (read it with Value).
func NewKind(out *cel.Type, dyn bool, vars ...string) *Kind {
	return &Kind{vars: vars, out: out, dyn: dyn}
}

// ParseOnly is a kind whose variables are not declared: expressions are parsed, not type
// checked, and see whatever variables they are evaluated with.
func ParseOnly() *Kind { return &Kind{parseOnly: true} }

// Expression is a compiled expression.
type Expression struct {
	src  string
	prog cel.Program
}

// String returns the expression's text.
func (e *Expression) String() string { return e.src }

// Bool evaluates the expression; a result that is not a bool is an error.
func (e *Expression) Bool(ctx context.Context, vars map[string]any) (bool, error) {
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

// Value evaluates the expression to a CEL value of any type, which may be given back as (part
// of) a variable of another evaluation.
func (e *Expression) Value(ctx context.Context, vars map[string]any) (any, error) {
	v, _, err := e.prog.ContextEval(ctx, vars)
	if err != nil {
		return nil, fmt.Errorf("evaluate %q: %w", e.src, err)
	}
	return v, nil
}

// Text evaluates the expression; a result that is not a string is an error.
func (e *Expression) Text(ctx context.Context, vars map[string]any) (string, error) {
	v, _, err := e.prog.ContextEval(ctx, vars)
	if err != nil {
		return "", fmt.Errorf("evaluate %q: %w", e.src, err)
	}
	str, ok := v.(types.String)
	if !ok {
		return "", fmt.Errorf("evaluate %q: the result is %s, not a string", e.src, v.Type().TypeName())
	}
	return string(str), nil
}

type cacheKey struct {
	kind *Kind
	src  string
}

// cache keeps compiled expressions by kind and text, and each kind's environment (making one
// costs more than compiling in it); expressions are dropped all at once when full, which costs
// only recompiles.
var cache = struct {
	sync.Mutex
	m    map[cacheKey]*Expression
	envs map[*Kind]*cel.Env
}{m: map[cacheKey]*Expression{}, envs: map[*Kind]*cel.Env{}}

const cacheSize = 1024

// Compile compiles src as an expression of kind k.
func Compile(k *Kind, src string) (*Expression, error) {
	key := cacheKey{k, src}
	cache.Lock()
	e, ok := cache.m[key]
	cache.Unlock()
	if ok {
		return e, nil
	}
	e, err := k.build(src)
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

func (k *Kind) build(src string) (*Expression, error) {
	env, err := k.env()
	if err != nil {
		return nil, err
	}
	var ast *cel.Ast
	var iss *cel.Issues
	if k.parseOnly {
		ast, iss = env.Parse(src)
	} else {
		ast, iss = env.Compile(src)
	}
	if iss.Err() != nil {
		return nil, fmt.Errorf("%w %q: %s", ErrCompile, src, strings.TrimSpace(iss.Err().Error()))
	}
	if !k.parseOnly && k.out != nil && !ast.OutputType().IsExactType(k.out) && !(k.dyn && ast.OutputType() == cel.DynType) {
		return nil, fmt.Errorf("%w %q: returns %s, not %s", ErrCompile, src, ast.OutputType(), k.out)
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

// env makes the kind's environment once.
func (k *Kind) env() (*cel.Env, error) {
	cache.Lock()
	defer cache.Unlock()
	if env, ok := cache.envs[k]; ok {
		return env, nil
	}
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
	for _, v := range k.vars {
		opts = append(opts, cel.Variable(v, cel.ObjectType("google.protobuf.Struct")))
	}
	env, err := cel.NewEnv(opts...)
	if err != nil {
		return nil, err
	}
	cache.envs[k] = env
	return env, nil
}
