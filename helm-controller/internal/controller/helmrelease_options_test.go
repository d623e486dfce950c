package controller

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/release"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	helmv1 "github.com/plumb-dev/plumb/helm-controller/api/v1beta1"
	plumbreconcile "github.com/plumb-dev/plumb/shared/reconcile"
)

// Envtests of the action options with a real effect: each shows what the option changes in the
// cluster or in Helm's storage, against what happens without it.

// helmHistory is the release's stored revisions, oldest first, read from Helm's storage.
func helmHistory(g Gomega, hr *helmv1.HelmRelease) []*release.Release {
	h, err := reconciler.helm(context.Background(), hr)
	g.Expect(err).NotTo(HaveOccurred())
	hist, err := h.History()
	g.Expect(err).NotTo(HaveOccurred())
	slices.SortFunc(hist, func(a, b *release.Release) int { return a.Version - b.Version })
	return hist
}

// values is a spec.values document.
func values(t *testing.T, v map[string]any) *apiextensionsv1.JSON {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return &apiextensionsv1.JSON{Raw: raw}
}

// requestAndWait asks for a reconcile and waits until the controller has handled it.
func requestAndWait(g *WithT, hr *helmv1.HelmRelease) {
	request(g, hr, plumbreconcile.RequestedAtAnnotation)
	want := hr.Annotations[plumbreconcile.RequestedAtAnnotation]
	g.Eventually(func(g Gomega) {
		getHR(g, hr)
		g.Expect(hr.Status.LastHandledReconcileAt).To(Equal(want))
	}, timeout, 100*time.Millisecond).Should(Succeed())
}

// install.strategy RetryOnFailure: a first install that fails is kept (no uninstall, whatever
// the install remediation says) and tried again by upgrades after retryInterval; a fixed chart
// then converges as an install.
func TestHelmRelease_InstallRetryOnFailure(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	src := chartSource(t, ns, "app", testChart("1.0.0", true))
	hr := newRelease(ns, "app", func(hr *helmv1.HelmRelease) {
		hr.Spec.Install = &helmv1.Install{
			Strategy:    &helmv1.ActionStrategy{Name: helmv1.ActionStrategyRetryOnFailure, RetryInterval: &metav1.Duration{Duration: time.Second}},
			Remediation: &helmv1.InstallRemediation{Retries: 0}, // not used by RetryOnFailure
		}
	})
	g.Expect(k8s.Create(ctx, hr)).To(Succeed())

	g.Eventually(func(g Gomega) {
		getHR(g, hr)
		g.Expect(hr.Status.InstallFailures).To(BeNumerically(">=", 3), "retried beyond install.remediation.retries")
	}, timeout, 100*time.Millisecond).Should(Succeed())
	g.Expect(conditions.Get(hr, helmv1.RemediatedCondition)).To(BeNil(), "no uninstall")
	g.Expect(conditions.GetReason(hr, meta.ReadyCondition)).To(Equal(helmv1.InstallFailedReason))
	g.Expect(conditions.GetMessage(hr, meta.ReadyCondition)).To(ContainSubstring("trying again in 1s (RetryOnFailure)"))

	hist := helmHistory(g, hr)
	g.Expect(len(hist)).To(BeNumerically(">=", 3))
	for i, rls := range hist {
		g.Expect(rls.Version).To(Equal(i+1), "no uninstall: the history goes on from revision 1")
		g.Expect(rls.Info.Status).To(Equal(release.StatusFailed))
		if i == 0 {
			g.Expect(rls.Info.Description).To(ContainSubstring(`Release "web" failed`), "revision 1 is the install")
		} else {
			g.Expect(rls.Info.Description).To(ContainSubstring(`Upgrade "web" failed`), "later revisions are upgrades")
		}
	}

	publishTo(t, src, testChart("1.0.1", false))
	waitReleased(g, hr, "1.0.1")
	g.Expect(conditions.GetReason(hr, meta.ReadyCondition)).To(Equal(helmv1.InstallSucceededReason))
	g.Expect(hr.Status.InstallFailures).To(BeZero())
	hist = helmHistory(g, hr)
	last := hist[len(hist)-1]
	g.Expect(last.Info.Status).To(Equal(release.StatusDeployed))
	g.Expect(last.Chart.Metadata.Version).To(Equal("1.0.1"))
	g.Expect(last.Version).To(Equal(len(hist)), "the fix is an upgrade over the kept failures")
	g.Expect(configMapData(g, ns, "web-cfg")).To(HaveKeyWithValue("greeting", "hello"))
}

// testedChart is the test chart with a test hook Pod named after the chart version.
func testedChart(version string) *chart.Chart {
	return withTemplate(testChart(version, false), "tests/check.yaml", `apiVersion: v1
kind: Pod
metadata:
  name: {{ .Release.Name }}-check-{{ .Chart.Version | replace "." "-" }}
  annotations:
    "helm.sh/hook": test
spec:
  restartPolicy: Never
  containers:
    - name: check
      image: registry.example.invalid/check:1
`)
}

