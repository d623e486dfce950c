package controller

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	ststypes "github.com/aws/aws-sdk-go-v2/service/sts/types"
	"github.com/fluxcd/pkg/apis/meta"
	awsauth "github.com/fluxcd/pkg/auth/aws"
	azureauth "github.com/fluxcd/pkg/auth/azure"
	gcpauth "github.com/fluxcd/pkg/auth/gcp"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google/externalaccount"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/shared/sops/sopstest"
	"github.com/plumb-dev/plumb/shared/testing/cloudtest"
	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
)

// fakeSTS answers AssumeRoleWithWebIdentity for the suite's reconciler with the one access key
// sopstest's KMS decrypts for, and records what it was asked. The other methods of the
// Implementation are never called (they would panic).
type fakeSTS struct {
	awsauth.Implementation
	mu    sync.Mutex
	calls []stsCall
}

type stsCall struct{ role, token, region string }

const stsSecret = "sts-secret-key-not-for-logs"

func (f *fakeSTS) AssumeRoleWithWebIdentity(_ context.Context, in *sts.AssumeRoleWithWebIdentityInput, o sts.Options) (*sts.AssumeRoleWithWebIdentityOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, stsCall{role: aws.ToString(in.RoleArn), token: aws.ToString(in.WebIdentityToken), region: o.Region})
	return &sts.AssumeRoleWithWebIdentityOutput{Credentials: &ststypes.Credentials{
		AccessKeyId: aws.String(sopstest.KMSAccessKeyID), SecretAccessKey: aws.String(stsSecret),
		SessionToken: aws.String("sts-session-token"), Expiration: aws.Time(time.Now().Add(time.Hour)),
	}}, nil
}

func (f *fakeSTS) seen() []stsCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]stsCall(nil), f.calls...)
}

var stsFake = &fakeSTS{}

// A file sealed with an AWS KMS key opens with the cloud identity of the ServiceAccount that
// spec.decryption.serviceAccountName names: the API server's token for it, exchanged for the
// role of its annotation in the key's region; no Secret is needed. A ServiceAccount that does
// not exist fails with DecryptionFailed naming it; without the feature gate the Kustomization
// is Stalled with FeatureGateDisabled.
func TestKustomization_DecryptsWithTheServiceAccountsCloudIdentity(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	kms := sopstest.NewKMS(t)
	t.Setenv("AWS_ENDPOINT_URL_KMS", kms.URL) // read by the AWS SDK of the running controller
	// The suite's reconciler has a KMSHTTPClient, a plain *http.Client, with which the AWS SDK
	// refuses a CA bundle the machine's environment may name.
	t.Setenv("AWS_CA_BUNDLE", "")
	ns := newNamespace(t)
	const role = "arn:aws:iam::000000000000:role/decrypter"
	g.Expect(k8s.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "decrypter", Namespace: ns,
		Annotations: map[string]string{"eks.amazonaws.com/role-arn": role}}})).To(Succeed())

	const password = "kms-plaintext-7781"
	sealed := sopsSecret(t, password, sopstest.KMSKeyARN, sopstest.Options{AWS: credentials.NewStaticCredentialsProvider(sopstest.KMSAccessKeyID, stsSecret, "")})
	before := len(stsFake.seen())
	gr, k := applySealed(t, ns, "decrypter", sealed, password)

	calls := stsFake.seen()[before:]
	g.Expect(calls).To(HaveLen(1), "one exchange")
	g.Expect(calls[0].role).To(Equal(role))
	g.Expect(calls[0].region).To(Equal("us-east-1"), "the key ARN's region")
	claims, err := cloudtest.JWTClaims(calls[0].token)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(claims["sub"]).To(Equal("system:serviceaccount:" + ns + ":decrypter"))
	g.Expect(claims["aud"]).To(ContainElement("sts.amazonaws.com"))
	h := kms.Headers()
	g.Expect(h).NotTo(BeEmpty())
	g.Expect(h[len(h)-1]).To(ContainSubstring("Credential=" + sopstest.KMSAccessKeyID + "/"))

	// Another ServiceAccount, which does not exist: DecryptionFailed names it; no exchange.
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(k), k)).To(Succeed())
	k.Spec.Decryption.ServiceAccountName = "absent"
	g.Expect(k8s.Update(ctx, k)).To(Succeed())
	msg := waitNotReady(g, k, applyv1.DecryptionFailedReason)
	g.Expect(msg).To(ContainSubstring("ServiceAccount " + ns + "/absent"))
	g.Expect(msg).NotTo(ContainSubstring(stsSecret))
	g.Expect(stsFake.seen()).To(HaveLen(before + 1))
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "db"}, &corev1.Secret{})).To(Succeed(), "what was applied stays")

	// The same artifact in another namespace, whose ServiceAccount of that name has no role: the
	// build decrypted with the first one's identity is not reused.
	ns2 := newNamespace(t)
	g.Expect(k8s.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "decrypter", Namespace: ns2}})).To(Succeed())
	gr2 := source(t, ns2, "app", "main@sha1:1", map[string]string{"deploy/secret.yaml": sealed})
	g.Expect(gr2.Status.Artifact.Digest).To(Equal(gr.Status.Artifact.Digest), "the same artifact, so that a build could be shared")
	k2 := newKustomization(ns2, gr2.Name, withDecryptionIdentity("decrypter"), func(k *applyv1.Kustomization) {
		k.Spec.TargetNamespace = ns // every build option the same as the first one's
	})
	g.Expect(k8s.Create(ctx, k2)).To(Succeed())
	msg = waitNotReady(g, k2, applyv1.DecryptionFailedReason)
	g.Expect(msg).To(ContainSubstring("ServiceAccount " + ns2 + "/decrypter"))
	g.Expect(msg).To(ContainSubstring("eks.amazonaws.com/role-arn"))

	// --default-decryption-service-account stands for the field when a Kustomization names
	// none: its build opens the key with that ServiceAccount's identity.
	withDefault := &KustomizationReconciler{Events: reconciler.Events, Client: reconciler.Client, APIReader: reconciler.APIReader,
		DecryptionIdentity: reconciler.DecryptionIdentity, DefaultDecryptionServiceAccount: "decrypter"}
	plainK := newKustomization(ns, gr.Name, func(k *applyv1.Kustomization) {
		k.Spec.Decryption = &applyv1.Decryption{Provider: applyv1.DecryptionProviderSOPS}
	})
	opts, _, err := withDefault.buildOptions(ctx, plainK)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(opts.SecretVersions).To(ContainElement(HavePrefix("decryption-serviceaccount@")))
	out, _, err := opts.Decryptor.Decrypt("deploy/secret.yaml", []byte(sealed))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(out)).To(ContainSubstring(password))
	plainK.Spec.Decryption = nil
	g.Expect(withDefault.decryptionServiceAccount(plainK)).To(BeEmpty(), "no decryption, no ServiceAccount")

	// A controller without the feature gate stalls such a Kustomization.
	off := &KustomizationReconciler{Events: reconciler.Events}
	_, _, err = off.buildOptions(ctx, k)
	g.Expect(err).To(HaveOccurred())
	g.Expect(conditions.IsStalled(k)).To(BeTrue())
	g.Expect(conditions.GetReason(k, meta.ReadyCondition)).To(Equal(applyv1.FeatureGateDisabledReason))
	g.Expect(conditions.GetMessage(k, meta.ReadyCondition)).To(ContainSubstring("--feature-gates=ObjectLevelWorkloadIdentity=true"))
}

