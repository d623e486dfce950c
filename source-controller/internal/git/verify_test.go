package git

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"golang.org/x/crypto/ssh"

	"github.com/plumb-dev/plumb/shared/artifact"
	"github.com/plumb-dev/plumb/shared/testing/signtest"
	"github.com/plumb-dev/plumb/shared/testing/testenv"
)

// signer signs a commit's or tag's payload: signtest's PGPSigner and SSHSigner, or a signerFunc.
type signer interface {
	Sign(message io.Reader) ([]byte, error)
}

// signerFunc is a signer made of a function.
type signerFunc func(message io.Reader) ([]byte, error)

func (f signerFunc) Sign(message io.Reader) ([]byte, error) { return f(message) }

// pgpKey makes an OpenPGP key of name <name@example.com>; its armored public key goes into a
// Secret's *.asc.
func pgpKey(t *testing.T, name string) (*openpgp.Entity, []byte) {
	t.Helper()
	e, pub, err := signtest.PGPKey(name, strings.ToLower(name)+"@example.com")
	must(err)
	return e, pub
}

func pgpSign(e *openpgp.Entity) signer { return signtest.PGPSigner{Key: e} }

// sshKey makes an SSH signer and its authorized_keys line.
func sshKey(t *testing.T) (ssh.Signer, string) {
	t.Helper()
	s, pub, err := signtest.SSHKey()
	must(err)
	return s, pub
}

func sshSign(s ssh.Signer, namespace string) signer {
	return signtest.SSHSigner{Key: s, Namespace: namespace}
}