// A failing test of an upgrade whose failures are ignored is not remediated. As Flux
// summarizes it: with test.ignoreFailures Ready stays True and notes the failure; with only
// upgrade.remediation.ignoreTestFailures the release stays (no rollback, no retry) and Ready is
// False with reason TestFailed.
func TestHelmRelease_IgnoredTestFailures(t *testing.T) {
	cases := map[string]struct {
		test      *helmv1.Test
		ignore    *bool
		wantReady metav1.ConditionStatus
		wantMsg   string
	}{
		"test.ignoreFailures": {
			test: &helmv1.Test{Enable: true, IgnoreFailures: true}, wantReady: metav1.ConditionTrue,
			wantMsg: "(ignored: spec.test.ignoreFailures)",
		},
		"remediation.ignoreTestFailures": {
			test: &helmv1.Test{Enable: true}, ignore: ptr(true), wantReady: metav1.ConditionFalse,
			wantMsg: "remediation.ignoreTestFailures leaves the release as it is",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			ctx := context.Background()
			ns := newNamespace(t)
			src := chartSource(t, ns, "app", testedChart("1.0.0"))
			phaseSetter(t, ns, map[string]corev1.PodPhase{"web-check-1-0-0": corev1.PodSucceeded, "web-check-2-0-0": corev1.PodFailed})
			hr := newRelease(ns, "app", func(hr *helmv1.HelmRelease) {
				hr.Spec.Test = tc.test
				// Without the ignore, this remediation rolls a failed test back (TestHooks).
				hr.Spec.Upgrade = &helmv1.Upgrade{Remediation: &helmv1.Remediation{Retries: 0, RemediateLastFailure: ptr(true), IgnoreTestFailures: tc.ignore}}
			})
			g.Expect(k8s.Create(ctx, hr)).To(Succeed())
			waitReleased(g, hr, "1.0.0")

			publishTo(t, src, testedChart("2.0.0"))
			check := func(g Gomega) {
				getHR(g, hr)
				ready := conditions.Get(hr, meta.ReadyCondition)
				g.Expect(ready).NotTo(BeNil())
				g.Expect(ready.Status).To(Equal(tc.wantReady), ready.Message)
				g.Expect(ready.Message).To(ContainSubstring("tests failed"))
				g.Expect(ready.Message).To(ContainSubstring(tc.wantMsg))
				if tc.wantReady == metav1.ConditionFalse {
					g.Expect(ready.Reason).To(Equal(helmv1.TestFailedReason))
				}
				g.Expect(hr.Status.History[0].ChartVersion).To(Equal("2.0.0"))
				g.Expect(hr.Status.History[0].Status).To(Equal("deployed"))
				g.Expect(hr.Status.History[0].TestResult).To(Equal("failed"))
			}
			g.Eventually(check, timeout, 100*time.Millisecond).Should(Succeed())
			g.Expect(conditions.IsFalse(hr, helmv1.TestSuccessCondition)).To(BeTrue())
			g.Expect(conditions.IsTrue(hr, helmv1.ReleasedCondition)).To(BeTrue())
			g.Expect(conditions.Get(hr, helmv1.RemediatedCondition)).To(BeNil(), "no rollback")
			g.Expect(hr.Status.UpgradeFailures).To(BeZero())
			g.Expect(helmHistory(g, hr)).To(HaveLen(2), "no rollback revision")

			// The verdict holds at the next reconcile of the release, now up to date.
			requestAndWait(g, hr)
			check(g)
			g.Expect(helmHistory(g, hr)).To(HaveLen(2), "no new action")
		})
	}
}

// upgrade.preserveValues: the values of the last release that the spec no longer sets are kept
// (Helm's --reuse-values: the spec's values merged over the last release's); without it they
// are gone.
func TestHelmRelease_PreserveValues(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	chartSource(t, ns, "app", testChart("1.0.0", false))
	hr := newRelease(ns, "app", func(hr *helmv1.HelmRelease) {
		hr.Spec.Values = values(t, map[string]any{"greeting": "one", "color": "blue"})
		hr.Spec.Upgrade = &helmv1.Upgrade{PreserveValues: true}
	})
	g.Expect(k8s.Create(ctx, hr)).To(Succeed())
	waitReleased(g, hr, "1.0.0")
	g.Expect(configMapData(g, ns, "web-cfg")).To(Equal(map[string]string{"greeting": "one", "color": "blue"}))

	updateHR(g, hr, func(hr *helmv1.HelmRelease) { hr.Spec.Values = values(t, map[string]any{"greeting": "two"}) })
	g.Eventually(func(g Gomega) {
		g.Expect(configMapData(g, ns, "web-cfg")).To(Equal(map[string]string{"greeting": "two", "color": "blue"}), "color of revision 1 kept")
	}, timeout, 100*time.Millisecond).Should(Succeed())
	waitReleased(g, hr, "1.0.0")
	g.Expect(hr.Status.History[0].Version).To(Equal(2))

	updateHR(g, hr, func(hr *helmv1.HelmRelease) {
		hr.Spec.Upgrade.PreserveValues = false
		hr.Spec.Values = values(t, map[string]any{"greeting": "three"})
	})
	g.Eventually(func(g Gomega) {
		g.Expect(configMapData(g, ns, "web-cfg")).To(Equal(map[string]string{"greeting": "three", "color": "none"}), "without preserveValues the spec's values alone")
	}, timeout, 100*time.Millisecond).Should(Succeed())
}

