package cmd

import (
	"context"
	"testing"

	"github.com/fluxcd/pkg/gittestserver"
	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	"github.com/go-git/go-git/v5/storage/memory"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

func TestBootstrapGit(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const user, password = "fleet", "fleet-pa55word-123"
	srv := gittestserver.NewGitServer(t.TempDir())
	srv.Auth(user, password).AutoCreate()
	g.Expect(srv.StartHTTP()).To(Succeed())
	defer srv.StopHTTP()
	url := srv.HTTPAddress() + "/fleet.git"
	t.Setenv("PLUMB_GIT_PASSWORD", password)
	args := []string{"bootstrap", "git", "--url", url, "--username", user, "--path", "clusters/dev",
		"--components", "source-controller,apply-controller", "-n", "plumb-boot", "--wait=false"}

	// An empty repository gets the branch.
	code, out, errOut := plumb(ctx, args...)
	g.Expect(code).To(Equal(0), errOut)
	g.Expect(out).To(ContainSubstring("✔ committed clusters/dev/plumb-boot to main"))
	head := func() (*gogit.Repository, plumbing.Hash) {
		repo, err := gogit.Clone(memory.NewStorage(), nil, &gogit.CloneOptions{URL: url, ReferenceName: plumbing.NewBranchReferenceName("main"),
			Auth: &githttp.BasicAuth{Username: user, Password: password}})
		g.Expect(err).NotTo(HaveOccurred())
		ref, err := repo.Head()
		g.Expect(err).NotTo(HaveOccurred())
		return repo, ref.Hash()
	}
	repo, first := head()
	commit, err := repo.CommitObject(first)
	g.Expect(err).NotTo(HaveOccurred())
	for _, f := range []string{"components.yaml", "sync.yaml", "kustomization.yaml"} {
		file, err := commit.File("clusters/dev/plumb-boot/" + f)
		g.Expect(err).NotTo(HaveOccurred(), f)
		content, _ := file.Contents()
		g.Expect(content).NotTo(ContainSubstring(password), "a secret in Git")
	}
	sync, _ := commit.File("clusters/dev/plumb-boot/sync.yaml")
	syncYAML, _ := sync.Contents()
	g.Expect(syncYAML).To(ContainSubstring("path: ./clusters/dev"))

	// The cluster has the components, the Secret and the sync objects.
	ks := &unstructured.Unstructured{}
	ks.SetAPIVersion("apply.plumb.dev/v1beta1")
	ks.SetKind("Kustomization")
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: "plumb-boot", Name: "plumb-boot"}, ks)).To(Succeed())
	path, _, _ := unstructured.NestedString(ks.Object, "spec", "path")
	g.Expect(path).To(Equal("./clusters/dev"))
	gr := &unstructured.Unstructured{}
	gr.SetAPIVersion("source.plumb.dev/v1beta1")
	gr.SetKind("GitRepository")
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: "plumb-boot", Name: "plumb-boot"}, gr)).To(Succeed())
	g.Expect(gr.Object["spec"]).To(HaveKeyWithValue("url", url))
	secret := &corev1.Secret{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: "plumb-boot", Name: "plumb-boot"}, secret)).To(Succeed())
	g.Expect(string(secret.Data["password"])).To(Equal(password))

	// Again: nothing to commit, nothing changes.
	code, out, errOut = plumb(ctx, args...)
	g.Expect(code).To(Equal(0), errOut)
	g.Expect(out).To(ContainSubstring("is up to date"))
	_, again := head()
	g.Expect(again).To(Equal(first))

	// Credentials from an existing Secret: the GitRepository uses it, and it stays as it is.
	g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "git-auth", Namespace: "plumb-boot"},
		Data: map[string][]byte{"username": []byte(user), "password": []byte(password)}})).To(Succeed())
	t.Setenv("PLUMB_GIT_PASSWORD", "")
	code, out, errOut = plumb(ctx, "bootstrap", "git", "--url", url, "--secret", "git-auth", "--path", "clusters/dev",
		"--components", "source-controller,apply-controller", "-n", "plumb-boot", "--wait=false")
	g.Expect(code).To(Equal(0), errOut)
	g.Expect(out).To(ContainSubstring("✔ committed clusters/dev/plumb-boot to main"), "the sync objects name the other Secret")
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: "plumb-boot", Name: "plumb-boot"}, gr)).To(Succeed())
	g.Expect(gr.Object["spec"]).To(HaveKeyWithValue("secretRef", map[string]any{"name": "git-auth"}))
	code, _, errOut = plumb(ctx, "bootstrap", "git", "--url", url, "--secret", "absent", "--path", "clusters/dev",
		"--components", "source-controller,apply-controller", "-n", "plumb-boot", "--wait=false")
	g.Expect(code).To(Equal(1))
	g.Expect(errOut).To(ContainSubstring(`--secret: secrets "absent" not found`))
	t.Setenv("PLUMB_GIT_PASSWORD", password)

	// Bad input.
	code, _, errOut = plumb(ctx, "bootstrap", "git", "--url", "https://fleet:tok3n-in-url@example.invalid/fleet.git", "--path", "clusters/dev")
	g.Expect(code).To(Equal(2))
	g.Expect(errOut).To(ContainSubstring("--url holds credentials, which would be committed"))
	g.Expect(errOut).NotTo(ContainSubstring("tok3n-in-url"))
	code, _, errOut = plumb(ctx, "bootstrap", "git", "--url", url, "--path", "clusters/dev", "--components", "source-controller", "--wait=false")
	g.Expect(code).To(Equal(2))
	g.Expect(errOut).To(ContainSubstring("bootstrap needs apply-controller"))
	code, _, errOut = plumb(ctx, "bootstrap", "git", "--url", "git@example.com:org/fleet.git", "--path", "clusters/dev")
	g.Expect(code).To(Equal(2))
	g.Expect(errOut).To(ContainSubstring("an http(s) URL"))
	code, _, errOut = plumb(ctx, "bootstrap", "git", "--url", url, "--path", "../up")
	g.Expect(code).To(Equal(2))
	g.Expect(errOut).To(ContainSubstring("a relative folder of the repository"))
	t.Setenv("PLUMB_GIT_PASSWORD", "wrong-pa55word-456")
	code, _, errOut = plumb(ctx, args...)
	g.Expect(code).To(Equal(1))
	g.Expect(errOut).To(ContainSubstring("cloning"))
	g.Expect(errOut).NotTo(ContainSubstring("wrong-pa55word-456"))
}
