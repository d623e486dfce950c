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

	"github.com/Masterminds/semver/v3"
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
	// ErrBranchNotFound: the branch, tag, reference or commit to check out does not exist on
	// the remote.
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
	// Start is what the working copy was reset to: the remote branch (Branch, or the push
	// branch when it exists), or the checkout ref that is not a branch.
	Start string
	// Head is the commit the working copy was reset to.
	Head plumbing.Hash
}

// Ref is what a working copy starts from. The first set of Commit, Name, SemVer, Tag and Branch
// wins, as in a GitRepository; a Commit with a Branch is looked for in that branch only.
type Ref struct {
	Branch, Tag, SemVer, Name, Commit string
}

// IsBranch reports whether the ref is a branch alone, one that commits can be pushed back to.
func (r Ref) IsBranch() bool {
	return r.Branch != "" && r.Tag == "" && r.SemVer == "" && r.Name == "" && r.Commit == ""
}

// String names the ref for messages.
func (r Ref) String() string {
	switch {
	case r.Commit != "":
		return "commit " + r.Commit
	case r.Name != "":
		return r.Name
	case r.SemVer != "":
		return fmt.Sprintf("semver %q", r.SemVer)
	case r.Tag != "":
		return "tag " + r.Tag
	}
	return "branch " + r.Branch
}

// checkoutRef is where a fetched tag or reference name is kept in the working copy.
const checkoutRef = plumbing.ReferenceName("refs/plumb/checkout")

// Sync opens the clone in dir (cloning the first time, or again when the remote URL changed),
// fetches ref and resets the working copy to its commit; the branch from is fetched instead when
// it exists on the remote (a push branch that holds earlier automation commits). The local
// branch is ref's branch, or from when ref is not a branch alone. Any local change is dropped.
func Sync(ctx context.Context, dir string, remote gitauth.Remote, ref Ref, from string) (*Clone, error) {
	// A commit is looked for in the branches' history, which a shallow working copy lacks.
	repo, err := open(ctx, dir, remote, ref.Commit != "")
	if err != nil {
		return nil, err
	}
	local := ref.Branch
	if !ref.IsBranch() {
		if from == "" {
			return nil, fmt.Errorf("checking out %s needs a branch to push to", ref)
		}
		local = from
	}
	start, tip := "", plumbing.ZeroHash
	if from != "" && (from != ref.Branch || !ref.IsBranch()) {
		if ok, err := fetch(ctx, repo, remote, branchSpec(from), 1); err != nil {
			return nil, err
		} else if ok {
			if tip, err = resolve(repo, plumbing.NewRemoteReferenceName("origin", from)); err != nil {
				return nil, err
			}
			start = from
		}
	}
	if start == "" {
		if tip, err = checkout(ctx, repo, remote, ref); err != nil {
			return nil, err
		}
		start = ref.Branch
		if !ref.IsBranch() {
			start = ref.String()
		}
	}
	localRef := plumbing.NewBranchReferenceName(local)
	if err := repo.Storer.SetReference(plumbing.NewHashReference(localRef, tip)); err != nil {
		return nil, err
	}
	wt, err := repo.Worktree()
	if err != nil {
		return nil, err
	}
	if err := wt.Checkout(&gogit.CheckoutOptions{Branch: localRef, Force: true}); err != nil {
		return nil, fmt.Errorf("checking out %s: %w", local, err)
	}
	if err := wt.Reset(&gogit.ResetOptions{Commit: tip, Mode: gogit.HardReset}); err != nil {
		return nil, fmt.Errorf("resetting to %s: %w", tip, err)
	}
	return &Clone{repo: repo, dir: dir, remote: remote, Branch: local, Start: start, Head: tip}, nil
}

// checkout fetches ref and returns its commit.
func checkout(ctx context.Context, repo *gogit.Repository, remote gitauth.Remote, ref Ref) (plumbing.Hash, error) {
	notFound := func(what string) error {
		return fmt.Errorf("%w: %s has no %s", ErrBranchNotFound, redact.URL(remote.URL), what)
	}
	switch {
	case ref.Commit != "":
		spec := config.RefSpec("+refs/heads/*:refs/remotes/origin/*")
		if ref.Branch != "" {
			spec = branchSpec(ref.Branch)
		}
		if ok, err := fetch(ctx, repo, remote, spec, 0); err != nil {
			return plumbing.ZeroHash, err
		} else if !ok {
			return plumbing.ZeroHash, notFound(ref.String())
		}
		h := plumbing.NewHash(ref.Commit)
		if _, err := repo.CommitObject(h); err != nil {
			return plumbing.ZeroHash, notFound(ref.String())
		}
		if ref.Branch != "" {
			if err := inHistory(repo, h, plumbing.NewRemoteReferenceName("origin", ref.Branch)); err != nil {
				return plumbing.ZeroHash, fmt.Errorf("%w: %s of %s", err, ref, redact.URL(remote.URL))
			}
		}
		return h, nil
	case ref.Name != "", ref.SemVer != "", ref.Tag != "":
		name := ref.Name
		if name == "" && ref.SemVer != "" {
			tag, err := highestTag(ctx, repo, remote, ref.SemVer)
			if err != nil {
				return plumbing.ZeroHash, err
			}
			name = plumbing.NewTagReferenceName(tag).String()
		} else if name == "" {
			name = plumbing.NewTagReferenceName(ref.Tag).String()
		}
		ok, err := fetch(ctx, repo, remote, config.RefSpec(fmt.Sprintf("+%s:%s", name, checkoutRef)), 1)
		if err != nil {
			return plumbing.ZeroHash, err
		} else if !ok {
			return plumbing.ZeroHash, notFound(ref.String())
		}
		return resolve(repo, checkoutRef)
	default:
		if ok, err := fetch(ctx, repo, remote, branchSpec(ref.Branch), 1); err != nil {
			return plumbing.ZeroHash, err
		} else if !ok {
			return plumbing.ZeroHash, notFound(fmt.Sprintf("branch %q", ref.Branch))
		}
		return resolve(repo, plumbing.NewRemoteReferenceName("origin", ref.Branch))
	}
}

