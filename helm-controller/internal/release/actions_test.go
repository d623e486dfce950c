package release

import (
	"testing"

	"helm.sh/helm/v3/pkg/action"
	helmrelease "helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage"
	"helm.sh/helm/v3/pkg/storage/driver"
)

// The storage reads and writes of Helm, over Helm's in-memory storage driver; the actions that
// reach a cluster are exercised by the controller's envtest suite.
func TestHelmStorage(t *testing.T) {
	h := &Helm{cfg: &action.Configuration{Releases: storage.Init(driver.NewMemory())}, target: Target{Name: "web", Namespace: "shop"}}
	hist, err := h.History()
	if err != nil || hist != nil {
		t.Errorf("History of no release = %v, %v; want none and no error", hist, err)
	}
	last, err := h.Last()
	if err != nil || last != nil {
		t.Errorf("Last of no release = %v, %v; want none and no error", last, err)
	}
	if v := h.LatestVersion(); v != 0 {
		t.Errorf("LatestVersion of no release = %d", v)
	}

	for _, r := range revisions(helmrelease.StatusSuperseded, helmrelease.StatusPendingUpgrade) {
		r.Labels = map[string]string{HealthyLabel: "false"}
		if err := h.cfg.Releases.Create(r); err != nil {
			t.Fatal(err)
		}
	}
	if v := h.LatestVersion(); v != 2 {
		t.Errorf("LatestVersion = %d, want 2", v)
	}
	last, err = h.Last()
	if err != nil || last == nil || last.Version != 2 {
		t.Fatalf("Last = %v, %v; want revision 2", last, err)
	}
	if err := h.Recover(last); err != nil {
		t.Fatal(err)
	}
	if err := h.MarkHealthy(&helmrelease.Release{Name: "web", Version: 1}); err != nil {
		t.Fatal(err)
	}
	hist, err = h.History()
	if err != nil || len(hist) != 2 {
		t.Fatalf("History = %v, %v; want 2 revisions", hist, err)
	}
	for _, r := range hist {
		switch r.Version {
		case 1:
			if r.Labels[HealthyLabel] != "true" {
				t.Errorf("revision 1 labels %v: not marked healthy", r.Labels)
			}
		case 2:
			if r.Info.Status != helmrelease.StatusFailed || r.Info.Description != "left pending-upgrade by a stopped controller; recovered by helm-controller" {
				t.Errorf("recovered revision: %s, %q", r.Info.Status, r.Info.Description)
			}
			if r.Labels[HealthyLabel] != "false" {
				t.Errorf("revision 2 labels %v: marked healthy", r.Labels)
			}
		}
	}
	if err := h.MarkHealthy(&helmrelease.Release{Name: "web", Version: 7}); err == nil {
		t.Error("marking a revision that is not stored is no error")
	}
}
