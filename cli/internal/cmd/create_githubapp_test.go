package cmd

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/plumb-dev/plumb/shared/gitauth"
)

func TestCreateSecretGitHubApp(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(g)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	g.Expect(err).NotTo(HaveOccurred())
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)}))
	keyLine := strings.Split(keyPEM, "\n")[3]
	dir := t.TempDir()
	keyFile := writeFile(g, dir, "app.pem", keyPEM)

	code, out, errOut := plumb(ctx, "create", "secret", "githubapp", "app", "-n", ns, "--app-id", "123", "--installation-id", "456", "--private-key-file", keyFile)
	g.Expect(code).To(Equal(0), errOut)
	g.Expect(out + errOut).NotTo(ContainSubstring(keyLine))
	s := secretOf(g, ns, "app")
	g.Expect(keysOf(s.Data)).To(Equal([]string{"githubAppID", "githubAppInstallationID", "githubAppPrivateKey"}))
	app, err := gitauth.GitHubAppFromSecret(s.Data, "")
	g.Expect(err).NotTo(HaveOccurred(), "the controllers read the Secret")
	g.Expect(app.ID).To(Equal(int64(123)))
	g.Expect(app.InstallationID).To(Equal(int64(456)))
	g.Expect(app.APIURL).To(Equal("https://api.github.com"))

	// Exported, with an owner and a GitHub Enterprise API.
	code, out, errOut = plumb(ctx, "create", "secret", "githubapp", "ghe", "-n", "apps", "--app-id", "12", "--installation-owner", "platform",
		"--private-key-file", keyFile, "--base-url", "https://github.example.com/api/v3", "--export")
	g.Expect(code).To(Equal(0), errOut)
	var exported corev1.Secret
	g.Expect(yaml.UnmarshalStrict([]byte(out), &exported)).To(Succeed(), out)
	app, err = gitauth.GitHubAppFromSecret(exported.Data, "")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(app.InstallationOwner).To(Equal("platform"))
	g.Expect(app.APIURL).To(Equal("https://github.example.com/api/v3"))

	notKey := writeFile(g, dir, "not.pem", "-----BEGIN RSA PRIVATE KEY-----\n"+keyLine+"\n-----END RSA PRIVATE KEY-----\n")
	for _, args := range [][]string{
		{"--installation-id", "1", "--private-key-file", keyFile},
		{"--app-id", "1", "--private-key-file", keyFile},
		{"--app-id", "1", "--installation-id", "1", "--installation-owner", "acme", "--private-key-file", keyFile},
		{"--app-id", "1", "--installation-id", "1"},
		{"--app-id", "1", "--installation-id", "1", "--private-key-file", filepath.Join(dir, "missing")},
		{"--app-id", "1", "--installation-id", "1", "--private-key-file", notKey},
		{"--app-id", "1", "--installation-id", "1", "--private-key-file", keyFile, "--base-url", "ftp://example.com"},
	} {
		code, out, errOut := plumb(ctx, append([]string{"create", "secret", "githubapp", "x", "-n", ns}, args...)...)
		g.Expect(code).To(Equal(ExitUsage), "%v: %s", args, errOut)
		g.Expect(errOut).To(HavePrefix("plumb: "), "%v", args)
		g.Expect(out+errOut).NotTo(ContainSubstring(keyLine), "%v", args)
	}
	code, _, errOut = plumb(ctx, "create", "secret", "githubapp", "x", "-n", ns, "--app-id", "1", "--installation-id", "1", "--private-key-file", notKey)
	g.Expect(code).To(Equal(ExitUsage))
	g.Expect(errOut).To(ContainSubstring("--private-key-file " + notKey + " is not a PEM RSA private key"))
}