// applySealed applies sealed, a Secret "db" sealed by sopsSecret, from a new source in ns, with
// the decryption identity of ServiceAccount sa, and checks the password it holds in the cluster.
func applySealed(t *testing.T, ns, sa, sealed, password string) (*sourcev1.GitRepository, *applyv1.Kustomization) {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	gr := source(t, ns, "app", "main@sha1:1", map[string]string{"deploy/secret.yaml": sealed})
	k := newKustomization(ns, gr.Name, withDecryptionIdentity(sa))
	g.Expect(k8s.Create(ctx, k)).To(Succeed())
	waitApplied(g, k, "main@sha1:1")
	var s corev1.Secret
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "db"}, &s)).To(Succeed())
	g.Expect(string(s.Data["password"])).To(Equal(password))
	return gr, k
}

// fakeGoogleSTS stands for Google's STS, reached by the external account configuration
// fluxcd/pkg/auth builds: it reads the ServiceAccount's token from the configuration's supplier,
// records it with the audience, and answers an access token that sopstest's Cloud KMS accepts.
type fakeGoogleSTS struct {
	gcpauth.Implementation
	mu                sync.Mutex
	audience, subject string
}

const googleToken = "ya29.from-the-exchange"

func (f *fakeGoogleSTS) NewTokenSource(ctx context.Context, conf externalaccount.Config) (oauth2.TokenSource, error) {
	tok, err := conf.SubjectTokenSupplier.SubjectToken(ctx, externalaccount.SupplierOptions{Audience: conf.Audience, SubjectTokenType: conf.SubjectTokenType})
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.audience, f.subject = conf.Audience, tok
	return oauth2.StaticTokenSource(&oauth2.Token{AccessToken: googleToken, Expiry: time.Now().Add(time.Hour)}), nil
}

var googleFake = &fakeGoogleSTS{}

