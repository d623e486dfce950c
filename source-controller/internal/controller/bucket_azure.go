package controller

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	authazure "github.com/fluxcd/pkg/auth/azure"

	"github.com/plumb-dev/plumb/shared/proxy"
	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/source-controller/internal/bucket"
)

// Secret keys of provider azure, Flux's.
const (
	azureAccountKey         = "accountKey"
	azureSASKey             = "sasKey"
	azureTenantID           = "tenantId"
	azureClientID           = "clientId"
	azureClientSecret       = "clientSecret"
	azureClientCertificate  = "clientCertificate"
	azureCertificatePass    = "clientCertificatePassword"
	azureCertificateSendsX5 = "clientCertificateSendChain"
	azureAuthorityHost      = "authorityHost"
)

// azureClient returns a client of an Azure Blob Storage container: with the account key, the
// SAS, the service principal (client secret or certificate) or the managed identity client ID
// of secretRef, or else with the workload identity.
func (r *BucketReconciler) azureClient(ctx context.Context, obj *sourcev1.Bucket) (*bucket.Client, error) {
	o := bucket.AzureOptions{URL: obj.Spec.Endpoint, Insecure: obj.Spec.Insecure, Container: obj.Spec.BucketName}
	var err error
	if o.TLS, o.Proxy, err = r.connection(ctx, obj); err != nil {
		return nil, err
	}
	ref := obj.Spec.SecretRef
	if ref == nil {
		opts, who, err := r.identity(obj, o.Proxy)
		if err != nil {
			return nil, err
		}
		o.Token = &azureTokens{cred: authazure.NewTokenCredential(ctx, opts...), who: who}
		return bucket.NewAzure(o)
	}
	data, err := r.secretData(ctx, obj.Namespace, ref.Name, "secretRef")
	if err != nil {
		return nil, err
	}
	key := fmt.Sprintf("%s/%s", obj.Namespace, ref.Name)
	str := func(k string) string { return strings.TrimSpace(string(data[k])) }
	switch {
	case str(azureAccountKey) != "":
		o.AccountKey = str(azureAccountKey)
	case str(azureSASKey) != "":
		o.SAS = str(azureSASKey)
	case str(azureTenantID) != "" && str(azureClientID) != "" && (str(azureClientSecret) != "" || len(data[azureClientCertificate]) > 0):
		if o.Token, err = servicePrincipal(data, o.Proxy, key); err != nil {
			return nil, err
		}
	case str(azureClientID) != "":
		cred, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{
			ClientOptions: azureIdentityOptions(data, o.Proxy), ID: azidentity.ClientID(str(azureClientID))})
		if err != nil {
			return nil, fmt.Errorf("%w: secretRef: Secret %s: managed identity %s: %s", bucket.ErrAuth, key, str(azureClientID), firstLine(err.Error()))
		}
		o.Token = &azureTokens{cred: cred, who: " with managed identity " + str(azureClientID)}
	default:
		return nil, fmt.Errorf("%w: secretRef: Secret %s has none of %s, %s, %s with %s and %s or %s, or %s", bucket.ErrAuth, key,
			azureAccountKey, azureSASKey, azureTenantID, azureClientID, azureClientSecret, azureClientCertificate, azureClientID)
	}
	return bucket.NewAzure(o)
}

// servicePrincipal is the Microsoft Entra ID credential of a client secret or certificate.
func servicePrincipal(data map[string][]byte, p *proxy.Proxy, key string) (azcore.TokenCredential, error) {
	tenant, client := strings.TrimSpace(string(data[azureTenantID])), strings.TrimSpace(string(data[azureClientID]))
	who := " as service principal " + client
	if secret := strings.TrimSpace(string(data[azureClientSecret])); secret != "" {
		cred, err := azidentity.NewClientSecretCredential(tenant, client, secret,
			&azidentity.ClientSecretCredentialOptions{ClientOptions: azureIdentityOptions(data, p)})
		if err != nil {
			return nil, fmt.Errorf("%w: secretRef: Secret %s: %s", bucket.ErrAuth, key, firstLine(err.Error()))
		}
		return &azureTokens{cred: cred, who: who}, nil
	}
	certs, pk, err := azidentity.ParseCertificates(data[azureClientCertificate], data[azureCertificatePass])
	if err != nil {
		// The parser's error may quote the file; it is left out.
		return nil, fmt.Errorf("%w: secretRef: Secret %s: %s is not a PEM or PKCS#12 certificate with its key (or %s is wrong)", bucket.ErrAuth, key, azureClientCertificate, azureCertificatePass)
	}
	cred, err := azidentity.NewClientCertificateCredential(tenant, client, certs, pk, &azidentity.ClientCertificateCredentialOptions{
		ClientOptions:        azureIdentityOptions(data, p),
		SendCertificateChain: strings.TrimSpace(string(data[azureCertificateSendsX5])) == "true",
	})
	if err != nil {
		return nil, fmt.Errorf("%w: secretRef: Secret %s: %s", bucket.ErrAuth, key, firstLine(err.Error()))
	}
	return &azureTokens{cred: cred, who: who}, nil
}

// azureIdentityOptions send Microsoft Entra ID's requests through the proxy, to authorityHost
// when the Secret names one (a sovereign cloud).
func azureIdentityOptions(data map[string][]byte, p *proxy.Proxy) azcore.ClientOptions {
	o := azcore.ClientOptions{Transport: &http.Client{Transport: bucket.Transport(nil, p)}, Retry: policy.RetryOptions{MaxRetries: 2}}
	if host := strings.TrimSpace(string(data[azureAuthorityHost])); host != "" {
		o.Cloud = cloud.Configuration{ActiveDirectoryAuthorityHost: host, Services: cloud.AzurePublic.Services}
	}
	return o
}

// azureTokens marks the failures of a Microsoft Entra ID credential as authentication
// failures, saying whose.
type azureTokens struct {
	cred azcore.TokenCredential
	who  string
}

func (t *azureTokens) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	tok, err := t.cred.GetToken(ctx, opts)
	if err != nil {
		return tok, fmt.Errorf("%w: provider azure: getting a Microsoft Entra ID token%s: %s", bucket.ErrAuth, t.who, firstLine(err.Error()))
	}
	return tok, nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}
