package gitwork

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/fluxcd/pkg/gittestserver"
	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/plumb-dev/plumb/shared/gitauth"
)

const gitUser, gitPassword = "robot", "s3cret-pa55word"

var server *gittestserver.GitServer

func TestMain(m *testing.M) {
	root, err := os.MkdirTemp("", "plumb-gitwork-")
	if err != nil {
		panic(err)
	}
	server = gittestserver.NewGitServer(root)
	server.Auth(gitUser, gitPassword).AutoCreate()
	if err := server.StartHTTP(); err != nil {
		panic(err)
	}
	code := m.Run()
	server.StopHTTP()
	os.RemoveAll(root)
	os.Exit(code)
}

var repoCount atomic.Int64

// seed publishes a repository whose branch main holds the files; it returns its URL.
func seed(t *testing.T, files map[string]string) string {
	t.Helper()
	url := fmt.Sprintf("%s/repo-%d.git", server.HTTPAddress(), repoCount.Add(1))
	dir := t.TempDir()
	repo, err := gogit.PlainInit(dir, false)
	must(t, err)
	must(t, repo.Storer.SetReference(plumbing.NewSymbolicReference(plumbing.HEAD, plumbing.NewBranchReferenceName("main"))))
	wt, err := repo.Worktree()
	must(t, err)
	for name, content := range files {
		must(t, os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755))
		must(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
		_, err := wt.Add(name)
		must(t, err)
	}
	sig := &object.Signature{Name: "seed", Email: "seed@example.com", When: time.Now()}
	_, err = wt.Commit("seed", &gogit.CommitOptions{Author: sig})
	must(t, err)
	// A history of more than one commit, as the shallow working copy meets in the field.
	must(t, os.WriteFile(filepath.Join(dir, "HISTORY"), []byte("second\n"), 0o644))
	_, err = wt.Add("HISTORY")
	must(t, err)
	_, err = wt.Commit("second", &gogit.CommitOptions{Author: sig})
	must(t, err)
	_, err = repo.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{url}})
	must(t, err)
	must(t, repo.Push(&gogit.PushOptions{RemoteName: "origin", Auth: remote(t, url).Auth,
		RefSpecs: []config.RefSpec{"refs/heads/main:refs/heads/main"}}))
	return url
}

func remote(t *testing.T, url string) gitauth.Remote {
	t.Helper()
	r, err := gitauth.NewRemote(url, map[string][]byte{"username": []byte(gitUser), "password": []byte(gitPassword)})
	must(t, err)
	return r
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// change writes a file of a clone and commits it.
func change(t *testing.T, c *Clone, name, content string) plumbing.Hash {
	t.Helper()
	must(t, os.WriteFile(filepath.Join(c.Dir(), name), []byte(content), 0o644))
	h, err := c.Commit([]string{name}, "change "+name, Author{Name: "plumb", Email: "plumb@example.com"})
	must(t, err)
	return h
}

// remoteTip is the commit of a branch on the server.
func remoteTip(t *testing.T, url, branch string) plumbing.Hash {
	t.Helper()
	rem := gogit.NewRemote(nil, &config.RemoteConfig{Name: "origin", URLs: []string{url}})
	refs, err := rem.List(&gogit.ListOptions{Auth: remote(t, url).Auth})
	must(t, err)
	for _, r := range refs {
		if r.Name() == plumbing.NewBranchReferenceName(branch) {
			return r.Hash()
		}
	}
	return plumbing.ZeroHash
}

func TestSyncCommitPush(t *testing.T) {
	ctx := context.Background()
	url := seed(t, map[string]string{"apps/app.yaml": "image: app:1.0.0\n"})
	dir := filepath.Join(t.TempDir(), "clone")
	c, err := Sync(ctx, dir, remote(t, url), Ref{Branch: "main"}, "")
	must(t, err)
	if c.Head != remoteTip(t, url, "main") {
		t.Fatalf("synced to %s, remote main is %s", c.Head, remoteTip(t, url, "main"))
	}
	h := change(t, c, "apps/app.yaml", "image: app:1.1.0\n")
	must(t, c.Push(ctx, "", "", nil))
	if got := remoteTip(t, url, "main"); got != h {
		t.Fatalf("remote main is %s, want the pushed %s", got, h)
	}

	// Another writer moves main; the next Sync reuses the clone and lands on the new tip.
	must(t, os.WriteFile(filepath.Join(dir, ".git", "plumb-marker"), nil, 0o600))
	other, err := Sync(ctx, filepath.Join(t.TempDir(), "other"), remote(t, url), Ref{Branch: "main"}, "")
	must(t, err)
	moved := change(t, other, "README", "hello\n")
	must(t, other.Push(ctx, "", "", nil))
	must(t, os.WriteFile(filepath.Join(dir, "apps/app.yaml"), []byte("local edit\n"), 0o644))
	c, err = Sync(ctx, dir, remote(t, url), Ref{Branch: "main"}, "")
	must(t, err)
	if c.Head != moved {
		t.Fatalf("synced to %s, want %s", c.Head, moved)
	}
	if _, err := os.Stat(filepath.Join(dir, ".git", "plumb-marker")); err != nil {
		t.Fatal("the clone was made again instead of reused")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "apps/app.yaml")); string(b) != "image: app:1.1.0\n" {
		t.Fatalf("local edit survived the sync: %q", b)
	}
}

