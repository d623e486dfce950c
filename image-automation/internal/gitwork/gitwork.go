// Package gitwork keeps a local clone of a Git repository between automation runs, brings it to
// the remote branch's tip, commits changed files and pushes them without ever forcing.
package gitwork

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"

	"github.com/plumb-dev/plumb/shared/gitauth"
	"github.com/plumb-dev/plumb/shared/redact"
)

// Errors, to be told apart with errors.Is.
var (
	// ErrNonFastForward: the remote branch moved since the fetch.
	ErrNonFastForward = errors.New("the remote branch moved (non-fast-forward)")
	// ErrBranchNotFound: the branch to check out does not exist on the remote.
	ErrBranchNotFound = errors.New("branch not found")
	// ErrPush: the server refused the push for another reason (permissions, a protected branch).
	ErrPush = errors.New("push refused")
)

// Clone is a working copy of one branch.
type Clone struct {
	repo   *gogit.Repository
	dir    string
	remote gitauth.Remote
	// Branch is the local branch, named as the checked-out remote branch.
	Branch string
	// Start is the remote branch the working copy was reset to: Branch, or the push branch when
	// it exists.
	Start string
	// Head is the commit the working copy was reset to.
	Head plumbing.Hash
}

// Sync opens the clone in dir (cloning the first time, or again when the remote URL changed),
// fetches branch and resets the working copy to its tip; from is fetched instead when it exists
// on the remote (a push branch that holds earlier automation commits). Any local change is
// dropped.
func Sync(ctx context.Context, dir string, remote gitauth.Remote, branch, from string) (*Clone, error) {
	repo, err := open(ctx, dir, remote)
	if err != nil {
		return nil, err
	}
	start := branch
	if from != "" && from != branch {
		if ok, err := fetch(ctx, repo, remote, from); err != nil {
			return nil, err
		} else if ok {
			start = from
		}
	}
	if ok, err := fetch(ctx, repo, remote, start); err != nil {
		return nil, err
	} else if !ok {
		return nil, fmt.Errorf("%w: %s has no branch %q", ErrBranchNotFound, redact.URL(remote.URL), start)
	}
	tip, err := repo.Reference(plumbing.NewRemoteReferenceName("origin", start), true)
	if err != nil {
		return nil, err
	}
	local := plumbing.NewBranchReferenceName(branch)
	if err := repo.Storer.SetReference(plumbing.NewHashReference(local, tip.Hash())); err != nil {
		return nil, err
	}
	wt, err := repo.Worktree()
	if err != nil {
		return nil, err
	}
	if err := wt.Checkout(&gogit.CheckoutOptions{Branch: local, Force: true}); err != nil {
		return nil, fmt.Errorf("checking out %s: %w", branch, err)
	}
	if err := wt.Reset(&gogit.ResetOptions{Commit: tip.Hash(), Mode: gogit.HardReset}); err != nil {
		return nil, fmt.Errorf("resetting to %s: %w", tip.Hash(), err)
	}
	return &Clone{repo: repo, dir: dir, remote: remote, Branch: branch, Start: start, Head: tip.Hash()}, nil
}

// open returns the clone in dir, initialising it when missing or of another URL.
func open(ctx context.Context, dir string, remote gitauth.Remote) (*gogit.Repository, error) {
	repo, err := gogit.PlainOpen(dir)
	if err == nil {
		if r, rerr := repo.Remote("origin"); rerr == nil && len(r.Config().URLs) == 1 && r.Config().URLs[0] == remote.URL {
			return repo, nil
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return nil, err
	}
	repo, err = gogit.PlainInit(dir, false)
	if err != nil {
		return nil, err
	}
	if _, err := repo.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{remote.URL}}); err != nil {
		return nil, err
	}
	return repo, nil
}

// fetch brings origin's branch into refs/remotes/origin/<branch>, shallow (the tip alone: a
// commit on top needs nothing older); false when there is none.
func fetch(ctx context.Context, repo *gogit.Repository, remote gitauth.Remote, branch string) (bool, error) {
	spec := config.RefSpec(fmt.Sprintf("+refs/heads/%s:refs/remotes/origin/%s", branch, branch))
	err := repo.FetchContext(ctx, &gogit.FetchOptions{RemoteName: "origin", RefSpecs: []config.RefSpec{spec},
		Auth: remote.Auth, CABundle: remote.CABundle, ProxyOptions: remote.Proxy.Options(remote.URL), Tags: gogit.NoTags, Force: true, Depth: 1})
	switch {
	case err == nil, errors.Is(err, gogit.NoErrAlreadyUpToDate):
		return true, nil
	case isNoMatchingRef(err):
		return false, nil
	default:
		return false, classify("fetching", remote.URL, err)
	}
}

func isNoMatchingRef(err error) bool {
	var nm gogit.NoMatchingRefSpecError
	return errors.As(err, &nm) || errors.Is(err, transport.ErrEmptyRemoteRepository)
}

// Dir is the working copy's folder.
func (c *Clone) Dir() string { return c.dir }

// Author signs a commit.
type Author struct {
	Name, Email string
	// SignKey signs the commit when set (with its private key decrypted).
	SignKey *openpgp.Entity
}

