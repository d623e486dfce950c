package storage

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	. "github.com/onsi/gomega"
)

const baseURL = "http://source.plumb-system.svc"

func newStorage(t *testing.T, keep int) *Storage {
	t.Helper()
	s, err := New(filepath.Join(t.TempDir(), "artifacts"), baseURL+"/", keep)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func write(t *testing.T, s *Storage, o Object, content string) *meta.Artifact {
	t.Helper()
	a, err := s.Write(o, "main@sha1:"+strings.Repeat("a", 40), func(w io.Writer) error {
		_, err := io.WriteString(w, content)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// files lists the names in the object's folder.
func files(t *testing.T, s *Storage, o Object) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(s.Root, filepath.FromSlash(Dir(o))))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestNew(t *testing.T) {
	g := NewWithT(t)
	root := filepath.Join(t.TempDir(), "a", "b")
	s, err := New(root, "http://x/", 0)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(s.Keep).To(Equal(1))
	g.Expect(s.BaseURL).To(Equal("http://x"))
	g.Expect(root).To(BeADirectory())

	blocked := filepath.Join(t.TempDir(), "file")
	g.Expect(os.WriteFile(blocked, nil, 0o644)).To(Succeed())
	_, err = New(filepath.Join(blocked, "root"), "http://x", 2)
	g.Expect(err).To(HaveOccurred())
}

func TestDir(t *testing.T) {
	NewWithT(t).Expect(Dir(Object{Kind: "GitRepository", Namespace: "ns", Name: "app"})).To(Equal("gitrepository/ns/app"))
}

func TestWrite(t *testing.T) {
	g := NewWithT(t)
	s := newStorage(t, 2)
	o := Object{Kind: "GitRepository", Namespace: "ns", Name: "app"}
	content := "the tarball"
	sum := fmt.Sprintf("%x", sha256.Sum256([]byte(content)))

	a := write(t, s, o, content)
	g.Expect(a.Digest).To(Equal("sha256:" + sum))
	g.Expect(a.Path).To(Equal("gitrepository/ns/app/" + sum + ".tar.gz"))
	g.Expect(a.URL).To(Equal(baseURL + "/" + a.Path))
	g.Expect(a.Revision).To(Equal("main@sha1:" + strings.Repeat("a", 40)))
	g.Expect(a.Size).NotTo(BeNil())
	g.Expect(*a.Size).To(Equal(int64(len(content))))
	g.Expect(a.LastUpdateTime.IsZero()).To(BeFalse())
	g.Expect(files(t, s, o)).To(Equal([]string{sum + ".tar.gz"}), "no temporary file stays")

	info, err := os.Stat(filepath.Join(s.Root, filepath.FromSlash(a.Path)))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(info.Mode().Perm()).To(Equal(os.FileMode(0o644)))
	g.Expect(s.Has(a)).To(BeTrue())
	f, err := s.Open(a)
	g.Expect(err).NotTo(HaveOccurred())
	data, err := io.ReadAll(f)
	g.Expect(f.Close()).To(Succeed())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(data)).To(Equal(content))

	// The same content again is the same file.
	again := write(t, s, o, content)
	g.Expect(again.Path).To(Equal(a.Path))
	g.Expect(files(t, s, o)).To(HaveLen(1))

	// Written in pieces, the size and digest are of all of them.
	big, err := s.Write(o, "r", func(w io.Writer) error {
		for i := 0; i < 100; i++ {
			if _, err := fmt.Fprintf(w, "%d,", i); err != nil {
				return err
			}
		}
		return nil
	})
	g.Expect(err).NotTo(HaveOccurred())
	var want strings.Builder
	for i := 0; i < 100; i++ {
		fmt.Fprintf(&want, "%d,", i)
	}
	g.Expect(*big.Size).To(Equal(int64(want.Len())))
	g.Expect(big.Digest).To(Equal(fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(want.String())))))

	// An empty artifact is still an artifact.
	empty := write(t, s, o, "")
	g.Expect(*empty.Size).To(BeZero())
	g.Expect(empty.Digest).To(Equal(fmt.Sprintf("sha256:%x", sha256.Sum256(nil))))
	g.Expect(s.Has(empty)).To(BeTrue())
}

