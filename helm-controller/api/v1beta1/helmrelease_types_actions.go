package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// How each Helm action runs: install, upgrade, test, rollback, uninstall, drift detection and
// post-rendering (the parts of HelmReleaseSpec below spec.install and its siblings).

// CRD policies of install and upgrade.
const (
	CRDsSkip          = "Skip"
	CRDsCreate        = "Create"
	CRDsCreateReplace = "CreateReplace"
)

// Remediation strategies.
const (
	RemediateRollback  = "rollback"
	RemediateUninstall = "uninstall"
)

// Install configures the first install.
type Install struct {
	// Timeout of the install; default spec.timeout.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// CRDs of the chart's crds/ folder: Create (default) or Skip.
	// +optional
	// +kubebuilder:validation:Enum=Skip;Create;CreateReplace
	CRDs string `json:"crds,omitempty"`
	// DisableWait does not wait for the resources to be ready.
	// +optional
	DisableWait bool `json:"disableWait,omitempty"`
	// Remediation of a failed install.
	// +optional
	Remediation *Remediation `json:"remediation,omitempty"`
}

// Upgrade configures upgrades.
type Upgrade struct {
	// Timeout of an upgrade; default spec.timeout.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// CRDs of the chart's crds/ folder: Skip (default, as Helm), Create (the missing ones) or
	// CreateReplace (also update existing ones, server-side apply).
	// +optional
	// +kubebuilder:validation:Enum=Skip;Create;CreateReplace
	CRDs string `json:"crds,omitempty"`
	// DisableWait does not wait for the resources to be ready.
	// +optional
	DisableWait bool `json:"disableWait,omitempty"`
	// Remediation of a failed upgrade.
	// +optional
	Remediation *Remediation `json:"remediation,omitempty"`
}

// Remediation says what to do when an action fails.
type Remediation struct {
	// Retries before giving up; default 0 (no retry), -1 retries forever.
	// +optional
	Retries int64 `json:"retries,omitempty"`
	// Strategy after a failed upgrade: rollback (default) or uninstall. A failed install is
	// always uninstalled before it is retried.
	// +optional
	// +kubebuilder:validation:Enum=rollback;uninstall
	Strategy string `json:"strategy,omitempty"`
	// RemediateLastFailure also remediates the last failure, when the retries are used up;
	// default true for installs, and for upgrades when retries is not 0.
	// +optional
	RemediateLastFailure *bool `json:"remediateLastFailure,omitempty"`
}

// Test runs the chart's test hooks.
type Test struct {
	// Enable runs the tests after every install and upgrade.
	// +optional
	Enable bool `json:"enable,omitempty"`
	// IgnoreFailures keeps a release whose tests fail Ready.
	// +optional
	IgnoreFailures bool `json:"ignoreFailures,omitempty"`
	// Timeout of the tests; default spec.timeout.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	Timeout *metav1.Duration `json:"timeout,omitempty"`
}

// Rollback configures rollbacks.
type Rollback struct {
	// DisableWait does not wait for the rolled back resources to be ready.
	// +optional
	DisableWait bool `json:"disableWait,omitempty"`
	// Force replaces resources that cannot be updated.
	// +optional
	Force bool `json:"force,omitempty"`
}

// Uninstall configures uninstalls.
type Uninstall struct {
	// KeepHistory keeps the release's history in storage.
	// +optional
	KeepHistory bool `json:"keepHistory,omitempty"`
	// DeletionPropagation: background (default), foreground or orphan.
	// +optional
	// +kubebuilder:validation:Enum=background;foreground;orphan
	DeletionPropagation string `json:"deletionPropagation,omitempty"`
	// DisableWait does not wait for the resources to be deleted.
	// +optional
	DisableWait bool `json:"disableWait,omitempty"`
}

// Drift detection modes.
const (
	DriftDisabled = "disabled"
	DriftWarn     = "warn"
	DriftEnabled  = "enabled"
)

// DriftDetection compares the cluster with the release's manifest on every interval.
type DriftDetection struct {
	// Mode: disabled (default), warn (report drifted objects) or enabled (correct them without
	// a new Helm revision).
	// +optional
	// +kubebuilder:validation:Enum=disabled;warn;enabled
	Mode string `json:"mode,omitempty"`
	// Ignore lists JSON pointers of fields never compared (e.g. /spec/replicas), optionally for
	// objects matching target.
	// +optional
	Ignore []IgnoreRule `json:"ignore,omitempty"`
}

// IgnoreRule leaves fields out of drift detection.
type IgnoreRule struct {
	// Paths are JSON pointers.
	// +required
	Paths []string `json:"paths"`
	// Target selects the objects (by kind, name, namespace); all when empty.
	// +optional
	Target *Selector `json:"target,omitempty"`
}

// Selector selects objects by kind, name and namespace.
type Selector struct {
	// +optional
	Kind string `json:"kind,omitempty"`
	// +optional
	Name string `json:"name,omitempty"`
	// +optional
	Namespace string `json:"namespace,omitempty"`
}

// PostRenderer changes rendered manifests.
type PostRenderer struct {
	// Kustomize patches and image overrides.
	// +optional
	Kustomize *KustomizePostRenderer `json:"kustomize,omitempty"`
}

// KustomizePostRenderer is a kustomization applied to the rendered manifests.
type KustomizePostRenderer struct {
	// Patches: strategic merge or JSON 6902, with optional targets.
	// +optional
	Patches []Patch `json:"patches,omitempty"`
	// Images overrides.
	// +optional
	Images []Image `json:"images,omitempty"`
}

// Patch is a kustomize patch.
type Patch struct {
	// Patch content.
	// +required
	Patch string `json:"patch"`
	// Target of the patch.
	// +optional
	Target *PatchSelector `json:"target,omitempty"`
}

// PatchSelector selects the objects of a patch.
type PatchSelector struct {
	// +optional
	Group string `json:"group,omitempty"`
	// +optional
	Version string `json:"version,omitempty"`
	// +optional
	Kind string `json:"kind,omitempty"`
	// +optional
	Name string `json:"name,omitempty"`
	// +optional
	Namespace string `json:"namespace,omitempty"`
	// +optional
	LabelSelector string `json:"labelSelector,omitempty"`
	// +optional
	AnnotationSelector string `json:"annotationSelector,omitempty"`
}

// Image overrides an image.
type Image struct {
	// Name of the image in the manifests.
	// +required
	Name string `json:"name"`
	// +optional
	NewName string `json:"newName,omitempty"`
	// +optional
	NewTag string `json:"newTag,omitempty"`
	// +optional
	Digest string `json:"digest,omitempty"`
}
