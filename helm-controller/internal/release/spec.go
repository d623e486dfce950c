package release

import (
	"time"

	"helm.sh/helm/v3/pkg/action"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kustypes "sigs.k8s.io/kustomize/api/types"

	helmv1 "github.com/plumb-dev/plumb/helm-controller/api/v1beta1"
)

// What a HelmRelease's spec asks of each action, with the defaults applied.

// WaitSettings are whether an install (or upgrade) waits for health, and its timeout.
func WaitSettings(obj *helmv1.HelmRelease, install bool) (bool, time.Duration) {
	wait, timeout := true, obj.GetTimeout()
	var disable bool
	var t *metav1.Duration
	switch {
	case install && obj.Spec.Install != nil:
		disable, t = obj.Spec.Install.DisableWait, obj.Spec.Install.Timeout
	case !install && obj.Spec.Upgrade != nil:
		disable, t = obj.Spec.Upgrade.DisableWait, obj.Spec.Upgrade.Timeout
	}
	if t != nil {
		timeout = t.Duration
	}
	return wait && !disable, timeout
}

// WaitForJobs says whether the health wait of an install (or upgrade) includes the release's
// Jobs.
func WaitForJobs(obj *helmv1.HelmRelease, install bool) bool {
	switch {
	case install && obj.Spec.Install != nil:
		return !obj.Spec.Install.DisableWaitForJobs
	case !install && obj.Spec.Upgrade != nil:
		return !obj.Spec.Upgrade.DisableWaitForJobs
	}
	return true
}

// InstallOptionsFor reads the Helm options of spec.install (all but CRDs, labels and timeout,
// which the caller sets).
func InstallOptionsFor(obj *helmv1.HelmRelease) InstallOptions {
	var opts InstallOptions
	if in := obj.Spec.Install; in != nil {
		opts.CreateNamespace, opts.DisableHooks, opts.SkipSchemaValidation = in.CreateNamespace, in.DisableHooks, in.DisableSchemaValidation
	}
	opts.PostRenderer = PostRendererFor(obj)
	return opts
}

// UpgradeOptionsFor reads the Helm options of spec.upgrade (all but labels and timeout, which
// the caller sets).
func UpgradeOptionsFor(obj *helmv1.HelmRelease) UpgradeOptions {
	var opts UpgradeOptions
	if up := obj.Spec.Upgrade; up != nil {
		opts.DisableHooks, opts.SkipSchemaValidation = up.DisableHooks, up.DisableSchemaValidation
		opts.Force, opts.ReuseValues, opts.CleanupOnFail = up.Force, up.PreserveValues, up.CleanupOnFail
	}
	opts.PostRenderer = PostRendererFor(obj)
	return opts
}

// TestFilters are spec.test.filters as Helm's filters, nil when there are none.
func TestFilters(obj *helmv1.HelmRelease) map[string][]string {
	if obj.Spec.Test == nil || len(obj.Spec.Test.Filters) == 0 {
		return nil
	}
	filters := map[string][]string{}
	for _, f := range obj.Spec.Test.Filters {
		key := action.IncludeNameFilter
		if f.Exclude {
			key = action.ExcludeNameFilter
		}
		filters[key] = append(filters[key], f.Name)
	}
	return filters
}

// IgnoreTestFailures says whether failed tests of an install (or upgrade) leave it standing:
// the action's remediation.ignoreTestFailures, else spec.test.ignoreFailures.
func IgnoreTestFailures(obj *helmv1.HelmRelease, install bool) bool {
	rem := UpgradeRemediation(obj)
	if install {
		rem = InstallRemediation(obj)
	}
	if rem != nil && rem.IgnoreTestFailures != nil {
		return *rem.IgnoreTestFailures
	}
	return obj.Spec.Test != nil && obj.Spec.Test.IgnoreFailures
}

// DefaultRetryInterval is the wait between two attempts of RetryOnFailure without a
// retryInterval.
const DefaultRetryInterval = 5 * time.Minute

// RetryOnFailure says whether a failed install (or upgrade) is left as it is and tried again
// (the RetryOnFailure strategy), and after how long.
func RetryOnFailure(obj *helmv1.HelmRelease, install bool) (bool, time.Duration) {
	var st *helmv1.ActionStrategy
	switch {
	case install && obj.Spec.Install != nil:
		st = obj.Spec.Install.Strategy
	case !install && obj.Spec.Upgrade != nil:
		st = obj.Spec.Upgrade.Strategy
	}
	if st == nil || st.Name != helmv1.ActionStrategyRetryOnFailure {
		return false, 0
	}
	if st.RetryInterval == nil || st.RetryInterval.Duration <= 0 {
		return true, DefaultRetryInterval
	}
	return true, st.RetryInterval.Duration
}

