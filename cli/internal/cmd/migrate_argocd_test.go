package cmd

import (
	"context"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/fluxcd/pkg/ssa"
	. "github.com/onsi/gomega"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/cli/internal/install"
	"github.com/plumb-dev/plumb/shared/kustomize"
)

var argoCRDs sync.Once

// installArgoCRDs installs Argo CD's published CRDs (vendored in hack/compat/argocd-crds).
func installArgoCRDs(g Gomega) {
	argoCRDs.Do(func() {
		_, err := envtest.InstallCRDs(env.Config, envtest.CRDInstallOptions{
			Paths: []string{filepath.Join("..", "..", "..", "hack", "compat", "argocd-crds")}, ErrorIfPathMissing: true})
		g.Expect(err).NotTo(HaveOccurred())
	})
}

// A chart as Argo CD renders it with helm template: its labels name the release.
const argoChart = `apiVersion: v2
name: helm-guestbook
version: 0.1.0
`

const argoChartTemplate = `apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}
  labels:
    app.kubernetes.io/name: helm-guestbook
    app.kubernetes.io/instance: {{ .Release.Name }}
    app.kubernetes.io/managed-by: {{ .Release.Service }}
data:
  greeting: hello
---
apiVersion: v1
kind: Service
metadata:
  name: {{ .Release.Name }}
  labels:
    app.kubernetes.io/instance: {{ .Release.Name }}
    app.kubernetes.io/managed-by: {{ .Release.Service }}
spec:
  selector:
    app.kubernetes.io/instance: {{ .Release.Name }}
  ports:
  - port: 80
    targetPort: 8080
`

// helmConfig is the Helm SDK's configuration for the test cluster.
func helmConfig(g Gomega, ns string) *action.Configuration {
	flags := genericclioptions.NewConfigFlags(false)
	flags.KubeConfig, flags.Namespace = &kubeconfig, &ns
	cfg := &action.Configuration{}
	g.Expect(cfg.Init(flags, ns, "secret", func(string, ...any) {})).To(Succeed())
	return cfg
}

// argoApplyClientSide creates objects as Argo CD's client-side sync does: manager
// argocd-controller (Update), kubectl's last-applied configuration, and the tracking
// annotation when tracking is not "".
func argoApplyClientSide(g Gomega, app string, annotationTracking bool, objs []*unstructured.Unstructured) {
	for _, o := range objs {
		last, err := json.Marshal(o.Object)
		g.Expect(err).NotTo(HaveOccurred())
		a := o.GetAnnotations()
		if a == nil {
			a = map[string]string{}
		}
		a["kubectl.kubernetes.io/last-applied-configuration"] = string(last)
		if annotationTracking {
			a["argocd.argoproj.io/tracking-id"] = app + ":" + o.GroupVersionKind().Group + "/" + o.GetKind() + ":" + o.GetNamespace() + "/" + o.GetName()
		} else {
			l := o.GetLabels()
			if l == nil {
				l = map[string]string{}
			}
			l["app.kubernetes.io/instance"] = app
			o.SetLabels(l)
		}
		o.SetAnnotations(a)
		g.Expect(k8s.Create(context.Background(), o, client.FieldOwner("argocd-controller"))).To(Succeed())
	}
}

// argoApplication makes an Application with the status Argo CD writes after a sync.
func argoApplication(g Gomega, ns, name string, source map[string]any, dest string, objs []*unstructured.Unstructured, sourceType string) {
	var resources []any
	for _, o := range objs {
		resources = append(resources, map[string]any{"group": o.GroupVersionKind().Group, "version": o.GroupVersionKind().Version,
			"kind": o.GetKind(), "namespace": o.GetNamespace(), "name": o.GetName(), "status": "Synced"})
	}
	// Argo CD's Application has no status subresource: the status is written with the spec.
	u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
		"metadata": map[string]any{"name": name, "namespace": ns, "finalizers": []any{"resources-finalizer.argocd.argoproj.io"}},
		"spec": map[string]any{
			"project": "default", "source": source,
			"destination": map[string]any{"server": "https://kubernetes.default.svc", "namespace": dest},
			"syncPolicy":  map[string]any{"automated": map[string]any{"prune": true, "selfHeal": true}},
		},
		"status": map[string]any{"sourceType": sourceType, "resources": resources}}}
	g.Expect(k8s.Create(context.Background(), u)).To(Succeed())
}

