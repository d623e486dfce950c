package controller

import (
	"context"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	helmv1 "github.com/plumb-dev/plumb/helm-controller/api/v1beta1"
	plumbrelease "github.com/plumb-dev/plumb/helm-controller/internal/release"
	plumbreconcile "github.com/plumb-dev/plumb/shared/reconcile"
)

// fluxInstall installs ch as Flux's helm-controller does, with the Helm SDK directly: release
// name and storage, values, and Flux's origin labels post-rendered onto every object (or the
// labels given). It returns Helm's view of that release, to read its history.
func fluxInstall(t *testing.T, name, namespace, storage string, ch *chart.Chart, vals map[string]any, labels map[string]string, releaseLabels map[string]string) *plumbrelease.Helm {
	t.Helper()
	h, err := plumbrelease.NewHelm(newCluster(env.Config), plumbrelease.Target{Name: name, Namespace: namespace, StorageNamespace: storage}, func(string, ...any) {})
	if err != nil {
		t.Fatal(err)
	}
	if labels == nil {
		labels = map[string]string{"helm.toolkit.fluxcd.io/name": "web", "helm.toolkit.fluxcd.io/namespace": storage}
	}
	act := action.NewInstall(h.Configuration())
	act.ReleaseName, act.Namespace, act.Timeout = name, namespace, 30*time.Second
	act.PostRenderer = &plumbrelease.Kustomizer{Labels: labels}
	act.Labels = releaseLabels
	if _, err := act.RunWithContext(context.Background(), ch, vals); err != nil {
		t.Fatal(err)
	}
	return h
}

// hookChart is testChart with a post-install/post-upgrade hook, which adoption compares too.
func hookChart(version string) *chart.Chart {
	ch := testChart(version, false)
	ch.Templates = append(ch.Templates, &chart.File{Name: "templates/hook.yaml", Data: []byte(`apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-hook
  annotations:
    "helm.sh/hook": post-install,post-upgrade
data:
  installed: {{ .Release.IsInstall | quote }}
  revision: {{ .Release.Revision | quote }}
`)})
	return ch
}

func releaseSecretVersion(g Gomega, ns, name string, revision int) string {
	s := &corev1.Secret{}
	g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "sh.helm.release.v1." + name + ".v" + string(rune('0'+revision))}, s)).To(Succeed())
	return s.ResourceVersion
}

