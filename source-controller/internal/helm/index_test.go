package helm

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/repo"
	"sigs.k8s.io/yaml"
)

// sdkIndex writes an index.yaml with Helm's own repo code, for versions of one chart.
func sdkIndex(t *testing.T, generated time.Time, name string, versions ...string) []byte {
	t.Helper()
	idx := repo.NewIndexFile()
	for _, v := range versions {
		md := &chart.Metadata{APIVersion: chart.APIVersionV2, Name: name, Version: v}
		if err := idx.MustAdd(md, name+"-"+v+".tgz", "https://charts.example.com", "sha256:0"); err != nil {
			t.Fatal(err)
		}
	}
	idx.Generated = generated
	idx.SortEntries()
	data, err := yaml.Marshal(idx)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestParseIndex(t *testing.T) {
	g := NewWithT(t)
	a := sdkIndex(t, time.Unix(1, 0), "web", "1.0.0", "1.2.0", "0.9.0")
	b := sdkIndex(t, time.Unix(2, 0), "web", "0.9.0", "1.2.0", "1.0.0")
	ia, err := ParseIndex(a)
	g.Expect(err).NotTo(HaveOccurred())
	ib, err := ParseIndex(b)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ia.Digest).To(Equal(ib.Digest), "order and generation time do not change the revision")
	g.Expect(ia.Charts).To(Equal(1))
	g.Expect(ia.Versions).To(Equal(3))

	again, err := ParseIndex(ia.JSON)
	g.Expect(err).NotTo(HaveOccurred(), "the normalized form reads back")
	g.Expect(again.Digest).To(Equal(ia.Digest))
	var back repo.IndexFile
	g.Expect(yaml.Unmarshal(ia.JSON, &back)).To(Succeed(), "JSON is YAML: Helm tools read it")
	g.Expect(back.Entries["web"][0].Version).To(Equal("1.2.0"), "highest version first")

	cases := []struct {
		name, index, msg string
	}{
		{"empty", "", "index.yaml is empty"},
		{"broken YAML", "apiVersion: v1\nentries:\n  web: [\n", "index.yaml: error converting YAML to JSON"},
		{"no apiVersion", "entries: {}\n", "has no apiVersion"},
		{"no entries", "apiVersion: v1\n", "has no entries"},
		{"entries of the wrong shape", "apiVersion: v1\nentries: [1, 2]\n", "index.yaml:"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseIndex([]byte(c.index))
			if !errors.Is(err, ErrIndex) || !strings.Contains(err.Error(), c.msg) {
				t.Errorf("ParseIndex(%q) = %v, want ErrIndex with %q", c.index, err, c.msg)
			}
		})
	}

	mixed := "apiVersion: v1\nentries:\n  web:\n  - {name: web, version: 1.0.0, urls: [web-1.0.0.tgz]}\n  - {name: web, version: not-a-version}\n  - null\n  broken:\n  - {version: 1.0.0}\n"
	idx, err := ParseIndex([]byte(mixed))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(idx.Charts).To(Equal(1))
	g.Expect(idx.Versions).To(Equal(1))
	g.Expect(idx.Skipped).To(Equal(3))
}

func TestFetchIndex(t *testing.T) {
	g := NewWithT(t)
	index := sdkIndex(t, time.Now(), "web", "1.0.0")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "reader" || p != "pa55" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/charts/index.yaml":
			_, _ = w.Write(index)
		case "/big/index.yaml":
			_, _ = w.Write([]byte(strings.Repeat("#", 2000)))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	creds := Credentials{Username: "reader", Password: "pa55"}

	data, err := FetchIndex(ctx, sharedClient.Load(), srv.URL+"/charts/", creds, 1<<20)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(data).To(Equal(index))

	_, err = FetchIndex(ctx, sharedClient.Load(), srv.URL+"/charts", Credentials{Username: "reader", Password: "wrong"}, 1<<20)
	g.Expect(errors.Is(err, ErrAuth)).To(BeTrue(), "%v", err)
	g.Expect(err.Error()).NotTo(ContainSubstring("wrong"))
	_, err = FetchIndex(ctx, sharedClient.Load(), srv.URL+"/missing", creds, 1<<20)
	g.Expect(errors.Is(err, ErrFetch)).To(BeTrue(), "%v", err)
	g.Expect(err.Error()).To(ContainSubstring("404"))
	_, err = FetchIndex(ctx, sharedClient.Load(), srv.URL+"/big", creds, 1000)
	g.Expect(errors.Is(err, ErrIndex)).To(BeTrue(), "%v", err)
	g.Expect(err.Error()).To(ContainSubstring("over the limit of 1000"))
	_, err = FetchIndex(ctx, sharedClient.Load(), "https://user:hunter2@charts.example.com", creds, 1000)
	g.Expect(errors.Is(err, ErrInvalid)).To(BeTrue(), "%v", err)
	g.Expect(err.Error()).NotTo(ContainSubstring("hunter2"))
}

// Any bytes: no panic (parsed or loaded for lookups), and an accepted index normalizes to a
// fixed point.
func FuzzParseIndex(f *testing.F) {
	f.Add([]byte("apiVersion: v1\nentries:\n  web:\n  - {name: web, version: 1.0.0}\n"))
	f.Add([]byte(`{"apiVersion":"v1","entries":{"a":[{"name":"a","version":"0.1.0"},null]}}`))
	f.Add([]byte("apiVersion: v1\nentries: {x: [{name: x, version: '1', dependencies: [{name: d}, {name: d}]}]}\n"))
	f.Add([]byte("apiVersion: v1\nentries:\n  web: [null, {urls: [x]}, {name: web, version: 1.0.0}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		// A dependency's index is read with LoadIndex and looked up as it came: no panic.
		if loaded, err := LoadIndex(data); err == nil {
			for name := range loaded.Entries {
				_, _ = SelectVersion(loaded, name, "*")
			}
		}
		idx, err := ParseIndex(data)
		if err != nil {
			return
		}
		again, err := ParseIndex(idx.JSON)
		if err != nil {
			t.Fatalf("normalized index refused: %v", err)
		}
		if again.Digest != idx.Digest {
			t.Fatalf("normalizing twice changed the index")
		}
	})
}
