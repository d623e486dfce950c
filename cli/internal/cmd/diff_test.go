package cmd

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"testing"

	"github.com/fluxcd/pkg/ssa"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/plumb-dev/plumb/cli/internal/install"
)

func inventoryOf(ids ...string) map[string]any {
	entries := make([]any, len(ids))
	for i, id := range ids {
		entries[i] = map[string]any{"id": id, "v": "v1"}
	}
	return map[string]any{"entries": entries}
}

func TestDiffKustomization(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(g)
	g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "vars", Namespace: ns},
		StringData: map[string]string{"token": "s3cr3t-value"}})).To(Succeed())
	g.Expect(k8s.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Data: map[string]string{"greeting": "old"}})).To(Succeed())
	object(g, "apply.plumb.dev/v1beta1", "Kustomization", ns, "apps",
		map[string]any{"sourceRef": map[string]any{"kind": "GitRepository", "name": "repo"}, "path": "./apps", "interval": "5m",
			"prune": true, "targetNamespace": ns,
			"postBuild": map[string]any{"substitute": map[string]any{"greeting": "hello"},
				"substituteFrom": []any{map[string]any{"kind": "Secret", "name": "vars"}}}},
		map[string]any{"inventory": inventoryOf(ns+"_web__ConfigMap", ns+"_old__ConfigMap", ns+"_kept__ConfigMap")})
	g.Expect(k8s.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "kept", Namespace: ns,
		Annotations: map[string]string{"apply.plumb.dev/prune": "Disabled"}}})).To(Succeed())

	dir := t.TempDir()
	g.Expect(os.WriteFile(filepath.Join(dir, "web.yaml"), []byte(`apiVersion: v1
kind: ConfigMap
metadata:
  name: web
data:
  greeting: ${greeting}
  token: ${token}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: extra
data:
  a: b
`), 0o644)).To(Succeed())

	code, out, errOut := plumb(ctx, "diff", "kustomization", "apps", "--path", dir, "-n", ns)
	g.Expect(code).To(Equal(1), errOut)
	g.Expect(out).To(ContainSubstring("► ConfigMap/" + ns + "/extra created"))
	g.Expect(out).To(ContainSubstring("► ConfigMap/" + ns + "/web changed"))
	g.Expect(out).To(ContainSubstring("-  greeting: old"))
	g.Expect(out).To(ContainSubstring("+  greeting: hello"))
	g.Expect(out).To(ContainSubstring("► ConfigMap/" + ns + "/old deleted"))
	g.Expect(out).NotTo(ContainSubstring("kept"), "an object marked to stay is not pruned")
	g.Expect(out).NotTo(ContainSubstring("s3cr3t-value"))
	g.Expect(errOut).To(BeEmpty())
	// A dry run: the cluster is as it was.
	g.Expect(apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "extra"}, &corev1.ConfigMap{}))).To(BeTrue())
	web := &corev1.ConfigMap{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web"}, web)).To(Succeed())
	g.Expect(web.Data).To(Equal(map[string]string{"greeting": "old"}))

	// What the cluster already has: nothing to say, exit 0.
	same := t.TempDir()
	g.Expect(os.WriteFile(filepath.Join(same, "cm.yaml"), []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: same\ndata:\n  a: b\n"), 0o644)).To(Succeed())
	object(g, "apply.plumb.dev/v1beta1", "Kustomization", ns, "same",
		map[string]any{"sourceRef": map[string]any{"kind": "GitRepository", "name": "repo"}, "path": "./", "interval": "5m", "prune": false, "targetNamespace": ns}, nil)
	rm, _, err := install.ManagerAs(env.Config, "apply-controller", "apply.plumb.dev")
	g.Expect(err).NotTo(HaveOccurred())
	cm := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "same", "namespace": ns}, "data": map[string]any{"a": "b"}}}
	_, err = rm.ApplyAll(ctx, []*unstructured.Unstructured{cm}, ssa.DefaultApplyOptions())
	g.Expect(err).NotTo(HaveOccurred())
	code, out, errOut = plumb(ctx, "diff", "ks", "same", "--path", same, "-n", ns)
	g.Expect(code).To(Equal(0), out)
	g.Expect(errOut).To(Equal("no changes"))

	// Bad input: exit 2.
	code, _, errOut = plumb(ctx, "diff", "ks", "apps", "-n", ns)
	g.Expect(code).To(Equal(2))
	g.Expect(errOut).To(ContainSubstring("--path is required"))
	broken := t.TempDir()
	g.Expect(os.WriteFile(filepath.Join(broken, "kustomization.yaml"), []byte("resources: [missing.yaml]\n"), 0o644)).To(Succeed())
	code, _, errOut = plumb(ctx, "diff", "ks", "apps", "--path", broken, "-n", ns)
	g.Expect(code).To(Equal(2))
	g.Expect(errOut).To(ContainSubstring("missing.yaml"))
	code, _, errOut = plumb(ctx, "diff", "ks", "absent", "--path", dir, "-n", ns)
	g.Expect(code).To(Equal(2))
	g.Expect(errOut).To(ContainSubstring(`"absent" not found`))
}

