package v1beta1

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// HelmReleaseKind is the kind name of HelmRelease.
const HelmReleaseKind = "HelmRelease"

// Finalizer is set on every HelmRelease so that the release is uninstalled with it.
const Finalizer = "plumb.dev/finalizer"

// ResetAtAnnotation set to a new value clears the install and upgrade failure counters, so that
// exhausted retries start again.
const ResetAtAnnotation = "helm.plumb.dev/resetAt"

// HelmReleaseSpec says which chart to release, how, and with which values.
// +kubebuilder:validation:XValidation:rule="has(self.chart) != has(self.chartRef)",message="set exactly one of chart and chartRef"
type HelmReleaseSpec struct {
	// Chart is a template of the HelmChart the controller creates (in the HelmRelease's
	// namespace, owned by it) and installs from.
	// +optional
	Chart *HelmChartTemplate `json:"chart,omitempty"`
	// ChartRef names an object that publishes the chart as an artifact: a HelmChart, an
	// OCIRepository (a chart layer copied as is), or any kind under the artifact contract.
	// +optional
	ChartRef *CrossNamespaceSourceReference `json:"chartRef,omitempty"`
	// ReleaseName of the Helm release; default [<targetNamespace>-]<name>, shortened as Flux
	// does when it is longer than Helm's 53: its first 40 characters (without a trailing "."),
	// "-" and 12 hex characters of its sha256.
	// +optional
	// +kubebuilder:validation:MaxLength=53
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	ReleaseName string `json:"releaseName,omitempty"`
	// TargetNamespace the release installs into; default the HelmRelease's namespace.
	// +optional
	TargetNamespace string `json:"targetNamespace,omitempty"`
	// StorageNamespace keeps Helm's release Secrets; default the target namespace (Flux's
	// default is the HelmRelease's namespace: set it to adopt a release Flux made with a
	// targetNamespace).
	// +optional
	StorageNamespace string `json:"storageNamespace,omitempty"`
	// MaxHistory bounds the Helm revisions kept in storage, and the entries of status.history;
	// default 5, 0 keeps all in storage.
	// +optional
	// +kubebuilder:validation:Minimum=0
	MaxHistory *int `json:"maxHistory,omitempty"`
	// Values are the release's values, merged over valuesFrom.
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	Values *apiextensionsv1.JSON `json:"values,omitempty"`
	// ValuesFrom reads values from ConfigMaps and Secrets of the namespace, merged in order.
	// +optional
	ValuesFrom []ValuesReference `json:"valuesFrom,omitempty"`
	// Decryption decrypts SOPS-encrypted YAML or JSON documents of valuesFrom in memory before
	// they are merged (a Plumb addition: Flux's HelmRelease has no such field). Without it, an
	// encrypted document fails the release with DecryptionFailed instead of reaching the chart.
	// +optional
	Decryption *Decryption `json:"decryption,omitempty"`
	// Install configures the first install.
	// +optional
	Install *Install `json:"install,omitempty"`
	// Upgrade configures upgrades.
	// +optional
	Upgrade *Upgrade `json:"upgrade,omitempty"`
	// Test runs the chart's test hooks after an install or upgrade.
	// +optional
	Test *Test `json:"test,omitempty"`
	// Rollback configures the rollbacks of remediation.
	// +optional
	Rollback *Rollback `json:"rollback,omitempty"`
	// Uninstall configures the uninstall on deletion and of remediation.
	// +optional
	Uninstall *Uninstall `json:"uninstall,omitempty"`
	// DriftDetection compares the cluster with the release's manifest.
	// +optional
	DriftDetection *DriftDetection `json:"driftDetection,omitempty"`
	// DependsOn lists objects of any kind with a Ready condition that must be Ready first.
	// +optional
	DependsOn []DependencyReference `json:"dependsOn,omitempty"`
	// HealthCheckExprs judge the health of custom resources of the release that kstatus cannot
	// (their status has no Ready condition or observedGeneration), with CEL expressions over the
	// object. They are used when the install or upgrade waits (disableWait is not set).
	// +optional
	// +kubebuilder:validation:MaxItems=64
	HealthCheckExprs []CustomHealthCheck `json:"healthCheckExprs,omitempty"`
	// PersistentClient is accepted for Flux's manifests and changes nothing: helm-controller
	// always reuses one Kubernetes client per identity (its REST mapper finds CRDs installed
	// later), across actions and reconciles. Default true, as in Flux.
	// +optional
	PersistentClient *bool `json:"persistentClient,omitempty"`
	// ServiceAccountName of this namespace to impersonate for every Helm action.
	// +optional
	ServiceAccountName string `json:"serviceAccountName,omitempty"`
	// KubeConfig releases into another cluster: with the kubeconfig in a Secret, or as a
	// ConfigMap describes it.
	// +optional
	KubeConfig *KubeConfigReference `json:"kubeConfig,omitempty"`
	// CommonMetadata labels and annotations go on every object the chart renders (not on its
	// hooks), over those the chart sets, after the postRenderers.
	// +optional
	CommonMetadata *CommonMetadata `json:"commonMetadata,omitempty"`
	// PostRenderers change the rendered manifests before they are applied.
	// +optional
	PostRenderers []PostRenderer `json:"postRenderers,omitempty"`
	// Interval between two checks, e.g. 10m; at least 1s.
	// +required
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s')",message="interval must be at least 1s"
	Interval metav1.Duration `json:"interval"`
	// Timeout of each Helm action (and its wait); default 5m.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// Suspend stops reconciling; the release stays as it is.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
}

