package gitwork

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// tagged publishes a repository of two commits on main (first, second) with the tags v1.0.0
// (lightweight, first), v1.1.0 (annotated, second), v2.0.0-rc.1 and not-a-version (first), and
// a branch old at first.
func tagged(t *testing.T) (url string, first, second plumbing.Hash) {
	t.Helper()
	url = seed(t, map[string]string{"a.yaml": "a: 1\n"})
	dir := t.TempDir()
	repo, err := gogit.PlainClone(dir, false, &gogit.CloneOptions{URL: url, Auth: remote(t, url).Auth, ReferenceName: "refs/heads/main"})
	must(t, err)
	head, err := repo.Head()
	must(t, err)
	second = head.Hash()
	c, err := repo.CommitObject(second)
	must(t, err)
	first = c.ParentHashes[0]
	for _, tag := range []string{"v1.0.0", "v2.0.0-rc.1", "not-a-version"} {
		_, err := repo.CreateTag(tag, first, nil)
		must(t, err)
	}
	sig := &object.Signature{Name: "dev", Email: "dev@example.com", When: time.Now()}
	_, err = repo.CreateTag("v1.1.0", second, &gogit.CreateTagOptions{Tagger: sig, Message: "release"})
	must(t, err)
	must(t, repo.Storer.SetReference(plumbing.NewHashReference(plumbing.NewBranchReferenceName("old"), first)))
	for _, spec := range []config.RefSpec{"refs/tags/v1.0.0:refs/tags/v1.0.0", "refs/tags/v1.1.0:refs/tags/v1.1.0",
		"refs/tags/v2.0.0-rc.1:refs/tags/v2.0.0-rc.1", "refs/tags/not-a-version:refs/tags/not-a-version", "refs/heads/old:refs/heads/old"} {
		if err := repo.Push(&gogit.PushOptions{Auth: remote(t, url).Auth, RefSpecs: []config.RefSpec{spec}}); err != nil {
			t.Fatalf("push %s: %v", spec, err)
		}
	}
	return url, first, second
}

func TestCheckoutRefs(t *testing.T) {
	ctx := context.Background()
	url, first, second := tagged(t)
	for _, tc := range []struct {
		name  string
		ref   Ref
		want  plumbing.Hash
		start string
	}{
		{name: "lightweight tag", ref: Ref{Tag: "v1.0.0"}, want: first, start: "tag v1.0.0"},
		{name: "annotated tag", ref: Ref{Tag: "v1.1.0"}, want: second},
		{name: "semver, highest in range", ref: Ref{SemVer: "1.x"}, want: second},
		{name: "semver, pre-releases only when named", ref: Ref{SemVer: ">=1.0.0 <1.1.0"}, want: first},
		{name: "reference name", ref: Ref{Name: "refs/heads/old"}, want: first, start: "refs/heads/old"},
		{name: "commit in any branch", ref: Ref{Commit: first.String()}, want: first},
		{name: "commit in its branch", ref: Ref{Branch: "main", Commit: first.String()}, want: first},
		{name: "commit wins over tag", ref: Ref{Tag: "v1.1.0", Commit: first.String()}, want: first},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Sync(ctx, filepath.Join(t.TempDir(), "c"), remote(t, url), tc.ref, "auto")
			must(t, err)
			if c.Head != tc.want {
				t.Fatalf("checked out %s, want %s", c.Head, tc.want)
			}
			if c.Branch != "auto" {
				t.Fatalf("local branch %q, want the push branch", c.Branch)
			}
			if tc.start != "" && c.Start != tc.start {
				t.Fatalf("start %q, want %q", c.Start, tc.start)
			}
		})
	}
	for _, tc := range []struct {
		name string
		ref  Ref
	}{
		{name: "missing tag", ref: Ref{Tag: "v9.9.9"}},
		{name: "no tag in range", ref: Ref{SemVer: ">=3.0.0"}},
		{name: "missing reference", ref: Ref{Name: "refs/pull/1/head"}},
		{name: "missing commit", ref: Ref{Commit: strings.Repeat("ab", 20)}},
		{name: "commit outside its branch", ref: Ref{Branch: "old", Commit: second.String()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Sync(ctx, filepath.Join(t.TempDir(), "c"), remote(t, url), tc.ref, "auto")
			if !errors.Is(err, ErrBranchNotFound) {
				t.Fatalf("Sync: %v, want ErrBranchNotFound", err)
			}
		})
	}
	if _, err := Sync(ctx, filepath.Join(t.TempDir(), "c"), remote(t, url), Ref{Tag: "v1.0.0"}, ""); err == nil {
		t.Fatal("a tag was checked out with no branch to push to")
	}
}

// A tag's working copy pushes to the push branch, and the next run starts from that branch.
func TestCheckoutTagThenPushBranch(t *testing.T) {
	ctx := context.Background()
	url, first, _ := tagged(t)
	dir := filepath.Join(t.TempDir(), "clone")
	c, err := Sync(ctx, dir, remote(t, url), Ref{Tag: "v1.0.0"}, "auto")
	must(t, err)
	h := change(t, c, "a.yaml", "a: 2\n")
	must(t, c.Push(ctx, "auto", "", nil))
	if remoteTip(t, url, "auto") != h {
		t.Fatal("the push branch was not created from the tag")
	}
	parent, err := c.repo.CommitObject(h)
	must(t, err)
	if parent.ParentHashes[0] != first {
		t.Fatalf("the commit's parent is %s, want the tag's %s", parent.ParentHashes[0], first)
	}
	// A full clone (for a commit) replaces the shallow one in the same folder.
	c, err = Sync(ctx, dir, remote(t, url), Ref{Commit: first.String()}, "auto")
	must(t, err)
	if c.Head != h || c.Start != "auto" {
		t.Fatalf("started from %s (%s), want the push branch's %s", c.Start, c.Head, h)
	}
}

// The Git server (git receive-pack) hands the push options to its hooks.
func TestPushOptions(t *testing.T) {
	ctx := context.Background()
	url := seed(t, map[string]string{"a.yaml": "a: 1\n"})
	bare := filepath.Join(server.Root(), filepath.Base(url))
	seen := filepath.Join(t.TempDir(), "push-options")
	out, err := exec.Command("git", "-C", bare, "config", "receive.advertisePushOptions", "true").CombinedOutput()
	if err != nil {
		t.Fatalf("git config: %v: %s", err, out)
	}
	hook := "#!/bin/sh\ni=0\nwhile [ $i -lt \"${GIT_PUSH_OPTION_COUNT:-0}\" ]; do\n" +
		"  eval \"echo \\\"\\$GIT_PUSH_OPTION_$i\\\"\"\n  i=$((i+1))\ndone > " + seen + "\n"
	must(t, os.WriteFile(filepath.Join(bare, "hooks", "pre-receive"), []byte(hook), 0o755))

	c, err := Sync(ctx, filepath.Join(t.TempDir(), "c"), remote(t, url), Ref{Branch: "main"}, "")
	must(t, err)
	change(t, c, "a.yaml", "a: 2\n")
	must(t, c.Push(ctx, "", "", map[string]string{"merge_request.create": "true", "ci.skip": ""}))
	b, err := os.ReadFile(seen)
	must(t, err)
	got := strings.Fields(string(b))
	slices.Sort(got)
	if want := []string{"ci.skip=", "merge_request.create=true"}; !slices.Equal(got, want) {
		t.Fatalf("the server saw push options %q, want %q", got, want)
	}
}
