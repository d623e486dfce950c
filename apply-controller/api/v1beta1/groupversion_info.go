// Package v1beta1 holds the apply.plumb.dev/v1beta1 API: the Kustomization, a path of a source
// artifact that Plumb builds with kustomize and applies to the cluster, keeping it equal to Git.
// +kubebuilder:object:generate=true
// +groupName=apply.plumb.dev
package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of every kind in this package.
	GroupVersion = schema.GroupVersion{Group: "apply.plumb.dev", Version: "v1beta1"}

	// SchemeBuilder registers the kinds of this package with a scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the kinds of this package to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(scheme *runtime.Scheme) error {
	scheme.AddKnownTypes(GroupVersion,
		&Kustomization{}, &KustomizationList{},
	)
	metav1.AddToGroupVersion(scheme, GroupVersion)
	return nil
}
