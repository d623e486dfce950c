package v1beta1

import (
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// OCIRepositoryKind is the kind name of OCIRepository.
const OCIRepositoryKind = "OCIRepository"

// Layer operations of OCILayerSelector.
const (
	// OCILayerExtract unpacks the layer (a gzipped tarball) into the artifact.
	OCILayerExtract = "extract"
	// OCILayerCopy publishes the layer's blob as it is, e.g. a packaged Helm chart.
	OCILayerCopy = "copy"
)

// OCIRepositorySpec says which OCI artifact to pull and what of it to publish.
type OCIRepositorySpec struct {
	// URL of the repository, e.g. oci://ghcr.io/org/manifests (no tag or digest: see ref).
	// +required
	// +kubebuilder:validation:Pattern="^oci://[^@]+$"
	URL string `json:"url"`
	// Ref selects the artifact. When several fields are set the most specific wins:
	// digest > semver > tag. Empty: the tag latest.
	// +optional
	Ref *OCIRepositoryRef `json:"ref,omitempty"`
	// LayerSelector picks the layer to publish: the first with mediaType (any media type when
	// empty), extracted (default) or copied as it is.
	// +optional
	LayerSelector *OCILayerSelector `json:"layerSelector,omitempty"`
	// SecretRef names a Secret of type kubernetes.io/dockerconfigjson in the same namespace with
	// the registry credentials.
	// +optional
	SecretRef *meta.LocalObjectReference `json:"secretRef,omitempty"`
	// ServiceAccountName names a ServiceAccount in the same namespace: with provider generic,
	// its imagePullSecrets are used as credentials (after secretRef); with a cloud provider, it
	// is the cloud identity (its annotations name the role, identity or service account).
	// +optional
	ServiceAccountName string `json:"serviceAccountName,omitempty"`
	// Provider obtains the registry credentials from a cloud's workload identity: generic (the
	// default: secretRef, the ServiceAccount's imagePullSecrets, or none), aws (ECR), azure
	// (ACR) or gcp (GCR, Artifact Registry). Short-lived tokens come from the controller's own
	// identity, or with serviceAccountName from that ServiceAccount's (the controller needs
	// --feature-gates=ObjectLevelWorkloadIdentity=true). A secretRef wins over it, as in Flux.
	// +optional
	// +kubebuilder:default=generic
	// +kubebuilder:validation:Enum=generic;aws;azure;gcp
	Provider string `json:"provider,omitempty"`
	// CertSecretRef names a Secret in the same namespace with `ca.crt` (PEM CA of the
	// registry) and optionally `tls.crt` and `tls.key` (client certificate).
	// +optional
	CertSecretRef *meta.LocalObjectReference `json:"certSecretRef,omitempty"`
	// ProxySecretRef names a Secret in the same namespace with the HTTP(S) proxy that every
	// connection of this object goes through: `address` (http://host:port or https://host:port),
	// and optionally `username` and `password` (proxy basic auth). NO_PROXY of the controller's
	// environment still applies to the remote's host. Without it, the controller's environment
	// proxies (HTTPS_PROXY, HTTP_PROXY) apply as before.
	// +optional
	ProxySecretRef *meta.LocalObjectReference `json:"proxySecretRef,omitempty"`
	// Insecure talks plain HTTP to the registry. Without it, plain HTTP is refused, also for
	// loopback and private network addresses.
	// +optional
	Insecure bool `json:"insecure,omitempty"`
	// Ignore holds patterns in .gitignore syntax of files to leave out of an extracted layer.
	// +optional
	Ignore *string `json:"ignore,omitempty"`
	// Interval between two checks of the registry, e.g. 1m or 10m30s; at least 1s.
	// +required
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s')",message="interval must be at least 1s"
	Interval metav1.Duration `json:"interval"`
	// Timeout bounds one attempt: resolving the ref, pulling and writing the artifact.
	// +optional
	// +kubebuilder:default="60s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// Verify checks the signature of the manifest digest before its layer is published (cosign
	// or notation); a digest without a signature that verifies is refused and the last verified
	// artifact stays served. Verified digests are remembered, so an unchanged artifact is not
	// verified again.
	// +optional
	Verify *OCIArtifactVerification `json:"verify,omitempty"`
	// Suspend stops pulling; the last artifact stays served.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
}

// OCIRepositoryRef selects an artifact of a repository.
type OCIRepositoryRef struct {
	// Tag to pull, e.g. v1.2.0 or latest.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	Tag string `json:"tag,omitempty"`
	// SemVer is a range of tags to pick the highest from, e.g. ">=1.0.0 <2.0.0" or "1.x".
	// +optional
	SemVer string `json:"semver,omitempty"`
	// SemverFilter is a regular expression that tags must match to be considered by semver,
	// e.g. "-rc\\." to consider only release candidates (with a range that admits pre-releases,
	// such as ">=1.0.0-0").
	// +optional
	SemverFilter string `json:"semverFilter,omitempty"`
	// Digest pins a manifest, e.g. sha256:1a2b...
	// +optional
	// +kubebuilder:validation:Pattern="^sha256:[0-9a-f]{64}$"
	Digest string `json:"digest,omitempty"`
}

// OCILayerSelector picks a layer of the manifest.
type OCILayerSelector struct {
	// MediaType of the layer, e.g. application/vnd.cncf.flux.content.v1.tar+gzip; empty picks
	// the first layer.
	// +optional
	MediaType string `json:"mediaType,omitempty"`
	// Operation: extract (default) unpacks a gzipped tarball layer; copy publishes the blob as
	// it is.
	// +optional
	// +kubebuilder:validation:Enum=extract;copy
	Operation string `json:"operation,omitempty"`
}

// OCIRepositoryStatus is what the controller observed and published.
type OCIRepositoryStatus struct {
	// ObservedGeneration is the generation of the spec last reconciled.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready, Reconciling, Stalled, ArtifactInStorage, FetchFailed, and
	// SourceVerified with spec.verify.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Artifact is the tarball published for the last pulled manifest; its revision is
	// <tag>@sha256:<manifest digest>, or the digest alone for a digest ref.
	// +optional
	Artifact *meta.Artifact `json:"artifact,omitempty"`
	// ObservedIgnore is the spec.ignore that the artifact was built with.
	// +optional
	ObservedIgnore *string `json:"observedIgnore,omitempty"`
	// ObservedLayerSelector is the spec.layerSelector that the artifact was built with.
	// +optional
	ObservedLayerSelector       *OCILayerSelector `json:"observedLayerSelector,omitempty"`
	meta.ReconcileRequestStatus `json:",inline"`
}

// OCIRepository pulls an artifact from an OCI registry and publishes one of its layers as a
// tarball artifact.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=ocirepo,categories=plumb
// +kubebuilder:printcolumn:name="Ready",type="string",JSONPath=".status.conditions[?(@.type==\"Ready\")].status"
// +kubebuilder:printcolumn:name="Status",type="string",JSONPath=".status.conditions[?(@.type==\"Ready\")].message"
// +kubebuilder:printcolumn:name="Revision",type="string",JSONPath=".status.artifact.revision"
// +kubebuilder:printcolumn:name="URL",type="string",JSONPath=".spec.url",priority=1
// +kubebuilder:printcolumn:name="Age",type="date",JSONPath=".metadata.creationTimestamp"
type OCIRepository struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec OCIRepositorySpec `json:"spec"`
	// +optional
	Status OCIRepositoryStatus `json:"status,omitempty"`
}

