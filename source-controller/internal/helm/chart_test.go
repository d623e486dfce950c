package helm

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/repo"

	"github.com/plumb-dev/plumb/source-controller/internal/helm/helmtest"
)

func TestSelectVersion(t *testing.T) {
	idx := repo.NewIndexFile()
	for _, v := range []string{"1.0.0", "1.10.0", "1.9.0", "2.0.0-rc.1", "0.1.0"} {
		if err := idx.MustAdd(&chart.Metadata{APIVersion: "v2", Name: "web", Version: v}, "web-"+v+".tgz", "", ""); err != nil {
			t.Fatal(err)
		}
	}
	idx.SortEntries()
	cases := []struct{ rng, want, err string }{
		{"*", "1.10.0", ""},
		{"~1.9", "1.9.0", ""},
		{">=2.0.0-0", "2.0.0-rc.1", ""},
		{"1.0.0", "1.0.0", ""},
		{">=3", "", "highest versions: 2.0.0-rc.1, 1.10.0, 1.9.0, 1.0.0, 0.1.0"},
		{"not a range", "", "is not a semver range"},
	}
	for _, c := range cases {
		cv, err := SelectVersion(idx, "web", c.rng)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("SelectVersion(%q) = %v, want error with %q", c.rng, err, c.err)
			}
			continue
		}
		if err != nil || cv.Version != c.want {
			t.Errorf("SelectVersion(%q) = %v %v, want %s", c.rng, cv, err, c.want)
		}
	}
	if _, err := SelectVersion(idx, "api", "*"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a chart not in the index: %v", err)
	}
}

func packaged(t *testing.T, c *chart.Chart) []byte {
	t.Helper()
	p, err := helmtest.Package(t.TempDir(), c)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestValuesFilesAndDeterministicPackage(t *testing.T) {
	g := NewWithT(t)
	ch, err := Load(packaged(t, helmtest.Chart("web", "1.0.0")))
	g.Expect(err).NotTo(HaveOccurred())
	used, err := MergeValuesFiles(ch, []string{"values-prod.yaml", "values-none.yaml"}, true)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(used).To(Equal([]string{"values-prod.yaml"}))
	g.Expect(ch.Values).To(HaveKeyWithValue("greeting", "hello prod"))

	var a, b bytes.Buffer
	g.Expect(Package(ch, &a)).To(Succeed())
	g.Expect(Package(ch, &b)).To(Succeed())
	g.Expect(a.Bytes()).To(Equal(b.Bytes()), "same chart, same bytes")
	back, err := Load(a.Bytes())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(back.Values).To(HaveKeyWithValue("replicas", BeNumerically("==", 3)))

	_, err = MergeValuesFiles(ch, []string{"values-none.yaml"}, false)
	g.Expect(errors.Is(err, ErrPackage)).To(BeTrue())
}

func TestLoadRefusesUnsafeCharts(t *testing.T) {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, f := range []struct{ name, body string }{
		{"web/Chart.yaml", "apiVersion: v2\nname: web\nversion: 1.0.0\n"},
		{"web/../../etc/passwd", "x"},
	} {
		_ = tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.body))})
		_, _ = tw.Write([]byte(f.body))
	}
	_ = tw.Close()
	_ = gz.Close()
	if _, err := Load(buf.Bytes()); !errors.Is(err, ErrPackage) {
		t.Fatalf("Load of a chart with a parent path = %v, want ErrPackage", err)
	}
	if _, err := Load([]byte("not a tarball")); !errors.Is(err, ErrPackage) {
		t.Fatalf("Load of garbage = %v, want ErrPackage", err)
	}
}

