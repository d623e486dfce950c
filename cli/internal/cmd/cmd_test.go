package cmd

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/plumb-dev/plumb/shared/reconcile"
)

func newNamespace(g Gomega) string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "cli-"}}
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
		u.Object["status"] = status
		g.Expect(k8s.Status().Update(ctx, u)).To(Succeed())
	}
	return u
}

func ready(status, reason, message string) []any {
	return []any{map[string]any{"type": "Ready", "status": status, "reason": reason, "message": message,
		"lastTransitionTime": time.Now().UTC().Format(time.RFC3339)}}
}

func gitRepository(g Gomega, ns, name string) *unstructured.Unstructured {
	return object(g, "source.plumb.dev/v1beta1", "GitRepository", ns, name,
		map[string]any{"url": "https://example.invalid/repo.git", "interval": "5m"},
		map[string]any{"conditions": ready("True", "Succeeded", "stored artifact for revision main@sha1:1a2b"),
			"artifact": map[string]any{"revision": "main@sha1:1a2b3c", "digest": "sha256:00", "path": "p", "url": "http://x/p",
				"lastUpdateTime": time.Now().UTC().Format(time.RFC3339)}})
}

func kustomization(g Gomega, ns, name string, readyStatus string) *unstructured.Unstructured {
	return object(g, "apply.plumb.dev/v1beta1", "Kustomization", ns, name,
		map[string]any{"sourceRef": map[string]any{"kind": "GitRepository", "name": "repo"}, "path": "./apps", "interval": "5m", "prune": true},
		map[string]any{"conditions": ready(readyStatus, "BuildFailed", "kustomization.yaml: unknown field\n  at line 3")})
}

func TestGet(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(g)
	gitRepository(g, ns, "repo")
	kustomization(g, ns, "apps", "False")

	code, out, errOut := plumb(ctx, "get", "all", "-n", ns)
	g.Expect(code).To(Equal(0), errOut)
	g.Expect(out).To(MatchRegexp(`GitRepository/repo\s+True\s+Succeeded\s+stored artifact for revision main@sha1:1a2b\s+main@sha1:1a2b3c\s+false`))
	g.Expect(out).To(MatchRegexp(`Kustomization/apps\s+False\s+BuildFailed\s+kustomization.yaml: unknown field at line 3`), "the failed step, and a message in one line")

	code, out, _ = plumb(ctx, "get", "ks", "-A")
	g.Expect(code).To(Equal(0))
	g.Expect(out).To(ContainSubstring("NAMESPACE"))
	g.Expect(out).To(MatchRegexp(ns + `\s+apps\s+False`))

	code, out, _ = plumb(ctx, "get", "gitrepository", "repo", "-n", ns, "-o", "yaml")
	g.Expect(code).To(Equal(0))
	var doc map[string]any
	g.Expect(yaml.Unmarshal([]byte(out), &doc)).To(Succeed())
	g.Expect(doc["kind"]).To(Equal("GitRepository"))

	code, _, errOut = plumb(ctx, "get", "gitrepository", "absent", "-n", ns)
	g.Expect(code).To(Equal(1))
	g.Expect(errOut).To(Equal(`plumb: gitrepositories.source.plumb.dev "absent" not found`))

	code, _, errOut = plumb(ctx, "get", "widgets")
	g.Expect(code).To(Equal(2))
	g.Expect(errOut).To(HavePrefix(`plumb: unknown kind "widgets"; known: `))

	code, _, errOut = plumb(ctx, "get", "sources", "-n", ns, "-o", "table")
	g.Expect(code).To(Equal(2))
	g.Expect(errOut).To(ContainSubstring("use yaml or json"))

	code, _, errOut = plumb(ctx, "get", "helmreleases", "-n", ns)
	g.Expect(code).To(Equal(0))
	g.Expect(errOut).To(Equal("no helmreleases in namespace " + ns))
}

func TestNoCluster(t *testing.T) {
	g := NewWithT(t)
	for _, args := range [][]string{
		{"get", "all"}, {"reconcile", "ks", "apps"}, {"suspend", "ks", "apps"}, {"events"}, {"check"},
		{"tree", "ks", "apps"}, {"install", "--wait=false"}, {"uninstall", "--yes"}, {"dashboard", "--addr", "127.0.0.1:0"},
	} {
		code, _, errOut := plumb(context.Background(), append([]string{"--server", "https://127.0.0.1:1", "--timeout", "5s"}, args...)...)
		g.Expect(code).To(Equal(1), "%v", args)
		lines := strings.Split(errOut, "\n")
		g.Expect(lines[len(lines)-1]).To(HavePrefix("plumb: "), "%v ends with one error line", args)
		g.Expect(errOut).To(ContainSubstring("127.0.0.1:1"), "%v names the server", args)
	}
}

