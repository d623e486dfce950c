// Package sops opens SOPS-encrypted files in memory with keys held in memory: YAML and JSON
// documents with a top-level sops key, and dotenv, INI and binary files (the inputs of Secret
// generators). It uses the SOPS library's stores, cipher and master keys behind an in-memory key
// service: age identities, PGP keys (opened with OpenPGP keys parsed in memory, no GnuPG, no
// keyring file), and AWS KMS, GCP KMS, Azure Key Vault and HashiCorp Vault keys reached with
// credentials from the same Secret (Flux's entry names) or, when the controller allows it, its
// own workload identity. Keys and credentials come from a Secret's entries, never from the disk,
// and no plaintext or key is written anywhere. Decrypt also returns the decrypted values, for
// the caller to mask. Both apply-controller (Kustomization) and helm-controller (HelmRelease
// values) use it.
package sops

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	getsops "github.com/getsops/sops/v3"
	"github.com/getsops/sops/v3/aes"
	sopsage "github.com/getsops/sops/v3/age"
	"github.com/getsops/sops/v3/config"
	"github.com/getsops/sops/v3/keyservice"
	"github.com/getsops/sops/v3/stores/dotenv"
	"github.com/getsops/sops/v3/stores/ini"
	sopsjson "github.com/getsops/sops/v3/stores/json"
	sopsyaml "github.com/getsops/sops/v3/stores/yaml"
)

// Suffixes of the key Secret's entries.
const (
	AgeKeySuffix = ".agekey"
	PGPKeySuffix = ".asc"
)

// ErrNoKey says that no key (of the Secret, of a cloud identity) opens a file's data key.
var ErrNoKey = errors.New("no decryption key opens the file")

// Format is how a file is stored by SOPS.
type Format int

// The formats SOPS writes.
const (
	NotEncrypted Format = iota
	YAML
	JSON
	Dotenv
	INI
	Binary
)

func (f Format) String() string {
	return [...]string{"plain", "yaml", "json", "dotenv", "ini", "binary"}[f]
}

// Decryptor holds the private keys and cloud credentials of one decryption Secret.
type Decryptor struct {
	age   sopsage.ParsedIdentities
	pgp   openpgp.EntityList // PGP keys with their (unprotected) private keys
	cloud cloudKeys

	workloadIdentity bool
	identity         CloudIdentity // spec.decryption.serviceAccountName's, or nil
	httpClient       *http.Client
}

// New reads the keys of a Secret's entries: `*.agekey` hold age identities (one or more lines;
// empty lines and # comments are skipped), `*.asc` armored PGP private keys (one or more; keys
// protected by a passphrase are refused, there is no way to give the passphrase), and
// sops.aws-kms, sops.azure-kv, sops.gcp-kms and sops.vault-token the credentials of cloud key
// services (see the constants). Other entries are ignored. With WithCloudIdentity or
// WithWorkloadIdentity, entries may be nil: KMS keys then use that cloud identity. An error never
// holds key material.
func New(entries map[string][]byte, opts ...Option) (*Decryptor, error) {
	d := &Decryptor{}
	for _, o := range opts {
		o(d)
	}
	names := make([]string, 0, len(entries))
	for n := range entries {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		switch {
		case strings.HasSuffix(n, AgeKeySuffix):
			if err := d.age.Import(string(entries[n])); err != nil {
				return nil, fmt.Errorf("entry %s does not hold age identities", n)
			}
		case strings.HasSuffix(n, PGPKeySuffix):
			keys, err := readPGPKeys(n, entries[n])
			if err != nil {
				return nil, err
			}
			d.pgp = append(d.pgp, keys...)
		}
	}
	if err := d.readCloudKeys(entries); err != nil {
		return nil, err
	}
	if len(d.age) == 0 && len(d.pgp) == 0 && !d.hasCloudKeys() && !d.workloadIdentity && d.identity == nil {
		return nil, fmt.Errorf("no entry ending in %s or %s, nor %s, %s, %s or %s", AgeKeySuffix, PGPKeySuffix, AWSKMSEntry, AzureKVEntry, GCPKMSEntry, VaultTokenEntry)
	}
	return d, nil
}