func TestDownload(t *testing.T) {
	g := NewWithT(t)
	data := packaged(t, helmtest.Chart("web", "1.0.0"))
	sum := sha256.Sum256(data)
	var sawAuth []string
	cdn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _, ok := r.BasicAuth()
		sawAuth = append(sawAuth, r.URL.Path+":"+map[bool]string{true: "auth", false: "none"}[ok])
		_, _ = w.Write(data)
	}))
	defer cdn.Close()
	repoSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _, ok := r.BasicAuth()
		sawAuth = append(sawAuth, r.URL.Path+":"+map[bool]string{true: "auth", false: "none"}[ok])
		_, _ = w.Write(data)
	}))
	defer repoSrv.Close()
	creds := Credentials{Username: "u", Password: "p"}
	ctx := context.Background()
	relative := &repo.ChartVersion{Metadata: &chart.Metadata{Name: "web", Version: "1.0.0"}, URLs: []string{"web-1.0.0.tgz"}, Digest: hex.EncodeToString(sum[:])}
	elsewhere := &repo.ChartVersion{Metadata: &chart.Metadata{Name: "web", Version: "1.0.0"}, URLs: []string{cdn.URL + "/web-1.0.0.tgz"}}

	got, err := Download(ctx, sharedClient.Load(), repoSrv.URL+"/stable", relative, creds, false, 1<<20)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got).To(Equal(data))
	_, err = Download(ctx, sharedClient.Load(), repoSrv.URL+"/stable", elsewhere, creds, false, 1<<20)
	g.Expect(err).NotTo(HaveOccurred())
	_, err = Download(ctx, sharedClient.Load(), repoSrv.URL+"/stable", elsewhere, creds, true, 1<<20)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(sawAuth).To(Equal([]string{"/stable/web-1.0.0.tgz:auth", "/web-1.0.0.tgz:none", "/web-1.0.0.tgz:auth"}),
		"credentials go to another host only with passCredentials")

	tampered := *relative
	tampered.Digest = strings.Repeat("0", 64)
	_, err = Download(ctx, sharedClient.Load(), repoSrv.URL+"/stable", &tampered, creds, false, 1<<20)
	g.Expect(errors.Is(err, ErrPackage)).To(BeTrue())
	g.Expect(err.Error()).To(ContainSubstring("the index says"))
	_, err = Download(ctx, sharedClient.Load(), repoSrv.URL, relative, creds, false, 10)
	g.Expect(err).To(MatchError(ContainSubstring("over the limit of 10 bytes")))
}

func TestDependenciesStayInTheSource(t *testing.T) {
	g := NewWithT(t)
	root := t.TempDir()
	app := filepath.Join(root, "app")
	g.Expect(os.MkdirAll(filepath.Join(app, "templates"), 0o755)).To(Succeed())
	g.Expect(os.WriteFile(filepath.Join(app, "Chart.yaml"), []byte("apiVersion: v2\nname: app\nversion: 0.1.0\ndependencies:\n- name: out\n  version: 0.1.0\n  repository: file://../../outside\n"), 0o644)).To(Succeed())
	ch, err := LoadDir(app)
	g.Expect(err).NotTo(HaveOccurred())
	err = (&Dependencies{Root: root}).Resolve(context.Background(), ch, app)
	g.Expect(errors.Is(err, ErrPackage)).To(BeTrue())
	g.Expect(err.Error()).To(ContainSubstring("leaves the source"))
}

func TestDependencyCycleIsRefused(t *testing.T) {
	g := NewWithT(t)
	root := t.TempDir()
	for name, dep := range map[string]string{"a": "file://../b", "b": "file://../a"} {
		dir := filepath.Join(root, name)
		g.Expect(os.MkdirAll(dir, 0o755)).To(Succeed())
		other := strings.TrimPrefix(dep, "file://../")
		g.Expect(os.WriteFile(filepath.Join(dir, "Chart.yaml"), []byte("apiVersion: v2\nname: "+name+"\nversion: 0.1.0\ndependencies:\n- name: "+other+"\n  repository: "+dep+"\n"), 0o644)).To(Succeed())
	}
	self := filepath.Join(root, "self")
	g.Expect(os.MkdirAll(self, 0o755)).To(Succeed())
	g.Expect(os.WriteFile(filepath.Join(self, "Chart.yaml"), []byte("apiVersion: v2\nname: self\nversion: 0.1.0\ndependencies:\n- name: again\n  repository: file://.\n"), 0o644)).To(Succeed())
	for _, dir := range []string{filepath.Join(root, "a"), self} {
		ch, err := LoadDir(dir)
		g.Expect(err).NotTo(HaveOccurred())
		err = (&Dependencies{Root: root}).Resolve(context.Background(), ch, dir)
		g.Expect(errors.Is(err, ErrPackage)).To(BeTrue(), "%v", err)
		g.Expect(err.Error()).To(ContainSubstring("leads back to"))
	}
}