func TestUsageErrors(t *testing.T) {
	g := NewWithT(t)
	for _, args := range [][]string{
		{"reconcile", "ks"}, {"get"}, {"diff", "ks"}, {"bootstrap", "git", "--url", "https://example.invalid/r.git"},
		{"get", "ks", "apps", "-A"}, {"uninstall", "--components", "nope", "--yes"}, {"frobnicate"}, {"get", "all", "--bogus"},
		{"dashboard", "--addr", "0.0.0.0:9999"}, {"dashboard", "--allow-actions"},
	} {
		code, _, errOut := plumb(context.Background(), args...)
		g.Expect(code).To(Equal(2), "%v: %s", args, errOut)
		g.Expect(errOut).To(HavePrefix("plumb: "), "%v", args)
	}
}

// controllerStandIn plays a controller's side of the reconcile request contract for one object:
// it answers a request by recording it as handled, Ready with message.
func controllerStandIn(ctx context.Context, obj *unstructured.Unstructured, message string) {
	key, gvk := client.ObjectKeyFromObject(obj), obj.GroupVersionKind() // obj stays the test's
	go func() {
		for ctx.Err() == nil {
			u := &unstructured.Unstructured{}
			u.SetGroupVersionKind(gvk)
			if err := k8s.Get(ctx, key, u); err == nil {
				if v, ok := reconcile.RequestedAt(u.GetAnnotations()); ok {
					if cur, _, _ := unstructured.NestedString(u.Object, "status", "lastHandledReconcileAt"); cur != v {
						_ = unstructured.SetNestedField(u.Object, v, "status", "lastHandledReconcileAt")
						_ = unstructured.SetNestedSlice(u.Object, ready("True", "Succeeded", message), "status", "conditions")
						_ = k8s.Status().Update(ctx, u)
					}
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
}

func TestReconcileSuspendResume(t *testing.T) {
	g := NewWithT(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns := newNamespace(g)
	repo := gitRepository(g, ns, "repo")
	ks := kustomization(g, ns, "apps", "False")
	controllerStandIn(ctx, repo, "fetched main@sha1:9f8e")

	// Nobody handles the Kustomization: the wait ends at --timeout with a clear line.
	code, _, errOut := plumb(ctx, "reconcile", "kustomization", "apps", "-n", ns, "--with-source", "--timeout", "2s")
	g.Expect(code).To(Equal(1))
	g.Expect(errOut).To(ContainSubstring("► reconciling GitRepository " + ns + "/repo"))
	g.Expect(errOut).To(ContainSubstring("plumb: Kustomization " + ns + "/apps: not handled in time"))

	controllerStandIn(ctx, ks, "applied main@sha1:9f8e")
	code, out, errOut := plumb(ctx, "reconcile", "ks", "apps", "-n", ns)
	g.Expect(code).To(Equal(0), errOut)
	g.Expect(out).To(ContainSubstring("✔ Kustomization " + ns + "/apps: applied main@sha1:9f8e"))

	code, out, _ = plumb(ctx, "suspend", "ks", "apps", "-n", ns)
	g.Expect(code).To(Equal(0))
	g.Expect(out).To(ContainSubstring("suspended"))
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(ks), ks)).To(Succeed())
	g.Expect(ks.Object["spec"].(map[string]any)["suspend"]).To(BeTrue())

	code, _, errOut = plumb(ctx, "reconcile", "ks", "apps", "-n", ns)
	g.Expect(code).To(Equal(1))
	g.Expect(errOut).To(ContainSubstring("is suspended; plumb resume it first"))

	code, out, errOut = plumb(ctx, "resume", "ks", "apps", "-n", ns)
	g.Expect(code).To(Equal(0), errOut)
	g.Expect(out).To(ContainSubstring("✔ Kustomization " + ns + "/apps"))
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(ks), ks)).To(Succeed())
	g.Expect(ks.Object["spec"].(map[string]any)["suspend"]).To(BeFalse())

	code, _, errOut = plumb(ctx, "suspend", "imagepolicy", "x", "-n", ns)
	g.Expect(code).To(Equal(2))
	g.Expect(errOut).To(ContainSubstring("ImagePolicy cannot be suspended"))
	code, _, _ = plumb(ctx, "reconcile", "sources", "repo", "-n", ns)
	g.Expect(code).To(Equal(2))
}

func TestEvents(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(g)
	for i, ref := range []corev1.ObjectReference{
		{APIVersion: "apply.plumb.dev/v1beta1", Kind: "Kustomization", Namespace: ns, Name: "apps"},
		{APIVersion: "source.plumb.dev/v1beta1", Kind: "GitRepository", Namespace: ns, Name: "repo"},
		{APIVersion: "apps/v1", Kind: "Deployment", Namespace: ns, Name: "web"},
	} {
		g.Expect(k8s.Create(ctx, &corev1.Event{ObjectMeta: metav1.ObjectMeta{GenerateName: "ev-", Namespace: ns},
			InvolvedObject: ref, Type: "Normal", Reason: "Succeeded", Message: "event " + ref.Kind,
			LastTimestamp: metav1.NewTime(time.Now().Add(time.Duration(i) * time.Second))})).To(Succeed())
	}
	code, out, _ := plumb(ctx, "events", "-n", ns)
	g.Expect(code).To(Equal(0))
	g.Expect(out).To(MatchRegexp(`(?s)Kustomization/apps\s+event Kustomization.*GitRepository/repo\s+event GitRepository`), "oldest first")
	g.Expect(out).NotTo(ContainSubstring("Deployment/web"))
	code, out, _ = plumb(ctx, "events", "-n", ns, "--for", "gitrepo/repo")
	g.Expect(code).To(Equal(0))
	g.Expect(out).To(ContainSubstring("GitRepository/repo"))
	g.Expect(out).NotTo(ContainSubstring("Kustomization/apps"))
	code, _, errOut := plumb(ctx, "events", "--for", "repo")
	g.Expect(code).To(Equal(2))
	g.Expect(errOut).To(ContainSubstring("write KIND/NAME"))
}

func TestCheck(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(g)
	// The test cluster has every CRD of the workspace and no controller.
	code, out, errOut := plumb(ctx, "check", "-n", ns)
	g.Expect(code).To(Equal(1))
	g.Expect(out).To(ContainSubstring("✔ Kubernetes v1.37"))
	g.Expect(out).To(ContainSubstring("✗ source-controller: no Deployment " + ns + "/source-controller"))
	g.Expect(errOut).To(Equal("plumb: 5 of 5 installed components are not healthy"))

	// A Deployment of no replicas is available as soon as kube-controller-manager says so.
	labels := map[string]string{"app": "source-controller"}
	g.Expect(k8s.Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "source-controller", Namespace: ns},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](0), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "manager", Image: "example.invalid/source-controller"}}}}}})).To(Succeed())
	g.Eventually(func() string {
		_, out, _ := plumb(ctx, "check", "-n", ns)
		return out
	}, 30*time.Second, 200*time.Millisecond).Should(ContainSubstring("✔ source-controller: 5 CRDs, Deployment available"))
}

func TestInstallCommand(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	code, _, errOut := plumb(ctx, "install", "--components", "apply-controller,notification-controller")
	g.Expect(code).To(Equal(2))
	g.Expect(errOut).To(Equal("plumb: apply-controller cannot work without source-controller (Kustomizations apply the artifacts of sources): add source-controller to --components"))

	// --export needs no cluster.
	var out, stderr bytes.Buffer
	code = Execute(ctx, []string{"--server", "https://127.0.0.1:1", "install", "--components", "source-controller,apply-controller", "--export", "-n", "gitops"}, &out, &stderr)
	g.Expect(code).To(Equal(0), stderr.String())
	g.Expect(out.String()).To(HavePrefix("apiVersion: v1\nkind: Namespace\nmetadata:\n"))
	g.Expect(out.String()).To(ContainSubstring("name: apply-controller\n  namespace: gitops"))
	g.Expect(out.String()).NotTo(ContainSubstring("name: helm-controller"))

	code, _, errOut = plumb(ctx, "uninstall")
	g.Expect(code).To(Equal(2))
	g.Expect(errOut).To(ContainSubstring("run it again with --yes"))
}