// A file sealed with a Cloud KMS key opens with the Google identity of the ServiceAccount: its
// token, for the audience of the workload identity provider its annotation names, exchanged for
// the access token Cloud KMS receives.
func TestKustomization_DecryptsWithTheServiceAccountsGoogleIdentity(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	kms := sopstest.NewGCPKMS(t, googleToken)
	t.Setenv("SOPS_GCP_KMS_ENDPOINT", kms.URL) // read by SOPS in the running controller
	t.Setenv("SOPS_GCP_KMS_CLIENT_TYPE", "rest")
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", "")
	t.Setenv("GOOGLE_CREDENTIALS", "")
	ns := newNamespace(t)
	const provider = "projects/123/locations/global/workloadIdentityPools/pool/providers/plumb"
	g.Expect(k8s.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "kms", Namespace: ns,
		Annotations: map[string]string{"gcp.auth.fluxcd.io/workload-identity-provider": provider}}})).To(Succeed())

	const password = "gcp-plaintext-4410"
	sealed := sopsSecret(t, password, sopstest.GCPKeyID, sopstest.Options{GCP: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: googleToken})})
	applySealed(t, ns, "kms", sealed, password)

	googleFake.mu.Lock()
	audience, subject := googleFake.audience, googleFake.subject
	googleFake.mu.Unlock()
	g.Expect(audience).To(Equal("//iam.googleapis.com/" + provider))
	claims, err := cloudtest.JWTClaims(subject)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(claims["sub"]).To(Equal("system:serviceaccount:" + ns + ":kms"))
	g.Expect(kms.Authorizations()).To(ContainElement("Bearer " + googleToken))
}

// fakeEntraID stands for Entra ID, reached through the client assertion credential
// fluxcd/pkg/auth makes for the ServiceAccount's application: the credential reads the
// ServiceAccount's token as its assertion, records it with the tenant, the client and the scopes
// asked for, and answers an access token that sopstest's KeyVault accepts.
type fakeEntraID struct {
	azureauth.Implementation
	mu                        sync.Mutex
	tenant, client, assertion string
	scopes                    []string
}

const azureToken = "entra-from-the-exchange"

func (f *fakeEntraID) NewClientAssertionCredential(tenantID, clientID string, getAssertion func(context.Context) (string, error), _ *azidentity.ClientAssertionCredentialOptions) (azcore.TokenCredential, error) {
	return assertionCredential{f: f, tenant: tenantID, client: clientID, getAssertion: getAssertion}, nil
}

type assertionCredential struct {
	f              *fakeEntraID
	tenant, client string
	getAssertion   func(context.Context) (string, error)
}

func (c assertionCredential) GetToken(ctx context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	a, err := c.getAssertion(ctx)
	if err != nil {
		return azcore.AccessToken{}, err
	}
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	c.f.tenant, c.f.client, c.f.assertion, c.f.scopes = c.tenant, c.client, a, append([]string(nil), o.Scopes...)
	return azcore.AccessToken{Token: azureToken, ExpiresOn: time.Now().Add(time.Hour)}, nil
}

var entraFake = &fakeEntraID{}

// A file sealed with an Azure Key Vault key opens with the Entra ID application of the
// ServiceAccount: its token, for Entra ID's audience, is the assertion exchanged for an access
// token of the scope Key Vault's challenge names. The vault answers no other token: had the
// controller used none or its own, decryption would fail and the Kustomization never apply.
func TestKustomization_DecryptsWithTheServiceAccountsAzureIdentity(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	vault := sopstest.NewKeyVault(t, azureToken)
	ns := newNamespace(t)
	const tenant, clientID = "6b1c3f5e-0000-4000-8000-00000000a2fe", "0f2d4e6a-0000-4000-8000-0000000c11e7"
	g.Expect(k8s.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "vault", Namespace: ns,
		Annotations: map[string]string{"azure.workload.identity/tenant-id": tenant, "azure.workload.identity/client-id": clientID}}})).To(Succeed())

	const password = "azure-plaintext-6203"
	sealed := sopsSecret(t, password, vault.Key, sopstest.Options{Azure: sopstest.KeyVaultCredential(azureToken), HTTPClient: sopstest.KeyVaultClient()})
	g.Expect(sealed).To(ContainSubstring(vault.URL), "sealed with the loopback's key")
	applySealed(t, ns, "vault", sealed, password)

	entraFake.mu.Lock()
	gotTenant, gotClient, assertion, scopes := entraFake.tenant, entraFake.client, entraFake.assertion, entraFake.scopes
	entraFake.mu.Unlock()
	g.Expect(gotTenant).To(Equal(tenant))
	g.Expect(gotClient).To(Equal(clientID))
	g.Expect(scopes).To(Equal([]string{vault.Scope}), "the scope of Key Vault's challenge")
	claims, err := cloudtest.JWTClaims(assertion)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(claims["sub"]).To(Equal("system:serviceaccount:" + ns + ":vault"))
	g.Expect(claims["aud"]).To(ContainElement("api://AzureADTokenExchange"))
	auths := vault.Authorizations()
	g.Expect(auths).NotTo(BeEmpty())
	g.Expect(auths).To(HaveEach("Bearer " + azureToken))
}
