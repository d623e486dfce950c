package takeover

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/plumb-dev/plumb/shared/redact"
)

// argoFiles gets the files of the twins' sources for a dry-run: a local checkout given by
// URL, else a shallow clone, once per repository and revision.
type argoFiles struct {
	dirs   map[string]string
	tmp    string
	cloned map[string]string
}

// sourceOf returns the folder of the files of a twin's source: for a GitRepository its
// checkout, for a HelmRepository the folder its chart is pulled into.
func (f *argoFiles) sourceOf(ctx context.Context, tw *unstructured.Unstructured, sources []*unstructured.Unstructured) (string, error) {
	ref, _, _ := unstructured.NestedStringMap(tw.Object, "spec", "sourceRef")
	if ref == nil {
		ref, _, _ = unstructured.NestedStringMap(tw.Object, "spec", "chart", "spec", "sourceRef")
	}
	var src *unstructured.Unstructured
	for _, s := range sources {
		if s.GetKind() == ref["kind"] && s.GetName() == ref["name"] {
			src = s
		}
	}
	if src == nil {
		return "", fmt.Errorf("its source %s/%s is not one the takeover makes", ref["kind"], ref["name"])
	}
	u, _, _ := unstructured.NestedString(src.Object, "spec", "url")
	switch src.GetKind() {
	case "GitRepository":
		gitRef, _, _ := unstructured.NestedStringMap(src.Object, "spec", "ref")
		return f.git(ctx, u, gitRef)
	case "HelmRepository":
		return f.chart(tw, src)
	default:
		return "", fmt.Errorf("a %s source is not read by the dry-run: compare by hand", src.GetKind())
	}
}

// git returns a checkout of a repository at a GitRepository's ref.
func (f *argoFiles) git(ctx context.Context, repoURL string, ref map[string]string) (string, error) {
	for u, dir := range f.dirs {
		if sameRepo(u, repoURL) {
			return dir, nil
		}
	}
	key := repoURL + "#" + ref["branch"] + ref["tag"] + ref["name"] + ref["commit"] + ref["semver"]
	if dir, ok := f.cloned[key]; ok {
		return dir, nil
	}
	dir := filepath.Join(f.tmp, "git-"+strconv.Itoa(len(f.cloned)))
	opts := &gogit.CloneOptions{URL: repoURL, Depth: 1, SingleBranch: true, Tags: gogit.NoTags}
	switch {
	case ref["semver"] != "":
		return "", fmt.Errorf("revision %s is a version range: check the repository out at the version Argo CD synced and pass --source-dir %s=DIR", ref["semver"], redact.URL(repoURL))
	case ref["commit"] != "":
		opts.Depth, opts.SingleBranch = 0, false
	case ref["branch"] != "":
		opts.ReferenceName = plumbing.NewBranchReferenceName(ref["branch"])
	case ref["tag"] != "":
		opts.ReferenceName = plumbing.NewTagReferenceName(ref["tag"])
	case ref["name"] != "":
		opts.ReferenceName = plumbing.ReferenceName(ref["name"])
	}
	repo, err := gogit.PlainCloneContext(ctx, dir, false, opts)
	if err != nil {
		return "", fmt.Errorf("clone %s: %v (for a private repository, check it out and pass --source-dir %s=DIR)", redact.URL(repoURL), err, redact.URL(repoURL))
	}
	if c := ref["commit"]; c != "" {
		wt, err := repo.Worktree()
		if err == nil {
			err = wt.Checkout(&gogit.CheckoutOptions{Hash: plumbing.NewHash(c)})
		}
		if err != nil {
			return "", fmt.Errorf("check out commit %s of %s: %v", c, redact.URL(repoURL), err)
		}
	}
	f.cloned[key] = dir
	return dir, nil
}

// sameRepo says whether two repository URLs name the same repository.
func sameRepo(a, b string) bool {
	norm := func(s string) string {
		return strings.TrimSuffix(strings.TrimSuffix(strings.ToLower(redact.URL(s)), "/"), ".git")
	}
	return norm(a) == norm(b)
}