// CommonMetadata are labels and annotations set on every object of a release.
type CommonMetadata struct {
	// Annotations to set.
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
	// Labels to set.
	// +optional
	Labels map[string]string `json:"labels,omitempty"`
}

// HelmChartTemplate describes the HelmChart to create.
type HelmChartTemplate struct {
	// ObjectMeta holds labels and annotations of the HelmChart.
	// +optional
	ObjectMeta *HelmChartTemplateObjectMeta `json:"metadata,omitempty"`
	// Spec of the HelmChart.
	// +required
	Spec HelmChartTemplateSpec `json:"spec"`
}

// HelmChartTemplateObjectMeta is the metadata of the HelmChart a HelmRelease creates.
type HelmChartTemplateObjectMeta struct {
	// Labels of the HelmChart.
	// +optional
	Labels map[string]string `json:"labels,omitempty"`
	// Annotations of the HelmChart.
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// HelmChartTemplateSpec is the part of a HelmChart's spec a HelmRelease sets.
type HelmChartTemplateSpec struct {
	// Chart name in a HelmRepository, or folder in a GitRepository's artifact.
	// +required
	// +kubebuilder:validation:MinLength=1
	Chart string `json:"chart"`
	// Version range; default "*".
	// +optional
	Version string `json:"version,omitempty"`
	// SourceRef names the HelmRepository, GitRepository or OCIRepository the chart comes from.
	// +required
	SourceRef LocalChartSourceReference `json:"sourceRef"`
	// ValuesFiles of the chart merged into its values.yaml.
	// +optional
	ValuesFiles []string `json:"valuesFiles,omitempty"`
	// IgnoreMissingValuesFiles leaves out the valuesFiles the chart does not have, instead of
	// failing the HelmChart.
	// +optional
	IgnoreMissingValuesFiles bool `json:"ignoreMissingValuesFiles,omitempty"`
	// ReconcileStrategy of the HelmChart: ChartVersion (default) or Revision.
	// +optional
	// +kubebuilder:validation:Enum=ChartVersion;Revision
	ReconcileStrategy string `json:"reconcileStrategy,omitempty"`
	// Interval of the HelmChart; default the HelmRelease's.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	Interval *metav1.Duration `json:"interval,omitempty"`
	// Verify is the HelmChart's spec.verify: the signature of a chart from an OCI
	// HelmRepository is verified before it is packaged (charts from other sources are not).
	// The Secrets it names are in the HelmChart's namespace.
	// +optional
	Verify *HelmChartTemplateVerification `json:"verify,omitempty"`
}

// HelmChartTemplateVerification is the verification of the chart's signature, passed to the
// HelmChart as it is (see source-controller's HelmChart spec.verify).
type HelmChartTemplateVerification struct {
	// Provider of the signatures: cosign (the default) or notation.
	// +optional
	// +kubebuilder:default=cosign
	// +kubebuilder:validation:Enum=cosign;notation
	Provider string `json:"provider,omitempty"`
	// SecretRef names a Secret with the trusted material: cosign public keys (keys ending in
	// .pub), or notation's trustpolicy.json and certificates. Without it, cosign verifies
	// keyless.
	// +optional
	SecretRef *meta.LocalObjectReference `json:"secretRef,omitempty"`
	// MatchOIDCIdentity lists the certificate identities (issuer and subject regular
	// expressions) accepted by cosign keyless verification.
	// +optional
	MatchOIDCIdentity []OIDCIdentityMatch `json:"matchOIDCIdentity,omitempty"`
	// TrustedRootSecretRef names a Secret whose trusted_root.json is the Sigstore trusted root
	// of keyless verification (default: the public-good instance's).
	// +optional
	TrustedRootSecretRef *meta.LocalObjectReference `json:"trustedRootSecretRef,omitempty"`
}

// OIDCIdentityMatch is a certificate identity accepted by cosign keyless verification.
type OIDCIdentityMatch struct {
	// Issuer is a regular expression the certificate's OIDC issuer must match.
	// +required
	Issuer string `json:"issuer"`
	// Subject is a regular expression the certificate's subject must match.
	// +required
	Subject string `json:"subject"`
}

// LocalChartSourceReference names the source of a chart template.
type LocalChartSourceReference struct {
	// APIVersion of the source; source.plumb.dev/v1beta1, the default, is the only one.
	// +optional
	APIVersion string `json:"apiVersion,omitempty"`
	// Kind of the source.
	// +required
	// +kubebuilder:validation:Enum=HelmRepository;GitRepository;OCIRepository
	Kind string `json:"kind"`
	// Name of the source.
	// +required
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// Namespace of the source; default the HelmRelease's. The HelmChart is made in the source's
	// namespace (a source reads only its own namespace). Another namespace than the
	// HelmRelease's is refused while the controller runs with --no-cross-namespace-refs (the
	// default).
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace,omitempty"`
}

// CrossNamespaceSourceReference names an object that publishes an artifact.
type CrossNamespaceSourceReference struct {
	// APIVersion of the object; default source.plumb.dev/v1beta1.
	// +optional
	APIVersion string `json:"apiVersion,omitempty"`
	// Kind of the object, e.g. HelmChart or OCIRepository.
	// +required
	// +kubebuilder:validation:MinLength=1
	Kind string `json:"kind"`
	// Name of the object.
	// +required
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// Namespace of the object; default the HelmRelease's.
	// +optional
	Namespace string `json:"namespace,omitempty"`
}

// DependencyReference names an object with a Ready condition.
type DependencyReference struct {
	// APIVersion of the object; default helm.plumb.dev/v1beta1.
	// +optional
	APIVersion string `json:"apiVersion,omitempty"`
	// Kind of the object; default HelmRelease.
	// +optional
	Kind string `json:"kind,omitempty"`
	// Name of the object.
	// +required
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// Namespace of the object; default the HelmRelease's.
	// +optional
	Namespace string `json:"namespace,omitempty"`
	// ReadyExpr is a CEL expression that decides, instead of the Ready condition, whether the
	// dependency is ready: `dep` is the dependency and `self` this HelmRelease, e.g.
	// dep.metadata.labels['app/version'] == self.metadata.labels['app/version'].
	// +optional
	ReadyExpr string `json:"readyExpr,omitempty"`
}

// CustomHealthCheck judges objects of a kind (or of every kind of a group) with CEL
// expressions over the object.
type CustomHealthCheck struct {
	// APIVersion of the objects; only its group is matched, so that every version is.
	// +required
	// +kubebuilder:validation:MinLength=1
	APIVersion string `json:"apiVersion"`
	// Kind of the objects; empty for every kind of the group (an entry with a kind wins).
	// +optional
	Kind string `json:"kind,omitempty"`
	// Current is true when the object is healthy, e.g.
	// status.conditions.exists(c, c.type == 'Ready' && c.status == 'True').
	// +required
	// +kubebuilder:validation:MinLength=1
	Current string `json:"current"`
	// InProgress is true while the object is still being worked on.
	// +optional
	InProgress string `json:"inProgress,omitempty"`
	// Failed is true when the object failed; the health wait fails at once.
	// +optional
	Failed string `json:"failed,omitempty"`
}

// ValuesReference reads values from a ConfigMap or Secret.
type ValuesReference struct {
	// Kind: ConfigMap or Secret.
	// +required
	// +kubebuilder:validation:Enum=ConfigMap;Secret
	Kind string `json:"kind"`
	// Name of the object in the HelmRelease's namespace.
	// +required
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// ValuesKey is the key holding YAML values; default values.yaml.
	// +optional
	ValuesKey string `json:"valuesKey,omitempty"`
	// TargetPath, when set, puts the key's value, as a string, at this dotted path of the values
	// (\. for a dot inside a key) instead of merging YAML.
	// +optional
	TargetPath string `json:"targetPath,omitempty"`
	// Optional lets the release go ahead when the object or key is missing.
	// +optional
	Optional bool `json:"optional,omitempty"`
	// Literal is accepted for Flux's manifests: with targetPath the value is always put as it
	// is, a string, never parsed with Helm's --set syntax (as Flux does with literal: true).
	// +optional
	Literal bool `json:"literal,omitempty"`
}

// KubeConfigReference names a Secret holding a kubeconfig, or a ConfigMap describing a cluster
// to reach with a ServiceAccount token or a cloud identity.
// +kubebuilder:validation:XValidation:rule="has(self.configMapRef) != has(self.secretRef)",message="exactly one of spec.kubeConfig.configMapRef or spec.kubeConfig.secretRef must be specified"
type KubeConfigReference struct {
	// SecretRef names the Secret and, optionally, its key (default `value`, then `value.yaml`).
	// +optional
	SecretRef *meta.SecretKeyReference `json:"secretRef,omitempty"`
	// ConfigMapRef names a ConfigMap describing the cluster, reached without a Secret (Flux's):
	// provider (generic, aws, azure or gcp), cluster (the cloud's cluster resource name),
	// address (the API server's https URL; required for generic), ca.crt, audiences (one a
	// line) and serviceAccountName. generic uses a token of that ServiceAccount of the
	// HelmRelease's namespace (or of the controller's own), which the controller creates with
	// the TokenRequest API; aws, azure and gcp use the cloud's cluster credentials from
	// workload identity (that ServiceAccount's, or the controller's). serviceAccountName needs
	// the controller flag --feature-gates=ObjectLevelWorkloadIdentity=true.
	// +optional
	ConfigMapRef *meta.LocalObjectReference `json:"configMapRef,omitempty"`
}

// Snapshot is a Helm release revision as the controller saw it.
type Snapshot struct {
	// Version is the Helm revision number.
	Version int `json:"version"`
	// Name and Namespace of the release.
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	// ChartName, ChartVersion and AppVersion of the released chart.
	ChartName    string `json:"chartName"`
	ChartVersion string `json:"chartVersion"`
	// +optional
	AppVersion string `json:"appVersion,omitempty"`
	// ConfigDigest is the digest of the values the revision was made with (as
	// lastAttemptedValuesChecksum); empty for a revision helm-controller did not make.
	// +optional
	ConfigDigest string `json:"configDigest,omitempty"`
	// Status of the revision in Helm (deployed, failed, superseded, ...).
	Status string `json:"status"`
	// +optional
	FirstDeployed metav1.Time `json:"firstDeployed,omitempty"`
	// +optional
	LastDeployed metav1.Time `json:"lastDeployed,omitempty"`
	// TestResult: succeeded, failed, or empty when not tested.
	// +optional
	TestResult string `json:"testResult,omitempty"`
}

// HelmReleaseStatus is what the controller observed and released.
type HelmReleaseStatus struct {
	// ObservedGeneration is the generation of the spec last reconciled.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready, Released, TestSuccess, Remediated, Drifted, Reconciling, Stalled.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// History of the release, newest first, at most maxHistory entries.
	// +optional
	History []Snapshot `json:"history,omitempty"`
	// HelmChart is namespace/name of the HelmChart created from spec.chart.
	// +optional
	HelmChart string `json:"helmChart,omitempty"`
	// LastAttemptedRevision is the chart artifact revision of the last attempt.
	// +optional
	LastAttemptedRevision string `json:"lastAttemptedRevision,omitempty"`
	// LastAttemptedValuesChecksum is the digest of the values of the last attempt: sha256 of
	// them with the values read from Secrets masked and the Secrets' resource versions added, so
	// it reveals no secret.
	// +optional
	LastAttemptedValuesChecksum string `json:"lastAttemptedValuesChecksum,omitempty"`
	// LastAttemptedGeneration is the generation of the last attempt.
	// +optional
	LastAttemptedGeneration int64 `json:"lastAttemptedGeneration,omitempty"`
	// InstallFailures and UpgradeFailures count the failures since the last success or change
	// of chart, values or spec.
	// +optional
	InstallFailures int64 `json:"installFailures,omitempty"`
	// +optional
	UpgradeFailures int64 `json:"upgradeFailures,omitempty"`
	// LastHandledResetAt is the last helm.plumb.dev/resetAt value handled.
	// +optional
	LastHandledResetAt          string `json:"lastHandledResetAt,omitempty"`
	meta.ReconcileRequestStatus `json:",inline"`
}

// HelmRelease installs a chart and keeps the release equal to its spec.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=hr,categories=plumb
// +kubebuilder:printcolumn:name="Ready",type="string",JSONPath=".status.conditions[?(@.type==\"Ready\")].status"
// +kubebuilder:printcolumn:name="Status",type="string",JSONPath=".status.conditions[?(@.type==\"Ready\")].message"
// +kubebuilder:printcolumn:name="Age",type="date",JSONPath=".metadata.creationTimestamp"
type HelmRelease struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec HelmReleaseSpec `json:"spec"`
	// +optional
	Status HelmReleaseStatus `json:"status,omitempty"`
}