func TestPushNeverForces(t *testing.T) {
	ctx := context.Background()
	url := seed(t, map[string]string{"a.yaml": "a: 1\n"})
	a, err := Sync(ctx, filepath.Join(t.TempDir(), "a"), remote(t, url), Ref{Branch: "main"}, "")
	must(t, err)
	b, err := Sync(ctx, filepath.Join(t.TempDir(), "b"), remote(t, url), Ref{Branch: "main"}, "")
	must(t, err)
	theirs := change(t, b, "a.yaml", "a: 2\n")
	must(t, b.Push(ctx, "", "", nil))
	change(t, a, "a.yaml", "a: 3\n")
	err = a.Push(ctx, "", "", nil)
	if !errors.Is(err, ErrNonFastForward) {
		t.Fatalf("push over a moved branch: %v, want ErrNonFastForward", err)
	}
	if got := remoteTip(t, url, "main"); got != theirs {
		t.Fatalf("remote main is %s, want the other writer's %s kept", got, theirs)
	}
}

func TestRefspecsThatCannotWork(t *testing.T) {
	for _, rs := range []string{"+refs/heads/main:refs/heads/x", ":refs/heads/main", "refs/heads/*:refs/heads/*", "main"} {
		if err := ValidateRefspec(rs); err == nil {
			t.Errorf("refspec %q accepted", rs)
		}
	}
	if err := ValidateRefspec("refs/heads/main:refs/heads/auto"); err != nil {
		t.Errorf("a plain refspec refused: %v", err)
	}
}

func TestPushBranchAccumulates(t *testing.T) {
	ctx := context.Background()
	url := seed(t, map[string]string{"a.yaml": "a: 1\n"})
	dir := filepath.Join(t.TempDir(), "clone")
	c, err := Sync(ctx, dir, remote(t, url), Ref{Branch: "main"}, "auto")
	must(t, err)
	first := change(t, c, "a.yaml", "a: 2\n")
	must(t, c.Push(ctx, "auto", "", nil))
	if remoteTip(t, url, "auto") != first {
		t.Fatal("the push branch was not created")
	}
	c, err = Sync(ctx, dir, remote(t, url), Ref{Branch: "main"}, "auto")
	must(t, err)
	if c.Head != first {
		t.Fatalf("started from %s, want the push branch's %s", c.Head, first)
	}
	second := change(t, c, "a.yaml", "a: 3\n")
	must(t, c.Push(ctx, "auto", "refs/heads/main:refs/heads/mirror", nil))
	if remoteTip(t, url, "auto") != second || remoteTip(t, url, "mirror") != second {
		t.Fatal("the push branch or the extra refspec did not get the second commit")
	}
	if remoteTip(t, url, "main") == second {
		t.Fatal("main moved, but only auto was pushed")
	}
}

