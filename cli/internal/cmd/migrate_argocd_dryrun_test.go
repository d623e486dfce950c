package cmd

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fluxcd/pkg/gittestserver"
	"github.com/fluxcd/pkg/ssa"
	. "github.com/onsi/gomega"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// An Application synced server-side (ServerSideApply=true): Argo CD applies as
// argocd-controller with operation Apply.
const argoSSAApps = `apiVersion: v1
kind: ConfigMap
metadata:
  name: ssa
data:
  mode: server-side
`

// argoRepo writes the test repository: guestbook (a folder of manifests), helm-guestbook (a
// chart) and ssa (a folder synced server-side).
func argoRepo(g Gomega, dir string) {
	files := map[string]string{
		"guestbook/apps.yaml":               fluxApps,
		"helm-guestbook/Chart.yaml":         argoChart,
		"helm-guestbook/templates/all.yaml": argoChartTemplate,
		"ssa/apps.yaml":                     argoSSAApps,
	}
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		g.Expect(os.MkdirAll(filepath.Dir(p), 0o755)).To(Succeed())
		g.Expect(os.WriteFile(p, []byte(content), 0o600)).To(Succeed())
	}
}

// helmTemplate renders a chart folder as Argo CD does, with helm template.
func helmTemplate(g Gomega, chartDir, release, ns string) []*unstructured.Unstructured {
	ch, err := loader.Load(chartDir)
	g.Expect(err).NotTo(HaveOccurred())
	tmpl := action.NewInstall(&action.Configuration{})
	tmpl.ClientOnly, tmpl.DryRun, tmpl.Replace = true, true, true
	tmpl.ReleaseName, tmpl.Namespace = release, ns
	rendered, err := tmpl.Run(ch, nil)
	g.Expect(err).NotTo(HaveOccurred())
	var objs []*unstructured.Unstructured
	for _, doc := range strings.Split(rendered.Manifest, "\n---") {
		u := &unstructured.Unstructured{}
		if strings.TrimSpace(doc) == "" || yaml.Unmarshal([]byte(doc), &u.Object) != nil || len(u.Object) == 0 {
			continue
		}
		u.SetNamespace(ns)
		objs = append(objs, u)
	}
	return objs
}

// argoApplyServerSide applies objects as Argo CD's server-side sync does: manager
// argocd-controller, operation Apply, the tracking annotation in the applied configuration.
func argoApplyServerSide(g Gomega, app string, objs []*unstructured.Unstructured) {
	for _, o := range objs {
		o.SetAnnotations(map[string]string{"argocd.argoproj.io/tracking-id": app + ":" + o.GroupVersionKind().Group + "/" + o.GetKind() + ":" + o.GetNamespace() + "/" + o.GetName()})
		//lint:ignore SA1019 a server-side apply of an unstructured object, as Argo CD makes it
		g.Expect(k8s.Patch(context.Background(), o, client.Apply, client.FieldOwner("argocd-controller"), client.ForceOwnership)).To(Succeed())
	}
}

