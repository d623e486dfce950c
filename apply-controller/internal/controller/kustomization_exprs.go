package controller

import (
	"context"
	"fmt"
	"strings"

	"github.com/fluxcd/pkg/ssa/jsondiff"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/shared/health/cel"
	"github.com/plumb-dev/plumb/shared/kustomize"
	"github.com/plumb-dev/plumb/shared/refwatch"
	"github.com/plumb-dev/plumb/shared/status"
)

// healthEvaluator compiles spec.healthCheckExprs (each expression once, whatever the number of
// reconciles); an expression that does not compile stalls the Kustomization, naming it.
func (r *KustomizationReconciler) healthEvaluator(obj *applyv1.Kustomization) (*cel.Evaluator, error) {
	checks := make([]cel.HealthCheck, len(obj.Spec.HealthCheckExprs))
	for i, c := range obj.Spec.HealthCheckExprs {
		checks[i] = cel.HealthCheck{APIVersion: c.APIVersion, Kind: c.Kind, Current: c.Current, InProgress: c.InProgress, Failed: c.Failed}
	}
	ev, err := cel.NewEvaluator("spec.healthCheckExprs", checks)
	if err != nil {
		return nil, status.Stall(r.Events, obj, applyv1.InvalidCELExpressionReason, err.Error())
	}
	return ev, nil
}

// readyExprs gives the dependencies whose dependsOn entry has a readyExpr their Ready function:
// the expression with `self` (obj) and `dep`. One that does not compile stalls obj.
func (r *KustomizationReconciler) readyExprs(obj *applyv1.Kustomization, deps []refwatch.Dependency) error {
	var self map[string]any
	for i, d := range obj.Spec.DependsOn {
		if d.ReadyExpr == "" {
			continue
		}
		x, err := cel.Dependency(d.ReadyExpr)
		if err != nil {
			return status.Stall(r.Events, obj, applyv1.InvalidCELExpressionReason, fmt.Sprintf("spec.dependsOn[%d].readyExpr (for %s): %v", i, deps[i], err))
		}
		if self == nil {
			if self, err = runtime.DefaultUnstructuredConverter.ToUnstructured(obj); err != nil {
				return err
			}
		}
		deps[i].Ready = func(ctx context.Context, dep *unstructured.Unstructured) (bool, error) {
			return x.EvalDependency(ctx, self, dep.UnstructuredContent())
		}
	}
	return nil
}

// checkIgnoreRules stalls on a spec.ignore rule that cannot be used: a target whose regular
// expressions or selectors do not parse, or a path that is not a JSON pointer.
func (r *KustomizationReconciler) checkIgnoreRules(obj *applyv1.Kustomization) error {
	for i, rule := range obj.Spec.Ignore {
		if _, err := jsondiff.CompileIgnoreRules(kustomize.IgnoreRules([]applyv1.IgnoreRule{rule})); err != nil {
			return status.Stall(r.Events, obj, applyv1.InvalidSpecReason, fmt.Sprintf("spec.ignore[%d].target: %v", i, err))
		}
		for _, p := range rule.Paths {
			if p != "" && !strings.HasPrefix(p, "/") {
				return status.Stall(r.Events, obj, applyv1.InvalidSpecReason, fmt.Sprintf("spec.ignore[%d].paths: %q is not a JSON pointer (it starts with /)", i, p))
			}
		}
	}
	return nil
}
