package v1beta1

import (
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// HelmRepositoryKind is the kind name of HelmRepository.
const HelmRepositoryKind = "HelmRepository"

// Types of HelmRepository.
const (
	// HelmRepositoryTypeDefault is an HTTP(S) chart repository with an index.yaml.
	HelmRepositoryTypeDefault = "default"
	// HelmRepositoryTypeOCI is an OCI registry holding charts; it has no index.
	HelmRepositoryTypeOCI = "oci"
)

// HelmRepositorySpec says where a chart repository is and how to reach it.
// +kubebuilder:validation:XValidation:rule="self.type != 'oci' || self.url.startsWith('oci://')",message="an oci HelmRepository needs an oci:// url"
// +kubebuilder:validation:XValidation:rule="self.type == 'oci' || self.url.startsWith('http://') || self.url.startsWith('https://')",message="a default HelmRepository needs an http:// or https:// url"
// +kubebuilder:validation:XValidation:rule="!has(self.provider) || self.provider == 'generic' || self.type == 'oci'",message="spec.provider other than generic needs type: oci (an https HelmRepository takes a secretRef)",fieldPath=".provider"
type HelmRepositorySpec struct {
	// URL of the repository: the folder of index.yaml (https://charts.example.com/stable), or
	// oci://registry/path for type oci.
	// +required
	// +kubebuilder:validation:Pattern="^(https?|oci)://.+$"
	URL string `json:"url"`
	// Type is default (an index.yaml over HTTP(S), published as the artifact) or oci (charts in
	// an OCI registry: no index and no artifact; HelmCharts pull from it with its credentials).
	// +optional
	// +kubebuilder:default=default
	// +kubebuilder:validation:Enum=default;oci
	Type string `json:"type,omitempty"`
	// SecretRef names a Secret in the same namespace with `username` and `password` (HTTP basic
	// auth; for oci, registry credentials, or a kubernetes.io/dockerconfigjson Secret), and
	// optionally `ca.crt`, `tls.crt` and `tls.key`.
	// +optional
	SecretRef *meta.LocalObjectReference `json:"secretRef,omitempty"`
	// CertSecretRef names a Secret in the same namespace (type Opaque or kubernetes.io/tls) with
	// the TLS settings of an https:// or oci:// repository, as in Flux: `ca.crt`, a PEM CA
	// certificate the server's certificate must chain to (added to the system's), and `tls.crt`
	// with `tls.key`, a PEM client certificate and key. Its keys take precedence over the same
	// keys in secretRef's Secret.
	// +optional
	CertSecretRef *meta.LocalObjectReference `json:"certSecretRef,omitempty"`
	// AccessFrom is Flux's provisional access list of namespaces whose objects may use this
	// repository. It changes nothing, in Flux (where it is not implemented) as in Plumb: a
	// HelmChart uses only the HelmRepositories of its own namespace, so this repository's
	// credentials never serve another namespace. It is accepted so that Flux manifests apply.
	// +optional
	AccessFrom *AccessFrom `json:"accessFrom,omitempty"`
	// Provider, for type oci, obtains the registry credentials from a cloud's workload
	// identity: generic (the default: secretRef or none), aws (ECR), azure (ACR) or gcp
	// (Artifact Registry), with the controller's own identity. A secretRef wins over it, as in
	// Flux. Type default takes generic only.
	// +optional
	// +kubebuilder:default=generic
	// +kubebuilder:validation:Enum=generic;aws;azure;gcp
	Provider string `json:"provider,omitempty"`
	// ProxySecretRef names a Secret in the same namespace with the HTTP(S) proxy that every
	// connection of this object goes through: `address` (http://host:port or https://host:port),
	// and optionally `username` and `password` (proxy basic auth). NO_PROXY of the controller's
	// environment still applies to the remote's host. Without it, the controller's environment
	// proxies (HTTPS_PROXY, HTTP_PROXY) apply as before.
	// For type: oci, the registry is reached through it as well.
	// +optional
	ProxySecretRef *meta.LocalObjectReference `json:"proxySecretRef,omitempty"`
	// Insecure talks plain HTTP to an oci registry (for type default, use an http:// url).
	// +optional
	Insecure bool `json:"insecure,omitempty"`
	// PassCredentials sends the credentials with chart downloads from other hosts than the
	// repository's (some repositories serve charts from a CDN that needs them).
	// +optional
	PassCredentials bool `json:"passCredentials,omitempty"`
	// Interval between two downloads of the index, e.g. 10m; at least 1s.
	// +required
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s')",message="interval must be at least 1s"
	Interval metav1.Duration `json:"interval"`
	// Timeout bounds one attempt: downloading, checking and writing the index.
	// +optional
	// +kubebuilder:default="60s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// Suspend stops downloading; the last artifact stays served.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
}

// AccessFrom is a list of namespace selectors (Flux's acl.AccessFrom).
type AccessFrom struct {
	// NamespaceSelectors are ORed; an empty matchLabels matches every namespace.
	// +required
	NamespaceSelectors []NamespaceSelector `json:"namespaceSelectors"`
}

// NamespaceSelector selects namespaces by their labels.
type NamespaceSelector struct {
	// MatchLabels are ANDed {key: value} pairs.
	// +optional
	MatchLabels map[string]string `json:"matchLabels,omitempty"`
}

// HelmRepositoryStatus is what the controller observed and published.
type HelmRepositoryStatus struct {
	// ObservedGeneration is the generation of the spec last reconciled.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready, Reconciling, Stalled, ArtifactInStorage, FetchFailed.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Artifact holds the checked index, sorted and written as JSON (which is also YAML) to
	// index.yaml; its revision is the sha256 of that file. None for type oci.
	// +optional
	Artifact                    *meta.Artifact `json:"artifact,omitempty"`
	meta.ReconcileRequestStatus `json:",inline"`
}

// HelmRepository makes a chart repository's index available to HelmCharts.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=helmrepo,categories=plumb
// +kubebuilder:printcolumn:name="Ready",type="string",JSONPath=".status.conditions[?(@.type==\"Ready\")].status"
// +kubebuilder:printcolumn:name="Status",type="string",JSONPath=".status.conditions[?(@.type==\"Ready\")].message"
// +kubebuilder:printcolumn:name="URL",type="string",JSONPath=".spec.url",priority=1
// +kubebuilder:printcolumn:name="Age",type="date",JSONPath=".metadata.creationTimestamp"
type HelmRepository struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec HelmRepositorySpec `json:"spec"`
	// +optional
	Status HelmRepositoryStatus `json:"status,omitempty"`
}

// HelmRepositoryList is a list of HelmRepositories.
// +kubebuilder:object:root=true
type HelmRepositoryList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []HelmRepository `json:"items"`
}

// GetConditions returns the status conditions.
func (in *HelmRepository) GetConditions() []metav1.Condition { return in.Status.Conditions }

// SetConditions replaces the status conditions.
func (in *HelmRepository) SetConditions(c []metav1.Condition) { in.Status.Conditions = c }

// GetArtifact returns the published artifact, or nil.
func (in *HelmRepository) GetArtifact() *meta.Artifact { return in.Status.Artifact }

// GetTimeout returns spec.timeout, or 60s when unset.
func (in *HelmRepository) GetTimeout() time.Duration {
	if in.Spec.Timeout == nil || in.Spec.Timeout.Duration <= 0 {
		return 60 * time.Second
	}
	return in.Spec.Timeout.Duration
}

// GetRequeueAfter returns spec.interval.
func (in *HelmRepository) GetRequeueAfter() time.Duration { return in.Spec.Interval.Duration }

// IsOCI reports whether the repository is an OCI registry.
func (in *HelmRepository) IsOCI() bool { return in.Spec.Type == HelmRepositoryTypeOCI }
