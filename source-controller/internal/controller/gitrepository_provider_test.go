package controller

import (
	"context"
	"path"
	"strconv"
	"testing"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/gittestserver"
	. "github.com/onsi/gomega"

	"github.com/plumb-dev/plumb/shared/testing/githubtest"
	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
)

// gitHubApp starts a loopback GitHub API and a Git server of the package's repositories that
// only the app's first installation token opens, and returns the app's Secret data.
func gitHubApp(t *testing.T) (*githubtest.Server, string, map[string]string) {
	t.Helper()
	api := githubtest.New(t)
	srv := gittestserver.NewGitServer(gitServer.Root()).Auth("x-access-token", api.Token(1))
	if err := srv.StartHTTP(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.StopHTTP)
	return api, srv.HTTPAddress(), map[string]string{
		"githubAppID":             strconv.FormatInt(api.AppID, 10),
		"githubAppInstallationID": strconv.FormatInt(api.InstallationID, 10),
		"githubAppPrivateKey":     string(api.PrivateKeyPEM),
		"githubAppBaseURL":        api.URL,
	}
}

// Two GitRepositories of one GitHub App fetch with its installation token; they and their
// later reconciles make one token request.
func TestGitRepository_GitHubApp(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	api, addr, app := gitHubApp(t)
	repo := newRepo(t, map[string]string{"app.yaml": "v: 1\n"})
	head, _ := repo.repo.Head()
	revision := "main@sha1:" + head.Hash().String()
	url := addr + "/" + path.Base(repo.url)

	var objs []*sourcev1.GitRepository
	for range 2 {
		obj := newGitRepository(ns, url, credentialsSecret(t, ns, app), nil)
		obj.Spec.Provider = "github"
		create(g, obj)
		objs = append(objs, obj)
	}
	for _, obj := range objs {
		waitReady(g, obj, revision)
	}
	g.Expect(files(g, objs[0].Status.Artifact)).To(Equal(map[string]string{"app.yaml": "v: 1\n"}))
	requested := requestReconcile(g, objs[1])
	g.Eventually(func(g Gomega) {
		g.Expect(get(g, objs[1]).Status.LastHandledReconcileAt).To(Equal(requested))
	}, timeout).Should(Succeed())
	g.Expect(api.Issued()).To(HaveLen(1))
	g.Expect(api.Refused()).To(BeEmpty())

	// The generic provider with the same Secret has no credentials the server takes.
	generic := newGitRepository(ns, url, credentialsSecret(t, ns, app), nil)
	create(g, generic)
	waitFailed(g, generic, sourcev1.AuthenticationFailedReason)
}

// A private key that is no key, or an installation the API does not know, is
// AuthenticationFailed with a message naming the Secret's key, never its value.
func TestGitRepository_GitHubAppFailures(t *testing.T) {
	ns := newNamespace(t)
	api, addr, app := gitHubApp(t)
	repo := newRepo(t, map[string]string{"a": "1\n"})
	url := addr + "/" + path.Base(repo.url)
	keyLine := string(api.PrivateKeyPEM[40:80])
	for _, tc := range []struct {
		name, key, value, msg string
	}{
		{"bad private key", "githubAppPrivateKey", keyLine, "`githubAppPrivateKey` is not a PEM RSA private key"},
		{"unknown installation", "githubAppInstallationID", "404", "has no installation 404"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			data := map[string]string{}
			for k, v := range app {
				data[k] = v
			}
			data[tc.key] = tc.value
			obj := newGitRepository(ns, url, credentialsSecret(t, ns, data), nil)
			obj.Spec.Provider = "github"
			create(g, obj)
			msg := waitFailed(g, obj, sourcev1.AuthenticationFailedReason)
			g.Expect(msg).To(ContainSubstring(tc.msg))
			g.Expect(msg).NotTo(ContainSubstring(keyLine))
		})
	}
	if n := len(api.Issued()); n != 0 {
		t.Fatalf("%d tokens issued for bad Secrets", n)
	}
}

// serviceAccountName belongs to provider azure; the API server says so.
func TestGitRepository_ServiceAccountNeedsAzure(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	obj := newGitRepository(ns, "https://github.com/acme/app.git", "", nil)
	obj.Spec.Provider = "github"
	obj.Spec.ServiceAccountName = "deployer"
	err := k8s.Create(context.Background(), obj)
	g.Expect(err).To(MatchError(ContainSubstring("serviceAccountName can only be set when provider is 'azure'")))
	obj.Spec.Provider = "azure"
	obj.Spec.SecretRef = &meta.LocalObjectReference{Name: "unused"}
	g.Expect(k8s.Create(context.Background(), obj)).To(Succeed())
}
