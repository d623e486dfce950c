package main

import (
	"fmt"
	"time"

	"filippo.io/age"
	"github.com/getsops/sops/v3"
	"github.com/getsops/sops/v3/aes"
	sopsage "github.com/getsops/sops/v3/age"
	"github.com/getsops/sops/v3/config"
	"github.com/getsops/sops/v3/keyservice"
	sopsyaml "github.com/getsops/sops/v3/stores/yaml"
)

// sopsEncrypter encrypts YAML manifests for one age recipient as `sops --encrypt` does with the
// .sops.yaml creation rule plumb bootstrap writes (encrypted_regex ^(data|stringData)$): a fresh
// data key per file, sealed for the recipient, the values under data encrypted with SOPS's AES
// cipher, and the MAC.
type sopsEncrypter struct {
	identity string // AGE-SECRET-KEY-1..., the decryption Secret's entry
	key      *sopsage.MasterKey
	store    *sopsyaml.Store
	services []keyservice.KeyServiceClient
}

func newSOPSEncrypter() (*sopsEncrypter, error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return nil, err
	}
	mk, err := sopsage.MasterKeyFromRecipient(id.Recipient().String())
	if err != nil {
		return nil, err
	}
	c := config.NewStoresConfig()
	return &sopsEncrypter{identity: id.String(), key: mk, store: sopsyaml.NewStore(&c.YAML),
		services: []keyservice.KeyServiceClient{keyservice.NewLocalClient()}}, nil
}

// encrypt returns the SOPS-encrypted form of a YAML manifest.
func (e *sopsEncrypter) encrypt(plain string) (string, error) {
	branches, err := e.store.LoadPlainFile([]byte(plain))
	if err != nil {
		return "", err
	}
	tree := sops.Tree{Branches: branches, Metadata: sops.Metadata{
		KeyGroups:      []sops.KeyGroup{{e.key}},
		EncryptedRegex: "^(data|stringData)$",
		Version:        "3.13.3", // the sops library of the workspace
	}}
	dataKey, errs := tree.GenerateDataKeyWithKeyServices(e.services)
	if len(errs) > 0 {
		return "", fmt.Errorf("sealing the data key: %v", errs)
	}
	cipher := aes.NewCipher()
	mac, err := tree.Encrypt(dataKey, cipher)
	if err != nil {
		return "", err
	}
	tree.Metadata.LastModified = time.Now().UTC()
	if tree.Metadata.MessageAuthenticationCode, err = cipher.Encrypt(mac, dataKey, tree.Metadata.LastModified.Format(time.RFC3339)); err != nil {
		return "", err
	}
	out, err := e.store.EmitEncryptedFile(tree)
	return string(out), err
}
