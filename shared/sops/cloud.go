package sops

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/getsops/sops/v3/azkv"
	"github.com/getsops/sops/v3/gcpkms"
	"github.com/getsops/sops/v3/hcvault"
	"github.com/getsops/sops/v3/keyservice"
	"github.com/getsops/sops/v3/kms"
)

// cloudTimeout bounds one call to a key service: SOPS calls the key service without a deadline,
// and a reconcile must not hang on an unreachable KMS.
const cloudTimeout = 30 * time.Second

// errNoCredentials is the failure of a cloud key that has neither credentials in the Secret nor
// a cloud identity to use (spec.decryption.serviceAccountName's, or the controller's own).
var errNoCredentials = errors.New("no credentials")

// noCredentials is the failure of a cloud key that nothing opens. What does, in this order: the
// Secret's entry (Flux's order), the ServiceAccount of spec.decryption.serviceAccountName, and,
// when allowed, the controller's own identity (the SDK's default chain).
func noCredentials(entry string) error {
	return fmt.Errorf("%w: add the entry %s to the decryption Secret, name a ServiceAccount with the cloud identity in spec.decryption.serviceAccountName, or start the controller with --sops-kms-workload-identity to use its own identity", errNoCredentials, entry)
}

// decryptAWS opens a data key with AWS KMS, with the Secret's access key, the ServiceAccount's
// or, when allowed, the SDK's default chain. A profile named in the file is dropped: the
// controller has no AWS config files to read it from.
func (s *server) decryptAWS(ctx context.Context, k *keyservice.KmsKey, ciphertext []byte) ([]byte, error) {
	c, id := s.d.cloud, s.d.identity
	if c.aws == nil && id == nil && !s.d.workloadIdentity {
		return nil, noCredentials(AWSKMSEntry)
	}
	mk := &kms.MasterKey{Arn: k.GetArn(), Role: k.GetRole(), EncryptedKey: string(ciphertext)}
	if len(k.GetContext()) > 0 {
		mk.EncryptionContext = map[string]*string{}
		for key, v := range k.GetContext() {
			mk.EncryptionContext[key] = &v
		}
	}
	switch {
	case c.aws != nil:
		kms.NewCredentialsProvider(c.aws).ApplyToMasterKey(mk)
	case id != nil:
		region, err := kmsRegion(k.GetArn())
		if err != nil {
			return nil, err
		}
		creds := id.AWS(ctx, region)
		if creds == nil {
			return nil, noCredentials(AWSKMSEntry)
		}
		kms.NewCredentialsProvider(creds).ApplyToMasterKey(mk)
	}
	if s.d.httpClient != nil {
		kms.NewHTTPClient(s.d.httpClient).ApplyToMasterKey(mk)
	}
	return mk.DecryptContext(ctx)
}

// decryptAzure opens a data key with Azure Key Vault.
func (s *server) decryptAzure(ctx context.Context, k *keyservice.AzureKeyVaultKey, ciphertext []byte) ([]byte, error) {
	c, id := s.d.cloud, s.d.identity
	if c.azure == nil && id == nil && !s.d.workloadIdentity {
		return nil, noCredentials(AzureKVEntry)
	}
	mk := &azkv.MasterKey{VaultURL: k.GetVaultUrl(), Name: k.GetName(), Version: k.GetVersion(), EncryptedKey: string(ciphertext)}
	switch {
	case c.azure != nil:
		azkv.NewTokenCredential(c.azure).ApplyToMasterKey(mk)
	case id != nil:
		cred := id.Azure(ctx)
		if cred == nil {
			return nil, noCredentials(AzureKVEntry)
		}
		azkv.NewTokenCredential(cred).ApplyToMasterKey(mk)
	}
	if s.d.httpClient != nil {
		azkv.NewClientOptions(&azkeys.ClientOptions{ClientOptions: policy.ClientOptions{Transport: s.d.httpClient}}).ApplyToMasterKey(mk)
	}
	return mk.DecryptContext(ctx)
}

// decryptGCP opens a data key with GCP KMS.
func (s *server) decryptGCP(ctx context.Context, k *keyservice.GcpKmsKey, ciphertext []byte) ([]byte, error) {
	c, id := s.d.cloud, s.d.identity
	if c.gcp == nil && id == nil && !s.d.workloadIdentity {
		return nil, noCredentials(GCPKMSEntry)
	}
	mk := &gcpkms.MasterKey{ResourceID: k.GetResourceId(), EncryptedKey: string(ciphertext)}
	switch {
	case c.gcp != nil:
		gcpkms.NewTokenSource(c.gcp).ApplyToMasterKey(mk)
	case id != nil:
		ts := id.GCP(ctx)
		if ts == nil {
			return nil, noCredentials(GCPKMSEntry)
		}
		gcpkms.NewTokenSource(ts).ApplyToMasterKey(mk)
	}
	return mk.DecryptContext(ctx)
}

// decryptVault opens a data key with HashiCorp Vault's transit engine. A token is required: the
// Vault client would otherwise read VAULT_TOKEN or ~/.vault-token of the controller.
func (s *server) decryptVault(ctx context.Context, k *keyservice.VaultKey, ciphertext []byte) ([]byte, error) {
	if s.d.cloud.vault == "" {
		return nil, fmt.Errorf("%w: add the entry %s (a Vault token) to the decryption Secret", errNoCredentials, VaultTokenEntry)
	}
	mk := &hcvault.MasterKey{VaultAddress: k.GetVaultAddress(), EnginePath: k.GetEnginePath(), KeyName: k.GetKeyName(), EncryptedKey: string(ciphertext)}
	hcvault.Token(s.d.cloud.vault).ApplyToMasterKey(mk)
	if s.d.httpClient != nil {
		hcvault.NewHTTPClient(s.d.httpClient).ApplyToMasterKey(mk)
	}
	return mk.DecryptContext(ctx)
}

// decryptCloud dispatches a cloud key and records why it failed, for the error message.
func (s *server) decryptCloud(k *keyservice.Key, ciphertext []byte) (*keyservice.DecryptResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cloudTimeout)
	defer cancel()
	var plain []byte
	var err error
	var name string
	switch k := k.GetKeyType().(type) {
	case *keyservice.Key_KmsKey:
		name = "kms " + k.KmsKey.GetArn()
		plain, err = s.decryptAWS(ctx, k.KmsKey, ciphertext)
	case *keyservice.Key_AzureKeyvaultKey:
		name = "azure_kv " + k.AzureKeyvaultKey.GetVaultUrl() + "/keys/" + k.AzureKeyvaultKey.GetName()
		plain, err = s.decryptAzure(ctx, k.AzureKeyvaultKey, ciphertext)
	case *keyservice.Key_GcpKmsKey:
		name = "gcp_kms " + k.GcpKmsKey.GetResourceId()
		plain, err = s.decryptGCP(ctx, k.GcpKmsKey, ciphertext)
	case *keyservice.Key_VaultKey:
		name = "hc_vault " + k.VaultKey.GetVaultAddress() + "/v1/" + k.VaultKey.GetEnginePath() + "/keys/" + k.VaultKey.GetKeyName()
		plain, err = s.decryptVault(ctx, k.VaultKey, ciphertext)
	default:
		err = errors.New("key type not supported")
	}
	if err == nil && len(plain) == 0 {
		err = errors.New("the key service returned an empty data key")
	}
	if err != nil {
		if name != "" {
			s.failures = append(s.failures, name+": "+s.d.redact(err.Error()))
		}
		return nil, err
	}
	return &keyservice.DecryptResponse{Plaintext: plain}, nil
}
