package release

import (
	"context"
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

// countingTransport counts the Lists of Secrets that reach the API server.
type countingTransport struct {
	mu    sync.Mutex
	lists int
	rt    http.RoundTripper
}

func (c *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/secrets") {
		c.mu.Lock()
		c.lists++
		c.mu.Unlock()
	}
	return c.rt.RoundTrip(req)
}

func (c *countingTransport) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lists
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
	// moment (a watch behind).
	current := func() []metav1.Object {
		l, err := admin.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{LabelSelector: "owner=helm,name=web"})
		if err != nil {
			t.Fatal(err)
		}
		objs := make([]metav1.Object, len(l.Items))
		for i := range l.Items {
			objs[i] = &l.Items[i]
		}
		return objs
	}
	var frozen []metav1.Object
	behind := false
	watched := func() ([]metav1.Object, bool) {
		if behind {
			return frozen, true
		}
		return current(), true
	}
	rel := func(v int, st helmrelease.Status) *helmrelease.Release {
		return &helmrelease.Release{Name: "web", Namespace: ns, Version: v, Info: &helmrelease.Info{Status: st}}
	}
	newStore := func(w Watched) *storage.Storage {
		s := storage.Init(driver.NewSecrets(newStorageSecrets(cs.CoreV1().Secrets(ns), "web", w)))
		s.MaxHistory = 3
		return s
	}
	history := func(s *storage.Storage) []string {
		t.Helper()
		h, err := s.History("web")
		if err != nil && err != driver.ErrReleaseNotFound {
			t.Fatal(err)
		}
		var out []string
		for _, r := range h {
			out = append(out, r.Info.Status.String()+":"+string(rune('0'+r.Version)))
		}
		return out
	}
	expectLists := func(want int, what string) {
		t.Helper()
		if got := counter.count(); got != want {
			t.Fatalf("%s: %d Lists of Secrets so far, want %d", what, got, want)
		}
	}

	s := newStore(watched)
	if h := history(s); len(h) != 0 {
		t.Fatalf("history of a new release: %v", h)
	}
	expectLists(1, "the first History")
	// An install as Helm makes it: the name's availability, the history trimmed before the
	// new revision, the revision created pending then updated deployed.
	if h := history(s); len(h) != 0 {
		t.Fatalf("history: %v", h)
	}
	if err := s.Create(rel(1, helmrelease.StatusPendingInstall)); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(rel(1, helmrelease.StatusDeployed)); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(history(s), ","); got != "deployed:1" {
		t.Fatalf("history after the install: %s", got)
	}
	expectLists(1, "an install's reads after the first")

	// Three more revisions: MaxHistory 3 deletes the oldest (read, then deleted) without a List.
	for v := 2; v <= 4; v++ {
		if err := s.Create(rel(v, helmrelease.StatusDeployed)); err != nil {
			t.Fatal(err)
		}
	}
	if got := strings.Join(history(s), ","); got != "deployed:2,deployed:3,deployed:4" {
		t.Fatalf("history after trimming: %s", got)
	}
	d, err := s.Deployed("web")
	if err != nil || d.Version != 4 {
		t.Fatalf("the deployed revision: %v, %v", d, err)
	}
	expectLists(1, "revisions made and trimmed")

	// A watch behind this client's writes (it still shows revision 2 as first read, and not
	// revisions made since) is no other writer.
	frozen, behind = current(), true
	if err := s.Update(rel(2, helmrelease.StatusSuperseded)); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(rel(5, helmrelease.StatusDeployed)); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(history(s), ","); got != "deployed:3,deployed:4,deployed:5" {
		t.Fatalf("history: %s", got)
	}
	expectLists(1, "a watch behind this client's own writes")
	behind = false

	// Another writer's change, once the watch shows it, is read from the API server.
	sec, err := admin.CoreV1().Secrets(ns).Get(ctx, "sh.helm.release.v1.web.v5", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sec.Labels["status"] = "failed"
	if _, err := admin.CoreV1().Secrets(ns).Update(ctx, sec, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	h, err := s.History("web")
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 3 || h[2].Labels["status"] != "failed" {
		t.Fatalf("the other writer's label is not in the history read: %v", h)
	}
	expectLists(2, "another writer's update")

	// So is another writer's deletion.
	if err := admin.CoreV1().Secrets(ns).Delete(ctx, "sh.helm.release.v1.web.v3", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(history(s), ","); got != "deployed:4,deployed:5" {
		t.Fatalf("history after another writer's deletion: %s", got)
	}
	expectLists(3, "another writer's deletion")

	// A write refused (the revision exists: another writer made it) drops what was held.
	if err := s.Create(rel(5, helmrelease.StatusDeployed)); err != driver.ErrReleaseExists {
		t.Fatalf("creating an existing revision: %v", err)
	}
	history(s)
	expectLists(4, "a refused write")

	// Without a watch (storage in another cluster) every read is a List.
	s = newStore(nil)
	history(s)
	history(s)
	expectLists(6, "no watch")
}
