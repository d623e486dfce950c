package controller

import (
	"context"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	"helm.sh/helm/v3/pkg/chart"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	helmv1 "github.com/plumb-dev/plumb/helm-controller/api/v1beta1"
	plumbreconcile "github.com/plumb-dev/plumb/shared/reconcile"
)

// withTemplate adds a template file to a chart.
func withTemplate(ch *chart.Chart, name, data string) *chart.Chart {
	ch.Templates = append(ch.Templates, &chart.File{Name: "templates/" + name, Data: []byte(data)})
	return ch
}

// hookConfigMap is a ConfigMap made by a hook of the given kind.
func hookConfigMap(hook string) string {
	return `apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-hook
  annotations:
    "helm.sh/hook": ` + hook + `
data:
  made: by a hook
`
}

// phaseSetter plays the kubelet for bare Pods of ns: each named Pod that exists gets the phase
// given, until the test ends.
func phaseSetter(t *testing.T, ns string, phases map[string]corev1.PodPhase) {
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			for name, phase := range phases {
				pod := &corev1.Pod{}
				if k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, pod) != nil || pod.Status.Phase == phase {
					continue
				}
				pod.Status.Phase = phase
				_ = k8s.Status().Update(context.Background(), pod)
			}
		}
	}()
}

// install.createNamespace makes a target namespace that does not exist; install.disableHooks
// leaves the pre-install hook out; commonMetadata reaches every rendered object; drift ignore
// rules select by label.
func TestHelmRelease_InstallOptionsAndCommonMetadata(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	target := ns + "-new"
	chartSource(t, ns, "app", withTemplate(testChart("1.0.0", false), "hook.yaml", hookConfigMap("pre-install")))
	hr := newRelease(ns, "app", func(hr *helmv1.HelmRelease) {
		hr.Spec.TargetNamespace = target
		hr.Spec.ReleaseName = "web"
		hr.Spec.Install = &helmv1.Install{CreateNamespace: true, DisableHooks: true}
		hr.Spec.CommonMetadata = &helmv1.CommonMetadata{
			Labels:      map[string]string{"team": "shop"},
			Annotations: map[string]string{"plumb.dev/owner": "shop"},
		}
		hr.Spec.DriftDetection = &helmv1.DriftDetection{Mode: helmv1.DriftEnabled, Ignore: []helmv1.IgnoreRule{
			{Paths: []string{"/data/greeting"}, Target: &helmv1.Selector{Version: "v1", LabelSelector: "team=shop", AnnotationSelector: "plumb.dev/owner"}},
			{Paths: []string{"/data/color"}, Target: &helmv1.Selector{LabelSelector: "team=other"}},
		}}
	})
	g.Expect(k8s.Create(ctx, hr)).To(Succeed())
	waitReleased(g, hr, "1.0.0")

	g.Expect(k8s.Get(ctx, client.ObjectKey{Name: target}, &corev1.Namespace{})).To(Succeed(), "createNamespace")
	err := k8s.Get(ctx, client.ObjectKey{Namespace: target, Name: "web-hook"}, &corev1.ConfigMap{})
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "disableHooks: the hook's ConfigMap was made (%v)", err)

	cm := &corev1.ConfigMap{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: target, Name: "web-cfg"}, cm)).To(Succeed())
	dep := &appsv1.Deployment{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: target, Name: "web"}, dep)).To(Succeed())
	for _, o := range []client.Object{cm, dep} {
		g.Expect(o.GetLabels()).To(HaveKeyWithValue("team", "shop"), "commonMetadata labels on %T", o)
		g.Expect(o.GetAnnotations()).To(HaveKeyWithValue("plumb.dev/owner", "shop"), "commonMetadata annotations on %T", o)
	}
	g.Expect(dep.Spec.Selector.MatchLabels).NotTo(HaveKey("team"), "selectors are left alone")

	// The ConfigMap is selected by the first rule (its labels), not by the second.
	cm.Data["greeting"], cm.Data["color"] = "edited", "pink"
	g.Expect(k8s.Update(ctx, cm, client.FieldOwner("kubectl-edit"))).To(Succeed())
	request(g, hr, plumbreconcile.RequestedAtAnnotation)
	g.Eventually(func(g Gomega) {
		data := configMapData(g, target, "web-cfg")
		g.Expect(data).To(HaveKeyWithValue("color", "none"), "drift of a field no rule selects is put back")
		g.Expect(data).To(HaveKeyWithValue("greeting", "edited"), "a field ignored by a label-selected rule is left")
	}, timeout, 100*time.Millisecond).Should(Succeed())
}

