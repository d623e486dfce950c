package controller

import (
	"context"
	"encoding/pem"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/plumb-dev/plumb/shared/cosign"
	"github.com/plumb-dev/plumb/shared/testing/ocitest"
	"github.com/plumb-dev/plumb/shared/testing/signtest"
	"github.com/plumb-dev/plumb/shared/testing/testenv"
	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/source-controller/internal/oci"
	"github.com/plumb-dev/plumb/source-controller/internal/verify"
)

// countSignatureReads counts the GETs of cosign signature tags.
func countSignatureReads(n *atomic.Int64) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/manifests/") && strings.HasSuffix(r.URL.Path, ".sig") {
				n.Add(1)
			}
			next.ServeHTTP(w, r)
		})
	}
}

func newVerifySecret(t *testing.T, ns string, data map[string][]byte) string {
	t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{GenerateName: "verify-", Namespace: ns}, Data: data}
	if err := k8s.Create(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	return s.Name
}

// waitVerified waits until SourceVerified=True and returns its message.
func waitVerified(g *WithT, obj sourceObject) string {
	var msg string
	g.Eventually(func(g Gomega) {
		get(g, obj)
		g.Expect(conditions.IsTrue(obj, sourcev1.SourceVerifiedCondition)).To(BeTrue(), "SourceVerified: %v", conditions.GetMessage(obj, sourcev1.SourceVerifiedCondition))
		msg = conditions.GetMessage(obj, sourcev1.SourceVerifiedCondition)
	}, timeout, 100*time.Millisecond).Should(Succeed())
	return msg
}

