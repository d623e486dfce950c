package git

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/hiddeco/sshsig"
	"golang.org/x/crypto/ssh"
)

// Verification modes: which objects of the resolved ref must carry a good signature.
const (
	// ModeHEAD verifies the commit the ref resolves to.
	ModeHEAD = "HEAD"
	// ModeTag verifies the annotated tag the ref names.
	ModeTag = "Tag"
	// ModeTagAndHEAD verifies the annotated tag and the commit.
	ModeTagAndHEAD = "TagAndHEAD"
)

// Verification error kinds, which callers map to condition reasons.
var (
	// ErrCommitSignature: the commit is unsigned, or no trusted key made its signature.
	ErrCommitSignature = errors.New("commit signature not verified")
	// ErrTagSignature: the tag is unsigned (or lightweight), or no trusted key signed it.
	ErrTagSignature = errors.New("tag signature not verified")
	// ErrKeys: the keys Secret holds no usable key.
	ErrKeys = errors.New("verification keys")
)

// sshNamespace is the SSHSIG namespace git signs commits and tags in.
const sshNamespace = "git"

// Verification says what to verify of a fetched ref, with which keys.
type Verification struct {
	// Mode is ModeHEAD, ModeTag or ModeTagAndHEAD.
	Mode string
	Keys *Keyring
}

// Verified describes the signatures that passed, one line each.
type Verified []string

// String joins the signatures in one message.
func (v Verified) String() string { return strings.Join(v, "; ") }

// WantsTag tells whether the mode verifies a tag object.
func WantsTag(mode string) bool { return mode == ModeTag || mode == ModeTagAndHEAD }

// WantsCommit tells whether the mode verifies the commit; an empty or the legacy "head" mode
// means ModeHEAD.
func WantsCommit(mode string) bool { return mode != ModeTag }

// verify checks the signatures that v's mode asks for on the fetched commit and, for a tag mode,
// on the annotated tag that res.RefName names in s.
func verify(s objectStorer, res Resolved, commit *object.Commit, v *Verification) (Verified, error) {
	var out Verified
	if WantsTag(v.Mode) {
		line, err := verifyTag(s, res, v.Keys)
		if err != nil {
			return nil, err
		}
		out = append(out, line)
	}
	if WantsCommit(v.Mode) {
		signer, err := v.Keys.check(commit.PGPSignature, commit.EncodeWithoutSignature, commit.Committer.When)
		if err != nil {
			return nil, fmt.Errorf("%w: commit %s: %v", ErrCommitSignature, res.Commit, err)
		}
		out = append(out, fmt.Sprintf("commit %s signed by %s", short(res.Commit), signer))
	}
	return out, nil
}

type objectStorer interface {
	Reference(plumbing.ReferenceName) (*plumbing.Reference, error)
	EncodedObject(plumbing.ObjectType, plumbing.Hash) (plumbing.EncodedObject, error)
}

// verifyTag checks the signature of the annotated tag that res.RefName names.
func verifyTag(s objectStorer, res Resolved, keys *Keyring) (string, error) {
	name := res.RefName.Short()
	ref, err := s.Reference(res.RefName)
	if err != nil {
		return "", fmt.Errorf("%w: tag %s: %v", ErrTagSignature, name, err)
	}
	obj, err := s.EncodedObject(plumbing.TagObject, ref.Hash())
	if err != nil {
		return "", fmt.Errorf("%w: tag %s is a lightweight tag, which cannot be signed; sign an annotated tag (git tag -s)", ErrTagSignature, name)
	}
	tag := &object.Tag{}
	if err := tag.Decode(obj); err != nil {
		return "", fmt.Errorf("%w: tag %s: %v", ErrTagSignature, name, err)
	}
	signer, err := keys.check(tag.PGPSignature, tag.EncodeWithoutSignature, tag.Tagger.When)
	if err != nil {
		return "", fmt.Errorf("%w: tag %s: %v", ErrTagSignature, name, err)
	}
	return fmt.Sprintf("tag %s signed by %s", name, signer), nil
}

