package controller

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/source-controller/internal/helm/helmtest"
)

const (
	chartUser     = "charts"
	chartPassword = "ch4rt-pa55word"
)

// chartRepo packages versions of the chart web into a folder, indexes it with the Helm SDK, and
// serves it on loopback behind basic auth.
func chartRepo(t *testing.T, versions ...string) *helmtest.Server {
	t.Helper()
	dir := t.TempDir()
	srv := helmtest.NewServer(dir, chartUser, chartPassword)
	t.Cleanup(srv.Close)
	addCharts(t, srv, versions...)
	return srv
}

func addCharts(t *testing.T, srv *helmtest.Server, versions ...string) {
	t.Helper()
	for _, v := range versions {
		if _, err := helmtest.Package(srv.Dir, helmtest.Chart("web", v)); err != nil {
			t.Fatal(err)
		}
	}
	if err := helmtest.Index(srv.Dir, srv.URL); err != nil {
		t.Fatal(err)
	}
}

func chartSecret(t *testing.T, ns, user, password string) string {
	t.Helper()
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "charts-", Namespace: ns},
		StringData: map[string]string{"username": user, "password": password},
	}
	if err := k8s.Create(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	return s.Name
}

func newHelmRepository(ns, url, secret string) *sourcev1.HelmRepository {
	obj := &sourcev1.HelmRepository{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "charts-", Namespace: ns},
		Spec:       sourcev1.HelmRepositorySpec{URL: url, Interval: metav1.Duration{Duration: time.Hour}},
	}
	if secret != "" {
		obj.Spec.SecretRef = &meta.LocalObjectReference{Name: secret}
	}
	return obj
}

// waitIndexReady waits until Ready with an artifact, and returns the index it holds.
func waitIndexReady(g *WithT, obj *sourcev1.HelmRepository) map[string]any {
	g.Eventually(func(g Gomega) {
		get(g, obj)
		g.Expect(conditions.IsReady(obj)).To(BeTrue(), "Ready: %v", conditions.GetMessage(obj, meta.ReadyCondition))
		g.Expect(obj.Status.Artifact).NotTo(BeNil())
		g.Expect(obj.Status.ObservedGeneration).To(Equal(obj.Generation))
	}, timeout, 100*time.Millisecond).Should(Succeed())
	var idx map[string]any
	g.Expect(json.Unmarshal([]byte(files(g, obj.Status.Artifact)[IndexFile]), &idx)).To(Succeed())
	return idx
}

func versionsOf(idx map[string]any, chart string) []string {
	var out []string
	entries, _ := idx["entries"].(map[string]any)
	list, _ := entries[chart].([]any)
	for _, e := range list {
		out = append(out, e.(map[string]any)["version"].(string))
	}
	return out
}

