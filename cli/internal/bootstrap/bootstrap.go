// Package bootstrap writes Plumb into a Git repository so that the cluster manages Plumb itself
// from Git: the components' manifests and a GitRepository + Kustomization that point at the
// cluster's folder, committed and pushed with go-git. Applying them once hands the cluster over
// to Git; from then on an upgrade is a commit.
package bootstrap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/go-git/go-billy/v5"
	"github.com/go-git/go-billy/v5/memfs"
	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	"github.com/go-git/go-git/v5/storage/memory"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/plumb-dev/plumb/cli/internal/install"
	"github.com/plumb-dev/plumb/shared/redact"
)

// Options say where Plumb goes in Git and in the cluster.
type Options struct {
	// URL of the repository (http or https), Branch to commit to and Path of the cluster's
	// folder in it, e.g. clusters/prod.
	URL, Branch, Path string
	// Username and Password (or token) for the repository, when it needs them; they also go
	// into the cluster as the GitRepository's Secret.
	Username, Password string
	// SecretName names an existing Secret of the namespace that holds them (username,
	// password); the GitRepository refers to it, and bootstrap leaves it as it is.
	SecretName  string
	Components  []string
	Images      install.Images
	Namespace   string
	Interval    time.Duration
	AuthorName  string
	AuthorEmail string
	// SOPS, when set, makes the Kustomization decrypt SOPS-encrypted files with the keys of a
	// Secret of the namespace.
	SOPS *SOPS
}

// Name is the name of the GitRepository, Kustomization and Secret that sync Plumb: the
// namespace's.
func (o Options) Name() string { return o.Namespace }

// Dir is the folder of Plumb's own files in the repository.
func (o Options) Dir() string { return path.Join(o.Path, o.Namespace) }

// Files renders the files bootstrap writes (by slash path in the repository), the components'
// objects and the sync objects (GitRepository and Kustomization).
func Files(o Options) (map[string][]byte, []*unstructured.Unstructured, []*unstructured.Unstructured, error) {
	if o.Path == "" || strings.HasPrefix(o.Path, "/") || strings.Contains("/"+o.Path+"/", "/../") {
		return nil, nil, nil, fmt.Errorf("--path %q: a relative folder of the repository, e.g. clusters/prod", o.Path)
	}
	comps, err := install.Render(o.Components, o.Namespace, o.Images)
	if err != nil {
		return nil, nil, nil, err
	}
	// The cluster's Kustomization must never prune a CRD (every object of its kind would go
	// with it) or the namespace, however components.yaml changes.
	for _, c := range comps {
		if k := c.GetKind(); k == "CustomResourceDefinition" || k == "Namespace" {
			a := c.GetAnnotations()
			if a == nil {
				a = map[string]string{}
			}
			a["apply.plumb.dev/prune"] = "Disabled"
			c.SetAnnotations(a)
		}
	}
	compYAML, err := install.YAML(comps)
	if err != nil {
		return nil, nil, nil, err
	}
	sync := syncObjects(o)
	syncYAML, err := install.YAML(sync)
	if err != nil {
		return nil, nil, nil, err
	}
	header := "# Written by plumb bootstrap; edit through plumb bootstrap or by hand, and commit.\n"
	files := map[string][]byte{
		path.Join(o.Dir(), "components.yaml"):    append([]byte(header), compYAML...),
		path.Join(o.Dir(), "sync.yaml"):          append([]byte(header), syncYAML...),
		path.Join(o.Dir(), "kustomization.yaml"): []byte("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - components.yaml\n  - sync.yaml\n"),
	}
	return files, comps, sync, nil
}

// syncObjects are the GitRepository of the repository and the Kustomization of the cluster's
// folder.
func syncObjects(o Options) []*unstructured.Unstructured {
	interval := o.Interval.String()
	repoSpec := map[string]any{"url": o.URL, "ref": map[string]any{"branch": o.Branch}, "interval": interval}
	switch {
	case o.SecretName != "":
		repoSpec["secretRef"] = map[string]any{"name": o.SecretName}
	case o.Username != "" || o.Password != "":
		repoSpec["secretRef"] = map[string]any{"name": o.Name()}
	}
	// Orphan: deleting this Kustomization by mistake leaves Plumb and the cluster as they are.
	ksSpec := map[string]any{"sourceRef": map[string]any{"kind": "GitRepository", "name": o.Name()},
		"path": "./" + o.Path, "prune": true, "deletionPolicy": "Orphan", "interval": interval}
	if d := decryption(o); d != nil {
		ksSpec["decryption"] = d
	}
	return []*unstructured.Unstructured{
		{Object: map[string]any{"apiVersion": "source.plumb.dev/v1beta1", "kind": "GitRepository",
			"metadata": map[string]any{"name": o.Name(), "namespace": o.Namespace}, "spec": repoSpec}},
		{Object: map[string]any{"apiVersion": "apply.plumb.dev/v1beta1", "kind": "Kustomization",
			"metadata": map[string]any{"name": o.Name(), "namespace": o.Namespace}, "spec": ksSpec}},
	}
}

