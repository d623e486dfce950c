package controller

import (
	"bytes"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
)

// armoredKey returns an armored private key, encrypted with passphrase when set.
func armoredKey(t *testing.T, passphrase string) []byte {
	t.Helper()
	e, err := openpgp.NewEntity("plumb", "", "plumb@example.com", nil)
	if err != nil {
		t.Fatal(err)
	}
	if passphrase != "" {
		if err := e.EncryptPrivateKeys([]byte(passphrase), nil); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, openpgp.PrivateKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	// SerializePrivateWithoutSigning keeps an encrypted key as it is.
	if err := e.SerializePrivateWithoutSigning(w, nil); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestSigningKey(t *testing.T) {
	plain := armoredKey(t, "")
	locked := armoredKey(t, "open-sesame")
	for _, tc := range []struct {
		name    string
		data    map[string][]byte
		wantErr string
	}{
		{name: "plain key", data: map[string][]byte{"git.asc": plain}},
		{name: "key with its passphrase", data: map[string][]byte{"git.asc": locked, "passphrase": []byte("open-sesame")}},
		{name: "no key", data: map[string][]byte{}, wantErr: "no git.asc (OpenPGP) or identity (SSH) key"},
		{name: "not a key", data: map[string][]byte{"git.asc": []byte("hunter2")}, wantErr: "not an armored OpenPGP key"},
		{name: "passphrase missing", data: map[string][]byte{"git.asc": locked}, wantErr: "has no passphrase"},
		{name: "wrong passphrase", data: map[string][]byte{"git.asc": locked, "passphrase": []byte("hunter2")}, wantErr: "does not decrypt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := signingKey(tc.data)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || strings.Contains(err.Error(), "hunter2") {
					t.Fatalf("error %v, want one about %q that quotes nothing", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if e.PrivateKey == nil || e.PrivateKey.Encrypted {
				t.Fatal("the key is not usable for signing")
			}
		})
	}
}

func TestSigner_OneKindOfKey(t *testing.T) {
	plain := armoredKey(t, "")
	if _, _, err := signer(map[string][]byte{"git.asc": plain, "identity": []byte("x")}, ""); err == nil || !strings.Contains(err.Error(), "both git.asc and identity") {
		t.Fatalf("a Secret with both keys: %v", err)
	}
	if _, _, err := signer(map[string][]byte{"identity": []byte("hunter2")}, ""); err == nil || !strings.Contains(err.Error(), "identity: not an OpenSSH or PEM private key") || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("an identity that is no key: %v", err)
	}
	if e, s, err := signer(map[string][]byte{"git.asc": plain}, ""); err != nil || e == nil || s != nil {
		t.Fatalf("an OpenPGP key: %v, %v, %v", e, s, err)
	}
}
