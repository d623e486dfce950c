package controller

import (
	"context"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	. "github.com/onsi/gomega"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	helmv1 "github.com/plumb-dev/plumb/helm-controller/api/v1beta1"
	plumbreconcile "github.com/plumb-dev/plumb/shared/reconcile"
)

// spec.chart makes the controller create and own a HelmChart, and keep its spec in line.
func TestHelmRelease_ChartTemplate(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	hr := newRelease(ns, "", func(hr *helmv1.HelmRelease) {
		hr.Spec.ChartRef = nil
		hr.Spec.Chart = &helmv1.HelmChartTemplate{
			ObjectMeta: &helmv1.HelmChartTemplateObjectMeta{Labels: map[string]string{"team": "shop"}, Annotations: map[string]string{"note": "from the template"}},
			Spec: helmv1.HelmChartTemplateSpec{
				Chart: "app", Version: "1.x",
				SourceRef:                helmv1.LocalChartSourceReference{Kind: "HelmRepository", Name: "charts"},
				ValuesFiles:              []string{"values-prod.yaml"},
				IgnoreMissingValuesFiles: true,
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
		HaveKeyWithValue("ignoreMissingValuesFiles", true),
	))
	g.Expect(hc.GetLabels()).To(HaveKeyWithValue("team", "shop"))
	g.Expect(hc.GetAnnotations()).To(HaveKeyWithValue("note", "from the template"))
	owners := hc.GetOwnerReferences()
	g.Expect(owners).To(HaveLen(1))
	g.Expect(owners[0].Kind).To(Equal("HelmRelease"))
	g.Expect(*owners[0].Controller).To(BeTrue())
	g.Expect(waitReason(g, hr, helmv1.SourceNotReadyReason)).To(ContainSubstring("is not ready or not found"))

	// source-controller's part, played by the test: the chart is packaged.
	publishTo(t, hc, testChart("1.2.0", false))
	waitReleased(g, hr, "1.2.0")
	g.Expect(hr.Status.HelmChart).To(Equal(ns + "/" + ns + "-web"))

	// A new range in the template reaches the HelmChart.
	updateHR(g, hr, func(hr *helmv1.HelmRelease) {
		hr.Spec.Chart.Spec.Version = "2.x"
		hr.Spec.Chart.ObjectMeta.Labels["team"] = "checkout"
	})
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: ns + "-web"}, hc)).To(Succeed())
		g.Expect(hc.Object["spec"]).To(HaveKeyWithValue("version", "2.x"))
		g.Expect(hc.GetLabels()).To(HaveKeyWithValue("team", "checkout"))
	}, timeout, 100*time.Millisecond).Should(Succeed())

	// spec.chart.spec.verify passes through to the HelmChart as it is, and goes with it.
	updateHR(g, hr, func(hr *helmv1.HelmRelease) {
		hr.Spec.Chart.Spec.Verify = &helmv1.HelmChartTemplateVerification{
			SecretRef:         &meta.LocalObjectReference{Name: "cosign-keys"},
			MatchOIDCIdentity: []helmv1.OIDCIdentityMatch{{Issuer: "^https://issuer$", Subject: "^ci$"}},
		}
	})
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: ns + "-web"}, hc)).To(Succeed())
		g.Expect(hc.Object["spec"]).To(HaveKeyWithValue("verify", map[string]any{
			"provider": "cosign", "secretRef": map[string]any{"name": "cosign-keys"},
			"matchOIDCIdentity": []any{map[string]any{"issuer": "^https://issuer$", "subject": "^ci$"}},
		}))
	}, timeout, 100*time.Millisecond).Should(Succeed())
	// An unchanged template does not update the HelmChart again (the defaulted provider
	// compares equal).
	rv := hc.GetResourceVersion()
	v := time.Now().Format(time.RFC3339Nano)
	g.Expect(k8s.Patch(ctx, hr, plumbreconcile.RequestPatch(v))).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(hr), hr)).To(Succeed())
		g.Expect(hr.Status.LastHandledReconcileAt).To(Equal(v))
	}, timeout, 100*time.Millisecond).Should(Succeed())
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: ns + "-web"}, hc)).To(Succeed())
	g.Expect(hc.GetResourceVersion()).To(Equal(rv))

	updateHR(g, hr, func(hr *helmv1.HelmRelease) { hr.Spec.Chart.Spec.Verify = nil })
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: ns + "-web"}, hc)).To(Succeed())
		g.Expect(hc.Object["spec"]).NotTo(HaveKey("verify"))
	}, timeout, 100*time.Millisecond).Should(Succeed())
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
