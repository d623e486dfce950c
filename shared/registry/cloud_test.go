package registry

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	. "github.com/onsi/gomega"

	"github.com/plumb-dev/plumb/shared/proxy"
	"github.com/plumb-dev/plumb/shared/testing/cloudtest"
	"github.com/plumb-dev/plumb/shared/testing/ocitest"
	"github.com/plumb-dev/plumb/shared/testing/testenv"
)

// The tests below set the process environment (the SDKs read it): none of them is parallel.

const ecrHost = "123456789012.dkr.ecr.us-east-1.amazonaws.com"

// isolateClouds keeps the SDKs from finding anything of the machine's: config files, keys,
// metadata services.
func isolateClouds(t *testing.T) {
	dir := t.TempDir()
	for k, v := range map[string]string{
		"HOME": dir, "CLOUDSDK_CONFIG": dir, "GOOGLE_APPLICATION_CREDENTIALS": "",
		"AWS_CONFIG_FILE": filepath.Join(dir, "aws-config"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "aws-credentials"),
		"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "", "AWS_PROFILE": "",
		"AWS_ROLE_ARN": "", "AWS_WEB_IDENTITY_TOKEN_FILE": "", "AWS_EC2_METADATA_DISABLED": "true",
		"AWS_ENDPOINT_URL": "", "AWS_REGION": "", "AWS_CA_BUNDLE": "", "AWS_ENDPOINT_URL_STS": "", "AWS_ENDPOINT_URL_ECR": "",
		"AZURE_CLIENT_ID": "", "AZURE_TENANT_ID": "", "AZURE_CLIENT_SECRET": "", "AZURE_FEDERATED_TOKEN_FILE": "",
		"IDENTITY_ENDPOINT": "", "IDENTITY_HEADER": "", "MSI_ENDPOINT": "", "GCE_METADATA_HOST": "",
	} {
		t.Setenv(k, v) // restores the old value at the end of the test
		if v == "" {
			// The SDKs tell a variable set to "" from one not set.
			_ = os.Unsetenv(k)
		}
	}
}

// irsa sets the environment EKS's webhook gives a pod with IAM Roles for Service Accounts, with
// the SDK's endpoint overrides pointing at the loopback servers.
func irsa(t *testing.T, aws *cloudtest.AWS) {
	isolateClouds(t)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("projected-sa-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/plumb-source")
	t.Setenv("AWS_WEB_IDENTITY_TOKEN_FILE", tokenFile)
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ENDPOINT_URL_STS", aws.URL)
	t.Setenv("AWS_ENDPOINT_URL_ECR", aws.URL)
}

