package cmd

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/plumb-dev/plumb/shared/gitauth"
	"github.com/plumb-dev/plumb/shared/sops/sopstest"
)

// plumbIn is plumb with stdin.
func plumbIn(ctx context.Context, stdin string, args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := execute(ctx, append([]string{"--kubeconfig", kubeconfig}, args...), strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), strings.TrimSpace(errOut.String())
}

// A string that looks like an age identity (prefix, upper-case bech32) but whose checksum is wrong.
const damagedAgeKey = "AGE-SECRET-KEY-1QYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSQEJ8KRY"

func writeFile(g Gomega, dir, name, content string) string {
	p := filepath.Join(dir, name)
	g.Expect(os.WriteFile(p, []byte(content), 0o600)).To(Succeed())
	return p
}

func secretOf(g Gomega, ns, name string) *corev1.Secret {
	s := &corev1.Secret{}
	g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, s)).To(Succeed())
	return s
}

func keysOf(m map[string][]byte) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func TestCreateSecretGit(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(g)
	const password = "s3cret-git-password"

	code, out, errOut := plumbIn(ctx, password+"\n", "create", "secret", "git", "basic", "-n", ns, "--username", "bot", "--password-stdin")
	g.Expect(code).To(Equal(0), errOut)
	g.Expect(out + errOut).NotTo(ContainSubstring(password))
	s := secretOf(g, ns, "basic")
	g.Expect(keysOf(s.Data)).To(Equal([]string{"password", "username"}))
	g.Expect(string(s.Data["username"])).To(Equal("bot"))
	g.Expect(string(s.Data["password"])).To(Equal(password), "the trailing newline of stdin is not part of the password")
	r, err := gitauth.NewRemote("https://git.example.com/fleet.git", s.Data)
	g.Expect(err).NotTo(HaveOccurred(), "the source-controller reads the Secret")
	g.Expect(r.Auth).To(Equal(&githttp.BasicAuth{Username: "bot", Password: password}))

	// Again, with a token: plumb's own keys are replaced, not added to.
	code, out, errOut = plumb(ctx, "create", "secret", "git", "basic", "-n", ns, "--bearer-token", "tok-123456")
	g.Expect(code).To(Equal(0), errOut)
	g.Expect(out + errOut).NotTo(ContainSubstring("tok-123456"))
	s = secretOf(g, ns, "basic")
	g.Expect(keysOf(s.Data)).To(Equal([]string{"bearerToken"}))
	r, err = gitauth.NewRemote("https://git.example.com/fleet.git", s.Data)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(r.Auth).To(Equal(&githttp.TokenAuth{Token: "tok-123456"}))

	dir := t.TempDir()
	key := writeFile(g, dir, "id", "-----BEGIN OPENSSH PRIVATE KEY-----\nnot-a-real-key\n-----END OPENSSH PRIVATE KEY-----\n")
	hosts := writeFile(g, dir, "known_hosts", "git.example.com ssh-ed25519 AAAA\n")
	code, out, errOut = plumb(ctx, "create", "secret", "git", "ssh", "-n", ns, "--ssh-key-file", key, "--known-hosts-file", hosts, "--password", "passphrase-xyz")
	g.Expect(code).To(Equal(0), errOut)
	g.Expect(out + errOut).NotTo(ContainSubstring("passphrase-xyz"))
	g.Expect(out + errOut).NotTo(ContainSubstring("not-a-real-key"))
	s = secretOf(g, ns, "ssh")
	g.Expect(keysOf(s.Data)).To(Equal([]string{"identity", "known_hosts", "password"}))
	g.Expect(s.Type).To(Equal(corev1.SecretTypeOpaque))
}