// A release Flux made (origin labels on its objects, none on the release) whose chart, values,
// manifest and hooks are the HelmRelease's is adopted as it is: one revision, Plumb's labels,
// Ready; the next reconcile writes nothing to Helm, and drift is corrected as for any release.
func TestHelmRelease_AdoptsFluxRelease(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	chartSource(t, ns, "app", hookChart("1.0.0"))
	h := fluxInstall(t, "web", ns, ns, hookChart("1.0.0"), map[string]any{"greeting": "hi"}, nil, nil)
	before := releaseSecretVersion(g, ns, "web", 1)

	hr := newRelease(ns, "app", func(hr *helmv1.HelmRelease) {
		hr.Spec.Values = &apiextensionsv1.JSON{Raw: []byte(`{"greeting":"hi"}`)}
		hr.Spec.DriftDetection = &helmv1.DriftDetection{Mode: helmv1.DriftEnabled}
	})
	g.Expect(k8s.Create(ctx, hr)).To(Succeed())
	waitReleased(g, hr, "1.0.0")
	g.Expect(conditions.GetReason(hr, meta.ReadyCondition)).To(Equal(helmv1.AdoptSucceededReason))
	g.Expect(conditions.GetMessage(hr, meta.ReadyCondition)).To(ContainSubstring("adopted release web at revision 1"))
	g.Expect(conditions.GetReason(hr, helmv1.ReleasedCondition)).To(Equal(helmv1.AdoptSucceededReason))
	g.Expect(hr.Status.History).To(HaveLen(1))
	g.Expect(hr.Status.History[0].ConfigDigest).To(Equal(hr.Status.LastAttemptedValuesChecksum))

	hist, err := h.History()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(hist).To(HaveLen(1), "no new revision")
	g.Expect(hist[0].Labels).To(HaveKeyWithValue(plumbrelease.OwnerNameLabel, "web"))
	g.Expect(hist[0].Labels).To(HaveKeyWithValue(plumbrelease.OwnerNamespaceLabel, ns))
	g.Expect(hist[0].Labels).To(HaveKeyWithValue(plumbrelease.HealthyLabel, "true"))
	g.Expect(hist[0].Labels).To(HaveKeyWithValue(plumbrelease.PostRenderersLabel, "none"))
	g.Expect(hist[0].Labels[plumbrelease.ChartDigestLabel]).NotTo(BeEmpty())
	g.Expect(releaseSecretVersion(g, ns, "web", 1)).NotTo(Equal(before), "the labels were written")

	// The next reconcile is an ordinary up-to-date one: no Helm write at all.
	adopted := releaseSecretVersion(g, ns, "web", 1)
	request(g, hr, plumbreconcile.RequestedAtAnnotation)
	g.Eventually(func(g Gomega) {
		getHR(g, hr)
		g.Expect(hr.Status.LastHandledReconcileAt).To(Equal(hr.Annotations[plumbreconcile.RequestedAtAnnotation]))
		g.Expect(conditions.GetReason(hr, meta.ReadyCondition)).To(Equal(helmv1.SucceededReason))
	}, timeout, 100*time.Millisecond).Should(Succeed())
	g.Expect(releaseSecretVersion(g, ns, "web", 1)).To(Equal(adopted))
	hist, err = h.History()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(hist).To(HaveLen(1))

	// A hand edit of an adopted release's object is put back.
	cm := &corev1.ConfigMap{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web-cfg"}, cm)).To(Succeed())
	g.Expect(cm.Labels).To(HaveKeyWithValue("helm.toolkit.fluxcd.io/name", "web"), "Flux's labels stay until the next upgrade")
	cm.Data["greeting"] = "edited by hand"
	g.Expect(k8s.Update(ctx, cm, client.FieldOwner("kubectl-edit"))).To(Succeed())
	request(g, hr, plumbreconcile.RequestedAtAnnotation)
	g.Eventually(func(g Gomega) {
		g.Expect(configMapData(g, ns, "web-cfg")).To(HaveKeyWithValue("greeting", "hi"))
	}, timeout, 100*time.Millisecond).Should(Succeed())
	hist, err = h.History()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(hist).To(HaveLen(1), "drift corrected without a new revision")
}

// A release made outside Plumb that is not what the HelmRelease deploys is upgraded, and an
// event says why it was not adopted; one another HelmRelease owns is still refused.
func TestHelmRelease_NotAdoptable(t *testing.T) {
	cases := []struct {
		name     string
		deployed *chart.Chart
		wanted   *chart.Chart
		vals     map[string]any
		labels   map[string]string
		why      string
	}{
		{name: "other values", deployed: testChart("1.0.0", false), wanted: testChart("1.0.0", false),
			vals: map[string]any{"greeting": "hello there"}, why: "the deployed values differ"},
		{name: "other chart version", deployed: testChart("1.0.0", false), wanted: testChart("1.1.0", false),
			why: "chart version 1.0.0 deployed, 1.1.0 wanted"},
		{name: "other manifest", deployed: testChart("1.0.0", false), wanted: testChart("1.0.0", false),
			labels: map[string]string{"team": "shop"}, why: "ConfigMap web-cfg changed"},
		{name: "other hook", deployed: testChart("1.0.0", false), wanted: hookChart("1.0.0"),
			why: "hook ConfigMap web-hook (app/templates/hook.yaml) not deployed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := NewWithT(t)
			ctx := context.Background()
			ns := newNamespace(t)
			chartSource(t, ns, "app", c.wanted)
			h := fluxInstall(t, "web", ns, ns, c.deployed, c.vals, c.labels, nil)
			hr := newRelease(ns, "app")
			g.Expect(k8s.Create(ctx, hr)).To(Succeed())
			waitReleased(g, hr, c.wanted.Metadata.Version)
			g.Expect(conditions.GetReason(hr, meta.ReadyCondition)).To(Equal(helmv1.UpgradeSucceededReason))
			g.Expect(hr.Status.History[0].Version).To(Equal(2))
			hist, err := h.History()
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(hist).To(HaveLen(2))
			g.Eventually(func(g Gomega) {
				var events corev1.EventList
				g.Expect(k8s.List(ctx, &events, client.InNamespace(ns))).To(Succeed())
				g.Expect(events.Items).To(ContainElement(HaveField("Message", And(
					ContainSubstring("is not adopted as it is"), ContainSubstring(c.why)))))
			}, timeout, 100*time.Millisecond).Should(Succeed())
		})
	}

	t.Run("owned by another HelmRelease", func(t *testing.T) {
		g := NewWithT(t)
		ctx := context.Background()
		ns := newNamespace(t)
		chartSource(t, ns, "app", testChart("1.0.0", false))
		fluxInstall(t, "web", ns, ns, testChart("1.0.0", false), nil, nil,
			map[string]string{plumbrelease.OwnerNamespaceLabel: ns, plumbrelease.OwnerNameLabel: "other"})
		hr := newRelease(ns, "app")
		g.Expect(k8s.Create(ctx, hr)).To(Succeed())
		g.Expect(waitReason(g, hr, helmv1.InvalidSpecReason)).To(ContainSubstring("belongs to HelmRelease " + ns + "/other"))
	})
}

// Flux keeps a release with spec.targetNamespace in the HelmRelease's namespace, Plumb by
// default in the target namespace: the HelmRelease stalls and says which storageNamespace
// adopts it, instead of installing a second release; with it, the release is adopted.
func TestHelmRelease_AdoptsFromFluxStorageNamespace(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns, target := newNamespace(t), newNamespace(t)
	chartSource(t, ns, "app", testChart("1.0.0", false))
	name := target + "-web"
	h := fluxInstall(t, name, target, ns, testChart("1.0.0", false), nil, nil, nil)

	hr := newRelease(ns, "app", func(hr *helmv1.HelmRelease) { hr.Spec.TargetNamespace = target })
	g.Expect(k8s.Create(ctx, hr)).To(Succeed())
	msg := waitReason(g, hr, helmv1.InvalidSpecReason)
	g.Expect(msg).To(ContainSubstring("set spec.storageNamespace: " + ns + " to adopt it"))
	var secrets corev1.SecretList
	g.Expect(k8s.List(ctx, &secrets, client.InNamespace(target), client.MatchingLabels{"owner": "helm"})).To(Succeed())
	g.Expect(secrets.Items).To(BeEmpty(), "no second release")

	updateHR(g, hr, func(hr *helmv1.HelmRelease) { hr.Spec.StorageNamespace = ns })
	waitReleased(g, hr, "1.0.0")
	g.Expect(conditions.GetReason(hr, meta.ReadyCondition)).To(Equal(helmv1.AdoptSucceededReason))
	hist, err := h.History()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(hist).To(HaveLen(1))
}
