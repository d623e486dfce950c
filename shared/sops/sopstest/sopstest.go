// Package sopstest encrypts files for tests as the SOPS command line does: a fresh data key, the
// SOPS AES cipher over the values, the data key sealed for age recipients or PGP keys, and the
// MAC. PGP keys live in memory: the data key is sealed with go-crypto as SOPS's own OpenPGP path
// does (an armored message to the key), not through GnuPG.
package sopstest

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/aws/aws-sdk-go-v2/aws"
	getsops "github.com/getsops/sops/v3"
	"github.com/getsops/sops/v3/aes"
	sopsage "github.com/getsops/sops/v3/age"
	"github.com/getsops/sops/v3/azkv"
	"github.com/getsops/sops/v3/config"
	"github.com/getsops/sops/v3/gcpkms"
	"github.com/getsops/sops/v3/hcvault"
	"github.com/getsops/sops/v3/keyservice"
	"github.com/getsops/sops/v3/kms"
	"github.com/getsops/sops/v3/pgp"
	"github.com/getsops/sops/v3/stores/dotenv"
	"github.com/getsops/sops/v3/stores/ini"
	sopsjson "github.com/getsops/sops/v3/stores/json"
	sopsyaml "github.com/getsops/sops/v3/stores/yaml"
	"golang.org/x/oauth2"
)

// Identity is a new age identity: its secret key string (the content of a .agekey entry) and
// its recipient.
func Identity(t testing.TB) (secret, recipient string) {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id.String(), id.Recipient().String()
}

// PGPKey is a new PGP key (primary key and encryption subkey, no passphrase): its armored
// private key (the content of a .asc entry), its fingerprint as SOPS writes it, and the entity,
// to pass in Options.PGP.
func PGPKey(t testing.TB) (armored []byte, fingerprint string, entity *openpgp.Entity) {
	t.Helper()
	e, err := openpgp.NewEntity("test", "", "test@example.invalid", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		t.Fatal(err)
	}
	return ArmorPrivate(t, e, false), strings.ToUpper(hex.EncodeToString(e.PrimaryKey.Fingerprint)), e
}