func TestErrorsHideCredentials(t *testing.T) {
	ctx := context.Background()
	url := seed(t, map[string]string{"a.yaml": "a: 1\n"})
	bad, err := gitauth.NewRemote(url, map[string][]byte{"username": []byte(gitUser), "password": []byte("wrong-password-123")})
	must(t, err)
	_, err = Sync(ctx, filepath.Join(t.TempDir(), "c"), bad, Ref{Branch: "main"}, "")
	if err == nil || !strings.Contains(err.Error(), "credentials") || strings.Contains(err.Error(), "wrong-password-123") {
		t.Fatalf("bad credentials: %v", err)
	}
	_, err = Sync(ctx, filepath.Join(t.TempDir(), "d"), remote(t, url), Ref{Branch: "nope"}, "")
	if !errors.Is(err, ErrBranchNotFound) {
		t.Fatalf("missing branch: %v, want ErrBranchNotFound", err)
	}
}

func TestSignedCommit(t *testing.T) {
	ctx := context.Background()
	url := seed(t, map[string]string{"a.yaml": "a: 1\n"})
	c, err := Sync(ctx, filepath.Join(t.TempDir(), "c"), remote(t, url), Ref{Branch: "main"}, "")
	must(t, err)
	e, err := openpgp.NewEntity("plumb", "", "plumb@example.com", nil)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(c.Dir(), "a.yaml"), []byte("a: 2\n"), 0o644))
	h, err := c.Commit([]string{"a.yaml"}, "signed", Author{Name: "plumb", Email: "plumb@example.com", SignKey: e})
	must(t, err)
	commit, err := c.repo.CommitObject(h)
	must(t, err)
	var pub bytes.Buffer
	must(t, armorPublic(&pub, e))
	if _, err := commit.Verify(pub.String()); err != nil {
		t.Fatalf("signature does not verify: %v", err)
	}
}

// A commit is held when it is the synced tip or an ancestor the local history shows; one that
// never reached the branch is not.
func TestHolds(t *testing.T) {
	ctx := context.Background()
	url := seed(t, map[string]string{"apps/app.yaml": "image: app:1.0.0\n"})
	dir := filepath.Join(t.TempDir(), "clone")
	c, err := Sync(ctx, dir, remote(t, url), Ref{Branch: "main"}, "")
	must(t, err)
	lost := change(t, c, "apps/app.yaml", "image: app:1.1.0\n") // never pushed
	c, err = Sync(ctx, dir, remote(t, url), Ref{Branch: "main"}, "")
	must(t, err)
	if c.Holds(lost.String()) {
		t.Fatalf("a commit that was never pushed is held")
	}
	pushed := change(t, c, "apps/app.yaml", "image: app:1.2.0\n")
	must(t, c.Push(ctx, "", "", nil))
	c, err = Sync(ctx, dir, remote(t, url), Ref{Branch: "main"}, "")
	must(t, err)
	if !c.Holds(pushed.String()) {
		t.Fatalf("the pushed tip %s is not held", pushed)
	}
	other, err := Sync(ctx, filepath.Join(t.TempDir(), "other"), remote(t, url), Ref{Branch: "main"}, "")
	must(t, err)
	change(t, other, "README", "hello\n")
	must(t, other.Push(ctx, "", "", nil))
	c, err = Sync(ctx, dir, remote(t, url), Ref{Branch: "main"}, "")
	must(t, err)
	if !c.Holds(pushed.String()) {
		t.Fatalf("the pushed commit %s, now the parent of the tip, is not held", pushed)
	}
	if c.Holds(lost.String()) || c.Holds("0123456789012345678901234567890123456789") {
		t.Fatalf("a commit not on the branch is held")
	}
}
