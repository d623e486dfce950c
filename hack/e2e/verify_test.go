//go:build e2e

package e2e

import (
	"context"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/shared/cosign"
	"github.com/plumb-dev/plumb/shared/reconcile"
	"github.com/plumb-dev/plumb/shared/testing/ocitest"
	"github.com/plumb-dev/plumb/shared/testing/signtest"
	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
)

// The tests of signature verification (issue 19) each run in namespaces of their own, in
// parallel with one another, against the controllers of TestMain. Every one follows a source to
// the cluster: a verified artifact is applied by a Kustomization (or released by a
// HelmRelease), and a refused one leaves the last verified artifact served and the cluster as
// it was.

// newVerifyNamespace creates a namespace with a Secret named trust holding data (none when data
// is nil).
func newVerifyNamespace(g *WithT, ns string, data map[string][]byte) {
	ctx := context.Background()
	g.Expect(bed.Env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	if data != nil {
		g.Expect(bed.Env.Client.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "trust", Namespace: ns}, Data: data})).To(Succeed())
	}
}

// trust is a reference to the Secret newVerifyNamespace makes.
var trust = &meta.LocalObjectReference{Name: "trust"}

// applyWeb creates a Kustomization web in the source's namespace that applies apps/web of the
// source there, retried only on request or on a new artifact.
func applyWeb(g *WithT, src client.Object, kind string) *applyv1.Kustomization {
	ks := &applyv1.Kustomization{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: src.GetNamespace()},
		Spec: applyv1.KustomizationSpec{
			SourceRef:       applyv1.CrossNamespaceSourceReference{Kind: kind, Name: src.GetName()},
			Path:            "apps/web",
			TargetNamespace: src.GetNamespace(),
			Interval:        metav1.Duration{Duration: time.Hour},
			RetryInterval:   &metav1.Duration{Duration: time.Hour},
			Prune:           true,
		},
	}
	g.Expect(bed.Env.Client.Create(context.Background(), ks)).To(Succeed())
	return ks
}

// greeting is the greeting of the ConfigMap web that app applies in ns, "" when there is none.
func greeting(g Gomega, ns string) string {
	cm := &corev1.ConfigMap{}
	err := bed.Env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "web"}, cm)
	if apierrors.IsNotFound(err) {
		return ""
	}
	g.Expect(err).NotTo(HaveOccurred())
	return cm.Data["greeting"]
}

// waitApplied waits until ks applied revision, with the ConfigMap web greeting as given.
func waitApplied(g *WithT, ks *applyv1.Kustomization, revision, want string) {
	g.Eventually(func(g Gomega) {
		g.Expect(bed.Env.Client.Get(context.Background(), client.ObjectKeyFromObject(ks), ks)).To(Succeed())
		g.Expect(conditions.IsReady(ks)).To(BeTrue(), "Ready: %s", conditions.GetMessage(ks, meta.ReadyCondition))
		g.Expect(ks.Status.LastAppliedRevision).To(Equal(revision))
		g.Expect(greeting(g, ks.Namespace)).To(Equal(want))
	}, timeout, 200*time.Millisecond).Should(Succeed())
}

// waitNothingApplied asks ks to reconcile and checks, once it did, that it waits for its source
// (SourceNotReady) and applied nothing: still revision (none when empty), the ConfigMap web
// greeting as before ("": absent).
func waitNothingApplied(g *WithT, ks *applyv1.Kustomization, revision, want string) {
	request(g, ks)
	g.Eventually(func(g Gomega) {
		g.Expect(bed.Env.Client.Get(context.Background(), client.ObjectKeyFromObject(ks), ks)).To(Succeed())
		g.Expect(ks.Status.LastHandledReconcileAt).NotTo(BeEmpty())
		g.Expect(ks.Annotations).To(HaveKeyWithValue(reconcile.RequestedAtAnnotation, ks.Status.LastHandledReconcileAt))
		g.Expect(conditions.GetReason(ks, meta.ReadyCondition)).To(Equal(applyv1.SourceNotReadyReason))
	}, timeout, 200*time.Millisecond).Should(Succeed())
	g.Expect(ks.Status.LastAppliedRevision).To(Equal(revision))
	g.Expect(greeting(g, ks.Namespace)).To(Equal(want))
}

