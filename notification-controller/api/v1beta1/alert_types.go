package v1beta1

import (
	"github.com/fluxcd/pkg/apis/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AlertKind is the kind name of Alert.
const AlertKind = "Alert"

// AlertSpec says which events to send to which Provider.
type AlertSpec struct {
	// ProviderRef names a Provider in the same namespace.
	// +required
	ProviderRef meta.LocalObjectReference `json:"providerRef"`
	// EventSources select the objects whose events are sent: by kind, and name (* and globs
	// such as web-*) or matchLabels, in the Alert's namespace (another namespace only when the
	// controller runs with --no-cross-namespace-refs=false).
	// +required
	// +kubebuilder:validation:MinItems=1
	EventSources []EventSource `json:"eventSources"`
	// EventSeverity: info sends every event, error only Warnings. With notifyOn it does not
	// filter successes (recoveries need them).
	// +optional
	// +kubebuilder:default=info
	// +kubebuilder:validation:Enum=info;error
	EventSeverity string `json:"eventSeverity,omitempty"`
	// InclusionList: when set, only events whose message matches one of these regular
	// expressions are sent.
	// +optional
	InclusionList []string `json:"inclusionList,omitempty"`
	// ExclusionList: events whose message matches one of these regular expressions are not sent.
	// +optional
	ExclusionList []string `json:"exclusionList,omitempty"`
	// NotifyOn makes the Alert stateful, per object: Failure sends the first failure (not one
	// message per retry), Recovery sends the success that ends a failure that was sent, Change
	// sends the other successes (new revisions applied). Empty sends every event.
	// +optional
	// +kubebuilder:validation:items:Enum=Failure;Recovery;Change
	NotifyOn []string `json:"notifyOn,omitempty"`
	// AlertAfter sends a failure only once it has lasted this long (failures that heal on the
	// next retry stay quiet), e.g. 5m. Needs notifyOn Failure.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	AlertAfter *metav1.Duration `json:"alertAfter,omitempty"`
	// Summary is added to every notification (e.g. the cluster's name).
	// +optional
	// +kubebuilder:validation:MaxLength=255
	Summary string `json:"summary,omitempty"`
	// EventMetadata is added to every notification's metadata.
	// +optional
	EventMetadata map[string]string `json:"eventMetadata,omitempty"`
	// Suspend stops sending.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
}

// EventSource selects objects whose events an Alert sends.
type EventSource struct {
	// APIVersion of the objects, e.g. apply.plumb.dev/v1beta1: when set, only events about
	// objects of this group and version are sent.
	// +optional
	APIVersion string `json:"apiVersion,omitempty"`
	// Kind of the objects, e.g. Kustomization.
	// +required
	// +kubebuilder:validation:MinLength=1
	Kind string `json:"kind"`
	// Name of the object, * for all, or a glob (web-*).
	// +optional
	Name string `json:"name,omitempty"`
	// Namespace of the objects, * for all; default the Alert's. Another namespace or * works
	// only with --no-cross-namespace-refs=false; otherwise the Alert is Stalled (AccessDenied)
	// and sends nothing.
	// +optional
	Namespace string `json:"namespace,omitempty"`
	// MatchLabels selects the objects by label (with name * or empty).
	// +optional
	MatchLabels map[string]string `json:"matchLabels,omitempty"`
}

// AlertStatus is what the controller observed.
type AlertStatus struct {
	// ObservedGeneration is the generation of the spec last reconciled.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready, Reconciling, Stalled.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions                  []metav1.Condition `json:"conditions,omitempty"`
	meta.ReconcileRequestStatus `json:",inline"`
}

// Alert sends the events of selected objects to a Provider.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=plumb
// +kubebuilder:printcolumn:name="Ready",type="string",JSONPath=".status.conditions[?(@.type==\"Ready\")].status"
// +kubebuilder:printcolumn:name="Status",type="string",JSONPath=".status.conditions[?(@.type==\"Ready\")].message"
type Alert struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec AlertSpec `json:"spec"`
	// +optional
	Status AlertStatus `json:"status,omitempty"`
}

// AlertList is a list of Alerts.
// +kubebuilder:object:root=true
type AlertList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Alert `json:"items"`
}

// GetConditions returns the status conditions.
func (in *Alert) GetConditions() []metav1.Condition { return in.Status.Conditions }

// SetConditions replaces the status conditions.
func (in *Alert) SetConditions(c []metav1.Condition) { in.Status.Conditions = c }