// applyAsTwin applies objects as apply-controller applies them for the Kustomization name/ns.
func applyAsTwin(g Gomega, name, ns string, objs []*unstructured.Unstructured) *ssa.ChangeSet {
	rm, _, err := install.ManagerAs(env.Config, "apply-controller", "apply.plumb.dev")
	g.Expect(err).NotTo(HaveOccurred())
	rm.SetOwnerLabels(objs, name, ns)
	ks := &applyv1.Kustomization{Spec: applyv1.KustomizationSpec{Prune: true}}
	cs, err := rm.ApplyAllStaged(context.Background(), objs, kustomize.ApplyOptions(ks))
	g.Expect(err).NotTo(HaveOccurred())
	return cs
}

// readMeta is readLive with the annotations among the labels (as "annotation:<key>"), since Argo
// CD's bookkeeping is in both.
func readMeta(g Gomega, objs []*unstructured.Unstructured) map[string]liveMeta {
	out := readLive(g, objs)
	for kind, m := range out {
		labels := maps.Clone(m.labels)
		if labels == nil {
			labels = map[string]string{}
		}
		for k, v := range m.annotations {
			labels["annotation:"+k] = v
		}
		m.labels = labels
		out[kind] = m
	}
	return out
}

func TestMigrateClusterFromArgoCD(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	installArgoCRDs(g)
	argoNS, plumbNS, ns := newNamespace(g), newNamespace(g), newNamespace(g)
	const repo = "https://github.com/argoproj/argocd-example-apps.git"

	// guestbook: a directory source, synced client-side with annotation tracking.
	dir := t.TempDir()
	g.Expect(os.WriteFile(filepath.Join(dir, "apps.yaml"), []byte(fluxApps), 0o600)).To(Succeed())
	guestbook := build(g, ns, dir)
	argoApplyClientSide(g, "guestbook", true, build(g, ns, dir))
	argoApplication(g, argoNS, "guestbook", map[string]any{"repoURL": repo, "targetRevision": "HEAD", "path": "guestbook"}, ns, guestbook, "Directory")

	// helm-guestbook: a chart in Git, rendered with helm template, label tracking.
	chartDir := t.TempDir()
	g.Expect(os.MkdirAll(filepath.Join(chartDir, "templates"), 0o755)).To(Succeed())
	g.Expect(os.WriteFile(filepath.Join(chartDir, "Chart.yaml"), []byte(argoChart), 0o600)).To(Succeed())
	g.Expect(os.WriteFile(filepath.Join(chartDir, "templates", "all.yaml"), []byte(argoChartTemplate), 0o600)).To(Succeed())
	ch, err := loader.Load(chartDir)
	g.Expect(err).NotTo(HaveOccurred())
	tmpl := action.NewInstall(&action.Configuration{})
	tmpl.ClientOnly, tmpl.DryRun, tmpl.Replace = true, true, true
	tmpl.ReleaseName, tmpl.Namespace = "helm-guestbook", ns
	rendered, err := tmpl.Run(ch, nil)
	g.Expect(err).NotTo(HaveOccurred())
	var helmObjs []*unstructured.Unstructured
	for _, doc := range strings.Split(rendered.Manifest, "\n---") {
		u := &unstructured.Unstructured{}
		if strings.TrimSpace(doc) == "" || yaml.Unmarshal([]byte(doc), &u.Object) != nil || len(u.Object) == 0 {
			continue
		}
		u.SetNamespace(ns)
		helmObjs = append(helmObjs, u)
	}
	g.Expect(helmObjs).To(HaveLen(2))
	argoApplyClientSide(g, "helm-guestbook", false, helmObjs)
	argoApplication(g, argoNS, "helm-guestbook", map[string]any{"repoURL": repo, "targetRevision": "HEAD", "path": "helm-guestbook"}, ns, helmObjs, "Helm")

	before, helmBefore := readMeta(g, guestbook), readMeta(g, helmObjs)
	g.Expect(before["ConfigMap"].managers).To(Equal([]string{"argocd-controller/Update"}))

	code, out, errOut := plumb(ctx, "migrate", "cluster", "--from", "argocd", "-n", plumbNS)
	g.Expect(code).To(Equal(ExitOK), out+errOut)
	g.Expect(out).To(ContainSubstring("✔ Application/" + argoNS + "/guestbook: auto-sync off; Plumb Kustomization " + plumbNS + "/guestbook; 3 objects handed over to apply-controller"))
	g.Expect(out).To(ContainSubstring("✔ Application/" + argoNS + "/helm-guestbook: auto-sync off; Plumb HelmRelease " + plumbNS + "/helm-guestbook; 2 objects given Helm's ownership metadata of release " + ns + "/helm-guestbook"))

	// Auto-sync off; the twins.
	for _, name := range []string{"guestbook", "helm-guestbook"} {
		app := getObj(g, "argoproj.io/v1alpha1", "Application", argoNS, name)
		_, found, _ := unstructured.NestedFieldNoCopy(app.Object, "spec", "syncPolicy", "automated")
		g.Expect(found).To(BeFalse(), name)
	}
	ks := getObj(g, "apply.plumb.dev/v1beta1", "Kustomization", plumbNS, "guestbook")
	g.Expect(ks.GetLabels()).To(HaveKeyWithValue("plumb.dev/migrated-from", "argocd"))
	g.Expect(ks.Object["spec"]).To(HaveKeyWithValue("path", "./guestbook"))
	g.Expect(ks.Object["spec"]).To(HaveKeyWithValue("prune", true))
	g.Expect(ks.Object["spec"]).To(HaveKeyWithValue("targetNamespace", ns))
	g.Expect(ks.Object["spec"]).NotTo(HaveKey("suspend"))
	entries, _, _ := unstructured.NestedSlice(ks.Object, "status", "inventory", "entries")
	g.Expect(entries).To(HaveLen(3))
	hr := getObj(g, "helm.plumb.dev/v1beta1", "HelmRelease", plumbNS, "helm-guestbook")
	g.Expect(hr.Object["spec"]).To(HaveKeyWithValue("releaseName", "helm-guestbook"))
	g.Expect(hr.Object["spec"]).NotTo(HaveKey("suspend"))
	gr := getObj(g, "source.plumb.dev/v1beta1", "GitRepository", plumbNS, "argocd-example-apps")
	g.Expect(gr.Object["spec"]).To(HaveKeyWithValue("url", repo))

	// The guestbook objects: apply-controller's, content unchanged, Argo CD's bookkeeping gone.
	after := readMeta(g, guestbook)
	for kind, b := range before {
		a := after[kind]
		g.Expect(a.data).To(Equal(b.data), kind)
		g.Expect(a.labels).To(HaveKeyWithValue("apply.plumb.dev/name", "guestbook"), kind)
		g.Expect(a.labels).NotTo(HaveKey("annotation:argocd.argoproj.io/tracking-id"), kind)
		g.Expect(a.labels).NotTo(HaveKey("annotation:kubectl.kubernetes.io/last-applied-configuration"), kind)
		g.Expect(a.managers).To(Equal([]string{"apply-controller/Apply"}), kind)
	}
	// apply-controller's first apply is a true no-op.
	for _, e := range applyAsTwin(g, "guestbook", plumbNS, build(g, ns, dir)).Entries {
		g.Expect(e.Action).To(Equal(ssa.UnchangedAction), e.Subject)
	}
	for kind, a := range readMeta(g, guestbook) {
		g.Expect(a.rv).To(Equal(after[kind].rv), "%s unchanged by Plumb's first apply", kind)
	}

	// The chart's objects: Helm's ownership metadata, so helm-controller's install adopts them.
	helmAfter := readMeta(g, helmObjs)
	for kind, a := range helmAfter {
		g.Expect(a.data).To(Equal(helmBefore[kind].data), kind)
		g.Expect(a.labels).To(HaveKeyWithValue("annotation:meta.helm.sh/release-name", "helm-guestbook"), kind)
		g.Expect(a.labels).To(HaveKeyWithValue("annotation:meta.helm.sh/release-namespace", ns), kind)
		g.Expect(a.labels).To(HaveKeyWithValue("app.kubernetes.io/instance", "helm-guestbook"), kind)
	}
	inst := action.NewInstall(helmConfig(g, ns))
	inst.ReleaseName, inst.Namespace = "helm-guestbook", ns
	rel, err := inst.Run(ch, nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(rel.Version).To(Equal(1))
	for kind, a := range readMeta(g, helmObjs) {
		g.Expect(a.data).To(Equal(helmBefore[kind].data), "%s: Helm's install changed nothing", kind)
	}

	// Again: nothing left to do.
	code, out, _ = plumb(ctx, "migrate", "cluster", "--from", "argocd", "-n", plumbNS)
	g.Expect(code).To(Equal(ExitOK), out)
	g.Expect(out).To(ContainSubstring("guestbook; 0 objects handed over"))

	// Finish refuses while a twin is not Ready.
	code, out, errOut = plumb(ctx, "migrate", "cluster", "--from", "argocd", "--finish", "--argocd-namespace", argoNS)
	g.Expect(code).To(Equal(ExitFailure), out)
	g.Expect(errOut).To(ContainSubstring("not finished"))
	g.Expect(out).To(ContainSubstring("✗ Kustomization/" + plumbNS + "/guestbook: Plumb twin not Ready"))
	g.Expect(out).To(ContainSubstring("✗ GitRepository/" + plumbNS + "/argocd-example-apps: Plumb twin not Ready"))

	// Rollback: twins gone, objects Argo CD's again, auto-sync back.
	code, out, _ = plumb(ctx, "migrate", "cluster", "--from", "argocd", "--rollback")
	g.Expect(code).To(Equal(ExitOK), out)
	g.Expect(out).To(ContainSubstring("✔ Kustomization/" + plumbNS + "/guestbook: Plumb twin removed, nothing pruned; objects given back to Argo CD; auto-sync back on"))
	err = k8s.Get(ctx, client.ObjectKey{Namespace: plumbNS, Name: "guestbook"}, get0("apply.plumb.dev/v1beta1", "Kustomization"))
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "twin gone: %v", err)
	for kind, a := range readMeta(g, guestbook) {
		b := before[kind]
		delete(b.labels, "annotation:kubectl.kubernetes.io/last-applied-configuration") // Argo CD's next sync writes it again
		g.Expect(a.labels).To(Equal(b.labels), kind)
		g.Expect(a.managers).To(Equal(b.managers), kind)
		g.Expect(a.data).To(Equal(b.data), kind)
	}
	for kind, a := range readMeta(g, helmObjs) {
		g.Expect(a.labels).NotTo(HaveKey("annotation:meta.helm.sh/release-name"), kind)
	}
	app := getObj(g, "argoproj.io/v1alpha1", "Application", argoNS, "guestbook")
	automated, _, _ := unstructured.NestedMap(app.Object, "spec", "syncPolicy", "automated")
	g.Expect(automated).To(Equal(map[string]any{"prune": true, "selfHeal": true}))

	// Take over again, twins Ready, finish: Argo CD goes, what it deployed stays.
	code, out, _ = plumb(ctx, "migrate", "cluster", "--from", "argocd", "-n", plumbNS)
	g.Expect(code).To(Equal(ExitOK), out)
	for _, tw := range []*unstructured.Unstructured{
		getObj(g, "apply.plumb.dev/v1beta1", "Kustomization", plumbNS, "guestbook"),
		getObj(g, "helm.plumb.dev/v1beta1", "HelmRelease", plumbNS, "helm-guestbook"),
		getObj(g, "source.plumb.dev/v1beta1", "GitRepository", plumbNS, "argocd-example-apps"),
	} {
		tw.Object["status"] = map[string]any{"conditions": ready("True", "Succeeded", "ok")}
		g.Expect(k8s.Status().Update(ctx, tw)).To(Succeed())
	}
	server := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "argocd-server", Namespace: argoNS,
		Labels: map[string]string{"app.kubernetes.io/part-of": "argocd"}}}
	g.Expect(k8s.Create(ctx, server)).To(Succeed())
	code, out, _ = plumb(ctx, "migrate", "cluster", "--from", "argocd", "--finish", "--argocd-namespace", argoNS)
	g.Expect(code).To(Equal(ExitOK), out)
	g.Expect(out).To(ContainSubstring("✔ ServiceAccount/" + argoNS + "/argocd-server: deleted (Argo CD's controllers)"))
	g.Expect(out).To(ContainSubstring("✔ Application/" + argoNS + "/guestbook: Argo CD Application deleted; what it deployed stays"))
	for _, name := range []string{"guestbook", "helm-guestbook"} {
		g.Eventually(func() bool {
			return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKey{Namespace: argoNS, Name: name}, get0("argoproj.io/v1alpha1", "Application")))
		}).Should(BeTrue(), name)
	}
	for kind, a := range readMeta(g, guestbook) {
		g.Expect(a.data).To(Equal(before[kind].data), "%s stays", kind)
	}
}