func TestWriteFailed(t *testing.T) {
	g := NewWithT(t)
	s := newStorage(t, 2)
	o := Object{Kind: "GitRepository", Namespace: "ns", Name: "app"}
	kept := write(t, s, o, "earlier")
	boom := errors.New("boom")
	a, err := s.Write(o, "r", func(w io.Writer) error {
		if _, err := io.WriteString(w, "half of it"); err != nil {
			return err
		}
		return boom
	})
	g.Expect(err).To(MatchError(boom))
	g.Expect(a).To(BeNil())
	g.Expect(files(t, s, o)).To(Equal([]string{path.Base(kept.Path)}), "only the earlier artifact")

	// A folder that cannot be made.
	g.Expect(os.WriteFile(filepath.Join(s.Root, "blocked"), nil, 0o644)).To(Succeed())
	_, err = s.Write(Object{Kind: "Blocked", Namespace: "ns", Name: "x"}, "r", func(io.Writer) error { return nil })
	g.Expect(err).To(HaveOccurred())
}

func TestHas(t *testing.T) {
	g := NewWithT(t)
	s := newStorage(t, 2)
	g.Expect(s.Has(nil)).To(BeFalse())
	g.Expect(s.Has(&meta.Artifact{})).To(BeFalse())
	g.Expect(s.Has(&meta.Artifact{Path: "gitrepository/ns/app/nope.tar.gz"})).To(BeFalse())
	_, err := s.Open(&meta.Artifact{Path: "gitrepository/ns/app/nope.tar.gz"})
	g.Expect(errors.Is(err, os.ErrNotExist)).To(BeTrue())
}

func TestAdopt(t *testing.T) {
	g := NewWithT(t)
	s := newStorage(t, 2)
	from := Object{Kind: "GitRepository", Namespace: "ns", Name: "first"}
	to := Object{Kind: "GitRepository", Namespace: "other", Name: "second"}
	src := write(t, s, from, "shared content")

	a, err := s.Adopt(to, src, "v1@sha1:"+strings.Repeat("b", 40))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(a.Path).To(Equal("gitrepository/other/second/" + path.Base(src.Path)))
	g.Expect(a.Path).NotTo(Equal(src.Path))
	g.Expect(a.URL).To(Equal(baseURL + "/" + a.Path))
	g.Expect(a.Digest).To(Equal(src.Digest))
	g.Expect(*a.Size).To(Equal(*src.Size))
	g.Expect(a.Revision).To(Equal("v1@sha1:" + strings.Repeat("b", 40)))
	g.Expect(s.Has(a)).To(BeTrue())

	// A hard link: the same file, no copy.
	srcInfo, err := os.Stat(filepath.Join(s.Root, filepath.FromSlash(src.Path)))
	g.Expect(err).NotTo(HaveOccurred())
	dstInfo, err := os.Stat(filepath.Join(s.Root, filepath.FromSlash(a.Path)))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(os.SameFile(srcInfo, dstInfo)).To(BeTrue())

	// Adopting again, or into its own folder, is no error.
	_, err = s.Adopt(to, src, "r")
	g.Expect(err).NotTo(HaveOccurred())
	self, err := s.Adopt(from, src, "r")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(self.Path).To(Equal(src.Path))

	// The adopted file outlives the original.
	g.Expect(s.Delete(from)).To(Succeed())
	g.Expect(s.Has(a)).To(BeTrue())

	// Nothing to adopt.
	_, err = s.Adopt(Object{Kind: "GitRepository", Namespace: "ns", Name: "third"}, &meta.Artifact{Path: "gitrepository/ns/gone/x.tar.gz"}, "r")
	g.Expect(err).To(HaveOccurred())

	// Without a size the adopted artifact says 0.
	noSize, err := s.Adopt(from, &meta.Artifact{Path: a.Path, Digest: a.Digest}, "r")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(*noSize.Size).To(BeZero())
}