// TestTimeout is the timeout of the test hooks.
func TestTimeout(obj *helmv1.HelmRelease) time.Duration {
	if t := obj.Spec.Test; t != nil && t.Timeout != nil {
		return t.Timeout.Duration
	}
	return obj.GetTimeout()
}

// RollbackOptionsFor reads spec.rollback. Helm's wait is kept by default: a rollback is rare,
// and its result is the previous, known-good revision.
func RollbackOptionsFor(obj *helmv1.HelmRelease) RollbackOptions {
	opts := RollbackOptions{Timeout: obj.GetTimeout(), Wait: true, WaitForJobs: true}
	if rb := obj.Spec.Rollback; rb != nil {
		opts.Wait, opts.WaitForJobs, opts.Force = !rb.DisableWait, !rb.DisableWaitForJobs, rb.Force
		opts.DisableHooks, opts.Recreate, opts.CleanupOnFail = rb.DisableHooks, rb.Recreate, rb.CleanupOnFail
		if rb.Timeout != nil {
			opts.Timeout = rb.Timeout.Duration
		}
	}
	return opts
}

// UninstallOptionsFor reads spec.uninstall.
func UninstallOptionsFor(obj *helmv1.HelmRelease) UninstallOptions {
	opts := UninstallOptions{Timeout: obj.GetTimeout(), Wait: true}
	if u := obj.Spec.Uninstall; u != nil {
		opts.KeepHistory, opts.Wait, opts.DisableHooks = u.KeepHistory, !u.DisableWait, u.DisableHooks
		opts.DeletionPropagation = u.DeletionPropagation
		if u.Timeout != nil {
			opts.Timeout = u.Timeout.Duration
		}
	}
	return opts
}

// PostRendererFor makes the Helm post-renderer of spec.postRenderers and spec.commonMetadata,
// or nil when there are neither.
func PostRendererFor(obj *helmv1.HelmRelease) *Kustomizer {
	prs, cm := obj.Spec.PostRenderers, obj.Spec.CommonMetadata
	if len(prs) == 0 && (cm == nil || len(cm.Labels)+len(cm.Annotations) == 0) {
		return nil
	}
	k := &Kustomizer{}
	if cm != nil {
		k.Labels, k.Annotations = cm.Labels, cm.Annotations
	}
	for _, pr := range prs {
		if pr.Kustomize == nil {
			continue
		}
		for _, p := range pr.Kustomize.Patches {
			kp := KustomizePatch{Patch: p.Patch}
			if t := p.Target; t != nil {
				kp.Target = Selector(t.Group, t.Version, t.Kind, t.Name, t.Namespace, t.LabelSelector, t.AnnotationSelector)
			}
			k.Patches = append(k.Patches, kp)
		}
		for _, i := range pr.Kustomize.Images {
			k.Images = append(k.Images, kustypes.Image{Name: i.Name, NewName: i.NewName, NewTag: i.NewTag, Digest: i.Digest})
		}
	}
	return k
}

// InstallRemediation is spec.install.remediation as a Remediation (whose strategy is
// uninstall), or nil.
func InstallRemediation(obj *helmv1.HelmRelease) *helmv1.Remediation {
	if obj.Spec.Install == nil || obj.Spec.Install.Remediation == nil {
		return nil
	}
	in := obj.Spec.Install.Remediation
	return &helmv1.Remediation{Retries: in.Retries, Strategy: helmv1.RemediateUninstall,
		IgnoreTestFailures: in.IgnoreTestFailures, RemediateLastFailure: in.RemediateLastFailure}
}

// UpgradeRemediation is spec.upgrade.remediation, or nil.
func UpgradeRemediation(obj *helmv1.HelmRelease) *helmv1.Remediation {
	if obj.Spec.Upgrade != nil {
		return obj.Spec.Upgrade.Remediation
	}
	return nil
}

// Exhausted says whether failures have used up the retries (-1: never).
func Exhausted(failures int64, rem *helmv1.Remediation) bool {
	retries := int64(0)
	if rem != nil {
		retries = rem.Retries
	}
	return failures > 0 && retries >= 0 && failures > retries
}

// RemediateLast says whether the last allowed failure is remediated: as set, or by default for
// installs always and for upgrades when retries are allowed.
func RemediateLast(rem *helmv1.Remediation, install bool) bool {
	if rem != nil && rem.RemediateLastFailure != nil {
		return *rem.RemediateLastFailure
	}
	return install || (rem != nil && rem.Retries != 0)
}

// UninstallRemediates says whether a failure is remediated by uninstalling (a failed install
// always; a failed upgrade when its strategy says so) rather than by a rollback.
func UninstallRemediates(rem *helmv1.Remediation, install bool) bool {
	return install || (rem != nil && rem.Strategy == helmv1.RemediateUninstall)
}
