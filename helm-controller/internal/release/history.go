package release

import (
	"errors"
	"sort"

	helmrelease "helm.sh/helm/v3/pkg/release"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	helmv1 "github.com/plumb-dev/plumb/helm-controller/api/v1beta1"
)

// Newest is the highest revision of a release's history, nil when there is none.
func Newest(hist []*helmrelease.Release) *helmrelease.Release {
	var out *helmrelease.Release
	for _, h := range hist {
		if out == nil || h.Version > out.Version {
			out = h
		}
	}
	return out
}

// EverDeployed says whether a release's history has a revision that was deployed.
func EverDeployed(hist []*helmrelease.Release) bool {
	for _, h := range hist {
		if h.Info != nil && (h.Info.Status == helmrelease.StatusDeployed || h.Info.Status == helmrelease.StatusSuperseded) {
			return true
		}
	}
	return false
}

// PreviousDeployed finds the newest revision that was deployed before the latest one (which
// may itself be deployed as Helm sees it, when its health wait or tests failed).
func PreviousDeployed(hist []*helmrelease.Release) (int, error) {
	latest := 0
	for _, h := range hist {
		latest = max(latest, h.Version)
	}
	best := 0
	for _, h := range hist {
		if h.Version < latest && h.Info != nil && (h.Info.Status == helmrelease.StatusSuperseded || h.Info.Status == helmrelease.StatusDeployed) && h.Version > best {
			best = h.Version
		}
	}
	if best == 0 {
		return 0, errors.New("no deployed revision to roll back to")
	}
	return best, nil
}

// Snapshots turns Helm's history of a release into status.history: newest first, at most max.
// history is sorted in place.
func Snapshots(history []*helmrelease.Release, max int) []helmv1.Snapshot {
	sort.Slice(history, func(i, j int) bool { return history[i].Version > history[j].Version })
	if max > 0 && len(history) > max {
		history = history[:max]
	}
	out := make([]helmv1.Snapshot, 0, len(history))
	for _, rls := range history {
		s := helmv1.Snapshot{
			Version: rls.Version, Name: rls.Name, Namespace: rls.Namespace,
			ConfigDigest: LabelDigest(rls.Labels[ValuesDigestLabel]),
		}
		if rls.Chart != nil && rls.Chart.Metadata != nil {
			s.ChartName, s.ChartVersion, s.AppVersion = rls.Chart.Metadata.Name, rls.Chart.Metadata.Version, rls.Chart.Metadata.AppVersion
		}
		if rls.Info != nil {
			s.Status = rls.Info.Status.String()
			s.FirstDeployed = metav1.NewTime(rls.Info.FirstDeployed.Time)
			s.LastDeployed = metav1.NewTime(rls.Info.LastDeployed.Time)
		}
		s.TestResult = TestResult(rls)
		out = append(out, s)
	}
	return out
}

// TestResult reads the outcome of a release's test hooks: succeeded, failed, or empty.
func TestResult(rls *helmrelease.Release) string {
	result := ""
	for _, h := range rls.Hooks {
		for _, e := range h.Events {
			if e != helmrelease.HookTest {
				continue
			}
			switch h.LastRun.Phase {
			case helmrelease.HookPhaseFailed:
				return "failed"
			case helmrelease.HookPhaseSucceeded:
				result = "succeeded"
			}
		}
	}
	return result
}
