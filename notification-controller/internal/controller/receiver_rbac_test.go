package controller

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	notifyv1 "github.com/plumb-dev/plumb/notification-controller/api/v1beta1"
)

// objectsOf reads the Kubernetes objects of a YAML file of the workspace (path from this
// module's root).
func objectsOf(g Gomega, path string) []*unstructured.Unstructured {
	b, err := os.ReadFile(filepath.Join("..", "..", path))
	g.Expect(err).NotTo(HaveOccurred())
	dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	var out []*unstructured.Unstructured
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); errors.Is(err, io.EOF) {
			return out
		} else {
			g.Expect(err).NotTo(HaveOccurred(), path)
		}
		if len(u.Object) > 0 {
			out = append(out, u)
		}
	}
}

// The generated ClusterRole grants nothing on every kind: Receiver targets come from the
// aggregated ClusterRole only.
func TestRBAC_GeneratedRoleHasNoWildcards(t *testing.T) {
	g := NewWithT(t)
	for _, u := range objectsOf(g, "config/rbac/role.yaml") {
		rules, _, _ := unstructured.NestedSlice(u.Object, "rules")
		for _, r := range rules {
			rule := r.(map[string]any)
			for _, key := range []string{"apiGroups", "resources", "verbs"} {
				vals, _, _ := unstructured.NestedStringSlice(rule, key)
				g.Expect(vals).NotTo(ContainElement("*"), "%s of %v", key, rule)
			}
		}
	}
}

// With notification-controller's RBAC as its Kustomize bases install it (only source-controller
// opted in, as in a selective install), a call reaches the opted-in kind, and the API server
// refuses the others: the call still acts, and says what it refused.
func TestReceiver_WithTheControllersRBAC(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const sa = "notification-controller"
	system := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "plumb-system"}}
	if err := k8s.Create(ctx, system); err != nil && !apierrors.IsAlreadyExists(err) {
		g.Expect(err).NotTo(HaveOccurred())
	}
	var objs []*unstructured.Unstructured
	for _, f := range []string{"config/rbac/role.yaml", "config/rbac/role_binding.yaml", "config/rbac/receiver_targets.yaml",
		"../source-controller/config/rbac/receiver_target.yaml"} {
		objs = append(objs, objectsOf(g, f)...)
	}
	for _, u := range objs {
		if u.GetKind() == "ServiceAccount" || u.GetKind() == "RoleBinding" {
			u.SetNamespace(system.Name)
		}
		g.Expect(k8s.Create(ctx, u)).To(Succeed(), u.GetKind()+" "+u.GetName())
	}
	defer func() {
		for _, u := range objs {
			_ = k8s.Delete(ctx, u)
		}
	}()
	// envtest runs no kube-controller-manager: aggregate as its clusterrole-aggregation
	// controller does.
	var labelled rbacv1.ClusterRoleList
	g.Expect(k8s.List(ctx, &labelled, client.MatchingLabels{ReceiverTargetLabel: "true"})).To(Succeed())
	g.Expect(labelled.Items).To(HaveLen(1))
	agg := &rbacv1.ClusterRole{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Name: "notification-controller-receiver-targets"}, agg)).To(Succeed())
	g.Expect(agg.AggregationRule).NotTo(BeNil())
	for _, cr := range labelled.Items {
		agg.Rules = append(agg.Rules, cr.Rules...)
	}
	g.Expect(k8s.Update(ctx, agg)).To(Succeed())

	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + system.Name + ":" + sa}
	direct, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	g.Expect(err).NotTo(HaveOccurred())
	restricted, err := client.New(cfg, client.Options{Scheme: env.Scheme, Cache: &client.CacheOptions{Reader: cached}})
	g.Expect(err).NotTo(HaveOccurred())
	srv := httptest.NewServer(&Server{Client: restricted, APIReader: direct, NoCrossNamespaceRefs: true})
	defer srv.Close()

	ns := namespace(g, "rbac-")
	g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "hook", Namespace: ns}, StringData: map[string]string{"token": "rbac-s3cret"}})).To(Succeed())
	app := gitRepository(g, ns, "app", nil)
	rcv := &notifyv1.Receiver{
		ObjectMeta: metav1.ObjectMeta{Name: "generic", Namespace: ns},
		Spec: notifyv1.ReceiverSpec{
			Type: notifyv1.GenericReceiver, SecretRef: &meta.LocalObjectReference{Name: "hook"},
			Resources: []notifyv1.CrossNamespaceObjectReference{
				{APIVersion: "source.plumb.dev/v1beta1", Kind: "GitRepository", Name: "*"},
				{APIVersion: "apply.plumb.dev/v1beta1", Kind: "Kustomization", Name: "*"},
				{APIVersion: "helm.plumb.dev/v1beta1", Kind: "HelmRelease", Name: "shop"},
			},
		},
	}
	g.Expect(k8s.Create(ctx, rcv)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(rcv), rcv)).To(Succeed())
		g.Expect(rcv.Status.WebhookPath).To(HavePrefix("/hook/"))
	}, timeout, 100*time.Millisecond).Should(Succeed())

	served(g, rcv.Status.WebhookPath)
	resp, err := http.Post(srv.URL+rcv.Status.WebhookPath, "application/json", bytes.NewReader([]byte(`{}`)))
	g.Expect(err).NotTo(HaveOccurred())
	text, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	g.Expect(resp.StatusCode).To(Equal(http.StatusOK), string(text))
	g.Expect(string(text)).To(ContainSubstring("1 object(s); 2 resource(s) refused"))
	g.Expect(requestedAt(g, app)).NotTo(BeEmpty())

	// What the ReceiverReconciler reports, read with the same rights.
	g.Expect(refusals(ctx, direct, rcv, true)).To(ConsistOf(
		"Kustomization "+ns+"/* ("+forbidden+")",
		"HelmRelease "+ns+"/shop ("+forbidden+")",
	))
	// And nothing beyond: not a Secret it was not named, not a ConfigMap.
	for _, o := range []client.ObjectList{&corev1.ConfigMapList{}, &corev1.SecretList{}} {
		err := direct.List(ctx, o, client.InNamespace(ns))
		g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%T: %v", o, err)
	}
}
