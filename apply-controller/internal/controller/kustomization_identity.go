package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/fluxcd/pkg/auth"
	"github.com/fluxcd/pkg/auth/aws"
	"github.com/fluxcd/pkg/auth/azure"
	"github.com/fluxcd/pkg/auth/gcp"
	"github.com/fluxcd/pkg/cache"
	"golang.org/x/oauth2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
)

// DecryptionIdentity is what spec.decryption.serviceAccountName needs: a token of the
// ServiceAccount, exchanged by fluxcd/pkg/auth for the cloud's (as the ServiceAccount's
// eks.amazonaws.com/role-arn, iam.gke.io/gcp-service-account or azure.workload.identity/*
// annotations say), opens the KMS keys the decryption Secret holds no credentials for
// (shared/sops). Exchanged tokens are cached until shortly before they expire.
type DecryptionIdentity struct {
	// Enabled is the ObjectLevelWorkloadIdentity feature gate.
	Enabled bool
	// Cache keeps the exchanged tokens (nil: none kept).
	Cache *cache.TokenCache
	// AWS, Azure and GCP exchange the tokens: the zero values in the controller; tests give
	// them an Implementation.
	AWS   aws.Provider
	Azure azure.Provider
	GCP   gcp.Provider
}

// serviceAccount is the cloud identity of the ServiceAccount name of obj's namespace; kube reads
// the ServiceAccount (never cached) and asks for its tokens.
func (i DecryptionIdentity) serviceAccount(kube client.Client, obj *applyv1.Kustomization, name string) *serviceAccountIdentity {
	return &serviceAccountIdentity{DecryptionIdentity: i, kube: kube, namespace: obj.Namespace, name: name,
		object: cache.InvolvedObject{Kind: applyv1.KustomizationKind, Name: obj.Name, Namespace: obj.Namespace, Operation: cache.OperationReconcile}}
}

// serviceAccountIdentity implements sops.CloudIdentity with one ServiceAccount's tokens.
type serviceAccountIdentity struct {
	DecryptionIdentity
	kube            client.Client
	namespace, name string
	object          cache.InvolvedObject
}

// token exchanges the ServiceAccount's token with provider. Errors name the ServiceAccount and
// never hold a token.
func (s *serviceAccountIdentity) token(ctx context.Context, provider auth.Provider, extra ...auth.Option) (auth.Token, error) {
	opts := []auth.Option{auth.WithClient(s.kube), auth.WithServiceAccountNamespace(s.namespace), auth.WithServiceAccountName(s.name)}
	if s.Cache != nil {
		opts = append(opts, auth.WithCache(*s.Cache, s.object))
	}
	t, err := auth.GetAccessToken(ctx, provider, append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("%s token of ServiceAccount %s/%s: %s", provider.GetName(), s.namespace, s.name, strings.Join(strings.Fields(err.Error()), " "))
	}
	return t, nil
}

// AWS implements sops.CloudIdentity: STS in the key's region, within ctx (the SDK's own context
// of the call never ends).
func (s *serviceAccountIdentity) AWS(ctx context.Context, region string) awssdk.CredentialsProvider {
	return awssdk.CredentialsProviderFunc(func(context.Context) (awssdk.Credentials, error) {
		t, err := s.token(ctx, s.DecryptionIdentity.AWS, auth.WithSTSRegion(region))
		if err != nil {
			return awssdk.Credentials{}, err
		}
		c, ok := t.(*aws.Credentials)
		if !ok || c.AccessKeyId == nil || c.SecretAccessKey == nil {
			return awssdk.Credentials{}, errors.New("the AWS token exchange gave no credentials")
		}
		out := awssdk.Credentials{AccessKeyID: *c.AccessKeyId, SecretAccessKey: *c.SecretAccessKey, Source: "ServiceAccount " + s.namespace + "/" + s.name}
		if c.SessionToken != nil {
			out.SessionToken = *c.SessionToken
		}
		if c.Expiration != nil && !c.Expiration.IsZero() {
			out.CanExpire, out.Expires = true, *c.Expiration
		}
		return out, nil
	})
}

// Azure implements sops.CloudIdentity: Entra ID, for the scopes Key Vault asks for, within ctx.
func (s *serviceAccountIdentity) Azure(ctx context.Context) azcore.TokenCredential {
	return azureCredential{ctx: ctx, s: s}
}

type azureCredential struct {
	ctx context.Context
	s   *serviceAccountIdentity
}

func (c azureCredential) GetToken(_ context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	var extra []auth.Option
	if len(o.Scopes) > 0 {
		extra = append(extra, auth.WithScopes(slices.Clone(o.Scopes)...))
	}
	t, err := c.s.token(c.ctx, c.s.DecryptionIdentity.Azure, extra...)
	if err != nil {
		return azcore.AccessToken{}, err
	}
	at, ok := t.(*azure.Token)
	if !ok {
		return azcore.AccessToken{}, errors.New("the Azure token exchange gave no access token")
	}
	return at.AccessToken, nil
}

// GCP implements sops.CloudIdentity. oauth2.TokenSource takes no context: ctx, the call's, is
// kept.
func (s *serviceAccountIdentity) GCP(ctx context.Context) oauth2.TokenSource {
	return gcpTokenSource{ctx: ctx, s: s}
}

type gcpTokenSource struct {
	ctx context.Context
	s   *serviceAccountIdentity
}

func (g gcpTokenSource) Token() (*oauth2.Token, error) {
	t, err := g.s.token(g.ctx, g.s.DecryptionIdentity.GCP)
	if err != nil {
		return nil, err
	}
	gt, ok := t.(*gcp.Token)
	if !ok {
		return nil, errors.New("the Google token exchange gave no access token")
	}
	return &gt.Token, nil
}
