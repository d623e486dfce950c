package release

import (
	"reflect"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/chart"
	helmrelease "helm.sh/helm/v3/pkg/release"
	helmtime "helm.sh/helm/v3/pkg/time"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	helmv1 "github.com/plumb-dev/plumb/helm-controller/api/v1beta1"
)

// revisions makes a history from statuses: revision i+1 has statuses[i].
func revisions(statuses ...helmrelease.Status) []*helmrelease.Release {
	var out []*helmrelease.Release
	for i, s := range statuses {
		out = append(out, &helmrelease.Release{Name: "web", Namespace: "shop", Version: i + 1, Info: &helmrelease.Info{Status: s}})
	}
	return out
}

func TestHistoryReads(t *testing.T) {
	const (
		deployed   = helmrelease.StatusDeployed
		superseded = helmrelease.StatusSuperseded
		failed     = helmrelease.StatusFailed
		pending    = helmrelease.StatusPendingUpgrade
	)
	cases := []struct {
		name         string
		hist         []*helmrelease.Release
		newest       int
		everDeployed bool
		previous     int // 0: none, an error
	}{
		{"none", nil, 0, false, 0},
		{"one deployed", revisions(deployed), 1, true, 0},
		{"a first install that failed", revisions(failed), 1, false, 0},
		{"upgrade failed", revisions(superseded, failed), 2, true, 1},
		{"upgrade deployed but unhealthy", revisions(superseded, deployed), 2, true, 1},
		{"failures in between", revisions(superseded, deployed, failed, failed), 4, true, 2},
		{"left pending", revisions(deployed, pending), 2, true, 1},
		{"only failures before the latest", revisions(failed, failed, deployed), 3, true, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Storage returns revisions in no particular order.
			hist := append([]*helmrelease.Release(nil), tc.hist...)
			for i, j := 0, len(hist)-1; i < j; i, j = i+1, j-1 {
				hist[i], hist[j] = hist[j], hist[i]
			}
			newest := 0
			if n := Newest(hist); n != nil {
				newest = n.Version
			}
			if newest != tc.newest {
				t.Errorf("Newest = %d, want %d", newest, tc.newest)
			}
			if got := EverDeployed(hist); got != tc.everDeployed {
				t.Errorf("EverDeployed = %v, want %v", got, tc.everDeployed)
			}
			prev, err := PreviousDeployed(hist)
			if prev != tc.previous || (err == nil) != (tc.previous != 0) {
				t.Errorf("PreviousDeployed = %d, %v; want %d", prev, err, tc.previous)
			}
		})
	}
}

func TestTestResult(t *testing.T) {
	hook := func(phase helmrelease.HookPhase, events ...helmrelease.HookEvent) *helmrelease.Hook {
		return &helmrelease.Hook{Events: events, LastRun: helmrelease.HookExecution{Phase: phase}}
	}
	cases := []struct {
		name  string
		hooks []*helmrelease.Hook
		want  string
	}{
		{"no hooks", nil, ""},
		{"tests not run", []*helmrelease.Hook{hook(helmrelease.HookPhaseUnknown, helmrelease.HookTest)}, ""},
		{"tests passed", []*helmrelease.Hook{hook(helmrelease.HookPhaseSucceeded, helmrelease.HookTest)}, "succeeded"},
		{"one test failed", []*helmrelease.Hook{
			hook(helmrelease.HookPhaseSucceeded, helmrelease.HookTest), hook(helmrelease.HookPhaseFailed, helmrelease.HookTest)}, "failed"},
		{"other hooks do not count", []*helmrelease.Hook{hook(helmrelease.HookPhaseFailed, helmrelease.HookPreInstall)}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := TestResult(&helmrelease.Release{Hooks: tc.hooks}); got != tc.want {
				t.Errorf("TestResult = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestSnapshots(t *testing.T) {
	at := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	digest := MaskedDigest(map[string]any{"a": 1}, nil, nil)
	hist := revisions(helmrelease.StatusSuperseded, helmrelease.StatusSuperseded, helmrelease.StatusDeployed)
	for _, h := range hist {
		h.Chart = &chart.Chart{Metadata: &chart.Metadata{Name: "app", Version: "1.0.0", AppVersion: "2.0"}}
		h.Info.FirstDeployed, h.Info.LastDeployed = helmtime.Time{Time: at}, helmtime.Time{Time: at.Add(time.Minute)}
	}
	hist[2].Labels = map[string]string{ValuesDigestLabel: DigestLabel(digest)}
	hist[0].Chart = nil // a revision without its chart keeps the rest
	got := Snapshots(hist, 2)
	snap := func(version int, status string) helmv1.Snapshot {
		return helmv1.Snapshot{Version: version, Name: "web", Namespace: "shop", ChartName: "app", ChartVersion: "1.0.0", AppVersion: "2.0",
			Status: status, FirstDeployed: metav1.NewTime(at), LastDeployed: metav1.NewTime(at.Add(time.Minute))}
	}
	want := []helmv1.Snapshot{snap(3, "deployed"), snap(2, "superseded")}
	want[0].ConfigDigest = digest
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Snapshots =\n%+v\nwant\n%+v", got, want)
	}
	if all := Snapshots(revisions(helmrelease.StatusDeployed, helmrelease.StatusFailed), 0); len(all) != 2 || all[0].Version != 2 {
		t.Errorf("Snapshots without a maximum = %+v", all)
	}
}
