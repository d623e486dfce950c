package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"helm.sh/helm/v3/pkg/release"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	helmv1 "github.com/plumb-dev/plumb/helm-controller/api/v1beta1"
	plumbrelease "github.com/plumb-dev/plumb/helm-controller/internal/release"
)

// finalize uninstalls the release, then lets the HelmRelease go. A release that another
// HelmRelease owns, or that is gone or already uninstalled, is left alone.
func (r *HelmReleaseReconciler) finalize(ctx context.Context, obj *helmv1.HelmRelease) error {
	if !controllerutil.ContainsFinalizer(obj, helmv1.Finalizer) {
		return nil
	}
	name := obj.GetReleaseName()
	r.stored.forget(obj)
	r.drifts.forget(obj)
	if !obj.Spec.Suspend {
		h, err := r.helm(ctx, obj)
		var cur *release.Release
		if err == nil {
			cur, err = h.Last()
		}
		switch {
		case err != nil:
		case cur == nil || cur.Info == nil || cur.Info.Status == release.StatusUninstalled:
		case plumbrelease.OwnerOf(cur) != "" && plumbrelease.OwnerOf(cur) != plumbrelease.OwnerID(obj):
			r.event(ctx, obj, "", corev1.EventTypeNormal, helmv1.UninstallSucceededReason, "release %s belongs to HelmRelease %s: left in place", name, plumbrelease.OwnerOf(cur))
		default:
			if err = h.Uninstall(plumbrelease.UninstallOptionsFor(obj)); err == nil {
				r.event(ctx, obj, "", corev1.EventTypeNormal, helmv1.UninstallSucceededReason, "uninstalled release %s", name)
			}
		}
		if err != nil {
			if !apierrors.IsNotFound(err) && !apierrors.IsForbidden(err) && !errors.Is(err, errInvalidKubeConfig) {
				return r.failure(ctx, obj, "", helmv1.UninstallFailedReason, fmt.Errorf("uninstall of release %s: %w", name, err))
			}
			// The identity, namespace or kubeconfig is gone or unusable: nothing more can be
			// uninstalled.
			r.event(ctx, obj, "", corev1.EventTypeWarning, helmv1.UninstallFailedReason, "release %s left in place: %v", name, err)
		}
	}
	if key := obj.Status.HelmChart; key != "" && !strings.HasPrefix(key, obj.Namespace+"/") {
		// A HelmChart in its source's namespace has no owner reference to take it away.
		if err := r.deleteHelmChart(ctx, key); err != nil {
			return r.failure(ctx, obj, "", helmv1.UninstallFailedReason, err)
		}
	}
	controllerutil.RemoveFinalizer(obj, helmv1.Finalizer)
	return nil
}
