package controller

import (
	"context"
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
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	imagev1 "github.com/plumb-dev/plumb/image-automation/api/v1beta1"
)

// gitRepository creates the GitRepository an automation pushes to, as source-controller's users
// write it, with credentials.
func gitRepository(g Gomega, ns, name, url string) {
	ctx := context.Background()
	g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name + "-auth", Namespace: ns},
		Data: map[string][]byte{"username": []byte(gitUser), "password": []byte(gitPassword)}})).To(Succeed())
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "source.plumb.dev/v1beta1", "kind": "GitRepository",
		"metadata": map[string]any{"name": name, "namespace": ns},
		"spec": map[string]any{"url": url, "interval": "1h", "ref": map[string]any{"branch": "main"},
			"secretRef": map[string]any{"name": name + "-auth"}},
	}}
	g.Expect(k8s.Create(ctx, u)).To(Succeed())
}

func automation(ns, name, source string) *imagev1.ImageUpdateAutomation {
	return &imagev1.ImageUpdateAutomation{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: imagev1.ImageUpdateAutomationSpec{
			SourceRef: imagev1.SourceReference{Kind: "GitRepository", Name: source},
			Git:       imagev1.GitSpec{Commit: imagev1.CommitSpec{Author: imagev1.CommitUser{Name: "plumb-bot", Email: "bot@example.com"}}},
			Update:    &imagev1.UpdateStrategy{Strategy: imagev1.UpdateStrategySetters, Path: "./apps"},
			Interval:  metav1.Duration{Duration: time.Hour},
		}}
}

const deployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
  namespace: shop
spec:
  template:
    spec:
      containers:
        - name: app
          image: %s:1.0.0 # {"$imagepolicy": "%s:app"}
        - name: sidecar
          image: busybox:1.36 # {"$imagepolicy": "%s:absent"}
`

// The whole loop: a new tag is pushed, the repository scan sees it, the policy moves, and the
// automation commits the new tag to Git at once (its interval is an hour).
func TestAutomation_NewTagIsCommitted(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, nil)
	image := newImage()
	pushTags(t, image, "1.0.0")
	manifest := strings.NewReplacer("%s:1.0.0", image+":1.0.0").Replace(deployment)
	manifest = strings.ReplaceAll(manifest, "%s", ns)
	repo := newGitRepo(t, map[string]string{"apps/deploy.yaml": manifest, "README.md": "# untouched\n", "other/deploy.yaml": manifest})
	gitRepository(g, ns, "config", repo.URL)
	imgRepo := imageRepository(ns, "app", image)
	g.Expect(k8s.Create(ctx, imgRepo)).To(Succeed())
	g.Expect(k8s.Create(ctx, semverPolicy(ns, "app", "", "app", "1.x"))).To(Succeed())
	auto := automation(ns, "apps", "config")
	g.Expect(k8s.Create(ctx, auto)).To(Succeed())

	// Nothing to change yet: Ready, no push.
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(auto), auto)).To(Succeed())
		g.Expect(conditions.IsReady(auto)).To(BeTrue(), conditions.GetMessage(auto, meta.ReadyCondition))
		g.Expect(auto.Status.ObservedPolicies).To(HaveKeyWithValue("app", imagev1.ImageRef{Name: image, Tag: "1.0.0"}))
	}, timeout, 100*time.Millisecond).Should(Succeed())
	g.Expect(auto.Status.LastPushCommit).To(BeEmpty())

	pushTags(t, image, "1.1.0", "2.0.0")
	requestReconcile(g, imgRepo)
	g.Eventually(func(g Gomega) {
		content, _ := repo.file("main", "apps/deploy.yaml")
		g.Expect(content).To(ContainSubstring(image + `:1.1.0 # {"$imagepolicy": "` + ns + `:app"}`))
	}, timeout, 200*time.Millisecond).Should(Succeed())
	content, commit := repo.file("main", "apps/deploy.yaml")
	g.Expect(content).To(Equal(strings.Replace(manifest, image+":1.0.0", image+":1.1.0", 1)), "only the marked value changed")
	g.Expect(content).To(ContainSubstring("busybox:1.36"), "a marker naming a missing policy is left alone")
	g.Expect(commit.Author.Name).To(Equal("plumb-bot"))
	g.Expect(commit.Message).To(ContainSubstring("1.0.0 -> " + image + ":1.1.0"))
	other, _ := repo.file("main", "other/deploy.yaml")
	g.Expect(other).To(Equal(manifest), "a file outside update.path changed")
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(auto), auto)).To(Succeed())
		g.Expect(auto.Status.LastPushCommit).To(Equal(commit.Hash.String()))
		g.Expect(auto.Status.LastPushTime).NotTo(BeNil())
	}, timeout, 100*time.Millisecond).Should(Succeed())

	// The warning about the missing policy is an event on the automation.
	g.Eventually(func(g Gomega) {
		var evs corev1.EventList
		g.Expect(k8s.List(ctx, &evs, client.InNamespace(ns))).To(Succeed())
		found := false
		for _, e := range evs.Items {
			if e.InvolvedObject.Name == "apps" && strings.Contains(e.Message, ns+":absent") {
				found = true
			}
		}
		g.Expect(found).To(BeTrue())
	}, timeout, 200*time.Millisecond).Should(Succeed())
}

