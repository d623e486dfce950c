package git

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/plumb-dev/plumb/shared/artifact"
)

// archive writes the tarball of the resolved commit and returns its bytes and its content:
// path → "f <content>" for a file, "x <content>" for an executable, "l <target>" for a symlink.
func archive(t *testing.T, r Remote, res Resolved, pinned bool, opts ArchiveOptions) ([]byte, map[string]string, error) {
	t.Helper()
	var buf bytes.Buffer
	w := artifact.NewWriter(&buf)
	if _, err := Archive(t.Context(), r, res, pinned, opts, w); err != nil {
		return nil, nil, err
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	content := map[string]string{}
	err := artifact.Walk(bytes.NewReader(buf.Bytes()), artifact.DefaultLimits, func(e artifact.Entry, body io.Reader) error {
		if _, dup := content[e.Name]; dup {
			return fmt.Errorf("%s is twice in the archive", e.Name)
		}
		if e.Linkname != "" {
			content[e.Name] = "l " + e.Linkname
			return nil
		}
		data, err := io.ReadAll(body)
		if err != nil {
			return err
		}
		kind := "f "
		if e.Executable {
			kind = "x "
		}
		content[e.Name] = kind + string(data)
		return nil
	})
	if err != nil {
		t.Fatalf("the archive does not read back: %v", err)
	}
	return buf.Bytes(), content, nil
}

// mustArchive archives the tip of the default branch.
func mustArchive(t *testing.T, r *testRepo, opts ArchiveOptions) map[string]string {
	t.Helper()
	res, err := Resolve(t.Context(), r.remote(), Ref{})
	if err != nil {
		t.Fatal(err)
	}
	_, content, err := archive(t, r.remote(), res, false, opts)
	if err != nil {
		t.Fatal(err)
	}
	return content
}

func names(content map[string]string) []string {
	return slices.Sorted(maps.Keys(content))
}

func ptr(s string) *string { return &s }

// sample is a repository with something for every rule of Archive.
var sample = files{
	"README.md":                 file("readme\n"),
	"root.bak":                  file("bak"),
	".sourceignore":             file("# backups\n\n*.bak\n"),
	".github/workflows/ci.yaml": file("ci"),
	".gitlab/template.md":       file("x"),
	".circleci/config.yml":      file("x"),
	".gitlab-ci.yml":            file("x"),
	".travis.yml":               file("x"),
	".gitattributes":            file("* text=auto\n"),
	".gitignore":                file("bin/\n"),
	"app/deploy.yaml":           file("kind: Deployment\n"),
	"app/.sourceignore":         file("*.tmp\n/local/\n"),
	"app/x.tmp":                 file("tmp"),
	"app/z.bak":                 file("bak"),
	"app/local/secret.yaml":     file("secret"),
	"app/sub/.sourceignore":     file("drop.yaml\r\n"),
	"app/sub/drop.yaml":         file("drop"),
	"app/sub/keep.yaml":         file("keep"),
	"app/sub/y.tmp":             file("tmp"),
	"app/sub/local/kept.yaml":   file("kept"),
	"other/x.tmp":               file("tmp"),
	"other/drop.yaml":           file("not ignored here"),
	"scripts/run.sh":            exe("#!/bin/sh\n"),
	"links/inside":              link("../app/deploy.yaml"),
	"links/dir":                 link("../app"),
	"current":                   link("README.md"),
	"included/old.yaml":         file("old"),
}

func TestArchive(t *testing.T) {
	r, _ := publish(t, sample)

	// The default ignore drops CI and Git metadata; .sourceignore files apply below their folder.
	wantDefault := map[string]string{
		".sourceignore":           "f # backups\n\n*.bak\n",
		"README.md":               "f readme\n",
		"app/.sourceignore":       "f *.tmp\n/local/\n",
		"app/deploy.yaml":         "f kind: Deployment\n",
		"app/sub/.sourceignore":   "f drop.yaml\r\n",
		"app/sub/keep.yaml":       "f keep",
		"app/sub/local/kept.yaml": "f kept",
		"current":                 "l README.md",
		"included/old.yaml":       "f old",
		"links/dir":               "l ../app",
		"links/inside":            "l ../app/deploy.yaml",
		"other/drop.yaml":         "f not ignored here",
		"other/x.tmp":             "f tmp",
		"scripts/run.sh":          "x #!/bin/sh\n",
	}
	t.Run("default ignore", func(t *testing.T) {
		NewWithT(t).Expect(mustArchive(t, r, ArchiveOptions{})).To(Equal(wantDefault))
	})

	without := func(drop ...string) []string {
		var out []string
		for _, n := range names(wantDefault) {
			if !slices.ContainsFunc(drop, func(d string) bool { return n == d || strings.HasPrefix(n, d+"/") }) {
				out = append(out, n)
			}
		}
		return out
	}
	tests := []struct {
		name string
		opts ArchiveOptions
		want []string
	}{
		{
			"empty ignore keeps the metadata", ArchiveOptions{Ignore: ptr("")},
			append(names(wantDefault), ".circleci/config.yml", ".gitattributes", ".github/workflows/ci.yaml",
				".gitignore", ".gitlab-ci.yml", ".gitlab/template.md", ".travis.yml"),
		},
		{
			"ignore replaces the default, with negation", ArchiveOptions{Ignore: ptr("# no yaml\n*.yaml\n!app/deploy.yaml\n.git*\n.*.yml\n.circleci/\n")},
			[]string{".sourceignore", "README.md", "app/.sourceignore", "app/deploy.yaml", "app/sub/.sourceignore",
				"current", "links/dir", "links/inside", "other/x.tmp", "scripts/run.sh"},
		},
		{
			"anchored ignore", ArchiveOptions{Ignore: ptr("/app/sub/\n/README.md\nlinks\n")},
			append([]string{".circleci/config.yml", ".gitattributes", ".github/workflows/ci.yaml", ".gitignore",
				".gitlab-ci.yml", ".gitlab/template.md", ".travis.yml"}, without("app/sub", "README.md", "links")...),
		},
		{
			"sparse folder", ArchiveOptions{Sparse: []string{"app"}},
			[]string{"app/.sourceignore", "app/deploy.yaml", "app/sub/.sourceignore", "app/sub/keep.yaml", "app/sub/local/kept.yaml"},
		},
		{
			"sparse nested folders, not cleaned", ArchiveOptions{Sparse: []string{"app/sub/", "./scripts"}},
			[]string{"app/sub/.sourceignore", "app/sub/keep.yaml", "app/sub/local/kept.yaml", "scripts/run.sh"},
		},
		{"sparse root", ArchiveOptions{Sparse: []string{"."}}, names(wantDefault)},
		{"sparse missing folder", ArchiveOptions{Sparse: []string{"nope"}}, nil},
		{"sparse is a folder, not a prefix", ArchiveOptions{Sparse: []string{"ap"}}, nil},
		{"exclude", ArchiveOptions{Exclude: []string{"included", "app/sub"}}, without("included", "app/sub")},
		{"exclude is a folder, not a prefix", ArchiveOptions{Exclude: []string{"inc", "app/su"}}, names(wantDefault)},
		{
			"sparse and exclude", ArchiveOptions{Sparse: []string{"app"}, Exclude: []string{"app/sub"}},
			[]string{"app/.sourceignore", "app/deploy.yaml"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			slices.Sort(tt.want)
			NewWithT(t).Expect(names(mustArchive(t, r, tt.opts))).To(Equal(tt.want))
		})
	}
}

func TestArchiveSymlinksOutside(t *testing.T) {
	tests := []struct {
		name   string
		files  files
		opts   ArchiveOptions
		refuse string // the link refused; empty when the archive succeeds
	}{
		{"absolute", files{"a": file("a"), "bad": link("/etc/passwd")}, ArchiveOptions{}, "bad"},
		{"parent of the root", files{"a": file("a"), "bad": link("../a")}, ArchiveOptions{}, "bad"},
		{"the parent itself", files{"a": file("a"), "bad": link("..")}, ArchiveOptions{}, "bad"},
		{"up from a folder", files{"a": file("a"), "deep/er/bad": link("../../../a")}, ArchiveOptions{}, "deep/er/bad"},
		{"up and back in through the root's name", files{"a": file("a"), "d/bad": link("../../repo/a")}, ArchiveOptions{}, "d/bad"},
		{"ignored", files{"a": file("a"), "bad": link("/etc/passwd")}, ArchiveOptions{Ignore: ptr("bad\n")}, ""},
		{"left out by sparse", files{"a/x": file("a"), "b/bad": link("../../x")}, ArchiveOptions{Sparse: []string{"a"}}, ""},
		{"left out by exclude", files{"a/x": file("a"), "b/bad": link("../../x")}, ArchiveOptions{Exclude: []string{"b"}}, ""},
		{"inside, through parents", files{"a/b/x": file("x"), "a/b/c/l": link("../../b/./x")}, ArchiveOptions{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			r, _ := publish(t, tt.files)
			res, err := Resolve(t.Context(), r.remote(), Ref{})
			g.Expect(err).NotTo(HaveOccurred())
			_, content, err := archive(t, r.remote(), res, false, tt.opts)
			if tt.refuse == "" {
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(content).NotTo(BeEmpty())
				return
			}
			g.Expect(err).To(HaveOccurred())
			g.Expect(errors.Is(err, ErrContent)).To(BeTrue(), "error %q is not ErrContent", err)
			g.Expect(err.Error()).To(ContainSubstring("symlink " + tt.refuse + " -> "))
			g.Expect(err.Error()).To(ContainSubstring("add it to spec.ignore"))
		})
	}
}

func TestArchiveDeterministic(t *testing.T) {
	g := NewWithT(t)
	r, c := publish(t, sample)
	rem := r.remote()
	res, err := Resolve(t.Context(), rem, Ref{})
	g.Expect(err).NotTo(HaveOccurred())
	first, _, err := archive(t, rem, res, false, ArchiveOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	second, _, err := archive(t, rem, res, false, ArchiveOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(second).To(Equal(first), "the same commit archived twice")

	// The same commit through other fetches: the whole history of the branch, every ref.
	pinned, _, err := archive(t, rem, Resolved{RefName: res.RefName, Commit: c}, true, ArchiveOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(pinned).To(Equal(first), "the commit fetched with its branch's history")
	bare, _, err := archive(t, rem, Resolved{Commit: c}, false, ArchiveOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(bare).To(Equal(first), "the commit fetched with every ref")

	// The same tree in another repository and commit.
	other, _ := publish(t, sample)
	again, _, err := archive(t, other.remote(), mustResolve(t, other.remote(), Ref{}), false, ArchiveOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(again).To(Equal(first), "the same tree in another commit")
}

func mustResolve(t *testing.T, r Remote, ref Ref) Resolved {
	t.Helper()
	res, err := Resolve(t.Context(), r, ref)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestArchiveRefs(t *testing.T) {
	r := newRepo(t)
	c1 := r.commit("main", files{"v": file("1")})
	c2 := r.commit("main", files{"v": file("2")})
	other := r.commit("other", files{"v": file("other")})
	r.push("refs/heads/main", "refs/heads/other")
	r.setDefault("main")
	r.tag("v1.0.0", c1, "annotated\n")
	r.tag("light", c2, "")
	rem := r.remote()

	tests := []struct {
		name   string
		ref    Ref
		pinned bool
		want   string
	}{
		{"default branch tip", Ref{}, false, "f 2"},
		{"annotated tag", Ref{Tag: "v1.0.0"}, false, "f 1"},
		{"semver to an annotated tag", Ref{SemVer: "1.x"}, false, "f 1"},
		{"lightweight tag", Ref{Tag: "light"}, false, "f 2"},
		{"name of an annotated tag", Ref{Name: "refs/tags/v1.0.0"}, false, "f 1"},
		{"name of a branch", Ref{Name: "refs/heads/other"}, false, "f other"},
		{"name HEAD", Ref{Name: "HEAD"}, false, "f 2"},
		{"commit in the branch history", Ref{Branch: "main", Commit: c1}, true, "f 1"},
		{"bare commit of another branch", Ref{Commit: other}, true, "f other"},
		{"bare commit below a tag", Ref{Commit: c1}, true, "f 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			res := mustResolve(t, rem, tt.ref)
			_, content, err := archive(t, rem, res, tt.pinned, ArchiveOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(content).To(Equal(map[string]string{"v": tt.want}))
		})
	}

	missing := []struct {
		name   string
		res    Resolved
		pinned bool
		where  string
	}{
		{"commit of another branch", Resolved{RefName: "refs/heads/main", Commit: other}, true, "refs/heads/main"},
		{"unknown bare commit", Resolved{Commit: strings.Repeat("1", 40)}, true, "any branch or tag"},
	}
	t.Run("ref moved between listing and a shallow fetch", func(t *testing.T) {
		g := NewWithT(t)
		_, _, err := archive(t, rem, Resolved{RefName: "refs/heads/main", Commit: c1}, false, ArchiveOptions{})
		g.Expect(errors.Is(err, ErrRefMoved)).To(BeTrue(), "error %q is not ErrRefMoved", err)
	})
	for _, tt := range missing {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			_, _, err := archive(t, rem, tt.res, tt.pinned, ArchiveOptions{})
			g.Expect(err).To(HaveOccurred())
			g.Expect(errors.Is(err, ErrRefNotFound)).To(BeTrue(), "error %q is not ErrRefNotFound", err)
			g.Expect(err.Error()).To(ContainSubstring("is not in " + tt.where))
		})
	}
}

// gitmodules is the .gitmodules content for submodules at paths with URLs, in that order.
func gitmodules(pathURL ...string) entry {
	var b strings.Builder
	for i := 0; i < len(pathURL); i += 2 {
		fmt.Fprintf(&b, "[submodule %q]\n\tpath = %s\n\turl = %s\n", pathURL[i], pathURL[i], pathURL[i+1])
	}
	return file(b.String())
}

func TestArchiveSubmodules(t *testing.T) {
	deep, deepCommit := publish(t, files{"deep.yaml": file("deep"), "README.md": file("deep readme")})
	// lib holds deep as a nested submodule, by a URL relative to its own.
	lib, libCommit := publish(t, files{
		"lib.yaml":         file("lib"),
		"README.md":        file("lib readme"),
		"inc/file":         file("where an include goes"),
		".sourceignore":    file("*.txt\n"),
		"notes.txt":        file("ignored by the submodule's own .sourceignore"),
		".gitmodules":      gitmodules("nested/deep", "../"+deep.name),
		"nested/deep":      gitlink(deepCommit),
		"scripts/build.sh": exe("#!/bin/sh\n"),
	})
	flat, flatCommit := publish(t, files{"flat.yaml": file("flat")})

	tests := []struct {
		name    string
		files   files
		opts    ArchiveOptions
		want    map[string]string
		invalid string // an ErrInvalid message part; empty when the archive succeeds
	}{
		{
			"not recursed",
			files{"app.yaml": file("app"), ".gitmodules": gitmodules("vendor/flat", "../"+flat.name), "vendor/flat": gitlink(flatCommit)},
			ArchiveOptions{},
			map[string]string{"app.yaml": "f app"}, "",
		},
		{
			"relative URL",
			files{"app.yaml": file("app"), ".gitmodules": gitmodules("vendor/flat", "../"+flat.name), "vendor/flat": gitlink(flatCommit)},
			ArchiveOptions{RecurseSubmodules: true},
			map[string]string{"app.yaml": "f app", "vendor/flat/flat.yaml": "f flat"}, "",
		},
		{
			"absolute URL on the same host gets the credentials",
			files{"app.yaml": file("app"), ".gitmodules": gitmodules("flat", flat.httpURL()), "flat": gitlink(flatCommit)},
			ArchiveOptions{RecurseSubmodules: true},
			map[string]string{"app.yaml": "f app", "flat/flat.yaml": "f flat"}, "",
		},
		{
			"nested submodules, ignore rules of both",
			files{
				"app.yaml":      file("app"),
				".sourceignore": file("README.md\n"),
				".gitmodules":   gitmodules("vendor/lib", "../"+lib.name),
				"vendor/lib":    gitlink(libCommit),
			},
			ArchiveOptions{RecurseSubmodules: true},
			map[string]string{
				".sourceignore":                    "f README.md\n",
				"app.yaml":                         "f app",
				"vendor/lib/.sourceignore":         "f *.txt\n",
				"vendor/lib/inc/file":              "f where an include goes",
				"vendor/lib/lib.yaml":              "f lib",
				"vendor/lib/nested/deep/deep.yaml": "f deep",
				"vendor/lib/scripts/build.sh":      "x #!/bin/sh\n",
			}, "",
		},
		{
			"exclude and sparse reach into submodules",
			files{"app.yaml": file("app"), ".gitmodules": gitmodules("vendor/lib", "../"+lib.name), "vendor/lib": gitlink(libCommit)},
			ArchiveOptions{RecurseSubmodules: true, Sparse: []string{"vendor/lib"}, Exclude: []string{"vendor/lib/inc", "vendor/lib/nested"}},
			map[string]string{
				"vendor/lib/.sourceignore":    "f *.txt\n",
				"vendor/lib/README.md":        "f lib readme",
				"vendor/lib/lib.yaml":         "f lib",
				"vendor/lib/scripts/build.sh": "x #!/bin/sh\n",
			}, "",
		},
		{
			"ignored submodule is not fetched",
			files{"app.yaml": file("app"), ".gitmodules": gitmodules("vendor/x", "http://127.0.0.1:1/none.git"), "vendor/x": gitlink(flatCommit)},
			ArchiveOptions{RecurseSubmodules: true, Ignore: ptr("vendor/\n")},
			map[string]string{".gitmodules": "f " + gitmodules("vendor/x", "http://127.0.0.1:1/none.git").data, "app.yaml": "f app"}, "",
		},
		{
			"submodule missing from .gitmodules",
			files{"app.yaml": file("app"), "vendor/flat": gitlink(flatCommit)},
			ArchiveOptions{RecurseSubmodules: true},
			nil, "submodule vendor/flat is not in .gitmodules",
		},
		{
			"malformed .gitmodules",
			files{"app.yaml": file("app"), ".gitmodules": file("[submodule \"x\n"), "vendor/flat": gitlink(flatCommit)},
			ArchiveOptions{RecurseSubmodules: true},
			nil, ".gitmodules",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			r, _ := publish(t, tt.files)
			res := mustResolve(t, r.remote(), Ref{})
			_, content, err := archive(t, r.remote(), res, false, tt.opts)
			if tt.invalid != "" {
				g.Expect(err).To(HaveOccurred())
				g.Expect(errors.Is(err, ErrContent)).To(BeTrue(), "error %q is not ErrContent", err)
				g.Expect(err.Error()).To(ContainSubstring(tt.invalid))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(content).To(Equal(tt.want))
		})
	}

	t.Run("submodule commit missing", func(t *testing.T) {
		g := NewWithT(t)
		missing := strings.Repeat("2", 40)
		r, _ := publish(t, files{".gitmodules": gitmodules("flat", "../"+flat.name), "flat": gitlink(missing)})
		_, _, err := archive(t, r.remote(), mustResolve(t, r.remote(), Ref{}), false, ArchiveOptions{RecurseSubmodules: true})
		g.Expect(err).To(HaveOccurred())
		g.Expect(errors.Is(err, ErrRefNotFound)).To(BeTrue(), "error %q is not ErrRefNotFound", err)
		g.Expect(err.Error()).To(ContainSubstring("submodule flat: ref not found: commit " + missing + " is not in any branch or tag"))
	})
}
