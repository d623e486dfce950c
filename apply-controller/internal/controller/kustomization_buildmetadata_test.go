package controller

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
)

// buildMetadata's annotations reach the applied objects, with paths relative to spec.path.
func TestKustomization_BuildMetadata(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	files := map[string]string{
		"deploy/kustomization.yaml":      "resources: [cfg.yaml, base]\n",
		"deploy/cfg.yaml":                configMap("cfg", "1"),
		"deploy/base/kustomization.yaml": "resources: [more.yaml]\nnameSuffix: -b\n",
		"deploy/base/more.yaml":          configMap("more", "1"),
	}
	gr := source(t, ns, "app", "main@sha1:1", files)
	k := newKustomization(ns, gr.Name, func(k *applyv1.Kustomization) {
		k.Spec.BuildMetadata = []string{"originAnnotations", "transformerAnnotations"}
	})
	g.Expect(k8s.Create(context.Background(), k)).To(Succeed())
	waitApplied(g, k, "main@sha1:1")

	cfg := &corev1.ConfigMap{}
	g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "cfg"}, cfg)).To(Succeed())
	g.Expect(cfg.Annotations).To(HaveKeyWithValue("config.kubernetes.io/origin", "path: cfg.yaml\n"))
	more := &corev1.ConfigMap{}
	g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "more-b"}, more)).To(Succeed())
	g.Expect(more.Annotations).To(HaveKeyWithValue("config.kubernetes.io/origin", "path: base/more.yaml\n"))
	g.Expect(more.Annotations).To(HaveKeyWithValue("alpha.config.kubernetes.io/transformations",
		"- configuredBy:\n    apiVersion: builtin\n    kind: SuffixTransformer\n  configuredIn: base/kustomization.yaml\n"+
			"- configuredBy:\n    apiVersion: builtin\n    kind: NamespaceTransformer\n  configuredIn: kustomization.yaml\n"), "spec.targetNamespace is the last transformer")

	// An option Flux does not have is refused by the schema.
	bad := newKustomization(ns, gr.Name, func(k *applyv1.Kustomization) { k.Spec.BuildMetadata = []string{"managedByLabel"} })
	g.Expect(k8s.Create(context.Background(), bad)).To(MatchError(ContainSubstring("Unsupported value")))
}
