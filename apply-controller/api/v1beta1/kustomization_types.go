package v1beta1

import (
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// KustomizationKind is the kind name of Kustomization.
const KustomizationKind = "Kustomization"

// KustomizationSpec says what to build from which source, and how to apply it.
type KustomizationSpec struct {
	// SourceRef names the object whose artifact holds the manifests: any kind that publishes
	// status.artifact (GitRepository, OCIRepository, ...).
	// +required
	SourceRef CrossNamespaceSourceReference `json:"sourceRef"`

	// Path of the folder to build, relative to the artifact's root; default the root. A folder
	// without kustomization.yaml gets one that lists its manifests.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('/') && !self.matches('(^|/)[.][.](/|$)')",message="path must be relative, without '..'"
	Path string `json:"path,omitempty"`

	// Interval between two reconciles (drift correction), e.g. 10m; at least 1s.
	// +required
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s')",message="interval must be at least 1s"
	Interval metav1.Duration `json:"interval"`

	// RetryInterval is the wait before retrying a failed reconcile; default spec.interval.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	RetryInterval *metav1.Duration `json:"retryInterval,omitempty"`

	// Timeout bounds the download of the artifact, the apply and the health checks; default
	// spec.interval. (Remote bases are fetched by kustomize with its own limits.)
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	Timeout *metav1.Duration `json:"timeout,omitempty"`

	// Prune deletes the objects that left the build (and, with deletionPolicy MirrorPrune,
	// everything applied when the Kustomization is deleted).
	// +required
	Prune bool `json:"prune"`

	// Wait makes Ready wait until every applied object is healthy (kstatus).
	// +optional
	Wait bool `json:"wait,omitempty"`

	// HealthChecks lists objects to wait for besides (or instead of) the applied ones.
	// +optional
	// +kubebuilder:validation:MaxItems=256
	HealthChecks []ObjectReference `json:"healthChecks,omitempty"`

	// HealthCheckExprs judge the health of custom resources that kstatus cannot (their status
	// has no Ready condition or observedGeneration), with CEL expressions over the object. They
	// are used only when spec.wait or spec.healthChecks make the controller wait.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	HealthCheckExprs []CustomHealthCheck `json:"healthCheckExprs,omitempty"`

	// DependsOn lists objects of any kind with a Ready condition that must be Ready (and at
	// their current generation) before this Kustomization is applied.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	DependsOn []DependencyReference `json:"dependsOn,omitempty"`

	// TargetNamespace sets the namespace of every namespaced object built.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	TargetNamespace string `json:"targetNamespace,omitempty"`

	// NamePrefix is prepended to the name of every object built.
	// +optional
	NamePrefix string `json:"namePrefix,omitempty"`

	// NameSuffix is appended to the name of every object built.
	// +optional
	NameSuffix string `json:"nameSuffix,omitempty"`

	// CommonMetadata adds labels and annotations to every object built (not to selectors).
	// +optional
	CommonMetadata *CommonMetadata `json:"commonMetadata,omitempty"`

	// Patches are strategic merge or JSON 6902 patches, applied to the objects their target
	// selects (all objects when there is no target).
	// +optional
	Patches []Patch `json:"patches,omitempty"`

	// Images replaces image names, tags or digests in the objects built.
	// +optional
	Images []Image `json:"images,omitempty"`

	// Components are kustomize components (paths relative to Path) added to the build.
	// +optional
	Components []string `json:"components,omitempty"`

	// IgnoreMissingComponents leaves out of the build the components of spec.components that
	// are not in the source, instead of failing it.
	// +optional
	IgnoreMissingComponents bool `json:"ignoreMissingComponents,omitempty"`

	// BuildMetadata asks kustomize to record how each object was built, as Flux does:
	// originAnnotations sets config.kubernetes.io/origin (the file, and for a remote base its
	// repository and ref, the object came from), transformerAnnotations sets
	// alpha.config.kubernetes.io/transformations (the transformers that changed it). Paths are
	// relative to spec.path. The annotations are applied with the objects.
	// +optional
	// +kubebuilder:validation:MaxItems=2
	// +kubebuilder:validation:items:Enum=originAnnotations;transformerAnnotations
	BuildMetadata []string `json:"buildMetadata,omitempty"`

	// PostBuild substitutes ${var} and ${var:=default} in the built manifests.
	// +optional
	PostBuild *PostBuild `json:"postBuild,omitempty"`

	// Decryption decrypts SOPS-encrypted manifests and Secret generator inputs in memory during
	// the build, with the keys of a Secret of this namespace.
	// +optional
	Decryption *Decryption `json:"decryption,omitempty"`

	// ServiceAccountName is a ServiceAccount of this namespace to impersonate for applying,
	// pruning and health checks (default: the controller's --default-service-account, if set).
	// +optional
	ServiceAccountName string `json:"serviceAccountName,omitempty"`

	// KubeConfig applies to another cluster with the kubeconfig of a Secret in this namespace.
	// +optional
	KubeConfig *KubeConfigReference `json:"kubeConfig,omitempty"`

	// Force recreates objects whose immutable fields changed.
	// +optional
	Force bool `json:"force,omitempty"`

	// Suspend stops reconciling; what is applied stays.
	// +optional
	Suspend bool `json:"suspend,omitempty"`

	// DeletionPolicy says what happens to applied objects when the Kustomization is deleted:
	// MirrorPrune (delete them if spec.prune), Delete (always), WaitForTermination (delete them
	// and wait, up to spec.timeout, until they are gone), Orphan (never).
	// +optional
	// +kubebuilder:default=MirrorPrune
	// +kubebuilder:validation:Enum=MirrorPrune;Delete;WaitForTermination;Orphan
	DeletionPolicy string `json:"deletionPolicy,omitempty"`

	// DriftPolicy: Correct re-applies objects that differ from Git at every interval; Warn
	// applies only a new revision, build or spec, and otherwise reports drifted objects (condition
	// and event) without changing them.
	// +optional
	// +kubebuilder:default=Correct
	// +kubebuilder:validation:Enum=Correct;Warn
	DriftPolicy string `json:"driftPolicy,omitempty"`

	// Ignore lists fields that others own: the JSON pointers of a rule are neither compared
	// for drift nor written on the objects its target selects (all objects without target).
	// +optional
	// +kubebuilder:validation:MaxItems=64
	Ignore []IgnoreRule `json:"ignore,omitempty"`
}

// CustomHealthCheck judges the health of objects of one group (and kind) with CEL
// expressions. The object's top-level fields are the variables: apiVersion, kind, metadata,
// spec, status. The expressions are tried in the order inProgress, failed, current; the first
// that is true gives the status, and none true means in progress. An object whose
// status.observedGeneration is behind its metadata.generation is in progress.
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
	// Failed is true when the object failed; the health check fails at once.
	// +optional
	Failed string `json:"failed,omitempty"`
}