// resolve returns the commit a reference names, through an annotated tag.
func resolve(repo *gogit.Repository, name plumbing.ReferenceName) (plumbing.Hash, error) {
	r, err := repo.Reference(name, true)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if tag, err := repo.TagObject(r.Hash()); err == nil {
		c, err := tag.Commit()
		if err != nil {
			return plumbing.ZeroHash, fmt.Errorf("tag %s does not name a commit: %w", tag.Name, err)
		}
		return c.Hash, nil
	}
	return r.Hash(), nil
}

// inHistory checks that commit is the branch's tip or one of its ancestors.
func inHistory(repo *gogit.Repository, commit plumbing.Hash, branch plumbing.ReferenceName) error {
	tip, err := resolve(repo, branch)
	if err != nil {
		return err
	}
	if tip == commit {
		return nil
	}
	c, err := repo.CommitObject(commit)
	if err != nil {
		return err
	}
	t, err := repo.CommitObject(tip)
	if err != nil {
		return err
	}
	if ok, err := c.IsAncestor(t); err != nil || !ok {
		return fmt.Errorf("%w: not in the history of %s", ErrBranchNotFound, branch.Short())
	}
	return nil
}

// highestTag lists the remote's tags and returns the highest version in the range.
func highestTag(ctx context.Context, repo *gogit.Repository, remote gitauth.Remote, rng string) (string, error) {
	c, err := semver.NewConstraint(rng)
	if err != nil {
		return "", fmt.Errorf("semver range %q: %w", rng, err)
	}
	r, err := repo.Remote("origin")
	if err != nil {
		return "", err
	}
	refs, err := r.ListContext(ctx, &gogit.ListOptions{Auth: remote.Auth, CABundle: remote.CABundle, ProxyOptions: remote.Proxy.Options(remote.URL)})
	if err != nil && !errors.Is(err, transport.ErrEmptyRemoteRepository) {
		return "", classify("listing", remote.URL, err)
	}
	var best *semver.Version
	tag := ""
	for _, ref := range refs {
		if !ref.Name().IsTag() {
			continue
		}
		name := strings.TrimSuffix(ref.Name().Short(), "^{}")
		v, err := semver.NewVersion(name)
		if err != nil || !c.Check(v) {
			continue
		}
		// Equal versions ("1.0.0" and "v1.0.0") are told apart by name, so the choice is stable.
		if best == nil || v.GreaterThan(best) || (v.Equal(best) && name > tag) {
			best, tag = v, name
		}
	}
	if best == nil {
		return "", fmt.Errorf("%w: %s has no tag in range %q", ErrBranchNotFound, redact.URL(remote.URL), rng)
	}
	return tag, nil
}

func branchSpec(branch string) config.RefSpec {
	return config.RefSpec(fmt.Sprintf("+refs/heads/%s:refs/remotes/origin/%s", branch, branch))
}

// open returns the clone in dir, initialising it when missing or of another URL.
// A shallow clone is made again when full is set.
func open(ctx context.Context, dir string, remote gitauth.Remote, full bool) (*gogit.Repository, error) {
	repo, err := gogit.PlainOpen(dir)
	if err == nil {
		shallow, serr := repo.Storer.Shallow()
		if r, rerr := repo.Remote("origin"); rerr == nil && len(r.Config().URLs) == 1 && r.Config().URLs[0] == remote.URL &&
			serr == nil && (!full || len(shallow) == 0) {
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

// fetch brings what spec names into the working copy, depth commits deep (the tip alone is
// enough for a commit on top; 0 is the whole history); false when the remote has none.
func fetch(ctx context.Context, repo *gogit.Repository, remote gitauth.Remote, spec config.RefSpec, depth int) (bool, error) {
	err := repo.FetchContext(ctx, &gogit.FetchOptions{RemoteName: "origin", RefSpecs: []config.RefSpec{spec},
		Auth: remote.Auth, CABundle: remote.CABundle, ProxyOptions: remote.Proxy.Options(remote.URL), Tags: gogit.NoTags, Force: true, Depth: depth})
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

// Holds tells whether commit is the commit the working copy was reset to or, as far as the
// local history reaches (it may be shallow), one of its ancestors.
func (c *Clone) Holds(commit string) bool {
	h := plumbing.NewHash(commit)
	if h == c.Head {
		return true
	}
	o, err := c.repo.CommitObject(h)
	if err != nil {
		return false
	}
	head, err := c.repo.CommitObject(c.Head)
	if err != nil {
		return false
	}
	ok, err := o.IsAncestor(head)
	return err == nil && ok
}

// Author signs a commit.
type Author struct {
	Name, Email string
	// SignKey signs the commit with OpenPGP when set (with its private key decrypted).
	SignKey *openpgp.Entity
	// Signer signs the commit otherwise (an SSH key); it wins over SignKey.
	Signer gogit.Signer
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
	h, err := wt.Commit(message, &gogit.CommitOptions{Author: sig, Committer: sig, SignKey: a.SignKey, Signer: a.Signer})
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
// the extra refspec if any, with the push options (sent when the server advertises them). It
// never forces: a remote branch that moved since Sync, or that appeared since, is
// ErrNonFastForward.
func (c *Clone) Push(ctx context.Context, to, refspec string, options map[string]string) error {
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
	err := c.repo.PushContext(ctx, &gogit.PushOptions{RemoteName: "origin", RefSpecs: specs, Options: options,
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
