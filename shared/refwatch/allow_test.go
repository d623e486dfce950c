package refwatch_test

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/plumb-dev/plumb/shared/refwatch"
)

const allowGroup = "allow.refwatch.test"

// installCRD creates a namespaced kind of allowGroup, with labels on its CRD, and waits until
// it is served.
func installCRD(t *testing.T, g *WithT, kind, plural string, labels map[string]string) schema.GroupVersionKind {
	t.Helper()
	crd := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
		"metadata": map[string]any{"name": plural + "." + allowGroup},
		"spec": map[string]any{
			"group": allowGroup, "scope": "Namespaced",
			"names": map[string]any{"kind": kind, "listKind": kind + "List", "plural": plural, "singular": plural[:len(plural)-1]},
			"versions": []any{map[string]any{"name": "v1", "served": true, "storage": true,
				"schema": map[string]any{"openAPIV3Schema": map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}},
		},
	}}
	crd.SetLabels(labels)
	g.Expect(env.Client.Create(context.Background(), crd)).To(Succeed())
	gvk := schema.GroupVersionKind{Group: allowGroup, Version: "v1", Kind: kind}
	g.Eventually(func() error {
		_, err := mgr.GetRESTMapper().RESTMapping(gvk.GroupKind(), "v1")
		return err
	}).Should(Succeed())
	return gvk
}

func TestAllowedKinds(t *testing.T) {
	g, ctx := newG(t), context.Background()
	w, _ := newWatcher()
	labeled := installCRD(t, g, "Opted", "opteds", map[string]string{refwatch.ReferenceTargetLabel: "true"})
	unlabeled := installCRD(t, g, "Plain", "plains", map[string]string{refwatch.ReferenceTargetLabel: "false"})

	for _, gvk := range []schema.GroupVersionKind{
		gitRepository, labeled,
		{Group: "helm.plumb.dev", Version: "v1beta1", Kind: "HelmRelease"},
		{Group: "later.example.com", Version: "v1", Kind: "NotServedYet"}, // checked once served
	} {
		g.Expect(w.Allowed(ctx, gvk)).To(Succeed(), gvk.String())
	}
	for _, gvk := range []schema.GroupVersionKind{
		{Version: "v1", Kind: "Secret"}, {Version: "v1", Kind: "ConfigMap"},
		{Group: "apps", Version: "v1", Kind: "Deployment"}, // served, no CRD: built in
		unlabeled,
	} {
		g.Expect(w.Allowed(ctx, gvk)).To(MatchError(refwatch.ErrKindRefused), gvk.String())
	}
}

// A reference to a Secret is refused before any read or watch: the controller never caches
// the cluster's Secrets, and the answer is the same whether the Secret exists or not.
func TestGetRefusesSecretsWithoutWatching(t *testing.T) {
	g, ctx := newG(t), context.Background()
	w, _ := newWatcher()
	ns := newNamespace(t)
	secret := &unstructured.Unstructured{}
	secret.SetAPIVersion("v1")
	secret.SetKind("Secret")
	secret.SetNamespace(ns)
	secret.SetName("there")
	g.Expect(env.Client.Create(ctx, secret)).To(Succeed())
	gvk := schema.GroupVersionKind{Version: "v1", Kind: "Secret"}
	c := mgr.GetClient()

	_, errThere := w.Get(ctx, c, gvk, client.ObjectKeyFromObject(secret))
	_, errMissing := w.Get(ctx, c, gvk, types.NamespacedName{Namespace: ns, Name: "missing"})
	g.Expect(errThere).To(MatchError(refwatch.ErrKindRefused))
	g.Expect(errMissing).To(MatchError(refwatch.ErrKindRefused))
	g.Expect(errThere.Error()).To(Equal(errMissing.Error()))
	w.Ensure(ctx, gvk)
	g.Expect(w.Kinds()).To(BeEmpty())

	// A kind that opted in is watched (a kind of its own: the test controller is shared).
	opted := installCRD(t, g, "Watched", "watcheds", map[string]string{refwatch.ReferenceTargetLabel: "true"})
	w.Ensure(ctx, opted)
	g.Expect(w.Kinds()).To(Equal([]schema.GroupKind{opted.GroupKind()}))
}
