package local

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/fluxcd/pkg/gittestserver"
	"github.com/go-git/go-billy/v5/memfs"
	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/memory"
)

// GitServer is a smart-HTTP Git server on loopback that creates repositories on push.
type GitServer struct {
	srv  *gittestserver.GitServer
	temp bool
	// Fetches counts the fetches (git-upload-pack requests) it answered.
	Fetches atomic.Int64

	hold atomic.Pointer[PushHold]
}

// PushHold holds the next push (git-receive-pack request) a server receives: the server reads
// the whole request, so that the pusher has sent everything, then waits for Release before it
// lets the push land or drops it.
type PushHold struct {
	held    chan struct{}
	release chan bool
}

// Held is closed once the push arrived and is held.
func (h *PushHold) Held() <-chan struct{} { return h.held }

// Release ends the hold: with land the server applies the push as received (whether or not
// the pusher still waits for the answer), otherwise it answers 503 and drops it.
func (h *PushHold) Release(land bool) { h.release <- land }

// HoldPush holds the next push the server receives.
func (g *GitServer) HoldPush() *PushHold {
	h := &PushHold{held: make(chan struct{}), release: make(chan bool, 1)}
	g.hold.Store(h)
	return h
}

// held holds a push if HoldPush asked for it, and says whether to serve it.
func (g *GitServer) held(r *http.Request) bool {
	if r.Method != http.MethodPost || filepath.Base(r.URL.Path) != "git-receive-pack" {
		return true
	}
	h := g.hold.Swap(nil)
	if h == nil {
		return true
	}
	body, err := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	close(h.held)
	return <-h.release && err == nil
}

// StartGitServer starts a server keeping its repositories in dir (a temporary folder if empty).
func StartGitServer(dir string) (*GitServer, error) {
	var srv *gittestserver.GitServer
	if dir == "" {
		var err error
		if srv, err = gittestserver.NewTempGitServer(); err != nil {
			return nil, err
		}
	} else {
		srv = gittestserver.NewGitServer(dir)
	}
	g := &GitServer{srv: srv.AutoCreate(), temp: dir == ""}
	srv.AddHTTPMiddlewares(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost && filepath.Base(r.URL.Path) == "git-upload-pack" {
				g.Fetches.Add(1)
			}
			if !g.held(r) {
				http.Error(w, "push dropped by the test", http.StatusServiceUnavailable)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	return g, srv.StartHTTP()
}

// Addr is the server's host:port on loopback.
func (g *GitServer) Addr() string { return strings.TrimPrefix(g.srv.HTTPAddress(), "http://") }

// URL returns the address of a repository of the server.
func (g *GitServer) URL(repo string) string { return g.srv.HTTPAddress() + "/" + repo + ".git" }

// Stop stops the server; the repositories stay on disk unless the server made their folder.
func (g *GitServer) Stop() {
	g.srv.StopHTTP()
	if g.temp {
		_ = os.RemoveAll(g.srv.Root())
	}
}

// Root is the folder of the bare repositories.
func (g *GitServer) Root() string { return g.srv.Root() }

// Repo is an in-memory clone used to push commits to the server.
type Repo struct {
	repo *gogit.Repository
	bare string
}

// NewRepo pushes a first commit with files to branch main of repo, the server's default branch.
func (g *GitServer) NewRepo(name string, files map[string]string) (*Repo, string, error) {
	repo, err := gogit.Init(memory.NewStorage(), memfs.New())
	if err != nil {
		return nil, "", err
	}
	if err := repo.Storer.SetReference(plumbing.NewSymbolicReference(plumbing.HEAD, plumbing.NewBranchReferenceName("main"))); err != nil {
		return nil, "", err
	}
	if _, err := repo.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{g.URL(name)}}); err != nil {
		return nil, "", err
	}
	r := &Repo{repo: repo, bare: filepath.Join(g.Root(), name+".git")}
	commit, err := r.Commit("initial commit", files)
	if err != nil {
		return nil, "", err
	}
	// Repositories created on push have HEAD at master; make main the default branch.
	return r, commit, os.WriteFile(filepath.Join(r.bare, "HEAD"), []byte("ref: refs/heads/main\n"), 0o644)
}

// Commit writes files (empty content deletes one), commits on main and pushes.
func (r *Repo) Commit(message string, files map[string]string) (string, error) {
	return r.SignedCommit(message, files, nil)
}

// SignedCommit is Commit with the commit signed by signer (OpenPGP or SSH, as
// shared/testing/signtest makes them); a nil signer leaves it unsigned.
func (r *Repo) SignedCommit(message string, files map[string]string, signer gogit.Signer) (string, error) {
	wt, err := r.repo.Worktree()
	if err != nil {
		return "", err
	}
	for name, content := range files {
		if content == "" {
			if _, err := wt.Remove(name); err != nil {
				return "", err
			}
			continue
		}
		if err := wt.Filesystem.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			return "", err
		}
		f, err := wt.Filesystem.Create(name)
		if err != nil {
			return "", err
		}
		_, err = f.Write([]byte(content))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return "", err
		}
	}
	// One pass over the worktree: adding file by file reads the whole index each time, which
	// took minutes for the benchmarks' thousands of files.
	if err := wt.AddWithOptions(&gogit.AddOptions{All: true}); err != nil {
		return "", err
	}
	h, err := wt.Commit(message, &gogit.CommitOptions{Author: author(), Signer: signer})
	if err != nil {
		return "", err
	}
	err = r.repo.Push(&gogit.PushOptions{RemoteName: "origin", RefSpecs: []config.RefSpec{"+refs/heads/main:refs/heads/main"}})
	if err != nil && err != gogit.NoErrAlreadyUpToDate {
		return "", fmt.Errorf("push: %w", err)
	}
	return h.String(), nil
}

// Tag makes an annotated tag of commit, signed by signer (OpenPGP or SSH, as
// shared/testing/signtest makes them; nil leaves it unsigned) as git tag -s does, and pushes it.
func (r *Repo) Tag(name, commit string, signer gogit.Signer) error {
	tag := &object.Tag{Name: name, Tagger: *author(), Message: "release " + name + "\n",
		TargetType: plumbing.CommitObject, Target: plumbing.NewHash(commit)}
	if signer != nil {
		payload := &plumbing.MemoryObject{}
		if err := tag.EncodeWithoutSignature(payload); err != nil {
			return err
		}
		reader, err := payload.Reader()
		if err != nil {
			return err
		}
		sig, err := signer.Sign(reader)
		if err != nil {
			return fmt.Errorf("sign tag %s: %w", name, err)
		}
		tag.PGPSignature = string(sig)
	}
	obj := r.repo.Storer.NewEncodedObject()
	if err := tag.Encode(obj); err != nil {
		return err
	}
	h, err := r.repo.Storer.SetEncodedObject(obj)
	if err != nil {
		return err
	}
	ref := plumbing.NewTagReferenceName(name)
	if err := r.repo.Storer.SetReference(plumbing.NewHashReference(ref, h)); err != nil {
		return err
	}
	spec := config.RefSpec(ref + ":" + ref)
	if err := r.repo.Push(&gogit.PushOptions{RemoteName: "origin", RefSpecs: []config.RefSpec{spec}}); err != nil {
		return fmt.Errorf("push tag %s: %w", name, err)
	}
	return nil
}

func author() *object.Signature {
	return &object.Signature{Name: "Plumb demo", Email: "demo@plumb.invalid", When: time.Now()}
}