// A failed upgrade with cleanupOnFail deletes the objects it created; no remediation runs
// (none is configured), so only Helm's clean-up can have removed them.
func TestHelmRelease_UpgradeCleanupOnFail(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	src := chartSource(t, ns, "app", testChart("1.0.0", false))
	hr := newRelease(ns, "app", func(hr *helmv1.HelmRelease) {
		hr.Spec.Upgrade = &helmv1.Upgrade{CleanupOnFail: true}
	})
	g.Expect(k8s.Create(ctx, hr)).To(Succeed())
	waitReleased(g, hr, "1.0.0")

	// 2.0.0 adds a ServiceAccount (created first: Helm's install order) and a ConfigMap whose
	// name the API server refuses.
	bad := withTemplate(testChart("2.0.0", true), "sa.yaml", "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: {{ .Release.Name }}-extra\n")
	publishTo(t, src, bad)
	waitReason(g, hr, helmv1.RetriesExhaustedReason)
	g.Expect(conditions.Get(hr, helmv1.RemediatedCondition)).To(BeNil(), "no remediation configured")
	g.Expect(hr.Status.History[0].Status).To(Equal("failed"))
	err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web-extra"}, &corev1.ServiceAccount{})
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "cleanupOnFail: the ServiceAccount of the failed upgrade is left (%v)", err)
	g.Expect(configMapData(g, ns, "web-cfg")).To(HaveKey("greeting"), "the objects of revision 1 stay")
}

// upgrade.strategy RetryOnFailure: a failed upgrade is not rolled back, and is tried again after
// retryInterval (the interval is an hour: nothing else would try again).
func TestHelmRelease_RetryOnFailure(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	src := chartSource(t, ns, "app", testChart("1.0.0", false))
	hr := newRelease(ns, "app", func(hr *helmv1.HelmRelease) {
		hr.Spec.Upgrade = &helmv1.Upgrade{
			Strategy:    &helmv1.ActionStrategy{Name: helmv1.ActionStrategyRetryOnFailure, RetryInterval: &metav1.Duration{Duration: time.Second}},
			Remediation: &helmv1.Remediation{Retries: 1, RemediateLastFailure: ptr(true)}, // not used by RetryOnFailure
		}
	})
	g.Expect(k8s.Create(ctx, hr)).To(Succeed())
	waitReleased(g, hr, "1.0.0")

	publishTo(t, src, testChart("2.0.0", true))
	g.Eventually(func(g Gomega) {
		getHR(g, hr)
		g.Expect(hr.Status.UpgradeFailures).To(BeNumerically(">=", 3), "retried beyond remediation.retries")
	}, timeout, 100*time.Millisecond).Should(Succeed())
	g.Expect(conditions.Get(hr, helmv1.RemediatedCondition)).To(BeNil(), "no rollback")
	g.Expect(conditions.GetReason(hr, meta.ReadyCondition)).NotTo(Equal(helmv1.RetriesExhaustedReason))
	for _, s := range hr.Status.History[:len(hr.Status.History)-1] {
		g.Expect(s.ChartVersion).To(Equal("2.0.0"), "only upgrades to 2.0.0 after revision 1, no rollback to 1.0.0")
	}

	// A fixed chart is released at the next attempt.
	publishTo(t, src, testChart("2.0.1", false))
	waitReleased(g, hr, "2.0.1")
	g.Expect(hr.Status.UpgradeFailures).To(BeZero())
}

