// Package v1beta1 holds the notification.plumb.dev/v1beta1 API: Receivers, incoming webhooks
// that make Plumb reconcile at once when a Git host or registry calls.
// +kubebuilder:object:generate=true
// +groupName=notification.plumb.dev
package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of every kind in this package.
	GroupVersion = schema.GroupVersion{Group: "notification.plumb.dev", Version: "v1beta1"}

	// SchemeBuilder registers the kinds of this package with a scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the kinds of this package to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(scheme *runtime.Scheme) error {
	scheme.AddKnownTypes(GroupVersion,
		&Receiver{}, &ReceiverList{},
		&Provider{}, &ProviderList{},
		&Alert{}, &AlertList{},
	)
	metav1.AddToGroupVersion(scheme, GroupVersion)
	return nil
}