// IgnoreRule names fields to leave alone on the objects its target selects.
type IgnoreRule struct {
	// Paths are JSON pointers (RFC 6901), e.g. /spec/replicas; a / inside a key is written ~1.
	// +required
	// +kubebuilder:validation:MinItems=1
	Paths []string `json:"paths"`
	// Target selects the objects; default all objects of the Kustomization.
	// +optional
	Target *Selector `json:"target,omitempty"`
}

// Decryption is how SOPS-encrypted files of the source are decrypted during the build.
type Decryption struct {
	// Provider is the encryption tool: sops.
	// +kubebuilder:validation:Enum=sops
	Provider string `json:"provider"`

	// SecretRef names a Secret of this namespace holding the keys: entries whose name ends in
	// `.agekey` hold age identities (one or more lines), entries ending in `.asc` armored PGP
	// private keys without a passphrase; `sops.aws-kms`, `sops.azure-kv`, `sops.gcp-kms` and
	// `sops.vault-token` the credentials of AWS KMS, Azure Key Vault, GCP KMS and HashiCorp Vault
	// (as Flux reads them). Without it, only KMS keys can be used, opened with the cloud identity
	// of serviceAccountName or, when the controller runs with --sops-kms-workload-identity, its
	// own.
	// +optional
	SecretRef *meta.LocalObjectReference `json:"secretRef,omitempty"`

	// ServiceAccountName names a ServiceAccount of this namespace whose cloud identity opens the
	// AWS KMS, GCP KMS and Azure Key Vault keys the Secret holds no credentials for: a token of
	// the ServiceAccount is exchanged for the cloud's, as its annotations say
	// (eks.amazonaws.com/role-arn, iam.gke.io/gcp-service-account,
	// azure.workload.identity/client-id and tenant-id). Needs the controller flag
	// --feature-gates=ObjectLevelWorkloadIdentity=true; the controller's
	// --default-decryption-service-account stands for it when empty.
	// +optional
	ServiceAccountName string `json:"serviceAccountName,omitempty"`
}

// DecryptionProviderSOPS is the only decryption provider.
const DecryptionProviderSOPS = "sops"

// Deletion and drift policies.
const (
	DeletionPolicyMirrorPrune        = "MirrorPrune"
	DeletionPolicyDelete             = "Delete"
	DeletionPolicyWaitForTermination = "WaitForTermination"
	DeletionPolicyOrphan             = "Orphan"
	DriftPolicyCorrect               = "Correct"
	DriftPolicyWarn                  = "Warn"
)

// Substitution strategies of spec.postBuild.substituteStrategy.
const (
	SubstituteStrategyWithVariables = "WithVariables"
	SubstituteStrategyAlways        = "Always"
)

