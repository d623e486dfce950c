package git

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path"
	"slices"
	"strings"

	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/format/gitignore"

	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/storage/memory"
	"github.com/plumb-dev/plumb/source-controller/internal/ignore"

	"github.com/plumb-dev/plumb/shared/artifact"
	"github.com/plumb-dev/plumb/shared/redact"
)

// DefaultIgnore is used when a GitRepository sets no spec.ignore: CI and Git metadata that no
// consumer needs. A spec.ignore replaces it; .sourceignore files add to either.
const DefaultIgnore = `.github/
.gitlab/
.circleci/
.gitlab-ci.yml
.travis.yml
.gitattributes
.gitignore
.gitmodules
`

// SourceIgnoreFile is the name of the ignore files read from every folder of the repository.
const SourceIgnoreFile = ".sourceignore"

// ArchiveOptions shape what of the tree goes into the tarball.
type ArchiveOptions struct {
	// Ignore in .gitignore syntax; nil means DefaultIgnore.
	Ignore *string
	// Sparse lists folders; when set only they are archived.
	Sparse []string
	// RecurseSubmodules fetches and archives submodules in place.
	RecurseSubmodules bool
	// Exclude lists folders left out entirely (where included artifacts go).
	Exclude []string
	// Verify, when set, checks signatures of the fetched objects before anything is written.
	Verify *Verification
}

// Archive fetches the resolved commit into memory, verifies its signatures when opts ask for
// it, and writes its tree to w. It returns the signatures that passed.
func Archive(ctx context.Context, r Remote, res Resolved, pinned bool, opts ArchiveOptions, w *artifact.Writer) (Verified, error) {
	repo, commit, err := fetchCommit(ctx, r, res, pinned)
	if err != nil {
		return nil, err
	}
	var verified Verified
	if opts.Verify != nil {
		if verified, err = verify(repo.Storer, res, commit, opts.Verify); err != nil {
			return nil, err
		}
	}
	tree, err := commit.Tree()
	if err != nil {
		return nil, fmt.Errorf("read tree of %s: %w", res.Commit, err)
	}
	patterns := DefaultIgnore
	if opts.Ignore != nil {
		patterns = *opts.Ignore
	}
	a := &archiver{ctx: ctx, remote: r, opts: opts, w: w}
	return verified, a.walk(repo.Storer, tree, "", ignore.Parse(patterns, nil))
}

// fetchCommit fetches only what the resolved ref needs: one commit deep for a ref tip, the ref's
// history for a pinned commit, every branch and tag for a bare commit.
func fetchCommit(ctx context.Context, r Remote, res Resolved, pinned bool) (*gogit.Repository, *object.Commit, error) {
	repo, err := gogit.Init(memory.NewStorage(), nil)
	if err != nil {
		return nil, nil, err
	}
	if _, err := repo.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{r.URL}}); err != nil {
		return nil, nil, fmt.Errorf("%w: URL %s: %v", ErrInvalid, redact.URL(r.URL), err)
	}
	opts := &gogit.FetchOptions{RemoteName: "origin", Auth: r.Auth, CABundle: r.CABundle, Tags: gogit.NoTags, ProxyOptions: r.Proxy.Options(r.URL)}
	if res.RefName == "" {
		opts.RefSpecs = []config.RefSpec{"+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"}
	} else {
		opts.RefSpecs = []config.RefSpec{config.RefSpec("+" + res.RefName + ":" + res.RefName)}
		if !pinned {
			opts.Depth = 1
		}
	}
	if err := repo.FetchContext(ctx, opts); err != nil && !errors.Is(err, gogit.NoErrAlreadyUpToDate) {
		return nil, nil, classify(ctx, r.URL, "fetch", r.Proxy.Explain(err))
	}
	commit, err := repo.CommitObject(plumbing.NewHash(res.Commit))
	if err != nil && res.RefName != "" && !pinned {
		return nil, nil, fmt.Errorf("%w: %s no longer points to %s", ErrRefMoved, res.RefName, res.Commit)
	}
	if err != nil {
		where := string(res.RefName)
		if where == "" {
			where = "any branch or tag"
		}
		return nil, nil, fmt.Errorf("%w: commit %s is not in %s of %s", ErrRefNotFound, res.Commit, where, redact.URL(r.URL))
	}
	return repo, commit, nil
}

type archiver struct {
	ctx     context.Context
	remote  Remote
	opts    ArchiveOptions
	w       *artifact.Writer
	modules map[string]*config.Submodule // by path, read lazily from the root .gitmodules
	root    *object.Tree
	base    string // folder of the repository's root in the tarball: "" or the submodule's path
}

