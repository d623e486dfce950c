package release

import (
	"reflect"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kustypes "sigs.k8s.io/kustomize/api/types"

	helmv1 "github.com/plumb-dev/plumb/helm-controller/api/v1beta1"
)

func hrWith(mutate func(*helmv1.HelmRelease)) *helmv1.HelmRelease {
	hr := &helmv1.HelmRelease{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"}}
	hr.Spec.Timeout = &metav1.Duration{Duration: 3 * time.Minute}
	if mutate != nil {
		mutate(hr)
	}
	return hr
}

func TestRetries(t *testing.T) {
	yes, no := true, false
	cases := []struct {
		name      string
		failures  int64
		rem       *helmv1.Remediation
		install   bool
		exhausted bool
		remediate bool
		uninstall bool
	}{
		{"no failure", 0, nil, false, false, false, false},
		{"first failure, no retries", 1, nil, false, true, false, false},
		{"first install failure, no retries: remediated", 1, nil, true, true, true, true},
		{"within retries", 2, &helmv1.Remediation{Retries: 3}, false, false, true, false},
		{"past retries", 4, &helmv1.Remediation{Retries: 3}, false, true, true, false},
		{"retry for ever", 100, &helmv1.Remediation{Retries: -1}, false, false, true, false},
		{"last failure left as it is", 4, &helmv1.Remediation{Retries: 3, RemediateLastFailure: &no}, false, true, false, false},
		{"last failure remediated without retries", 1, &helmv1.Remediation{RemediateLastFailure: &yes}, false, true, true, false},
		{"upgrade remediated by uninstall", 1, &helmv1.Remediation{Retries: 1, Strategy: helmv1.RemediateUninstall}, false, false, true, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Exhausted(tc.failures, tc.rem); got != tc.exhausted {
				t.Errorf("Exhausted = %v, want %v", got, tc.exhausted)
			}
			if got := RemediateLast(tc.rem, tc.install); got != tc.remediate {
				t.Errorf("RemediateLast = %v, want %v", got, tc.remediate)
			}
			if got := UninstallRemediates(tc.rem, tc.install); got != tc.uninstall {
				t.Errorf("UninstallRemediates = %v, want %v", got, tc.uninstall)
			}
		})
	}
}

func TestRemediationOf(t *testing.T) {
	in, up := &helmv1.InstallRemediation{Retries: 1}, &helmv1.Remediation{Retries: 2}
	hr := hrWith(func(hr *helmv1.HelmRelease) {
		hr.Spec.Install = &helmv1.Install{Remediation: in}
		hr.Spec.Upgrade = &helmv1.Upgrade{Remediation: up}
	})
	if got := InstallRemediation(hr); got == nil || got.Retries != 1 || got.Strategy != helmv1.RemediateUninstall || UpgradeRemediation(hr) != up {
		t.Error("remediation not read from spec.install and spec.upgrade")
	}
	if InstallRemediation(hrWith(nil)) != nil || UpgradeRemediation(hrWith(nil)) != nil {
		t.Error("remediation without spec.install or spec.upgrade")
	}
}

func TestWaitSettings(t *testing.T) {
	cases := []struct {
		name    string
		mutate  func(*helmv1.HelmRelease)
		install bool
		wait    bool
		timeout time.Duration
	}{
		{"install, defaults", nil, true, true, 3 * time.Minute},
		{"upgrade, defaults", nil, false, true, 3 * time.Minute},
		{"install without wait, own timeout", func(hr *helmv1.HelmRelease) {
			hr.Spec.Install = &helmv1.Install{DisableWait: true, Timeout: &metav1.Duration{Duration: time.Minute}}
		}, true, false, time.Minute},
		{"upgrade settings leave the install alone", func(hr *helmv1.HelmRelease) {
			hr.Spec.Upgrade = &helmv1.Upgrade{DisableWait: true, Timeout: &metav1.Duration{Duration: time.Minute}}
		}, true, true, 3 * time.Minute},
		{"upgrade with its own timeout", func(hr *helmv1.HelmRelease) {
			hr.Spec.Upgrade = &helmv1.Upgrade{Timeout: &metav1.Duration{Duration: 10 * time.Second}}
		}, false, true, 10 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wait, timeout := WaitSettings(hrWith(tc.mutate), tc.install)
			if wait != tc.wait || timeout != tc.timeout {
				t.Errorf("WaitSettings = %v, %v; want %v, %v", wait, timeout, tc.wait, tc.timeout)
			}
		})
	}
}