func TestCreateSecretOCI(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(g)
	const password = "s3cret-registry-password"

	code, out, errOut := plumbIn(ctx, password, "create", "secret", "oci", "ghcr", "-n", ns, "--server", "ghcr.io", "--username", "bot", "--password-stdin")
	g.Expect(code).To(Equal(0), errOut)
	g.Expect(out + errOut).NotTo(ContainSubstring(password))
	s := secretOf(g, ns, "ghcr")
	g.Expect(s.Type).To(Equal(corev1.SecretTypeDockerConfigJson))
	g.Expect(keysOf(s.Data)).To(Equal([]string{".dockerconfigjson"}))
	var doc struct {
		Auths map[string]struct{ Username, Password, Auth string } `json:"auths"`
	}
	g.Expect(json.Unmarshal(s.Data[".dockerconfigjson"], &doc)).To(Succeed())
	g.Expect(doc.Auths).To(HaveKey("ghcr.io"))
	e := doc.Auths["ghcr.io"]
	g.Expect(e.Username).To(Equal("bot"))
	g.Expect(e.Password).To(Equal(password))
	g.Expect(e.Auth).To(Equal(base64.StdEncoding.EncodeToString([]byte("bot:" + password))))
}

func TestCreateSecretSOPS(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(g)
	dir := t.TempDir()
	testAgeKey, _ := sopstest.Identity(t)
	content := "# created: 2026-01-01T00:00:00Z\n# public key: age1xyz\n" + testAgeKey + "\n"
	file := writeFile(g, dir, "cluster.agekey", content)

	code, out, errOut := plumb(ctx, "create", "secret", "sops", "sops-age", "-n", ns, "--age-key-file", file)
	g.Expect(code).To(Equal(0), errOut)
	g.Expect(out + errOut).NotTo(ContainSubstring("AGE-SECRET-KEY"))
	s := secretOf(g, ns, "sops-age")
	g.Expect(keysOf(s.Data)).To(Equal([]string{"cluster.agekey"}))
	g.Expect(string(s.Data["cluster.agekey"])).To(Equal(content))

	// A file not ending in .agekey gets the suffix, so that the Kustomization reads it.
	other := writeFile(g, dir, "keys.txt", testAgeKey+"\n")
	code, _, errOut = plumb(ctx, "create", "secret", "sops", "sops-txt", "-n", ns, "--age-key-file", other)
	g.Expect(code).To(Equal(0), errOut)
	g.Expect(keysOf(secretOf(g, ns, "sops-txt").Data)).To(Equal([]string{"keys.txt.agekey"}))
}

func TestCreateSecretSOPSRefusesANonAgeFile(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(g)
	dir := t.TempDir()
	testAgeKey, _ := sopstest.Identity(t)
	for name, content := range map[string]string{
		"damaged.agekey": "# public key: age1xyz\n" + damagedAgeKey + "\n",
		"pgp.agekey":     "-----BEGIN PGP PRIVATE KEY BLOCK-----\nlQdGBF-secret-material\n",
		"public.agekey":  "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\n",
		"mixed.agekey":   testAgeKey + "\nAGE-SECRET-KEY-1lowercase-secret-material\n",
		"empty.agekey":   "# only a comment\n",
	} {
		file := writeFile(g, dir, name, content)
		code, out, errOut := plumb(ctx, "create", "secret", "sops", "bad", "-n", ns, "--age-key-file", file)
		g.Expect(code).To(Equal(ExitUsage), name)
		g.Expect(errOut).To(HavePrefix("plumb: --age-key-file"), name)
		g.Expect(errOut).To(Or(ContainSubstring("not an age identity"), ContainSubstring("no age identity")), name)
		g.Expect(errOut).NotTo(ContainSubstring("QYQSZQGP"), name)
		g.Expect(out+errOut).NotTo(ContainSubstring("secret-material"), name)
		g.Expect(out+errOut).NotTo(ContainSubstring(testAgeKey), name)
		g.Expect(out+errOut).NotTo(ContainSubstring("age1ql3z"), name)
	}
	err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "bad"}, &corev1.Secret{})
	g.Expect(client.IgnoreNotFound(err)).To(Succeed())
	g.Expect(err).To(HaveOccurred(), "nothing was written")
}