// readPGPKeys parses the armored PGP private keys of the entry named n.
func readPGPKeys(n string, data []byte) (openpgp.EntityList, error) {
	ring, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("entry %s does not hold armored PGP keys", n)
	}
	var keys openpgp.EntityList
	for _, e := range ring {
		if e.PrivateKey == nil {
			continue // a public key only: nothing to decrypt with
		}
		protected := e.PrivateKey.Encrypted
		for _, sk := range e.Subkeys {
			protected = protected || (sk.PrivateKey != nil && sk.PrivateKey.Encrypted)
		}
		if protected {
			return nil, fmt.Errorf("entry %s holds the PGP key %s protected by a passphrase; passphrases are not supported, export the key without one", n, fingerprint(e.PrimaryKey.Fingerprint))
		}
		keys = append(keys, e)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("entry %s holds no PGP private key", n)
	}
	return keys, nil
}

// fingerprint writes a key fingerprint as SOPS stores it: upper-case hex.
func fingerprint(fp []byte) string {
	return strings.ToUpper(fmt.Sprintf("%x", fp))
}

// pgpKeys returns the keys whose primary key or a subkey has the fingerprint fp (SOPS's `fp`;
// a long key ID, the fingerprint's last 16 digits, matches too).
func (d *Decryptor) pgpKeys(fp string) openpgp.EntityList {
	fp = strings.ToUpper(strings.ReplaceAll(fp, " ", ""))
	if len(fp) < 16 {
		return nil
	}
	var out openpgp.EntityList
	for _, e := range d.pgp {
		match := strings.HasSuffix(fingerprint(e.PrimaryKey.Fingerprint), fp)
		for _, sk := range e.Subkeys {
			match = match || strings.HasSuffix(fingerprint(sk.PublicKey.Fingerprint), fp)
		}
		if match {
			out = append(out, e)
		}
	}
	return out
}

var (
	yamlSOPS   = regexp.MustCompile(`(?m)^sops:`)
	dotenvSOPS = regexp.MustCompile(`(?m)^sops_mac=`)
	iniSOPS    = regexp.MustCompile(`(?m)^\[sops\]`)
)

// Detect says how a file named name is encrypted, from its name (as the SOPS command line
// chooses a format) and its content; NotEncrypted when it holds no SOPS metadata.
func Detect(name string, data []byte) Format {
	if !bytes.Contains(data, []byte("sops")) {
		return NotEncrypted
	}
	switch ext := path.Ext(name); ext {
	case ".yaml", ".yml":
		if yamlSOPS.Match(data) {
			return YAML
		}
		return NotEncrypted
	case ".json":
		if hasSOPSKey(data) {
			return JSON
		}
		return NotEncrypted
	case ".env":
		if dotenvSOPS.Match(data) {
			return Dotenv
		}
		return NotEncrypted
	case ".ini":
		if iniSOPS.Match(data) {
			return INI
		}
		return NotEncrypted
	}
	// SOPS stores any other file as JSON: {"data": "ENC[...]", "sops": {...}}.
	if hasSOPSKey(data) {
		return Binary
	}
	return NotEncrypted
}

func hasSOPSKey(data []byte) bool {
	var top map[string]json.RawMessage
	if json.Unmarshal(data, &top) != nil {
		return false
	}
	_, ok := top["sops"]
	return ok
}