// HelmReleaseList is a list of HelmReleases.
// +kubebuilder:object:root=true
type HelmReleaseList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []HelmRelease `json:"items"`
}

// GetConditions returns the status conditions.
func (in *HelmRelease) GetConditions() []metav1.Condition { return in.Status.Conditions }

// SetConditions replaces the status conditions.
func (in *HelmRelease) SetConditions(c []metav1.Condition) { in.Status.Conditions = c }

// GetTimeout returns spec.timeout, or 5m when unset.
func (in *HelmRelease) GetTimeout() time.Duration {
	if in.Spec.Timeout == nil || in.Spec.Timeout.Duration <= 0 {
		return 5 * time.Minute
	}
	return in.Spec.Timeout.Duration
}

// GetReleaseName returns spec.releaseName or its default.
func (in *HelmRelease) GetReleaseName() string {
	if in.Spec.ReleaseName != "" {
		return in.Spec.ReleaseName
	}
	name := in.Name
	if in.Spec.TargetNamespace != "" {
		name = in.Spec.TargetNamespace + "-" + in.Name
	}
	if len(name) > 53 {
		// Flux's shortening, so that a release Flux made is found under the same name: a
		// prefix ending in "-" keeps it ("--" is a valid name). One ending in "." loses it: Flux's
		// name would be invalid there, so Flux never made such a release.
		sum := sha256.Sum256([]byte(name))
		name = strings.TrimRight(name[:40], ".") + "-" + hex.EncodeToString(sum[:])[:12]
	}
	return name
}