func TestHelmRepository_IndexFollowsTheRepository(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	srv := chartRepo(t, "1.0.0", "1.1.0")
	secret := chartSecret(t, ns, chartUser, chartPassword)

	obj := newHelmRepository(ns, srv.URL, secret)
	create(g, obj)
	idx := waitIndexReady(g, obj)
	g.Expect(versionsOf(idx, "web")).To(Equal([]string{"1.1.0", "1.0.0"}))
	first := *obj.Status.Artifact
	g.Expect(first.Revision).To(HavePrefix("sha256:"))
	firstFile, err := os.Stat(filepath.Join(store.Root, first.Path))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(conditions.GetMessage(obj, meta.ReadyCondition)).To(Equal("stored index of 1 charts, 2 versions, revision " + first.Revision))

	// Re-indexed without change (Helm stamps a new generation time): same revision, no new file.
	g.Expect(helmtest.Index(srv.Dir, srv.URL)).To(Succeed())
	v := requestReconcile(g, obj)
	g.Eventually(func(g Gomega) {
		g.Expect(get(g, obj).Status.LastHandledReconcileAt).To(Equal(v))
	}, timeout, 50*time.Millisecond).Should(Succeed())
	g.Expect(obj.Status.Artifact.Revision).To(Equal(first.Revision))
	again, err := os.Stat(filepath.Join(store.Root, obj.Status.Artifact.Path))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(os.SameFile(firstFile, again)).To(BeTrue(), "the artifact was written again")

	// A new version is published.
	addCharts(t, srv, "2.0.0")
	requestReconcile(g, obj)
	g.Eventually(func(g Gomega) {
		g.Expect(get(g, obj).Status.Artifact.Revision).NotTo(Equal(first.Revision))
	}, timeout, 100*time.Millisecond).Should(Succeed())
	g.Expect(versionsOf(waitIndexReady(g, obj), "web")).To(Equal([]string{"2.0.0", "1.1.0", "1.0.0"}))

	// A second HelmRepository on the same URL (written with a trailing /) shares the artifact's
	// file: a hard link, not a second write.
	other := newHelmRepository(ns, srv.URL+"/", secret)
	create(g, other)
	waitIndexReady(g, other)
	mine, err := os.Stat(filepath.Join(store.Root, get(g, obj).Status.Artifact.Path))
	g.Expect(err).NotTo(HaveOccurred())
	theirs, err := os.Stat(filepath.Join(store.Root, other.Status.Artifact.Path))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(os.SameFile(mine, theirs)).To(BeTrue(), "the second HelmRepository wrote its own file")

	// Deletion removes the artifacts.
	path := obj.Status.Artifact.Path
	g.Expect(k8s.Delete(context.Background(), obj)).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8s.Get(context.Background(), client.ObjectKeyFromObject(obj), obj))
	}, timeout, 100*time.Millisecond).Should(BeTrue())
	g.Expect(store.Has(&meta.Artifact{Path: path})).To(BeFalse())
}

func TestHelmRepository_BadInput(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	srv := chartRepo(t, "1.0.0")
	good := chartSecret(t, ns, chartUser, chartPassword)
	wrong := chartSecret(t, ns, chartUser, "not-"+chartPassword)

	broken := t.TempDir()
	must(os.WriteFile(filepath.Join(broken, "index.yaml"), []byte("apiVersion: v1\nentries:\n  web: [\n"), 0o644))
	brokenSrv := helmtest.NewServer(broken, "", "")
	defer brokenSrv.Close()
	big := t.TempDir()
	must(os.WriteFile(filepath.Join(big, "index.yaml"), []byte("apiVersion: v1\nentries: {}\n#"+strings.Repeat("x", 2<<20)), 0o644))
	bigSrv := helmtest.NewServer(big, "", "")
	defer bigSrv.Close()

	cases := []struct {
		name, url, secret, reason, msg string
	}{
		{"no credentials", srv.URL, "", sourcev1.AuthenticationFailedReason, "401 Unauthorized"},
		{"wrong password", srv.URL, wrong, sourcev1.AuthenticationFailedReason, "401 Unauthorized"},
		{"missing Secret", srv.URL, "absent", sourcev1.AuthenticationFailedReason, "credentials Secret " + ns + "/absent not found"},
		{"no index", srv.URL + "/nowhere", good, sourcev1.IndexFetchFailedReason, "404 Not Found"},
		{"unreachable", "http://127.0.0.1:1/charts", "", sourcev1.IndexFetchFailedReason, "connection refused"},
		{"broken YAML", brokenSrv.URL, "", sourcev1.IndexInvalidReason, "index.yaml: error converting YAML to JSON"},
		{"absurd size", bigSrv.URL, "", sourcev1.IndexInvalidReason, "over the limit of 1048576"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := NewWithT(t)
			obj := newHelmRepository(ns, c.url, c.secret)
			create(g, obj)
			g.Expect(waitFailed(g, obj, c.reason)).To(ContainSubstring(c.msg))
			g.Expect(conditions.IsReconciling(obj)).To(BeTrue(), "retried")
		})
	}
	var events eventsv1.EventList
	g.Expect(k8s.List(context.Background(), &events, client.InNamespace(ns))).To(Succeed())
	for _, e := range events.Items {
		g.Expect(e.Note).NotTo(ContainSubstring(chartPassword))
	}

	// The last good index stays when the repository breaks.
	obj := newHelmRepository(ns, srv.URL, good)
	create(g, obj)
	waitIndexReady(g, obj)
	last := *obj.Status.Artifact
	must(os.WriteFile(filepath.Join(srv.Dir, "index.yaml"), []byte("entries: {}\n"), 0o644))
	requestReconcile(g, obj)
	g.Expect(waitFailed(g, obj, sourcev1.IndexInvalidReason)).To(ContainSubstring("has no apiVersion"))
	g.Expect(obj.Status.Artifact).To(Equal(&last))
	g.Expect(files(g, &last)).To(HaveKey(IndexFile))
}

