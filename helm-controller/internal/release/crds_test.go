package release

import (
	"testing"

	"helm.sh/helm/v3/pkg/chart"
	"k8s.io/apimachinery/pkg/api/meta"

	helmv1 "github.com/plumb-dev/plumb/helm-controller/api/v1beta1"
)

func TestPlanCRDs(t *testing.T) {
	cases := []struct {
		name    string
		policy  string
		install bool
		want    CRDPlan
	}{
		{"install, unset: Helm creates them", "", true, CRDPlan{}},
		{"install, Create: Helm creates them", helmv1.CRDsCreate, true, CRDPlan{}},
		{"install, Skip", helmv1.CRDsSkip, true, CRDPlan{SkipByHelm: true}},
		{"install, CreateReplace: written here", helmv1.CRDsCreateReplace, true, CRDPlan{SkipByHelm: true, Write: true, Replace: true}},
		{"upgrade, unset: left alone", "", false, CRDPlan{}},
		{"upgrade, Skip", helmv1.CRDsSkip, false, CRDPlan{}},
		{"upgrade, Create: the missing ones", helmv1.CRDsCreate, false, CRDPlan{Write: true}},
		{"upgrade, CreateReplace", helmv1.CRDsCreateReplace, false, CRDPlan{Write: true, Replace: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := PlanCRDs(tc.policy, tc.install); got != tc.want {
				t.Errorf("PlanCRDs(%q, %v) = %+v, want %+v", tc.policy, tc.install, got, tc.want)
			}
		})
	}
}

func TestCRDsPolicy(t *testing.T) {
	hr := hrWith(func(hr *helmv1.HelmRelease) {
		hr.Spec.Install = &helmv1.Install{CRDs: helmv1.CRDsSkip}
		hr.Spec.Upgrade = &helmv1.Upgrade{CRDs: helmv1.CRDsCreate}
	})
	if InstallCRDsPolicy(hr) != helmv1.CRDsSkip || UpgradeCRDsPolicy(hr) != helmv1.CRDsCreate {
		t.Error("policies not read from spec.install and spec.upgrade")
	}
	if InstallCRDsPolicy(hrWith(nil)) != "" || UpgradeCRDsPolicy(hrWith(nil)) != "" {
		t.Error("a policy without spec.install or spec.upgrade")
	}
}

func TestCRDObjects(t *testing.T) {
	crd := "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.example.com\n"
	ch := &chart.Chart{
		Metadata: &chart.Metadata{Name: "app", Version: "1.0.0"},
		Files: []*chart.File{
			{Name: "crds/widgets.yaml", Data: []byte(crd + "---\n" + crd)},
			{Name: "README.md", Data: []byte("kind: [not yaml of ours")},
		},
	}
	objs, err := CRDObjects(ch, meta.NewDefaultRESTMapper(nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 2 || objs[0].GetName() != "widgets.example.com" || objs[0].GetNamespace() != "" {
		t.Errorf("CRDObjects = %v", objs)
	}
	ch.Files = append(ch.Files, &chart.File{Name: "crds/broken.yaml", Data: []byte("kind: [")})
	if _, err := CRDObjects(ch, meta.NewDefaultRESTMapper(nil)); err == nil {
		t.Error("a broken CRD file is an error")
	}
}
