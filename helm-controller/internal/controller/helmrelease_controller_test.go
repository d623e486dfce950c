package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	"helm.sh/helm/v3/pkg/chart"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	helmv1 "github.com/plumb-dev/plumb/helm-controller/api/v1beta1"
	plumbreconcile "github.com/plumb-dev/plumb/shared/reconcile"
)

const timeout = 90 * time.Second

func newRelease(ns, source string, mutate ...func(*helmv1.HelmRelease)) *helmv1.HelmRelease {
	hr := &helmv1.HelmRelease{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: helmv1.HelmReleaseSpec{
			ChartRef: &helmv1.CrossNamespaceSourceReference{Kind: "HelmChart", Name: source},
			Interval: metav1.Duration{Duration: time.Hour},
			Timeout:  &metav1.Duration{Duration: 30 * time.Second},
		},
	}
	for _, m := range mutate {
		m(hr)
	}
	return hr
}

func getHR(g Gomega, hr *helmv1.HelmRelease) *helmv1.HelmRelease {
	g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(hr), hr)).To(Succeed())
	return hr
}

// onlyPod waits for the one Pod of ns with the labels (a release's workload's) and returns it.
func onlyPod(g *WithT, ns string, labels client.MatchingLabels) corev1.Pod {
	var pod corev1.Pod
	g.Eventually(func(g Gomega) {
		pods := &corev1.PodList{}
		g.Expect(k8s.List(context.Background(), pods, client.InNamespace(ns), labels)).To(Succeed())
		g.Expect(pods.Items).To(HaveLen(1))
		pod = pods.Items[0]
	}, timeout, 50*time.Millisecond).Should(Succeed())
	return pod
}

// updateHR changes the spec of the newest hr, again when the controller's status patch wins the
// race (a conflict).
func updateHR(g Gomega, hr *helmv1.HelmRelease, change func(*helmv1.HelmRelease)) {
	g.Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		getHR(g, hr)
		change(hr)
		return k8s.Update(context.Background(), hr)
	})).To(Succeed())
}

// waitReleased waits until Ready with the newest history entry at chart version v.
func waitReleased(g *WithT, hr *helmv1.HelmRelease, version string) {
	g.Eventually(func(g Gomega) {
		getHR(g, hr)
		g.Expect(conditions.IsReady(hr)).To(BeTrue(), "Ready: %s", conditions.GetMessage(hr, meta.ReadyCondition))
		g.Expect(hr.Status.History).NotTo(BeEmpty())
		g.Expect(hr.Status.History[0].ChartVersion).To(Equal(version))
		g.Expect(hr.Status.History[0].Status).To(Equal("deployed"))
		g.Expect(hr.Status.ObservedGeneration).To(Equal(hr.Generation))
	}, timeout, 100*time.Millisecond).Should(Succeed())
}

func waitReason(g *WithT, hr *helmv1.HelmRelease, reason string) string {
	var msg string
	g.Eventually(func(g Gomega) {
		getHR(g, hr)
		g.Expect(conditions.GetReason(hr, meta.ReadyCondition)).To(Equal(reason), conditions.GetMessage(hr, meta.ReadyCondition))
		msg = conditions.GetMessage(hr, meta.ReadyCondition)
	}, timeout, 100*time.Millisecond).Should(Succeed())
	return msg
}

func request(g *WithT, hr *helmv1.HelmRelease, annotation string) {
	getHR(g, hr)
	p := client.MergeFrom(hr.DeepCopy())
	if hr.Annotations == nil {
		hr.Annotations = map[string]string{}
	}
	hr.Annotations[annotation] = time.Now().Format(time.RFC3339Nano)
	g.Expect(k8s.Patch(context.Background(), hr, p)).To(Succeed())
}

func configMapData(g Gomega, ns, name string) map[string]string {
	cm := &corev1.ConfigMap{}
	g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, cm)).To(Succeed())
	return cm.Data
}

