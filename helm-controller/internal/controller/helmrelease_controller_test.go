package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/release"
	appsv1 "k8s.io/api/apps/v1"
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
	cfg, err := reconciler.actionConfig(ctx, hr)
	g.Expect(err).NotTo(HaveOccurred())
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
			helmv1.SourceNotReadyReason, "chart source HelmChart " + ns + "/nowhere not found"},
		{"dependency not ready", func(hr *helmv1.HelmRelease) {
			hr.Spec.DependsOn = []helmv1.DependencyReference{{Name: "database"}}
		}, helmv1.DependencyNotReadyReason, "dependency HelmRelease " + ns + "/database not found"},
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

// spec.chart makes the controller create and own a HelmChart, and keep its spec in line.
func TestHelmRelease_ChartTemplate(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	hr := newRelease(ns, "", func(hr *helmv1.HelmRelease) {
		hr.Spec.ChartRef = nil
		hr.Spec.Chart = &helmv1.HelmChartTemplate{Spec: helmv1.HelmChartTemplateSpec{
			Chart: "app", Version: "1.x",
			SourceRef: helmv1.LocalChartSourceReference{Kind: "HelmRepository", Name: "charts"},
		}}
	})
	g.Expect(k8s.Create(ctx, hr)).To(Succeed())

	hc := &unstructured.Unstructured{}
	hc.SetAPIVersion("source.plumb.dev/v1beta1")
	hc.SetKind("HelmChart")
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: ns + "-web"}, hc)).To(Succeed())
	}, timeout, 100*time.Millisecond).Should(Succeed())
	g.Expect(hc.Object["spec"]).To(And(
		HaveKeyWithValue("chart", "app"), HaveKeyWithValue("version", "1.x"),
		HaveKeyWithValue("sourceRef", map[string]any{"kind": "HelmRepository", "name": "charts"}),
	))
	owners := hc.GetOwnerReferences()
	g.Expect(owners).To(HaveLen(1))
	g.Expect(owners[0].Kind).To(Equal("HelmRelease"))
	g.Expect(*owners[0].Controller).To(BeTrue())
	g.Expect(waitReason(g, hr, helmv1.SourceNotReadyReason)).To(ContainSubstring("has no artifact yet"))

	// source-controller's part, played by the test: the chart is packaged.
	publishTo(t, hc, testChart("1.2.0", false))
	waitReleased(g, hr, "1.2.0")
	g.Expect(hr.Status.HelmChart).To(Equal(ns + "/" + ns + "-web"))

	// A new range in the template reaches the HelmChart.
	updateHR(g, hr, func(hr *helmv1.HelmRelease) {
		hr.Spec.Chart.Spec.Version = "2.x"
	})
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: ns + "-web"}, hc)).To(Succeed())
		g.Expect(hc.Object["spec"]).To(HaveKeyWithValue("version", "2.x"))
	}, timeout, 100*time.Millisecond).Should(Succeed())
}

// spec.kubeConfig: a kubeconfig Secret reaches a cluster (here the same one, through its admin
// kubeconfig); one with a credential plugin is refused until the Secret is fixed.
func TestHelmRelease_KubeConfig(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	chartSource(t, ns, "app", testChart("1.0.0", false))
	exec := strings.Replace(string(env.Kubeconfig), "users:", "users:\n- name: plugin\n  user:\n    exec: {apiVersion: client.authentication.k8s.io/v1, command: /bin/sh}", 1)
	for name, data := range map[string]string{"remote": string(env.Kubeconfig), "plugin": exec} {
		g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, StringData: map[string]string{"value": data}})).To(Succeed())
	}
	hr := newRelease(ns, "app", func(hr *helmv1.HelmRelease) {
		hr.Spec.KubeConfig = &helmv1.KubeConfigReference{SecretRef: meta.SecretKeyReference{Name: "remote"}}
	})
	g.Expect(k8s.Create(ctx, hr)).To(Succeed())
	waitReleased(g, hr, "1.0.0")

	bad := newRelease(ns, "app", func(hr *helmv1.HelmRelease) {
		hr.Name = "bad"
		hr.Spec.KubeConfig = &helmv1.KubeConfigReference{SecretRef: meta.SecretKeyReference{Name: "plugin"}}
	})
	g.Expect(k8s.Create(ctx, bad)).To(Succeed())
	g.Expect(waitReason(g, bad, helmv1.InvalidSpecReason)).To(ContainSubstring("credential plugin"))
	g.Expect(conditions.IsStalled(bad)).To(BeFalse(), "a fixed Secret would never be seen")

	fixed := &corev1.Secret{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "plugin"}, fixed)).To(Succeed())
	fixed.Data = map[string][]byte{"value": env.Kubeconfig}
	g.Expect(k8s.Update(ctx, fixed)).To(Succeed())
	waitReleased(g, bad, "1.0.0")
}