// signature is sign's armored signature of payload.
func signature(t *testing.T, sign signer, payload []byte) string {
	t.Helper()
	sig, err := sign.Sign(bytes.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	return string(sig)
}

func payloadOf(encode func(plumbing.EncodedObject) error) []byte {
	o := &plumbing.MemoryObject{}
	must(encode(o))
	b, err := io.ReadAll(mustReader(o))
	must(err)
	return b
}

// signedCommit commits files on branch, signed by sign when set.
func (r *testRepo) signedCommit(branch string, files map[string]entry, sign signer) string {
	r.t.Helper()
	ref := plumbing.NewBranchReferenceName(branch)
	var parents []plumbing.Hash
	if cur, err := r.repo.Storer.Reference(ref); err == nil {
		parents = append(parents, cur.Hash())
	}
	sig := object.Signature{Name: "Test", Email: "test@example.invalid", When: commitTime}
	commitTime = commitTime.Add(time.Minute)
	c := &object.Commit{Author: sig, Committer: sig, Message: "change\n", TreeHash: r.writeTree(files), ParentHashes: parents}
	if sign != nil {
		c.PGPSignature = signature(r.t, sign, payloadOf(c.EncodeWithoutSignature))
	}
	h := r.store(c)
	must(r.repo.Storer.SetReference(plumbing.NewHashReference(ref, h)))
	return h.String()
}

// signedTag makes an annotated tag of commit, signed by sign when set, and pushes it.
func (r *testRepo) signedTag(name, commit string, sign signer) {
	r.t.Helper()
	tg := &object.Tag{Name: name, Tagger: object.Signature{Name: "Test", Email: "test@example.invalid", When: commitTime},
		Message: "release " + name + "\n", TargetType: plumbing.CommitObject, Target: plumbing.NewHash(commit)}
	if sign != nil {
		tg.PGPSignature = signature(r.t, sign, payloadOf(tg.EncodeWithoutSignature))
	}
	h := r.store(tg)
	ref := plumbing.NewTagReferenceName(name)
	must(r.repo.Storer.SetReference(plumbing.NewHashReference(ref, h)))
	r.push(string(ref))
}

func archiveVerified(t *testing.T, r *testRepo, ref Ref, mode string, secret map[string][]byte) (Verified, error) {
	t.Helper()
	keys, err := ParseKeyring(secret)
	if err != nil {
		t.Fatal(err)
	}
	res := mustResolve(t, r.remote(), ref)
	return Archive(t.Context(), r.remote(), res, false, ArchiveOptions{Verify: &Verification{Mode: mode, Keys: keys}}, artifact.NewWriter(io.Discard))
}

func TestVerifyCommits(t *testing.T) {
	alice, alicePub := pgpKey(t, "Alice")
	mallory, _ := pgpKey(t, "Mallory")
	sshSigner, sshPub := sshKey(t)
	otherSSH, _ := sshKey(t)
	fp := ssh.FingerprintSHA256(sshSigner.PublicKey())
	pgpSecret := map[string][]byte{"alice.asc": alicePub, "README": []byte("ignored")}
	allowed := map[string][]byte{AllowedSignersKey: []byte("# team\nalice@example.com " + sshPub + "\n")}

	for _, tc := range []struct {
		name    string
		sign    signer
		secret  map[string][]byte
		want    string // in the Verified message
		wantErr string // in the error
	}{
		{"pgp", pgpSign(alice), pgpSecret, fmt.Sprintf("signed by OpenPGP key %X (Alice <alice@example.com>)", alice.PrimaryKey.Fingerprint), ""},
		{"pgp with another key", pgpSign(mallory), pgpSecret, "", "no OpenPGP key of the Secret made its signature"},
		{"unsigned", nil, pgpSecret, "", "it is not signed"},
		{"ssh allowed signer", sshSign(sshSigner, "git"), allowed, "signed by SSH key " + fp + " (alice@example.com)", ""},
		{"ssh public key", sshSign(sshSigner, "git"), map[string][]byte{"ci.sshpub": []byte(sshPub + "\n")}, "signed by SSH key " + fp, ""},
		{"ssh another key", sshSign(otherSSH, "git"), allowed, "", "which is not in the Secret"},
		{"ssh other namespace", sshSign(sshSigner, "file"), allowed, "", `namespace "file"`},
		{"ssh key not allowed for git", sshSign(sshSigner, "git"),
			map[string][]byte{AllowedSignersKey: []byte(`alice@example.com namespaces="file" ` + sshPub)}, "", "does not allow the namespace"},
		{"ssh key expired", sshSign(sshSigner, "git"),
			map[string][]byte{AllowedSignersKey: []byte(`alice@example.com valid-before="20230101" ` + sshPub)}, "", "after the key's valid-before"},
		{"ssh signature, only pgp keys", sshSign(sshSigner, "git"), pgpSecret, "", "holds no SSH keys"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRepo(t)
			c := r.signedCommit("main", files{"a": file("1")}, tc.sign)
			r.push("refs/heads/main")
			v, err := archiveVerified(t, r, Ref{Branch: "main"}, ModeHEAD, tc.secret)
			if tc.wantErr != "" {
				if !errors.Is(err, ErrCommitSignature) || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), c) {
					t.Fatalf("err = %v, want ErrCommitSignature naming commit %s and %q", err, c, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := "commit " + c[:12] + " " + tc.want; v.String() != want {
				t.Fatalf("verified %q, want %q", v, want)
			}
		})
	}
}

func TestVerifyTags(t *testing.T) {
	alice, alicePub := pgpKey(t, "Alice")
	secret := map[string][]byte{"alice.asc": alicePub}
	r := newRepo(t)
	unsigned := r.signedCommit("main", files{"a": file("1")}, nil)
	r.push("refs/heads/main")
	r.signedTag("v1.0.0", unsigned, pgpSign(alice))
	r.signedTag("v1.0.1", unsigned, nil)
	r.tag("v1.0.2", unsigned, "") // lightweight
	signed := r.signedCommit("main", files{"a": file("2")}, pgpSign(alice))
	r.push("refs/heads/main")
	r.signedTag("v2.0.0", signed, pgpSign(alice))

	for _, tc := range []struct {
		name    string
		ref     Ref
		mode    string
		want    string
		wantErr error
	}{
		{"signed tag of an unsigned commit", Ref{Tag: "v1.0.0"}, ModeTag, "tag v1.0.0 signed by OpenPGP key", nil},
		{"same with TagAndHEAD", Ref{Tag: "v1.0.0"}, ModeTagAndHEAD, "", ErrCommitSignature},
		{"same with HEAD", Ref{Tag: "v1.0.0"}, ModeHEAD, "", ErrCommitSignature},
		{"unsigned tag", Ref{Tag: "v1.0.1"}, ModeTag, "", ErrTagSignature},
		{"lightweight tag", Ref{Tag: "v1.0.2"}, ModeTag, "", ErrTagSignature},
		{"semver picks a signed tag of a signed commit", Ref{SemVer: ">=2"}, ModeTagAndHEAD, "tag v2.0.0 signed by OpenPGP key", nil},
		{"a tag by its ref name", Ref{Name: "refs/tags/v2.0.0"}, ModeTag, "tag v2.0.0 signed by", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := archiveVerified(t, r, tc.ref, tc.mode, secret)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil || !strings.HasPrefix(v.String(), tc.want) {
				t.Fatalf("verified %q, %v; want %q...", v, err, tc.want)
			}
		})
	}
	if _, err := archiveVerified(t, r, Ref{Tag: "v1.0.2"}, ModeTag, secret); err == nil || !strings.Contains(err.Error(), "lightweight") {
		t.Fatalf("lightweight tag: %v", err)
	}
}