// GetTargetNamespace returns spec.targetNamespace or the HelmRelease's namespace.
func (in *HelmRelease) GetTargetNamespace() string {
	if in.Spec.TargetNamespace != "" {
		return in.Spec.TargetNamespace
	}
	return in.Namespace
}

// GetStorageNamespace returns spec.storageNamespace or the target namespace.
func (in *HelmRelease) GetStorageNamespace() string {
	if in.Spec.StorageNamespace != "" {
		return in.Spec.StorageNamespace
	}
	return in.GetTargetNamespace()
}

// GetMaxHistory returns spec.maxHistory, or 5 when unset.
func (in *HelmRelease) GetMaxHistory() int {
	if in.Spec.MaxHistory == nil {
		return 5
	}
	return *in.Spec.MaxHistory
}

// Decryption is how SOPS-encrypted values documents are decrypted, with the keys of a Secret:
// the shape and the Secret entries of a Kustomization's spec.decryption.
type Decryption struct {
	// Provider is the encryption tool: sops.
	// +kubebuilder:validation:Enum=sops
	Provider string `json:"provider"`

	// SecretRef names a Secret of this namespace holding the keys: entries whose name ends in
	// `.agekey` hold age identities (one or more lines), entries ending in `.asc` armored PGP
	// private keys without a passphrase; `sops.aws-kms`, `sops.azure-kv`, `sops.gcp-kms` and
	// `sops.vault-token` the credentials of AWS KMS, Azure Key Vault, GCP KMS and HashiCorp Vault
	// (as Flux reads them). Without it, only KMS keys that the controller's own identity opens can
	// be used, when the controller runs with --sops-kms-workload-identity.
	// +optional
	SecretRef *meta.LocalObjectReference `json:"secretRef,omitempty"`
}

// DecryptionProviderSOPS is the only decryption provider.
const DecryptionProviderSOPS = "sops"