// Drift: warn reports a hand edit and leaves it; enabled puts it back without a new Helm
// revision; ignored fields are neither reported nor put back.
func TestHelmRelease_DriftWarnAndCorrect(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	chartSource(t, ns, "app", testChart("1.0.0", false))
	hr := newRelease(ns, "app", func(hr *helmv1.HelmRelease) {
		hr.Spec.DriftDetection = &helmv1.DriftDetection{Mode: helmv1.DriftWarn, Ignore: []helmv1.IgnoreRule{
			{Paths: []string{"/data/color"}, Target: &helmv1.Selector{Kind: "ConfigMap"}},
		}}
	})
	g.Expect(k8s.Create(ctx, hr)).To(Succeed())
	waitReleased(g, hr, "1.0.0")

	edit := func(key, value string) {
		cm := &corev1.ConfigMap{}
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web-cfg"}, cm)).To(Succeed())
		cm.Data[key] = value
		g.Expect(k8s.Update(ctx, cm, client.FieldOwner("kubectl-edit"))).To(Succeed())
	}
	edit("color", "pink") // ignored
	request(g, hr, plumbreconcile.RequestedAtAnnotation)
	g.Eventually(func(g Gomega) {
		getHR(g, hr)
		g.Expect(conditions.IsFalse(hr, helmv1.DriftedCondition)).To(BeTrue(), conditions.GetMessage(hr, helmv1.DriftedCondition))
	}, timeout, 100*time.Millisecond).Should(Succeed())

	edit("greeting", "edited by hand")
	request(g, hr, plumbreconcile.RequestedAtAnnotation)
	g.Eventually(func(g Gomega) {
		getHR(g, hr)
		g.Expect(conditions.IsTrue(hr, helmv1.DriftedCondition)).To(BeTrue())
		g.Expect(conditions.GetMessage(hr, helmv1.DriftedCondition)).To(ContainSubstring("ConfigMap/" + ns + "/web-cfg changed"))
	}, timeout, 100*time.Millisecond).Should(Succeed())
	g.Expect(conditions.IsReady(hr)).To(BeTrue(), "warn only reports")
	g.Expect(configMapData(g, ns, "web-cfg")).To(HaveKeyWithValue("greeting", "edited by hand"))

	updateHR(g, hr, func(hr *helmv1.HelmRelease) {
		hr.Spec.DriftDetection.Mode = helmv1.DriftEnabled
	})
	g.Eventually(func(g Gomega) {
		g.Expect(configMapData(g, ns, "web-cfg")).To(HaveKeyWithValue("greeting", "hello"))
	}, timeout, 100*time.Millisecond).Should(Succeed())
	g.Expect(configMapData(g, ns, "web-cfg")).To(HaveKeyWithValue("color", "pink"), "an ignored field is left as it is")
	g.Eventually(func(g Gomega) {
		getHR(g, hr)
		g.Expect(conditions.IsFalse(hr, helmv1.DriftedCondition)).To(BeTrue(), conditions.GetMessage(hr, helmv1.DriftedCondition))
	}, timeout, 100*time.Millisecond).Should(Succeed())
	g.Expect(hr.Status.History).To(HaveLen(1), "no new Helm revision")
}

