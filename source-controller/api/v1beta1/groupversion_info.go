// Package v1beta1 holds the source.plumb.dev/v1beta1 API: sources that Plumb turns into
// versioned, digest-checked artifacts for the other controllers to consume.
// +kubebuilder:object:generate=true
// +groupName=source.plumb.dev
package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of every kind in this package.
	GroupVersion = schema.GroupVersion{Group: "source.plumb.dev", Version: "v1beta1"}

	// SchemeBuilder registers the kinds of this package with a scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the kinds of this package to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(scheme *runtime.Scheme) error {
	scheme.AddKnownTypes(GroupVersion,
		&GitRepository{}, &GitRepositoryList{},
		&OCIRepository{}, &OCIRepositoryList{},
		&HelmRepository{}, &HelmRepositoryList{},
		&HelmChart{}, &HelmChartList{},
		&Bucket{}, &BucketList{},
	)
	metav1.AddToGroupVersion(scheme, GroupVersion)
	return nil
}
