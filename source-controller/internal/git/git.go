// Package git resolves a ref of a remote repository to a commit and writes the commit's tree as
// a deterministic tarball. Everything happens in memory: no work tree is checked out, only the
// objects of the wanted commit are fetched (shallow where the ref allows), and the tarball is
// written straight from the tree's blobs.
package git

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"

	"github.com/Masterminds/semver/v3"
	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/memory"

	"github.com/plumb-dev/plumb/shared/gitauth"
	"github.com/plumb-dev/plumb/shared/proxy"
	"github.com/plumb-dev/plumb/shared/redact"
)

// Ref selects a revision; the most specific field wins: Commit > Name > SemVer > Tag > Branch.
type Ref struct {
	Branch, Tag, SemVer, Name, Commit string
}

// Resolved is a ref resolved against the remote.
type Resolved struct {
	// RefName is the full reference fetched (refs/heads/main); empty for a bare commit.
	RefName plumbing.ReferenceName
	// Commit is the hex SHA-1 of the commit.
	Commit string
	// Revision is the artifact revision: <branch>@sha1:<commit>, <tag>@sha1:<commit>,
	// <refname>@sha1:<commit> or sha1:<commit>.
	Revision string
}

// Error kinds callers map to condition reasons. ErrAuth and ErrInvalid are shared/gitauth's, so
// that NewRemote's errors are of these kinds too.
var (
	ErrAuth        = gitauth.ErrAuth
	ErrRefNotFound = errors.New("ref not found")
	ErrInvalid     = gitauth.ErrInvalid
	// ErrContent: the repository's content cannot be published as it is (a symlink leaving
	// it, a broken .gitmodules); a new commit can fix it.
	ErrContent = errors.New("unpublishable content")
	// ErrRefMoved: the ref moved between listing and fetching; resolving again helps.
	ErrRefMoved = errors.New("ref moved during fetch")
)

// Resolve lists the remote's refs and picks the commit the ref names. The listing is made even
// for a bare commit, which resolves to itself: it proves that these credentials can read the
// repository before anything built with other credentials is shared.
func Resolve(ctx context.Context, r Remote, ref Ref) (Resolved, error) {
	refs, err := ListRefs(ctx, r)
	if err != nil {
		return Resolved{}, err
	}
	return Pick(r, refs, ref)
}

// ListRefs lists the remote's refs, annotated tags peeled.
func ListRefs(ctx context.Context, r Remote) ([]*plumbing.Reference, error) {
	remote := gogit.NewRemote(memory.NewStorage(), &config.RemoteConfig{Name: "origin", URLs: []string{r.URL}})
	refs, err := remote.ListContext(ctx, &gogit.ListOptions{Auth: r.Auth, CABundle: r.CABundle, PeelingOption: gogit.AppendPeeled, ProxyOptions: r.Proxy.Options(r.URL)})
	if err != nil {
		return nil, classify(ctx, r.URL, "list refs of", r.Proxy.Explain(err))
	}
	return refs, nil
}

