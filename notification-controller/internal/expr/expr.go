// Package expr names the CEL expressions of notification-controller's kinds, with the
// variables Flux gives them: a Receiver's resourceFilter and resources[].filter see `res` and
// `req` (and `claims` for generic-oidc); its oidcProviders' variables and validations see
// `claims` and `vars`; a Provider's commitStatusExpr and commitStatusDescriptionExpr see
// `event`, `alert` and `provider`. Expressions are type-checked when compiled (each variable is
// a JSON object), so one that returns the wrong type is refused before any call, and kept by
// their text (shared/cel), so a webhook call compiles nothing its Receiver's reconcile did not.
package expr

import (
	plumbcel "github.com/plumb-dev/plumb/shared/cel"
)

// ErrCompile wraps every expression that does not compile or returns the wrong type.
var ErrCompile = plumbcel.ErrCompile

// Kind says which variables an expression sees and what it returns.
type Kind = plumbcel.Kind

// Expression is a compiled expression.
type Expression = plumbcel.Expression

// ResourceFilter is a Receiver's resourceFilter or resources[].filter: a bool of `res` (the
// object's apiVersion, kind and metadata) and `req` (the call's JSON body).
var ResourceFilter = plumbcel.NewKind(plumbcel.BoolType, true, "res", "req")

// ResourceFilterOIDC is a generic-oidc Receiver's resourceFilter or resources[].filter: as
// ResourceFilter, with the verified token's `claims`. Other types do not declare `claims`, so an
// expression of theirs that reads it does not compile.
var ResourceFilterOIDC = plumbcel.NewKind(plumbcel.BoolType, true, "res", "req", "claims")

// OIDCVariable is a variable of a generic-oidc provider: any value of `claims` and `vars` (the
// variables before it).
var OIDCVariable = plumbcel.NewKind(nil, true, "claims", "vars")

// OIDCValidation is a validation of a generic-oidc provider: a bool of `claims` and `vars`.
var OIDCValidation = plumbcel.NewKind(plumbcel.BoolType, true, "claims", "vars")

// CommitStatusID is a Provider's commitStatusExpr: a string of `event` (the notification, in
// the shape of Flux's events), `alert` and `provider` (the objects), that names the commit
// status.
var CommitStatusID = plumbcel.NewKind(plumbcel.StringType, true, "event", "alert", "provider")

// CommitStatusDescription is a Provider's commitStatusDescriptionExpr: a string of the same
// variables, that describes the commit status. It is CommitStatusID's kind: one environment and
// one cache for both.
var CommitStatusDescription = CommitStatusID

// Compile compiles src as an expression of kind k.
func Compile(k *Kind, src string) (*Expression, error) { return plumbcel.Compile(k, src) }