// OCIRepositoryList is a list of OCIRepositories.
// +kubebuilder:object:root=true
type OCIRepositoryList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []OCIRepository `json:"items"`
}

// GetConditions returns the status conditions.
func (in *OCIRepository) GetConditions() []metav1.Condition { return in.Status.Conditions }

// SetConditions replaces the status conditions.
func (in *OCIRepository) SetConditions(c []metav1.Condition) { in.Status.Conditions = c }

// GetArtifact returns the published artifact, or nil.
func (in *OCIRepository) GetArtifact() *meta.Artifact { return in.Status.Artifact }

// GetTimeout returns spec.timeout, or 60s when unset.
func (in *OCIRepository) GetTimeout() time.Duration {
	if in.Spec.Timeout == nil || in.Spec.Timeout.Duration <= 0 {
		return 60 * time.Second
	}
	return in.Spec.Timeout.Duration
}

// GetRequeueAfter returns spec.interval.
func (in *OCIRepository) GetRequeueAfter() time.Duration { return in.Spec.Interval.Duration }

// GetRef returns the effective ref: spec.ref, or the tag latest.
func (in *OCIRepository) GetRef() OCIRepositoryRef {
	if in.Spec.Ref == nil || *in.Spec.Ref == (OCIRepositoryRef{}) {
		return OCIRepositoryRef{Tag: "latest"}
	}
	return *in.Spec.Ref
}

// GetLayerSelector returns the effective layer selector: any media type, extracted.
func (in *OCIRepository) GetLayerSelector() OCILayerSelector {
	s := OCILayerSelector{Operation: OCILayerExtract}
	if in.Spec.LayerSelector != nil {
		s.MediaType = in.Spec.LayerSelector.MediaType
		if in.Spec.LayerSelector.Operation != "" {
			s.Operation = in.Spec.LayerSelector.Operation
		}
	}
	return s
}
