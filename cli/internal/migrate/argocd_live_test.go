package migrate

import (
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func liveApp(name, path, sourceType string, automated bool) map[string]any {
	spec := map[string]any{
		"project":     "default",
		"source":      map[string]any{"repoURL": "https://github.com/argoproj/argocd-example-apps.git", "targetRevision": "HEAD", "path": path},
		"destination": map[string]any{"server": "https://kubernetes.default.svc", "namespace": "apps"},
	}
	if automated {
		spec["syncPolicy"] = map[string]any{"automated": map[string]any{"prune": true, "selfHeal": true}}
	}
	return map[string]any{"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
		"metadata": map[string]any{"name": name, "namespace": "argocd"},
		"spec":     spec, "status": map[string]any{"sourceType": sourceType}}
}

func TestArgoConverterLive(t *testing.T) {
	g := NewWithT(t)
	c := NewArgoConverter("")
	guestbook, err := c.Application(liveApp("guestbook", "guestbook", "Directory", true))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(guestbook.Findings).To(BeEmpty())
	g.Expect(guestbook.Sources).To(HaveLen(1))
	g.Expect(guestbook.Sources[0].GetKind()).To(Equal("GitRepository"))
	g.Expect(guestbook.Objects).To(HaveLen(1))
	ks := guestbook.Objects[0]
	g.Expect(ks.GetKind()).To(Equal("Kustomization"))
	g.Expect(ks.GetNamespace()).To(Equal("plumb-system"))
	g.Expect(nestedString(ks.Object, "spec", "path")).To(Equal("./guestbook"))
	g.Expect(nestedBool(ks.Object, "spec", "prune")).To(BeTrue())

	// Argo CD found a chart where the spec does not say: a HelmRelease reading the same
	// GitRepository, which goes with it too.
	helm, err := c.Application(liveApp("helm-guestbook", "helm-guestbook", "Helm", false))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(helm.Objects).To(HaveLen(1))
	hr := helm.Objects[0]
	g.Expect(hr.GetKind()).To(Equal("HelmRelease"))
	g.Expect(nestedString(hr.Object, "spec", "releaseName")).To(Equal("helm-guestbook"))
	g.Expect(nestedString(hr.Object, "spec", "chart", "spec", "chart")).To(Equal("./helm-guestbook"))
	g.Expect(nestedBool(hr.Object, "spec", "suspend")).To(BeTrue(), "synced by hand in Argo CD")
	g.Expect(helm.Sources).To(HaveLen(1))
	g.Expect(helm.Sources[0].GetName()).To(Equal(guestbook.Sources[0].GetName()))
	g.Expect(helm.Findings).To(ConsistOf(HaveField("Field", AutomatedFinding)))
}

func nestedString(o map[string]any, path ...string) string {
	v, _, _ := unstructured.NestedString(o, path...)
	return v
}

func nestedBool(o map[string]any, path ...string) bool {
	v, _, _ := unstructured.NestedBool(o, path...)
	return v
}
