package release

import (
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	helmrelease "helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage"
	"helm.sh/helm/v3/pkg/storage/driver"
)

func TestAdoptionBlocker(t *testing.T) {
	vals := map[string]any{"greeting": "hi", "replicas": float64(2)}
	deployed := &helmrelease.Release{Chart: &chart.Chart{Metadata: &chart.Metadata{Name: "app", Version: "1.0.0"}}, Config: vals}
	cases := []struct {
		name    string
		cur     *helmrelease.Release
		chart   string
		version string
		vals    map[string]any
		want    string
	}{
		{name: "same", cur: deployed, chart: "app", version: "1.0.0", vals: map[string]any{"replicas": 2, "greeting": "hi"}},
		{name: "other chart", cur: deployed, chart: "web", version: "1.0.0", vals: vals, want: "chart app deployed, chart web wanted"},
		{name: "other version", cur: deployed, chart: "app", version: "1.0.1", vals: vals, want: "chart version 1.0.0 deployed, 1.0.1 wanted"},
		{name: "other values", cur: deployed, chart: "app", version: "1.0.0", vals: map[string]any{"greeting": "hi"}, want: "the deployed values differ"},
		{name: "no chart", cur: &helmrelease.Release{}, chart: "app", version: "1.0.0", vals: vals, want: "records no chart"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ch := &chart.Chart{Metadata: &chart.Metadata{Name: tc.chart, Version: tc.version}}
			got := AdoptionBlocker(tc.cur, ch, Digest(tc.vals))
			if tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
				t.Errorf("AdoptionBlocker = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRenderedDifference(t *testing.T) {
	// As Helm renders it, and as Flux's post-renderer writes it back: other formatting, its
	// origin labels.
	rendered := "---\n# Source: app/templates/cm.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-cfg\ndata:\n  greeting: \"hi\"\n" +
		"---\n# Source: app/templates/sa.yaml\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: web\n  labels: {team: shop}\n"
	flux := "apiVersion: v1\ndata:\n  greeting: hi\nkind: ConfigMap\nmetadata:\n  labels:\n    helm.toolkit.fluxcd.io/name: web\n    helm.toolkit.fluxcd.io/namespace: apps\n  name: web-cfg\n" +
		"---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  labels:\n    helm.toolkit.fluxcd.io/name: web\n    helm.toolkit.fluxcd.io/namespace: apps\n    team: shop\n  name: web\n"
	hook := func(path, manifest string) []*helmrelease.Hook {
		return []*helmrelease.Hook{{Path: path, Manifest: manifest, Events: []helmrelease.HookEvent{helmrelease.HookPostInstall}}}
	}
	job := "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate\n"
	cases := []struct {
		name        string
		cur, render *helmrelease.Release
		want        string
	}{
		{name: "Flux's rendering of the same objects",
			cur:    &helmrelease.Release{Manifest: flux, Hooks: hook("app/templates/job.yaml", job)},
			render: &helmrelease.Release{Manifest: rendered, Hooks: hook("app/templates/job.yaml", job)}},
		{name: "a changed value",
			cur:    &helmrelease.Release{Manifest: strings.Replace(flux, "greeting: hi", "greeting: hello", 1)},
			render: &helmrelease.Release{Manifest: rendered}, want: "ConfigMap web-cfg changed"},
		{name: "an object more",
			cur:    &helmrelease.Release{Manifest: flux},
			render: &helmrelease.Release{Manifest: rendered + "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: apps\n"},
			want:   "Service apps/web not deployed"},
		{name: "an object less",
			cur:    &helmrelease.Release{Manifest: rendered},
			render: &helmrelease.Release{Manifest: strings.SplitAfterN(rendered, "---\n# Source: app/templates/sa.yaml", 2)[0]},
			want:   "ServiceAccount web no longer rendered"},
		{name: "another label than Flux's",
			cur:    &helmrelease.Release{Manifest: strings.Replace(flux, "team: shop", "team: shoes", 1)},
			render: &helmrelease.Release{Manifest: rendered}, want: "ServiceAccount web changed"},
		{name: "a hook from another template",
			cur:    &helmrelease.Release{Manifest: rendered, Hooks: hook("app/templates/old.yaml", job)},
			render: &helmrelease.Release{Manifest: rendered, Hooks: hook("app/templates/job.yaml", job)},
			want:   "hook Job migrate (app/templates/job.yaml) not deployed, hook Job migrate (app/templates/old.yaml) no longer rendered"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := RenderedDifference(tc.cur, tc.render)
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
				t.Errorf("RenderedDifference = %q, want %q", got, tc.want)
			}
		})
	}
	if _, err := RenderedDifference(&helmrelease.Release{Manifest: "a: [b"}, &helmrelease.Release{}); err == nil {
		t.Error("a manifest that does not parse: no error")
	}
}

// Adopt writes labels onto the stored revision, over those it has, without a new one.
func TestAdopt(t *testing.T) {
	h := &Helm{cfg: &action.Configuration{Releases: storage.Init(driver.NewMemory())}, target: Target{Name: "web", Namespace: "shop"}}
	rls := &helmrelease.Release{Name: "web", Namespace: "shop", Version: 1, Info: &helmrelease.Info{Status: helmrelease.StatusDeployed},
		Labels: map[string]string{"kept": "yes"}}
	if err := h.cfg.Releases.Create(rls); err != nil {
		t.Fatal(err)
	}
	if err := h.Adopt(&helmrelease.Release{Name: "web", Version: 1}, map[string]string{OwnerNameLabel: "web", HealthyLabel: "true"}); err != nil {
		t.Fatal(err)
	}
	hist, err := h.History()
	if err != nil || len(hist) != 1 {
		t.Fatalf("History = %d revisions, %v; want 1", len(hist), err)
	}
	if l := hist[0].Labels; l["kept"] != "yes" || l[OwnerNameLabel] != "web" || l[HealthyLabel] != "true" {
		t.Errorf("labels after Adopt = %v", l)
	}
	if err := h.Adopt(&helmrelease.Release{Name: "web", Version: 2}, nil); err == nil {
		t.Error("Adopt of a revision that is not stored: no error")
	}
}
