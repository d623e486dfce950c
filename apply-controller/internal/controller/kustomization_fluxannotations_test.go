package controller

import (
	"context"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
)

// annotated adds metadata annotations to a one-object manifest.
func annotated(manifest string, annotations ...string) string {
	return strings.Replace(manifest, "metadata:\n", "metadata:\n  annotations:\n    "+strings.Join(annotations, "\n    ")+"\n", 1)
}

// Objects moved from Flux keep their per-object annotations' meaning: Flux's keys (in Flux's
// lower case) are honoured as Plumb's. An object Flux would never prune, Plumb does not prune;
// one Flux would never apply, Plumb does not apply.
func TestKustomization_FluxPerObjectAnnotations(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	files := map[string]string{
		"deploy/flux-keep.yaml":  annotated(configMap("flux-keep", "1"), "kustomize.toolkit.fluxcd.io/prune: disabled"),
		"deploy/plumb-keep.yaml": annotated(configMap("plumb-keep", "1"), "apply.plumb.dev/prune: Disabled"),
		"deploy/gone.yaml":       configMap("gone", "1"),
		"deploy/ignored.yaml":    annotated(configMap("ignored", "1"), "kustomize.toolkit.fluxcd.io/ssa: ignore"),
	}
	gr := source(t, ns, "app", "main@sha1:1", files)
	k := newKustomization(ns, gr.Name, func(k *applyv1.Kustomization) { k.Spec.Wait = true })
	g.Expect(k8s.Create(context.Background(), k)).To(Succeed())
	waitApplied(g, k, "main@sha1:1")
	g.Expect(exists(ns, "ignored", &corev1.ConfigMap{})).To(BeFalse(), "ssa: ignore is never applied")
	for _, name := range []string{"flux-keep", "plumb-keep", "gone"} {
		g.Expect(exists(ns, name, &corev1.ConfigMap{})).To(BeTrue(), name)
	}

	// The next revision drops all of them: only the one without an annotation is pruned.
	setArtifact(t, gr, "main@sha1:2", map[string]string{"deploy/cm.yaml": configMap("cm", "1")})
	waitApplied(g, k, "main@sha1:2")
	g.Expect(exists(ns, "gone", &corev1.ConfigMap{})).To(BeFalse(), "pruned")
	g.Expect(exists(ns, "flux-keep", &corev1.ConfigMap{})).To(BeTrue(), "Flux's prune: disabled keeps it")
	g.Expect(exists(ns, "plumb-keep", &corev1.ConfigMap{})).To(BeTrue(), "Plumb's prune: Disabled keeps it")
}
