package controller

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/plumb-dev/plumb/shared/cosign"
	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
)

// The namespaces whose GitRepositories, OCIRepositories and HelmCharts are reconciled by a
// manager started with --require-verification (every verifiable kind, or some); the package's
// manager leaves them alone.
const (
	requireAllNamespace  = "require-verification-all"
	requireSomeNamespace = "require-verification-some"
)

func TestParseRequireVerification(t *testing.T) {
	cases := []struct {
		value string
		want  map[string]bool
		err   string
	}{
		{value: "", want: map[string]bool{}},
		{value: "OCIRepository", want: map[string]bool{"OCIRepository": true}},
		{value: " GitRepository , HelmChart,", want: map[string]bool{"GitRepository": true, "HelmChart": true}},
		{value: "OCIRepository,Bucket", err: `--require-verification: "Bucket" is not a kind that can be verified; use a comma-separated list of GitRepository, OCIRepository, HelmChart`},
		{value: "ocirepository", err: `"ocirepository" is not a kind that can be verified`},
	}
	for _, tc := range cases {
		t.Run(tc.value, func(t *testing.T) {
			g := NewWithT(t)
			got, err := ParseRequireVerification(tc.value)
			if tc.err != "" {
				g.Expect(err).To(MatchError(ContainSubstring(tc.err)))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got).To(Equal(tc.want))
		})
	}
}

// startPolicyManager runs the reconcilers of the verifiable kinds with --require-verification=
// policy on the objects of ns, until the test ends.
func startPolicyManager(t *testing.T, ns, policy string) {
	t.Helper()
	g := NewWithT(t)
	kinds, err := ParseRequireVerification(policy)
	g.Expect(err).NotTo(HaveOccurred())
	nsObj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}
	if err := k8s.Create(context.Background(), nsObj); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:     env.Scheme,
		Metrics:    metricsserver.Options{BindAddress: "0"},
		Cache:      cache.Options{DefaultNamespaces: map[string]cache.Config{ns: {}}},
		Client:     client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}, &corev1.ServiceAccount{}}}},
		Controller: config.Controller{SkipNameValidation: ptr(true)},
	})
	g.Expect(err).NotTo(HaveOccurred())
	ctx, cancel := context.WithCancel(context.Background())
	opts := Options{Concurrent: 2, RequireVerification: kinds}
	events := mgr.GetEventRecorder("source-controller")
	g.Expect((&GitRepositoryReconciler{Client: mgr.GetClient(), Events: events, Storage: store, ControllerName: "source-controller"}).SetupWithManager(ctx, mgr, opts)).To(Succeed())
	g.Expect((&OCIRepositoryReconciler{Client: mgr.GetClient(), Events: events, Storage: store, ControllerName: "source-controller", Limits: &ociLimits}).SetupWithManager(ctx, mgr, opts)).To(Succeed())
	g.Expect((&HelmChartReconciler{Client: mgr.GetClient(), Events: events, Storage: store, ControllerName: "source-controller"}).SetupWithManager(ctx, mgr, opts)).To(Succeed())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
}

// waitRequired waits until obj is Stalled with VerificationRequired and returns the message.
func waitRequired(g *WithT, obj sourceObject) string {
	var msg string
	g.Eventually(func(g Gomega) {
		get(g, obj)
		g.Expect(conditions.IsStalled(obj)).To(BeTrue(), "Ready: %s", conditions.GetMessage(obj, meta.ReadyCondition))
		g.Expect(conditions.GetReason(obj, meta.ReadyCondition)).To(Equal(sourcev1.VerificationRequiredReason))
		g.Expect(conditions.GetReason(obj, sourcev1.SourceVerifiedCondition)).To(Equal(sourcev1.VerificationRequiredReason))
		msg = conditions.GetMessage(obj, meta.ReadyCondition)
	}, timeout, 100*time.Millisecond).Should(Succeed())
	return msg
}

// waitAnyReady waits until obj is Ready, whatever its revision.
func waitAnyReady(g *WithT, obj sourceObject) {
	g.Eventually(func(g Gomega) {
		get(g, obj)
		g.Expect(conditions.IsReady(obj)).To(BeTrue(), "Ready: %s", conditions.GetMessage(obj, meta.ReadyCondition))
	}, timeout, 100*time.Millisecond).Should(Succeed())
}

// countRequests counts every request the registry answers for a repository path.
func countRequests(repo string, n *atomic.Int64) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, "/v2/"+repo+"/") {
				n.Add(1)
			}
			next.ServeHTTP(w, r)
		})
	}
}

