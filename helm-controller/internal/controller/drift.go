package controller

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/fluxcd/pkg/runtime/conditions"
	"github.com/fluxcd/pkg/ssa"
	"github.com/fluxcd/pkg/ssa/jsondiff"
	"helm.sh/helm/v3/pkg/release"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	helmv1 "github.com/plumb-dev/plumb/helm-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/shared/health"
	"github.com/plumb-dev/plumb/shared/objcache"
)

// drift compares the objects of the deployed release with the cluster (server-side dry-runs)
// when driftDetection is on: warn reports the drifted objects in the Drifted condition and an
// event; enabled also applies them back, without a new Helm revision. Fields of the ignore
// rules are neither compared nor put back.
func (r *HelmReleaseReconciler) drift(ctx context.Context, obj *helmv1.HelmRelease, rls *release.Release, revision string) error {
	dd := obj.Spec.DriftDetection
	if dd == nil || dd.Mode == "" || dd.Mode == helmv1.DriftDisabled {
		r.drifts.forget(obj)
		conditions.Delete(obj, helmv1.DriftedCondition)
		return nil
	}
	c, objs, err := r.releaseObjects(ctx, obj, rls)
	if err != nil {
		return err
	}
	// Only the objects changed since they were last found in sync are compared (a
	// server-side dry-run each); a controller that restarted compares them all.
	basis := driftBasis(rls, dd)
	check, seen := r.drifts.toCheck(ctx, r.objects, obj, basis, objs)
	rules := ignoreRules(dd)
	var diffs []*jsondiff.Diff
	if len(check) > 0 {
		if diffs, err = jsondiff.UnstructuredList(ctx, c, check,
			jsondiff.FieldOwner(r.ControllerName), jsondiff.IgnoreRules(rules), jsondiff.MaskSecrets(true), jsondiff.Rationalize(true)); err != nil {
			r.drifts.forget(obj)
			return r.failure(ctx, obj, revision, helmv1.DriftDetectedReason, fmt.Errorf("drift detection: %w", err))
		}
	}
	var drifted []*unstructured.Unstructured
	var names []string
	driftedKeys := map[objcache.Key]bool{}
	defer func() { r.drifts.record(obj, basis, driftedKeys, seen) }()
	for _, d := range diffs {
		if d.Type != jsondiff.DiffTypeCreate && d.Type != jsondiff.DiffTypeUpdate {
			continue
		}
		u, ok := d.DesiredObject.(*unstructured.Unstructured)
		if !ok {
			continue
		}
		drifted = append(drifted, u)
		driftedKeys[keyOf(u)] = true
		what := "changed"
		if d.Type == jsondiff.DiffTypeCreate {
			what = "missing"
		}
		names = append(names, fmt.Sprintf("%s %s", health.Describe(u), what))
	}
	sort.Strings(names)
	if len(drifted) == 0 {
		conditions.MarkFalse(obj, helmv1.DriftedCondition, helmv1.SucceededReason, "no drift from revision %d", rls.Version)
		return nil
	}
	list := strings.Join(names, ", ")
	if dd.Mode == helmv1.DriftWarn {
		if conditions.GetMessage(obj, helmv1.DriftedCondition) != "drifted from revision "+fmt.Sprint(rls.Version)+": "+list {
			r.event(ctx, obj, revision, corev1.EventTypeWarning, helmv1.DriftDetectedReason, "release %s drifted: %s", rls.Name, list)
		}
		conditions.MarkTrue(obj, helmv1.DriftedCondition, helmv1.DriftDetectedReason, "drifted from revision %d: %s", rls.Version, list)
		return nil
	}
	rm := ssa.NewResourceManager(c, nil, ssa.Owner{Field: r.ControllerName})
	opts := ssa.DefaultApplyOptions()
	// The ignored fields are left out of what is applied back: they stay as the cluster has them.
	opts.Force, opts.DriftIgnoreRules = false, rules
	if _, err := rm.ApplyAll(ctx, drifted, opts); err != nil {
		conditions.MarkTrue(obj, helmv1.DriftedCondition, helmv1.DriftDetectedReason, "drifted from revision %d: %s; correcting failed: %v", rls.Version, list, err)
		return r.failure(ctx, obj, revision, helmv1.DriftDetectedReason, fmt.Errorf("correcting drift of %s: %w", list, err))
	}
	r.event(ctx, obj, revision, corev1.EventTypeNormal, helmv1.DriftCorrectedReason, "release %s: put back %s", rls.Name, list)
	conditions.MarkFalse(obj, helmv1.DriftedCondition, helmv1.DriftCorrectedReason, "put back %s", list)
	return nil
}

// ignoreRules are driftDetection.ignore as jsondiff's rules.
func ignoreRules(dd *helmv1.DriftDetection) []jsondiff.IgnoreRule {
	var rules []jsondiff.IgnoreRule
	for _, ir := range dd.Ignore {
		rule := jsondiff.IgnoreRule{Paths: ir.Paths}
		if t := ir.Target; t != nil {
			rule.Selector = &jsondiff.Selector{Group: t.Group, Version: t.Version, Kind: t.Kind, Name: t.Name,
				Namespace: t.Namespace, LabelSelector: t.LabelSelector, AnnotationSelector: t.AnnotationSelector}
		}
		rules = append(rules, rule)
	}
	return rules
}

// validateIgnoreRules checks the regular expressions and selectors of driftDetection.ignore.
func validateIgnoreRules(dd *helmv1.DriftDetection) error {
	if dd == nil {
		return nil
	}
	for i, rule := range ignoreRules(dd) {
		if _, err := jsondiff.NewSelectorRegex(rule.Selector); err != nil {
			return fmt.Errorf("spec.driftDetection.ignore[%d].target: %w", i, err)
		}
	}
	return nil
}
