package controller

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	notifyv1 "github.com/plumb-dev/plumb/notification-controller/api/v1beta1"
	plumbreconcile "github.com/plumb-dev/plumb/shared/reconcile"
)

func namespace(g *WithT, prefix string) string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix}}
	g.Expect(k8s.Create(context.Background(), ns)).To(Succeed())
	return ns.Name
}

func annotationOf(g Gomega, obj client.Object) string {
	g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(obj), obj)).To(Succeed())
	return obj.GetAnnotations()[plumbreconcile.RequestedAtAnnotation]
}

// A Receiver called with its own valid token reaches only opted-in kinds of its own namespace:
// Secrets, ConfigMaps and ClusterRoles, and objects of another namespace, stay untouched, the
// call still acts on the rest, and the Receiver says what it refused.
func TestReceiver_RefusesTargetsOutsideItsTenancy(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	a, b := namespace(g, "tenant-a-"), namespace(g, "tenant-b-")
	const token = "tenant-a-s3cret"
	g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "hook", Namespace: a}, StringData: map[string]string{"token": token}})).To(Succeed())
	own := gitRepository(g, a, "app", nil)
	foreign := gitRepository(g, b, "app", nil)
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: b}, StringData: map[string]string{"password": "x"}}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings", Namespace: b}}
	cr := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{GenerateName: "tenant-victim-"}}
	for _, o := range []client.Object{secret, cm, cr} {
		g.Expect(k8s.Create(ctx, o)).To(Succeed())
	}
	defer func() { _ = k8s.Delete(ctx, cr) }()

	rcv := &notifyv1.Receiver{
		ObjectMeta: metav1.ObjectMeta{Name: "generic", Namespace: a},
		Spec: notifyv1.ReceiverSpec{
			Type: notifyv1.GenericReceiver, SecretRef: &meta.LocalObjectReference{Name: "hook"},
			Resources: []notifyv1.CrossNamespaceObjectReference{
				{APIVersion: "source.plumb.dev/v1beta1", Kind: "GitRepository", Name: "app"},
				{APIVersion: "source.plumb.dev/v1beta1", Kind: "GitRepository", Name: "app", Namespace: b},
				{APIVersion: "v1", Kind: "Secret", Name: "db", Namespace: b},
				{APIVersion: "v1", Kind: "ConfigMap", Name: "*", Namespace: b},
				{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole", Name: cr.Name},
			},
		},
	}
	g.Expect(k8s.Create(ctx, rcv)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(rcv), rcv)).To(Succeed())
		g.Expect(rcv.Status.WebhookPath).To(HavePrefix("/hook/"), "the allowed targets are still served")
	}, timeout, 100*time.Millisecond).Should(Succeed())

	served(g, rcv.Status.WebhookPath)
	code, text := post(g, rcv.Status.WebhookPath, nil, []byte(`{}`))
	g.Expect(code).To(Equal(http.StatusOK), text)
	g.Expect(requestedAt(g, own)).NotTo(BeEmpty(), "the Receiver's own GitRepository")
	g.Expect(requestedAt(g, foreign)).To(BeEmpty(), "a GitRepository of another namespace")
	g.Expect(annotationOf(g, secret)).To(BeEmpty(), "a Secret of another namespace")
	g.Expect(annotationOf(g, cm)).To(BeEmpty(), "a ConfigMap of another namespace")
	g.Expect(annotationOf(g, cr)).To(BeEmpty(), "a ClusterRole")
	g.Expect(text).To(ContainSubstring("1 object(s)"))

	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(rcv), rcv)).To(Succeed())
		g.Expect(conditions.GetReason(rcv, meta.ReadyCondition)).To(Equal(notifyv1.AccessDeniedReason))
		msg := conditions.GetMessage(rcv, meta.ReadyCondition)
		for _, s := range []string{"GitRepository " + b + "/app", "Secret " + b + "/db", "ConfigMap " + b + "/*", "ClusterRole " + cr.Name} {
			g.Expect(msg).To(ContainSubstring(s))
		}
		g.Expect(msg).NotTo(ContainSubstring("GitRepository " + a + "/app"))
	}, timeout, 100*time.Millisecond).Should(Succeed())
	g.Expect(rcv.Status.WebhookPath).To(HavePrefix("/hook/"))
}
