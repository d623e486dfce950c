package sops

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
	"sigs.k8s.io/yaml"
)

// Entries of a decryption Secret that hold the credentials of cloud key services, named as Flux
// names them.
const (
	// AWSKMSEntry holds YAML: aws_access_key_id, aws_secret_access_key and, for temporary
	// credentials, aws_session_token.
	AWSKMSEntry = "sops.aws-kms"
	// AzureKVEntry holds YAML or JSON: tenantId, clientId and clientSecret; or tenantId, clientId
	// and clientCertificate (PEM or PKCS#12, with clientCertificatePassword and
	// clientCertificateSendChain); or the service principal as `az` prints it (appId, tenant,
	// password); or an AKS cloud-provider azure.json (tenantId, aadClientId, aadClientSecret).
	// authorityHost chooses another cloud than Azure's public one.
	AzureKVEntry = "sops.azure-kv"
	// GCPKMSEntry holds a Google service account key (JSON, "type": "service_account").
	GCPKMSEntry = "sops.gcp-kms"
	// VaultTokenEntry holds a HashiCorp Vault token.
	VaultTokenEntry = "sops.vault-token"
)

// The OAuth scope of Cloud KMS.
const gcpKMSScope = "https://www.googleapis.com/auth/cloudkms"

// Option changes how a Decryptor reaches cloud key services.
type Option func(*Decryptor)

// WithWorkloadIdentity lets AWS KMS, GCP KMS and Azure Key Vault keys whose credentials the
// Secret does not hold use the cloud SDKs' default credential chains: the identity of the
// controller's pod (IRSA or EKS Pod Identity, GKE Workload Identity, Azure Workload Identity or
// managed identity). Off, such keys fail with a message naming the entry to add. HashiCorp Vault
// always needs sops.vault-token.
func WithWorkloadIdentity(on bool) Option {
	return func(d *Decryptor) { d.workloadIdentity = on }
}

// WithHTTPClient sends the requests to AWS KMS, Azure Key Vault (and its token endpoint) and
// HashiCorp Vault through hc, for its timeouts, proxy and trusted CAs. GCP KMS uses Google's
// transport.
func WithHTTPClient(hc *http.Client) Option {
	return func(d *Decryptor) { d.httpClient = hc }
}

// cloudKeys are the credentials of cloud key services read from a Secret, and the secret strings
// among them, to keep out of messages.
type cloudKeys struct {
	aws     aws.CredentialsProvider
	azure   azcore.TokenCredential
	gcp     oauth2.TokenSource
	vault   string
	secrets []string
}

// readCloudKeys reads the cloud credential entries of a Secret.
func (d *Decryptor) readCloudKeys(entries map[string][]byte) error {
	if data, ok := entries[AWSKMSEntry]; ok {
		if err := d.readAWS(data); err != nil {
			return fmt.Errorf("entry %s: %w", AWSKMSEntry, err)
		}
	}
	if data, ok := entries[AzureKVEntry]; ok {
		if err := d.readAzure(data); err != nil {
			return fmt.Errorf("entry %s: %w", AzureKVEntry, err)
		}
	}
	if data, ok := entries[GCPKMSEntry]; ok {
		if err := d.readGCP(data); err != nil {
			return fmt.Errorf("entry %s: %w", GCPKMSEntry, err)
		}
	}
	if data, ok := entries[VaultTokenEntry]; ok {
		t := strings.TrimSpace(string(data))
		if t == "" {
			return fmt.Errorf("entry %s is empty", VaultTokenEntry)
		}
		d.cloud.vault = t
		d.cloud.secrets = append(d.cloud.secrets, t)
	}
	return nil
}

func (d *Decryptor) hasCloudKeys() bool {
	c := d.cloud
	return c.aws != nil || c.azure != nil || c.gcp != nil || c.vault != ""
}

// awsEntry is the YAML of sops.aws-kms.
type awsEntry struct {
	AccessKeyID     string `json:"aws_access_key_id"`
	SecretAccessKey string `json:"aws_secret_access_key"`
	SessionToken    string `json:"aws_session_token"`
}