// ArmorPrivate writes the private key of e armored; unsigned serialises without re-signing (for
// keys encrypted with a passphrase).
func ArmorPrivate(t testing.TB, e *openpgp.Entity, unsigned bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, openpgp.PrivateKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	if unsigned {
		err = e.SerializePrivateWithoutSigning(w, nil)
	} else {
		err = e.SerializePrivate(w, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Options shape the encryption.
type Options struct {
	// EncryptedRegex encrypts only the values of matching keys (sops --encrypted-regex).
	EncryptedRegex string
	// PGP are the public keys that group members naming a PGP fingerprint are sealed for.
	PGP []*openpgp.Entity
	// AWS are the credentials that seal data keys with AWS KMS keys (group members
	// "arn:aws:kms:..."); its endpoint is the SDK's (AWS_ENDPOINT_URL_KMS).
	AWS aws.CredentialsProvider
	// VaultToken seals data keys with HashiCorp Vault transit keys (group members
	// "http(s)://host/v1/<engine>/keys/<name>").
	VaultToken string
	// GCP is the token source that seals data keys with GCP KMS keys (group members
	// "projects/<p>/locations/<l>/keyRings/<r>/cryptoKeys/<k>"); its endpoint is SOPS's
	// (SOPS_GCP_KMS_ENDPOINT, SOPS_GCP_KMS_CLIENT_TYPE).
	GCP oauth2.TokenSource
	// Azure is the credential that seals data keys with Azure Key Vault keys (group members
	// "https://<vault>/keys/<name>/<version>", the version required), through HTTPClient
	// (KeyVaultClient for a KeyVault).
	Azure      azcore.TokenCredential
	HTTPClient *http.Client
}

// keyVaultKey is an Azure Key Vault key URL with its version, as azkv parses them.
var keyVaultKey = regexp.MustCompile(`^https://[^/]+/keys/[^/]+/[^/]+$`)

// Encrypt encrypts plain, stored as format ("yaml", "json", "dotenv", "ini" or "binary"), for
// key groups (one group per slice) of age recipients ("age1..."), PGP fingerprints (of keys in
// opts.PGP), AWS KMS key ARNs, GCP KMS key resource IDs, Azure Key Vault key URLs and HashiCorp
// Vault key URIs, with SOPS's master keys.
func Encrypt(t testing.TB, format string, plain []byte, opts Options, groups ...[]string) []byte {
	t.Helper()
	c := config.NewStoresConfig()
	var store getsops.Store
	switch format {
	case "yaml":
		store = sopsyaml.NewStore(&c.YAML)
	case "json":
		store = sopsjson.NewStore(&c.JSON)
	case "dotenv":
		store = dotenv.NewStore(&c.Dotenv)
	case "ini":
		store = ini.NewStore(&c.INI)
	default:
		store = sopsjson.NewBinaryStore(&c.JSONBinary)
	}
	branches, err := store.LoadPlainFile(plain)
	if err != nil {
		t.Fatal(err)
	}
	var kgs []getsops.KeyGroup
	for _, g := range groups {
		var kg getsops.KeyGroup
		for _, r := range g {
			switch {
			case strings.HasPrefix(r, "arn:aws:kms:"):
				kg = append(kg, kms.NewMasterKeyFromArn(r, nil, ""))
				continue
			case strings.HasPrefix(r, "projects/"):
				kg = append(kg, gcpkms.NewMasterKeyFromResourceID(r))
				continue
			case keyVaultKey.MatchString(r):
				mk, err := azkv.NewMasterKeyFromURL(r) // with a version: no lookup
				if err != nil {
					t.Fatal(err)
				}
				kg = append(kg, mk)
				continue
			case strings.HasPrefix(r, "http://") || strings.HasPrefix(r, "https://"):
				mk, err := hcvault.NewMasterKeyFromURI(r)
				if err != nil {
					t.Fatal(err)
				}
				kg = append(kg, mk)
				continue
			case !strings.HasPrefix(r, "age1"):
				kg = append(kg, pgp.NewMasterKeyFromFingerprint(r))
				continue
			}
			mk, err := sopsage.MasterKeyFromRecipient(r)
			if err != nil {
				t.Fatal(err)
			}
			kg = append(kg, mk)
		}
		kgs = append(kgs, kg)
	}
	tree := getsops.Tree{Branches: branches, Metadata: getsops.Metadata{
		KeyGroups: kgs, Version: "3.13.3", EncryptedRegex: opts.EncryptedRegex,
	}}
	if opts.EncryptedRegex == "" {
		tree.Metadata.UnencryptedSuffix = getsops.DefaultUnencryptedSuffix
	}
	if len(kgs) > 1 {
		tree.Metadata.ShamirThreshold = len(kgs)
	}
	key, errs := tree.GenerateDataKeyWithKeyServices([]keyservice.KeyServiceClient{keyservice.NewCustomLocalClient(sealer{opts: opts})})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	cipher := aes.NewCipher()
	mac, err := tree.Encrypt(key, cipher)
	if err != nil {
		t.Fatal(err)
	}
	tree.Metadata.LastModified = time.Now().UTC()
	if tree.Metadata.MessageAuthenticationCode, err = cipher.Encrypt(mac, key, tree.Metadata.LastModified.Format(time.RFC3339)); err != nil {
		t.Fatal(err)
	}
	out, err := store.EmitEncryptedFile(tree)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// sealer is a key service that seals data keys for age recipients as SOPS does, for PGP keys
// held in memory as SOPS's OpenPGP path does (an armored message encrypted to the key), and with
// SOPS's AWS KMS, GCP KMS, Azure Key Vault and Vault master keys given the credentials of Options.
type sealer struct {
	keyservice.Server
	opts Options
}

func (s sealer) Encrypt(ctx context.Context, req *keyservice.EncryptRequest) (*keyservice.EncryptResponse, error) {
	switch k := req.GetKey().GetKeyType().(type) {
	case *keyservice.Key_PgpKey:
		return s.sealPGP(k, req.GetPlaintext())
	case *keyservice.Key_KmsKey:
		mk := kms.NewMasterKey(k.KmsKey.GetArn(), "", nil)
		if s.opts.AWS != nil {
			kms.NewCredentialsProvider(s.opts.AWS).ApplyToMasterKey(mk)
		}
		if err := mk.EncryptContext(ctx, req.GetPlaintext()); err != nil {
			return nil, err
		}
		return &keyservice.EncryptResponse{Ciphertext: mk.EncryptedDataKey()}, nil
	case *keyservice.Key_GcpKmsKey:
		mk := gcpkms.NewMasterKeyFromResourceID(k.GcpKmsKey.GetResourceId())
		if s.opts.GCP != nil {
			gcpkms.NewTokenSource(s.opts.GCP).ApplyToMasterKey(mk)
		}
		if err := mk.EncryptContext(ctx, req.GetPlaintext()); err != nil {
			return nil, err
		}
		return &keyservice.EncryptResponse{Ciphertext: mk.EncryptedDataKey()}, nil
	case *keyservice.Key_AzureKeyvaultKey:
		// Without a credential azkv would try the machine's (Azure's metadata endpoint).
		if s.opts.Azure == nil {
			return nil, errors.New("an Azure Key Vault key needs Options.Azure")
		}
		mk := azkv.NewMasterKey(k.AzureKeyvaultKey.GetVaultUrl(), k.AzureKeyvaultKey.GetName(), k.AzureKeyvaultKey.GetVersion())
		azkv.NewTokenCredential(s.opts.Azure).ApplyToMasterKey(mk)
		if s.opts.HTTPClient != nil {
			azkv.NewClientOptions(&azkeys.ClientOptions{ClientOptions: policy.ClientOptions{Transport: s.opts.HTTPClient}}).ApplyToMasterKey(mk)
		}
		if err := mk.EncryptContext(ctx, req.GetPlaintext()); err != nil {
			return nil, err
		}
		return &keyservice.EncryptResponse{Ciphertext: mk.EncryptedDataKey()}, nil
	case *keyservice.Key_VaultKey:
		mk := hcvault.NewMasterKey(k.VaultKey.GetVaultAddress(), k.VaultKey.GetEnginePath(), k.VaultKey.GetKeyName())
		hcvault.Token(s.opts.VaultToken).ApplyToMasterKey(mk)
		if err := mk.EncryptContext(ctx, req.GetPlaintext()); err != nil {
			return nil, err
		}
		return &keyservice.EncryptResponse{Ciphertext: mk.EncryptedDataKey()}, nil
	}
	return s.Server.Encrypt(ctx, req)
}

func (s sealer) sealPGP(k *keyservice.Key_PgpKey, plaintext []byte) (*keyservice.EncryptResponse, error) {
	for _, e := range s.opts.PGP {
		if !strings.EqualFold(hex.EncodeToString(e.PrimaryKey.Fingerprint), k.PgpKey.GetFingerprint()) {
			continue
		}
		var buf bytes.Buffer
		aw, err := armor.Encode(&buf, "PGP MESSAGE", nil)
		if err != nil {
			return nil, err
		}
		pw, err := openpgp.Encrypt(aw, []*openpgp.Entity{e}, nil, &openpgp.FileHints{IsBinary: true}, nil)
		if err != nil {
			return nil, err
		}
		if _, err := pw.Write(plaintext); err != nil {
			return nil, err
		}
		if err := pw.Close(); err != nil {
			return nil, err
		}
		if err := aw.Close(); err != nil {
			return nil, err
		}
		return &keyservice.EncryptResponse{Ciphertext: buf.Bytes()}, nil
	}
	return nil, errors.New("no PGP key in Options.PGP with fingerprint " + k.PgpKey.GetFingerprint())
}