// With every verifiable kind required: objects without spec.verify are Stalled before anything
// is fetched, those with it are served, and an artifact served before the policy applied stays.
func TestRequireVerification_AllKinds(t *testing.T) {
	g := NewWithT(t)
	startPolicyManager(t, requireAllNamespace, "GitRepository,OCIRepository,HelmChart")
	ns := requireAllNamespace
	var unsignedReads atomic.Int64
	reg := newRegistry(t, countRequests("org/unsigned", &unsignedReads))
	key, err := cosign.NewKey()
	g.Expect(err).NotTo(HaveOccurred())
	keys := newVerifySecret(t, ns, map[string][]byte{"cosign.pub": key.PublicPEM()})
	cosignKeys := &sourcev1.OCIArtifactVerification{Provider: "cosign", SecretRef: &meta.LocalObjectReference{Name: keys}}

	// OCIRepository: without spec.verify, Stalled and the registry never asked.
	pushFiles(t, reg.Host, "org/unsigned", "v1", map[string]string{"cm.yaml": "kind: ConfigMap\n"})
	unsignedReads.Store(0)
	bare := newOCIRepository(ns, "oci://"+reg.Host+"/org/unsigned", func(o *sourcev1.OCIRepository) {
		o.Spec.Ref = &sourcev1.OCIRepositoryRef{Tag: "v1"}
	})
	create(g, bare)
	msg := waitRequired(g, bare)
	g.Expect(msg).To(Equal("this cluster requires every OCIRepository to verify its source (source-controller's --require-verification includes OCIRepository): " + ociVerifyHowTo))
	g.Expect(bare.Status.Artifact).To(BeNil())
	g.Expect(unsignedReads.Load()).To(BeZero(), "nothing fetched")

	// With spec.verify and a signed artifact: served.
	d := pushFiles(t, reg.Host, "org/app", "v1", map[string]string{"cm.yaml": "kind: ConfigMap\n"})
	g.Expect(cosign.Sign(reg.Host+"/org/app", d, []cosign.Signature{{Key: key.Private}})).To(Succeed())
	signed := newOCIRepository(ns, "oci://"+reg.Host+"/org/app", func(o *sourcev1.OCIRepository) {
		o.Spec.Ref = &sourcev1.OCIRepositoryRef{Tag: "v1"}
		o.Spec.Verify = cosignKeys
	})
	create(g, signed)
	waitReady(g, signed, "v1@"+d)
	waitVerified(g, signed)
	served := *signed.Status.Artifact

	// spec.verify removed: Stalled, and the artifact served before stays served.
	update(g, signed, func() { signed.Spec.Verify = nil })
	waitRequired(g, signed)
	g.Expect(signed.Status.Artifact).To(Equal(&served))
	g.Expect(conditions.IsTrue(signed, sourcev1.ArtifactInStorageCondition)).To(BeTrue())
	g.Expect(files(g, &served)).To(Equal(map[string]string{"cm.yaml": "kind: ConfigMap\n"}))

	// GitRepository: without spec.verify, Stalled and not fetched; with it, served.
	alice, pgpKeys := pgpKeySecret(t, g, ns)
	repo := newRepo(t, map[string]string{"a.yaml": "a: 0\n"})
	commit := repo.signedCommitAndPush(map[string]string{"a.yaml": "a: 1\n"}, alice)
	fetches := repo.fetches()
	gitBare := newGitRepository(ns, repo.url, basicAuth(t, ns), &sourcev1.GitRepositoryRef{Branch: "main"})
	create(g, gitBare)
	g.Expect(waitRequired(g, gitBare)).To(ContainSubstring("requires every GitRepository to verify its source (source-controller's --require-verification includes GitRepository): add spec.verify with a mode"))
	g.Expect(repo.fetches()).To(Equal(fetches), "nothing fetched")
	gitSigned := newGitRepository(ns, repo.url, basicAuth(t, ns), &sourcev1.GitRepositoryRef{Branch: "main"})
	gitSigned.Spec.Verification = &sourcev1.GitRepositoryVerification{SecretRef: meta.LocalObjectReference{Name: pgpKeys}}
	create(g, gitSigned)
	waitReady(g, gitSigned, "main@sha1:"+commit)
	waitVerified(g, gitSigned)

	// HelmChart from a HelmRepository: without spec.verify, Stalled.
	pushChart(t, reg.Host+"/charts/web", "1.0.0")
	ref, err := name.ParseReference(reg.Host+"/charts/web:1.0.0", name.Insecure)
	g.Expect(err).NotTo(HaveOccurred())
	head, err := remote.Head(ref)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cosign.Sign(reg.Host+"/charts/web", head.Digest.String(), []cosign.Signature{{Key: key.Private}})).To(Succeed())
	ociCharts := newHelmRepository(ns, "oci://"+reg.Host+"/charts", "")
	ociCharts.Spec.Type, ociCharts.Spec.Insecure = sourcev1.HelmRepositoryTypeOCI, true
	create(g, ociCharts)
	chartBare := newHelmChart(ns, "web", sourcev1.HelmRepositoryKind, ociCharts.Name, func(c *sourcev1.HelmChart) { c.Spec.Version = "1.0.0" })
	create(g, chartBare)
	g.Expect(waitRequired(g, chartBare)).To(ContainSubstring("for a HelmRelease, spec.chart.spec.verify"))
	g.Expect(chartBare.Status.Artifact).To(BeNil())

	// With spec.verify, from an OCI HelmRepository: packaged.
	chartSigned := newHelmChart(ns, "web", sourcev1.HelmRepositoryKind, ociCharts.Name, func(c *sourcev1.HelmChart) {
		c.Spec.Version = "1.0.0"
		c.Spec.Verify = cosignKeys
	})
	create(g, chartSigned)
	waitReady(g, chartSigned, "1.0.0")
	waitVerified(g, chartSigned)

	// With spec.verify, from a HelmRepository that is not OCI: its charts cannot be verified.
	srv := chartRepo(t, "1.0.0")
	httpCharts := readyHelmRepository(t, g, ns, srv)
	downloads := srv.Downloads.Load()
	chartHTTP := newHelmChart(ns, "web", sourcev1.HelmRepositoryKind, httpCharts.Name, func(c *sourcev1.HelmChart) { c.Spec.Verify = cosignKeys })
	create(g, chartHTTP)
	g.Expect(waitRequired(g, chartHTTP)).To(ContainSubstring("HelmRepository " + httpCharts.Name + " is not an OCI registry, and only charts from OCI registries can be verified"))
	g.Expect(chartHTTP.Status.Artifact).To(BeNil())
	g.Expect(srv.Downloads.Load()).To(Equal(downloads), "nothing downloaded")
}

