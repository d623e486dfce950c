package controller

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"os"
	"os/exec"
	"path"
	"path/filepath"

	"strings"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	. "github.com/onsi/gomega"
	"golang.org/x/crypto/ssh"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	imagev1 "github.com/plumb-dev/plumb/image-automation/api/v1beta1"
)

// An automation in one namespace pushes to a GitRepository of another (the suite runs with
// --no-cross-namespace-refs=false), starting from a tag, onto a push branch, with push options
// the Git server sees and an SSH signature git verify-commit accepts.
func TestAutomation_TagCrossNamespaceOptionsSSHSigned(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, nil)
	srcNS := newNamespace(t, nil)
	image := newImage()
	pushTags(t, image, "1.0.0", "1.1.0")
	manifest := strings.NewReplacer("%s:1.0.0", image+":1.0.0").Replace(deployment)
	manifest = strings.ReplaceAll(manifest, "%s", ns)
	repo := newGitRepo(t, map[string]string{"apps/deploy.yaml": manifest})
	tagged := repo.tag("v1.0.0")
	repo.commit(map[string]string{"apps/deploy.yaml": "after the tag\n"})
	gitRepository(g, srcNS, "config", repo.URL)

	// The Git server hands push options to its hooks once it advertises them.
	bare := filepath.Join(gitServer.Root(), path.Base(repo.URL))
	seen := filepath.Join(t.TempDir(), "push-options")
	if out, err := exec.Command("git", "-C", bare, "config", "receive.advertisePushOptions", "true").CombinedOutput(); err != nil {
		t.Fatalf("git config: %v: %s", err, out)
	}
	hook := "#!/bin/sh\ni=0\nwhile [ $i -lt \"${GIT_PUSH_OPTION_COUNT:-0}\" ]; do\n" +
		"  eval \"echo \\\"\\$GIT_PUSH_OPTION_$i\\\"\"\n  i=$((i+1))\ndone > " + seen + "\n"
	g.Expect(os.WriteFile(filepath.Join(bare, "hooks", "pre-receive"), []byte(hook), 0o755)).To(Succeed())

	_, key, err := ed25519.GenerateKey(rand.Reader)
	g.Expect(err).NotTo(HaveOccurred())
	block, err := ssh.MarshalPrivateKey(key, "")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "signing", Namespace: ns},
		Data: map[string][]byte{"identity": pem.EncodeToMemory(block)}})).To(Succeed())

	g.Expect(k8s.Create(ctx, imageRepository(ns, "app", image))).To(Succeed())
	g.Expect(k8s.Create(ctx, semverPolicy(ns, "app", "", "app", "1.x"))).To(Succeed())
	auto := automation(ns, "apps", "config")
	auto.Spec.SourceRef.Namespace = srcNS
	auto.Spec.Git.Checkout = &imagev1.GitCheckout{Ref: imagev1.GitCheckoutRef{Tag: "v1.0.0"}}
	auto.Spec.Git.Push = &imagev1.PushSpec{Branch: "auto", Options: map[string]string{"merge_request.create": "true"}}
	auto.Spec.Git.Commit.SigningKey = &imagev1.SigningKey{SecretRef: &meta.LocalObjectReference{Name: "signing"}, Type: imagev1.SigningKeyTypeSSH}
	g.Expect(k8s.Create(ctx, auto)).To(Succeed())

	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(auto), auto)).To(Succeed())
		g.Expect(conditions.IsReady(auto)).To(BeTrue(), conditions.GetMessage(auto, meta.ReadyCondition))
		g.Expect(auto.Status.LastPushCommit).NotTo(BeEmpty())
	}, timeout, 100*time.Millisecond).Should(Succeed())
	content, commit := repo.file("auto", "apps/deploy.yaml")
	g.Expect(content).To(ContainSubstring(image+":1.1.0"), "the tag's file was not updated")
	g.Expect(commit.Hash.String()).To(Equal(auto.Status.LastPushCommit))
	g.Expect(commit.ParentHashes).To(Equal([]plumbing.Hash{tagged}), "the commit does not start from the tag")
	main, _ := repo.file("main", "apps/deploy.yaml")
	g.Expect(main).To(Equal("after the tag\n"), "main moved")

	b, err := os.ReadFile(seen)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(strings.Fields(string(b))).To(Equal([]string{"merge_request.create=true"}))

	// The signature verifies with git against the key's public half as the author's.
	allowed := filepath.Join(t.TempDir(), "allowed_signers")
	signer, err := ssh.NewSignerFromKey(key)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(os.WriteFile(allowed, append([]byte("bot@example.com "), ssh.MarshalAuthorizedKey(signer.PublicKey())...), 0o600)).To(Succeed())
	out, err := exec.Command("git", "-C", repo.dir, "-c", "gpg.ssh.allowedSignersFile="+allowed, "verify-commit", commit.Hash.String()).CombinedOutput()
	g.Expect(err).NotTo(HaveOccurred(), string(out))
	g.Expect(string(out)).To(ContainSubstring(`Good "git" signature for bot@example.com`))
}

