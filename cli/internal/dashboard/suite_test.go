package dashboard

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/plumb-dev/plumb/shared/testing/testenv"
)

// The one control plane of this package, and a dashboard on it as cluster admin.
var (
	env   *testenv.Env
	k8s   client.Client
	admin *httptest.Server
)

const timeout = 30 * time.Second

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	ctrllog.SetLogger(logr.Discard())
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		panic(err)
	}
	var err error
	if env, err = testenv.Start(testenv.Options{Scheme: scheme}); err != nil {
		panic(err)
	}
	defer func() { _ = env.Stop() }()
	k8s = env.Client
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, err := start(ctx, env.Config, Config{})
	if err != nil {
		panic(err)
	}
	admin = httptest.NewServer(srv)
	defer admin.Close()
	return m.Run()
}

// start runs a dashboard on the control plane as the identity of cfg.
func start(ctx context.Context, cfg *rest.Config, c Config) (*Server, error) {
	cfg = rest.CopyConfig(cfg)
	cl, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		return nil, err
	}
	c.REST, c.Client = cfg, cl
	if c.Namespace == "" {
		c.Namespace = "default"
	}
	if c.Timeout == 0 {
		c.Timeout = 20 * time.Second
	}
	return New(ctx, c)
}

func newNamespace(g Gomega) string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "dash-"}}
	g.Expect(k8s.Create(context.Background(), ns)).To(Succeed())
	return ns.Name
}

// object creates a Plumb object with a status, as its controller would have written it.
func object(g Gomega, apiVersion, kind, ns, name string, spec, status map[string]any) *unstructured.Unstructured {
	ctx := context.Background()
	u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": apiVersion, "kind": kind,
		"metadata": map[string]any{"name": name, "namespace": ns}, "spec": spec}}
	g.Expect(k8s.Create(ctx, u)).To(Succeed())
	if status != nil {
		status["observedGeneration"] = u.GetGeneration()
		u.Object["status"] = status
		g.Expect(k8s.Status().Update(ctx, u)).To(Succeed())
	}
	return u
}

func ready(status, reason, message string) []any {
	return []any{map[string]any{"type": "Ready", "status": status, "reason": reason, "message": message,
		"lastTransitionTime": time.Now().UTC().Format(time.RFC3339)}}
}

func gitRepository(g Gomega, ns, name string, artifactURL, digest string) *unstructured.Unstructured {
	return object(g, "source.plumb.dev/v1beta1", "GitRepository", ns, name,
		map[string]any{"url": "https://example.invalid/" + name + ".git", "interval": "5m"},
		map[string]any{"conditions": ready("True", "Succeeded", "stored artifact for revision main@sha1:1a2b3c"),
			"artifact": map[string]any{"revision": "main@sha1:1a2b3c", "digest": digest, "path": "p", "url": artifactURL,
				"lastUpdateTime": time.Now().UTC().Format(time.RFC3339)}})
}

func kustomization(g Gomega, ns, name string, spec map[string]any, readyStatus, reason, message string, inventory ...string) *unstructured.Unstructured {
	full := map[string]any{"sourceRef": map[string]any{"kind": "GitRepository", "name": "repo"}, "path": "./apps", "interval": "5m", "prune": true}
	for k, v := range spec {
		full[k] = v
	}
	entries := make([]any, len(inventory))
	for i, id := range inventory {
		entries[i] = map[string]any{"id": id, "v": "v1"}
	}
	return object(g, "apply.plumb.dev/v1beta1", "Kustomization", ns, name, full,
		map[string]any{"conditions": ready(readyStatus, reason, message), "lastAppliedRevision": "main@sha1:1a2b3c",
			"inventory": map[string]any{"entries": entries},
			"history":   []any{map[string]any{"revision": "main@sha1:1a2b3c", "result": reason, "duration": "1.2s", "time": time.Now().UTC().Format(time.RFC3339)}}})
}

// get fetches a page of srv and returns its status and body.
func get(g Gomega, srv *httptest.Server, path string) (int, string) {
	resp, err := http.Get(srv.URL + path)
	g.Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	g.Expect(err).NotTo(HaveOccurred())
	return resp.StatusCode, string(b)
}

// page polls a page until it contains every string, as the store catches up with the watches.
func page(g Gomega, srv *httptest.Server, path string, want ...string) string {
	var body string
	g.Eventually(func(g Gomega) {
		var code int
		code, body = get(g, srv, path)
		g.Expect(code).To(Equal(http.StatusOK), body)
		for _, w := range want {
			g.Expect(body).To(ContainSubstring(w))
		}
	}, timeout, 100*time.Millisecond).Should(Succeed())
	return body
}

// between returns the text of body from the first from to the next to.
func between(body, from, to string) (string, error) {
	_, rest, ok := strings.Cut(body, from)
	if !ok {
		return "", errors.New("no " + from)
	}
	in, _, ok := strings.Cut(rest, to)
	if !ok {
		return "", errors.New("no " + to + " after " + from)
	}
	return in, nil
}