// Post-renderers patch the rendered manifests; changing them upgrades the release.
func TestHelmRelease_PostRenderers(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	chartSource(t, ns, "app", testChart("1.0.0", false))
	patch := func(greeting string) []helmv1.PostRenderer {
		return []helmv1.PostRenderer{{Kustomize: &helmv1.KustomizePostRenderer{
			Patches: []helmv1.Patch{{
				Patch:  "- op: replace\n  path: /data/greeting\n  value: " + greeting + "\n",
				Target: &helmv1.PatchSelector{Kind: "ConfigMap"},
			}},
			Images: []helmv1.Image{{Name: "registry.example.invalid/app", NewTag: "9.9.9"}},
		}}}
	}
	hr := newRelease(ns, "app", func(hr *helmv1.HelmRelease) { hr.Spec.PostRenderers = patch("patched") })
	g.Expect(k8s.Create(ctx, hr)).To(Succeed())
	waitReleased(g, hr, "1.0.0")
	g.Expect(configMapData(g, ns, "web-cfg")).To(HaveKeyWithValue("greeting", "patched"))
	d := &appsv1.Deployment{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web"}, d)).To(Succeed())
	g.Expect(d.Spec.Template.Spec.Containers[0].Image).To(Equal("registry.example.invalid/app:9.9.9"))

	updateHR(g, hr, func(hr *helmv1.HelmRelease) {
		hr.Spec.PostRenderers = patch("patched again")
	})
	g.Eventually(func(g Gomega) {
		g.Expect(configMapData(g, ns, "web-cfg")).To(HaveKeyWithValue("greeting", "patched again"))
		g.Expect(getHR(g, hr).Status.History[0].Version).To(Equal(2))
	}, timeout, 100*time.Millisecond).Should(Succeed())
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
	cfg, err := reconciler.actionConfig(ctx, hr)
	g.Expect(err).NotTo(HaveOccurred())
	rls, err := cfg.Releases.Last("web")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(rls.Labels).To(HaveKeyWithValue(healthyLabel, "true"))

	rls.Labels[healthyLabel] = "false" // as a stop in the middle of the wait leaves it
	g.Expect(cfg.Releases.Update(rls)).To(Succeed())
	request(g, hr, plumbreconcile.RequestedAtAnnotation)
	g.Eventually(func(g Gomega) {
		rls, err := cfg.Releases.Last("web")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(rls.Labels).To(HaveKeyWithValue(healthyLabel, "true"))
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

// The chart `helm create` makes, the shape most real charts start from (Deployment, Service,
// ServiceAccount, optional HPA and Ingress, a test hook), installed and upgraded.
func TestHelmRelease_HelmCreateChart(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	dir, err := chartutil.Create("starter", t.TempDir())
	g.Expect(err).NotTo(HaveOccurred())
	ch, err := loader.LoadDir(dir)
	g.Expect(err).NotTo(HaveOccurred())
	chartSource(t, ns, "starter", ch)
	hr := newRelease(ns, "starter", func(hr *helmv1.HelmRelease) {
		hr.Spec.Values = &apiextensionsv1.JSON{Raw: []byte(`{"replicaCount": 0}`)} // no kubelet to run pods
	})
	g.Expect(k8s.Create(ctx, hr)).To(Succeed())
	waitReleased(g, hr, ch.Metadata.Version)
	svc := &corev1.Service{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web-starter"}, svc)).To(Succeed())
	g.Expect(svc.Spec.Type).To(Equal(corev1.ServiceTypeClusterIP))

	updateHR(g, hr, func(hr *helmv1.HelmRelease) {
		hr.Spec.Values = &apiextensionsv1.JSON{Raw: []byte(`{"replicaCount": 0, "service": {"type": "NodePort"}, "ingress": {"enabled": true}}`)}
	})
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web-starter"}, svc)).To(Succeed())
		g.Expect(svc.Spec.Type).To(Equal(corev1.ServiceTypeNodePort))
		g.Expect(getHR(g, hr).Status.History[0].Version).To(Equal(2))
	}, timeout, 100*time.Millisecond).Should(Succeed())
}

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
