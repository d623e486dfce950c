package release

import (
	"fmt"

	"helm.sh/helm/v3/pkg/chart"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	helmv1 "github.com/plumb-dev/plumb/helm-controller/api/v1beta1"
)

// CRDPlan is what an action does with the chart's crds/ folder.
type CRDPlan struct {
	// SkipByHelm leaves the folder out of Helm's install (InstallOptions.SkipCRDs).
	SkipByHelm bool
	// Write has the caller create the missing CRDs before the action.
	Write bool
	// Replace has the caller also update the CRDs that exist (server-side apply).
	Replace bool
}

// PlanCRDs reads a crds policy of spec.install (install) or spec.upgrade. Helm installs the
// missing CRDs on install and leaves them alone on upgrade; the rest is the caller's.
func PlanCRDs(policy string, install bool) CRDPlan {
	if install {
		switch policy {
		case helmv1.CRDsSkip:
			return CRDPlan{SkipByHelm: true}
		case helmv1.CRDsCreateReplace:
			return CRDPlan{SkipByHelm: true, Write: true, Replace: true}
		}
		return CRDPlan{}
	}
	switch policy {
	case helmv1.CRDsCreate:
		return CRDPlan{Write: true}
	case helmv1.CRDsCreateReplace:
		return CRDPlan{Write: true, Replace: true}
	}
	return CRDPlan{}
}

// InstallCRDsPolicy is spec.install.crds; Skip for the deprecated skipCRDs when crds is unset;
// "" when neither is set.
func InstallCRDsPolicy(obj *helmv1.HelmRelease) string {
	in := obj.Spec.Install
	switch {
	case in == nil:
		return ""
	//lint:ignore SA1019 Flux's manifests still set it
	case in.CRDs == "" && in.SkipCRDs:
		return helmv1.CRDsSkip
	}
	return in.CRDs
}

// UpgradeCRDsPolicy is spec.upgrade.crds, "" when unset.
func UpgradeCRDsPolicy(obj *helmv1.HelmRelease) string {
	if obj.Spec.Upgrade != nil {
		return obj.Spec.Upgrade.CRDs
	}
	return ""
}

// CRDObjects reads the objects of the chart's crds/ folder.
func CRDObjects(ch *chart.Chart, mapper meta.RESTMapper) ([]*unstructured.Unstructured, error) {
	var objs []*unstructured.Unstructured
	for _, f := range ch.CRDObjects() {
		o, err := Objects(string(f.File.Data), "", mapper)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.Filename, err)
		}
		objs = append(objs, o...)
	}
	return objs, nil
}
