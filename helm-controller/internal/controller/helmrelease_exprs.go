package controller

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	helmv1 "github.com/plumb-dev/plumb/helm-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/shared/health/cel"
	"github.com/plumb-dev/plumb/shared/refwatch"
)

// healthCheckExprsField is where the health expressions are in the spec, for messages.
const healthCheckExprsField = "spec.healthCheckExprs"

// healthEvaluator compiles spec.healthCheckExprs (each expression once, whatever the number of
// reconciles); it returns a *cel.CheckError, naming the expression, for one that cannot be
// used. No expressions give a nil Evaluator, which leaves every object to kstatus.
func healthEvaluator(obj *helmv1.HelmRelease) (*cel.Evaluator, error) {
	checks := make([]cel.HealthCheck, len(obj.Spec.HealthCheckExprs))
	for i, c := range obj.Spec.HealthCheckExprs {
		checks[i] = cel.HealthCheck{APIVersion: c.APIVersion, Kind: c.Kind, Current: c.Current, InProgress: c.InProgress, Failed: c.Failed}
	}
	return cel.NewEvaluator(healthCheckExprsField, checks)
}

// checkHealthExprs stalls a HelmRelease whose spec.healthCheckExprs cannot be used, before
// anything is installed or upgraded.
func (r *HelmReleaseReconciler) checkHealthExprs(ctx context.Context, obj *helmv1.HelmRelease) error {
	if _, err := healthEvaluator(obj); err != nil {
		return r.stall(ctx, obj, helmv1.InvalidCELExpressionReason, err.Error())
	}
	return nil
}

// readyExprs gives the dependencies whose dependsOn entry has a readyExpr their Ready function:
// the expression with `self` (obj) and `dep`. One that does not compile stalls obj.
func (r *HelmReleaseReconciler) readyExprs(ctx context.Context, obj *helmv1.HelmRelease, deps []refwatch.Dependency) error {
	var self map[string]any
	for i, d := range obj.Spec.DependsOn {
		if d.ReadyExpr == "" {
			continue
		}
		x, err := cel.Dependency(d.ReadyExpr)
		if err != nil {
			return r.stall(ctx, obj, helmv1.InvalidCELExpressionReason, fmt.Sprintf("spec.dependsOn[%d].readyExpr (for %s): %v", i, deps[i], err))
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