func TestOCIRepository_VerifyCosignKeyed(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	var sigReads atomic.Int64
	reg := newRegistry(t, countSignatureReads(&sigReads))
	repo := reg.Host + "/org/app"
	key, err := cosign.NewKey()
	g.Expect(err).NotTo(HaveOccurred())
	other, err := cosign.NewKey()
	g.Expect(err).NotTo(HaveOccurred())

	d1 := pushFiles(t, reg.Host, "org/app", "stable", map[string]string{"cm.yaml": "kind: ConfigMap\n"})
	g.Expect(cosign.Sign(repo, d1, []cosign.Signature{{Key: key.Private}})).To(Succeed())
	keys := newVerifySecret(t, ns, map[string][]byte{"cosign.pub": key.PublicPEM(), "README": []byte("not a key")})
	obj := newOCIRepository(ns, "oci://"+repo, func(o *sourcev1.OCIRepository) {
		o.Spec.Ref = &sourcev1.OCIRepositoryRef{Tag: "stable"}
		o.Spec.Verify = &sourcev1.OCIArtifactVerification{Provider: "cosign", SecretRef: &meta.LocalObjectReference{Name: keys}}
	})
	create(g, obj)
	waitReady(g, obj, "stable@"+d1)
	g.Expect(waitVerified(g, obj)).To(HavePrefix("verified signature of revision stable@" + d1 + " by cosign key cosign.pub (SHA256:"))
	last := *obj.Status.Artifact

	// A no-op reconcile verifies nothing: the signature is not read again.
	reads := sigReads.Load()
	g.Expect(reads).To(BeNumerically(">", 0))
	v := requestReconcile(g, obj)
	g.Eventually(func(g Gomega) {
		g.Expect(get(g, obj).Status.LastHandledReconcileAt).To(Equal(v))
	}, timeout, 50*time.Millisecond).Should(Succeed())
	g.Expect(sigReads.Load()).To(Equal(reads), "a verified digest is cached")
	g.Expect(conditions.IsTrue(obj, sourcev1.SourceVerifiedCondition)).To(BeTrue())

	// The tag moves to an unsigned artifact: refused, the last verified artifact still served.
	d2 := pushFiles(t, reg.Host, "org/app", "stable", map[string]string{"cm.yaml": "kind: Secret\n"})
	requestReconcile(g, obj)
	msg := waitFailed(g, obj, sourcev1.VerificationErrorReason)
	g.Expect(msg).To(ContainSubstring("no cosign signature of " + d2))
	g.Expect(obj.Status.Artifact).To(Equal(&last))
	g.Expect(files(g, &last)).To(Equal(map[string]string{"cm.yaml": "kind: ConfigMap\n"}))
	g.Expect(conditions.IsFalse(obj, sourcev1.SourceVerifiedCondition)).To(BeTrue())
	g.Expect(conditions.GetReason(obj, sourcev1.SourceVerifiedCondition)).To(Equal(sourcev1.VerificationErrorReason))
	g.Expect(conditions.IsReconciling(obj)).To(BeTrue(), "retried")

	// Signed by another key: refused too.
	g.Expect(cosign.Sign(repo, d2, []cosign.Signature{{Key: other.Private}})).To(Succeed())
	requestReconcile(g, obj)
	g.Eventually(func(g Gomega) {
		g.Expect(conditions.GetMessage(get(g, obj), meta.ReadyCondition)).To(ContainSubstring("signed by another key"))
	}, timeout, 100*time.Millisecond).Should(Succeed())
	g.Expect(obj.Status.Artifact).To(Equal(&last))

	// Signed by the trusted key: published.
	g.Expect(cosign.Sign(repo, d2, []cosign.Signature{{Key: key.Private}})).To(Succeed())
	requestReconcile(g, obj)
	waitReady(g, obj, "stable@"+d2)
	g.Expect(files(g, obj.Status.Artifact)).To(Equal(map[string]string{"cm.yaml": "kind: Secret\n"}))

	// Removing spec.verify removes the condition.
	update(g, obj, func() {
		obj.Spec.Verify = nil
	})
	g.Eventually(func(g Gomega) {
		get(g, obj)
		g.Expect(observedGeneration(obj)).To(Equal(obj.Generation))
		g.Expect(conditions.Get(obj, sourcev1.SourceVerifiedCondition)).To(BeNil())
	}, timeout, 100*time.Millisecond).Should(Succeed())

	cases := []struct {
		name   string
		verify *sourcev1.OCIArtifactVerification
		reason string
		msg    string
	}{
		{"missing Secret", &sourcev1.OCIArtifactVerification{Provider: "cosign", SecretRef: &meta.LocalObjectReference{Name: "absent"}},
			sourcev1.VerificationErrorReason, "Secret " + ns + "/absent (secretRef) not found"},
		{"Secret without keys", &sourcev1.OCIArtifactVerification{Provider: "cosign", SecretRef: &meta.LocalObjectReference{Name: newVerifySecret(t, ns, map[string][]byte{"key": []byte("x")})}},
			sourcev1.VerificationErrorReason, "has no cosign public key (a key ending in .pub)"},
		{"bad identity regexp", &sourcev1.OCIArtifactVerification{Provider: "cosign", MatchOIDCIdentity: []sourcev1.OIDCIdentityMatch{{Issuer: "(", Subject: ".*"}}},
			sourcev1.InvalidSpecReason, `matchOIDCIdentity[0].issuer "(" is not a regular expression`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := NewWithT(t)
			o := newOCIRepository(ns, "oci://"+repo, func(o *sourcev1.OCIRepository) {
				o.Spec.Ref = &sourcev1.OCIRepositoryRef{Digest: d1}
				o.Spec.Verify = c.verify
			})
			create(g, o)
			g.Expect(waitFailed(g, o, c.reason)).To(ContainSubstring(c.msg))
			g.Expect(o.Status.Artifact).To(BeNil(), "nothing published")
		})
	}
}

