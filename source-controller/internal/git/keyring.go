package git

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"golang.org/x/crypto/ssh"
)

// The keys of a verification Secret that hold trusted keys; other keys are ignored.
const (
	// PGPKeySuffix ends the Secret keys that hold ASCII-armored OpenPGP public keys (Flux's).
	PGPKeySuffix = ".asc"
	// SSHKeySuffix ends the Secret keys that hold SSH public keys, one per line in
	// authorized_keys form (Flux's).
	SSHKeySuffix = ".sshpub"
	// AllowedSignersKey holds an OpenSSH allowed-signers file (gpg.ssh.allowedSignersFile):
	// principals, options and a key per line.
	AllowedSignersKey = "allowed_signers"
)

// Keyring holds the trusted keys of a verification Secret.
type Keyring struct {
	pgp []pgpRing
	ssh []sshSigner
}

type pgpRing struct {
	name     string
	entities openpgp.EntityList
}

// sshSigner is one trusted SSH key with the limits its allowed-signers line sets.
type sshSigner struct {
	key        ssh.PublicKey
	principals string
	// namespaces the key may sign in; nil allows any.
	namespaces              []string
	validAfter, validBefore time.Time
}

// refuses says why the key may not have made a git signature at when, or "".
func (s sshSigner) refuses(when time.Time) string {
	if s.namespaces != nil && !slices.ContainsFunc(s.namespaces, func(p string) bool {
		ok, _ := path.Match(p, sshNamespace)
		return ok
	}) {
		return fmt.Sprintf("its allowed_signers line does not allow the namespace %q", sshNamespace)
	}
	if !s.validAfter.IsZero() && when.Before(s.validAfter) {
		return fmt.Sprintf("the signature dates from %s, before the key's valid-after", when.UTC().Format(time.RFC3339))
	}
	if !s.validBefore.IsZero() && !when.Before(s.validBefore) {
		return fmt.Sprintf("the signature dates from %s, after the key's valid-before", when.UTC().Format(time.RFC3339))
	}
	return ""
}

// KeysDigest identifies the trusted keys of a Secret, so that a verification can be cached
// until they change: a digest of the keys ParseKeyring reads, and of nothing else.
func KeysDigest(secret map[string][]byte) string {
	h := sha256.New()
	for _, name := range keyNames(secret) {
		fmt.Fprintf(h, "%s\x00%d\x00", name, len(secret[name]))
		h.Write(secret[name])
	}
	return hex.EncodeToString(h.Sum(nil))
}

