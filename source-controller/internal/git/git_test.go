package git

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fluxcd/gitkit"
	"github.com/fluxcd/pkg/gittestserver"
	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	"github.com/go-git/go-git/v5/storage/memory"
	. "github.com/onsi/gomega"
	"golang.org/x/crypto/ssh"
)

// The one Git server of this package: HTTP with basic auth and SSH with public key auth on
// loopback, both serving the same folder of bare repositories.
var (
	server *gittestserver.GitServer
	// clientKey is the PEM of clientPriv, the only SSH key the server accepts.
	clientKey  []byte
	clientPriv ed25519.PrivateKey
	// hostKey is the server's public host key in authorized_keys format, without newline.
	hostKey string
)

const (
	gitUser     = "plumber"
	gitPassword = "s3cr3t-pa55word"
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	// gitkit logs every SSH handshake and command through the standard logger.
	log.SetOutput(io.Discard)
	root, err := os.MkdirTemp("", "plumb-git-test-")
	must(err)
	defer os.RemoveAll(root)

	_, priv, err := ed25519.GenerateKey(rand.Reader)
	must(err)
	clientPriv = priv
	block, err := ssh.MarshalPrivateKey(priv, "")
	must(err)
	clientKey = pem.EncodeToMemory(block)
	signer, err := ssh.NewSignerFromKey(priv)
	must(err)
	accepted := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))

	server = gittestserver.NewGitServer(filepath.Join(root, "repos"))
	keyDir := filepath.Join(root, "keys")
	server.Auth(gitUser, gitPassword).AutoCreate().KeyDir(keyDir)
	server.PublicKeyLookupFunc(func(content string) (*gitkit.PublicKey, error) {
		if content != accepted {
			return nil, errors.New("unknown public key")
		}
		return &gitkit.PublicKey{Id: "test"}, nil
	})
	must(server.StartHTTP())
	defer server.StopHTTP()
	must(server.ListenSSH())
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = server.StartSSH()
	}()
	defer func() {
		_ = server.StopSSH()
		<-served
	}()
	pub, err := os.ReadFile(filepath.Join(keyDir, "gitkit.rsa.pub"))
	must(err)
	hostKey = strings.TrimSpace(string(pub))
	return m.Run()
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

// entry is a tree entry of a test commit.
type entry struct {
	mode filemode.FileMode
	data string        // content of a file, target of a symlink
	hash plumbing.Hash // commit of a submodule
}

func file(content string) entry { return entry{mode: filemode.Regular, data: content} }
func exe(content string) entry  { return entry{mode: filemode.Executable, data: content} }
func link(target string) entry  { return entry{mode: filemode.Symlink, data: target} }
func gitlink(commit string) entry {
	return entry{mode: filemode.Submodule, hash: plumbing.NewHash(commit)}
}

// files maps slash-separated paths to entries.
type files = map[string]entry

// testRepo is a repository on the test server, written through an in-memory bare clone whose
// commits are built object by object, so that any mode (symlink, executable, gitlink) is easy.
type testRepo struct {
	t    *testing.T
	name string
	repo *gogit.Repository
}

var repoCount atomic.Int64

// newRepo makes an empty repository; nothing is on the server until the first push.
func newRepo(t *testing.T) *testRepo {
	t.Helper()
	name := fmt.Sprintf("repo-%d.git", repoCount.Add(1))
	repo, err := gogit.Init(memory.NewStorage(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{server.HTTPAddress() + "/" + name}}); err != nil {
		t.Fatal(err)
	}
	return &testRepo{t: t, name: name, repo: repo}
}

// publish makes a repository whose default branch main holds files, on the server.
func publish(t *testing.T, files map[string]entry) (*testRepo, string) {
	t.Helper()
	r := newRepo(t)
	c := r.commit("main", files)
	r.push("refs/heads/main")
	r.setDefault("main")
	return r, c
}