// Decrypt returns the plaintext of an encrypted file (data itself when it is not encrypted) and
// the values that were encrypted in it, to mask. name is only for choosing the format and for
// messages.
func (d *Decryptor) Decrypt(name string, data []byte) ([]byte, []string, error) {
	f := Detect(name, data)
	if f == NotEncrypted {
		return data, nil, nil
	}
	store := storeFor(f)
	tree, err := store.LoadEncryptedFile(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%s (%s, SOPS): %v", name, f, err)
	}
	srv := &server{d: d}
	key, err := tree.Metadata.GetDataKeyWithKeyServices([]keyservice.KeyServiceClient{keyservice.NewCustomLocalClient(srv)}, nil)
	if err != nil || len(key) == 0 {
		return nil, nil, fmt.Errorf("%s: %w; key groups tried: %s%s", name, ErrNoKey, describeGroups(tree.Metadata.KeyGroups), d.note(tree.Metadata.KeyGroups, srv.failures))
	}
	paths := encryptedLeaves(&tree)
	cipher := aes.NewCipher()
	mac, err := tree.Decrypt(key, cipher)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: decrypting values: %v", name, err)
	}
	orig, err := cipher.Decrypt(tree.Metadata.MessageAuthenticationCode, key, tree.Metadata.LastModified.Format(time.RFC3339))
	if err != nil || orig != mac {
		return nil, nil, fmt.Errorf("%s: integrity check failed: the file's MAC does not match its content (changed after encryption?)", name)
	}
	values := leafValues(&tree, paths)
	out, err := store.EmitPlainFile(tree.Branches)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: writing the plaintext (%s): %v", name, f, err)
	}
	return out, values, nil
}

// note explains why keys the Decryptor holds could not be used, with the failures of the cloud
// key services.
func (d *Decryptor) note(groups []getsops.KeyGroup, failures []string) string {
	var pgp, age, other bool
	for _, g := range groups {
		for _, k := range g {
			switch k.TypeToIdentifier() {
			case "pgp":
				pgp = true
			case "age":
				age = true
			case "kms", "azure_kv", "gcp_kms", "hc_vault":
			default:
				other = true
			}
		}
	}
	var notes []string
	if pgp {
		if len(d.pgp) == 0 {
			notes = append(notes, "the Secret holds no PGP private key (*.asc)")
		} else {
			var fps []string
			for _, e := range d.pgp {
				fps = append(fps, fingerprint(e.PrimaryKey.Fingerprint))
			}
			notes = append(notes, "the Secret's PGP keys: "+strings.Join(fps, ", "))
		}
	}
	if age && len(d.age) == 0 {
		notes = append(notes, "the Secret holds no age identity (*.agekey)")
	}
	notes = append(notes, failures...)
	if other {
		notes = append(notes, "only age, PGP, AWS KMS, GCP KMS, Azure Key Vault and HashiCorp Vault keys are supported")
	}
	if len(notes) == 0 {
		return ""
	}
	return " (" + strings.Join(notes, "; ") + ")"
}

// describeGroups names the keys of each group: recipients, fingerprints, key IDs, never secrets.
func describeGroups(groups []getsops.KeyGroup) string {
	var gs []string
	for i, g := range groups {
		var ks []string
		for _, k := range g {
			ks = append(ks, k.TypeToIdentifier()+" "+k.ToString())
		}
		gs = append(gs, fmt.Sprintf("group %d [%s]", i+1, strings.Join(ks, ", ")))
	}
	if len(gs) == 0 {
		return "none"
	}
	return strings.Join(gs, ", ")
}

func storeFor(f Format) getsops.Store {
	c := config.NewStoresConfig()
	switch f {
	case YAML:
		return sopsyaml.NewStore(&c.YAML)
	case JSON:
		return sopsjson.NewStore(&c.JSON)
	case Dotenv:
		return dotenv.NewStore(&c.Dotenv)
	case INI:
		return ini.NewStore(&c.INI)
	default:
		return sopsjson.NewBinaryStore(&c.JSONBinary)
	}
}