// A person pushes to the branch just as the automation pushes its change: the automation does
// not overwrite their commit; it fetches again, makes its change once more and pushes on top.
func TestAutomation_KeepsOthersCommits(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, nil)
	image := newImage()
	pushTags(t, image, "1.0.0", "1.5.0")
	manifest := strings.ReplaceAll(strings.Replace(deployment, "%s:1.0.0", image+":1.0.0", 1), "%s", ns)
	repo := newGitRepo(t, map[string]string{"apps/deploy.yaml": manifest})
	gitRepository(g, ns, "config", repo.URL)
	g.Expect(k8s.Create(ctx, imageRepository(ns, "app", image))).To(Succeed())
	g.Expect(k8s.Create(ctx, semverPolicy(ns, "app", "", "app", "1.x"))).To(Succeed())
	raced := make(chan error, 1)
	beforePush.Store(filepath.Base(repo.URL), func() { raced <- repo.tryCommit(map[string]string{"apps/notes.txt": "a person's change\n"}) })
	auto := automation(ns, "apps", "config")
	auto.Spec.Git.Commit.MessageTemplate = `{{ range .Objects }}{{ .Kind }}/{{ .Name }} {{ end }}to {{ range .Changes }}{{ .NewValue }}{{ end }}`
	g.Expect(k8s.Create(ctx, auto)).To(Succeed())
	g.Eventually(func(g Gomega) {
		content, _ := repo.file("main", "apps/deploy.yaml")
		g.Expect(content).To(ContainSubstring(image + ":1.5.0"))
	}, timeout, 200*time.Millisecond).Should(Succeed())
	g.Expect(<-raced).To(Succeed(), "the racing push")
	notes, commit := repo.file("main", "apps/notes.txt")
	g.Expect(notes).To(Equal("a person's change\n"))
	g.Expect(commit.NumParents()).To(Equal(1))
	parent, err := commit.Parent(0)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(parent.Message).To(Equal("dev change"), "the automation's commit is not on top of the person's")
	g.Expect(commit.Message).To(Equal("Deployment/app to " + image + ":1.5.0"))
}

