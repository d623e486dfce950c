package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fluxcd/pkg/apis/meta"
)

// ImagePolicyKind is the kind name of ImagePolicy.
const ImagePolicyKind = "ImagePolicy"

// Digest reflection policies.
const (
	// ReflectNever leaves latestRef.digest empty.
	ReflectNever = "Never"
	// ReflectIfNotPresent looks the digest up once per tag.
	ReflectIfNotPresent = "IfNotPresent"
	// ReflectAlways looks the digest up at every reconcile, so a tag pushed again is noticed.
	ReflectAlways = "Always"
)

// ImagePolicySpec says how to choose the latest image of a repository.
// +kubebuilder:validation:XValidation:rule="has(self.interval) == (has(self.digestReflectionPolicy) && self.digestReflectionPolicy == 'Always')",message="interval goes with digestReflectionPolicy Always, and only with it"
type ImagePolicySpec struct {
	// ImageRepositoryRef names the ImageRepository whose tags are chosen from; another
	// namespace's only when its accessFrom admits this one.
	// +required
	ImageRepositoryRef meta.NamespacedObjectReference `json:"imageRepositoryRef"`
	// Policy chooses the latest tag.
	// +required
	Policy ImagePolicyChoice `json:"policy"`
	// FilterTags keeps the tags matching a pattern, and can compare a part of them.
	// +optional
	FilterTags *TagFilter `json:"filterTags,omitempty"`
	// DigestReflectionPolicy: Never (default), IfNotPresent or Always look up the chosen tag's
	// digest in the registry, for `:digest` markers and full references pinned by digest.
	// +optional
	// +kubebuilder:default=Never
	// +kubebuilder:validation:Enum=Never;IfNotPresent;Always
	DigestReflectionPolicy string `json:"digestReflectionPolicy,omitempty"`
	// Interval of the digest look-up, required with Always (a tag pushed again is noticed this
	// often) and refused otherwise: the policy is then evaluated when its repository's tags
	// change.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('10s')",message="interval must be at least 10s"
	Interval *metav1.Duration `json:"interval,omitempty"`
	// Suspend stops evaluating the policy: its status, latestRef included, is kept as it is, and
	// automations go on using it.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
}

// ImagePolicyChoice is exactly one way of ordering tags.
// +kubebuilder:validation:XValidation:rule="(has(self.semver) ? 1 : 0) + (has(self.alphabetical) ? 1 : 0) + (has(self.numerical) ? 1 : 0) == 1",message="set exactly one of semver, alphabetical and numerical"
type ImagePolicyChoice struct {
	// SemVer chooses the highest version in a range.
	// +optional
	SemVer *SemVerPolicy `json:"semver,omitempty"`
	// Alphabetical chooses by lexical order.
	// +optional
	Alphabetical *OrderPolicy `json:"alphabetical,omitempty"`
	// Numerical chooses by numeric value.
	// +optional
	Numerical *OrderPolicy `json:"numerical,omitempty"`
}

// SemVerPolicy chooses the highest version in a range.
type SemVerPolicy struct {
	// Range of versions, e.g. ">=1.0.0 <2.0.0", "1.x" or "~1.2". A "v" prefix of tags is
	// accepted; pre-releases count only when the range names one (">=1.0.0-0").
	// +required
	Range string `json:"range"`
}

// OrderPolicy chooses by an order.
type OrderPolicy struct {
	// Order: asc (default) chooses the greatest, desc the least.
	// +optional
	// +kubebuilder:default=asc
	// +kubebuilder:validation:Enum=asc;desc
	Order string `json:"order,omitempty"`
}

// TagFilter keeps the tags matching a pattern.
type TagFilter struct {
	// Pattern is a regular expression (Go syntax) tags must match, with named groups to extract,
	// e.g. "^main-[a-f0-9]+-(?P<ts>[0-9]+)$".
	// +required
	Pattern string `json:"pattern"`
	// Extract is what the policy compares, built from the match, e.g. "$ts"; empty compares the
	// whole tag.
	// +optional
	Extract string `json:"extract,omitempty"`
}

// ImageRef is an image chosen by a policy.
type ImageRef struct {
	// Name of the image, e.g. ghcr.io/acme/app.
	Name string `json:"name"`
	// Tag chosen.
	Tag string `json:"tag"`
	// Digest of the tag's manifest (sha256:...), when reflected.
	// +optional
	Digest string `json:"digest,omitempty"`
}

// String is name:tag, with @digest when known.
func (r ImageRef) String() string {
	s := r.Name + ":" + r.Tag
	if r.Digest != "" {
		s += "@" + r.Digest
	}
	return s
}

// ImagePolicyStatus is what the controller chose.
type ImagePolicyStatus struct {
	// ObservedGeneration is the generation of the spec last reconciled.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready, Reconciling, Stalled.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// LatestRef is the image chosen.
	// +optional
	LatestRef *ImageRef `json:"latestRef,omitempty"`
	// ObservedPreviousRef is the image chosen before LatestRef.
	// +optional
	ObservedPreviousRef         *ImageRef `json:"observedPreviousRef,omitempty"`
	meta.ReconcileRequestStatus `json:",inline"`
}

// ImagePolicy chooses the latest image of an ImageRepository.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=imagepol,categories=plumb
// +kubebuilder:printcolumn:name="Latest",type="string",JSONPath=".status.latestRef.tag"
// +kubebuilder:printcolumn:name="Ready",type="string",JSONPath=".status.conditions[?(@.type==\"Ready\")].status"
// +kubebuilder:printcolumn:name="Status",type="string",JSONPath=".status.conditions[?(@.type==\"Ready\")].message"
// +kubebuilder:printcolumn:name="Age",type="date",JSONPath=".metadata.creationTimestamp"
type ImagePolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec ImagePolicySpec `json:"spec"`
	// +optional
	Status ImagePolicyStatus `json:"status,omitempty"`
}

// ImagePolicyList is a list of ImagePolicies.
// +kubebuilder:object:root=true
type ImagePolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ImagePolicy `json:"items"`
}

// GetConditions returns the status conditions.
func (in *ImagePolicy) GetConditions() []metav1.Condition { return in.Status.Conditions }

// SetConditions replaces the status conditions.
func (in *ImagePolicy) SetConditions(c []metav1.Condition) { in.Status.Conditions = c }