// A commit signed by ssh-keygen -Y sign, as git -c gpg.format=ssh commit -S does, verifies.
func TestVerifySSHKeygenSignature(t *testing.T) {
	keygen := testenv.NeedTool(t, "ssh-keygen")
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	must(err)
	signer, err := ssh.NewSignerFromKey(priv)
	must(err)
	pub := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "id_ed25519")
	block, err := ssh.MarshalPrivateKey(priv, "")
	must(err)
	must(os.WriteFile(keyFile, pem.EncodeToMemory(block), 0o600))
	sign := signerFunc(func(message io.Reader) ([]byte, error) {
		payload, err := io.ReadAll(message)
		must(err)
		msg := filepath.Join(dir, "payload")
		must(os.WriteFile(msg, payload, 0o600))
		if out, err := exec.Command(keygen, "-Y", "sign", "-n", "git", "-f", keyFile, msg).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("ssh-keygen -Y sign: %v\n%s", err, out)
		}
		return os.ReadFile(msg + ".sig")
	})
	r := newRepo(t)
	r.signedCommit("main", files{"a": file("1")}, sign)
	r.push("refs/heads/main")
	v, err := archiveVerified(t, r, Ref{Branch: "main"}, ModeHEAD, map[string][]byte{AllowedSignersKey: []byte("ci@example.com " + pub)})
	if err != nil || !strings.Contains(v.String(), "(ci@example.com)") {
		t.Fatalf("verified %q, %v", v, err)
	}
}

func TestParseKeyring(t *testing.T) {
	_, pub := sshKey(t)
	for _, tc := range []struct {
		name    string
		secret  map[string][]byte
		wantErr string
	}{
		{"no keys", map[string][]byte{"username": []byte("x")}, "has no key ending in .asc"},
		{"broken asc", map[string][]byte{"a.asc": []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----\nnope")}, "a.asc is not an ASCII-armored OpenPGP public key"},
		{"broken sshpub", map[string][]byte{"a.sshpub": []byte("ssh-ed25519 AAAA")}, "a.sshpub: line 1 is not an SSH public key"},
		{"cert authority", map[string][]byte{AllowedSignersKey: []byte("*@example.com cert-authority " + pub)}, "cert-authority is not supported"},
		{"unknown option", map[string][]byte{AllowedSignersKey: []byte("\n\na@example.com frobnicate " + pub)}, `line 3: unknown option "frobnicate"`},
		{"bad time", map[string][]byte{AllowedSignersKey: []byte(`a@example.com valid-after="tomorrow" ` + pub)}, "valid-after: not a time"},
		{"fine", map[string][]byte{AllowedSignersKey: []byte(`"a@example.com,b@example.com" namespaces="git,file",valid-after="20200101Z" ` + pub)}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseKeyring(tc.secret)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrKeys) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want ErrKeys with %q", err, tc.wantErr)
			}
		})
	}
}

func TestKeysDigest(t *testing.T) {
	a := map[string][]byte{"a.asc": []byte("1"), "token": []byte("x")}
	b := map[string][]byte{"a.asc": []byte("1"), "token": []byte("y")}
	c := map[string][]byte{"a.asc": []byte("2")}
	if KeysDigest(a) != KeysDigest(b) {
		t.Fatal("a key that holds no trusted key changed the digest")
	}
	if KeysDigest(a) == KeysDigest(c) {
		t.Fatal("a changed key left the digest alone")
	}
}

// The allowed-signers parser reads bytes from a Secret that a tenant writes.
func FuzzParseAllowedSigners(f *testing.F) {
	_, pub := sshKey(&testing.T{})
	f.Add([]byte("a@example.com " + pub))
	f.Add([]byte(`"a b" namespaces="git",valid-before="20300101010101Z" ` + pub))
	f.Add([]byte(`"unterminated ` + pub))
	f.Add([]byte("# comment\n\n*@x cert-authority " + pub))
	f.Fuzz(func(t *testing.T, data []byte) {
		signers, err := ParseAllowedSigners(data)
		if err == nil && len(signers) == 0 {
			t.Fatal("no error and no signer")
		}
		for _, s := range signers {
			if s.key == nil || s.principals == "" {
				t.Fatalf("signer without key or principals: %+v", s)
			}
		}
	})
}
