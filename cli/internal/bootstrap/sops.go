package bootstrap

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"filippo.io/age"
	"github.com/go-git/go-billy/v5"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// AgeKeyEntry is the Secret entry that holds the age identities, the name Flux's SOPS guide
// uses (kubectl create secret generic sops-age --from-file=age.agekey=...).
const AgeKeyEntry = "age.agekey"

// SOPS says how the bootstrap Kustomization decrypts SOPS-encrypted files of the repository.
type SOPS struct {
	// SecretName is the Secret of the namespace with the private keys; the Kustomization's
	// spec.decryption.secretRef names it.
	SecretName string
	// AgeKey is an age identity file (as age-keygen writes it), applied as the Secret's
	// age.agekey entry. Empty: the Secret exists already, and bootstrap leaves it as it is.
	AgeKey []byte
	// Recipients are the public keys of AgeKey's identities: what .sops.yaml encrypts for.
	Recipients []string
}

// AgeRecipients parses an age identity file and returns the public key (age1...) of each of its
// identities. Errors never hold the file's content.
func AgeRecipients(key []byte) ([]string, error) {
	if !hasIdentityLine(key) {
		return nil, errors.New("no age identity (AGE-SECRET-KEY-1...) in the file")
	}
	ids, err := age.ParseIdentities(strings.NewReader(string(key)))
	if err != nil {
		// age's parse errors quote no key material, but say only what is needed.
		return nil, errors.New("not an age identity file: an AGE-SECRET-KEY-1 line does not parse (damaged or truncated?)")
	}
	var out []string
	for _, id := range ids {
		x, ok := id.(*age.X25519Identity)
		if !ok {
			return nil, fmt.Errorf("an identity of type %T is not an age X25519 identity (AGE-SECRET-KEY-1...)", id)
		}
		out = append(out, x.Recipient().String())
	}
	return out, nil
}

// hasIdentityLine says whether an identity file has a line that is neither blank nor a comment.
func hasIdentityLine(key []byte) bool {
	for _, line := range strings.Split(string(key), "\n") {
		if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
			return true
		}
	}
	return false
}

// DecryptionSecret is the Secret of age identities to apply, or nil without SOPS or when the
// Secret exists already.
func DecryptionSecret(o Options) *unstructured.Unstructured {
	if o.SOPS == nil || len(o.SOPS.AgeKey) == 0 {
		return nil
	}
	return &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Secret",
		"metadata":   map[string]any{"name": o.SOPS.SecretName, "namespace": o.Namespace},
		"type":       "Opaque",
		"stringData": map[string]any{AgeKeyEntry: string(o.SOPS.AgeKey)}}}
}

// decryption is the Kustomization's spec.decryption, or nil without SOPS.
func decryption(o Options) map[string]any {
	if o.SOPS == nil {
		return nil
	}
	return map[string]any{"provider": "sops", "secretRef": map[string]any{"name": o.SOPS.SecretName}}
}

// sopsConfigNames are the files sops reads its creation rules from, looking in the folder it
// runs in and then in each folder above.
var sopsConfigNames = []string{".sops.yaml", ".sops.yml"}

// sopsConfig is the .sops.yaml bootstrap writes into <path> when neither <path> nor a folder
// above it has one: files under <path> are encrypted for the recipients, Secrets' data and
// stringData only, as Flux's SOPS guide does by hand. Public keys only.
func sopsConfig(o Options) (string, []byte) {
	if o.SOPS == nil || len(o.SOPS.Recipients) == 0 {
		return "", nil
	}
	var b strings.Builder
	b.WriteString("# Written by plumb bootstrap: sops, run in this folder or below, encrypts the data and\n")
	b.WriteString("# stringData of YAML files for these age recipients (public keys). Edit by hand and commit;\n")
	b.WriteString("# the private keys are in the cluster only, in the Secret " + o.SOPS.SecretName + " of " + o.Namespace + ".\n")
	b.WriteString("creation_rules:\n  - path_regex: .*\\.ya?ml$\n    encrypted_regex: ^(data|stringData)$\n")
	b.WriteString("    age: " + strings.Join(o.SOPS.Recipients, ",") + "\n")
	return path.Join(o.Path, ".sops.yaml"), []byte(b.String())
}

// findSOPSConfig returns the first sops configuration file in dir or a folder above it, or "".
func findSOPSConfig(fs billy.Filesystem, dir string) string {
	for {
		for _, n := range sopsConfigNames {
			p := path.Join(dir, n)
			if fi, err := fs.Stat(p); err == nil && !fi.IsDir() {
				return p
			}
		}
		if dir == "." || dir == "/" || dir == "" {
			return ""
		}
		dir = path.Dir(dir)
	}
}