// upgrade.force replaces objects (Helm's PUT) instead of patching them (a three-way merge): a
// key another manager added to the ConfigMap survives a plain upgrade and is gone after a forced
// one.
func TestHelmRelease_UpgradeForceReplaces(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	src := chartSource(t, ns, "app", testChart("1.0.0", false))
	hr := newRelease(ns, "app")
	g.Expect(k8s.Create(ctx, hr)).To(Succeed())
	waitReleased(g, hr, "1.0.0")

	edit := func() {
		cm := &corev1.ConfigMap{}
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web-cfg"}, cm)).To(Succeed())
		cm.Data["extra"] = "added by hand"
		g.Expect(k8s.Update(ctx, cm, client.FieldOwner("kubectl-edit"))).To(Succeed())
	}
	edit()
	publishTo(t, src, testChart("1.1.0", false))
	waitReleased(g, hr, "1.1.0")
	g.Expect(configMapData(g, ns, "web-cfg")).To(HaveKeyWithValue("extra", "added by hand"), "a patch keeps what it does not own")

	updateHR(g, hr, func(hr *helmv1.HelmRelease) { hr.Spec.Upgrade = &helmv1.Upgrade{Force: true} })
	publishTo(t, src, testChart("1.2.0", false))
	waitReleased(g, hr, "1.2.0")
	g.Expect(configMapData(g, ns, "web-cfg")).NotTo(HaveKey("extra"), "force: the object is replaced by the chart's")
}

// upgrade.force does not get past an immutable field: Helm 3 replaces with an update, which the
// API server refuses as it refuses the patch. (Flux's force is the same Helm option.)
func TestHelmRelease_UpgradeForceImmutable(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	frozen := func(version string) *chart.Chart {
		return withTemplate(testChart(version, false), "frozen.yaml", `apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-frozen
immutable: true
data:
  version: {{ .Chart.Version | quote }}
`)
	}
	src := chartSource(t, ns, "app", frozen("1.0.0"))
	hr := newRelease(ns, "app", func(hr *helmv1.HelmRelease) { hr.Spec.Upgrade = &helmv1.Upgrade{Force: true} })
	g.Expect(k8s.Create(ctx, hr)).To(Succeed())
	waitReleased(g, hr, "1.0.0")

	publishTo(t, src, frozen("2.0.0"))
	msg := waitReason(g, hr, helmv1.RetriesExhaustedReason)
	g.Expect(msg).To(ContainSubstring("failed to replace object"), "force used a replacement")
	g.Expect(msg).To(ContainSubstring("immutable"))
	g.Expect(configMapData(g, ns, "web-frozen")).To(HaveKeyWithValue("version", "1.0.0"))
}

// jobChart is the test chart with a Job, which never completes here: the test bed runs no
// kubelet.
func jobChart(version string) *chart.Chart {
	return withTemplate(testChart(version, false), "job.yaml", `apiVersion: batch/v1
kind: Job
metadata:
  name: {{ .Release.Name }}-migrate
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: migrate
          image: registry.example.invalid/migrate:1
`)
}

// The health wait includes the release's Jobs: one that does not complete fails the install at
// its timeout; with install.disableWaitForJobs the same chart is installed at once.
func TestHelmRelease_DisableWaitForJobs(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	chartSource(t, ns, "app", jobChart("1.0.0"))
	waiting := newRelease(ns, "app", func(hr *helmv1.HelmRelease) {
		hr.Name = "waiting"
		hr.Spec.Install = &helmv1.Install{Timeout: &metav1.Duration{Duration: 3 * time.Second}}
	})
	skipping := newRelease(ns, "app", func(hr *helmv1.HelmRelease) {
		hr.Name = "skipping"
		hr.Spec.Install = &helmv1.Install{Timeout: &metav1.Duration{Duration: 3 * time.Second}, DisableWaitForJobs: true}
	})
	g.Expect(k8s.Create(ctx, waiting)).To(Succeed())
	g.Expect(k8s.Create(ctx, skipping)).To(Succeed())

	waitReleased(g, skipping, "1.0.0")
	job := &batchv1.Job{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "skipping-migrate"}, job)).To(Succeed())
	g.Expect(job.Status.Succeeded).To(BeZero(), "the Job has not completed")

	msg := waitReason(g, waiting, helmv1.RetriesExhaustedReason)
	g.Expect(msg).To(ContainSubstring("not healthy"))
	g.Expect(msg).To(ContainSubstring("Job"))
	g.Expect(msg).To(ContainSubstring("waiting-migrate"))
	g.Expect(conditions.GetReason(waiting, helmv1.RemediatedCondition)).To(Equal(helmv1.UninstallSucceededReason), "the failed install was remediated")
}