func TestOCIRepository_VerifyCosignKeyless(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	reg := newRegistry(t, nil)
	repo := reg.Host + "/org/app"
	ca, err := signtest.NewCA()
	g.Expect(err).NotTo(HaveOccurred())
	trusted, err := ca.TrustedRoot()
	g.Expect(err).NotTo(HaveOccurred())
	const issuer = "https://token.actions.example.test"
	const subject = "https://git.example.test/org/app/.github/workflows/release.yml@refs/tags/v1"
	leaf, leafKey, err := ca.Leaf(issuer, subject, time.Now().Add(-time.Minute), time.Now().Add(time.Hour))
	g.Expect(err).NotTo(HaveOccurred())
	d := pushFiles(t, reg.Host, "org/app", "v1", map[string]string{"cm.yaml": "kind: ConfigMap\n"})
	g.Expect(cosign.Sign(repo, d, []cosign.Signature{{Key: leafKey, Certificate: leaf}})).To(Succeed())
	root := newVerifySecret(t, ns, map[string][]byte{sourcev1.TrustedRootKey: trusted})

	obj := newOCIRepository(ns, "oci://"+repo, func(o *sourcev1.OCIRepository) {
		o.Spec.Ref = &sourcev1.OCIRepositoryRef{Tag: "v1"}
		o.Spec.Verify = &sourcev1.OCIArtifactVerification{Provider: "cosign", TrustedRootSecretRef: &meta.LocalObjectReference{Name: root},
			MatchOIDCIdentity: []sourcev1.OIDCIdentityMatch{{Issuer: `^https://token\.actions\.example\.test$`, Subject: `^https://git\.example\.test/org/app/`}}}
	})
	create(g, obj)
	waitReady(g, obj, "v1@"+d)
	g.Expect(waitVerified(g, obj)).To(Equal("verified signature of revision v1@" + d + " by certificate of issuer " + issuer + ", subject " + subject))

	wrong := newOCIRepository(ns, "oci://"+repo, func(o *sourcev1.OCIRepository) {
		o.Spec.Ref = &sourcev1.OCIRepositoryRef{Tag: "v1"}
		o.Spec.Verify = &sourcev1.OCIArtifactVerification{Provider: "cosign", TrustedRootSecretRef: &meta.LocalObjectReference{Name: root},
			MatchOIDCIdentity: []sourcev1.OIDCIdentityMatch{{Issuer: ".*", Subject: `^https://git\.example\.test/org/other/`}}}
	})
	create(g, wrong)
	g.Expect(waitFailed(g, wrong, sourcev1.VerificationErrorReason)).To(ContainSubstring("matches no matchOIDCIdentity entry"))
	g.Expect(wrong.Status.Artifact).To(BeNil())
}

func TestHelmChart_VerifyCosignFromOCIHelmRepository(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	var sigReads atomic.Int64
	reg := newRegistry(t, countSignatureReads(&sigReads))
	pushChart(t, reg.Host+"/charts/web", "1.0.0", "1.1.0")
	ref, err := name.ParseReference(reg.Host+"/charts/web:1.0.0", name.Insecure)
	g.Expect(err).NotTo(HaveOccurred())
	head, err := remote.Head(ref)
	g.Expect(err).NotTo(HaveOccurred())
	signed := head.Digest.String()
	key, err := cosign.NewKey()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cosign.Sign(reg.Host+"/charts/web", signed, []cosign.Signature{{Key: key.Private}})).To(Succeed())
	keys := newVerifySecret(t, ns, map[string][]byte{"cosign.pub": key.PublicPEM()})
	repo := newHelmRepository(ns, "oci://"+reg.Host+"/charts", "")
	repo.Spec.Type, repo.Spec.Insecure = sourcev1.HelmRepositoryTypeOCI, true
	create(g, repo)
	verifyKeys := &sourcev1.OCIArtifactVerification{Provider: "cosign", SecretRef: &meta.LocalObjectReference{Name: keys}}

	obj := newHelmChart(ns, "web", sourcev1.HelmRepositoryKind, repo.Name, func(c *sourcev1.HelmChart) {
		c.Spec.Version = "1.0.0"
		c.Spec.Verify = verifyKeys
	})
	create(g, obj)
	waitReady(g, obj, "1.0.0")
	g.Expect(waitVerified(g, obj)).To(HavePrefix("verified signature of revision 1.0.0@" + signed + " by cosign key cosign.pub"))
	reads := sigReads.Load()
	v := requestReconcile(g, obj)
	g.Eventually(func(g Gomega) {
		g.Expect(get(g, obj).Status.LastHandledReconcileAt).To(Equal(v))
	}, timeout, 50*time.Millisecond).Should(Succeed())
	g.Expect(sigReads.Load()).To(Equal(reads), "a verified digest is cached")

	// 1.x picks the unsigned 1.1.0: refused, nothing packaged.
	unsigned := newHelmChart(ns, "web", sourcev1.HelmRepositoryKind, repo.Name, func(c *sourcev1.HelmChart) {
		c.Spec.Version = "1.x"
		c.Spec.Verify = verifyKeys
	})
	create(g, unsigned)
	g.Expect(waitFailed(g, unsigned, sourcev1.VerificationErrorReason)).To(ContainSubstring("no cosign signature of sha256:"))
	g.Expect(unsigned.Status.Artifact).To(BeNil())
	g.Expect(conditions.GetReason(unsigned, sourcev1.SourceVerifiedCondition)).To(Equal(sourcev1.VerificationErrorReason))
}