func TestMigrateClusterFromArgoCDDryRun(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	installArgoCRDs(g)
	argoNS, plumbNS, ns := newNamespace(g), newNamespace(g), newNamespace(g)
	// A takeover reads every Application of the cluster: leave none for the other tests.
	defer func() {
		code, out, _ := plumb(ctx, "migrate", "cluster", "--from", "argocd", "--rollback")
		g.Expect(code).To(Equal(ExitOK), out)
		for _, name := range []string{"guestbook", "helm-guestbook", "ssa"} {
			app := getObj(g, "argoproj.io/v1alpha1", "Application", argoNS, name)
			app.SetFinalizers(nil)
			g.Expect(k8s.Update(ctx, app)).To(Succeed())
			g.Expect(k8s.Delete(ctx, app)).To(Succeed())
		}
	}()

	// The repository, on a loopback Git server.
	fixture := t.TempDir()
	argoRepo(g, fixture)
	srv := gittestserver.NewGitServer(t.TempDir())
	g.Expect(srv.StartHTTP()).To(Succeed())
	defer srv.StopHTTP()
	g.Expect(srv.InitRepo(fixture, "main", "apps.git")).To(Succeed())
	repo := srv.HTTPAddress() + "/apps.git"

	// The cluster as Argo CD left it: guestbook synced client-side with annotation tracking,
	// helm-guestbook rendered with helm template and label tracking, ssa synced server-side.
	guestbook := build(g, ns, filepath.Join(fixture, "guestbook"))
	argoApplyClientSide(g, "guestbook", true, build(g, ns, filepath.Join(fixture, "guestbook")))
	argoApplication(g, argoNS, "guestbook", map[string]any{"repoURL": repo, "targetRevision": "main", "path": "guestbook"}, ns, guestbook, "Directory")
	helmObjs := helmTemplate(g, filepath.Join(fixture, "helm-guestbook"), "helm-guestbook", ns)
	argoApplyClientSide(g, "helm-guestbook", false, helmTemplate(g, filepath.Join(fixture, "helm-guestbook"), "helm-guestbook", ns))
	argoApplication(g, argoNS, "helm-guestbook", map[string]any{"repoURL": repo, "targetRevision": "main", "path": "helm-guestbook"}, ns, helmObjs, "Helm")
	ssaObjs := build(g, ns, filepath.Join(fixture, "ssa"))
	argoApplyServerSide(g, "ssa", build(g, ns, filepath.Join(fixture, "ssa")))
	argoApplication(g, argoNS, "ssa", map[string]any{"repoURL": repo, "targetRevision": "main", "path": "ssa"}, ns, ssaObjs, "Directory")
	before := readMeta(g, append(append([]*unstructured.Unstructured{}, guestbook...), helmObjs...))
	dryRun := []string{"migrate", "cluster", "--from", "argocd", "--dry-run", "-n", plumbNS}

	// Clean: every object unchanged, exit 0; nothing in the cluster changed.
	code, out, errOut := plumb(ctx, dryRun...)
	g.Expect(code).To(Equal(ExitOK), out+errOut)
	g.Expect(errOut).To(ContainSubstring("no changes: the takeover is clean"))
	g.Expect(out).To(ContainSubstring("► Application/" + argoNS + "/guestbook → Kustomization/" + plumbNS + "/guestbook"))
	g.Expect(out).To(ContainSubstring("► Application/" + argoNS + "/helm-guestbook → HelmRelease/" + plumbNS + "/helm-guestbook"))
	for _, o := range []string{"ConfigMap/" + ns + "/web", "Service/" + ns + "/web", "ServiceAccount/" + ns + "/web", "ConfigMap/" + ns + "/helm-guestbook", "Service/" + ns + "/helm-guestbook", "ConfigMap/" + ns + "/ssa"} {
		g.Expect(out).To(ContainSubstring("  "+o+" unchanged"), o)
	}
	for kind, a := range readMeta(g, append(append([]*unstructured.Unstructured{}, guestbook...), helmObjs...)) {
		g.Expect(a.rv).To(Equal(before[kind].rv), "%s untouched by the dry-run", kind)
	}
	app := getObj(g, "argoproj.io/v1alpha1", "Application", argoNS, "guestbook")
	_, found, _ := unstructured.NestedFieldNoCopy(app.Object, "spec", "syncPolicy", "automated")
	g.Expect(found).To(BeTrue(), "auto-sync still on")

	// A hand edit of a ConfigMap and of a chart's object: a diff, exit 1.
	for _, name := range []string{"web", "helm-guestbook"} {
		cm := getObj(g, "v1", "ConfigMap", ns, name)
		g.Expect(unstructured.SetNestedField(cm.Object, "edited", "data", "greeting")).To(Succeed())
		g.Expect(k8s.Update(ctx, cm, client.FieldOwner("kubectl-edit"))).To(Succeed())
	}
	code, out, _ = plumb(ctx, dryRun...)
	g.Expect(code).To(Equal(1), out)
	g.Expect(out).To(ContainSubstring("  ConfigMap/" + ns + "/web changed"))
	g.Expect(out).To(ContainSubstring("  ConfigMap/" + ns + "/helm-guestbook changed"))
	g.Expect(out).To(ContainSubstring("-  greeting: edited"))
	g.Expect(out).To(ContainSubstring("+  greeting: hello"))
	g.Expect(out).To(ContainSubstring("  Service/" + ns + "/web unchanged"))

	// A local checkout in which a field Argo CD set client-side is gone: Plumb's first apply
	// would remove it. The clone is not read.
	local := t.TempDir()
	argoRepo(g, local)
	edited := strings.Replace(fluxApps, "    targetPort: 8080\n", "", 1)
	g.Expect(os.WriteFile(filepath.Join(local, "guestbook", "apps.yaml"), []byte(edited), 0o600)).To(Succeed())
	code, out, _ = plumb(ctx, append(dryRun, "--source-dir", repo+"="+local)...)
	g.Expect(code).To(Equal(1), out)
	g.Expect(out).To(ContainSubstring("  Service/" + ns + "/web changed"))
	g.Expect(out).To(MatchRegexp(`warning: Service/` + ns + `/web: Argo CD set \.spec\.ports\[k:\{[^]]*"port":80[^]]*\]\.targetPort, which the build no longer has: Plumb's first apply removes it`))
	code, _, errOut = plumb(ctx, "migrate", "cluster", "--from", "argocd", "--source-dir", repo+"="+local)
	g.Expect(code).To(Equal(ExitUsage), errOut)

	// Edits undone; taken over: the twins' first apply and Helm's install change nothing.
	for _, name := range []string{"web", "helm-guestbook"} {
		cm := getObj(g, "v1", "ConfigMap", ns, name)
		g.Expect(unstructured.SetNestedField(cm.Object, "hello", "data", "greeting")).To(Succeed())
		g.Expect(k8s.Update(ctx, cm, client.FieldOwner("kubectl-edit"))).To(Succeed())
	}
	code, out, _ = plumb(ctx, "migrate", "cluster", "--from", "argocd", "-n", plumbNS)
	g.Expect(code).To(Equal(ExitOK), out)
	g.Expect(out).To(ContainSubstring("✔ Application/" + argoNS + "/ssa: auto-sync off; Plumb Kustomization " + plumbNS + "/ssa; 1 objects handed over to apply-controller"))
	ssaMeta := readMeta(g, ssaObjs)["ConfigMap"]
	g.Expect(ssaMeta.managers).To(Equal([]string{"apply-controller/Apply"}))
	g.Expect(ssaMeta.labels).NotTo(HaveKey("annotation:argocd.argoproj.io/tracking-id"))
	for _, e := range applyAsTwin(g, "ssa", plumbNS, build(g, ns, filepath.Join(fixture, "ssa"))).Entries {
		g.Expect(e.Action).To(Equal(ssa.UnchangedAction), e.Subject)
	}
	g.Expect(readMeta(g, ssaObjs)["ConfigMap"].rv).To(Equal(ssaMeta.rv), "server-side synced object unchanged by Plumb's first apply")

	// After the takeover the dry-run diffs as apply-controller: still clean.
	code, out, errOut = plumb(ctx, dryRun...)
	g.Expect(code).To(Equal(ExitOK), out+errOut)
	g.Expect(out).To(ContainSubstring("  ConfigMap/" + ns + "/web unchanged"))
	g.Expect(out).To(ContainSubstring("  ConfigMap/" + ns + "/ssa unchanged"))
}