// With some kinds required, the others are unaffected; a HelmChart packaged from a source
// artifact is accepted only when the source verified it, and waits (retried) otherwise.
func TestRequireVerification_SomeKinds(t *testing.T) {
	g := NewWithT(t)
	startPolicyManager(t, requireSomeNamespace, "OCIRepository,HelmChart")
	ns := requireSomeNamespace
	chartFiles := map[string]string{
		"web/Chart.yaml":          "apiVersion: v2\nname: web\nversion: 0.1.0\n",
		"web/templates/cm.yaml":   "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\n",
		"web/values.yaml":         "replicas: 1\n",
		"unrelated/notes.md":      "# notes\n",
		"unrelated/more/notes.md": "# more\n",
	}

	// GitRepository is not listed: served without spec.verify.
	repo := newRepo(t, chartFiles)
	gr := newGitRepository(ns, repo.url, basicAuth(t, ns), &sourcev1.GitRepositoryRef{Branch: "main"})
	create(g, gr)
	waitAnyReady(g, gr)
	g.Expect(conditions.Has(gr, sourcev1.SourceVerifiedCondition)).To(BeFalse())

	// A HelmChart from it waits: its source did not verify the artifact.
	fromGit := newHelmChart(ns, "web", sourcev1.GitRepositoryKind, gr.Name)
	create(g, fromGit)
	g.Eventually(func(g Gomega) {
		get(g, fromGit)
		g.Expect(conditions.GetReason(fromGit, meta.ReadyCondition)).To(Equal(sourcev1.VerificationRequiredReason))
		g.Expect(conditions.GetMessage(fromGit, meta.ReadyCondition)).To(ContainSubstring("GitRepository " + gr.Name + " has not verified its artifact (its SourceVerified condition is not True): add spec.verify to the GitRepository"))
	}, timeout, 100*time.Millisecond).Should(Succeed())
	g.Expect(conditions.IsStalled(fromGit)).To(BeFalse(), "retried: the source may add spec.verify")
	g.Expect(fromGit.Status.Artifact).To(BeNil())

	// A HelmChart from a verified OCIRepository: packaged.
	reg := newRegistry(t, nil)
	key, err := cosign.NewKey()
	g.Expect(err).NotTo(HaveOccurred())
	keys := newVerifySecret(t, ns, map[string][]byte{"cosign.pub": key.PublicPEM()})
	d := pushFiles(t, reg.Host, "org/charts", "v1", chartFiles)
	g.Expect(cosign.Sign(reg.Host+"/org/charts", d, []cosign.Signature{{Key: key.Private}})).To(Succeed())
	oci := newOCIRepository(ns, "oci://"+reg.Host+"/org/charts", func(o *sourcev1.OCIRepository) {
		o.Spec.Ref = &sourcev1.OCIRepositoryRef{Tag: "v1"}
		o.Spec.Verify = &sourcev1.OCIArtifactVerification{Provider: "cosign", SecretRef: &meta.LocalObjectReference{Name: keys}}
	})
	create(g, oci)
	waitReady(g, oci, "v1@"+d)
	fromOCI := newHelmChart(ns, "web", sourcev1.OCIRepositoryKind, oci.Name)
	create(g, fromOCI)
	waitAnyReady(g, fromOCI)
	g.Expect(loadChart(g, fromOCI.Status.Artifact).Metadata.Name).To(Equal("web"))
}