// Commit stages the files (slash paths relative to the working copy) and commits them.
func (c *Clone) Commit(files []string, message string, a Author) (plumbing.Hash, error) {
	wt, err := c.repo.Worktree()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	for _, f := range files {
		// Without SkipStatus every Add compares the whole working copy with the index.
		if err := wt.AddWithOptions(&gogit.AddOptions{Path: f, SkipStatus: true}); err != nil {
			return plumbing.ZeroHash, fmt.Errorf("staging %s: %w", f, err)
		}
	}
	sig := &object.Signature{Name: a.Name, Email: a.Email, When: time.Now()}
	h, err := wt.Commit(message, &gogit.CommitOptions{Author: sig, Committer: sig, SignKey: a.SignKey})
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("committing: %w", err)
	}
	return h, nil
}

// ValidateRefspec checks an extra refspec: it must name a source and a destination, with no
// wildcard and no forcing, so that it can neither delete nor rewrite a remote branch.
func ValidateRefspec(refspec string) error {
	rs := config.RefSpec(refspec)
	switch {
	case strings.HasPrefix(refspec, "+"):
		return fmt.Errorf("refspec %q forces; nothing is force-pushed", refspec)
	case rs.Validate() != nil:
		return fmt.Errorf("refspec %q is not <source>:<destination>", refspec)
	case rs.IsDelete() || rs.Src() == "":
		return fmt.Errorf("refspec %q would delete %s", refspec, rs.Dst(""))
	case rs.IsWildcard():
		return fmt.Errorf("refspec %q has a wildcard; name one ref", refspec)
	}
	return nil
}

// Push sends the local branch to the remote branch to (the checked-out branch when empty) and
// the extra refspec if any. It never forces: a remote branch that moved since Sync, or that
// appeared since, is ErrNonFastForward.
func (c *Clone) Push(ctx context.Context, to, refspec string) error {
	if to == "" {
		to = c.Branch
	}
	specs := []config.RefSpec{config.RefSpec(fmt.Sprintf("refs/heads/%s:refs/heads/%s", c.Branch, to))}
	if refspec != "" {
		if err := ValidateRefspec(refspec); err != nil {
			return err
		}
		specs = append(specs, config.RefSpec(refspec))
	}
	// The working copy is shallow, so go-git cannot tell a fast-forward from its history: the
	// remote branch must still be where Sync found it (or absent, for a new push branch).
	if err := c.unmoved(ctx, to); err != nil {
		return err
	}
	err := c.repo.PushContext(ctx, &gogit.PushOptions{RemoteName: "origin", RefSpecs: specs,
		Auth: c.remote.Auth, CABundle: c.remote.CABundle, ProxyOptions: c.remote.Proxy.Options(c.remote.URL)})
	switch {
	case err == nil, errors.Is(err, gogit.NoErrAlreadyUpToDate):
		return nil
	case errors.Is(err, gogit.ErrForceNeeded), errors.Is(err, plumbing.ErrObjectNotFound), movedOnServer(err):
		return fmt.Errorf("%w: pushing to %s", ErrNonFastForward, to)
	default:
		return fmt.Errorf("%w: %v", ErrPush, classify("pushing", c.remote.URL, err))
	}
}

// unmoved lists the remote's branches and checks that branch is at the commit Sync started from
// (when it started from it) or does not exist (a new push branch).
func (c *Clone) unmoved(ctx context.Context, branch string) error {
	r, err := c.repo.Remote("origin")
	if err != nil {
		return err
	}
	refs, err := r.ListContext(ctx, &gogit.ListOptions{Auth: c.remote.Auth, CABundle: c.remote.CABundle, ProxyOptions: c.remote.Proxy.Options(c.remote.URL)})
	if err != nil {
		return classify("listing", c.remote.URL, err)
	}
	want := plumbing.ZeroHash
	if branch == c.Start {
		want = c.Head
	}
	for _, ref := range refs {
		if ref.Name() == plumbing.NewBranchReferenceName(branch) {
			if ref.Hash() != want {
				return fmt.Errorf("%w: %s is at %s now", ErrNonFastForward, branch, ref.Hash().String()[:12])
			}
			return nil
		}
	}
	if want != plumbing.ZeroHash {
		return fmt.Errorf("%w: %s was deleted", ErrNonFastForward, branch)
	}
	return nil
}

// movedOnServer recognises a server's refusal of an update whose old value no longer holds.
func movedOnServer(err error) bool {
	msg := err.Error()
	for _, s := range []string{"non-fast-forward", "fetch first", "failed to update ref", "failed to lock", "stale info"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// classify names the operation and the repository without credentials.
func classify(op, url string, err error) error {
	switch {
	case errors.Is(err, transport.ErrAuthenticationRequired), errors.Is(err, transport.ErrAuthorizationFailed):
		return fmt.Errorf("%s %s: credentials missing or refused: %w", op, redact.URL(url), err)
	case errors.Is(err, transport.ErrRepositoryNotFound):
		return fmt.Errorf("%s %s: repository not found", op, redact.URL(url))
	}
	return fmt.Errorf("%s %s: %s", op, redact.URL(url), redact.Credentials(err.Error(), url))
}
