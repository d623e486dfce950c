package release

import (
	"reflect"
	"testing"

	"helm.sh/helm/v3/pkg/chart"
	helmrelease "helm.sh/helm/v3/pkg/release"

	helmv1 "github.com/plumb-dev/plumb/helm-controller/api/v1beta1"
)

func TestChartDigest(t *testing.T) {
	cases := []struct{ in, want string }{
		{"sha256:0123456789abcdef0123456789abcdef", "0123456789abcdef"},
		{"0123456789abcdef0123", "0123456789abcdef"},
		{"sha256:abc", "abc"},
		{"", ""},
	}
	for _, tc := range cases {
		if got := ChartDigest(tc.in); got != tc.want {
			t.Errorf("ChartDigest(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestPostRenderersDigest(t *testing.T) {
	a := []helmv1.PostRenderer{{Kustomize: &helmv1.KustomizePostRenderer{Images: []helmv1.Image{{Name: "app", NewTag: "1"}}}}}
	b := []helmv1.PostRenderer{{Kustomize: &helmv1.KustomizePostRenderer{Images: []helmv1.Image{{Name: "app", NewTag: "2"}}}}}
	with := func(prs []helmv1.PostRenderer, cm *helmv1.CommonMetadata) *helmv1.HelmRelease {
		return hrWith(func(hr *helmv1.HelmRelease) { hr.Spec.PostRenderers, hr.Spec.CommonMetadata = prs, cm })
	}
	if PostRenderersDigest(with(nil, nil)) != "none" || PostRenderersDigest(with(nil, &helmv1.CommonMetadata{})) != "none" {
		t.Error(`no post-renderers are not "none"`)
	}
	if d := PostRenderersDigest(with(a, nil)); len(d) != 16 || d != PostRenderersDigest(with(a, nil)) || d == PostRenderersDigest(with(b, nil)) {
		t.Errorf("PostRenderersDigest = %q: want 16 hex digits, stable, different for different post-renderers", d)
	}
	// commonMetadata changes the rendered objects: its change must change the digest.
	cm1 := PostRenderersDigest(with(a, &helmv1.CommonMetadata{Labels: map[string]string{"team": "a"}}))
	cm2 := PostRenderersDigest(with(a, &helmv1.CommonMetadata{Labels: map[string]string{"team": "b"}}))
	cmOnly := PostRenderersDigest(with(nil, &helmv1.CommonMetadata{Annotations: map[string]string{"x": "y"}}))
	if cm1 == cm2 || cm1 == PostRenderersDigest(with(a, nil)) || cmOnly == "none" || len(cmOnly) != 16 {
		t.Errorf("commonMetadata not in the digest: %q %q %q", cm1, cm2, cmOnly)
	}
}

func TestLabelsAndOwner(t *testing.T) {
	hr := hrWith(nil)
	hr.Status.LastAttemptedValuesChecksum = MaskedDigest(map[string]any{"a": 1}, nil, nil)
	l := Labels(hr, "0123456789abcdef")
	want := map[string]string{
		ValuesDigestLabel:   DigestLabel(hr.Status.LastAttemptedValuesChecksum),
		PostRenderersLabel:  "none",
		ChartDigestLabel:    "0123456789abcdef",
		OwnerNamespaceLabel: "shop",
		OwnerNameLabel:      "web",
		HealthyLabel:        "false",
	}
	if !reflect.DeepEqual(l, want) {
		t.Errorf("Labels = %v, want %v", l, want)
	}
	cases := []struct {
		name   string
		labels map[string]string
		owner  string
	}{
		{"made here", l, "shop/web"},
		{"made by hand", nil, ""},
		{"namespace only", map[string]string{OwnerNamespaceLabel: "shop"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := OwnerOf(&helmrelease.Release{Labels: tc.labels}); got != tc.owner {
				t.Errorf("OwnerOf = %q, want %q", got, tc.owner)
			}
		})
	}
	if OwnerID(hr) != "shop/web" {
		t.Errorf("OwnerID = %q", OwnerID(hr))
	}
}

func TestUpToDate(t *testing.T) {
	vals := map[string]any{"replicas": 2}
	rls := func(mutate func(*helmrelease.Release)) *helmrelease.Release {
		r := &helmrelease.Release{
			Chart:  &chart.Chart{Metadata: &chart.Metadata{Name: "app", Version: "1.0.0"}},
			Config: vals,
			Labels: map[string]string{PostRenderersLabel: "none", ChartDigestLabel: "0123456789abcdef"},
		}
		if mutate != nil {
			mutate(r)
		}
		return r
	}
	cases := []struct {
		name string
		rls  *helmrelease.Release
		want bool
	}{
		{"same chart, values, post-renderers", rls(nil), true},
		{"other values", rls(func(r *helmrelease.Release) { r.Config = map[string]any{"replicas": 3} }), false},
		{"other chart artifact", rls(func(r *helmrelease.Release) { r.Labels[ChartDigestLabel] = "fedcba9876543210" }), false},
		{"other post-renderers", rls(func(r *helmrelease.Release) { r.Labels[PostRenderersLabel] = "0123456789abcdef" }), false},
		{"made by hand, no labels", rls(func(r *helmrelease.Release) { r.Labels = nil }), false},
		{"no chart metadata", rls(func(r *helmrelease.Release) { r.Chart.Metadata = nil }), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := UpToDate(tc.rls, Digest(vals), "none", "0123456789abcdef"); got != tc.want {
				t.Errorf("UpToDate = %v, want %v", got, tc.want)
			}
		})
	}
}
