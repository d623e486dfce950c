package controller

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	helmv1 "github.com/plumb-dev/plumb/helm-controller/api/v1beta1"
	plumbreconcile "github.com/plumb-dev/plumb/shared/reconcile"
)

// settled reconciles hr until a reconcile of it sends no request to the API server: the
// storage watch has caught up with what the last reconcile read (the first one after an action
// reads Helm's storage, and writes the status that says the release is up to date).
func settled(g *WithT, hr *helmv1.HelmRelease) {
	req := ctrl.Request{NamespacedName: client.ObjectKeyFromObject(hr)}
	g.Eventually(func(g Gomega) {
		m := requests.mark()
		_, err := reconciler.Reconcile(context.Background(), req)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(requests.since(m, hr.Namespace)).To(BeEmpty())
	}, timeout, 50*time.Millisecond).Should(Succeed())
}

// A no-op reconcile asks the API server nothing: the chart source comes from the watch's
// cache, Helm's storage is not read while its Secrets' watch shows them unchanged, and the
// status is not written when it is the same. A reconcile request costs one status patch (the
// handled request), nothing else. A change in Helm's storage is read again.
func TestHelmRelease_NoopRequests(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	src := chartSource(t, ns, "app", testChart("1.0.0", false))
	hr := newRelease(ns, "app")
	g.Expect(k8s.Create(ctx, hr)).To(Succeed())
	waitReleased(g, hr, "1.0.0")
	settled(g, hr)

	req := ctrl.Request{NamespacedName: client.ObjectKeyFromObject(hr)}
	for range 3 {
		m := requests.mark()
		_, err := reconciler.Reconcile(ctx, req)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(requests.since(m, ns)).To(BeEmpty(), "a no-op reconcile at the interval")
	}

	// A reconcile request, handled by the running controller.
	m := requests.mark()
	request(g, hr, plumbreconcile.RequestedAtAnnotation)
	want := hr.Annotations[plumbreconcile.RequestedAtAnnotation]
	g.Eventually(func(g Gomega) {
		g.Expect(getHR(g, hr).Status.LastHandledReconcileAt).To(Equal(want))
	}, timeout, 50*time.Millisecond).Should(Succeed())
	got := requests.since(m, ns)
	g.Expect(got).To(HaveLen(1), "one request: %q", got)
	g.Expect(got[0]).To(HavePrefix("PATCH /apis/helm.plumb.dev/v1beta1/namespaces/" + ns + "/helmreleases/web/status"))

	// A hand-made change of Helm's storage (a label) is seen by the watch: the next reconcile
	// reads the storage again.
	var secret = secretOfRevision(g, ns, "web", 1)
	secret.Labels["touched"] = "yes"
	g.Expect(k8s.Update(ctx, secret)).To(Succeed())
	g.Eventually(func(g Gomega) {
		m := requests.mark()
		_, err := reconciler.Reconcile(ctx, req)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(strings.Join(requests.since(m, ns), "\n")).To(ContainSubstring("GET /api/v1/namespaces/" + ns + "/secrets?labelSelector="))
	}, timeout, 50*time.Millisecond).Should(Succeed())
	settled(g, hr)

	// A new chart version still upgrades.
	publishTo(t, src, testChart("2.0.0", false))
	waitReleased(g, hr, "2.0.0")
	g.Expect(hr.Status.History).To(HaveLen(2))
	settled(g, hr)
}

// secretOfRevision reads the Secret of Helm's storage that holds a release's revision.
func secretOfRevision(g *WithT, ns, release string, version int) *corev1.Secret {
	s := &corev1.Secret{}
	g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: fmt.Sprintf("sh.helm.release.v1.%s.v%d", release, version)}, s)).To(Succeed())
	return s
}

// storageLists are the Lists of Helm's storage Secrets among requests.
func storageLists(log []string) []string {
	var out []string
	for _, l := range log {
		if strings.HasPrefix(l, "GET /api/v1/namespaces/") && strings.Contains(l, "/secrets?labelSelector=") {
			out = append(out, l)
		}
	}
	return out
}

// An install and an upgrade list Helm's storage once per reconcile that acts (Helm's own
// reads after the first are answered from what that List returned and Helm wrote since, see
// plumbrelease.Target.Watched); it listed five times before.
func TestHelmRelease_StorageListedOncePerAction(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	src := chartSource(t, ns, "app", testChart("1.0.0", false))
	hr := newRelease(ns, "app")
	m := requests.mark()
	g.Expect(k8s.Create(ctx, hr)).To(Succeed())
	waitReleased(g, hr, "1.0.0")
	lists := storageLists(requests.since(m, ns))
	t.Logf("install: %q", lists)
	g.Expect(lists).To(HaveLen(1), "the install's Lists of Helm's storage")
	settled(g, hr)

	m = requests.mark()
	publishTo(t, src, testChart("2.0.0", false))
	waitReleased(g, hr, "2.0.0")
	lists = storageLists(requests.since(m, ns))
	t.Logf("upgrade: %q", lists)
	g.Expect(lists).To(HaveLen(1), "the upgrade's Lists of Helm's storage")
	hist := getHR(g, hr).Status.History
	g.Expect(hist).To(HaveLen(2))
	g.Expect(hist[0].ChartVersion).To(Equal("2.0.0"))
	g.Expect(hist[1].ChartVersion).To(Equal("1.0.0"))
}