// server is a SOPS key service that opens data keys with the Decryptor's age identities and PGP
// keys, and with cloud key services reached with the Decryptor's credentials (or, when allowed,
// the controller's identity): no key is read from the disk or GnuPG. One server serves one file
// and records the cloud keys' failures.
type server struct {
	keyservice.UnimplementedKeyServiceServer
	d        *Decryptor
	failures []string
}

func (s *server) Decrypt(_ context.Context, req *keyservice.DecryptRequest) (*keyservice.DecryptResponse, error) {
	switch k := req.GetKey().GetKeyType().(type) {
	case *keyservice.Key_AgeKey:
		return s.decryptAge(k, req.GetCiphertext())
	case *keyservice.Key_PgpKey:
		return s.decryptPGP(k, req.GetCiphertext())
	}
	return s.decryptCloud(req.GetKey(), req.GetCiphertext())
}

func (s *server) decryptAge(k *keyservice.Key_AgeKey, ciphertext []byte) (*keyservice.DecryptResponse, error) {
	if len(s.d.age) == 0 {
		return nil, errors.New("no age identity")
	}
	mk := &sopsage.MasterKey{Recipient: k.AgeKey.GetRecipient(), EncryptedKey: string(ciphertext)}
	s.d.age.ApplyToMasterKey(mk)
	plain, err := mk.Decrypt()
	if err != nil {
		return nil, errors.New("no identity opens it")
	}
	return &keyservice.DecryptResponse{Plaintext: plain}, nil
}

// decryptPGP opens a data key that SOPS sealed for a PGP key: an armored OpenPGP message.
func (s *server) decryptPGP(k *keyservice.Key_PgpKey, ciphertext []byte) (*keyservice.DecryptResponse, error) {
	fp := k.PgpKey.GetFingerprint()
	ring := s.d.pgpKeys(fp)
	if len(ring) == 0 {
		return nil, fmt.Errorf("no PGP private key with fingerprint %s", fp)
	}
	block, err := armor.Decode(bytes.NewReader(ciphertext))
	if err != nil {
		return nil, fmt.Errorf("the data key for PGP key %s is not an armored message", fp)
	}
	md, err := openpgp.ReadMessage(block.Body, ring, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("the PGP key %s does not open the data key", fp)
	}
	plain, err := io.ReadAll(md.UnverifiedBody)
	if err != nil || len(plain) == 0 {
		return nil, fmt.Errorf("the PGP key %s does not open the data key", fp)
	}
	return &keyservice.DecryptResponse{Plaintext: plain}, nil
}

func (s *server) Encrypt(context.Context, *keyservice.EncryptRequest) (*keyservice.EncryptResponse, error) {
	return nil, errors.New("encryption is not offered")
}

// encryptedLeaves returns the paths (indexes through branches and lists) of the values that are
// encrypted, before decryption: those are the secrets, the others were left in clear.
func encryptedLeaves(tree *getsops.Tree) [][]int {
	var out [][]int
	var visit func(v any, p []int)
	visit = func(v any, p []int) {
		switch v := v.(type) {
		case getsops.TreeBranch:
			for i, item := range v {
				visit(item.Value, append(append([]int(nil), p...), i))
			}
		case []any:
			for i, e := range v {
				visit(e, append(append([]int(nil), p...), i))
			}
		case string:
			if strings.HasPrefix(v, "ENC[") {
				out = append(out, p)
			}
		}
	}
	for i, b := range tree.Branches {
		visit(b, []int{i})
	}
	return out
}

// leafValues reads the values at paths after decryption, as strings.
func leafValues(tree *getsops.Tree, paths [][]int) []string {
	var out []string
	for _, p := range paths {
		var v any = tree.Branches[p[0]]
		for _, i := range p[1:] {
			switch b := v.(type) {
			case getsops.TreeBranch:
				v = b[i].Value
			case []any:
				v = b[i]
			}
		}
		switch v := v.(type) {
		case string:
			out = append(out, v)
		case nil:
		default:
			out = append(out, fmt.Sprint(v))
		}
	}
	return out
}