// CrossNamespaceSourceReference names a source object, by default in the Kustomization's namespace.
type CrossNamespaceSourceReference struct {
	// APIVersion of the source, e.g. source.plumb.dev/v1beta1 (the default for the kinds of
	// source-controller).
	// +optional
	APIVersion string `json:"apiVersion,omitempty"`
	// Kind of the source, e.g. GitRepository.
	// +required
	// +kubebuilder:validation:MinLength=1
	Kind string `json:"kind"`
	// Name of the source.
	// +required
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// Namespace of the source; default the Kustomization's.
	// +optional
	Namespace string `json:"namespace,omitempty"`
}

// DependencyReference names an object with a Ready condition.
type DependencyReference struct {
	// APIVersion of the object; default apply.plumb.dev/v1beta1.
	// +optional
	APIVersion string `json:"apiVersion,omitempty"`
	// Kind of the object; default Kustomization.
	// +optional
	Kind string `json:"kind,omitempty"`
	// Name of the object.
	// +required
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// Namespace of the object; default the Kustomization's.
	// +optional
	Namespace string `json:"namespace,omitempty"`
	// ReadyExpr is a CEL expression that decides, instead of the Ready condition, whether the
	// dependency is ready: `dep` is the dependency and `self` this Kustomization, e.g.
	// dep.metadata.labels['app/version'] == self.metadata.labels['app/version'].
	// +optional
	ReadyExpr string `json:"readyExpr,omitempty"`
}

// ObjectReference names an object to health-check.
type ObjectReference struct {
	// APIVersion of the object, e.g. apps/v1.
	// +required
	APIVersion string `json:"apiVersion"`
	// Kind of the object.
	// +required
	Kind string `json:"kind"`
	// Name of the object.
	// +required
	Name string `json:"name"`
	// Namespace of the object; empty for cluster-scoped objects.
	// +optional
	Namespace string `json:"namespace,omitempty"`
}

