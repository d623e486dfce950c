package release

import (
	"time"

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
	opts := RollbackOptions{Timeout: obj.GetTimeout(), Wait: true}
	if rb := obj.Spec.Rollback; rb != nil {
		opts.Wait, opts.Force = !rb.DisableWait, rb.Force
	}
	return opts
}

// UninstallOptionsFor reads spec.uninstall.
func UninstallOptionsFor(obj *helmv1.HelmRelease) UninstallOptions {
	opts := UninstallOptions{Timeout: obj.GetTimeout(), Wait: true}
	if u := obj.Spec.Uninstall; u != nil {
		opts.KeepHistory, opts.Wait = u.KeepHistory, !u.DisableWait
		opts.DeletionPropagation = u.DeletionPropagation
	}
	return opts
}

// PostRendererFor makes the Helm post-renderer of spec.postRenderers, or nil.
func PostRendererFor(prs []helmv1.PostRenderer) *Kustomizer {
	if len(prs) == 0 {
		return nil
	}
	k := &Kustomizer{}
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

// InstallRemediation is spec.install.remediation, or nil.
func InstallRemediation(obj *helmv1.HelmRelease) *helmv1.Remediation {
	if obj.Spec.Install != nil {
		return obj.Spec.Install.Remediation
	}
	return nil
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
