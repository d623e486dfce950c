package migrate

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// ArgoOptions say how Argo CD manifests are migrated.
type ArgoOptions struct {
	// Namespace of the Plumb objects written (Argo CD keeps its Applications in its own
	// namespace, which goes when Argo CD goes).
	Namespace string
	// RepoURLs are URLs of the repository being migrated, besides the remotes of its
	// .git/config: sources in it are read to tell a Helm chart from a kustomization, and its
	// folders and files feed ApplicationSets' git generators.
	RepoURLs []string
	// Write writes the Plumb objects; without it nothing is written.
	Write bool
}

// OutputSuffix ends the name of the file written next to each file of Argo CD objects: the
// Application stays until the cluster is taken over, so that Argo CD does not prune what it
// deployed before Plumb adopts it.
const OutputSuffix = ".plumb.yaml"

// argoGroup is Argo CD's API group.
const argoGroup = "argoproj.io"

// argoRun is the state of one migration across its files: sources are written once, in the
// first file that needs them, and every other file refers to them by name.
type argoRun struct {
	dir   string
	opts  ArgoOptions
	repos map[string]bool // normalised URLs of the repository in dir
	// sources maps a source's identity (kind, URL, revision) to its name.
	sources map[string]string
	// names are the kind/name of every object written so far.
	names map[string]bool
}

// ArgoCD migrates the Argo CD Applications and ApplicationSets under dir: the Plumb objects of
// each file go to a file of the same name ending in OutputSuffix, next to it, and everything
// that cannot be migrated is reported with its file and line.
func ArgoCD(dir string, opts ArgoOptions) (*Report, error) {
	if opts.Namespace == "" {
		opts.Namespace = "plumb-system"
	}
	run := &argoRun{dir: dir, opts: opts, repos: map[string]bool{}, sources: map[string]string{}, names: map[string]bool{}}
	for _, u := range append(gitRemotes(dir), opts.RepoURLs...) {
		run.repos[normalizeURL(u)] = true
	}
	r := &Report{From: "argocd"}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == ".git" {
				return filepath.SkipDir
			}
			return nil
		}
		if ext := filepath.Ext(path); (ext != ".yaml" && ext != ".yml") || strings.HasSuffix(path, OutputSuffix) {
			return nil
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		return run.file(r, path, rel)
	})
	if err != nil {
		return nil, err
	}
	sort.SliceStable(r.Findings, func(i, j int) bool {
		a, b := r.Findings[i], r.Findings[j]
		if a.File != b.File {
			return a.File < b.File
		}
		return a.Line < b.Line
	})
	return r, nil
}

// file migrates the Argo CD objects of one file.
func (run *argoRun) file(r *Report, path, rel string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var objects []*yaml.Node
	for {
		var doc yaml.Node
		if err := dec.Decode(&doc); err == io.EOF {
			break
		} else if err != nil {
			r.Skipped = append(r.Skipped, fmt.Sprintf("%s: not YAML, left as it is (%v)", rel, err))
			return nil
		}
		if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
			continue
		}
		root := doc.Content[0]
		group, _, _ := strings.Cut(text(field(root, "apiVersion")), "/")
		if group != argoGroup {
			continue
		}
		// The comment above a document is the document's, its mapping's or its first key's.
		head := strings.TrimSpace(strings.Join([]string{doc.HeadComment, root.HeadComment, root.Content[0].HeadComment}, "\n"))
		c := &converter{run: run, file: rel, head: head}
		switch kind := text(field(root, "kind")); kind {
		case "Application":
			c.application(root)
		case "ApplicationSet":
			c.applicationSet(root)
		default:
			c.find(field(root, "kind"), kind+"/"+text(field(field(root, "metadata"), "name")), "", fmt.Sprintf("Plumb has no counterpart of Argo CD's %s; remove it once the cluster runs on Plumb", kind))
		}
		if c.migrated {
			r.Migrated++
		}
		r.Findings = append(r.Findings, c.findings...)
		objects = append(objects, c.objects...)
	}
	if len(objects) == 0 {
		return nil
	}
	out := strings.TrimSuffix(path, filepath.Ext(path)) + OutputSuffix
	outRel := strings.TrimSuffix(rel, filepath.Ext(rel)) + OutputSuffix
	r.Changed = append(r.Changed, outRel)
	r.Objects += len(objects)
	if !run.opts.Write {
		return nil
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	for _, o := range objects {
		if err := enc.Encode(o); err != nil {
			return fmt.Errorf("%s: %w", outRel, err)
		}
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("%s: %w", outRel, err)
	}
	header := fmt.Sprintf("# Written by `plumb migrate repo --from argocd` from %s.\n# Delete %s once `plumb migrate cluster --from argocd` has taken the cluster over.\n", filepath.Base(rel), filepath.Base(rel))
	return os.WriteFile(out, append([]byte(header), buf.Bytes()...), 0o644)
}

// gitRemotes reads the remote URLs of dir's .git/config, if it has one.
func gitRemotes(dir string) []string {
	b, err := os.ReadFile(filepath.Join(dir, ".git", "config"))
	if err != nil {
		return nil
	}
	var urls []string
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(l), "=")
		if ok && strings.TrimSpace(k) == "url" {
			urls = append(urls, strings.TrimSpace(v))
		}
	}
	return urls
}

var scpLike = regexp.MustCompile(`^([^@/]+@)?([^:/]+):(.*)$`)

// normalizeURL reduces a Git URL to host/path, so that the https, ssh and scp-like spellings
// of one repository compare equal.
func normalizeURL(u string) string {
	u = strings.TrimSpace(u)
	if scheme, rest, ok := strings.Cut(u, "://"); ok && !strings.Contains(scheme, "/") {
		u = rest
		if at := strings.Index(u, "@"); at >= 0 && at < strings.Index(u+"/", "/") {
			u = u[at+1:]
		}
	} else if m := scpLike.FindStringSubmatch(u); m != nil {
		u = m[2] + "/" + m[3]
	}
	u = strings.TrimSuffix(strings.TrimSuffix(u, "/"), ".git")
	host, p, _ := strings.Cut(u, "/")
	return strings.ToLower(host) + "/" + p
}

// local returns the folder of dir that a source's path names when the source is the
// repository being migrated, and whether it is.
func (run *argoRun) local(repoURL, p string) (string, bool) {
	if !run.repos[normalizeURL(repoURL)] {
		return "", false
	}
	clean := filepath.Clean("/" + filepath.FromSlash(p))
	return filepath.Join(run.dir, clean), true
}

var notDNS = regexp.MustCompile(`[^a-z0-9-]+`)

// dnsName makes a name Kubernetes takes (lower case, digits and dashes, 63 at most).
func dnsName(s string) string {
	s = strings.Trim(notDNS.ReplaceAllString(strings.ToLower(s), "-"), "-")
	if len(s) > 63 {
		s = strings.TrimRight(s[:63], "-")
	}
	if s == "" {
		s = "source"
	}
	return s
}

// unique returns name, or name with a number, so that kind/name is not taken yet.
func (run *argoRun) unique(kind, name string) string {
	n := name
	for i := 2; run.names[kind+"/"+n]; i++ {
		n = fmt.Sprintf("%s-%d", name, i)
	}
	run.names[kind+"/"+n] = true
	return n
}