func (d *Decryptor) readAWS(data []byte) error {
	var e awsEntry
	if err := yaml.UnmarshalStrict(data, &e); err != nil {
		return fmt.Errorf("not YAML with aws_access_key_id, aws_secret_access_key and aws_session_token (%s)", yamlProblem(err))
	}
	if e.AccessKeyID == "" || e.SecretAccessKey == "" {
		return fmt.Errorf("aws_access_key_id and aws_secret_access_key are required")
	}
	d.cloud.aws = credentials.NewStaticCredentialsProvider(e.AccessKeyID, e.SecretAccessKey, e.SessionToken)
	d.cloud.secrets = append(d.cloud.secrets, e.SecretAccessKey)
	if e.SessionToken != "" {
		d.cloud.secrets = append(d.cloud.secrets, e.SessionToken)
	}
	return nil
}

// azureEntry is the YAML or JSON of sops.azure-kv: Flux's fields, `az`'s service principal and
// the AKS cloud-provider file's.
type azureEntry struct {
	TenantID                   string `json:"tenantId"`
	ClientID                   string `json:"clientId"`
	ClientSecret               string `json:"clientSecret"`
	ClientCertificate          string `json:"clientCertificate"`
	ClientCertificatePassword  string `json:"clientCertificatePassword"`
	ClientCertificateSendChain bool   `json:"clientCertificateSendChain"`
	AuthorityHost              string `json:"authorityHost"`
	// `az ad sp create-for-rbac`.
	AppID    string `json:"appId"`
	Tenant   string `json:"tenant"`
	Password string `json:"password"`
	// azure.json of the AKS cloud provider.
	AADClientID     string `json:"aadClientId"`
	AADClientSecret string `json:"aadClientSecret"`
}

func (d *Decryptor) readAzure(data []byte) error {
	var e azureEntry
	if err := yaml.Unmarshal(data, &e); err != nil {
		return fmt.Errorf("not YAML or JSON (%s)", yamlProblem(err))
	}
	if e.AppID != "" || e.Tenant != "" || e.Password != "" {
		e.ClientID, e.TenantID, e.ClientSecret = first(e.ClientID, e.AppID), first(e.TenantID, e.Tenant), first(e.ClientSecret, e.Password)
	}
	if e.AADClientID != "" || e.AADClientSecret != "" {
		e.ClientID, e.ClientSecret = first(e.ClientID, e.AADClientID), first(e.ClientSecret, e.AADClientSecret)
	}
	opts := azcore.ClientOptions{}
	if e.AuthorityHost != "" {
		opts.Cloud = cloud.Configuration{ActiveDirectoryAuthorityHost: e.AuthorityHost}
	}
	if d.httpClient != nil {
		opts.Transport = d.httpClient
	}
	switch {
	case e.TenantID == "" || e.ClientID == "":
		return fmt.Errorf("tenantId and clientId are required, with clientSecret or clientCertificate (or appId, tenant and password as az prints them)")
	case e.ClientSecret != "":
		c, err := azidentity.NewClientSecretCredential(e.TenantID, e.ClientID, e.ClientSecret, &azidentity.ClientSecretCredentialOptions{ClientOptions: opts})
		if err != nil {
			return fmt.Errorf("tenantId %q or clientId %q is not valid", e.TenantID, e.ClientID)
		}
		d.cloud.azure = c
		d.cloud.secrets = append(d.cloud.secrets, e.ClientSecret)
	case e.ClientCertificate != "":
		certs, key, err := parseCertificate(e.ClientCertificate, e.ClientCertificatePassword)
		if err != nil {
			return err
		}
		c, err := azidentity.NewClientCertificateCredential(e.TenantID, e.ClientID, certs, key, &azidentity.ClientCertificateCredentialOptions{ClientOptions: opts, SendCertificateChain: e.ClientCertificateSendChain})
		if err != nil {
			return fmt.Errorf("tenantId %q or clientId %q is not valid", e.TenantID, e.ClientID)
		}
		d.cloud.azure = c
		d.cloud.secrets = append(d.cloud.secrets, e.ClientCertificate)
		if e.ClientCertificatePassword != "" {
			d.cloud.secrets = append(d.cloud.secrets, e.ClientCertificatePassword)
		}
	default:
		return fmt.Errorf("clientSecret or clientCertificate is required (a managed identity is the controller's own: see its --sops-kms-workload-identity flag)")
	}
	return nil
}