func keyNames(secret map[string][]byte) []string {
	var names []string
	for name := range secret {
		if strings.HasSuffix(name, PGPKeySuffix) || strings.HasSuffix(name, SSHKeySuffix) || name == AllowedSignersKey {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// ParseKeyring reads the trusted keys of a verification Secret. Errors name the Secret's key and
// line, never quote it.
func ParseKeyring(secret map[string][]byte) (*Keyring, error) {
	k := &Keyring{}
	names := keyNames(secret)
	if len(names) == 0 {
		return nil, fmt.Errorf("%w: the Secret has no key ending in %s (OpenPGP) or %s (SSH), and no %s", ErrKeys, PGPKeySuffix, SSHKeySuffix, AllowedSignersKey)
	}
	for _, name := range names {
		data := secret[name]
		switch {
		case strings.HasSuffix(name, PGPKeySuffix):
			entities, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(data))
			if err != nil {
				return nil, fmt.Errorf("%w: Secret key %s is not an ASCII-armored OpenPGP public key (gpg --export --armor)", ErrKeys, name)
			}
			k.pgp = append(k.pgp, pgpRing{name: name, entities: entities})
		case name == AllowedSignersKey:
			signers, err := ParseAllowedSigners(data)
			if err != nil {
				return nil, fmt.Errorf("%w: Secret key %s: %v", ErrKeys, name, err)
			}
			k.ssh = append(k.ssh, signers...)
		default:
			signers, err := parseSSHPub(data)
			if err != nil {
				return nil, fmt.Errorf("%w: Secret key %s: %v", ErrKeys, name, err)
			}
			k.ssh = append(k.ssh, signers...)
		}
	}
	return k, nil
}

// parseSSHPub reads authorized_keys-form public keys, one per line.
func parseSSHPub(data []byte) ([]sshSigner, error) {
	var out []sshSigner
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
		if err != nil {
			return nil, fmt.Errorf("line %d is not an SSH public key (type, base64 key, comment)", i+1)
		}
		out = append(out, sshSigner{key: key})
	}
	if len(out) == 0 {
		return nil, errors.New("holds no SSH public key")
	}
	return out, nil
}

// ParseAllowedSigners reads an OpenSSH allowed-signers file (ssh-keygen(1), ALLOWED SIGNERS):
// per line principals, optional options (namespaces, valid-after, valid-before) and a public
// key. cert-authority lines are refused: SSH certificates are not supported.
func ParseAllowedSigners(data []byte) ([]sshSigner, error) {
	var out []sshSigner
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s, err := parseAllowedSigner(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %v", i+1, err)
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, errors.New("holds no allowed signer")
	}
	return out, nil
}

func parseAllowedSigner(line string) (sshSigner, error) {
	var principals, rest string
	if strings.HasPrefix(line, `"`) {
		end := strings.Index(line[1:], `"`)
		if end < 0 {
			return sshSigner{}, errors.New("the quoted principals have no closing quote")
		}
		principals, rest = line[1:end+1], line[end+2:]
	} else {
		var ok bool
		if principals, rest, ok = strings.Cut(line, " "); !ok {
			principals, rest, _ = strings.Cut(line, "\t")
		}
	}
	principals = strings.TrimSpace(principals)
	if principals == "" {
		return sshSigner{}, errors.New("no principals (e.g. an email address) before the key")
	}
	key, _, options, _, err := ssh.ParseAuthorizedKey([]byte(strings.TrimSpace(rest)))
	if err != nil {
		return sshSigner{}, errors.New("expected principals, optional options, then an SSH public key (type and base64)")
	}
	s := sshSigner{key: key, principals: principals}
	for _, opt := range options {
		name, value, hasValue := strings.Cut(opt, "=")
		value = strings.Trim(value, `"`)
		switch strings.ToLower(name) {
		case "cert-authority":
			return sshSigner{}, errors.New("cert-authority is not supported: list the signers' own keys")
		case "namespaces":
			if !hasValue || value == "" {
				return sshSigner{}, errors.New("namespaces needs a value")
			}
			s.namespaces = strings.Split(value, ",")
		case "valid-after", "valid-before":
			t, err := parseSSHTime(value)
			if err != nil {
				return sshSigner{}, fmt.Errorf("%s: %v", name, err)
			}
			if strings.EqualFold(name, "valid-after") {
				s.validAfter = t
			} else {
				s.validBefore = t
			}
		default:
			return sshSigner{}, fmt.Errorf("unknown option %q", name)
		}
	}
	return s, nil
}

// parseSSHTime reads the YYYYMMDD[HHMM[SS]][Z] times of allowed-signers options. Times without Z
// are taken as UTC: a controller has no local time zone of its users.
func parseSSHTime(v string) (time.Time, error) {
	v = strings.TrimSuffix(strings.TrimSuffix(v, "Z"), "z")
	layouts := map[int]string{8: "20060102", 12: "200601021504", 14: "20060102150405"}
	layout, ok := layouts[len(v)]
	if _, err := strconv.ParseUint(v, 10, 64); !ok || err != nil {
		return time.Time{}, errors.New("not a time of the form YYYYMMDD, YYYYMMDDHHMM or YYYYMMDDHHMMSS")
	}
	t, err := time.Parse(layout, v)
	if err != nil {
		return time.Time{}, errors.New("not a valid date")
	}
	return t, nil
}