func TestGC(t *testing.T) {
	o := Object{Kind: "GitRepository", Namespace: "ns", Name: "app"}
	base := time.Now().Add(-24 * time.Hour)

	// setup writes n artifacts, the i-th modified i minutes after base, plus two temporary
	// files: one fresh (possibly being written), one stale.
	setup := func(t *testing.T, s *Storage, n int) []*meta.Artifact {
		var arts []*meta.Artifact
		for i := 0; i < n; i++ {
			a := write(t, s, o, fmt.Sprintf("content %d", i))
			at := base.Add(time.Duration(i) * time.Minute)
			if err := os.Chtimes(filepath.Join(s.Root, filepath.FromSlash(a.Path)), at, at); err != nil {
				t.Fatal(err)
			}
			arts = append(arts, a)
		}
		dir := filepath.Join(s.Root, filepath.FromSlash(Dir(o)))
		for _, name := range []string{".tmp-fresh", ".tmp-stale"} {
			if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		stale := time.Now().Add(-2 * time.Hour)
		if err := os.Chtimes(filepath.Join(dir, ".tmp-stale"), stale, stale); err != nil {
			t.Fatal(err)
		}
		return arts
	}
	base0 := func(arts []*meta.Artifact, idx ...int) []string {
		out := []string{".tmp-fresh"}
		for _, i := range idx {
			out = append(out, path.Base(arts[i].Path))
		}
		slices.Sort(out)
		return out
	}

	tests := []struct {
		name    string
		keep    int
		n       int
		current int // index of the current artifact; -1 for none
		want    []int
	}{
		{"keep the newest", 3, 5, 4, []int{4, 3, 2}},
		{"current is older than the rest", 3, 5, 0, []int{0, 4, 3}},
		{"current in the middle", 2, 5, 2, []int{2, 4}},
		{"keep one: only the current", 1, 4, 1, []int{1}},
		{"no current", 3, 5, -1, []int{4, 3}},
		{"fewer than keep", 5, 3, 2, []int{0, 1, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			s := newStorage(t, tt.keep)
			arts := setup(t, s, tt.n)
			var current *meta.Artifact
			if tt.current >= 0 {
				current = arts[tt.current]
			}
			g.Expect(s.GC(o, current)).To(Succeed())
			got := files(t, s, o)
			slices.Sort(got)
			g.Expect(got).To(Equal(base0(arts, tt.want...)))
			if current != nil {
				g.Expect(s.Has(current)).To(BeTrue())
			}
		})
	}

	t.Run("other objects are untouched", func(t *testing.T) {
		g := NewWithT(t)
		s := newStorage(t, 1)
		other := Object{Kind: "GitRepository", Namespace: "ns", Name: "other"}
		keep := write(t, s, other, "other")
		arts := setup(t, s, 3)
		g.Expect(s.GC(o, arts[2])).To(Succeed())
		g.Expect(s.Has(keep)).To(BeTrue())
		g.Expect(s.Has(arts[0])).To(BeFalse())
	})

	t.Run("no folder", func(t *testing.T) {
		NewWithT(t).Expect(newStorage(t, 2).GC(Object{Kind: "GitRepository", Namespace: "ns", Name: "none"}, nil)).To(Succeed())
	})
}

func TestDelete(t *testing.T) {
	g := NewWithT(t)
	s := newStorage(t, 2)
	o := Object{Kind: "GitRepository", Namespace: "ns", Name: "app"}
	other := Object{Kind: "GitRepository", Namespace: "ns", Name: "app2"}
	a := write(t, s, o, "one")
	b := write(t, s, o, "two")
	c := write(t, s, other, "three")
	g.Expect(s.Delete(o)).To(Succeed())
	g.Expect(s.Has(a)).To(BeFalse())
	g.Expect(s.Has(b)).To(BeFalse())
	g.Expect(filepath.Join(s.Root, "gitrepository", "ns", "app")).NotTo(BeAnExistingFile())
	g.Expect(s.Has(c)).To(BeTrue())
	g.Expect(s.Delete(o)).To(Succeed(), "deleting twice")
}

func TestHandler(t *testing.T) {
	s := newStorage(t, 2)
	o := Object{Kind: "GitRepository", Namespace: "ns", Name: "app"}
	a := write(t, s, o, "served bytes")
	dir := filepath.Join(s.Root, filepath.FromSlash(Dir(o)))
	if err := os.WriteFile(filepath.Join(dir, ".tmp-123"), []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)

	tests := []struct {
		name, method, path string
		status             int
		body               string
	}{
		{"artifact", http.MethodGet, "/" + a.Path, http.StatusOK, "served bytes"},
		{"artifact HEAD", http.MethodHead, "/" + a.Path, http.StatusOK, ""},
		{"artifact through a cleaned path", http.MethodGet, "/gitrepository/ns/../ns/app/" + path.Base(a.Path), http.StatusOK, "served bytes"},
		{"missing artifact", http.MethodGet, "/gitrepository/ns/app/nope.tar.gz", http.StatusNotFound, ""},
		{"root", http.MethodGet, "/", http.StatusNotFound, ""},
		{"folder", http.MethodGet, "/gitrepository/ns/app/", http.StatusNotFound, ""},
		{"folder without slash", http.MethodGet, "/gitrepository/ns/app", http.StatusNotFound, ""},
		{"temporary file", http.MethodGet, "/gitrepository/ns/app/.tmp-123", http.StatusNotFound, ""},
		{"temporary file, escaped", http.MethodGet, "/gitrepository/ns/app/%2Etmp-123", http.StatusNotFound, ""},
		{"temporary file through a cleaned path", http.MethodGet, "/gitrepository/ns/app/x/../.tmp-123", http.StatusNotFound, ""},
		{"POST", http.MethodPost, "/" + a.Path, http.StatusMethodNotAllowed, ""},
		{"PUT", http.MethodPut, "/" + a.Path, http.StatusMethodNotAllowed, ""},
		{"DELETE", http.MethodDelete, "/" + a.Path, http.StatusMethodNotAllowed, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			req, err := http.NewRequestWithContext(t.Context(), tt.method, srv.URL+tt.path, nil)
			g.Expect(err).NotTo(HaveOccurred())
			// The path goes as written, not cleaned by the client.
			req.URL.Opaque = "//" + req.URL.Host + tt.path
			resp, err := srv.Client().Do(req)
			g.Expect(err).NotTo(HaveOccurred())
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(resp.StatusCode).To(Equal(tt.status), "body %q", body)
			if tt.status == http.StatusOK {
				g.Expect(string(body)).To(Equal(tt.body))
				return
			}
			g.Expect(string(body)).NotTo(ContainSubstring(".tar.gz"), "no listing")
			g.Expect(string(body)).NotTo(ContainSubstring("partial"))
		})
	}

	t.Run("the artifact URL", func(t *testing.T) {
		g := NewWithT(t)
		resp, err := srv.Client().Get(strings.Replace(a.URL, baseURL, srv.URL, 1))
		g.Expect(err).NotTo(HaveOccurred())
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		g.Expect(resp.StatusCode).To(Equal(http.StatusOK))
		g.Expect(fmt.Sprintf("sha256:%x", sha256.Sum256(body))).To(Equal(a.Digest))
	})
}

