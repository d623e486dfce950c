package release

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"

	helmrelease "helm.sh/helm/v3/pkg/release"

	helmv1 "github.com/plumb-dev/plumb/helm-controller/api/v1beta1"
)

// Labels helm-controller puts on the Helm releases it makes.
const (
	// PostRenderersLabel records the post-renderers a release was made with, so that a change
	// of them upgrades it.
	PostRenderersLabel = "helm.plumb.dev/post-renderers"
	// ChartDigestLabel records the chart artifact (short digest), so that new content under
	// the same version (values files, a re-pushed chart) upgrades.
	ChartDigestLabel = "helm.plumb.dev/chart-digest"
	// ValuesDigestLabel records the values' masked digest (DigestLabel), for status.history.
	ValuesDigestLabel = "helm.plumb.dev/values-digest"
	// OwnerNamespaceLabel and OwnerNameLabel name the HelmRelease that owns a release.
	OwnerNamespaceLabel = "helm.plumb.dev/namespace"
	OwnerNameLabel      = "helm.plumb.dev/name"
	// HealthyLabel says whether a revision's health was confirmed after the action: false
	// while the wait runs, so that a revision left by a controller stopped mid-wait is checked
	// again instead of being taken as done.
	HealthyLabel = "helm.plumb.dev/healthy"
)

// Labels are the labels of every install and upgrade of obj from the chart artifact of
// chartDigest (ChartDigest); the values digest is obj's last attempted one.
func Labels(obj *helmv1.HelmRelease, chartDigest string) map[string]string {
	return map[string]string{
		ValuesDigestLabel:   DigestLabel(obj.Status.LastAttemptedValuesChecksum),
		PostRenderersLabel:  PostRenderersDigest(obj),
		ChartDigestLabel:    chartDigest,
		OwnerNamespaceLabel: obj.Namespace,
		OwnerNameLabel:      obj.Name,
		HealthyLabel:        "false",
	}
}

// ChartDigest is a label value for a chart artifact's digest: its first 16 hex digits.
func ChartDigest(artifactDigest string) string {
	d := strings.TrimPrefix(artifactDigest, "sha256:")
	if len(d) > 16 {
		d = d[:16]
	}
	return d
}

// PostRenderersDigest is a label value for what changes the rendered manifests,
// spec.postRenderers and spec.commonMetadata: "none", or a short digest (of the post-renderers
// alone without commonMetadata, so that releases made before commonMetadata keep theirs).
func PostRenderersDigest(obj *helmv1.HelmRelease) string {
	prs, cm := obj.Spec.PostRenderers, obj.Spec.CommonMetadata
	hasCM := cm != nil && len(cm.Labels)+len(cm.Annotations) > 0
	if len(prs) == 0 && !hasCM {
		return "none"
	}
	var b []byte
	if hasCM {
		b, _ = json.Marshal(struct {
			PostRenderers  []helmv1.PostRenderer  `json:"postRenderers"`
			CommonMetadata *helmv1.CommonMetadata `json:"commonMetadata"`
		}{prs, cm})
	} else {
		b, _ = json.Marshal(prs)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:16]
}

// OwnerID names a HelmRelease as OwnerOf does.
func OwnerID(obj *helmv1.HelmRelease) string { return obj.Namespace + "/" + obj.Name }

// OwnerOf names the HelmRelease that owns a Helm release, or "" for a release made otherwise
// (by hand, with helm install): such a release is adopted.
func OwnerOf(rls *helmrelease.Release) string {
	if rls.Labels[OwnerNameLabel] == "" {
		return ""
	}
	return rls.Labels[OwnerNamespaceLabel] + "/" + rls.Labels[OwnerNameLabel]
}

// UpToDate says whether the deployed release was made from this chart artifact (the label
// holds its digest, so name and version follow) with values of this Digest and these
// post-renderers.
func UpToDate(cur *helmrelease.Release, valuesDigest, postRenderers, chartDigest string) bool {
	return cur.Chart != nil && cur.Chart.Metadata != nil && Digest(cur.Config) == valuesDigest &&
		cur.Labels[PostRenderersLabel] == postRenderers && cur.Labels[ChartDigestLabel] == chartDigest
}