// waitRefused waits until the source is Ready=False and SourceVerified=False with reason, its
// Ready message holding msg.
func waitRefused(g *WithT, src interface {
	client.Object
	conditions.Getter
}, reason, msg string) {
	g.Eventually(func(g Gomega) {
		g.Expect(bed.Env.Client.Get(context.Background(), client.ObjectKeyFromObject(src), src)).To(Succeed())
		g.Expect(conditions.GetReason(src, meta.ReadyCondition)).To(Equal(reason), "Ready: %s", conditions.GetMessage(src, meta.ReadyCondition))
		g.Expect(conditions.GetMessage(src, meta.ReadyCondition)).To(ContainSubstring(msg))
		g.Expect(conditions.IsFalse(src, sourcev1.SourceVerifiedCondition)).To(BeTrue())
		g.Expect(conditions.GetReason(src, sourcev1.SourceVerifiedCondition)).To(Equal(reason))
	}, timeout, 200*time.Millisecond).Should(Succeed())
}

// waitVerified waits until the source's SourceVerified condition is True and returns its
// message.
func waitVerified(g *WithT, src interface {
	client.Object
	conditions.Getter
}) string {
	g.Eventually(func(g Gomega) {
		g.Expect(bed.Env.Client.Get(context.Background(), client.ObjectKeyFromObject(src), src)).To(Succeed())
		g.Expect(conditions.IsTrue(src, sourcev1.SourceVerifiedCondition)).To(BeTrue(), "SourceVerified: %s", conditions.GetMessage(src, sourcev1.SourceVerifiedCondition))
	}, timeout, 200*time.Millisecond).Should(Succeed())
	return conditions.GetMessage(src, sourcev1.SourceVerifiedCondition)
}

// newOCIRepository creates an OCIRepository app in ns that follows repo (host/path) at tag and
// verifies it as given.
func newOCIRepository(g *WithT, ns, repo, tag string, verify *sourcev1.OCIArtifactVerification, labels map[string]string) *sourcev1.OCIRepository {
	src := &sourcev1.OCIRepository{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: ns, Labels: labels},
		Spec: sourcev1.OCIRepositorySpec{
			URL: "oci://" + repo, Ref: &sourcev1.OCIRepositoryRef{Tag: tag},
			Insecure: true, Interval: metav1.Duration{Duration: time.Hour},
			Verify: verify,
		},
	}
	g.Expect(bed.Env.Client.Create(context.Background(), src)).To(Succeed())
	return src
}

// The signed flow with Plumb's tools alone, through the built controllers: `plumb push artifact
// --sign-key` pushes and signs a folder, an OCIRepository verifies the cosign signature with the
// team's public key, a Kustomization applies it, and `plumb get sources --verified` lists it with
// its signer. When the tag moves to an artifact pushed without --sign-key, the OCIRepository
// refuses it and the cluster keeps what was applied (nothing applied, nothing pruned).
func TestVerifiedOCIToCluster(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	defer dumpLogs(t)
	plumb := plumbCLI(g)
	reg := ocitest.NewRegistry(nil)
	defer reg.Close()
	key, err := cosign.NewKey()
	g.Expect(err).NotTo(HaveOccurred())
	keyPEM, err := key.PrivatePEM()
	g.Expect(err).NotTo(HaveOccurred())
	keyFile := filepath.Join(t.TempDir(), "cosign.key")
	g.Expect(os.WriteFile(keyFile, keyPEM, 0o600)).To(Succeed())
	url := "oci://" + reg.Host + "/team/shop:stable"
	// push runs plumb push artifact on files and returns the digest it prints last.
	push := func(files map[string]string, args ...string) string {
		dir := t.TempDir()
		for name, content := range files {
			g.Expect(os.MkdirAll(filepath.Join(dir, filepath.Dir(name)), 0o755)).To(Succeed())
			g.Expect(os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644)).To(Succeed())
		}
		out, ok := plumb(append([]string{"push", "artifact", dir, url}, args...)...)
		g.Expect(ok).To(BeTrue(), out)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		return lines[len(lines)-1]
	}
	signed := push(app("signed", true), "--sign-key", keyFile)
	g.Expect(signed).To(HavePrefix("sha256:"))

	const ns = "verified"
	newVerifyNamespace(g, ns, map[string][]byte{"cosign.pub": key.PublicPEM()})
	src := newOCIRepository(g, ns, reg.Host+"/team/shop", "stable", &sourcev1.OCIArtifactVerification{Provider: "cosign", SecretRef: trust}, nil)
	ks := applyWeb(g, src, sourcev1.OCIRepositoryKind)
	waitApplied(g, ks, "stable@"+signed, "signed")
	g.Expect(waitVerified(g, src)).To(HavePrefix("verified signature of revision stable@" + signed + " by cosign key cosign.pub"))
	out, ok := plumb("get", "sources", "-n", ns, "--verified")
	g.Expect(ok).To(BeTrue(), out)
	g.Expect(out).To(MatchRegexp(`OCIRepository/app\s+True\s.*cosign key cosign\.pub \(SHA256:`))
	service := func() error {
		return bed.Env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "web"}, &corev1.Service{})
	}
	g.Expect(service()).To(Succeed())

	// The tag moves to an unsigned artifact without the Service: refused by source-controller.
	unsigned := push(app("unsigned", false))
	request(g, src)
	waitRefused(g, src, sourcev1.VerificationErrorReason, "no cosign signature of "+unsigned)
	g.Expect(src.Status.Artifact.Revision).To(Equal("stable@"+signed), "the last verified artifact stays served")
	out, ok = plumb("get", "sources", "-n", ns, "--verified")
	g.Expect(ok).To(BeTrue(), out)
	g.Expect(out).NotTo(ContainSubstring("OCIRepository/app"), "no longer verified")

	// The Kustomization, asked to reconcile, applies nothing and prunes nothing.
	waitNothingApplied(g, ks, "stable@"+signed, "signed")
	g.Expect(service()).To(Succeed(), "the Service, absent from the refused artifact, is not pruned")
}