func TestPathsOutsideTheStorageAreRefused(t *testing.T) {
	g := NewWithT(t)
	s, err := New(t.TempDir(), "http://127.0.0.1", 2)
	g.Expect(err).NotTo(HaveOccurred())
	for _, p := range []string{"../x.tar.gz", "a/../../x.tar.gz", "/etc/passwd", "", "a//b"} {
		a := &meta.Artifact{Path: p}
		g.Expect(s.Has(a)).To(BeFalse(), p)
		_, err := s.Open(a)
		g.Expect(errors.Is(err, ErrIO)).To(BeTrue(), p)
		_, err = s.Adopt(Object{Kind: "GitRepository", Namespace: "n", Name: "x"}, a, "r")
		g.Expect(errors.Is(err, ErrIO)).To(BeTrue(), p)
	}
}

// A process killed mid-write leaves its temporary file; the next process's GC of that object
// removes it at once, not an hour later, and never a file it is writing itself.
func TestGCRemovesWhatAKilledWriteLeft(t *testing.T) {
	g := NewWithT(t)
	root := filepath.Join(t.TempDir(), "artifacts")
	o := Object{Kind: "GitRepository", Namespace: "ns", Name: "app"}
	dir := filepath.Join(root, filepath.FromSlash(Dir(o)))
	g.Expect(os.MkdirAll(dir, 0o755)).To(Succeed())
	killed := filepath.Join(dir, ".tmp-killed")
	g.Expect(os.WriteFile(killed, []byte("half an artifact"), 0o600)).To(Succeed())
	// Written a minute before this process opened the storage.
	past := time.Now().Add(-time.Minute)
	g.Expect(os.Chtimes(killed, past, past)).To(Succeed())

	s, err := New(root, baseURL, 2)
	g.Expect(err).NotTo(HaveOccurred())
	var during []string
	a, err := s.Write(o, "r", func(w io.Writer) error {
		// A GC while this write is under way keeps its temporary file.
		if err := s.GC(o, nil); err != nil {
			return err
		}
		during = files(t, s, o)
		_, err := io.WriteString(w, "whole")
		return err
	})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(during).To(HaveLen(1), "the write's own temporary file stays, the killed one goes: %v", during)
	g.Expect(during[0]).NotTo(Equal(".tmp-killed"))
	g.Expect(s.GC(o, a)).To(Succeed())
	g.Expect(files(t, s, o)).To(Equal([]string{path.Base(a.Path)}))
}
