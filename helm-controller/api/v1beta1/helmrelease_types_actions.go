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

// Action strategies of install and upgrade: what follows a failure.
const (
	// ActionStrategyRemediateOnFailure remediates a failure as spec.*.remediation says (the
	// default).
	ActionStrategyRemediateOnFailure = "RemediateOnFailure"
	// ActionStrategyRetryOnFailure leaves a failed release as it is and tries the action again
	// after the strategy's retryInterval, without remediation and without a retry limit.
	ActionStrategyRetryOnFailure = "RetryOnFailure"
)

// Chart name change strategies of upgrade: what follows a chart whose name differs from the
// release's.
const (
	// ChartNameChangeReinstall uninstalls the release, then installs the new chart (the
	// default).
	ChartNameChangeReinstall = "Reinstall"
	// ChartNameChangeInPlaceUpdate upgrades the release to the new chart.
	ChartNameChangeInPlaceUpdate = "InPlaceUpdate"
)

// Install configures the first install.
type Install struct {
	// Timeout of the install; default spec.timeout.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// Strategy after a failed install: RemediateOnFailure (default; spec.install.remediation
	// applies) or RetryOnFailure (the failed release is kept and the install tried again, with
	// an upgrade, after retryInterval).
	// +optional
	Strategy *ActionStrategy `json:"strategy,omitempty"`
	// Remediation of a failed install.
	// +optional
	Remediation *InstallRemediation `json:"remediation,omitempty"`
	// CRDs of the chart's crds/ folder: Create (default) or Skip.
	// +optional
	// +kubebuilder:validation:Enum=Skip;Create;CreateReplace
	CRDs string `json:"crds,omitempty"`
	// SkipCRDs leaves the chart's crds/ folder alone.
	// +optional
	//
	// Deprecated: use crds: Skip, which wins when both are set.
	SkipCRDs bool `json:"skipCRDs,omitempty"`
	// CreateNamespace creates the target namespace when it does not exist; it is not deleted
	// with the release.
	// +optional
	CreateNamespace bool `json:"createNamespace,omitempty"`
	// Replace reuses the release name when its last revision was uninstalled with its history
	// kept, or failed.
	// +optional
	Replace bool `json:"replace,omitempty"`
	// DisableWait does not wait for the resources to be ready.
	// +optional
	DisableWait bool `json:"disableWait,omitempty"`
	// DisableWaitForJobs does not wait for the release's Jobs to complete (the other resources
	// are still waited for).
	// +optional
	DisableWaitForJobs bool `json:"disableWaitForJobs,omitempty"`
	// DisableHooks does not run the chart's hooks during the install.
	// +optional
	DisableHooks bool `json:"disableHooks,omitempty"`
	// DisableOpenAPIValidation is accepted for Flux's manifests: helm-controller never runs
	// Helm's OpenAPI validation (the API server validates every object).
	// +optional
	DisableOpenAPIValidation bool `json:"disableOpenAPIValidation,omitempty"`
	// DisableSchemaValidation does not validate the values against the chart's
	// values.schema.json.
	// +optional
	DisableSchemaValidation bool `json:"disableSchemaValidation,omitempty"`
}

// Upgrade configures upgrades.
type Upgrade struct {
	// Timeout of an upgrade; default spec.timeout.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// Strategy after a failed upgrade: RemediateOnFailure (default; spec.upgrade.remediation
	// applies) or RetryOnFailure (no rollback; the upgrade is tried again after retryInterval).
	// +optional
	Strategy *ActionStrategy `json:"strategy,omitempty"`
	// Remediation of a failed upgrade.
	// +optional
	Remediation *Remediation `json:"remediation,omitempty"`
	// CRDs of the chart's crds/ folder: Skip (default, as Helm), Create (the missing ones) or
	// CreateReplace (also update existing ones, server-side apply).
	// +optional
	// +kubebuilder:validation:Enum=Skip;Create;CreateReplace
	CRDs string `json:"crds,omitempty"`
	// ChartNameChangeStrategy when the chart's name differs from the release's: Reinstall
	// (default; the release is uninstalled, then installed from the new chart) or InPlaceUpdate
	// (the release is upgraded to the new chart).
	// +optional
	// +kubebuilder:validation:Enum=Reinstall;InPlaceUpdate
	ChartNameChangeStrategy string `json:"chartNameChangeStrategy,omitempty"`
	// DisableWait does not wait for the resources to be ready.
	// +optional
	DisableWait bool `json:"disableWait,omitempty"`
	// DisableWaitForJobs does not wait for the release's Jobs to complete (the other resources
	// are still waited for).
	// +optional
	DisableWaitForJobs bool `json:"disableWaitForJobs,omitempty"`
	// DisableHooks does not run the chart's hooks during the upgrade.
	// +optional
	DisableHooks bool `json:"disableHooks,omitempty"`
	// DisableOpenAPIValidation is accepted for Flux's manifests: helm-controller never runs
	// Helm's OpenAPI validation (the API server validates every object).
	// +optional
	DisableOpenAPIValidation bool `json:"disableOpenAPIValidation,omitempty"`
	// DisableSchemaValidation does not validate the values against the chart's
	// values.schema.json.
	// +optional
	DisableSchemaValidation bool `json:"disableSchemaValidation,omitempty"`
	// Force has Helm replace each object with the chart's (an update) instead of patching it, so
	// that fields others set are dropped; an immutable field is refused either way.
	// +optional
	Force bool `json:"force,omitempty"`
	// PreserveValues merges the spec's values over the last release's, as helm upgrade
	// --reuse-values: the release then depends on its past, not only on the spec.
	// +optional
	PreserveValues bool `json:"preserveValues,omitempty"`
	// CleanupOnFail deletes the resources that a failed upgrade created.
	// +optional
	CleanupOnFail bool `json:"cleanupOnFail,omitempty"`
}

