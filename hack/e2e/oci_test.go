//go:build e2e

package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/shared/testing/ocitest"
	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
)

// pushManifests pushes files as an OCI artifact to host/repo:tag and returns the manifest
// digest.
func pushManifests(g *WithT, host, repo, tag string, files map[string]string) string {
	d, err := ocitest.Push(host, repo, tag, []ocitest.Layer{{MediaType: ocitest.ContentType, Data: ocitest.Tarball(files)}})
	g.Expect(err).NotTo(HaveOccurred())
	return d
}

// Manifests shipped as OCI artifacts: a Kustomization follows an OCIRepository's semver range,
// through the built controllers, with no Git involved. A new tag reaches the cluster through the
// OCIRepository's new artifact alone (apply-controller watches the kind once it meets it).
func TestOCIToCluster(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	c := bed.Env.Client
	defer dumpLogs(t)
	reg := ocitest.NewRegistry(nil)
	defer reg.Close()
	host := reg.Host
	d1 := pushManifests(g, host, "team/shop", "v1.0.0", app("from oci", false))

	g.Expect(c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "oci"}})).To(Succeed())
	src := &sourcev1.OCIRepository{
		ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "oci"},
		Spec: sourcev1.OCIRepositorySpec{
			URL: "oci://" + host + "/team/shop", Ref: &sourcev1.OCIRepositoryRef{SemVer: "1.x"},
			Insecure: true, Interval: metav1.Duration{Duration: time.Hour},
		},
	}
	g.Expect(c.Create(ctx, src)).To(Succeed())
	ks := &applyv1.Kustomization{
		ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "oci"},
		Spec: applyv1.KustomizationSpec{
			SourceRef:       applyv1.CrossNamespaceSourceReference{Kind: sourcev1.OCIRepositoryKind, Name: "shop"},
			Path:            "apps/web",
			TargetNamespace: "oci",
			Interval:        metav1.Duration{Duration: time.Hour},
			RetryInterval:   &metav1.Duration{Duration: time.Hour},
			Prune:           true,
			Wait:            true,
		},
	}
	g.Expect(c.Create(ctx, ks)).To(Succeed())
	applied := func(revision, greeting string) {
		t.Helper()
		g.Eventually(func(g Gomega) {
			g.Expect(c.Get(ctx, client.ObjectKeyFromObject(ks), ks)).To(Succeed())
			g.Expect(conditions.IsReady(ks)).To(BeTrue(), "Ready: %s", conditions.GetMessage(ks, meta.ReadyCondition))
			g.Expect(ks.Status.LastAppliedRevision).To(Equal(revision))
			cm := &corev1.ConfigMap{}
			g.Expect(c.Get(ctx, client.ObjectKey{Namespace: "oci", Name: "web"}, cm)).To(Succeed())
			g.Expect(cm.Data).To(HaveKeyWithValue("greeting", greeting))
		}, timeout, 200*time.Millisecond).Should(Succeed())
	}
	applied("v1.0.0@"+d1, "from oci")

	d2 := pushManifests(g, host, "team/shop", "v1.1.0", app("a new tag", false))
	request(g, src)
	applied("v1.1.0@"+d2, "a new tag")
}