// With --no-cross-namespace-refs a sourceRef in another namespace is refused before anything
// is read.
func TestAutomation_CrossNamespaceRefused(t *testing.T) {
	g := NewWithT(t)
	r := &ImageUpdateAutomationReconciler{Client: k8s, APIReader: k8s, NoCrossNamespaceRefs: true}
	auto := automation("team-a", "apps", "config")
	auto.Spec.SourceRef.Namespace = "flux-system"
	_, err := r.prepare(context.Background(), auto)
	g.Expect(err).To(HaveOccurred())
	g.Expect(conditions.IsStalled(auto)).To(BeTrue())
	g.Expect(conditions.GetReason(auto, meta.ReadyCondition)).To(Equal(imagev1.AccessDeniedReason))
	g.Expect(conditions.GetMessage(auto, meta.ReadyCondition)).To(ContainSubstring("spec.sourceRef in namespace flux-system: cross-namespace references are disabled (--no-cross-namespace-refs)"))
}

// A checkout semver range that does not parse stalls the automation before anything is read.
func TestAutomation_BadCheckoutSemverStalls(t *testing.T) {
	g := NewWithT(t)
	r := &ImageUpdateAutomationReconciler{Client: k8s, APIReader: k8s}
	auto := automation("team-a", "apps", "config")
	auto.Spec.Git.Checkout = &imagev1.GitCheckout{Ref: imagev1.GitCheckoutRef{SemVer: ">= one"}}
	auto.Spec.Git.Push = &imagev1.PushSpec{Branch: "auto"}
	_, err := r.prepare(context.Background(), auto)
	g.Expect(err).To(HaveOccurred())
	g.Expect(conditions.IsStalled(auto)).To(BeTrue())
	g.Expect(conditions.GetReason(auto, meta.ReadyCondition)).To(Equal(imagev1.InvalidSpecReason))
	g.Expect(conditions.GetMessage(auto, meta.ReadyCondition)).To(ContainSubstring(`git.checkout.ref.semver ">= one"`))
}

// The schema refuses a checkout that is not a branch without a push branch.
func TestAutomation_TagNeedsPushBranch(t *testing.T) {
	g := NewWithT(t)
	auto := automation(newNamespace(t, nil), "apps", "config")
	auto.Spec.Git.Checkout = &imagev1.GitCheckout{Ref: imagev1.GitCheckoutRef{SemVer: "1.x"}}
	err := k8s.Create(context.Background(), auto)
	g.Expect(err).To(MatchError(ContainSubstring("push.branch is required when checkout.ref is not a branch alone")))
	auto.Spec.Git.Checkout.Ref = imagev1.GitCheckoutRef{Branch: "main", Commit: strings.Repeat("ab", 20)}
	err = k8s.Create(context.Background(), auto)
	g.Expect(err).To(MatchError(ContainSubstring("push.branch is required when checkout.ref is not a branch alone")))
	auto.Spec.Git.Push = &imagev1.PushSpec{Branch: "auto"}
	g.Expect(k8s.Create(context.Background(), auto, client.DryRunAll)).To(Succeed(), "a commit with a push branch")
	auto = automation(auto.Namespace, "empty-ref", "config")
	auto.Spec.Git.Checkout = &imagev1.GitCheckout{}
	err = k8s.Create(context.Background(), auto)
	g.Expect(err).To(MatchError(ContainSubstring("set one of branch, tag, semver, name and commit")))
}

// tag tags main's tip and pushes the tag; it returns the commit.
func (r *gitRepo) tag(name string) plumbing.Hash {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	head, err := r.repo.Head()
	if err != nil {
		r.t.Fatal(err)
	}
	if _, err := r.repo.CreateTag(name, head.Hash(), nil); err != nil {
		r.t.Fatal(err)
	}
	spec := config.RefSpec("refs/tags/" + name + ":refs/tags/" + name)
	if err := r.repo.Push(&gogit.PushOptions{Auth: gitAuth, RefSpecs: []config.RefSpec{spec}}); err != nil {
		r.t.Fatal(err)
	}
	return head.Hash()
}
