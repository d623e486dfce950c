package controller

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
)

// A reconcile at the interval with nothing new writes nothing, for every source kind: the
// status is patched only when it changed (the object's resource version stays).
// (GitRepository: TestGitRepository_NoOpReconcileDoesNotFetch.)
func TestSources_NoOpReconcileWritesNothing(t *testing.T) {
	t.Run("OCIRepository", func(t *testing.T) {
		g := NewWithT(t)
		ns := newNamespace(t)
		reg := newRegistry(t, nil)
		d := pushFiles(t, reg.Host, "org/app", "v1.0.0", map[string]string{"cm.yaml": "kind: ConfigMap\n"})
		obj := newOCIRepository(ns, "oci://"+reg.Host+"/org/app", func(o *sourcev1.OCIRepository) {
			o.Spec.Ref = &sourcev1.OCIRepositoryRef{Tag: "v1.0.0"}
		})
		create(g, obj)
		waitReady(g, obj, "v1.0.0@"+d)
		noop(t, g, ociReconciler, obj)
	})
	t.Run("HelmRepository and HelmChart", func(t *testing.T) {
		g := NewWithT(t)
		ns := newNamespace(t)
		srv := chartRepo(t, "1.0.0")
		repo := readyHelmRepository(t, g, ns, srv)
		noop(t, g, helmRepositoryReconciler, repo)
		obj := newHelmChart(ns, "web", sourcev1.HelmRepositoryKind, repo.Name)
		create(g, obj)
		waitReady(g, obj, "1.0.0")
		noop(t, g, helmChartReconciler, obj)
	})
}

// noop reconciles obj twice with nothing new and checks that nothing was written.
func noop(t *testing.T, g *WithT, r reconcile.Reconciler, obj sourceObject) {
	t.Helper()
	get(g, obj)
	rv := obj.GetResourceVersion()
	for range 2 {
		res, err := r.Reconcile(context.Background(), requestFor(obj))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(res.RequeueAfter).To(BeNumerically(">", 0))
	}
	g.Expect(get(g, obj).GetResourceVersion()).To(Equal(rv), "a no-op reconcile writes nothing")
}

func TestBucket_NoOpReconcileWritesNothing(t *testing.T) {
	g := NewWithT(t)
	srv := s3(t)
	ns := newNamespace(t)
	name := newS3Bucket(t, srv, map[string]string{"cm.yaml": "kind: ConfigMap\n"})
	obj := newBucket(ns, srv.Endpoint, name, func(b *sourcev1.Bucket) { b.Spec.SecretRef = s3Secret(t, ns, s3SecretKey) })
	create(g, obj)
	waitReady(g, obj, s3Revision(g, srv, name, "cm.yaml"))
	noop(t, g, bucketReconciler, obj)
}