func TestHelmRepository_OCIHasNoArtifact(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	obj := newHelmRepository(ns, "oci://127.0.0.1:1/charts", "")
	obj.Spec.Type = sourcev1.HelmRepositoryTypeOCI
	create(g, obj)
	g.Eventually(func(g Gomega) {
		get(g, obj)
		g.Expect(conditions.IsReady(obj)).To(BeTrue())
		g.Expect(conditions.GetMessage(obj, meta.ReadyCondition)).To(ContainSubstring("charts are pulled from it by HelmCharts"))
	}, timeout, 100*time.Millisecond).Should(Succeed())
	g.Expect(obj.Status.Artifact).To(BeNil())

	// The schema refuses a URL that does not fit the type.
	bad := newHelmRepository(ns, "https://charts.example.com", "")
	bad.Spec.Type = sourcev1.HelmRepositoryTypeOCI
	err := k8s.Create(context.Background(), bad)
	g.Expect(err).To(MatchError(ContainSubstring("an oci HelmRepository needs an oci:// url")))

	// An oci:// URL that is no repository name stalls the HelmRepository itself.
	unusable := newHelmRepository(ns, "oci://Not A Host/charts", "")
	unusable.Spec.Type = sourcev1.HelmRepositoryTypeOCI
	create(g, unusable)
	g.Expect(waitFailed(g, unusable, sourcev1.InvalidSpecReason)).To(ContainSubstring("not a repository name"))
	g.Expect(conditions.IsStalled(unusable)).To(BeTrue())
}

// The schema refuses a cloud provider on an https HelmRepository, naming the field: its
// credentials come from a secretRef. Generic is accepted there, and a provider on type oci.
func TestHelmRepository_ProviderNeedsOCI(t *testing.T) {
	ns := newNamespace(t)
	for _, p := range []string{"aws", "azure", "gcp"} {
		t.Run(p, func(t *testing.T) {
			g := NewWithT(t)
			obj := newHelmRepository(ns, "https://charts.example.com", "")
			obj.Spec.Provider = p
			err := k8s.Create(context.Background(), obj)
			g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "refused as invalid: %v", err)
			g.Expect(err).To(MatchError(ContainSubstring("spec.provider: Invalid value")))
			g.Expect(err).To(MatchError(ContainSubstring("spec.provider other than generic needs type: oci (an https HelmRepository takes a secretRef)")))

			oci := newHelmRepository(ns, "oci://europe-docker.pkg.dev/team/charts", "")
			oci.Spec.Type, oci.Spec.Provider = sourcev1.HelmRepositoryTypeOCI, p
			g.Expect(k8s.Create(context.Background(), oci)).To(Succeed())
		})
	}
	g := NewWithT(t)
	generic := newHelmRepository(ns, "https://charts.example.com", "")
	generic.Spec.Provider = "generic"
	g.Expect(k8s.Create(context.Background(), generic)).To(Succeed())

	// An update that adds the provider is refused as well (a patch: the controller may have
	// written the object since, which an update would meet as a conflict).
	patch := client.RawPatch(types.MergePatchType, []byte(`{"spec":{"provider":"aws"}}`))
	g.Expect(k8s.Patch(context.Background(), generic, patch)).To(MatchError(ContainSubstring("spec.provider: Invalid value")))
}
