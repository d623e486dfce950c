package gitauth

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/fluxcd/pkg/auth/azure"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	. "github.com/onsi/gomega"
)

// entraIdentity stands for the SDK's workload identity credential: azidentity reaches Entra ID
// over TLS at a fixed authority, which a loopback test cannot serve, so the test gives
// fluxcd/pkg/auth's Azure provider this credential through its Implementation seam. What is
// tested is Plumb's glue: the DevOps scope asked for, the bearer token, the cache and the errors.
type entraIdentity struct {
	azure.Implementation
	calls  atomic.Int32
	scopes []string
	err    error
}

func (e *entraIdentity) NewDefaultAzureCredentialWithoutShellOut(*azidentity.DefaultAzureCredentialOptions) (azcore.TokenCredential, error) {
	return e, nil
}

func (e *entraIdentity) GetToken(_ context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	e.calls.Add(1)
	e.scopes = o.Scopes
	if e.err != nil {
		return azcore.AccessToken{}, e.err
	}
	return azcore.AccessToken{Token: "entra-t0ken", ExpiresOn: time.Now().Add(time.Hour)}, nil
}

func TestProviderRemote_Azure(t *testing.T) {
	g := NewWithT(t)
	id := &entraIdentity{}
	saved := azureProvider
	azureProvider = azure.Provider{Implementation: id}
	savedCache := azureTokens
	azureTokens = newTokenCache()
	t.Cleanup(func() { azureProvider, azureTokens = saved, savedCache })

	r, err := ProviderRemote(context.Background(), "https://dev.azure.com/org/project/_git/repo", Source{Provider: ProviderAzure})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(r.Auth).To(Equal(&githttp.TokenAuth{Token: "entra-t0ken"}))
	g.Expect(id.scopes).To(Equal([]string{azure.ScopeDevOps}))
	_, err = ProviderRemote(context.Background(), "https://dev.azure.com/org/other/_git/repo", Source{Provider: ProviderAzure})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(id.calls.Load()).To(Equal(int32(1)), "the token is cached for the process")

	_, err = ProviderRemote(context.Background(), "ssh://git@ssh.dev.azure.com/v3/org/project/repo", Source{Provider: ProviderAzure})
	g.Expect(errors.Is(err, ErrInvalid)).To(BeTrue())
}

func TestProviderRemote_AzureFails(t *testing.T) {
	g := NewWithT(t)
	saved := azureProvider
	azureProvider = azure.Provider{Implementation: &entraIdentity{err: errors.New("WorkloadIdentityCredential: no token file")}}
	savedCache := azureTokens
	azureTokens = newTokenCache()
	t.Cleanup(func() { azureProvider, azureTokens = saved, savedCache })
	_, err := ProviderRemote(context.Background(), "https://dev.azure.com/org/project/_git/repo", Source{Provider: ProviderAzure, Secret: nil})
	g.Expect(err).To(HaveOccurred())
	g.Expect(errors.Is(err, ErrAuth)).To(BeTrue())
	g.Expect(err.Error()).To(ContainSubstring("azure workload identity token for dev.azure.com"))
}
