package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	helmv1 "github.com/plumb-dev/plumb/helm-controller/api/v1beta1"
	plumbreconcile "github.com/plumb-dev/plumb/shared/reconcile"
)

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

// Drift from watches: once the release's objects were found in sync, a no-op reconcile
// compares none of them (no dry-run: no request at all); an edit by hand moves the object's
// resource version, and the reconcile at the interval (or at once on a request) puts it back.
// A restarted controller (nothing kept in memory) compares every object on its first
// reconcile, so that an edit made while it was stopped is put back.
func TestHelmRelease_DriftFromWatches(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	chartSource(t, ns, "app", testChart("1.0.0", false))
	hr := newRelease(ns, "app", func(hr *helmv1.HelmRelease) {
		hr.Spec.DriftDetection = &helmv1.DriftDetection{Mode: helmv1.DriftEnabled}
	})
	g.Expect(k8s.Create(ctx, hr)).To(Succeed())
	waitReleased(g, hr, "1.0.0")
	settled(g, hr)
	req := ctrl.Request{NamespacedName: client.ObjectKeyFromObject(hr)}

	edit := func() {
		cm := &corev1.ConfigMap{}
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web-cfg"}, cm)).To(Succeed())
		cm.Data["greeting"] = "edited by hand"
		g.Expect(k8s.Update(ctx, cm, client.FieldOwner("kubectl-edit"))).To(Succeed())
	}

	// At the interval: the reconcile that runs once the watch has seen the edit puts it back.
	edit()
	g.Eventually(func(g Gomega) {
		_, err := reconciler.Reconcile(ctx, req)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(configMapData(g, ns, "web-cfg")).To(HaveKeyWithValue("greeting", "hello"))
	}, timeout, 50*time.Millisecond).Should(Succeed())
	settled(g, hr)

	// On a reconcile request.
	edit()
	request(g, hr, plumbreconcile.RequestedAtAnnotation)
	g.Eventually(func(g Gomega) {
		g.Expect(configMapData(g, ns, "web-cfg")).To(HaveKeyWithValue("greeting", "hello"))
	}, timeout, 50*time.Millisecond).Should(Succeed())
	settled(g, hr)

	// Edited while the controller was stopped: the first reconcile after the restart compares
	// every object and puts it back.
	edit()
	m := requests.mark()
	_, err := restarted().Reconcile(ctx, req)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(configMapData(g, ns, "web-cfg")).To(HaveKeyWithValue("greeting", "hello"))
	g.Expect(strings.Join(requests.since(m, ns), "\n")).To(ContainSubstring("dryRun=All"), "every object compared")
	getHR(g, hr)
	g.Expect(hr.Status.History).To(HaveLen(1), "no new Helm revision")
}

// restarted is the reconciler as a restarted controller has it: what it kept in memory is
// gone, its watches are the same.
func restarted() *HelmReleaseReconciler {
	r := reconciler
	return &HelmReleaseReconciler{Clusters: r.Clusters, Client: r.Client, APIReader: r.APIReader, Config: r.Config, Events: r.Events,
		ControllerName: r.ControllerName, Fetcher: r.Fetcher, RequeueDependency: r.RequeueDependency,
		watches: r.watches, storage: r.storage, objects: r.objects}
}