// distribution runs docker-registry accepting user and password, with an artifact at org/app:v1.
func distribution(t *testing.T, user, password string) string {
	t.Helper()
	d, err := ocitest.StartDistribution(t.TempDir(), user, password)
	if errors.Is(err, ocitest.ErrNoDistribution) {
		testenv.MissingTool(t, "docker-registry", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Stop)
	layer := ocitest.Layer{MediaType: ocitest.ContentType, Data: ocitest.Tarball(map[string]string{"a.yaml": "a: 1\n"})}
	if _, err := ocitest.Push(d.Host, "org/app", "v1", []ocitest.Layer{layer}, remote.WithAuth(&authn.Basic{Username: user, Password: password})); err != nil {
		t.Fatal(err)
	}
	return d.Host
}

func headVia(repo name.Repository, c Credentials) error {
	opts, err := Options(repo, c)
	if err != nil {
		return err
	}
	_, err = remote.Head(repo.Tag("v1"), opts...)
	return err
}

func newCloud(t *testing.T, objectLevel bool) *Cloud {
	c, err := NewCloud(CloudOptions{CacheSize: 8, ObjectLevel: objectLevel})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// IRSA: STS AssumeRoleWithWebIdentity with the projected token, then ECR GetAuthorizationToken
// signed with the assumed keys; the docker-registry accepts the token ECR issued; a second
// object with the same identity and registry costs no exchange.
func TestCloudAWS(t *testing.T) {
	g := NewWithT(t)
	aws := cloudtest.NewAWS(t, "ecr-issued-password")
	irsa(t, aws)
	host := distribution(t, "AWS", aws.Password)
	p := cloudtest.NewProxy(t)
	p.Route(ecrHost+":80", host)
	repo, err := name.NewRepository(ecrHost+"/org/app", name.Insecure)
	g.Expect(err).NotTo(HaveOccurred())
	px := &proxy.Proxy{URL: p.URL}
	cloud := newCloud(t, false)

	anonymous := Credentials{Insecure: true, Proxy: px}
	g.Expect(statusOf(headVia(repo, anonymous))).To(Equal(http.StatusUnauthorized), "the registry wants credentials")

	for _, obj := range []string{"a", "b"} {
		creds := Credentials{Insecure: true, Proxy: px}
		err := cloud.Login(context.Background(), nil, repo, Identity{Provider: ProviderAWS, Namespace: "apps", Kind: "OCIRepository", Name: obj, Proxy: px}, &creds)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(headVia(repo, creds)).To(Succeed(), "the registry accepts ECR's token")
	}
	g.Expect(aws.Rejected()).To(BeEmpty())
	g.Expect(aws.ECRCalls()).To(Equal(1), "one token for both objects")
	g.Expect(aws.ECRRegion()).To(Equal("us-east-1"), "signed for the registry's region")
	assumes := aws.Assumes()
	g.Expect(assumes).To(HaveLen(1))
	g.Expect(assumes[0].Get("WebIdentityToken")).To(Equal("projected-sa-token"))
	g.Expect(assumes[0].Get("RoleArn")).To(Equal("arn:aws:iam::123456789012:role/plumb-source"))
	g.Expect(p.Served(ecrHost+":80")).To(BeNumerically(">", 0), "the registry was reached by its ECR name")
}

// A token is used until 80 % of its life: one that expires soon is fetched again, without a
// new STS exchange (the assumed role's keys live an hour).
func TestCloudAWS_RefreshesATokenNearExpiry(t *testing.T) {
	g := NewWithT(t)
	aws := cloudtest.NewAWS(t, "pw")
	irsa(t, aws)
	aws.SetLifetime(2 * time.Second)
	repo, _ := name.NewRepository(ecrHost + "/org/app")
	cloud := newCloud(t, false)
	login := func() error {
		return cloud.Login(context.Background(), nil, repo, Identity{Provider: ProviderAWS, Namespace: "apps", Kind: "OCIRepository", Name: "a"}, &Credentials{})
	}
	g.Expect(login()).To(Succeed())
	g.Expect(login()).To(Succeed())
	g.Expect(aws.ECRCalls()).To(Equal(1), "cached while fresh")
	g.Eventually(func() int {
		_ = login()
		return aws.ECRCalls()
	}, 10*time.Second, 100*time.Millisecond).Should(Equal(2))
	g.Expect(aws.Assumes()).To(HaveLen(1))
}

// A request the fake cannot verify is refused, so the signature check is real; the error names
// the provider and the registry, never a key.
func TestCloudAWS_Failures(t *testing.T) {
	aws := cloudtest.NewAWS(t, "pw")
	repo, _ := name.NewRepository(ecrHost + "/org/app")
	id := Identity{Provider: ProviderAWS, Namespace: "apps", Kind: "OCIRepository", Name: "a"}

	t.Run("wrong secret key", func(t *testing.T) {
		g := NewWithT(t)
		isolateClouds(t)
		aws.AddKey("AKIATESTCONTROLLER", "the-right-secret")
		t.Setenv("AWS_ACCESS_KEY_ID", "AKIATESTCONTROLLER")
		t.Setenv("AWS_SECRET_ACCESS_KEY", "a-wrong-secret")
		t.Setenv("AWS_ENDPOINT_URL_ECR", aws.URL)
		err := newCloud(t, false).Login(context.Background(), nil, repo, id, &Credentials{})
		g.Expect(err).To(MatchError(ErrAuth))
		g.Expect(err.Error()).To(ContainSubstring("provider aws: getting credentials for " + ecrHost + " with the controller's identity"))
		g.Expect(err.Error()).To(ContainSubstring("InvalidSignatureException"))
		g.Expect(err.Error()).NotTo(ContainSubstring("a-wrong-secret"))
		g.Expect(aws.Rejected()).To(ContainElement("signature does not match"))
	})
	t.Run("access denied", func(t *testing.T) {
		g := NewWithT(t)
		isolateClouds(t)
		aws.AddKey("AKIATESTCONTROLLER", "the-right-secret")
		t.Setenv("AWS_ACCESS_KEY_ID", "AKIATESTCONTROLLER")
		t.Setenv("AWS_SECRET_ACCESS_KEY", "the-right-secret")
		t.Setenv("AWS_ENDPOINT_URL_ECR", aws.URL)
		aws.Fail("not authorized to perform ecr:GetAuthorizationToken")
		t.Cleanup(func() { aws.Fail("") })
		err := newCloud(t, false).Login(context.Background(), nil, repo, id, &Credentials{})
		g.Expect(err).To(MatchError(ErrAuth))
		g.Expect(err.Error()).To(ContainSubstring("not authorized to perform ecr:GetAuthorizationToken"))
	})
	t.Run("not an ECR host", func(t *testing.T) {
		g := NewWithT(t)
		other, _ := name.NewRepository("ghcr.io/org/app")
		err := newCloud(t, false).Login(context.Background(), nil, other, id, &Credentials{})
		g.Expect(err).To(MatchError(ErrProviderMismatch))
		g.Expect(err).To(MatchError("registry does not belong to the provider: provider aws: ghcr.io is not an ECR registry (<account>.dkr.ecr.<region>.amazonaws.com or public.ecr.aws)"))
	})
	t.Run("serviceAccountName without object-level identity", func(t *testing.T) {
		g := NewWithT(t)
		sa := id
		sa.ServiceAccount = "puller"
		err := newCloud(t, false).Login(context.Background(), nil, repo, sa, &Credentials{})
		g.Expect(err).To(MatchError(ErrObjectLevelIdentityDisabled))
		g.Expect(err.Error()).To(ContainSubstring("--feature-gates=ObjectLevelWorkloadIdentity=true"))
	})
}

// GKE: the metadata server's token is the password of oauth2accesstoken, which the registry
// accepts; two objects, one token.
func TestCloudGCP(t *testing.T) {
	g := NewWithT(t)
	isolateClouds(t)
	gcp := cloudtest.NewGCP(t, "ya29.metadata-token")
	t.Setenv("GCE_METADATA_HOST", gcp.Host)
	host := distribution(t, "oauth2accesstoken", gcp.Token)
	const gar = "europe-docker.pkg.dev"
	p := cloudtest.NewProxy(t)
	p.Route(gar+":80", host)
	repo, _ := name.NewRepository(gar+"/project/repo/org/app", name.Insecure)
	px := &proxy.Proxy{URL: p.URL}
	cloud := newCloud(t, false)
	g.Expect(statusOf(headVia(repo, Credentials{Insecure: true, Proxy: px}))).To(Equal(http.StatusUnauthorized))
	for _, obj := range []string{"a", "b"} {
		creds := Credentials{Insecure: true, Proxy: px}
		g.Expect(cloud.Login(context.Background(), nil, repo, Identity{Provider: ProviderGCP, Namespace: "apps", Kind: "ImageRepository", Name: obj}, &creds)).To(Succeed())
		err := headVia(repo, creds)
		if statusOf(err) == http.StatusNotFound {
			err = nil // the artifact is at org/app; this path only proves the registry let us in
		}
		g.Expect(err).NotTo(HaveOccurred())
	}
	g.Expect(gcp.Issued()).To(Equal(1))

	other, _ := name.NewRepository(ecrHost + "/org/app")
	err := cloud.Login(context.Background(), nil, other, Identity{Provider: ProviderGCP}, &Credentials{})
	g.Expect(err).To(MatchError(ErrProviderMismatch))
}

// AKS: a managed-identity token for ACR's audience, exchanged at the registry's /oauth2/exchange
// for a refresh token, which is the password of the null user.
func TestCloudAzure(t *testing.T) {
	g := NewWithT(t)
	isolateClouds(t)
	id := cloudtest.NewAzureIdentity(t, "entra-access-token")
	t.Setenv("IDENTITY_ENDPOINT", id.URL)
	t.Setenv("IDENTITY_HEADER", id.Header)
	const acrHost = "plumbtest.azurecr.io"
	acr := &cloudtest.ACR{AccessToken: id.Token}
	addr, ca := cloudtest.NewTLSServer(t, acr, acrHost)
	p := cloudtest.NewProxy(t)
	p.Route(acrHost+":443", addr)
	px := &proxy.Proxy{URL: p.URL}
	// The SDK's HTTP client starts from http.DefaultTransport and the system's CAs: trust the
	// fake registry's certificate there for this test.
	trustInDefaultTransport(t, ca)

	repo, _ := name.NewRepository(acrHost + "/org/app")
	cloud := newCloud(t, false)
	g.Expect(statusOf(headVia(repo, Credentials{CA: ca, Proxy: px}))).To(Equal(http.StatusUnauthorized))
	for _, obj := range []string{"a", "b"} {
		creds := Credentials{CA: ca, Proxy: px}
		g.Expect(cloud.Login(context.Background(), nil, repo, Identity{Provider: ProviderAzure, Namespace: "apps", Kind: "OCIRepository", Name: obj, Proxy: px}, &creds)).To(Succeed())
		g.Expect(statusOf(headVia(repo, creds))).To(Equal(http.StatusNotFound), "authenticated; nothing is pushed there")
	}
	ex := acr.Exchanges()
	g.Expect(ex).To(HaveLen(1), "one exchange for both objects")
	g.Expect(ex[0].Get("grant_type")).To(Equal("access_token"))
	g.Expect(ex[0].Get("service")).To(Equal(acrHost))
	g.Expect(ex[0].Get("access_token")).To(Equal("entra-access-token"))
	g.Expect(id.Resources()).To(Equal([]string{"https://containerregistry.azure.net"}))
}

func trustInDefaultTransport(t *testing.T, ca []byte) {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	orig := http.DefaultTransport
	tr := orig.(*http.Transport).Clone()
	tr.TLSClientConfig.RootCAs = pool
	http.DefaultTransport = tr
	t.Cleanup(func() { http.DefaultTransport = orig })
}

func TestValidProvider(t *testing.T) {
	g := NewWithT(t)
	for _, p := range []string{"", "generic", "aws", "azure", "gcp"} {
		g.Expect(ValidProvider(p)).To(BeTrue(), p)
	}
	g.Expect(ValidProvider("oracle")).To(BeFalse())
	g.Expect(IsCloud("generic")).To(BeFalse())
	g.Expect(IsCloud("")).To(BeFalse())
	g.Expect(IsCloud("gcp")).To(BeTrue())
}

func TestCloudFlags(t *testing.T) {
	tests := []struct {
		args        []string
		objectLevel bool
		err         string
	}{
		{nil, false, ""},
		{[]string{"--feature-gates=ObjectLevelWorkloadIdentity=true"}, true, ""},
		{[]string{"--feature-gates=ObjectLevelWorkloadIdentity"}, true, ""},
		{[]string{"--feature-gates=ObjectLevelWorkloadIdentity=false"}, false, ""},
		{[]string{"--feature-gates=Other=true"}, false, `unknown feature gate "Other"`},
		{[]string{"--feature-gates=ObjectLevelWorkloadIdentity=maybe"}, false, "is not true or false"},
		{[]string{"--token-cache-max-size=0"}, false, "--token-cache-max-size must be positive"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			g := NewWithT(t)
			var f CloudFlags
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			f.Bind(fs)
			err := fs.Parse(tt.args)
			var c *Cloud
			if err == nil {
				c, err = f.Cloud()
			}
			if tt.err != "" {
				g.Expect(err).To(MatchError(ContainSubstring(tt.err)))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(c.ObjectLevel()).To(Equal(tt.objectLevel))
		})
	}
}