func TestTreeKustomization(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(g)
	object(g, "apply.plumb.dev/v1beta1", "Kustomization", ns, "root",
		map[string]any{"sourceRef": map[string]any{"kind": "GitRepository", "name": "repo"}, "interval": "5m", "prune": true},
		map[string]any{"conditions": ready("True", "Succeeded", "applied"), "lastAppliedRevision": "main@sha1:abc",
			"inventory": inventoryOf(ns+"_web__ConfigMap", ns+"_child_apply.plumb.dev_Kustomization", ns+"_gone_apply.plumb.dev_Kustomization",
				ns+"_app_helm.plumb.dev_HelmRelease")})
	// A HelmRelease and its release as helm-controller (the Helm SDK) stores it.
	object(g, "helm.plumb.dev/v1beta1", "HelmRelease", ns, "app",
		map[string]any{"chartRef": map[string]any{"kind": "OCIRepository", "name": "charts"}, "interval": "5m"},
		map[string]any{"conditions": ready("True", "Succeeded", "released"),
			"history": []any{map[string]any{"version": int64(2), "name": "app", "namespace": ns, "chartName": "app",
				"chartVersion": "1.2.0", "status": "deployed"}}})
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write([]byte(`{"name":"app","version":2,"manifest":"---\napiVersion: v1\nkind: Service\nmetadata:\n  name: app\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: app-reader\n"}`))
	g.Expect(zw.Close()).To(Succeed())
	g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sh.helm.release.v1.app.v2", Namespace: ns},
		Type: "helm.sh/release.v1", Data: map[string][]byte{"release": []byte(base64.StdEncoding.EncodeToString(gz.Bytes()))}})).To(Succeed())
	object(g, "apply.plumb.dev/v1beta1", "Kustomization", ns, "child",
		map[string]any{"sourceRef": map[string]any{"kind": "GitRepository", "name": "repo"}, "interval": "5m", "prune": true},
		map[string]any{"conditions": ready("False", "HealthCheckFailed", "Deployment/web not ready"),
			"inventory": inventoryOf(ns+"_svc__Service", "_child-ns__Namespace")})
	code, out, errOut := plumb(ctx, "tree", "kustomization", "root", "-n", ns)
	g.Expect(code).To(Equal(0), errOut)
	g.Expect(out).To(Equal("Kustomization/" + ns + "/root (main@sha1:abc)\n" +
		"├── ConfigMap/" + ns + "/web\n" +
		"├── Kustomization/" + ns + "/child (Ready=False HealthCheckFailed: Deployment/web not ready)\n" +
		"│   ├── Service/" + ns + "/svc\n" +
		"│   └── Namespace/child-ns\n" +
		"├── Kustomization/" + ns + "/gone (not found)\n" +
		"└── HelmRelease/" + ns + "/app\n" +
		"    ├── Service/" + ns + "/app\n" +
		"    └── ClusterRole/app-reader\n"))
}
