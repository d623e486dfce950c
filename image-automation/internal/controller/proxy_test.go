package controller

import (
	"context"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	imagev1 "github.com/plumb-dev/plumb/image-automation/api/v1beta1"
	"github.com/plumb-dev/plumb/shared/testing/nettest"
)

// An ImageRepository with a proxySecretRef scans through the proxy; a wrong proxy password is
// ProxyFailed naming the proxy, never the password.
func TestImageRepository_Proxy(t *testing.T) {
	const password = "proxy-pass-4711"
	g := NewWithT(t)
	ctx := context.Background()
	// The registry is on loopback: NO_PROXY of the environment must not exclude it.
	t.Setenv("NO_PROXY", "")
	t.Setenv("no_proxy", "")
	px := nettest.NewProxy(t, "proxy-user", password)
	ns := newNamespace(t, nil)
	image := newImage()
	pushTags(t, image, "1.0.0", "1.1.0")
	secret := func(name, pw string) {
		g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			StringData: map[string]string{"address": px.URL.String(), "username": "proxy-user", "password": pw}})).To(Succeed())
	}
	secret("proxy", password)
	secret("wrong-proxy", "wrong-"+password)

	repo := imageRepository(ns, "app", image)
	repo.Spec.ProxySecretRef = &meta.LocalObjectReference{Name: "proxy"}
	wrong := imageRepository(ns, "wrong", image)
	wrong.Spec.ProxySecretRef = &meta.LocalObjectReference{Name: "wrong-proxy"}
	missing := imageRepository(ns, "missing", image)
	missing.Spec.ProxySecretRef = &meta.LocalObjectReference{Name: "absent"}
	for _, o := range []client.Object{repo, wrong, missing} {
		g.Expect(k8s.Create(ctx, o)).To(Succeed())
	}
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(repo), repo)).To(Succeed())
		g.Expect(conditions.IsReady(repo)).To(BeTrue(), conditions.GetMessage(repo, meta.ReadyCondition))
		g.Expect(repo.Status.LastScanResult).NotTo(BeNil())
		g.Expect(repo.Status.LastScanResult.TagCount).To(Equal(2))
	}, timeout, 100*time.Millisecond).Should(Succeed())
	g.Expect(px.Served(registryHost)).To(BeNumerically(">", 0), "the scan went through the proxy")

	for obj, msg := range map[*imagev1.ImageRepository]string{wrong: px.Addr, missing: "proxy Secret " + ns + "/absent not found"} {
		g.Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(obj), obj)).To(Succeed())
			g.Expect(conditions.IsFalse(obj, meta.ReadyCondition)).To(BeTrue())
			g.Expect(conditions.GetReason(obj, meta.ReadyCondition)).To(Equal(imagev1.ProxyFailedReason), conditions.GetMessage(obj, meta.ReadyCondition))
			g.Expect(conditions.GetMessage(obj, meta.ReadyCondition)).To(ContainSubstring(msg))
		}, timeout, 100*time.Millisecond).Should(Succeed(), obj.Name)
		g.Expect(conditions.GetMessage(obj, meta.ReadyCondition)).NotTo(ContainSubstring(password))
	}
	var events eventsv1.EventList
	g.Expect(k8s.List(ctx, &events, client.InNamespace(ns))).To(Succeed())
	for _, e := range events.Items {
		g.Expect(e.Note).NotTo(ContainSubstring(password))
	}
}