// A release waits for its Job to complete: Ready is Unknown while the Job's Pod runs, and True
// once the Pod succeeded (the test plays the kubelet; kube-controller-manager's Job controller
// marks the Job complete).
func TestHelmRelease_WaitsForJobCompletion(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	chartSource(t, ns, "app", jobChart("1.0.0"))
	hr := newRelease(ns, "app")
	watching(g, ns, deploymentGVK, batchv1.SchemeGroupVersion.WithKind("Job"))
	m := requests.mark()
	g.Expect(k8s.Create(ctx, hr)).To(Succeed())

	pod := onlyPod(g, ns, client.MatchingLabels{"job-name": "web-migrate"})
	getHR(g, hr)
	g.Expect(conditions.GetReason(hr, meta.ReadyCondition)).To(Equal(helmv1.ProgressingReason), "waiting for the Job")

	now := metav1.Now()
	pod.Status.Phase = corev1.PodSucceeded
	pod.Status.StartTime = &now
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "migrate", Image: "registry.example.invalid/migrate:1",
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed", StartedAt: now, FinishedAt: now}}}}
	g.Expect(k8s.Status().Update(ctx, &pod)).To(Succeed())
	waitReleased(g, hr, "1.0.0")
	job := &batchv1.Job{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web-migrate"}, job)).To(Succeed())
	g.Expect(job.Status.Succeeded).To(BeEquivalentTo(1))
	// The Job's completion was seen by the watch of the objects Helm made: the wait did not
	// read the Job after the install created it.
	log := requests.since(m, ns)
	created := slices.IndexFunc(log, func(l string) bool { return strings.HasPrefix(l, "POST /apis/batch/v1/namespaces/"+ns+"/jobs") })
	g.Expect(created).To(BeNumerically(">=", 0), "the install created the Job: %q", log)
	for _, l := range log[created+1:] {
		g.Expect(l).NotTo(HavePrefix("GET /apis/batch/v1/namespaces/"+ns+"/jobs/web-migrate"), "a read of the Job after the install")
	}
}

// rollback.disableHooks: the pre-rollback hook of the revision rolled back to runs in a plain
// rollback, and not with disableHooks.
func TestHelmRelease_RollbackDisableHooks(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	src := chartSource(t, ns, "app", withTemplate(testChart("1.0.0", false), "hook.yaml", hookConfigMap("pre-rollback")))
	rollback := func(name string, disableHooks bool) *helmv1.HelmRelease {
		return newRelease(ns, "app", func(hr *helmv1.HelmRelease) {
			hr.Name = name
			hr.Spec.Upgrade = &helmv1.Upgrade{Remediation: &helmv1.Remediation{Retries: 0, RemediateLastFailure: ptr(true)}}
			hr.Spec.Rollback = &helmv1.Rollback{DisableHooks: disableHooks}
		})
	}
	plain, noHooks := rollback("plain", false), rollback("nohooks", true)
	for _, hr := range []*helmv1.HelmRelease{plain, noHooks} {
		g.Expect(k8s.Create(ctx, hr)).To(Succeed())
		waitReleased(g, hr, "1.0.0")
	}
	for _, name := range []string{"plain-hook", "nohooks-hook"} {
		err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &corev1.ConfigMap{})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "no rollback yet, no hook (%v)", err)
	}

	publishTo(t, src, testChart("2.0.0", true))
	for _, hr := range []*helmv1.HelmRelease{plain, noHooks} {
		waitReason(g, hr, helmv1.RetriesExhaustedReason)
		g.Expect(conditions.GetReason(hr, helmv1.RemediatedCondition)).To(Equal(helmv1.RollbackSucceededReason))
		g.Expect(hr.Status.History[0].ChartVersion).To(Equal("1.0.0"), "rolled back")
	}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "plain-hook"}, &corev1.ConfigMap{})).To(Succeed(), "the pre-rollback hook ran")
	err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "nohooks-hook"}, &corev1.ConfigMap{})
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "rollback.disableHooks: the hook ran (%v)", err)
}
