//go:build e2e

// Package e2e runs the controllers as built binaries, as a user would: the local control plane
// (with kube-controller-manager), every controller as a process, and Git servers and registries on
// loopback. Each test pushes commits and watches the cluster follow them.
package e2e

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/hack/internal/local"
	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
)

const timeout = 90 * time.Second

// sourceShardLabel marks the sources that a test's own source-controller reconciles (started
// with a --watch-label-selector on it and flags of its own); the shared source-controller leaves
// them alone.
const sourceShardLabel = "e2e.plumb.dev/source-controller"

var (
	bed          *local.Bed
	receiverAddr string // notification-controller's webhook server
)

func TestMain(m *testing.M) {
	log.SetOutput(io.Discard) // the test Git server logs every request
	var err error
	if bed, err = local.StartBed("plumb-e2e-", true); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	if _, err = bed.StartSourceController("--artifact-retention", "2", "--watch-label-selector=!"+sourceShardLabel); err == nil {
		_, err = bed.StartController("apply-controller", "--no-remote-bases")
	}
	if err == nil {
		_, err = bed.StartController("helm-controller")
	}
	if err == nil {
		_, err = bed.StartController("image-automation", "--storage-path", filepath.Join(bed.Dir, "image-data"))
	}
	if err == nil {
		if receiverAddr, err = local.FreeAddr(); err == nil {
			_, err = bed.StartController("notification-controller", "--receiver-addr", receiverAddr, "--provider-allow-cidr=127.0.0.1/32")
		}
	}
	if err != nil {
		bed.Stop()
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	code := m.Run()
	bed.Stop()
	os.Exit(code)
}

// app is a small application: a Deployment scaled to 0 (so that it is healthy without a
// kubelet), a Service and a ConfigMap.
func app(value string, withService bool) map[string]string {
	files := map[string]string{
		"apps/web/deployment.yaml": `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 0
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: registry.example.invalid/web:1.0.0
`,
		"apps/web/config.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\ndata:\n  greeting: \"" + value + "\"\n",
	}
	if withService {
		files["apps/web/service.yaml"] = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  selector: {app: web}\n  ports: [{port: 80}]\n"
	}
	return files
}

// request annotates an object so that its controller reconciles it now, as a webhook receiver
// or `plumb reconcile` would.
func request(g *WithT, obj client.Object) {
	g.Expect(local.RequestReconcile(context.Background(), bed.Env.Client, obj)).To(Succeed())
}

// appliedCommit waits until ks is Ready with the commit of main applied.
func appliedCommit(g *WithT, ks *applyv1.Kustomization, commit string) {
	g.Eventually(func(g Gomega) {
		g.Expect(bed.Env.Client.Get(context.Background(), client.ObjectKeyFromObject(ks), ks)).To(Succeed())
		g.Expect(conditions.IsReady(ks)).To(BeTrue(), "Ready: %s", conditions.GetMessage(ks, meta.ReadyCondition))
		g.Expect(ks.Status.LastAppliedRevision).To(Equal("main@sha1:" + commit))
	}, timeout, 200*time.Millisecond).Should(Succeed())
}

// dumpLogs shows the end of the controllers' logs when a test failed, and of the processes the
// test started itself (named as in bed.StartControllerAs).
func dumpLogs(t *testing.T, started ...string) {
	if !t.Failed() {
		return
	}
	for _, m := range append([]string{"source-controller", "apply-controller", "helm-controller", "notification-controller", "image-automation"}, started...) {
		data, _ := os.ReadFile(bed.Log(m))
		if len(data) > 8000 {
			data = data[len(data)-8000:]
		}
		t.Logf("--- %s (end of log)\n%s", m, data)
	}
}

// From a commit to the cluster and back: apply with health checks, a new commit (changed and
// removed objects), a hand edit put back, a broken commit that changes nothing in the cluster,
// and its fix. apply-controller runs with --no-remote-bases, so a remote base is the break.
func TestGitToCluster(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	c := bed.Env.Client
	defer dumpLogs(t)

	git, err := local.StartGitServer(filepath.Join(bed.Dir, "git"))
	g.Expect(err).NotTo(HaveOccurred())
	defer git.Stop()
	repo, commit, err := git.NewRepo("shop", app("hello", true))
	g.Expect(err).NotTo(HaveOccurred())

	g.Expect(c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}})).To(Succeed())
	gr := &sourcev1.GitRepository{
		ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "shop"},
		Spec: sourcev1.GitRepositorySpec{
			URL: git.URL("shop"), Ref: &sourcev1.GitRepositoryRef{Branch: "main"},
			Interval: metav1.Duration{Duration: time.Hour},
		},
	}
	g.Expect(c.Create(ctx, gr)).To(Succeed())
	ks := &applyv1.Kustomization{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"},
		Spec: applyv1.KustomizationSpec{
			SourceRef:       applyv1.CrossNamespaceSourceReference{Kind: sourcev1.GitRepositoryKind, Name: "shop"},
			Path:            "apps/web",
			TargetNamespace: "shop",
			Interval:        metav1.Duration{Duration: time.Hour},
			RetryInterval:   &metav1.Duration{Duration: 2 * time.Second},
			Prune:           true,
			Wait:            true,
		},
	}
	g.Expect(c.Create(ctx, ks)).To(Succeed())

	greeting := func() string {
		cm := &corev1.ConfigMap{}
		g.Expect(c.Get(ctx, client.ObjectKey{Namespace: "shop", Name: "web"}, cm)).To(Succeed())
		return cm.Data["greeting"]
	}

	appliedCommit(g, ks, commit)
	g.Expect(greeting()).To(Equal("hello"))
	g.Expect(c.Get(ctx, client.ObjectKey{Namespace: "shop", Name: "web"}, &corev1.Service{})).To(Succeed())

	// A new commit: the ConfigMap changes and the Service leaves Git, so it is pruned.
	files := app("bonjour", false)
	files["apps/web/service.yaml"] = ""
	commit, err = repo.Commit("bonjour, no service", files)
	g.Expect(err).NotTo(HaveOccurred())
	request(g, gr)
	appliedCommit(g, ks, commit)
	g.Expect(greeting()).To(Equal("bonjour"))
	err = c.Get(ctx, client.ObjectKey{Namespace: "shop", Name: "web"}, &corev1.Service{})
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "the Service is pruned: %v", err)

	// A hand edit is put back.
	cm := &corev1.ConfigMap{}
	g.Expect(c.Get(ctx, client.ObjectKey{Namespace: "shop", Name: "web"}, cm)).To(Succeed())
	cm.Data["greeting"] = "edited by hand"
	g.Expect(c.Update(ctx, cm, client.FieldOwner("kubectl-edit"))).To(Succeed())
	request(g, ks)
	g.Eventually(greeting, timeout, 100*time.Millisecond).Should(Equal("bonjour"))

	// A commit whose build fails: a remote base, refused by --no-remote-bases. Nothing changes
	// in the cluster and nothing is pruned.
	broken, err := repo.Commit("use a remote base", map[string]string{
		"apps/web/kustomization.yaml": "resources:\n- deployment.yaml\n- https://example.invalid/base.yaml\n",
	})
	g.Expect(err).NotTo(HaveOccurred())
	request(g, gr)
	g.Eventually(func(g Gomega) {
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(ks), ks)).To(Succeed())
		g.Expect(conditions.GetReason(ks, meta.ReadyCondition)).To(Equal(applyv1.BuildFailedReason))
		g.Expect(ks.Status.LastAttemptedRevision).To(Equal("main@sha1:" + broken))
	}, timeout, 200*time.Millisecond).Should(Succeed())
	g.Expect(conditions.GetMessage(ks, meta.ReadyCondition)).To(ContainSubstring(
		"apps/web/kustomization.yaml refers to https://example.invalid/base.yaml: remote bases are turned off"))
	g.Expect(ks.Status.LastAppliedRevision).To(Equal("main@sha1:" + commit))
	g.Expect(greeting()).To(Equal("bonjour"), "the ConfigMap, absent from the broken build, is not pruned")

	// The fix is applied.
	fixed, err := repo.Commit("back to local files", map[string]string{"apps/web/kustomization.yaml": ""})
	g.Expect(err).NotTo(HaveOccurred())
	request(g, gr)
	appliedCommit(g, ks, fixed)
	g.Expect(strings.Join(ks.Status.Inventory.IDs(), ",")).To(ContainSubstring("shop_web_apps_Deployment"))
}