// While Helm runs a slow pre-upgrade hook, Ready is Unknown with reason Progressing; it is True
// again when the hook is done.
func TestHelmRelease_ReadyUnknownWhileHelmActs(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	src := chartSource(t, ns, "app", testChart("1.0.0", false))
	hr := newRelease(ns, "app")
	g.Expect(k8s.Create(ctx, hr)).To(Succeed())
	waitReleased(g, hr, "1.0.0")

	publishTo(t, src, withTemplate(testChart("2.0.0", false), "hook.yaml", `apiVersion: v1
kind: Pod
metadata:
  name: {{ .Release.Name }}-migrate
  annotations:
    "helm.sh/hook": pre-upgrade
spec:
  restartPolicy: Never
  containers:
    - name: migrate
      image: registry.example.invalid/migrate:1
`))
	g.Eventually(func(g Gomega) {
		getHR(g, hr)
		ready := conditions.Get(hr, meta.ReadyCondition)
		g.Expect(ready).NotTo(BeNil())
		g.Expect(ready.Status).To(Equal(metav1.ConditionUnknown))
		g.Expect(ready.Reason).To(Equal(helmv1.ProgressingReason))
		g.Expect(ready.Message).To(ContainSubstring("upgrading to chart app 2.0.0"))
		g.Expect(conditions.IsReconciling(hr)).To(BeTrue())
	}, timeout, 50*time.Millisecond).Should(Succeed())
	// Helm starts the hook and waits for it: Ready stays Unknown meanwhile.
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web-migrate"}, &corev1.Pod{})).To(Succeed())
	}, timeout, 50*time.Millisecond).Should(Succeed())
	getHR(g, hr)
	g.Expect(conditions.GetReason(hr, meta.ReadyCondition)).To(Equal(helmv1.ProgressingReason))
	g.Expect(hr.Status.History[0].ChartVersion).To(Equal("1.0.0"))

	phaseSetter(t, ns, map[string]corev1.PodPhase{"web-migrate": corev1.PodSucceeded})
	waitReleased(g, hr, "2.0.0")
	g.Expect(conditions.GetReason(hr, meta.ReadyCondition)).To(Equal(helmv1.UpgradeSucceededReason))
}

// test.filters leave the excluded test out; the others run.
func TestHelmRelease_TestFilters(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	testPod := func(name string) string {
		return `apiVersion: v1
kind: Pod
metadata:
  name: ` + name + `
  annotations:
    "helm.sh/hook": test
spec:
  restartPolicy: Never
  containers:
    - name: check
      image: registry.example.invalid/check:1
`
	}
	ch := withTemplate(withTemplate(testChart("1.0.0", false), "tests/a.yaml", testPod("check-a")), "tests/b.yaml", testPod("check-b"))
	chartSource(t, ns, "app", ch)
	phaseSetter(t, ns, map[string]corev1.PodPhase{"check-a": corev1.PodSucceeded, "check-b": corev1.PodFailed})
	hr := newRelease(ns, "app", func(hr *helmv1.HelmRelease) {
		hr.Spec.Test = &helmv1.Test{Enable: true, Filters: []helmv1.TestFilter{{Name: "check-b", Exclude: true}}}
	})
	g.Expect(k8s.Create(ctx, hr)).To(Succeed())
	waitReleased(g, hr, "1.0.0")
	g.Expect(conditions.IsTrue(hr, helmv1.TestSuccessCondition)).To(BeTrue(), conditions.GetMessage(hr, helmv1.TestSuccessCondition))
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "check-a"}, &corev1.Pod{})).To(Succeed(), "the test not excluded ran")
	err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "check-b"}, &corev1.Pod{})
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "the excluded test ran (%v)", err)
}

// The schema refuses what would otherwise be ignored or meaningless.
func TestHelmRelease_SchemaRefusesBadStrategies(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	cases := map[string]struct {
		mutate func(*helmv1.HelmRelease)
		want   string
	}{
		"unknown strategy": {func(hr *helmv1.HelmRelease) {
			hr.Spec.Upgrade = &helmv1.Upgrade{Strategy: &helmv1.ActionStrategy{Name: "RollForward"}}
		}, `Unsupported value: "RollForward"`},
		"retryInterval without RetryOnFailure": {func(hr *helmv1.HelmRelease) {
			hr.Spec.Install = &helmv1.Install{Strategy: &helmv1.ActionStrategy{Name: helmv1.ActionStrategyRemediateOnFailure, RetryInterval: &metav1.Duration{Duration: time.Minute}}}
		}, ".retryInterval can only be set when .name is 'RetryOnFailure'"},
		"install.remediation.strategy": {func(hr *helmv1.HelmRelease) {
			hr.Spec.Install = &helmv1.Install{Remediation: &helmv1.InstallRemediation{Strategy: "rollback"}}
		}, "install.remediation.strategy is not supported"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			err := k8s.Create(ctx, newRelease(ns, "app", tc.mutate))
			g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "created: %v", err)
			g.Expect(err.Error()).To(ContainSubstring(tc.want))
		})
	}
}