// short abbreviates a commit hash as git log --oneline does.
func short(commit string) string {
	if len(commit) > 12 {
		return commit[:12]
	}
	return commit
}

// check verifies an armored signature (OpenPGP or SSH) over the object encode writes, made at
// when, and names the key that made it.
func (k *Keyring) check(signature string, encode func(plumbing.EncodedObject) error, when time.Time) (string, error) {
	if signature == "" {
		return "", errors.New("it is not signed")
	}
	payload := &plumbing.MemoryObject{}
	if err := encode(payload); err != nil {
		return "", err
	}
	body, err := io.ReadAll(mustReader(payload))
	if err != nil {
		return "", err
	}
	switch {
	case strings.HasPrefix(signature, "-----BEGIN PGP SIGNATURE-----"):
		return k.checkPGP(signature, body)
	case strings.HasPrefix(signature, "-----BEGIN SSH SIGNATURE-----"):
		return k.checkSSH([]byte(signature), body, when)
	}
	return "", errors.New("its signature is neither OpenPGP nor SSH (X.509 signatures are not supported)")
}

func mustReader(o *plumbing.MemoryObject) io.Reader {
	r, _ := o.Reader() // a MemoryObject's reader never fails
	return r
}

func (k *Keyring) checkPGP(signature string, body []byte) (string, error) {
	if len(k.pgp) == 0 {
		return "", errors.New("it has an OpenPGP signature and the Secret holds no OpenPGP keys (*.asc)")
	}
	if n := strings.Count(signature, "-----BEGIN PGP SIGNATURE-----"); n > 1 {
		return "", errors.New("it carries more than one signature")
	}
	var lastErr error
	for _, ring := range k.pgp {
		entity, err := openpgp.CheckArmoredDetachedSignature(ring.entities, bytes.NewReader(body), strings.NewReader(signature), nil)
		if err == nil {
			return pgpSigner(entity), nil
		}
		lastErr = err
	}
	return "", fmt.Errorf("no OpenPGP key of the Secret made its signature (%s)", pgpReason(lastErr))
}

// pgpReason says why the last key ring refused a signature, without library prefixes.
func pgpReason(err error) string {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "openpgp: ")
	return msg
}

func pgpSigner(e *openpgp.Entity) string {
	s := fmt.Sprintf("OpenPGP key %X", e.PrimaryKey.Fingerprint)
	names := make([]string, 0, len(e.Identities))
	for n := range e.Identities {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) > 0 {
		s += " (" + names[0] + ")"
	}
	return s
}

func (k *Keyring) checkSSH(armored, body []byte, when time.Time) (string, error) {
	if len(k.ssh) == 0 {
		return "", errors.New("it has an SSH signature and the Secret holds no SSH keys (*.sshpub or allowed_signers)")
	}
	sig, err := sshsig.Unarmor(armored)
	if err != nil {
		return "", fmt.Errorf("its SSH signature cannot be read: %v", err)
	}
	if sig.Namespace != sshNamespace {
		return "", fmt.Errorf("its SSH signature is for the namespace %q, not %q", sig.Namespace, sshNamespace)
	}
	wire := sig.PublicKey.Marshal()
	fp := ssh.FingerprintSHA256(sig.PublicKey)
	var refused string
	for _, s := range k.ssh {
		if !bytes.Equal(s.key.Marshal(), wire) {
			continue
		}
		if why := s.refuses(when); why != "" {
			refused = why
			continue
		}
		if err := sshsig.Verify(bytes.NewReader(body), sig, s.key, sig.HashAlgorithm, sshNamespace); err != nil {
			return "", fmt.Errorf("the SSH signature of key %s does not match its content: %v", fp, err)
		}
		signer := "SSH key " + fp
		if s.principals != "" {
			signer += " (" + s.principals + ")"
		}
		return signer, nil
	}
	if refused != "" {
		return "", fmt.Errorf("SSH key %s is in the Secret but %s", fp, refused)
	}
	return "", fmt.Errorf("it is signed by SSH key %s, which is not in the Secret", fp)
}
