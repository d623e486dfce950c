package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/release"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	helmv1 "github.com/plumb-dev/plumb/helm-controller/api/v1beta1"
	plumbrelease "github.com/plumb-dev/plumb/helm-controller/internal/release"
	plumbreconcile "github.com/plumb-dev/plumb/shared/reconcile"
)

// A release left pending-upgrade by a controller that stopped is recovered, not stuck.
func TestHelmRelease_RecoversAPendingRelease(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	src := chartSource(t, ns, "app", testChart("1.0.0", false))
	hr := newRelease(ns, "app")
	g.Expect(k8s.Create(ctx, hr)).To(Succeed())
	waitReleased(g, hr, "1.0.0")

	// Leave a revision 2 pending, as a crash in the middle of an upgrade would.
	h, err := reconciler.helm(ctx, hr)
	g.Expect(err).NotTo(HaveOccurred())
	cfg := h.Configuration()
	rls, err := cfg.Releases.Last("web")
	g.Expect(err).NotTo(HaveOccurred())
	pending := *rls
	pending.Info = &release.Info{Status: release.StatusPendingUpgrade, Description: "stopped mid-upgrade"}
	pending.Version = 2
	g.Expect(cfg.Releases.Create(&pending)).To(Succeed())

	// No request: the HelmChart's new artifact triggers the HelmRelease (interval is an hour).
	publishTo(t, src, testChart("1.1.0", false))
	waitReleased(g, hr, "1.1.0")
	hist, err := action.NewHistory(cfg).Run("web")
	g.Expect(err).NotTo(HaveOccurred())
	var statuses []string
	for _, h := range hist {
		statuses = append(statuses, h.Info.Status.String())
	}
	// The pending revision was marked failed, and a new one deployed: right away when the
	// controller met the pending revision first (a recovery of 1.0.0, then 1.1.0), or with 1.1.0.
	g.Expect(strings.Join(statuses, ",")).To(Or(Equal("superseded,failed,deployed"), Equal("superseded,failed,superseded,deployed")))
	g.Expect(hist[1].Info.Description).To(ContainSubstring("recovered by helm-controller"))
}

// A release whose health wait was cut short (the controller stopped) is checked again, not
// taken as done.
func TestHelmRelease_HealthRecheckedAfterAStop(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	chartSource(t, ns, "app", testChart("1.0.0", false))
	hr := newRelease(ns, "app")
	g.Expect(k8s.Create(ctx, hr)).To(Succeed())
	waitReleased(g, hr, "1.0.0")
	h, err := reconciler.helm(ctx, hr)
	g.Expect(err).NotTo(HaveOccurred())
	cfg := h.Configuration()
	rls, err := cfg.Releases.Last("web")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(rls.Labels).To(HaveKeyWithValue(plumbrelease.HealthyLabel, "true"))

	rls.Labels[plumbrelease.HealthyLabel] = "false" // as a stop in the middle of the wait leaves it
	g.Expect(cfg.Releases.Update(rls)).To(Succeed())
	request(g, hr, plumbreconcile.RequestedAtAnnotation)
	g.Eventually(func(g Gomega) {
		rls, err := cfg.Releases.Last("web")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(rls.Labels).To(HaveKeyWithValue(plumbrelease.HealthyLabel, "true"))
		g.Expect(rls.Version).To(Equal(1), "checked, not upgraded")
	}, timeout, 100*time.Millisecond).Should(Succeed())
}

// Test hooks run after an upgrade; the test bed has no kubelet, so the test plays its part and
// sets the test Pod's phase.
func TestHelmRelease_TestHooks(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	withTest := func(version string) *chart.Chart {
		ch := testChart(version, false)
		ch.Templates = append(ch.Templates, &chart.File{Name: "templates/tests/check.yaml", Data: []byte(`apiVersion: v1
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
`)})
		return ch
	}
	src := chartSource(t, ns, "app", withTest("1.0.0"))
	// The kubelet's part: the test Pod of each version ends with the phase given here.
	phases := map[string]corev1.PodPhase{"web-check-1-0-0": corev1.PodSucceeded, "web-check-2-0-0": corev1.PodFailed}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			for name, phase := range phases {
				pod := &corev1.Pod{}
				if k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, pod) != nil || pod.Status.Phase == phase {
					continue
				}
				pod.Status.Phase = phase
				_ = k8s.Status().Update(ctx, pod)
			}
		}
	}()
	hr := newRelease(ns, "app", func(hr *helmv1.HelmRelease) {
		hr.Spec.Test = &helmv1.Test{Enable: true}
		hr.Spec.Upgrade = &helmv1.Upgrade{Remediation: &helmv1.Remediation{Retries: 0, RemediateLastFailure: ptr(true)}}
	})
	g.Expect(k8s.Create(ctx, hr)).To(Succeed())
	waitReleased(g, hr, "1.0.0")
	g.Expect(conditions.IsTrue(hr, helmv1.TestSuccessCondition)).To(BeTrue(), conditions.GetMessage(hr, helmv1.TestSuccessCondition))
	g.Expect(hr.Status.History[0].TestResult).To(Equal("succeeded"))

	// A failing test fails the upgrade, which is rolled back.
	publishTo(t, src, withTest("2.0.0"))
	msg := waitReason(g, hr, helmv1.RetriesExhaustedReason)
	g.Expect(msg).To(ContainSubstring("tests failed"))
	g.Expect(conditions.IsFalse(hr, helmv1.TestSuccessCondition)).To(BeTrue())
	g.Expect(hr.Status.History[0].ChartVersion).To(Equal("1.0.0"), "rolled back")
}