func (a *archiver) walk(s storer.EncodedObjectStorer, t *object.Tree, dir string, patterns []gitignore.Pattern) error {
	if err := a.ctx.Err(); err != nil {
		return err
	}
	if dir == "" {
		a.root = t
	}
	domain := splitPath(dir)
	for _, e := range t.Entries {
		if e.Name == SourceIgnoreFile && e.Mode.IsFile() {
			data, err := readBlob(s, e.Hash)
			if err != nil {
				return err
			}
			patterns = append(slices.Clip(patterns), ignore.Parse(string(data), domain)...)
		}
	}
	m := gitignore.NewMatcher(patterns)
	for _, e := range t.Entries {
		p := path.Join(dir, e.Name)
		isDir := e.Mode == filemode.Dir || e.Mode == filemode.Submodule
		if m.Match(append(domain, e.Name), isDir) || !a.wanted(p, isDir) {
			continue
		}
		switch e.Mode {
		case filemode.Dir:
			sub, err := object.GetTree(s, e.Hash)
			if err != nil {
				return fmt.Errorf("read folder %s: %w", p, err)
			}
			if err := a.walk(s, sub, p, patterns); err != nil {
				return err
			}
		case filemode.Regular, filemode.Deprecated, filemode.Executable:
			blob, err := object.GetBlob(s, e.Hash)
			if err != nil {
				return fmt.Errorf("read %s: %w", p, err)
			}
			rd, err := blob.Reader()
			if err != nil {
				return fmt.Errorf("read %s: %w", p, err)
			}
			err = a.w.File(p, e.Mode == filemode.Executable, blob.Size, rd)
			rd.Close()
			if err != nil {
				return err
			}
		case filemode.Symlink:
			target, err := readBlob(s, e.Hash)
			if err != nil {
				return err
			}
			if err := a.w.Symlink(p, string(target)); err != nil {
				if errors.Is(err, artifact.ErrUnsafe) {
					return fmt.Errorf("%w: symlink %s -> %s cannot be published (%v); add it to spec.ignore", ErrContent, p, target, err)
				}
				return err
			}
		case filemode.Submodule:
			if a.opts.RecurseSubmodules {
				if err := a.submodule(p, e.Hash, patterns); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// wanted applies sparse checkout and exclusions to a path.
func (a *archiver) wanted(p string, isDir bool) bool {
	for _, x := range a.opts.Exclude {
		if p == x || strings.HasPrefix(p, x+"/") {
			return false
		}
	}
	if len(a.opts.Sparse) == 0 {
		return true
	}
	for _, s := range a.opts.Sparse {
		s = strings.Trim(path.Clean(s), "/")
		if s == "." || p == s || strings.HasPrefix(p, s+"/") || isDir && strings.HasPrefix(s, p+"/") {
			return true
		}
	}
	return false
}

// submodule fetches the submodule's commit and archives its tree under p.
func (a *archiver) submodule(p string, commit plumbing.Hash, patterns []gitignore.Pattern) error {
	if a.modules == nil {
		a.modules = map[string]*config.Submodule{}
		if f, err := a.root.File(".gitmodules"); err == nil {
			content, err := f.Contents()
			if err != nil {
				return fmt.Errorf("read .gitmodules: %w", err)
			}
			mods := config.NewModules()
			if err := mods.Unmarshal([]byte(content)); err != nil {
				return fmt.Errorf("%w: .gitmodules: %v", ErrContent, err)
			}
			for _, m := range mods.Submodules {
				a.modules[path.Clean(m.Path)] = m
			}
		}
	}
	rel := p // .gitmodules paths are relative to the root of the repository that has them
	if a.base != "" {
		rel = strings.TrimPrefix(p, a.base+"/")
	}
	m, ok := a.modules[rel]
	if !ok {
		return fmt.Errorf("%w: submodule %s is not in .gitmodules", ErrContent, p)
	}
	sub := Remote{URL: resolveSubmoduleURL(a.remote.URL, m.URL), CABundle: a.remote.CABundle, Proxy: a.remote.Proxy}
	if !remoteURL(sub.URL) {
		return fmt.Errorf("%w: submodule %s has the URL %q; only http, https and ssh remotes are fetched", ErrContent, p, redact.URL(sub.URL))
	}
	if sameHost(sub.URL, a.remote.URL) {
		sub.Auth = a.remote.Auth
	}
	repo, c, err := fetchCommit(a.ctx, sub, Resolved{Commit: commit.String()}, true)
	if err != nil {
		return fmt.Errorf("submodule %s: %w", p, err)
	}
	tree, err := c.Tree()
	if err != nil {
		return fmt.Errorf("submodule %s: %w", p, err)
	}
	// Sparse and Exclude name paths of the tarball, so they apply inside the submodule too.
	child := &archiver{ctx: a.ctx, remote: sub, opts: a.opts, w: a.w, root: tree, base: p}
	return child.walk(repo.Storer, tree, p, patterns)
}

func resolveSubmoduleURL(parent, sub string) string {
	if !strings.HasPrefix(sub, "./") && !strings.HasPrefix(sub, "../") {
		return sub
	}
	u, err := url.Parse(parent)
	if err != nil {
		return sub
	}
	u.Path = path.Join(u.Path, sub)
	return u.String()
}

// remoteURL accepts the URL forms a GitRepository may use: no local paths or file:// URLs.
func remoteURL(raw string) bool {
	if u, err := url.Parse(raw); err == nil && u.Scheme != "" {
		return u.Scheme == "http" || u.Scheme == "https" || u.Scheme == "ssh"
	}
	at, colon := strings.Index(raw, "@"), strings.Index(raw, ":")
	return at > 0 && colon > at // scp-like user@host:path
}

func sameHost(a, b string) bool {
	ua, errA := url.Parse(a)
	ub, errB := url.Parse(b)
	return errA == nil && errB == nil && ua.Host == ub.Host
}

func readBlob(s storer.EncodedObjectStorer, h plumbing.Hash) ([]byte, error) {
	blob, err := object.GetBlob(s, h)
	if err != nil {
		return nil, err
	}
	rd, err := blob.Reader()
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	return io.ReadAll(rd)
}

func splitPath(p string) []string {
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}