// The life of a release: install with valuesFrom, upgrade on a new chart, a failing upgrade
// rolled back, retries exhausted, then a fixed chart upgrades; uninstall on deletion.
func TestHelmRelease_Lifecycle(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	src := chartSource(t, ns, "app", testChart("1.0.0", false))
	g.Expect(k8s.Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "values", Namespace: ns},
		Data:       map[string]string{"values.yaml": "greeting: from a ConfigMap\ncolor: blue\n", "color": "green"},
	})).To(Succeed())

	hr := newRelease(ns, "app", func(hr *helmv1.HelmRelease) {
		hr.Spec.ValuesFrom = []helmv1.ValuesReference{
			{Kind: "ConfigMap", Name: "values"},
			{Kind: "ConfigMap", Name: "values", ValuesKey: "color", TargetPath: "color"},
			{Kind: "Secret", Name: "absent", Optional: true},
		}
		hr.Spec.Upgrade = &helmv1.Upgrade{Remediation: &helmv1.Remediation{Retries: 1, RemediateLastFailure: ptr(true)}}
	})
	g.Expect(k8s.Create(ctx, hr)).To(Succeed())
	waitReleased(g, hr, "1.0.0")
	g.Expect(conditions.GetReason(hr, meta.ReadyCondition)).To(Equal(helmv1.InstallSucceededReason))
	g.Expect(conditions.IsTrue(hr, helmv1.ReleasedCondition)).To(BeTrue())
	g.Expect(configMapData(g, ns, "web-cfg")).To(Equal(map[string]string{"greeting": "from a ConfigMap", "color": "green"}))
	g.Expect(hr.Status.History[0].Version).To(Equal(1))
	g.Expect(hr.Status.History[0].ConfigDigest).To(Equal(hr.Status.LastAttemptedValuesChecksum))

	// A no-op round changes nothing in Helm.
	request(g, hr, plumbreconcile.RequestedAtAnnotation)
	g.Eventually(func(g Gomega) {
		g.Expect(getHR(g, hr).Status.LastHandledReconcileAt).NotTo(BeEmpty())
	}, timeout, 100*time.Millisecond).Should(Succeed())
	g.Expect(hr.Status.History).To(HaveLen(1))

	// A new chart version is upgraded to.
	publishTo(t, src, testChart("2.0.0", false))
	request(g, hr, plumbreconcile.RequestedAtAnnotation)
	waitReleased(g, hr, "2.0.0")
	g.Expect(hr.Status.History[0].Version).To(Equal(2))

	// A chart the API server refuses: the upgrade fails and is rolled back, twice (one retry, and
	// remediateLastFailure), then the retries are exhausted and nothing more is tried.
	publishTo(t, src, testChart("3.0.0", true))
	request(g, hr, plumbreconcile.RequestedAtAnnotation)
	msg := waitReason(g, hr, helmv1.RetriesExhaustedReason)
	g.Expect(msg).To(ContainSubstring("upgrade failed 2 times, retries exhausted"))
	g.Expect(msg).To(ContainSubstring("Not_A_Valid_Name"))
	g.Expect(hr.Status.UpgradeFailures).To(Equal(int64(2)))
	g.Expect(conditions.IsTrue(hr, helmv1.RemediatedCondition)).To(BeTrue(), conditions.GetMessage(hr, helmv1.RemediatedCondition))
	g.Expect(hr.Status.History[0].ChartVersion).To(Equal("2.0.0"), "rolled back to the last good chart")
	g.Expect(hr.Status.History[0].Status).To(Equal("deployed"))
	g.Expect(configMapData(g, ns, "web-cfg")).To(HaveKeyWithValue("greeting", "from a ConfigMap"), "nothing uninstalled")

	// A fixed chart starts over by itself.
	publishTo(t, src, testChart("3.0.1", false))
	request(g, hr, plumbreconcile.RequestedAtAnnotation)
	waitReleased(g, hr, "3.0.1")
	g.Expect(hr.Status.UpgradeFailures).To(BeZero())

	// New values through spec.values win over valuesFrom.
	updateHR(g, hr, func(hr *helmv1.HelmRelease) {
		hr.Spec.Values = &apiextensionsv1.JSON{Raw: []byte(`{"greeting":"from spec"}`)}
	})
	g.Eventually(func(g Gomega) {
		g.Expect(configMapData(g, ns, "web-cfg")).To(HaveKeyWithValue("greeting", "from spec"))
	}, timeout, 100*time.Millisecond).Should(Succeed())

	// Deletion uninstalls.
	g.Expect(k8s.Delete(ctx, hr)).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKeyFromObject(hr), hr))
	}, timeout, 100*time.Millisecond).Should(BeTrue())
	err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web-cfg"}, &corev1.ConfigMap{})
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "the release's objects are gone: %v", err)
	var secrets corev1.SecretList
	g.Expect(k8s.List(ctx, &secrets, client.InNamespace(ns), client.MatchingLabels{"owner": "helm"})).To(Succeed())
	g.Expect(secrets.Items).To(BeEmpty(), "no release storage left")
}

