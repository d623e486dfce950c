package controller

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/plumb-dev/plumb/shared/testing/signtest"
	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
)

// signedCommitAndPush commits files on main, signed with key (unsigned when nil), and pushes.
func (r *testRepo) signedCommitAndPush(files map[string]string, key *openpgp.Entity) string {
	r.t.Helper()
	wt, err := r.repo.Worktree()
	must(err)
	for name, content := range files {
		f, err := wt.Filesystem.Create(name)
		must(err)
		_, err = f.Write([]byte(content))
		must(err)
		must(f.Close())
		_, err = wt.Add(name)
		must(err)
	}
	h, err := wt.Commit("change", &gogit.CommitOptions{
		Author:  &object.Signature{Name: "Test", Email: "test@example.invalid", When: time.Now()},
		SignKey: key,
	})
	must(err)
	r.push("refs/heads/main:refs/heads/main")
	return h.String()
}

// pgpKeySecret makes an OpenPGP key and a Secret in ns with its public key under alice.asc.
func pgpKeySecret(t *testing.T, g *WithT, ns string) (*openpgp.Entity, string) {
	t.Helper()
	e, pub, err := signtest.PGPKey("Alice", "alice@example.com")
	must(err)
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{GenerateName: "pgp-", Namespace: ns}, Data: map[string][]byte{"alice.asc": pub}}
	create(g, s)
	return e, s.Name
}

func TestGitRepository_VerifyCommitSignatures(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	alice, keys := pgpKeySecret(t, g, ns)
	repo := newRepo(t, map[string]string{"a.yaml": "a: 0\n"})
	signed := repo.signedCommitAndPush(map[string]string{"a.yaml": "a: 1\n"}, alice)

	obj := newGitRepository(ns, repo.url, basicAuth(t, ns), &sourcev1.GitRepositoryRef{Branch: "main"})
	obj.Spec.Verification = &sourcev1.GitRepositoryVerification{SecretRef: meta.LocalObjectReference{Name: keys}}
	create(g, obj)
	waitReady(g, obj, "main@sha1:"+signed)
	g.Expect(conditions.IsTrue(obj, sourcev1.SourceVerifiedCondition)).To(BeTrue())
	g.Expect(conditions.GetMessage(obj, sourcev1.SourceVerifiedCondition)).To(Equal(
		fmt.Sprintf("commit %s signed by OpenPGP key %X (Alice <alice@example.com>)", signed[:12], alice.PrimaryKey.Fingerprint)))
	g.Expect(obj.Status.SourceVerificationMode).To(HaveValue(Equal(sourcev1.ModeGitHEAD)))
	good := obj.Status.Artifact.DeepCopy()

	// A no-op reconcile neither fetches nor verifies again, and writes nothing.
	fetches, rv := repo.fetches(), obj.ResourceVersion
	_, err := reconciler.Reconcile(context.Background(), requestFor(obj))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(repo.fetches()).To(Equal(fetches))
	g.Expect(get(g, obj).ResourceVersion).To(Equal(rv))

	// An unsigned commit is refused, naming it; the verified artifact stays served.
	unsigned := repo.signedCommitAndPush(map[string]string{"a.yaml": "a: 2\n"}, nil)
	requestReconcile(g, obj)
	msg := waitFailed(g, obj, sourcev1.InvalidCommitSignatureReason)
	g.Expect(msg).To(ContainSubstring("commit " + unsigned + ": it is not signed"))
	g.Expect(conditions.IsFalse(obj, sourcev1.SourceVerifiedCondition)).To(BeTrue())
	g.Expect(conditions.GetReason(obj, sourcev1.SourceVerifiedCondition)).To(Equal(sourcev1.InvalidCommitSignatureReason))
	g.Expect(obj.Status.Artifact).To(Equal(good))
	g.Expect(files(g, obj.Status.Artifact)).To(HaveKeyWithValue("a.yaml", "a: 1\n"))

	// A commit signed by another key is refused too.
	mallory, err := openpgp.NewEntity("Mallory", "", "mallory@example.com", nil)
	must(err)
	forged := repo.signedCommitAndPush(map[string]string{"a.yaml": "a: 3\n"}, mallory)
	requestReconcile(g, obj)
	g.Eventually(func(g Gomega) {
		get(g, obj)
		g.Expect(conditions.GetMessage(obj, meta.ReadyCondition)).To(ContainSubstring("commit " + forged + ": no OpenPGP key of the Secret made its signature"))
	}, timeout).Should(Succeed())
	g.Expect(obj.Status.Artifact).To(Equal(good))

	// Signed again: served.
	fixed := repo.signedCommitAndPush(map[string]string{"a.yaml": "a: 4\n"}, alice)
	requestReconcile(g, obj)
	waitReady(g, obj, "main@sha1:"+fixed)
	g.Expect(conditions.IsTrue(obj, sourcev1.SourceVerifiedCondition)).To(BeTrue())
	g.Expect(files(g, obj.Status.Artifact)).To(HaveKeyWithValue("a.yaml", "a: 4\n"))

	// Dropping spec.verify drops the condition.
	update(g, obj, func() {
		obj.Spec.Verification = nil
	})
	g.Eventually(func(g Gomega) {
		get(g, obj)
		g.Expect(obj.Status.ObservedGeneration).To(Equal(obj.Generation))
		g.Expect(conditions.Has(obj, sourcev1.SourceVerifiedCondition)).To(BeFalse())
		g.Expect(obj.Status.SourceVerificationMode).To(BeNil())
	}, timeout).Should(Succeed())
}