// Secret is the GitRepository's credentials Secret to apply, or nil without credentials or
// when they come from an existing Secret.
func Secret(o Options) *unstructured.Unstructured {
	if o.SecretName != "" || o.Username == "" && o.Password == "" {
		return nil
	}
	return &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Secret",
		"metadata":   map[string]any{"name": o.Name(), "namespace": o.Namespace},
		"type":       "Opaque",
		"stringData": map[string]any{"username": o.Username, "password": o.Password}}}
}

// Pushed is what Commit did.
type Pushed struct {
	// Commit is the branch's commit, and Changed whether Commit made it.
	Commit  string
	Changed bool
	// SOPSConfig is the sops configuration file (.sops.yaml) that applies to the path, when
	// bootstrap has SOPS recipients, and SOPSConfigWritten whether this commit wrote it.
	SOPSConfig        string
	SOPSConfigWritten bool
}

// Commit writes the files to the branch, commits when they differ from what is there and
// pushes. With SOPS recipients, a .sops.yaml is added to the path unless the path or a folder
// above has one. An empty repository gets the branch.
func Commit(ctx context.Context, o Options, files map[string][]byte) (Pushed, error) {
	var p Pushed
	c, changed, err := commit(ctx, o, files, &p)
	p.Commit, p.Changed = c, changed
	return p, err
}

func commit(ctx context.Context, o Options, files map[string][]byte, p *Pushed) (string, bool, error) {
	auth := auth(o)
	fs := memfs.New()
	repo, err := gogit.CloneContext(ctx, memory.NewStorage(), fs, &gogit.CloneOptions{URL: o.URL, Auth: auth,
		ReferenceName: plumbing.NewBranchReferenceName(o.Branch), SingleBranch: true, Depth: 1, Tags: gogit.NoTags})
	switch {
	case err == nil:
	case errors.Is(err, transport.ErrEmptyRemoteRepository), isNoBranch(err):
		if repo, err = newBranch(o, fs); err != nil {
			return "", false, err
		}
	default:
		return "", false, fmt.Errorf("cloning %s: %s", redact.URL(o.URL), redact.Credentials(err.Error(), o.URL))
	}
	wt, err := repo.Worktree()
	if err != nil {
		return "", false, err
	}
	if name, data := sopsConfig(o); name != "" {
		if p.SOPSConfig = findSOPSConfig(fs, o.Path); p.SOPSConfig == "" {
			files = maps.Clone(files)
			files[name] = data
			p.SOPSConfig, p.SOPSConfigWritten = name, true
		}
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	changed := false
	for _, n := range names {
		if same(fs, n, files[n]) {
			continue
		}
		changed = true
		if err := write(fs, n, files[n]); err != nil {
			return "", false, err
		}
		if _, err := wt.Add(n); err != nil {
			return "", false, err
		}
	}
	if !changed {
		head, err := repo.Head()
		if err != nil {
			return "", false, err
		}
		return head.Hash().String(), false, nil
	}
	sig := &object.Signature{Name: o.AuthorName, Email: o.AuthorEmail, When: time.Now()}
	h, err := wt.Commit("Plumb: "+strings.Join(o.Components, ", ")+" in "+o.Dir(), &gogit.CommitOptions{Author: sig})
	if err != nil {
		return "", false, err
	}
	spec := config.RefSpec(fmt.Sprintf("refs/heads/%s:refs/heads/%s", o.Branch, o.Branch))
	if err := repo.PushContext(ctx, &gogit.PushOptions{RemoteName: "origin", RefSpecs: []config.RefSpec{spec}, Auth: auth}); err != nil {
		return "", false, fmt.Errorf("pushing to %s: %s", redact.URL(o.URL), redact.Credentials(err.Error(), o.URL))
	}
	return h.String(), true, nil
}

func auth(o Options) transport.AuthMethod {
	if o.Username == "" && o.Password == "" {
		return nil
	}
	return &githttp.BasicAuth{Username: o.Username, Password: o.Password}
}

func isNoBranch(err error) bool {
	var nm gogit.NoMatchingRefSpecError
	return errors.As(err, &nm) || strings.Contains(err.Error(), "couldn't find remote ref")
}

// newBranch starts the branch in a repository that does not have it.
func newBranch(o Options, fs billy.Filesystem) (*gogit.Repository, error) {
	repo, err := gogit.Init(memory.NewStorage(), fs)
	if err != nil {
		return nil, err
	}
	if err := repo.Storer.SetReference(plumbing.NewSymbolicReference(plumbing.HEAD, plumbing.NewBranchReferenceName(o.Branch))); err != nil {
		return nil, err
	}
	_, err = repo.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{o.URL}})
	return repo, err
}

func same(fs billy.Filesystem, name string, want []byte) bool {
	f, err := fs.Open(name)
	if err != nil {
		return false
	}
	defer f.Close()
	have, err := io.ReadAll(f)
	return err == nil && bytes.Equal(have, want)
}

func write(fs billy.Filesystem, name string, data []byte) error {
	if err := fs.MkdirAll(path.Dir(name), 0o755); err != nil {
		return err
	}
	f, err := fs.Create(name)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