func TestHelmRelease_BadInputAndDependencies(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	chartSource(t, ns, "app", testChart("1.0.0", false))
	chartSource(t, ns, "broken", testChart("1.0.0", true))
	schema := testChart("1.0.0", false)
	schema.Schema = []byte(`{"type":"object","properties":{"greeting":{"type":"string","maxLength":10}}}`)
	chartSource(t, ns, "schema", schema)
	failing := testChart("1.0.0", false)
	failing.Templates = append(failing.Templates, &chart.File{Name: "templates/check.yaml", Data: []byte(`{{ fail "set .Values.required, please" }}`)})
	chartSource(t, ns, "failing", failing)
	tampered := chartSource(t, ns, "tampered", testChart("1.0.0", false))
	getU := func() {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(tampered), tampered)).To(Succeed())
	}
	getU()
	g.Expect(unstructured.SetNestedField(tampered.Object, "sha256:"+strings.Repeat("0", 64), "status", "artifact", "digest")).To(Succeed())
	g.Expect(k8s.Status().Update(ctx, tampered)).To(Succeed())

	cases := []struct {
		name   string
		mutate func(*helmv1.HelmRelease)
		reason string
		msg    string
	}{
		{"missing valuesFrom", func(hr *helmv1.HelmRelease) {
			hr.Spec.ValuesFrom = []helmv1.ValuesReference{{Kind: "Secret", Name: "absent"}}
		}, helmv1.ValuesFailedReason, "valuesFrom: Secret " + ns + "/absent not found"},
		{"missing chart source", func(hr *helmv1.HelmRelease) { hr.Spec.ChartRef.Name = "nowhere" },
			helmv1.SourceNotReadyReason, "chart source HelmChart " + ns + "/nowhere is not ready or not found"},
		{"dependency not ready", func(hr *helmv1.HelmRelease) {
			hr.Spec.DependsOn = []helmv1.DependencyReference{{Name: "database"}}
		}, helmv1.DependencyNotReadyReason, "dependency HelmRelease " + ns + "/database is not ready or not found"},
		{"a chart the API server refuses", func(hr *helmv1.HelmRelease) {
			hr.Spec.ChartRef.Name = "broken"
		}, helmv1.RetriesExhaustedReason, "install failed 1 times, retries exhausted"},
		{"values the chart's schema refuses", func(hr *helmv1.HelmRelease) {
			hr.Spec.ChartRef.Name = "schema"
			hr.Spec.Values = &apiextensionsv1.JSON{Raw: []byte(`{"greeting":"far too long a greeting"}`)}
		}, helmv1.RetriesExhaustedReason, "values don't meet the specifications of the schema"},
		{"a template that fails", func(hr *helmv1.HelmRelease) { hr.Spec.ChartRef.Name = "failing" },
			helmv1.RetriesExhaustedReason, "set .Values.required, please"},
		{"an artifact that does not match its digest", func(hr *helmv1.HelmRelease) { hr.Spec.ChartRef.Name = "tampered" },
			helmv1.ArtifactFailedReason, "digest mismatch"},
		{"a dependency on itself", func(hr *helmv1.HelmRelease) {
			hr.Spec.DependsOn = []helmv1.DependencyReference{{Name: "bad-h"}} // its own name
		}, helmv1.DependencyCycleReason, "spec.dependsOn leads back to this HelmRelease"},
		{"values that are not a map", func(hr *helmv1.HelmRelease) {
			hr.Spec.Values = &apiextensionsv1.JSON{Raw: []byte(`["a", "list"]`)}
		}, helmv1.InvalidSpecReason, "spec.values"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := NewWithT(t)
			hr := newRelease(ns, "app", c.mutate)
			hr.Name = "bad-" + string(rune('a'+i))
			g.Expect(k8s.Create(ctx, hr)).To(Succeed())
			g.Expect(waitReason(g, hr, c.reason)).To(ContainSubstring(c.msg))
		})
	}

	// A dependency that turns Ready lets the release go ahead.
	dep := newRelease(ns, "app")
	dep.Name = "database"
	g.Expect(k8s.Create(ctx, dep)).To(Succeed())
	waitReleased(g, dep, "1.0.0")
	waitReleased(g, &helmv1.HelmRelease{ObjectMeta: metav1.ObjectMeta{Name: "bad-c", Namespace: ns}}, "1.0.0")
}