// Pick resolves ref against the refs ListRefs returned for r.
func Pick(r Remote, refs []*plumbing.Reference, ref Ref) (Resolved, error) {
	if ref.Commit != "" && ref.Branch == "" && ref.Name == "" {
		return Resolved{Commit: ref.Commit, Revision: "sha1:" + ref.Commit}, nil
	}
	byName := make(map[plumbing.ReferenceName]*plumbing.Reference, len(refs))
	for _, x := range refs {
		byName[x.Name()] = x
	}
	// target returns the commit a ref points at, peeling annotated tags.
	target := func(n plumbing.ReferenceName) (string, bool) {
		if p, ok := byName[plumbing.ReferenceName(string(n)+"^{}")]; ok {
			return p.Hash().String(), true
		}
		x, ok := byName[n]
		if !ok {
			return "", false
		}
		if x.Type() == plumbing.SymbolicReference {
			if t, ok := byName[x.Target()]; ok {
				return t.Hash().String(), true
			}
			return "", false
		}
		return x.Hash().String(), true
	}
	var name plumbing.ReferenceName
	var short string
	switch {
	case ref.Name != "":
		name, short = plumbing.ReferenceName(ref.Name), ref.Name
	case ref.SemVer != "" && ref.Commit == "":
		tag, err := highestTag(ref.SemVer, refs)
		if err != nil {
			return Resolved{}, err
		}
		name, short = plumbing.NewTagReferenceName(tag), tag
	case ref.Tag != "" && ref.Commit == "":
		name, short = plumbing.NewTagReferenceName(ref.Tag), ref.Tag
	case ref.Branch != "":
		name, short = plumbing.NewBranchReferenceName(ref.Branch), ref.Branch
	default:
		head, ok := byName[plumbing.HEAD]
		if !ok || head.Type() != plumbing.SymbolicReference {
			return Resolved{}, fmt.Errorf("%w: %s advertises no default branch; set spec.ref.branch", ErrRefNotFound, redact.URL(r.URL))
		}
		name, short = head.Target(), head.Target().Short()
	}
	commit, ok := target(name)
	if !ok {
		return Resolved{}, fmt.Errorf("%w: %s has no %s", ErrRefNotFound, redact.URL(r.URL), name)
	}
	if ref.Commit != "" {
		// A pinned commit within a branch or ref: fetched from that ref, checked on fetch.
		commit = ref.Commit
	}
	return Resolved{RefName: name, Commit: commit, Revision: short + "@sha1:" + commit}, nil
}

// highestTag picks the highest tag that satisfies the range; tags that are not versions are
// skipped. With no match the error names the closest versions found.
func highestTag(constraint string, refs []*plumbing.Reference) (string, error) {
	c, err := semver.NewConstraint(constraint)
	if err != nil {
		return "", fmt.Errorf("%w: semver range %q: %v", ErrInvalid, constraint, err)
	}
	type tv struct {
		tag string
		v   *semver.Version
	}
	var all []tv
	for _, x := range refs {
		if !x.Name().IsTag() || strings.HasSuffix(string(x.Name()), "^{}") {
			continue
		}
		tag := x.Name().Short()
		v, err := semver.NewVersion(tag)
		if err != nil {
			continue
		}
		all = append(all, tv{tag, v})
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].v.Equal(all[j].v) {
			return all[i].tag < all[j].tag
		}
		return all[i].v.LessThan(all[j].v)
	})
	for i := len(all) - 1; i >= 0; i-- {
		if c.Check(all[i].v) {
			return all[i].tag, nil
		}
	}
	var near []string
	for i := len(all) - 1; i >= 0 && len(near) < 5; i-- {
		near = append(near, all[i].tag)
	}
	if len(near) == 0 {
		return "", fmt.Errorf("%w: no tag matches semver %q: the repository has no version tags", ErrRefNotFound, constraint)
	}
	return "", fmt.Errorf("%w: no tag matches semver %q; highest tags: %s", ErrRefNotFound, constraint, strings.Join(near, ", "))
}

// classify wraps a go-git error with the kind a caller maps to a reason, naming the URL without
// its credentials.
// ctx is the operation's: when it ended, spec.timeout did.
func classify(ctx context.Context, rawURL, op string, err error) error {
	u := redact.URL(rawURL)
	msg := redact.Credentials(err.Error(), rawURL)
	switch {
	case errors.Is(err, proxy.ErrProxy):
		return fmt.Errorf("%s %s: %w", op, u, err)
	case errors.Is(err, transport.ErrAuthenticationRequired), errors.Is(err, transport.ErrAuthorizationFailed),
		strings.Contains(msg, "unable to authenticate"), strings.Contains(msg, "knownhosts"),
		strings.Contains(msg, "host key"):
		return fmt.Errorf("%w: %s %s: %s", ErrAuth, op, u, msg)
	case errors.Is(err, transport.ErrRepositoryNotFound):
		return fmt.Errorf("%s %s: %s (check the URL and that the credentials can read it)", op, u, msg)
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil:
		return fmt.Errorf("%s %s: timed out (spec.timeout)", op, u)
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		// A connect, TLS or first-byte deadline (SetDeadlines) ended it, not spec.timeout.
		return fmt.Errorf("%s %s: the host did not answer in time: %s", op, u, msg)
	}
	return fmt.Errorf("%s %s: %s", op, u, msg)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
