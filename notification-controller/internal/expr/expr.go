// Package expr compiles and evaluates the CEL expressions of notification-controller's kinds,
// with the variables Flux gives them: a Receiver's resourceFilter and resources[].filter see
// `res` and `req`; a Provider's commitStatusExpr sees `event`, `alert` and `provider`.
// Expressions are type-checked when compiled (each variable is a JSON object),
// so one that returns the wrong type is refused before any call, and kept by their text, so a
// webhook call compiles nothing its Receiver's reconcile did not.
package expr

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

// costLimit bounds the work of one evaluation: expressions are written by tenants and run in
// the controller's process, on bodies sent by callers.
const costLimit = 1_000_000

// ErrCompile wraps every expression that does not compile or returns the wrong type.
var ErrCompile = errors.New("invalid CEL expression")

// Kind says which variables an expression sees and what it returns.
type Kind struct {
	vars []string
	out  *cel.Type
}

// ResourceFilter is a Receiver's resourceFilter or resources[].filter: a bool of `res` (the
// object's apiVersion, kind and metadata) and `req` (the call's JSON body).
var ResourceFilter = &Kind{vars: []string{"res", "req"}, out: cel.BoolType}

// CommitStatusID is a Provider's commitStatusExpr: a string of `event` (the notification, in
// the shape of Flux's events), `alert` and `provider` (the objects), that names the commit
// status.
var CommitStatusID = &Kind{vars: []string{"event", "alert", "provider"}, out: cel.StringType}

// Expression is a compiled expression.
type Expression struct {
	src  string
	prog cel.Program
}

// String returns the expression's text.
func (e *Expression) String() string { return e.src }

// Bool evaluates an expression of a bool kind.
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

// Text evaluates an expression of a string kind.
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

// cache keeps compiled expressions by kind and text; it is emptied when full, which costs only
// recompiles.
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
	env, err := k.env()
	if err != nil {
		return nil, err
	}
	ast, iss := env.Compile(src)
	if iss.Err() != nil {
		return nil, fmt.Errorf("%w %q: %s", ErrCompile, src, strings.TrimSpace(iss.Err().Error()))
	}
	if !ast.OutputType().IsExactType(k.out) && ast.OutputType() != cel.DynType {
		return nil, fmt.Errorf("%w %q: returns %s, not %s", ErrCompile, src, ast.OutputType(), k.out)
	}
	prog, err := env.Program(ast,
		cel.EvalOptions(cel.OptOptimize),
		cel.InterruptCheckFrequency(100),
		cel.CostLimit(costLimit))
	if err != nil {
		return nil, fmt.Errorf("%w %q: %v", ErrCompile, src, err)
	}
	e = &Expression{src: src, prog: prog}
	cache.Lock()
	if len(cache.m) >= cacheSize {
		cache.m = map[cacheKey]*Expression{}
	}
	cache.m[key] = e
	cache.Unlock()
	return e, nil
}

// env makes the kind's environment once: making one costs more than compiling in it. The
// library is the one Flux offers, so that expressions copied from Flux's docs compile.
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