func TestCreateSecretExport(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const password = "s3cret-export-password"
	// --export touches no cluster: an unreachable kubeconfig does not matter.
	args := []string{"--kubeconfig", filepath.Join(t.TempDir(), "none"), "create", "secret", "oci", "reg", "-n", "apps",
		"--server", "registry.example.com", "--username", "bot", "--password-stdin", "--export"}
	var out, errOut bytes.Buffer
	code := execute(ctx, args, strings.NewReader(password), &out, &errOut)
	g.Expect(code).To(Equal(0), errOut.String())
	g.Expect(errOut.String()).To(ContainSubstring("holds a secret"))
	g.Expect(errOut.String()).NotTo(ContainSubstring(password))
	var s corev1.Secret
	g.Expect(yaml.UnmarshalStrict(out.Bytes(), &s)).To(Succeed(), out.String())
	g.Expect(s.APIVersion).To(Equal("v1"))
	g.Expect(s.Kind).To(Equal("Secret"))
	g.Expect(s.Name).To(Equal("reg"))
	g.Expect(s.Namespace).To(Equal("apps"))
	g.Expect(s.Type).To(Equal(corev1.SecretTypeDockerConfigJson))
	g.Expect(string(s.Data[".dockerconfigjson"])).To(ContainSubstring(password))

	code, outS, errS := plumb(ctx, "create", "secret", "git", "x", "-n", "apps", "--bearer-token", "tok", "--export")
	g.Expect(code).To(Equal(0), errS)
	s = corev1.Secret{}
	g.Expect(yaml.UnmarshalStrict([]byte(outS), &s)).To(Succeed())
	g.Expect(keysOf(s.Data)).To(Equal([]string{"bearerToken"}))
	g.Expect(string(s.Data["bearerToken"])).To(Equal("tok"))
}

func TestCreateSecretUsage(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	dir := t.TempDir()
	key := writeFile(g, dir, "id", "key")
	for _, args := range [][]string{
		{"create", "secret", "git"},
		{"create", "secret", "git", "a", "b", "--bearer-token", "t"},
		{"create", "secret", "git", "Not_A_Name", "--bearer-token", "t"},
		{"create", "secret", "git", "x"},
		{"create", "secret", "git", "x", "--username", "bot"},
		{"create", "secret", "git", "x", "--username", "bot", "--bearer-token", "t", "--password", "hunter22"},
		{"create", "secret", "git", "x", "--username", "bot", "--password", "hunter22", "--password-stdin"},
		{"create", "secret", "git", "x", "--ssh-key-file", key},
		{"create", "secret", "git", "x", "--ssh-key-file", filepath.Join(dir, "missing"), "--known-hosts-file", key},
		{"create", "secret", "git", "x", "--bearer-token", "t", "--known-hosts-file", key},
		{"create", "secret", "oci", "x", "--username", "bot", "--password", "hunter22"},
		{"create", "secret", "oci", "x", "--server", "ghcr.io", "--password", "hunter22"},
		{"create", "secret", "oci", "x", "--server", "ghcr.io", "--username", "bot"},
		{"create", "secret", "oci", "x", "--server", "ghcr.io", "--username", "bot", "--password-stdin"},
		{"create", "secret", "sops", "x"},
		{"create", "secret", "sops", "x", "--age-key-file", filepath.Join(dir, "missing")},
		{"create", "secret", "sops", "x", "--age-key-file", key, "--password", "hunter22"},
	} {
		code, out, errOut := plumbIn(ctx, "", args...)
		g.Expect(code).To(Equal(ExitUsage), "%v: %s", args, errOut)
		g.Expect(errOut).To(HavePrefix("plumb: "), "%v", args)
		g.Expect(strings.Count(errOut, "\n")).To(BeZero(), "one line: %v", args)
		g.Expect(out+errOut).NotTo(ContainSubstring("hunter22"), "%v", args)
	}
}