func TestActionOptionsFor(t *testing.T) {
	cases := []struct {
		name      string
		mutate    func(*helmv1.HelmRelease)
		rollback  RollbackOptions
		uninstall UninstallOptions
		test      time.Duration
	}{
		{"defaults", nil,
			RollbackOptions{Timeout: 3 * time.Minute, Wait: true, WaitForJobs: true},
			UninstallOptions{Timeout: 3 * time.Minute, Wait: true}, 3 * time.Minute},
		{"as set", func(hr *helmv1.HelmRelease) {
			hr.Spec.Rollback = &helmv1.Rollback{DisableWait: true, Force: true}
			hr.Spec.Uninstall = &helmv1.Uninstall{DisableWait: true, KeepHistory: true, DeletionPropagation: "foreground"}
			hr.Spec.Test = &helmv1.Test{Timeout: &metav1.Duration{Duration: time.Minute}}
		},
			RollbackOptions{Timeout: 3 * time.Minute, WaitForJobs: true, Force: true},
			UninstallOptions{Timeout: 3 * time.Minute, KeepHistory: true, DeletionPropagation: "foreground"}, time.Minute},
		{"all of Flux's options", func(hr *helmv1.HelmRelease) {
			hr.Spec.Rollback = &helmv1.Rollback{Timeout: &metav1.Duration{Duration: time.Minute}, DisableWaitForJobs: true,
				DisableHooks: true, Recreate: true, CleanupOnFail: true}
			hr.Spec.Uninstall = &helmv1.Uninstall{Timeout: &metav1.Duration{Duration: 2 * time.Minute}, DisableHooks: true}
		},
			RollbackOptions{Timeout: time.Minute, Wait: true, DisableHooks: true, Recreate: true, CleanupOnFail: true},
			UninstallOptions{Timeout: 2 * time.Minute, Wait: true, DisableHooks: true}, 3 * time.Minute},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hr := hrWith(tc.mutate)
			if got := RollbackOptionsFor(hr); got != tc.rollback {
				t.Errorf("RollbackOptionsFor = %+v, want %+v", got, tc.rollback)
			}
			if got := UninstallOptionsFor(hr); got != tc.uninstall {
				t.Errorf("UninstallOptionsFor = %+v, want %+v", got, tc.uninstall)
			}
			if got := TestTimeout(hr); got != tc.test {
				t.Errorf("TestTimeout = %v, want %v", got, tc.test)
			}
		})
	}
}

func TestPostRendererFor(t *testing.T) {
	if PostRendererFor(hrWith(nil)) != nil {
		t.Error("no post-renderers, yet a post-renderer")
	}
	cm := PostRendererFor(hrWith(func(hr *helmv1.HelmRelease) {
		hr.Spec.CommonMetadata = &helmv1.CommonMetadata{Labels: map[string]string{"team": "a"}}
	}))
	if cm == nil || cm.Labels["team"] != "a" {
		t.Errorf("commonMetadata alone: post-renderer %+v, want one with its labels", cm)
	}
	got := PostRendererFor(hrWith(func(hr *helmv1.HelmRelease) {
		hr.Spec.PostRenderers = []helmv1.PostRenderer{
			{},
			{Kustomize: &helmv1.KustomizePostRenderer{
				Patches: []helmv1.Patch{
					{Patch: "p1"},
					{Patch: "p2", Target: &helmv1.PatchSelector{Kind: "Deployment", Name: "web", LabelSelector: "app=web"}},
				},
				Images: []helmv1.Image{{Name: "app", NewTag: "2.0.0"}},
			}},
		}
	}))
	want := &Kustomizer{
		Patches: []KustomizePatch{{Patch: "p1"}, {Patch: "p2", Target: Selector("", "", "Deployment", "web", "", "app=web", "")}},
		Images:  []kustypes.Image{{Name: "app", NewTag: "2.0.0"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("PostRendererFor = %+v, want %+v", got, want)
	}
}

func TestFluxActionOptions(t *testing.T) {
	hr := hrWith(func(hr *helmv1.HelmRelease) {
		//lint:ignore SA1019 the deprecated field is read as Flux reads it
		hr.Spec.Install = &helmv1.Install{CreateNamespace: true, DisableHooks: true, DisableSchemaValidation: true, SkipCRDs: true,
			Strategy: &helmv1.ActionStrategy{Name: helmv1.ActionStrategyRetryOnFailure}}
		hr.Spec.Upgrade = &helmv1.Upgrade{Force: true, PreserveValues: true, CleanupOnFail: true, DisableHooks: true, DisableWaitForJobs: true,
			Strategy:    &helmv1.ActionStrategy{Name: helmv1.ActionStrategyRetryOnFailure, RetryInterval: &metav1.Duration{Duration: time.Second}},
			Remediation: &helmv1.Remediation{IgnoreTestFailures: ptrTo(false)}}
		hr.Spec.Test = &helmv1.Test{IgnoreFailures: true, Filters: []helmv1.TestFilter{{Name: "a"}, {Name: "b", Exclude: true}}}
	})
	in := InstallOptionsFor(hr)
	if !in.CreateNamespace || !in.DisableHooks || !in.SkipSchemaValidation {
		t.Errorf("InstallOptionsFor = %+v", in)
	}
	if InstallCRDsPolicy(hr) != helmv1.CRDsSkip {
		t.Errorf("skipCRDs: policy %q, want Skip", InstallCRDsPolicy(hr))
	}
	hr.Spec.Install.CRDs = helmv1.CRDsCreate
	if InstallCRDsPolicy(hr) != helmv1.CRDsCreate {
		t.Error("crds does not win over the deprecated skipCRDs")
	}
	up := UpgradeOptionsFor(hr)
	if !up.Force || !up.ReuseValues || !up.CleanupOnFail || !up.DisableHooks || up.SkipSchemaValidation {
		t.Errorf("UpgradeOptionsFor = %+v", up)
	}
	if WaitForJobs(hr, false) || !WaitForJobs(hr, true) {
		t.Error("disableWaitForJobs not read per action")
	}
	if retry, after := RetryOnFailure(hr, true); !retry || after != DefaultRetryInterval {
		t.Errorf("install RetryOnFailure = %v, %v", retry, after)
	}
	if retry, after := RetryOnFailure(hr, false); !retry || after != time.Second {
		t.Errorf("upgrade RetryOnFailure = %v, %v", retry, after)
	}
	if !IgnoreTestFailures(hr, true) || IgnoreTestFailures(hr, false) {
		t.Error("ignoreTestFailures: the install follows test.ignoreFailures, the upgrade its remediation")
	}
	want := map[string][]string{"name": {"a"}, "!name": {"b"}}
	if got := TestFilters(hr); !reflect.DeepEqual(got, want) {
		t.Errorf("TestFilters = %v, want %v", got, want)
	}
}

func ptrTo[T any](v T) *T { return &v }