// The other ways an OCIRepository verifies, each row a namespace of its own: cosign keyless (a
// certificate of a CI identity from a private Sigstore instance's CA, checked against its
// trusted_root.json and matchOIDCIdentity) and notation (a trust policy and a CA certificate).
// A verified artifact is applied; a refused one is never published, so nothing is applied.
func TestVerifiedOCIProviders(t *testing.T) {
	t.Parallel()
	reg := ocitest.NewRegistry(nil)
	t.Cleanup(reg.Close) // after the parallel rows
	ca, err := signtest.NewCA()
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
	trustedRoot, err := ca.TrustedRoot()
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	const issuer = "https://token.actions.example.test"
	const subject = "https://git.example.test/team/app/.github/workflows/release.yml@refs/tags/v1"
	keyless := func(g *WithT, repo, digest string) {
		leaf, key, err := ca.Leaf(issuer, subject, time.Now().Add(-time.Minute), time.Now().Add(time.Hour))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(cosign.Sign(repo, digest, []cosign.Signature{{Key: key, Certificate: leaf}})).To(Succeed())
	}
	notation := func(ca *signtest.CA) func(g *WithT, repo, digest string) {
		return func(g *WithT, repo, digest string) {
			cert, key, err := ca.CodeSigning("release signer", time.Now().Add(-time.Minute), time.Now().Add(time.Hour))
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(ca.NotationSign(repo, digest, cert, key)).To(Succeed())
		}
	}
	otherCA, err := signtest.NewCA()
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	notationTrust := map[string][]byte{sourcev1.NotationTrustPolicyKey: []byte(signtest.NotationTrustPolicy), "ca.crt": caPEM}

	for _, row := range []struct {
		name   string
		sign   func(g *WithT, repo, digest string)
		trust  map[string][]byte
		verify *sourcev1.OCIArtifactVerification
		// verified is the SourceVerified message after the revision; refused, when set, is a
		// part of the Ready message of the refusal.
		verified, refused string
	}{{
		name: "cosign-keyless", sign: keyless, trust: map[string][]byte{sourcev1.TrustedRootKey: trustedRoot},
		verify: &sourcev1.OCIArtifactVerification{Provider: "cosign", TrustedRootSecretRef: trust, MatchOIDCIdentity: []sourcev1.OIDCIdentityMatch{
			{Issuer: `^https://token\.actions\.example\.test$`, Subject: `^https://git\.example\.test/team/app/\.github/workflows/release\.yml@refs/tags/v.*$`}}},
		verified: " by certificate of issuer " + issuer + ", subject " + subject,
	}, {
		name: "cosign-keyless-another-identity", sign: keyless, trust: map[string][]byte{sourcev1.TrustedRootKey: trustedRoot},
		verify: &sourcev1.OCIArtifactVerification{Provider: "cosign", TrustedRootSecretRef: trust, MatchOIDCIdentity: []sourcev1.OIDCIdentityMatch{
			{Issuer: `^https://token\.actions\.example\.test$`, Subject: `^https://git\.example\.test/team/other/`}}},
		refused: `its certificate identity (issuer "` + issuer + `", subject "` + subject + `") matches no matchOIDCIdentity entry`,
	}, {
		name: "notation", sign: notation(ca), trust: notationTrust,
		verify:   &sourcev1.OCIArtifactVerification{Provider: "notation", SecretRef: trust},
		verified: ` by notation certificate "CN=release signer`,
	}, {
		name: "notation-another-ca", sign: notation(otherCA), trust: notationTrust,
		verify:  &sourcev1.OCIArtifactVerification{Provider: "notation", SecretRef: trust},
		refused: "the signature's certificate chain does not contain any trusted certificate",
	}} {
		t.Run(row.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			defer dumpLogs(t)
			ns := "verify-" + row.name
			repo := reg.Host + "/team/" + row.name
			digest := pushManifests(g, reg.Host, "team/"+row.name, "v1", app(row.name, false))
			row.sign(g, repo, digest)
			newVerifyNamespace(g, ns, row.trust)
			src := newOCIRepository(g, ns, repo, "v1", row.verify, nil)
			ks := applyWeb(g, src, sourcev1.OCIRepositoryKind)
			if row.refused == "" {
				waitApplied(g, ks, "v1@"+digest, row.name)
				g.Expect(waitVerified(g, src)).To(HavePrefix("verified signature of revision v1@" + digest + row.verified))
				return
			}
			waitRefused(g, src, sourcev1.VerificationErrorReason, row.refused)
			g.Expect(conditions.GetMessage(src, meta.ReadyCondition)).To(ContainSubstring(digest))
			g.Expect(src.Status.Artifact).To(BeNil(), "nothing published")
			waitNothingApplied(g, ks, "", "")
		})
	}
}