func TestAutomation_BadInput(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, nil)
	repo := newGitRepo(t, map[string]string{"apps/a.yaml": "a: 1\n", "escape": "symlink:../../.."})
	gitRepository(g, ns, "config", repo.URL)
	noSource := automation(ns, "no-source", "absent")
	badTemplate := automation(ns, "bad-template", "config")
	badTemplate.Spec.Git.Commit.MessageTemplate = "{{ .Nope"
	escape := automation(ns, "escape", "config")
	escape.Spec.Update.Path = "../outside"
	linkOut := automation(ns, "link-out", "config")
	linkOut.Spec.Update.Path = "escape/"
	root := automation(ns, "root", "config")
	root.Spec.Update.Path = "./"
	noBranch := automation(ns, "no-branch", "config")
	noBranch.Spec.Git.Checkout = &imagev1.GitCheckout{Ref: imagev1.GitCheckoutRef{Branch: "nope"}}
	badKey := automation(ns, "bad-key", "config")
	badKey.Spec.Git.Commit.SigningKey = &imagev1.SigningKey{Name: "bad-key"}
	g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "bad-key", Namespace: ns},
		Data: map[string][]byte{"git.asc": []byte("-----BEGIN PGP PRIVATE KEY BLOCK-----\nhunter2\n")}})).To(Succeed())
	for _, o := range []client.Object{noSource, badTemplate, escape, linkOut, root, noBranch, badKey} {
		g.Expect(k8s.Create(ctx, o)).To(Succeed())
	}
	expect := func(obj *imagev1.ImageUpdateAutomation, stalled bool, reason, msg string) {
		t.Helper()
		g.Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(obj), obj)).To(Succeed())
			g.Expect(conditions.IsFalse(obj, meta.ReadyCondition)).To(BeTrue())
			g.Expect(conditions.GetReason(obj, meta.ReadyCondition)).To(Equal(reason))
			g.Expect(conditions.GetMessage(obj, meta.ReadyCondition)).To(ContainSubstring(msg))
			g.Expect(conditions.IsStalled(obj)).To(Equal(stalled))
		}, timeout, 100*time.Millisecond).Should(Succeed(), obj.Name)
		g.Expect(conditions.GetMessage(obj, meta.ReadyCondition)).NotTo(ContainSubstring("hunter2"))
		g.Expect(conditions.GetMessage(obj, meta.ReadyCondition)).NotTo(ContainSubstring(gitPassword))
	}
	expect(noSource, false, imagev1.DependencyNotReadyReason, "GitRepository "+ns+"/absent not found")
	expect(badTemplate, true, imagev1.InvalidSpecReason, "messageTemplate")
	expect(escape, true, imagev1.InvalidSpecReason, "leaves the repository")
	expect(noBranch, false, imagev1.GitOperationFailedReason, `no branch "nope"`)
	expect(badKey, false, imagev1.AuthenticationFailedReason, "not an armored OpenPGP key")
	expect(linkOut, false, imagev1.UpdateFailedReason, "leads out of the repository through a symbolic link")
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(root), root)).To(Succeed())
		g.Expect(conditions.IsReady(root)).To(BeTrue(), "update.path ./ is the root: %s", conditions.GetMessage(root, meta.ReadyCondition))
	}, timeout, 100*time.Millisecond).Should(Succeed())

	// Deleting an automation removes its working copy.
	dir := filepath.Join(workDir, ns, "root")
	g.Expect(dir).To(BeADirectory())
	g.Expect(k8s.Delete(ctx, root)).To(Succeed())
	g.Eventually(func() bool { return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKeyFromObject(root), root)) }, timeout, 100*time.Millisecond).Should(BeTrue())
	g.Expect(dir).NotTo(BeAnExistingFile())
}

// A Git server that refuses the push (a protected branch): the reason shows, nothing is forced,
// the branch keeps its commits.
func TestAutomation_PushRefused(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, nil)
	image := newImage()
	pushTags(t, image, "1.0.0", "1.2.0")
	manifest := strings.ReplaceAll(strings.Replace(deployment, "%s:1.0.0", image+":1.0.0", 1), "%s", ns)
	repo := newGitRepo(t, map[string]string{"apps/deploy.yaml": manifest})
	_, before := repo.file("main", "apps/deploy.yaml")
	hook := filepath.Join(gitServer.Root(), filepath.Base(repo.URL), "hooks", "pre-receive")
	g.Expect(os.MkdirAll(filepath.Dir(hook), 0o755)).To(Succeed())
	g.Expect(os.WriteFile(hook, []byte("#!/bin/sh\nexit 1\n"), 0o755)).To(Succeed())
	gitRepository(g, ns, "config", repo.URL)
	g.Expect(k8s.Create(ctx, imageRepository(ns, "app", image))).To(Succeed())
	g.Expect(k8s.Create(ctx, semverPolicy(ns, "app", "", "app", "1.x"))).To(Succeed())
	auto := automation(ns, "apps", "config")
	g.Expect(k8s.Create(ctx, auto)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(auto), auto)).To(Succeed())
		g.Expect(conditions.GetReason(auto, meta.ReadyCondition)).To(Equal(imagev1.PushFailedReason))
		g.Expect(conditions.GetMessage(auto, meta.ReadyCondition)).To(ContainSubstring("declined"))
	}, timeout, 100*time.Millisecond).Should(Succeed())
	_, after := repo.file("main", "apps/deploy.yaml")
	g.Expect(after.Hash).To(Equal(before.Hash), "the branch moved")
	g.Expect(auto.Status.LastPushCommit).To(BeEmpty())
}
