//go:build e2e

package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	gogit "github.com/go-git/go-git/v5"
	. "github.com/onsi/gomega"
	"golang.org/x/crypto/ssh"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/plumb-dev/plumb/hack/internal/local"
	"github.com/plumb-dev/plumb/shared/testing/signtest"
	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
)

// gitRelease is a revision pushed to Git: its artifact revision, what SourceVerified names when
// it is verified ("tag v1.1.0", "commit 1a2b3c4d5e6f"), and what Ready names when it is refused.
type gitRelease struct {
	revision string
	verified []string
	refused  string
}

// Signed Git through the built controllers, one row per kind of signature: a GitRepository with
// spec.verify serves a signed commit (or annotated tag) and a Kustomization applies it; then an
// unsigned one is pushed and refused, the last verified artifact stays served and the cluster
// keeps what was applied.
func TestVerifiedGitToCluster(t *testing.T) {
	t.Parallel()
	git, err := local.StartGitServer("")
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	t.Cleanup(git.Stop) // after the parallel rows
	alice, alicePub, err := signtest.PGPKey("Alice", "alice@example.com")
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	sshKey, sshPub, err := signtest.SSHKey()
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	pgpKey := fmt.Sprintf("OpenPGP key %X (Alice <alice@example.com>)", alice.PrimaryKey.Fingerprint)

	// commit releases files as a commit on main, signed by signer when signed.
	commit := func(signer gogit.Signer) func(*local.Repo, map[string]string, bool) (gitRelease, error) {
		return func(repo *local.Repo, files map[string]string, signed bool) (gitRelease, error) {
			var s gogit.Signer
			if signed {
				s = signer
			}
			c, err := repo.SignedCommit("release", files, s)
			if err != nil {
				return gitRelease{}, err
			}
			return gitRelease{revision: "main@sha1:" + c, verified: []string{"commit " + c[:12]}, refused: "commit " + c}, nil
		}
	}
	// tag releases files as a commit, signed by commitSigner (nil: unsigned), and a new
	// annotated tag of it, signed by tagSigner when signed; the tag is verified before the commit.
	tag := func(commitSigner, tagSigner gogit.Signer) func(*local.Repo, map[string]string, bool) (gitRelease, error) {
		var version int
		return func(repo *local.Repo, files map[string]string, signed bool) (gitRelease, error) {
			c, err := repo.SignedCommit("release", files, commitSigner)
			if err != nil {
				return gitRelease{}, err
			}
			version++
			name := fmt.Sprintf("v1.%d.0", version)
			var s gogit.Signer
			if signed {
				s = tagSigner
			}
			r := gitRelease{revision: name + "@sha1:" + c, verified: []string{"tag " + name}, refused: "tag " + name}
			if commitSigner != nil {
				r.verified = append(r.verified, "commit "+c[:12])
			}
			return r, repo.Tag(name, c, s)
		}
	}
	pgpSigner, sshSigner := signtest.PGPSigner{Key: alice}, signtest.SSHSigner{Key: sshKey, Namespace: "git"}
	sshAllowed := map[string][]byte{"allowed_signers": []byte(`alice@example.com namespaces="git" ` + sshPub + "\n")}
	sshKeyName := "SSH key " + ssh.FingerprintSHA256(sshKey.PublicKey()) + " (alice@example.com)"

	for _, row := range []struct {
		name    string
		ref     sourcev1.GitRepositoryRef
		mode    sourcev1.GitVerificationMode
		signers map[string][]byte
		// release pushes files, signed or not.
		release func(repo *local.Repo, files map[string]string, signed bool) (gitRelease, error)
		// signer ends the SourceVerified message; reason is the refusal's.
		signer, reason string
	}{{
		name: "openpgp-commit", ref: sourcev1.GitRepositoryRef{Branch: "main"}, mode: sourcev1.ModeGitHEAD,
		signers: map[string][]byte{"alice.asc": alicePub},
		release: commit(pgpSigner), signer: pgpKey, reason: sourcev1.InvalidCommitSignatureReason,
	}, {
		name: "ssh-commit", ref: sourcev1.GitRepositoryRef{Branch: "main"}, mode: sourcev1.ModeGitHEAD,
		signers: sshAllowed, release: commit(sshSigner), signer: sshKeyName, reason: sourcev1.InvalidCommitSignatureReason,
	}, {
		name: "openpgp-tag", ref: sourcev1.GitRepositoryRef{SemVer: ">=1.0.0"}, mode: sourcev1.ModeGitTag,
		signers: map[string][]byte{"alice.asc": alicePub},
		release: tag(nil, pgpSigner), signer: pgpKey, reason: sourcev1.InvalidTagSignatureReason,
	}, {
		// Both signed with SSH; then a signed commit under an unsigned tag.
		name: "ssh-tag-and-head", ref: sourcev1.GitRepositoryRef{SemVer: ">=1.0.0"}, mode: sourcev1.ModeGitTagAndHEAD,
		signers: sshAllowed, release: tag(sshSigner, sshSigner), signer: sshKeyName, reason: sourcev1.InvalidTagSignatureReason,
	}} {
		t.Run(row.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			defer dumpLogs(t)
			ns := "verify-git-" + row.name
			repo, _, err := git.NewRepo(row.name, map[string]string{"README.md": "apps\n"})
			g.Expect(err).NotTo(HaveOccurred())
			good, err := row.release(repo, app("signed", false), true)
			g.Expect(err).NotTo(HaveOccurred())

			newVerifyNamespace(g, ns, row.signers)
			src := &sourcev1.GitRepository{
				ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: ns},
				Spec: sourcev1.GitRepositorySpec{
					URL: git.URL(row.name), Ref: &row.ref, Interval: metav1.Duration{Duration: time.Hour},
					Verification: &sourcev1.GitRepositoryVerification{Mode: row.mode, SecretRef: meta.LocalObjectReference{Name: trust.Name}},
				},
			}
			g.Expect(bed.Env.Client.Create(t.Context(), src)).To(Succeed())
			ks := applyWeb(g, src, sourcev1.GitRepositoryKind)
			waitApplied(g, ks, good.revision, "signed")
			var want []string
			for _, v := range good.verified {
				want = append(want, v+" signed by "+row.signer)
			}
			g.Expect(waitVerified(g, src)).To(Equal(strings.Join(want, "; ")))

			// Unsigned: refused, naming what is not signed; nothing reaches the cluster.
			bad, err := row.release(repo, app("unsigned", false), false)
			g.Expect(err).NotTo(HaveOccurred())
			request(g, src)
			waitRefused(g, src, row.reason, bad.refused+": it is not signed")
			g.Expect(src.Status.Artifact.Revision).To(Equal(good.revision), "the last verified artifact stays served")
			waitNothingApplied(g, ks, good.revision, "signed")
		})
	}
}
