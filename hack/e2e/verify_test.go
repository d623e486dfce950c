//go:build e2e

package e2e

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/shared/reconcile"
	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
)

// cosignSign pushes the signature tag of digest in host/repo as `cosign sign --key` does: the
// simple signing payload as the layer, its ECDSA signature in base64 as an annotation.
func cosignSign(g *WithT, key *ecdsa.PrivateKey, host, repo, digest string) {
	payload := fmt.Appendf(nil, `{"critical":{"identity":{"docker-reference":%q},"image":{"docker-manifest-digest":%q},"type":"cosign container image signature"},"optional":null}`,
		host+"/"+repo, digest)
	sum := sha256.Sum256(payload)
	sig, err := key.Sign(rand.Reader, sum[:], crypto.SHA256)
	g.Expect(err).NotTo(HaveOccurred())
	img, err := mutate.Append(mutate.MediaType(empty.Image, types.OCIManifestSchema1), mutate.Addendum{
		Layer:       static.NewLayer(payload, "application/vnd.dev.cosign.simplesigning.v1+json"),
		Annotations: map[string]string{"dev.cosignproject.cosign/signature": base64.StdEncoding.EncodeToString(sig)},
	})
	g.Expect(err).NotTo(HaveOccurred())
	h, err := v1.NewHash(digest)
	g.Expect(err).NotTo(HaveOccurred())
	ref, err := name.ParseReference(host+"/"+repo+":"+h.Algorithm+"-"+h.Hex+".sig", name.Insecure)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(remote.Write(ref, img)).To(Succeed())
}

// A signed flow through the built controllers: an OCIRepository verifies the cosign signature of
// its artifact with the team's public key and a Kustomization applies it; when the tag moves to
// an unsigned artifact, the OCIRepository refuses it and the cluster keeps what was applied
// (nothing applied, nothing pruned).
func TestVerifiedOCIToCluster(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	c := bed.Env.Client
	defer dumpLogs(t)
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer reg.Close()
	host := strings.TrimPrefix(reg.URL, "http://")
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	g.Expect(err).NotTo(HaveOccurred())
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	g.Expect(err).NotTo(HaveOccurred())

	signed := pushManifests(g, host, "team/shop", "stable", app("signed", true))
	cosignSign(g, key, host, "team/shop", signed)

	const ns = "verified"
	g.Expect(c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	g.Expect(c.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "cosign-keys", Namespace: ns},
		Data:       map[string][]byte{"cosign.pub": pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})},
	})).To(Succeed())
	src := &sourcev1.OCIRepository{
		ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: ns},
		Spec: sourcev1.OCIRepositorySpec{
			URL: "oci://" + host + "/team/shop", Ref: &sourcev1.OCIRepositoryRef{Tag: "stable"},
			Insecure: true, Interval: metav1.Duration{Duration: time.Hour},
			Verify: &sourcev1.OCIArtifactVerification{Provider: "cosign", SecretRef: &meta.LocalObjectReference{Name: "cosign-keys"}},
		},
	}
	g.Expect(c.Create(ctx, src)).To(Succeed())
	ks := &applyv1.Kustomization{
		ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: ns},
		Spec: applyv1.KustomizationSpec{
			SourceRef:       applyv1.CrossNamespaceSourceReference{Kind: sourcev1.OCIRepositoryKind, Name: "shop"},
			Path:            "apps/web",
			TargetNamespace: ns,
			Interval:        metav1.Duration{Duration: time.Hour},
			RetryInterval:   &metav1.Duration{Duration: time.Hour},
			Prune:           true,
		},
	}
	g.Expect(c.Create(ctx, ks)).To(Succeed())
	applied := func(g Gomega) {
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(ks), ks)).To(Succeed())
		g.Expect(ks.Status.LastAppliedRevision).To(Equal("stable@" + signed))
		cm := &corev1.ConfigMap{}
		g.Expect(c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web"}, cm)).To(Succeed())
		g.Expect(cm.Data).To(HaveKeyWithValue("greeting", "signed"))
		g.Expect(c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web"}, &corev1.Service{})).To(Succeed())
	}
	g.Eventually(func(g Gomega) {
		applied(g)
		g.Expect(conditions.IsReady(ks)).To(BeTrue(), "Ready: %s", conditions.GetMessage(ks, meta.ReadyCondition))
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(src), src)).To(Succeed())
		g.Expect(conditions.GetMessage(src, sourcev1.SourceVerifiedCondition)).To(HavePrefix("verified signature of revision stable@" + signed + " by cosign key cosign.pub"))
	}, timeout, 200*time.Millisecond).Should(Succeed())

	// The tag moves to an unsigned artifact without the Service: refused by source-controller.
	unsigned := pushManifests(g, host, "team/shop", "stable", app("unsigned", false))
	request(g, src)
	g.Eventually(func(g Gomega) {
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(src), src)).To(Succeed())
		g.Expect(conditions.GetReason(src, meta.ReadyCondition)).To(Equal(sourcev1.VerificationErrorReason))
		g.Expect(conditions.GetMessage(src, meta.ReadyCondition)).To(ContainSubstring("no cosign signature of " + unsigned))
	}, timeout, 200*time.Millisecond).Should(Succeed())
	g.Expect(src.Status.Artifact.Revision).To(Equal("stable@"+signed), "the last verified artifact stays served")

	// The Kustomization, asked to reconcile, applies nothing and prunes nothing.
	request(g, ks)
	g.Eventually(func(g Gomega) {
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(ks), ks)).To(Succeed())
		g.Expect(ks.Status.LastHandledReconcileAt).NotTo(BeEmpty())
		g.Expect(ks.Annotations).To(HaveKeyWithValue(reconcile.RequestedAtAnnotation, ks.Status.LastHandledReconcileAt))
	}, timeout, 200*time.Millisecond).Should(Succeed())
	applied(g)
	g.Expect(conditions.GetReason(ks, meta.ReadyCondition)).To(Equal(applyv1.SourceNotReadyReason))
}