func TestOCIRepository_VerifyNotation(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	reg := newRegistry(t, nil)
	repo := reg.Host + "/org/app"
	ca, err := signtest.NewCA()
	g.Expect(err).NotTo(HaveOccurred())
	cert, key, err := ca.CodeSigning("release signer", time.Now().Add(-time.Minute), time.Now().Add(time.Hour))
	g.Expect(err).NotTo(HaveOccurred())
	signed := pushFiles(t, reg.Host, "org/app", "v1", map[string]string{"cm.yaml": "kind: ConfigMap\n"})
	g.Expect(ca.NotationSign(repo, signed, cert, key)).To(Succeed())
	unsigned := pushFiles(t, reg.Host, "org/app", "v2", map[string]string{"cm.yaml": "kind: Secret\n"})
	trust := newVerifySecret(t, ns, map[string][]byte{
		sourcev1.NotationTrustPolicyKey: []byte(signtest.NotationTrustPolicy),
		"ca.crt":                        pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw}),
	})
	notation := &sourcev1.OCIArtifactVerification{Provider: "notation", SecretRef: &meta.LocalObjectReference{Name: trust}}

	obj := newOCIRepository(ns, "oci://"+repo, func(o *sourcev1.OCIRepository) {
		o.Spec.Ref = &sourcev1.OCIRepositoryRef{Tag: "v1"}
		o.Spec.Verify = notation
	})
	create(g, obj)
	waitReady(g, obj, "v1@"+signed)
	g.Expect(waitVerified(g, obj)).To(HavePrefix("verified signature of revision v1@" + signed + ` by notation certificate "CN=release signer`))

	refused := newOCIRepository(ns, "oci://"+repo, func(o *sourcev1.OCIRepository) {
		o.Spec.Ref = &sourcev1.OCIRepositoryRef{Tag: "v2"}
		o.Spec.Verify = notation
	})
	create(g, refused)
	g.Expect(waitFailed(g, refused, sourcev1.VerificationErrorReason)).To(ContainSubstring("no notation signature of " + unsigned))
	g.Expect(refused.Status.Artifact).To(BeNil())

	noSecret := newOCIRepository(ns, "oci://"+repo, func(o *sourcev1.OCIRepository) {
		o.Spec.Ref = &sourcev1.OCIRepositoryRef{Tag: "v1"}
		o.Spec.Verify = &sourcev1.OCIArtifactVerification{Provider: "notation"}
	})
	create(g, noSecret)
	g.Expect(waitFailed(g, noSecret, sourcev1.InvalidSpecReason)).To(ContainSubstring("notation verification needs a secretRef"))
}

// The Debian docker-registry (distribution) with credentials: the cosign signature tag and the
// notation referrers (through the referrers tag schema, as distribution 2.x has no referrers
// API) are read with the OCIRepository's credentials.
func TestOCIRepository_VerifyOnDistribution(t *testing.T) {
	g := NewWithT(t)
	reg, err := ocitest.StartDistribution(t.TempDir(), ociUser, ociPassword)
	if errors.Is(err, ocitest.ErrNoDistribution) {
		testenv.MissingTool(t, "docker-registry", err)
	}
	g.Expect(err).NotTo(HaveOccurred())
	defer reg.Stop()
	ns := newNamespace(t)
	auth := remote.WithAuth(authn.FromConfig(authn.AuthConfig{Username: ociUser, Password: ociPassword}))
	repo := reg.Host + "/team/app"
	key, err := cosign.NewKey()
	g.Expect(err).NotTo(HaveOccurred())
	ca, err := signtest.NewCA()
	g.Expect(err).NotTo(HaveOccurred())
	cert, certKey, err := ca.CodeSigning("release signer", time.Now().Add(-time.Minute), time.Now().Add(time.Hour))
	g.Expect(err).NotTo(HaveOccurred())
	d := pushFiles(t, reg.Host, "team/app", "v1", map[string]string{"cm.yaml": "kind: ConfigMap\n"}, auth)
	g.Expect(cosign.Sign(repo, d, []cosign.Signature{{Key: key.Private}}, auth)).To(Succeed())
	g.Expect(ca.NotationSign(repo, d, cert, certKey, auth)).To(Succeed())
	creds := dockerConfigSecret(t, ns, reg.Host, ociUser, ociPassword)

	verifications := map[string]*sourcev1.OCIArtifactVerification{
		"cosign": {Provider: "cosign", SecretRef: &meta.LocalObjectReference{Name: newVerifySecret(t, ns, map[string][]byte{"cosign.pub": key.PublicPEM()})}},
		"notation": {Provider: "notation", SecretRef: &meta.LocalObjectReference{Name: newVerifySecret(t, ns, map[string][]byte{
			sourcev1.NotationTrustPolicyKey: []byte(signtest.NotationTrustPolicy),
			"ca.pem":                        pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw}),
		})}},
	}
	for provider, v := range verifications {
		obj := newOCIRepository(ns, "oci://"+repo, func(o *sourcev1.OCIRepository) {
			o.Spec.Ref = &sourcev1.OCIRepositoryRef{Tag: "v1"}
			o.Spec.SecretRef = &meta.LocalObjectReference{Name: creds}
			o.Spec.Verify = v
		})
		create(g, obj)
		waitReady(g, obj, "v1@"+d)
		g.Expect(waitVerified(g, obj)).To(ContainSubstring(" by "+map[string]string{"cosign": "cosign key cosign.pub", "notation": "notation certificate"}[provider]), provider)
	}
}

