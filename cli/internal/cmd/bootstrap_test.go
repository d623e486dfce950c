package cmd

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/fluxcd/pkg/gittestserver"
	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	gitobject "github.com/go-git/go-git/v5/plumbing/object"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	"github.com/go-git/go-git/v5/storage/memory"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/plumb-dev/plumb/shared/sops/sopstest"
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

func TestBootstrapGitSOPS(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	srv := gittestserver.NewGitServer(t.TempDir())
	srv.AutoCreate()
	g.Expect(srv.StartHTTP()).To(Succeed())
	defer srv.StopHTTP()
	url := srv.HTTPAddress() + "/sops.git"
	t.Setenv("PLUMB_GIT_PASSWORD", "")
	dir := t.TempDir()
	keyFile := func(name, content string) string {
		p := filepath.Join(dir, name)
		g.Expect(os.WriteFile(p, []byte(content), 0o600)).To(Succeed())
		return p
	}
	bootstrapWith := func(extra ...string) (int, string, string) {
		return plumb(ctx, append([]string{"bootstrap", "git", "--url", url, "--path", "clusters/dev",
			"--components", "source-controller,apply-controller", "-n", "plumb-sops", "--wait=false"}, extra...)...)
	}
	pushed := func() *gogit.Repository {
		repo, err := gogit.Clone(memory.NewStorage(), nil, &gogit.CloneOptions{URL: url, ReferenceName: plumbing.NewBranchReferenceName("main")})
		g.Expect(err).NotTo(HaveOccurred())
		return repo
	}
	key, recipient := sopstest.Identity(t)
	good := keyFile("age.agekey", "# created: 2026-12-06\n# public key: "+recipient+"\n"+key+"\n")

	// A bad key file is refused before anything is pushed, and its content is not printed.
	damaged := key[:len(key)-3] + "QQQ" // bech32 characters, a wrong checksum
	for name, content := range map[string]string{"not-a-key": "AGE-SECRET-KEY-1-oops " + key[16:] + "\n", "damaged": damaged + "\n"} {
		code, out, errOut := bootstrapWith("--sops-age-key-file", keyFile(name, content))
		g.Expect(code).To(Equal(2), name)
		g.Expect(errOut).To(ContainSubstring("--sops-age-key-file "+filepath.Join(dir, name)+": "), name)
		g.Expect(out + errOut).NotTo(ContainSubstring(key[16:30]))
		_, err := gogit.Clone(memory.NewStorage(), nil, &gogit.CloneOptions{URL: url})
		g.Expect(err).To(HaveOccurred(), "%s: nothing is pushed", name)
	}
	code, _, errOut := bootstrapWith("--sops-age-key-file", filepath.Join(dir, "absent.agekey"))
	g.Expect(code).To(Equal(2))
	g.Expect(errOut).To(ContainSubstring("--sops-age-key-file: open "))

	// The key goes into the cluster, the Kustomization decrypts with it, .sops.yaml names the
	// public key, and no private key is anywhere in Git.
	code, out, errOut := bootstrapWith("--sops-age-key-file", good)
	g.Expect(code).To(Equal(0), errOut)
	g.Expect(out).To(ContainSubstring("✔ committed clusters/dev/.sops.yaml: sops encrypts for " + recipient))
	g.Expect(out + errOut).NotTo(ContainSubstring("AGE-SECRET-KEY"))
	secret := &corev1.Secret{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: "plumb-sops", Name: "sops-age"}, secret)).To(Succeed())
	g.Expect(secret.Data).To(HaveLen(1))
	g.Expect(string(secret.Data["age.agekey"])).To(ContainSubstring(key))
	ks := &unstructured.Unstructured{}
	ks.SetAPIVersion("apply.plumb.dev/v1beta1")
	ks.SetKind("Kustomization")
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: "plumb-sops", Name: "plumb-sops"}, ks)).To(Succeed())
	decryption, _, _ := unstructured.NestedMap(ks.Object, "spec", "decryption")
	g.Expect(decryption).To(Equal(map[string]any{"provider": "sops", "secretRef": map[string]any{"name": "sops-age"}}))
	repo := pushed()
	ref, err := repo.Head()
	g.Expect(err).NotTo(HaveOccurred())
	first := ref.Hash()
	commit, err := repo.CommitObject(first)
	g.Expect(err).NotTo(HaveOccurred())
	file, err := commit.File("clusters/dev/plumb-sops/sync.yaml")
	g.Expect(err).NotTo(HaveOccurred())
	syncYAML, _ := file.Contents()
	g.Expect(syncYAML).To(ContainSubstring("  decryption:\n    provider: sops\n    secretRef:\n      name: sops-age\n"))
	file, err = commit.File("clusters/dev/.sops.yaml")
	g.Expect(err).NotTo(HaveOccurred())
	sopsYAML, _ := file.Contents()
	g.Expect(sopsYAML).To(ContainSubstring("    age: " + recipient + "\n"))
	noPrivateKey := func(repo *gogit.Repository) {
		blobs, err := repo.BlobObjects()
		g.Expect(err).NotTo(HaveOccurred())
		count := 0
		g.Expect(blobs.ForEach(func(b *gitobject.Blob) error {
			r, err := b.Reader()
			if err != nil {
				return err
			}
			defer r.Close()
			data, err := io.ReadAll(r)
			count++
			g.Expect(string(data)).NotTo(ContainSubstring("AGE-SECRET-KEY"), "a private key in Git, blob %s", b.Hash)
			return err
		})).To(Succeed())
		g.Expect(count).To(BeNumerically(">=", 4), "every file of the tree was read")
	}
	noPrivateKey(repo)

	// Again, with another key: nothing to commit, .sops.yaml is the team's to edit, and the one
	// Secret holds the new key.
	key2, recipient2 := sopstest.Identity(t)
	code, out, errOut = bootstrapWith("--sops-age-key-file", keyFile("new.agekey", key2+"\n"))
	g.Expect(code).To(Equal(0), errOut)
	g.Expect(out).To(ContainSubstring("is up to date"))
	g.Expect(out).To(ContainSubstring("✔ clusters/dev/.sops.yaml exists and is left as it is: its creation rules must encrypt for " + recipient2))
	ref, err = pushed().Head()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ref.Hash()).To(Equal(first))
	var secrets corev1.SecretList
	g.Expect(k8s.List(ctx, &secrets, client.InNamespace("plumb-sops"))).To(Succeed())
	withKeys := 0
	for _, s := range secrets.Items {
		if _, ok := s.Data["age.agekey"]; ok {
			withKeys++
			g.Expect(s.Name).To(Equal("sops-age"))
			g.Expect(string(s.Data["age.agekey"])).To(Equal(key2 + "\n"))
		}
	}
	g.Expect(withKeys).To(Equal(1))

	// An existing Secret of another name: the Kustomization names it, bootstrap leaves it be.
	g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "team-keys", Namespace: "plumb-sops"},
		Data: map[string][]byte{"team.agekey": []byte(key + "\n")}})).To(Succeed())
	code, out, errOut = bootstrapWith("--sops-secret-name", "team-keys")
	g.Expect(code).To(Equal(0), errOut)
	g.Expect(out).To(ContainSubstring("✔ committed clusters/dev/plumb-sops to main"))
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: "plumb-sops", Name: "plumb-sops"}, ks)).To(Succeed())
	name, _, _ := unstructured.NestedString(ks.Object, "spec", "decryption", "secretRef", "name")
	g.Expect(name).To(Equal("team-keys"))
	noPrivateKey(pushed())
	code, _, errOut = bootstrapWith("--sops-secret-name", "absent")
	g.Expect(code).To(Equal(1))
	g.Expect(errOut).To(ContainSubstring(`--sops-secret-name: secrets "absent" not found (give --sops-age-key-file to create it)`))
	g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "no-keys", Namespace: "plumb-sops"},
		Data: map[string][]byte{"key.txt": []byte(key)}})).To(Succeed())
	code, _, errOut = bootstrapWith("--sops-secret-name", "no-keys")
	g.Expect(code).To(Equal(1))
	g.Expect(errOut).To(ContainSubstring("--sops-secret-name: Secret plumb-sops/no-keys: no entry ending in .agekey or .asc"))
}