// parseCertificate reads a client certificate and its private key (PEM or PKCS#12); the error
// says what is wrong without any of it.
func parseCertificate(data, password string) ([]*x509.Certificate, crypto.PrivateKey, error) {
	var pw []byte
	if password != "" {
		pw = []byte(password)
	}
	certs, key, err := azidentity.ParseCertificates([]byte(data), pw)
	if err != nil {
		return nil, nil, fmt.Errorf("clientCertificate is not a PEM or PKCS#12 certificate with its private key (or clientCertificatePassword does not open it)")
	}
	return certs, key, nil
}

// gcpEntry is what sops.gcp-kms is checked for before Google's library reads it.
type gcpEntry struct {
	Type         string `json:"type"`
	ClientEmail  string `json:"client_email"`
	PrivateKey   string `json:"private_key"`
	PrivateKeyID string `json:"private_key_id"`
}

// readGCP reads a service account key. Other credential types are refused: an external account
// names URLs to fetch and files to read on the controller's side, which a tenant must not choose.
func (d *Decryptor) readGCP(data []byte) error {
	var e gcpEntry
	if err := json.Unmarshal(data, &e); err != nil {
		return fmt.Errorf("not a JSON service account key")
	}
	if e.Type != string(google.ServiceAccount) {
		return fmt.Errorf("credentials of type %q are not supported: give a service account key (\"type\": \"service_account\")", e.Type)
	}
	if e.ClientEmail == "" || e.PrivateKey == "" {
		return fmt.Errorf("the service account key lacks client_email or private_key")
	}
	if !isPrivateKey(e.PrivateKey) {
		return fmt.Errorf("the private_key of the service account key of %s is not a PEM private key", e.ClientEmail)
	}
	ctx := context.Background()
	if d.httpClient != nil {
		ctx = context.WithValue(ctx, oauth2.HTTPClient, d.httpClient)
	}
	creds, err := google.CredentialsFromJSONWithTypeAndParams(ctx, data, google.ServiceAccount, google.CredentialsParams{Scopes: []string{gcpKMSScope}})
	if err != nil {
		return fmt.Errorf("the service account key of %s cannot be read (is private_key a PEM key?)", e.ClientEmail)
	}
	d.cloud.gcp = creds.TokenSource
	d.cloud.secrets = append(d.cloud.secrets, e.PrivateKey, e.PrivateKeyID)
	return nil
}

func isPrivateKey(s string) bool {
	b, _ := pem.Decode([]byte(s))
	if b == nil {
		return false
	}
	if _, err := x509.ParsePKCS8PrivateKey(b.Bytes); err == nil {
		return true
	}
	_, err := x509.ParsePKCS1PrivateKey(b.Bytes)
	return err == nil
}

// redact removes the Secret's credentials from a message: SDK errors are passed on, and none is
// trusted to leave them out.
func (d *Decryptor) redact(msg string) string {
	for _, s := range d.cloud.secrets {
		if len(s) >= 4 {
			msg = strings.ReplaceAll(msg, s, "[redacted]")
		}
	}
	return msg
}

// yamlProblem says where YAML is wrong without quoting it: the parser's messages can hold values.
func yamlProblem(err error) string {
	msg := err.Error()
	if strings.Contains(msg, "unknown field") {
		if i := strings.Index(msg, "unknown field"); i >= 0 {
			return msg[i:]
		}
	}
	return "cannot parse it"
}

func first(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