// secretReads counts the Secrets read through a client.
type secretReads struct {
	client.Reader
	n atomic.Int64
}

func (r *secretReads) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if _, ok := obj.(*corev1.Secret); ok {
		r.n.Add(1)
	}
	return r.Reader.Get(ctx, key, obj, opts...)
}

// TestVerifyArtifact_SecretsReadAgainOnRequest: a digest verified with an unchanged spec.verify
// is taken as verified without reading its Secret (a no-op reconcile makes no request), until a
// reconcile request reads the Secret again, which makes a key removed from it take effect.
func TestVerifyArtifact_SecretsReadAgainOnRequest(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	reg := newRegistry(t, nil)
	repo := reg.Host + "/org/recheck"
	key, err := cosign.NewKey()
	g.Expect(err).NotTo(HaveOccurred())
	other, err := cosign.NewKey()
	g.Expect(err).NotTo(HaveOccurred())
	d := pushFiles(t, reg.Host, "org/recheck", "v1", map[string]string{"cm.yaml": "kind: ConfigMap\n"})
	g.Expect(cosign.Sign(repo, d, []cosign.Signature{{Key: key.Private}})).To(Succeed())
	name := newVerifySecret(t, ns, map[string][]byte{"cosign.pub": key.PublicPEM()})
	spec := &sourcev1.OCIArtifactVerification{Provider: "cosign", SecretRef: &meta.LocalObjectReference{Name: name}}
	remote, err := oci.NewRemote("oci://"+repo, oci.Credentials{Insecure: true})
	g.Expect(err).NotTo(HaveOccurred())
	reads := &secretReads{Reader: k8s}
	cache := verify.NewCache(10)

	_, err = verifyArtifact(ctx, reads, cache, ns, false, spec, remote, d)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(reads.n.Load()).To(Equal(int64(1)))
	_, err = verifyArtifact(ctx, reads, cache, ns, false, spec, remote, d)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(reads.n.Load()).To(Equal(int64(1)), "a no-op verification reads no Secret")

	// The trusted key is replaced: a reconcile request reads the Secret and refuses the digest.
	sec := &corev1.Secret{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, sec)).To(Succeed())
	sec.Data = map[string][]byte{"cosign.pub": other.PublicPEM()}
	g.Expect(k8s.Update(ctx, sec)).To(Succeed())
	_, err = verifyArtifact(ctx, reads, cache, ns, true, spec, remote, d)
	g.Expect(err).To(MatchError(ContainSubstring("signed by another key")))
	g.Expect(reads.n.Load()).To(Equal(int64(2)))
	// And the refusal is not remembered as verified.
	_, err = verifyArtifact(ctx, reads, cache, ns, false, spec, remote, d)
	g.Expect(err).To(HaveOccurred())

	// Another spec (another Secret) is never served from the first one's result.
	spec2 := &sourcev1.OCIArtifactVerification{Provider: "cosign", SecretRef: &meta.LocalObjectReference{Name: newVerifySecret(t, ns, map[string][]byte{"cosign.pub": key.PublicPEM()})}}
	_, err = verifyArtifact(ctx, reads, cache, ns, false, spec2, remote, d)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(reads.n.Load()).To(Equal(int64(4)))
}
