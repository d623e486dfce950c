package storage

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fluxcd/pkg/apis/meta"
	. "github.com/onsi/gomega"
)

// The review finding of issue 20: a no-op reconcile took a file of the right size for the
// artifact. Now its content must match the digest, hashed once per process and again only after
// the file changed on disk.
func TestHasChecksTheDigest(t *testing.T) {
	o := Object{Kind: "GitRepository", Namespace: "ns", Name: "app"}
	setup := func(t *testing.T) (*Storage, *meta.Artifact, string) {
		s := newStorage(t, 2)
		a := write(t, s, o, "the artifact's content")
		return s, a, filepath.Join(s.Root, filepath.FromSlash(a.Path))
	}

	t.Run("a file written by this process is not hashed again", func(t *testing.T) {
		g := NewWithT(t)
		s, a, _ := setup(t)
		for range 3 {
			g.Expect(s.Has(a)).To(BeTrue())
		}
		g.Expect(s.hashed.Load()).To(BeZero())
	})

	t.Run("a file from an earlier process is hashed once", func(t *testing.T) {
		g := NewWithT(t)
		s, a, _ := setup(t)
		restarted, err := New(s.Root, baseURL, 2)
		g.Expect(err).NotTo(HaveOccurred())
		for range 3 {
			g.Expect(restarted.Has(a)).To(BeTrue())
		}
		g.Expect(restarted.hashed.Load()).To(BeEquivalentTo(1))
	})

	t.Run("corrupted in place, same size", func(t *testing.T) {
		g := NewWithT(t)
		s, a, file := setup(t)
		g.Expect(s.Has(a)).To(BeTrue())
		g.Expect(os.WriteFile(file, []byte(strings.Repeat("x", int(*a.Size))), 0o644)).To(Succeed())
		g.Expect(s.Has(a)).To(BeFalse())
		g.Expect(s.Has(a)).To(BeFalse(), "still refused on the next check")
	})

	t.Run("replaced by another file of the same size", func(t *testing.T) {
		g := NewWithT(t)
		s, a, file := setup(t)
		g.Expect(s.Has(a)).To(BeTrue())
		other := filepath.Join(filepath.Dir(file), "other")
		g.Expect(os.WriteFile(other, []byte(strings.Repeat("y", int(*a.Size))), 0o644)).To(Succeed())
		g.Expect(os.Rename(other, file)).To(Succeed())
		g.Expect(s.Has(a)).To(BeFalse())
	})

	t.Run("written again, it is good again", func(t *testing.T) {
		g := NewWithT(t)
		s, a, file := setup(t)
		g.Expect(os.WriteFile(file, []byte(strings.Repeat("x", int(*a.Size))), 0o644)).To(Succeed())
		g.Expect(s.Has(a)).To(BeFalse())
		again := write(t, s, o, "the artifact's content")
		g.Expect(again.Path).To(Equal(a.Path))
		g.Expect(s.Has(a)).To(BeTrue())
	})

	t.Run("a digest that is not sha256 cannot be checked", func(t *testing.T) {
		g := NewWithT(t)
		s, a, _ := setup(t)
		other := *a
		other.Digest = "sha512:" + strings.Repeat("0", 128)
		g.Expect(s.Has(&other)).To(BeFalse())
	})

	t.Run("a corrupted file is not adopted", func(t *testing.T) {
		g := NewWithT(t)
		s, a, file := setup(t)
		g.Expect(os.WriteFile(file, []byte(strings.Repeat("x", int(*a.Size))), 0o644)).To(Succeed())
		_, err := s.Adopt(Object{Kind: "GitRepository", Namespace: "ns", Name: "other"}, a, "r")
		g.Expect(err).To(MatchError(ContainSubstring("does not match its digest")))
	})

	t.Run("an adopted file is trusted without hashing it", func(t *testing.T) {
		g := NewWithT(t)
		s, a, _ := setup(t)
		b, err := s.Adopt(Object{Kind: "GitRepository", Namespace: "ns", Name: "other"}, a, "r")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(s.Has(a)).To(BeTrue())
		g.Expect(s.Has(b)).To(BeTrue())
		g.Expect(s.hashed.Load()).To(BeZero())
	})

	t.Run("a corrupted file is not served", func(t *testing.T) {
		g := NewWithT(t)
		s, a, file := setup(t)
		srv := httptest.NewServer(s.Handler())
		defer srv.Close()
		get := func() (int, string) {
			resp, err := srv.Client().Get(srv.URL + "/" + a.Path)
			g.Expect(err).NotTo(HaveOccurred())
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(body)
		}
		code, body := get()
		g.Expect(code).To(Equal(http.StatusOK))
		g.Expect(body).To(Equal("the artifact's content"))

		g.Expect(os.WriteFile(file, []byte(strings.Repeat("x", int(*a.Size))), 0o644)).To(Succeed())
		code, body = get()
		g.Expect(code).To(Equal(http.StatusInternalServerError))
		g.Expect(body).To(ContainSubstring("does not match its digest"))
		g.Expect(body).NotTo(ContainSubstring("xxx"))

		write(t, s, o, "the artifact's content")
		code, body = get()
		g.Expect(code).To(Equal(http.StatusOK))
		g.Expect(body).To(Equal("the artifact's content"))
	})
}