func TestGitRepository_VerifyBadInput(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	repo := newRepo(t, map[string]string{"a.yaml": "a: 0\n"})

	// A missing keys Secret is retried as VerificationError.
	missing := newGitRepository(ns, repo.url, basicAuth(t, ns), nil)
	missing.Spec.Verification = &sourcev1.GitRepositoryVerification{SecretRef: meta.LocalObjectReference{Name: "nope"}}
	create(g, missing)
	g.Expect(waitFailed(g, missing, sourcev1.VerificationErrorReason)).To(ContainSubstring("spec.verify.secretRef: Secret " + ns + "/nope not found"))
	g.Expect(conditions.IsStalled(missing)).To(BeFalse())

	// A Secret without keys says which keys it needs.
	empty := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{GenerateName: "empty-", Namespace: ns}, Data: map[string][]byte{"token": []byte("x")}}
	create(g, empty)
	nokeys := newGitRepository(ns, repo.url, basicAuth(t, ns), nil)
	nokeys.Spec.Verification = &sourcev1.GitRepositoryVerification{SecretRef: meta.LocalObjectReference{Name: empty.Name}}
	create(g, nokeys)
	g.Expect(waitFailed(g, nokeys, sourcev1.VerificationErrorReason)).To(ContainSubstring("no key ending in .asc"))

	// A tag mode on a branch has no tag to verify: Stalled.
	branch := newGitRepository(ns, repo.url, basicAuth(t, ns), &sourcev1.GitRepositoryRef{Branch: "main"})
	branch.Spec.Verification = &sourcev1.GitRepositoryVerification{Mode: sourcev1.ModeGitTag, SecretRef: meta.LocalObjectReference{Name: empty.Name}}
	create(g, branch)
	g.Expect(waitFailed(g, branch, sourcev1.InvalidSpecReason)).To(ContainSubstring("spec.verify.mode Tag verifies a tag"))
	g.Expect(conditions.IsStalled(branch)).To(BeTrue())
}

func TestGitRepository_VerifyTagSignature(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	alice, keys := pgpKeySecret(t, g, ns)
	repo := newRepo(t, map[string]string{"a.yaml": "a: 0\n"})
	head, err := repo.repo.Head()
	must(err)
	_, err = repo.repo.CreateTag("v1.0.0", head.Hash(), &gogit.CreateTagOptions{Message: "v1.0.0",
		Tagger: &object.Signature{Name: "Test", Email: "test@example.invalid", When: time.Now()}, SignKey: alice})
	must(err)
	repo.push("refs/tags/v1.0.0:refs/tags/v1.0.0")

	obj := newGitRepository(ns, repo.url, basicAuth(t, ns), &sourcev1.GitRepositoryRef{Tag: "v1.0.0"})
	obj.Spec.Verification = &sourcev1.GitRepositoryVerification{Mode: sourcev1.ModeGitTag, SecretRef: meta.LocalObjectReference{Name: keys}}
	create(g, obj)
	waitReady(g, obj, "v1.0.0@sha1:"+head.Hash().String())
	g.Expect(conditions.GetMessage(obj, sourcev1.SourceVerifiedCondition)).To(HavePrefix("tag v1.0.0 signed by OpenPGP key"))

	// TagAndHEAD also wants the (unsigned) commit: refused with the tag's artifact kept.
	update(g, obj, func() {
		obj.Spec.Verification.Mode = sourcev1.ModeGitTagAndHEAD
	})
	g.Expect(waitFailed(g, obj, sourcev1.InvalidCommitSignatureReason)).To(ContainSubstring("commit " + head.Hash().String()))
	g.Expect(obj.Status.Artifact).NotTo(BeNil())
}
