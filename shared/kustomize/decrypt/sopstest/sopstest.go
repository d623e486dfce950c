// Package sopstest encrypts files for tests as the SOPS command line does: a fresh data key, the
// SOPS AES cipher over the values, the data key sealed for age recipients, and the MAC.
package sopstest

import (
	"testing"
	"time"

	"filippo.io/age"
	"github.com/getsops/sops/v3"
	"github.com/getsops/sops/v3/aes"
	sopsage "github.com/getsops/sops/v3/age"
	"github.com/getsops/sops/v3/config"
	"github.com/getsops/sops/v3/keyservice"
	"github.com/getsops/sops/v3/stores/dotenv"
	"github.com/getsops/sops/v3/stores/ini"
	sopsjson "github.com/getsops/sops/v3/stores/json"
	sopsyaml "github.com/getsops/sops/v3/stores/yaml"
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

// Options shape the encryption.
type Options struct {
	// EncryptedRegex encrypts only the values of matching keys (sops --encrypted-regex).
	EncryptedRegex string
}

// Encrypt encrypts plain, stored as format ("yaml", "json", "dotenv", "ini" or "binary"), for
// key groups of age recipients (one group per slice).
func Encrypt(t testing.TB, format string, plain []byte, opts Options, groups ...[]string) []byte {
	t.Helper()
	c := config.NewStoresConfig()
	var store sops.Store
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
	var kgs []sops.KeyGroup
	for _, g := range groups {
		var kg sops.KeyGroup
		for _, r := range g {
			mk, err := sopsage.MasterKeyFromRecipient(r)
			if err != nil {
				t.Fatal(err)
			}
			kg = append(kg, mk)
		}
		kgs = append(kgs, kg)
	}
	tree := sops.Tree{Branches: branches, Metadata: sops.Metadata{
		KeyGroups: kgs, Version: "3.13.3", EncryptedRegex: opts.EncryptedRegex,
	}}
	if opts.EncryptedRegex == "" {
		tree.Metadata.UnencryptedSuffix = sops.DefaultUnencryptedSuffix
	}
	if len(kgs) > 1 {
		tree.Metadata.ShamirThreshold = len(kgs)
	}
	key, errs := tree.GenerateDataKeyWithKeyServices([]keyservice.KeyServiceClient{keyservice.NewLocalClient()})
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
