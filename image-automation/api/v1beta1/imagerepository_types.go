package v1beta1

import (
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ImageRepositoryKind is the kind name of ImageRepository.
const ImageRepositoryKind = "ImageRepository"

// DefaultExclusionList leaves out the tags that signing and attestation tools push beside images.
var DefaultExclusionList = []string{`^.*\.sig$`, `^.*\.att$`, `^.*\.sbom$`}

// ImageRepositorySpec says which image repository to scan for tags.
type ImageRepositorySpec struct {
	// Image is the repository without a tag or digest, e.g. ghcr.io/acme/app or nginx (Docker
	// Hub's library/nginx).
	// +required
	// +kubebuilder:validation:Pattern="^[^:@/ ]+(:[0-9]+)?(/[^:@ ]+)*$"
	Image string `json:"image"`
	// Interval between two scans, e.g. 5m; at least 10s.
	// +required
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('10s')",message="interval must be at least 10s"
	Interval metav1.Duration `json:"interval"`
	// Timeout bounds one scan; default 60s.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	Timeout *metav1.Duration `json:"timeout,omitempty"`
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
	// CertSecretRef names a Secret in the same namespace with `ca.crt` (PEM CA of the registry)
	// and optionally `tls.crt` and `tls.key` (a client certificate).
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
	// ExclusionList holds regular expressions of tags to leave out. Unset: tags ending in .sig,
	// .att and .sbom (signatures, attestations, SBOMs). An empty list keeps every tag.
	// +optional
	ExclusionList []string `json:"exclusionList,omitempty"`
	// AccessFrom lists the namespaces whose ImagePolicies may use this repository; its own
	// namespace always may.
	// +optional
	AccessFrom *AccessFrom `json:"accessFrom,omitempty"`
	// Suspend stops scanning; the last scanned tags stay available to policies.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
}

// AccessFrom grants namespaces access to an object of another namespace.
type AccessFrom struct {
	// NamespaceSelectors: a namespace whose labels match any of them has access. A selector
	// with no labels matches every namespace.
	// +required
	NamespaceSelectors []NamespaceSelector `json:"namespaceSelectors"`
}

// NamespaceSelector selects namespaces by their labels.
type NamespaceSelector struct {
	// MatchLabels a namespace must all carry.
	// +optional
	MatchLabels map[string]string `json:"matchLabels,omitempty"`
}

// ScanResult sums up a scan.
type ScanResult struct {
	// TagCount is the number of tags kept after the exclusion list.
	TagCount int `json:"tagCount"`
	// ScanTime is when the tags were listed.
	ScanTime metav1.Time `json:"scanTime"`
	// LatestTags are the 10 greatest tags in lexical order, for a person to glance at.
	// +optional
	LatestTags []string `json:"latestTags,omitempty"`
	// Revision is the sha256 digest of the kept tag list; it changes when the tags change.
	// +optional
	Revision string `json:"revision,omitempty"`
}

// ImageRepositoryStatus is what the controller observed. The tags themselves are kept on the
// controller's disk, not in the status.
type ImageRepositoryStatus struct {
	// ObservedGeneration is the generation of the spec last reconciled.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready, Reconciling, Stalled.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// CanonicalImageName is the image with the registry spelled out, e.g.
	// index.docker.io/library/nginx.
	// +optional
	CanonicalImageName string `json:"canonicalImageName,omitempty"`
	// LastScanResult sums up the last successful scan.
	// +optional
	LastScanResult *ScanResult `json:"lastScanResult,omitempty"`
	// ObservedExclusionList is the exclusion list of the last scan.
	// +optional
	ObservedExclusionList       []string `json:"observedExclusionList,omitempty"`
	meta.ReconcileRequestStatus `json:",inline"`
}

// ImageRepository lists the tags of an image repository at an interval.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=imagerepo,categories=plumb
// +kubebuilder:printcolumn:name="Image",type="string",JSONPath=".spec.image"
// +kubebuilder:printcolumn:name="Tags",type="integer",JSONPath=".status.lastScanResult.tagCount"
// +kubebuilder:printcolumn:name="Ready",type="string",JSONPath=".status.conditions[?(@.type==\"Ready\")].status"
// +kubebuilder:printcolumn:name="Status",type="string",JSONPath=".status.conditions[?(@.type==\"Ready\")].message"
// +kubebuilder:printcolumn:name="Age",type="date",JSONPath=".metadata.creationTimestamp"
type ImageRepository struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec ImageRepositorySpec `json:"spec"`
	// +optional
	Status ImageRepositoryStatus `json:"status,omitempty"`
}

// ImageRepositoryList is a list of ImageRepositories.
// +kubebuilder:object:root=true
type ImageRepositoryList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ImageRepository `json:"items"`
}

// GetConditions returns the status conditions.
func (in *ImageRepository) GetConditions() []metav1.Condition { return in.Status.Conditions }

// SetConditions replaces the status conditions.
func (in *ImageRepository) SetConditions(c []metav1.Condition) { in.Status.Conditions = c }

// GetTimeout returns spec.timeout, or 60s.
func (in *ImageRepository) GetTimeout() time.Duration {
	if in.Spec.Timeout == nil || in.Spec.Timeout.Duration <= 0 {
		return time.Minute
	}
	return in.Spec.Timeout.Duration
}

// GetExclusionList returns spec.exclusionList, or the default when unset.
func (in *ImageRepository) GetExclusionList() []string {
	if in.Spec.ExclusionList == nil {
		return DefaultExclusionList
	}
	return in.Spec.ExclusionList
}
