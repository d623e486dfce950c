package controller

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	helmv1 "github.com/plumb-dev/plumb/helm-controller/api/v1beta1"
)

// validate refuses the references that only a spec change can fix.
func TestValidate(t *testing.T) {
	cases := []struct {
		name    string
		noCross bool
		mutate  func(*helmv1.HelmRelease)
		want    string // "" when valid
	}{
		{"chartRef", false, nil, ""},
		{"chartRef elsewhere, allowed", false, func(hr *helmv1.HelmRelease) { hr.Spec.ChartRef.Namespace = "other" }, ""},
		{"chartRef elsewhere, refused", true, func(hr *helmv1.HelmRelease) { hr.Spec.ChartRef.Namespace = "other" },
			"spec.chartRef in namespace other: this controller refuses references to other namespaces"},
		{"chartRef apiVersion", false, func(hr *helmv1.HelmRelease) { hr.Spec.ChartRef.APIVersion = "a/b/c" }, `spec.chartRef.apiVersion "a/b/c"`},
		{"spec.chart is always local", true, func(hr *helmv1.HelmRelease) {
			hr.Spec.ChartRef = nil
			hr.Spec.Chart = &helmv1.HelmChartTemplate{}
		}, ""},
		{"spec.chart source elsewhere, refused", true, func(hr *helmv1.HelmRelease) {
			hr.Spec.ChartRef = nil
			hr.Spec.Chart = &helmv1.HelmChartTemplate{Spec: helmv1.HelmChartTemplateSpec{SourceRef: helmv1.LocalChartSourceReference{Kind: "HelmRepository", Name: "charts", Namespace: "other"}}}
		}, "spec.chart.spec.sourceRef in namespace other: this controller refuses references to other namespaces"},
		{"spec.chart source elsewhere, allowed", false, func(hr *helmv1.HelmRelease) {
			hr.Spec.ChartRef = nil
			hr.Spec.Chart = &helmv1.HelmChartTemplate{Spec: helmv1.HelmChartTemplateSpec{SourceRef: helmv1.LocalChartSourceReference{Kind: "HelmRepository", Name: "charts", Namespace: "other"}}}
		}, ""},
		{"spec.chart source in its own namespace, named", true, func(hr *helmv1.HelmRelease) {
			hr.Spec.ChartRef = nil
			hr.Spec.Chart = &helmv1.HelmChartTemplate{Spec: helmv1.HelmChartTemplateSpec{SourceRef: helmv1.LocalChartSourceReference{
				APIVersion: "source.plumb.dev/v1beta1", Kind: "HelmRepository", Name: "charts", Namespace: "shop"}}}
		}, ""},
		{"spec.chart source of Flux's group", false, func(hr *helmv1.HelmRelease) {
			hr.Spec.ChartRef = nil
			hr.Spec.Chart = &helmv1.HelmChartTemplate{Spec: helmv1.HelmChartTemplateSpec{SourceRef: helmv1.LocalChartSourceReference{
				APIVersion: "source.toolkit.fluxcd.io/v1", Kind: "HelmRepository", Name: "charts"}}}
		}, `spec.chart.spec.sourceRef.apiVersion "source.toolkit.fluxcd.io/v1"`},
		{"dependsOn apiVersion", false, func(hr *helmv1.HelmRelease) {
			hr.Spec.DependsOn = []helmv1.DependencyReference{{Name: "db", APIVersion: "a/b/c"}}
		}, `spec.dependsOn apiVersion "a/b/c"`},
		{"dependsOn elsewhere, refused", true, func(hr *helmv1.HelmRelease) {
			hr.Spec.DependsOn = []helmv1.DependencyReference{{Name: "db"}, {Name: "db", Namespace: "other"}}
		}, "spec.dependsOn other/db: this controller refuses references to other namespaces"},
		{"dependsOn in the same namespace", true, func(hr *helmv1.HelmRelease) {
			hr.Spec.DependsOn = []helmv1.DependencyReference{{Name: "db", Namespace: "shop"}}
		}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hr := &helmv1.HelmRelease{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"}}
			hr.Spec.ChartRef = &helmv1.CrossNamespaceSourceReference{Kind: "HelmChart", Name: "app"}
			if tc.mutate != nil {
				tc.mutate(hr)
			}
			err := (&HelmReleaseReconciler{NoCrossNamespaceRefs: tc.noCross}).validate(hr)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("validate = %v, want no error", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("validate = %v, want %q", err, tc.want)
			}
		})
	}
}