// CommonMetadata is added to every object built.
type CommonMetadata struct {
	// +optional
	Labels map[string]string `json:"labels,omitempty"`
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Patch is a strategic merge patch or a JSON 6902 patch (YAML or JSON).
type Patch struct {
	// Patch is the patch document.
	// +required
	// +kubebuilder:validation:MinLength=1
	Patch string `json:"patch"`
	// Target selects the objects to patch; default all (strategic merge patches name their
	// target themselves).
	// +optional
	Target *Selector `json:"target,omitempty"`
}

// Selector selects objects by group, version, kind, name, namespace and selectors; name and
// namespace are regular expressions.
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

// Image replaces an image's name, tag or digest.
type Image struct {
	// Name of the image as written in the manifests, without tag.
	// +required
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// +optional
	NewName string `json:"newName,omitempty"`
	// +optional
	NewTag string `json:"newTag,omitempty"`
	// Digest replaces the tag with sha256:...
	// +optional
	Digest string `json:"digest,omitempty"`
}

// PostBuild holds the variables substituted in the built manifests.
type PostBuild struct {
	// SubstituteStrategy: WithVariables (the default) substitutes only when at least one
	// variable is defined (inline or read from substituteFrom); Always substitutes even without
	// variables, so that ${var:=default} gets its default.
	// +optional
	// +kubebuilder:validation:Enum=WithVariables;Always
	SubstituteStrategy string `json:"substituteStrategy,omitempty"`
	// Substitute maps variable names to values.
	// +optional
	Substitute map[string]string `json:"substitute,omitempty"`
	// SubstituteFrom reads variables from ConfigMaps and Secrets of this namespace; later ones
	// and Substitute win.
	// +optional
	SubstituteFrom []SubstituteReference `json:"substituteFrom,omitempty"`
}

// SubstituteReference names a ConfigMap or Secret of variables.
type SubstituteReference struct {
	// +required
	// +kubebuilder:validation:Enum=ConfigMap;Secret
	Kind string `json:"kind"`
	// +required
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// Optional lets the Kustomization go ahead when the object is missing.
	// +optional
	Optional bool `json:"optional,omitempty"`
}

// KubeConfigReference names a Secret holding a kubeconfig, or a ConfigMap describing a cluster
// to reach with a ServiceAccount token.
// +kubebuilder:validation:XValidation:rule="has(self.configMapRef) != has(self.secretRef)",message="exactly one of spec.kubeConfig.configMapRef or spec.kubeConfig.secretRef must be specified"
type KubeConfigReference struct {
	// SecretRef names the Secret and, optionally, its key (default `value`, then `value.yaml`).
	// +optional
	SecretRef *meta.SecretKeyReference `json:"secretRef,omitempty"`
	// ConfigMapRef names a ConfigMap describing the cluster, reached without a Secret (Flux's):
	// provider (generic, aws, azure or gcp), cluster (the cloud's cluster resource name),
	// address (the API server's https URL; required for generic), ca.crt, audiences (one a
	// line) and serviceAccountName. generic uses a token of that ServiceAccount of the
	// Kustomization's namespace (or of the controller's own), which the controller creates
	// with the TokenRequest API; aws, azure and gcp use the cloud's cluster credentials from
	// workload identity (that ServiceAccount's, or the controller's). serviceAccountName needs
	// the controller flag --feature-gates=ObjectLevelWorkloadIdentity=true.
	// +optional
	ConfigMapRef *meta.LocalObjectReference `json:"configMapRef,omitempty"`
}

// KustomizationStatus is what the controller observed and applied.
type KustomizationStatus struct {
	// ObservedGeneration is the generation of the spec last reconciled.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready, Reconciling, Stalled, Healthy.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// LastAppliedRevision is the source revision last applied successfully.
	// +optional
	LastAppliedRevision string `json:"lastAppliedRevision,omitempty"`

	// LastAttemptedRevision is the source revision of the last reconcile.
	// +optional
	LastAttemptedRevision string `json:"lastAttemptedRevision,omitempty"`

	// Inventory lists the objects applied, for pruning and health checks.
	// +optional
	Inventory *Inventory `json:"inventory,omitempty"`

	// History holds the last 5 distinct runs (revision, build digest and result), newest
	// first; a run equal to the newest is not recorded again.
	// +optional
	// +kubebuilder:validation:MaxItems=5
	History []Run `json:"history,omitempty"`

	meta.ReconcileRequestStatus `json:",inline"`
}

// Inventory lists applied objects.
type Inventory struct {
	// Entries, sorted by ID.
	// +optional
	Entries []InventoryEntry `json:"entries,omitempty"`
}

// IDs returns the ID of each entry, in the inventory's order; none for a nil inventory.
func (in *Inventory) IDs() []string {
	if in == nil {
		return nil
	}
	ids := make([]string, len(in.Entries))
	for i, e := range in.Entries {
		ids[i] = e.ID
	}
	return ids
}

// InventoryEntry is one applied object.
type InventoryEntry struct {
	// ID is <namespace>_<name>_<group>_<kind>.
	// +required
	ID string `json:"id"`
	// Version is the API version the object was applied with.
	// +required
	Version string `json:"v"`
}

// Run is one reconcile outcome for a revision and build.
type Run struct {
	// Revision of the source.
	Revision string `json:"revision"`
	// Digest identifies the built manifests: sha256 of them with the values of Secret
	// variables masked and the Secrets' resource versions added, so it reveals no secret.
	// +optional
	Digest string `json:"digest,omitempty"`
	// Result is the Ready reason of the run.
	Result string `json:"result"`
	// Duration of the run.
	// +optional
	Duration metav1.Duration `json:"duration,omitempty"`
	// Time the run ended.
	Time metav1.Time `json:"time"`
}

// Kustomization builds a path of a source artifact with kustomize and applies it.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=ks,categories=plumb
// +kubebuilder:printcolumn:name="Ready",type="string",JSONPath=".status.conditions[?(@.type==\"Ready\")].status"
// +kubebuilder:printcolumn:name="Status",type="string",JSONPath=".status.conditions[?(@.type==\"Ready\")].message"
// +kubebuilder:printcolumn:name="Revision",type="string",JSONPath=".status.lastAppliedRevision"
// +kubebuilder:printcolumn:name="Age",type="date",JSONPath=".metadata.creationTimestamp"
type Kustomization struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec KustomizationSpec `json:"spec"`
	// +optional
	Status KustomizationStatus `json:"status,omitempty"`
}

// KustomizationList is a list of Kustomizations.
// +kubebuilder:object:root=true
type KustomizationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Kustomization `json:"items"`
}

// GetConditions returns the status conditions.
func (in *Kustomization) GetConditions() []metav1.Condition { return in.Status.Conditions }

// SetConditions replaces the status conditions.
func (in *Kustomization) SetConditions(c []metav1.Condition) { in.Status.Conditions = c }

// GetTimeout returns spec.timeout, or spec.interval when unset.
func (in *Kustomization) GetTimeout() time.Duration {
	if in.Spec.Timeout != nil && in.Spec.Timeout.Duration > 0 {
		return in.Spec.Timeout.Duration
	}
	return in.Spec.Interval.Duration
}

// GetRetryInterval returns spec.retryInterval, or spec.interval when unset.
func (in *Kustomization) GetRetryInterval() time.Duration {
	if in.Spec.RetryInterval != nil && in.Spec.RetryInterval.Duration > 0 {
		return in.Spec.RetryInterval.Duration
	}
	return in.Spec.Interval.Duration
}