func (r *testRepo) httpURL() string { return server.HTTPAddress() + "/" + r.name }
func (r *testRepo) sshURL() string  { return server.SSHAddress() + "/" + r.name }

// remote is the HTTP remote with valid credentials.
func (r *testRepo) remote() Remote {
	r.t.Helper()
	rem, err := NewRemote(r.httpURL(), map[string][]byte{"username": []byte(gitUser), "password": []byte(gitPassword)})
	if err != nil {
		r.t.Fatal(err)
	}
	return rem
}

// setDefault points the server repository's HEAD at the branch.
func (r *testRepo) setDefault(branch string) {
	r.t.Helper()
	head := filepath.Join(server.Root(), r.name, "HEAD")
	if err := os.WriteFile(head, []byte("ref: refs/heads/"+branch+"\n"), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

func (r *testRepo) store(o interface {
	Encode(plumbing.EncodedObject) error
}) plumbing.Hash {
	r.t.Helper()
	eo := r.repo.Storer.NewEncodedObject()
	if err := o.Encode(eo); err != nil {
		r.t.Fatal(err)
	}
	h, err := r.repo.Storer.SetEncodedObject(eo)
	if err != nil {
		r.t.Fatal(err)
	}
	return h
}

func (r *testRepo) blob(content string) plumbing.Hash {
	r.t.Helper()
	eo := r.repo.Storer.NewEncodedObject()
	eo.SetType(plumbing.BlobObject)
	w, err := eo.Writer()
	if err != nil {
		r.t.Fatal(err)
	}
	if _, err := io.WriteString(w, content); err != nil {
		r.t.Fatal(err)
	}
	must(w.Close())
	h, err := r.repo.Storer.SetEncodedObject(eo)
	if err != nil {
		r.t.Fatal(err)
	}
	return h
}

// writeTree stores the tree of files (slash-separated paths) with its entries in Git's order.
func (r *testRepo) writeTree(files map[string]entry) plumbing.Hash {
	r.t.Helper()
	var entries []object.TreeEntry
	dirs := map[string]map[string]entry{}
	for p, e := range files {
		if dir, rest, ok := strings.Cut(p, "/"); ok {
			if dirs[dir] == nil {
				dirs[dir] = map[string]entry{}
			}
			dirs[dir][rest] = e
			continue
		}
		h := e.hash
		if e.mode != filemode.Submodule {
			h = r.blob(e.data)
		}
		entries = append(entries, object.TreeEntry{Name: p, Mode: e.mode, Hash: h})
	}
	for dir, sub := range dirs {
		entries = append(entries, object.TreeEntry{Name: dir, Mode: filemode.Dir, Hash: r.writeTree(sub)})
	}
	key := func(e object.TreeEntry) string {
		if e.Mode == filemode.Dir {
			return e.Name + "/"
		}
		return e.Name
	}
	sort.Slice(entries, func(i, j int) bool { return key(entries[i]) < key(entries[j]) })
	return r.store(&object.Tree{Entries: entries})
}

var commitTime = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// commit stores a commit of files on top of the branch (a new branch starts from nothing) and
// moves the branch to it.
func (r *testRepo) commit(branch string, files map[string]entry) string {
	r.t.Helper()
	ref := plumbing.NewBranchReferenceName(branch)
	var parents []plumbing.Hash
	if cur, err := r.repo.Storer.Reference(ref); err == nil {
		parents = append(parents, cur.Hash())
	}
	sig := object.Signature{Name: "Test", Email: "test@example.invalid", When: commitTime}
	commitTime = commitTime.Add(time.Minute)
	h := r.store(&object.Commit{Author: sig, Committer: sig, Message: "change\n", TreeHash: r.writeTree(files), ParentHashes: parents})
	if err := r.repo.Storer.SetReference(plumbing.NewHashReference(ref, h)); err != nil {
		r.t.Fatal(err)
	}
	return h.String()
}

// tag tags a commit, annotated when message is set, and pushes the tag. It returns the hash the
// tag ref points at: the tag object's for an annotated tag.
func (r *testRepo) tag(name, commit, message string) string {
	r.t.Helper()
	h := plumbing.NewHash(commit)
	if message != "" {
		sig := object.Signature{Name: "Test", Email: "test@example.invalid", When: commitTime}
		h = r.store(&object.Tag{Name: name, Tagger: sig, Message: message, TargetType: plumbing.CommitObject, Target: h})
	}
	ref := plumbing.NewTagReferenceName(name)
	if err := r.repo.Storer.SetReference(plumbing.NewHashReference(ref, h)); err != nil {
		r.t.Fatal(err)
	}
	r.push(string(ref))
	return h.String()
}

// push force-pushes refs to the same names on the server.
func (r *testRepo) push(refs ...string) {
	r.t.Helper()
	specs := make([]config.RefSpec, len(refs))
	for i, ref := range refs {
		specs[i] = config.RefSpec("+" + ref + ":" + ref)
	}
	err := r.repo.Push(&gogit.PushOptions{
		RemoteName: "origin", RefSpecs: specs,
		Auth: &githttp.BasicAuth{Username: gitUser, Password: gitPassword},
	})
	if err != nil && !errors.Is(err, gogit.NoErrAlreadyUpToDate) {
		r.t.Fatal(err)
	}
}

func TestResolve(t *testing.T) {
	r := newRepo(t)
	c1 := r.commit("main", files{"a": file("1")})
	c2 := r.commit("dev", files{"a": file("2")})
	c3 := r.commit("release", files{"a": file("3")})
	r.push("refs/heads/main", "refs/heads/dev", "refs/heads/release")
	r.setDefault("main")
	r.tag("v1.0.0", c1, "")
	tagObj := r.tag("v1.1.0", c2, "release 1.1.0\n")
	r.tag("v1.2.0", c3, "release 1.2.0\n")
	r.tag("v2.0.0-rc.1", c3, "")
	r.tag("latest", c1, "")
	r.tag("1.0.0", c2, "") // the same version as v1.0.0, under another name
	if tagObj == c2 {
		t.Fatal("the annotated tag should be an object of its own")
	}
	old := c1 // on main's history only

	tests := []struct {
		name    string
		ref     Ref
		refName string
		commit  string
		rev     string
	}{
		{"default branch", Ref{}, "refs/heads/main", c1, "main@sha1:" + c1},
		{"branch", Ref{Branch: "dev"}, "refs/heads/dev", c2, "dev@sha1:" + c2},
		{"lightweight tag", Ref{Tag: "v1.0.0"}, "refs/tags/v1.0.0", c1, "v1.0.0@sha1:" + c1},
		{"annotated tag peeled", Ref{Tag: "v1.1.0"}, "refs/tags/v1.1.0", c2, "v1.1.0@sha1:" + c2},
		{"non-version tag", Ref{Tag: "latest"}, "refs/tags/latest", c1, "latest@sha1:" + c1},
		{"semver highest, prereleases skipped", Ref{SemVer: ">=1.0.0"}, "refs/tags/v1.2.0", c3, "v1.2.0@sha1:" + c3},
		{"semver tilde", Ref{SemVer: "~1.1"}, "refs/tags/v1.1.0", c2, "v1.1.0@sha1:" + c2},
		{"semver prerelease range", Ref{SemVer: ">=2.0.0-0"}, "refs/tags/v2.0.0-rc.1", c3, "v2.0.0-rc.1@sha1:" + c3},
		{"semver equal versions pick the last name", Ref{SemVer: "1.0.x"}, "refs/tags/v1.0.0", c1, "v1.0.0@sha1:" + c1},
		{"name of a branch", Ref{Name: "refs/heads/dev"}, "refs/heads/dev", c2, "refs/heads/dev@sha1:" + c2},
		{"name of an annotated tag peeled", Ref{Name: "refs/tags/v1.2.0"}, "refs/tags/v1.2.0", c3, "refs/tags/v1.2.0@sha1:" + c3},
		{"name HEAD", Ref{Name: "HEAD"}, "HEAD", c1, "HEAD@sha1:" + c1},
		{"bare commit", Ref{Commit: old}, "", old, "sha1:" + old},
		{"commit in a branch", Ref{Branch: "main", Commit: old}, "refs/heads/main", old, "main@sha1:" + old},
		{"commit in a name", Ref{Name: "refs/heads/main", Commit: old}, "refs/heads/main", old, "refs/heads/main@sha1:" + old},
		{"commit wins over tag", Ref{Tag: "v1.2.0", Commit: old}, "", old, "sha1:" + old},
		{"commit wins over semver", Ref{SemVer: ">=1.0.0", Commit: old}, "", old, "sha1:" + old},
		{"name wins over semver, tag and branch", Ref{Name: "refs/tags/v1.0.0", SemVer: "*", Tag: "v1.2.0", Branch: "dev"}, "refs/tags/v1.0.0", c1, "refs/tags/v1.0.0@sha1:" + c1},
		{"semver wins over tag and branch", Ref{SemVer: "~1.1", Tag: "v1.2.0", Branch: "dev"}, "refs/tags/v1.1.0", c2, "v1.1.0@sha1:" + c2},
		{"tag wins over branch", Ref{Tag: "v1.2.0", Branch: "dev"}, "refs/tags/v1.2.0", c3, "v1.2.0@sha1:" + c3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			res, err := Resolve(t.Context(), r.remote(), tt.ref)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(res).To(Equal(Resolved{RefName: plumbing.ReferenceName(tt.refName), Commit: tt.commit, Revision: tt.rev}))
		})
	}
}

func TestResolveBareCommitChecksAccess(t *testing.T) {
	g := NewWithT(t)
	r, _ := publish(t, map[string]entry{"f": file("1")})
	commit := strings.Repeat("ab", 20)
	res, err := Resolve(t.Context(), r.remote(), Ref{Commit: commit, Tag: "v1"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res).To(Equal(Resolved{Commit: commit, Revision: "sha1:" + commit}))

	// Without credentials the listing is refused, so nothing is built or shared for them.
	noAuth := r.remote()
	noAuth.Auth = nil
	_, err = Resolve(t.Context(), noAuth, Ref{Commit: commit})
	g.Expect(errors.Is(err, ErrAuth)).To(BeTrue(), "error %v is not ErrAuth", err)
}

func TestResolveErrors(t *testing.T) {
	r := newRepo(t)
	c1 := r.commit("main", files{"a": file("1")})
	r.push("refs/heads/main")
	r.setDefault("main")
	for _, v := range []string{"v0.1.0", "v0.2.0", "v0.3.0", "v1.0.0", "v1.1.0-rc.1", "v1.1.0", "release"} {
		r.tag(v, c1, "")
	}
	r.tag("v1.2.0", c1, "annotated\n")

	noVersions, _ := publish(t, files{"a": file("1")})
	// HEAD of a repository created by a push names master, which does not exist here.
	noDefault := newRepo(t)
	noDefault.commit("main", files{"a": file("1")})
	noDefault.push("refs/heads/main")

	tests := []struct {
		name     string
		repo     *testRepo
		ref      Ref
		kind     error
		contains []string
	}{
		{"missing branch", r, Ref{Branch: "nope"}, ErrRefNotFound, []string{"refs/heads/nope", r.name}},
		{"missing tag", r, Ref{Tag: "v9.9.9"}, ErrRefNotFound, []string{"refs/tags/v9.9.9"}},
		{"missing name", r, Ref{Name: "refs/pull/1/head"}, ErrRefNotFound, []string{"refs/pull/1/head"}},
		{"missing branch of a pinned commit", r, Ref{Branch: "nope", Commit: c1}, ErrRefNotFound, []string{"refs/heads/nope"}},
		{
			"no tag matches the range", r, Ref{SemVer: ">=2.0.0"}, ErrRefNotFound,
			// The five highest versions, highest first; "release" is no version.
			[]string{`">=2.0.0"`, "highest tags: v1.2.0, v1.1.0, v1.1.0-rc.1, v1.0.0, v0.3.0"},
		},
		{"no version tags", noVersions, Ref{SemVer: "*"}, ErrRefNotFound, []string{"has no version tags"}},
		{"invalid range", r, Ref{SemVer: "not a range"}, ErrInvalid, []string{`"not a range"`}},
		{"no default branch", noDefault, Ref{}, ErrRefNotFound, []string{"no default branch"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			_, err := Resolve(t.Context(), tt.repo.remote(), tt.ref)
			g.Expect(err).To(HaveOccurred())
			g.Expect(errors.Is(err, tt.kind)).To(BeTrue(), "error %q is not %v", err, tt.kind)
			for _, s := range tt.contains {
				g.Expect(err.Error()).To(ContainSubstring(s))
			}
			g.Expect(err.Error()).NotTo(ContainSubstring("v0.1.0"), "only the five highest versions are named")
			g.Expect(err.Error()).NotTo(ContainSubstring(gitPassword))
		})
	}
}

func TestResolveBadCredentials(t *testing.T) {
	r, _ := publish(t, files{"a": file("1")})
	const wrong = "wr0ng-pa55word"
	withURLCreds := strings.Replace(r.httpURL(), "http://", "http://"+gitUser+":"+wrong+"@", 1)
	tests := []struct {
		name   string
		url    string
		secret map[string][]byte
	}{
		{"no credentials", r.httpURL(), nil},
		{"wrong password", r.httpURL(), map[string][]byte{"username": []byte(gitUser), "password": []byte(wrong)}},
		{"wrong user", r.httpURL(), map[string][]byte{"username": []byte("intruder"), "password": []byte(gitPassword)}},
		{"bearer token", r.httpURL(), map[string][]byte{"bearerToken": []byte(wrong)}},
		{"wrong password in the URL", withURLCreds, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			rem, err := NewRemote(tt.url, tt.secret)
			g.Expect(err).NotTo(HaveOccurred())
			_, err = Resolve(t.Context(), rem, Ref{Branch: "main"})
			g.Expect(err).To(HaveOccurred())
			g.Expect(errors.Is(err, ErrAuth)).To(BeTrue(), "error %q is not ErrAuth", err)
			g.Expect(err.Error()).NotTo(ContainSubstring(wrong))
			g.Expect(err.Error()).NotTo(ContainSubstring(gitPassword))

			_, err = Archive(t.Context(), rem, Resolved{RefName: "refs/heads/main", Commit: strings.Repeat("0", 40)}, false, ArchiveOptions{}, nil)
			g.Expect(errors.Is(err, ErrAuth)).To(BeTrue(), "error %q is not ErrAuth", err)
			g.Expect(err.Error()).NotTo(ContainSubstring(wrong))
		})
	}
}

func TestResolveCredentialsInURL(t *testing.T) {
	g := NewWithT(t)
	r, c := publish(t, files{"a": file("1")})
	u := strings.Replace(r.httpURL(), "http://", "http://"+gitUser+":"+gitPassword+"@", 1)
	rem, err := NewRemote(u, nil)
	g.Expect(err).NotTo(HaveOccurred())
	res, err := Resolve(t.Context(), rem, Ref{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.Commit).To(Equal(c))
	_, err = Resolve(t.Context(), rem, Ref{Branch: "nope"})
	g.Expect(errors.Is(err, ErrRefNotFound)).To(BeTrue())
	g.Expect(err.Error()).To(ContainSubstring("://redacted@"))
	g.Expect(err.Error()).NotTo(ContainSubstring(gitPassword))
}
