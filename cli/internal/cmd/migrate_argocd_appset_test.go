package cmd

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// An ApplicationSet would turn auto-sync back on for its Applications: the takeover removes it
// from the template too, and rollback puts it back. An Application with what Plumb cannot carry
// over (a config management plugin) is left to Argo CD, auto-sync on, with what to do.
func TestMigrateClusterFromArgoCDApplicationSetAndRefusal(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	installArgoCRDs(g)
	argoNS, plumbNS, ns := newNamespace(g), newNamespace(g), newNamespace(g)
	const repo = "https://github.com/argoproj/argocd-example-apps.git"
	automated := map[string]any{"prune": true, "selfHeal": true}

	set := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet",
		"metadata": map[string]any{"name": "guestbooks", "namespace": argoNS},
		"spec": map[string]any{
			"generators": []any{map[string]any{"list": map[string]any{"elements": []any{map[string]any{"env": "dev"}}}}},
			"template": map[string]any{
				"metadata": map[string]any{"name": "guestbook-{{env}}"},
				"spec": map[string]any{"project": "default",
					"source":      map[string]any{"repoURL": repo, "targetRevision": "HEAD", "path": "guestbook"},
					"destination": map[string]any{"server": "https://kubernetes.default.svc", "namespace": ns},
					"syncPolicy":  map[string]any{"automated": automated}}}}}}
	g.Expect(k8s.Create(ctx, set)).To(Succeed())
	// What the ApplicationSet controller made of it, not yet synced, and an Application with a plugin.
	argoApplication(g, argoNS, "guestbook-dev", map[string]any{"repoURL": repo, "targetRevision": "HEAD", "path": "guestbook"}, ns, nil, "Directory")
	argoApplication(g, argoNS, "plugged", map[string]any{"repoURL": repo, "targetRevision": "HEAD", "path": "guestbook",
		"plugin": map[string]any{"name": "sops"}}, ns, nil, "Plugin")
	defer func() {
		for _, name := range []string{"guestbook-dev", "plugged"} {
			app := getObj(g, "argoproj.io/v1alpha1", "Application", argoNS, name)
			app.SetFinalizers(nil)
			g.Expect(k8s.Update(ctx, app)).To(Succeed())
			g.Expect(client.IgnoreNotFound(k8s.Delete(ctx, app))).To(Succeed())
		}
		g.Expect(client.IgnoreNotFound(k8s.Delete(ctx, set))).To(Succeed())
	}()

	code, out, errOut := plumb(ctx, "migrate", "cluster", "--from", "argocd", "-n", plumbNS)
	g.Expect(code).To(Equal(ExitFailure), "the plugin Application is refused: "+out+errOut)
	g.Expect(out + errOut).To(ContainSubstring("Application/" + argoNS + "/plugged"))
	g.Expect(out + errOut).To(ContainSubstring("--drop-unsupported"))
	g.Expect(out).To(ContainSubstring("ApplicationSet/" + argoNS + "/guestbooks: auto-sync removed from its template"))

	got := getObj(g, "argoproj.io/v1alpha1", "ApplicationSet", argoNS, "guestbooks")
	_, found, _ := unstructured.NestedFieldNoCopy(got.Object, "spec", "template", "spec", "syncPolicy", "automated")
	g.Expect(found).To(BeFalse(), "the template no longer turns auto-sync on")
	g.Expect(got.GetAnnotations()).To(HaveKey("plumb.dev/argocd-automated"))
	app := getObj(g, "argoproj.io/v1alpha1", "Application", argoNS, "guestbook-dev")
	_, found, _ = unstructured.NestedFieldNoCopy(app.Object, "spec", "syncPolicy", "automated")
	g.Expect(found).To(BeFalse(), "the generated Application is taken over")
	g.Expect(getObj(g, "apply.plumb.dev/v1beta1", "Kustomization", plumbNS, "guestbook-dev").GetLabels()).To(HaveKeyWithValue("plumb.dev/migrated-from", "argocd"))
	plugged := getObj(g, "argoproj.io/v1alpha1", "Application", argoNS, "plugged")
	kept, _, _ := unstructured.NestedMap(plugged.Object, "spec", "syncPolicy", "automated")
	g.Expect(kept).To(Equal(automated), "a refused Application keeps syncing under Argo CD")
	g.Expect(apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKey{Namespace: plumbNS, Name: "plugged"}, get0("apply.plumb.dev/v1beta1", "Kustomization")))).To(BeTrue())

	// Rollback: the template and the Application sync automatically again; the twin is gone.
	code, out, errOut = plumb(ctx, "migrate", "cluster", "--from", "argocd", "--rollback")
	g.Expect(code).To(Equal(ExitOK), out+errOut)
	got = getObj(g, "argoproj.io/v1alpha1", "ApplicationSet", argoNS, "guestbooks")
	restored, _, _ := unstructured.NestedMap(got.Object, "spec", "template", "spec", "syncPolicy", "automated")
	g.Expect(restored).To(Equal(automated))
	g.Expect(got.GetAnnotations()).NotTo(HaveKey("plumb.dev/argocd-automated"))
	app = getObj(g, "argoproj.io/v1alpha1", "Application", argoNS, "guestbook-dev")
	restored, _, _ = unstructured.NestedMap(app.Object, "spec", "syncPolicy", "automated")
	g.Expect(restored).To(Equal(automated))
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKey{Namespace: plumbNS, Name: "guestbook-dev"}, get0("apply.plumb.dev/v1beta1", "Kustomization")))
	}).Should(BeTrue())
}