// ActionStrategy says what follows a failed install or upgrade.
// +kubebuilder:validation:XValidation:rule="!has(self.retryInterval) || self.name == 'RetryOnFailure'",message=".retryInterval can only be set when .name is 'RetryOnFailure'"
type ActionStrategy struct {
	// Name of the strategy: RemediateOnFailure or RetryOnFailure.
	// +required
	// +kubebuilder:validation:Enum=RemediateOnFailure;RetryOnFailure
	Name string `json:"name"`
	// RetryInterval between two attempts of RetryOnFailure; default 5m.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	RetryInterval *metav1.Duration `json:"retryInterval,omitempty"`
}

// InstallRemediation says what to do when an install fails: it is always uninstalled before it
// is tried again.
// +kubebuilder:validation:XValidation:rule="!has(self.strategy)",message="install.remediation.strategy is not supported: a failed install is always uninstalled; set upgrade.remediation.strategy, or install.strategy.name: RetryOnFailure to keep a failed install"
type InstallRemediation struct {
	// Retries before giving up; default 0 (no retry), -1 retries forever.
	// +optional
	Retries int64 `json:"retries,omitempty"`
	// IgnoreTestFailures keeps an install whose tests fail, without remediation; default
	// spec.test.ignoreFailures. Ready is then False (TestFailed) unless spec.test.ignoreFailures.
	// +optional
	IgnoreTestFailures *bool `json:"ignoreTestFailures,omitempty"`
	// RemediateLastFailure also remediates the last failure, when the retries are used up;
	// default true.
	// +optional
	RemediateLastFailure *bool `json:"remediateLastFailure,omitempty"`
	// Strategy is refused by the schema (it is not Flux's, and an install has only one
	// remediation): it exists so that a manifest setting it fails instead of being ignored.
	// +optional
	Strategy string `json:"strategy,omitempty"`
}

// Remediation says what to do when an upgrade fails.
type Remediation struct {
	// Retries before giving up; default 0 (no retry), -1 retries forever.
	// +optional
	Retries int64 `json:"retries,omitempty"`
	// Strategy after a failed upgrade: rollback (default) or uninstall.
	// +optional
	// +kubebuilder:validation:Enum=rollback;uninstall
	Strategy string `json:"strategy,omitempty"`
	// IgnoreTestFailures keeps an upgrade whose tests fail, without remediation; default
	// spec.test.ignoreFailures. Ready is then False (TestFailed) unless spec.test.ignoreFailures.
	// +optional
	IgnoreTestFailures *bool `json:"ignoreTestFailures,omitempty"`
	// RemediateLastFailure also remediates the last failure, when the retries are used up;
	// default true when retries is not 0.
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
	// Filters choose the tests by name: with any filter that does not exclude, only those tests
	// run; tests named by an excluding filter never run.
	// +optional
	Filters []TestFilter `json:"filters,omitempty"`
}

// TestFilter names a test hook to run or to leave out.
type TestFilter struct {
	// Name of the test (its object's name).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// Exclude leaves the named test out.
	// +optional
	Exclude bool `json:"exclude,omitempty"`
}

// Rollback configures rollbacks.
type Rollback struct {
	// Timeout of a rollback (and its wait); default spec.timeout.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// DisableWait does not wait for the rolled back resources to be ready.
	// +optional
	DisableWait bool `json:"disableWait,omitempty"`
	// DisableWaitForJobs does not wait for the rolled back release's Jobs to complete.
	// +optional
	DisableWaitForJobs bool `json:"disableWaitForJobs,omitempty"`
	// DisableHooks does not run the chart's hooks during the rollback.
	// +optional
	DisableHooks bool `json:"disableHooks,omitempty"`
	// Recreate restarts the Pods of the release's workloads after the rollback.
	// +optional
	Recreate bool `json:"recreate,omitempty"`
	// Force has Helm replace each object with the revision's instead of patching it.
	// +optional
	Force bool `json:"force,omitempty"`
	// CleanupOnFail deletes the resources that a failed rollback created.
	// +optional
	CleanupOnFail bool `json:"cleanupOnFail,omitempty"`
}

// Uninstall configures uninstalls.
type Uninstall struct {
	// Timeout of an uninstall (and its wait); default spec.timeout.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// DisableHooks does not run the chart's hooks during the uninstall.
	// +optional
	DisableHooks bool `json:"disableHooks,omitempty"`
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
	// Target selects the objects; all when empty.
	// +optional
	Target *Selector `json:"target,omitempty"`
}

// Selector selects objects: group, version, kind, name and namespace are regular expressions
// matched against the whole value; labelSelector and annotationSelector are Kubernetes label
// selectors (e.g. app=web,tier!=cache) matched against the labels and the annotations.
type Selector struct {
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