func ptr[T any](v T) *T { return &v }

// Values read from Secrets are masked in the messages of failures that quote them.
func TestHelmRelease_SecretValuesStayOutOfMessages(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	quoting := testChart("1.0.0", false)
	quoting.Templates = append(quoting.Templates, &chart.File{Name: "templates/check.yaml",
		Data: []byte(`{{ if ne .Values.greeting "ok" }}{{ fail (printf "greeting %s is not ok" .Values.greeting) }}{{ end }}`)})
	chartSource(t, ns, "quoting", quoting)
	g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "creds", Namespace: ns},
		StringData: map[string]string{"values.yaml": "greeting: sup3r-s3cret-greeting\n"}})).To(Succeed())
	hr := newRelease(ns, "quoting", func(hr *helmv1.HelmRelease) {
		hr.Spec.ValuesFrom = []helmv1.ValuesReference{{Kind: "Secret", Name: "creds"}}
	})
	g.Expect(k8s.Create(ctx, hr)).To(Succeed())
	msg := waitReason(g, hr, helmv1.RetriesExhaustedReason)
	g.Expect(msg).To(ContainSubstring("greeting <redacted> is not ok"))
	// Events are recorded asynchronously: wait for the failure's before checking them all.
	var events corev1.EventList
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.List(ctx, &events, client.InNamespace(ns))).To(Succeed())
		g.Expect(events.Items).To(ContainElement(HaveField("Message", ContainSubstring("greeting <redacted> is not ok"))))
	}, timeout, 100*time.Millisecond).Should(Succeed())
	for _, e := range events.Items {
		g.Expect(e.Message).NotTo(ContainSubstring("sup3r-s3cret-greeting"))
	}
	g.Expect(conditions.GetMessage(hr, helmv1.ReleasedCondition)).NotTo(ContainSubstring("sup3r-s3cret-greeting"))
}

// A release another HelmRelease owns is neither taken over nor uninstalled when the HelmRelease
// that was refused it is deleted.
func TestHelmRelease_OwnedReleaseLeftAlone(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	chartSource(t, ns, "app", testChart("1.0.0", false))
	first := newRelease(ns, "app", func(hr *helmv1.HelmRelease) { hr.Name, hr.Spec.ReleaseName = "first", "shared" })
	g.Expect(k8s.Create(ctx, first)).To(Succeed())
	waitReleased(g, first, "1.0.0")

	second := newRelease(ns, "app", func(hr *helmv1.HelmRelease) { hr.Name, hr.Spec.ReleaseName = "second", "shared" })
	g.Expect(k8s.Create(ctx, second)).To(Succeed())
	g.Expect(waitReason(g, second, helmv1.InvalidSpecReason)).To(ContainSubstring("belongs to HelmRelease " + ns + "/first"))
	g.Expect(k8s.Delete(ctx, second)).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKeyFromObject(second), second))
	}, timeout, 100*time.Millisecond).Should(BeTrue())

	// The first one's objects are still there (an uninstall deletes them before the finalizer
	// lets the HelmRelease go).
	g.Expect(configMapData(g, ns, "shared-cfg")).To(HaveKeyWithValue("greeting", "hello"))
}
