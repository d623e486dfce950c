package release

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	helmrelease "helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage"
	"helm.sh/helm/v3/pkg/storage/driver"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/plumb-dev/plumb/shared/testing/testenv"
)

// countingTransport counts the reads of Secrets that reach the API server: Lists and Gets.
type countingTransport struct {
	mu          sync.Mutex
	lists, gets int
	rt          http.RoundTripper
}

func (c *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodGet {
		c.mu.Lock()
		switch {
		case strings.HasSuffix(req.URL.Path, "/secrets"):
			c.lists++
		case strings.Contains(req.URL.Path, "/secrets/"):
			c.gets++
		}
		c.mu.Unlock()
	}
	return c.rt.RoundTrip(req)
}

func (c *countingTransport) count() (lists, gets int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lists, c.gets
}

// TestStorageSecrets runs Helm's own Secret driver over storageSecrets against a real API
// server: after the first List, Helm's reads of the release come from what it listed and
// wrote, and any change the watch shows that it did not make sends them to the API server.
func TestStorageSecrets(t *testing.T) {
	env, err := testenv.Start(testenv.Options{CRDDirs: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	ctx := context.Background()
	admin, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	counter := &countingTransport{}
	cfg := rest.CopyConfig(env.Config)
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { counter.rt = rt; return counter }
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ns := "storage"
	if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The watch: the release's Secrets as the API server has them now, or as they were at a
	// moment (a watch behind), or not synced.
	type view struct {
		objs []metav1.Object
		rv   string
	}
	current := func() view {
		l, err := admin.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{LabelSelector: "owner=helm,name=web"})
		if err != nil {
			t.Fatal(err)
		}
		objs := make([]metav1.Object, len(l.Items))
		for i := range l.Items {
			objs[i] = &l.Items[i]
		}
		return view{objs, l.ResourceVersion}
	}
	var frozen *view
	synced := true
	watched := func() ([]metav1.Object, string, bool) {
		v := current()
		if frozen != nil {
			v = *frozen
		}
		return v.objs, v.rv, synced
	}
	rel := func(v int, st helmrelease.Status) *helmrelease.Release {
		return &helmrelease.Release{Name: "web", Namespace: ns, Version: v, Info: &helmrelease.Info{Status: st}}
	}
	newStore := func(w Watched) *storage.Storage {
		s := storage.Init(driver.NewSecrets(newStorageSecrets(cs.CoreV1().Secrets(ns), "web", w)))
		s.MaxHistory = 3
		return s
	}
	// other is another writer of the release's storage.
	other := storage.Init(driver.NewSecrets(admin.CoreV1().Secrets(ns)))
	history := func(s *storage.Storage) string {
		t.Helper()
		h, err := s.History("web")
		if err != nil && err != driver.ErrReleaseNotFound {
			t.Fatal(err)
		}
		var out []string
		for _, r := range h {
			out = append(out, fmt.Sprintf("%s:%d", r.Info.Status, r.Version))
		}
		return strings.Join(out, ",")
	}
	// reads runs f and fails unless it made exactly lists Lists and gets Gets of Secrets.
	reads := func(what string, lists, gets int, f func()) {
		t.Helper()
		l0, g0 := counter.count()
		f()
		l1, g1 := counter.count()
		if l1-l0 != lists || g1-g0 != gets {
			t.Fatalf("%s: %d Lists and %d Gets of Secrets, want %d and %d", what, l1-l0, g1-g0, lists, gets)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	expect := func(what, got, want string) {
		t.Helper()
		if got != want {
			t.Fatalf("%s: history %q, want %q", what, got, want)
		}
	}

	s := newStore(watched)
	reads("the first History", 1, 0, func() { expect("a new release", history(s), "") })
	// An install as Helm makes it: the name's availability, the history trimmed before the
	// new revision, the revision created pending then updated deployed.
	reads("an install", 0, 0, func() {
		expect("before the install", history(s), "")
		must(s.Create(rel(1, helmrelease.StatusPendingInstall)))
		must(s.Update(rel(1, helmrelease.StatusDeployed)))
		expect("after the install", history(s), "deployed:1")
	})
	// Three more revisions: MaxHistory 3 finds the deployed one and deletes the oldest (read,
	// then deleted).
	reads("revisions made and trimmed", 0, 0, func() {
		for v := 2; v <= 4; v++ {
			must(s.Create(rel(v, helmrelease.StatusDeployed)))
		}
		expect("after trimming", history(s), "deployed:2,deployed:3,deployed:4")
		d, err := s.Deployed("web")
		if err != nil || d.Version != 4 {
			t.Fatalf("the deployed revision: %v, %v", d, err)
		}
	})

	// A watch behind this client's writes (it still shows revision 2 as first read, and not
	// the revisions made since) is no other writer.
	v := current()
	frozen = &v
	reads("a watch behind this client's own writes", 0, 0, func() {
		must(s.Update(rel(2, helmrelease.StatusSuperseded)))
		must(s.Create(rel(5, helmrelease.StatusDeployed)))
		expect("behind", history(s), "deployed:3,deployed:4,deployed:5")
	})
	frozen = nil

	// Another writer's change, once the watch shows it, is read from the API server.
	sec, err := admin.CoreV1().Secrets(ns).Get(ctx, "sh.helm.release.v1.web.v5", metav1.GetOptions{})
	must(err)
	sec.Labels["status"] = "failed"
	_, err = admin.CoreV1().Secrets(ns).Update(ctx, sec, metav1.UpdateOptions{})
	must(err)
	reads("another writer's update", 1, 0, func() {
		h, err := s.History("web")
		must(err)
		if len(h) != 3 || h[2].Labels["status"] != "failed" {
			t.Fatalf("the other writer's label is not in the history read: %v", h)
		}
	})
	// So are its deletion and its new revision.
	must(admin.CoreV1().Secrets(ns).Delete(ctx, "sh.helm.release.v1.web.v3", metav1.DeleteOptions{}))
	reads("another writer's deletion", 1, 0, func() { expect("deleted", history(s), "deployed:4,deployed:5") })
	must(other.Create(rel(6, helmrelease.StatusDeployed)))
	reads("another writer's revision", 1, 0, func() { expect("created", history(s), "deployed:4,deployed:5,deployed:6") })

	// A revision this client made, which the watch showed and then saw another writer delete.
	must(s.Create(rel(7, helmrelease.StatusDeployed))) // trims revision 4
	expect("made", history(s), "deployed:5,deployed:6,deployed:7")
	_, err = other.Delete("web", 7)
	must(err)
	reads("another writer's deletion of this client's revision", 1, 0, func() { expect("", history(s), "deployed:5,deployed:6") })
	// A revision this client deleted, made again by another writer.
	_, err = s.Delete("web", 5)
	must(err)
	must(other.Create(rel(5, helmrelease.StatusDeployed)))
	reads("another writer's revision where this client deleted one", 1, 0, func() { expect("", history(s), "deployed:5,deployed:6") })

	// A watch not synced tells nothing.
	synced = false
	reads("a watch not synced", 2, 0, func() { history(s); history(s) })
	synced = true

	// A write refused (the revision exists: another writer made it) drops what was held; a
	// List of the deployed revisions alone does not fill it again.
	if err := s.Create(rel(6, helmrelease.StatusDeployed)); err != driver.ErrReleaseExists {
		t.Fatalf("creating an existing revision: %v", err)
	}
	reads("after a refused write", 2, 0, func() {
		if _, err := s.Deployed("web"); err != nil {
			t.Fatal(err)
		}
		history(s)
	})

	// Without a watch (storage in another cluster) every read is a List.
	s = newStore(nil)
	reads("no watch", 2, 0, func() { history(s); history(s) })
}