// --require-verification=OCIRepository, a platform team's policy, in a source-controller of its
// own that reconciles only this test's sources (by --watch-label-selector; the shared one
// leaves them alone): an OCIRepository without spec.verify is Stalled with VerificationRequired
// and nothing is applied, while a verified one in the same cluster flows as usual.
func TestRequireVerificationToCluster(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	const name = "source-controller-require-verification"
	shard := map[string]string{sourceShardLabel: "require-verification"}
	p, err := bed.StartSourceControllerAs(name, "--require-verification=OCIRepository", "--watch-label-selector="+sourceShardLabel+"=require-verification")
	g.Expect(err).NotTo(HaveOccurred())
	defer p.Stop()
	defer dumpLogs(t, name)
	reg := ocitest.NewRegistry(nil)
	defer reg.Close()
	key, err := cosign.NewKey()
	g.Expect(err).NotTo(HaveOccurred())
	repo := reg.Host + "/team/app"
	digest := pushManifests(g, reg.Host, "team/app", "v1", app("required", false))
	g.Expect(cosign.Sign(repo, digest, []cosign.Signature{{Key: key.Private}})).To(Succeed())

	// The same signed artifact, once without spec.verify: refused by the policy.
	newVerifyNamespace(g, "require-unverified", nil)
	unverified := newOCIRepository(g, "require-unverified", repo, "v1", nil, shard)
	unverifiedKs := applyWeb(g, unverified, sourcev1.OCIRepositoryKind)
	g.Eventually(func(g Gomega) {
		g.Expect(bed.Env.Client.Get(context.Background(), client.ObjectKeyFromObject(unverified), unverified)).To(Succeed())
		g.Expect(conditions.IsStalled(unverified)).To(BeTrue(), "Ready: %s", conditions.GetMessage(unverified, meta.ReadyCondition))
		g.Expect(conditions.GetReason(unverified, meta.StalledCondition)).To(Equal(sourcev1.VerificationRequiredReason))
		g.Expect(conditions.GetReason(unverified, meta.ReadyCondition)).To(Equal(sourcev1.VerificationRequiredReason))
		g.Expect(conditions.GetReason(unverified, sourcev1.SourceVerifiedCondition)).To(Equal(sourcev1.VerificationRequiredReason))
	}, timeout, 200*time.Millisecond).Should(Succeed())
	g.Expect(conditions.GetMessage(unverified, meta.ReadyCondition)).To(ContainSubstring("--require-verification includes OCIRepository"))
	g.Expect(unverified.Status.Artifact).To(BeNil(), "nothing fetched or published")
	waitNothingApplied(g, unverifiedKs, "", "")

	// With spec.verify: verified by the same controller and applied.
	newVerifyNamespace(g, "require-verified", map[string][]byte{"cosign.pub": key.PublicPEM()})
	verified := newOCIRepository(g, "require-verified", repo, "v1", &sourcev1.OCIArtifactVerification{Provider: "cosign", SecretRef: trust}, shard)
	ks := applyWeb(g, verified, sourcev1.OCIRepositoryKind)
	waitApplied(g, ks, "v1@"+digest, "required")
	g.Expect(waitVerified(g, verified)).To(HavePrefix("verified signature of revision v1@" + digest + " by cosign key cosign.pub"))
}
