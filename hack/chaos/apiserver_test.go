//go:build chaos

package chaos

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/hack/internal/local"
	helmv1 "github.com/plumb-dev/plumb/helm-controller/api/v1beta1"
	imagev1 "github.com/plumb-dev/plumb/image-automation/api/v1beta1"
	notifyv1 "github.com/plumb-dev/plumb/notification-controller/api/v1beta1"
	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
)

// kube-apiserver stopped, etcd compacted while it is down (so every watch resumes into
// 410 Gone), and started again, with an outage longer than a leader's renew deadline. The five
// controllers started without leader election ride it out in the same processes and carry a new
// image tag from the registry to the cluster and to a chat; a leader-elected apply-controller
// exits (the documented behaviour: its Deployment starts it again) and, started again, loses
// nothing.
func TestAPIServerRestart(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	c := bed.Env.Client
	defer dumpLogs(t)
	const ns = "apiserver"
	newNamespace(t, ns)

	// A leader-elected apply-controller for the objects labelled elected, restarted as its
	// Deployment would be.
	elected, err := bed.StartControllerAs("apply-controller-elected", "apply-controller", "--leader-elect=true",
		"--leader-election-namespace=default", "--watch-label-selector="+electedLabel)
	g.Expect(err).NotTo(HaveOccurred())
	elected.Supervise(time.Second)
	defer elected.Stop()

	// The loop of TestImageTagToCluster (hack/e2e): a tag pushed, committed by image-automation,
	// fetched, applied, told to a chat; plus a HelmRelease and the elected Kustomization.
	reg := local.StartImageRegistry()
	defer reg.Close()
	image := reg.Image
	g.Expect(reg.Push("1.0.0")).To(Succeed())
	git := startGit(t, "apiserver")
	fleet := map[string]string{
		"apps/web/deployment.yaml":  local.WebDeployment(image, "1.0.0", "apiserver:web"),
		"apps/elected/objects.yaml": configMaps("e", 0, 20),
	}
	repo, _, err := git.NewRepo("fleet", fleet)
	g.Expect(err).NotTo(HaveOccurred())
	chartDir := t.TempDir()
	charts := httptest.NewServer(http.FileServer(http.Dir(chartDir)))
	defer charts.Close()
	g.Expect(local.PublishChart(chartDir, charts.URL, chaosChart("1.0.0", false, 0))).To(Succeed())
	sink := &local.SlackSink{}
	chat := httptest.NewServer(sink)
	defer chat.Close()

	gr := followMain(git, ns, "fleet")
	ks := &applyv1.Kustomization{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: applyv1.KustomizationSpec{SourceRef: applyv1.CrossNamespaceSourceReference{Kind: "GitRepository", Name: "fleet"},
			Path: "apps/web", TargetNamespace: ns, Interval: metav1.Duration{Duration: time.Hour}, Prune: true}}
	electedKs := &applyv1.Kustomization{ObjectMeta: metav1.ObjectMeta{Name: "elected", Namespace: ns, Labels: map[string]string{electedLabel: "true"}},
		Spec: applyv1.KustomizationSpec{SourceRef: applyv1.CrossNamespaceSourceReference{Kind: "GitRepository", Name: "fleet"},
			Path: "apps/elected", TargetNamespace: ns, Interval: metav1.Duration{Duration: time.Hour}, Prune: true}}
	imgRepo := &imagev1.ImageRepository{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: imagev1.ImageRepositorySpec{Image: image, Insecure: true, Interval: metav1.Duration{Duration: time.Hour}}}
	pol := &imagev1.ImagePolicy{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: imagev1.ImagePolicySpec{ImageRepositoryRef: meta.NamespacedObjectReference{Name: "web"},
			Policy: imagev1.ImagePolicyChoice{SemVer: &imagev1.SemVerPolicy{Range: "1.x"}}}}
	auto := &imagev1.ImageUpdateAutomation{ObjectMeta: metav1.ObjectMeta{Name: "fleet", Namespace: ns},
		Spec: imagev1.ImageUpdateAutomationSpec{SourceRef: imagev1.SourceReference{Kind: "GitRepository", Name: "fleet"},
			Git:      imagev1.GitSpec{Commit: imagev1.CommitSpec{Author: imagev1.CommitUser{Name: "plumb", Email: "plumb@example.invalid"}}},
			Interval: metav1.Duration{Duration: time.Hour}}}
	provider := &notifyv1.Provider{ObjectMeta: metav1.ObjectMeta{Name: "slack", Namespace: ns},
		Spec: notifyv1.ProviderSpec{Type: notifyv1.SlackProvider, Address: chat.URL + "/services/T000/B000/XXXX"}}
	alert := &notifyv1.Alert{ObjectMeta: metav1.ObjectMeta{Name: "fleet", Namespace: ns},
		Spec: notifyv1.AlertSpec{ProviderRef: meta.LocalObjectReference{Name: "slack"},
			EventSources: []notifyv1.EventSource{{Kind: "Kustomization", Name: "web"}}}}
	hrepo := &sourcev1.HelmRepository{ObjectMeta: metav1.ObjectMeta{Name: "charts", Namespace: ns},
		Spec: sourcev1.HelmRepositorySpec{URL: charts.URL, Interval: metav1.Duration{Duration: time.Hour}}}
	hr := &helmv1.HelmRelease{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: helmv1.HelmReleaseSpec{
			Chart: &helmv1.HelmChartTemplate{Spec: helmv1.HelmChartTemplateSpec{Chart: "web", Version: ">=1.0.0",
				SourceRef: helmv1.LocalChartSourceReference{Kind: sourcev1.HelmRepositoryKind, Name: "charts"}}},
			Interval: metav1.Duration{Duration: time.Hour}}}
	for _, o := range []client.Object{provider, alert, gr, ks, electedKs, imgRepo, pol, auto, hrepo, hr} {
		g.Expect(c.Create(ctx, o)).To(Succeed())
	}
	imageInCluster := func(g Gomega, want string) {
		d := &appsv1.Deployment{}
		g.Expect(c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web"}, d)).To(Succeed())
		g.Expect(d.Spec.Template.Spec.Containers[0].Image).To(Equal(want))
	}
	g.Eventually(func(g Gomega) { imageInCluster(g, image+":1.0.0") }, timeout, poll).Should(Succeed())
	ready(t, auto, nil)
	ready(t, electedKs, nil)
	ready(t, hr, nil)
	g.Expect(inventory(electedKs)).To(Equal(configMapIDs(ns, "e", 0, 20)))
	var before corev1.ConfigMapList
	g.Expect(c.List(ctx, &before, client.InNamespace(ns))).To(Succeed())
	pids := pidsOf()
	electedPid := elected.Pid()

	// The outage: kube-apiserver is killed; while it is down etcd's history is compacted; it
	// stays down until the leader-elected replica has given up its lease.
	// SIGKILL, as a crash or a node failure: with SIGTERM, kube-apiserver drains for a minute
	// before it goes.
	g.Expect(bed.StopAPIServer(true)).To(Succeed())
	down := time.Now()
	_, err = bed.CompactEtcd(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	select {
	case <-elected.Exited():
		t.Logf("the leader-elected replica exited %.1f s into the outage", time.Since(down).Seconds())
	case <-time.After(time.Minute):
		t.Fatal("the leader-elected replica still runs a minute into the outage")
	}
	g.Expect(bed.StartAPIServer()).To(Succeed())
	since := time.Now()
	t.Logf("kube-apiserver down for %.1f s", since.Sub(down).Seconds())
	logged, _ := os.ReadFile(elected.Log())
	g.Expect(string(logged)).To(ContainSubstring("leader election lost"), "the elected replica says why it exits")

	// A watch from before the outage is expired, as the controllers' were.
	cs, err := kubernetes.NewForConfig(bed.Env.Config)
	g.Expect(err).NotTo(HaveOccurred())
	w, err := cs.CoreV1().ConfigMaps(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: before.ResourceVersion})
	if err == nil {
		ev := <-w.ResultChan()
		w.Stop()
		g.Expect(ev.Object).To(BeAssignableToTypeOf(&metav1.Status{}), "a watch from before the compaction")
		err = apierrors.FromObject(ev.Object)
	}
	g.Expect(apierrors.IsResourceExpired(err) || apierrors.IsGone(err)).To(BeTrue(), "410 Gone for a watch from before the compaction: %v", err)

	// A new tag travels through every controller.
	heard := len(sink.Received())
	rows := map[string]*trial{}
	for _, m := range controllers {
		rows[m] = record(t, "kube-apiserver restarted, etcd compacted (watches 410 Gone)", m, "same process throughout; a new image tag carried through all five controllers")
	}
	rowElected := record(t, "kube-apiserver down past the leader's renew deadline", "apply-controller (leader-elected)", "exits (leader election lost), restarted by its Deployment; a new revision applied, inventory exact")
	// The elected Kustomization's objects shrink in Git, before image-automation commits on top.
	_, err = repo.Commit("fewer objects for the elected Kustomization", map[string]string{"apps/elected/objects.yaml": configMaps("e", 0, 10)})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(reg.Push("1.1.0")).To(Succeed())
	request(g, imgRepo)
	g.Eventually(func(g Gomega) {
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(auto), auto)).To(Succeed())
		g.Expect(auto.Status.LastPushCommit).NotTo(BeEmpty())
	}, timeout, poll).Should(Succeed())
	rows["image-automation"].recovered(since)
	request(g, gr)
	head := "main@sha1:" + auto.Status.LastPushCommit
	g.Eventually(func(g Gomega) {
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(gr), gr)).To(Succeed())
		g.Expect(gr.Status.Artifact).NotTo(BeNil())
		g.Expect(gr.Status.Artifact.Revision).To(Equal(head))
	}, timeout, poll).Should(Succeed())
	rows["source-controller"].recovered(since)
	g.Eventually(func(g Gomega) { imageInCluster(g, image+":1.1.0") }, timeout, poll).Should(Succeed())
	rows["apply-controller"].recovered(since)
	g.Eventually(func(g Gomega) {
		msgs := sink.Received()
		g.Expect(msgs[heard:]).To(ContainElement(HavePrefix("Kustomization/" + ns + "/web: Succeeded")))
	}, timeout, poll).Should(Succeed())
	rows["notification-controller"].recovered(since)
	g.Expect(local.PublishChart(chartDir, charts.URL, chaosChart("1.1.0", false, 0))).To(Succeed())
	request(g, hrepo)
	ready(t, hr, func(g Gomega) { g.Expect(hr.Status.History[0].ChartVersion).To(Equal("1.1.0")) })
	rows["helm-controller"].recovered(since)
	ready(t, electedKs, func(g Gomega) { g.Expect(electedKs.Status.LastAppliedRevision).To(Equal(head)) })
	rowElected.recovered(since)
	g.Expect(inventory(electedKs)).To(Equal(configMapIDs(ns, "e", 0, 10)))
	live, err := liveConfigMaps(ctx, ns, "elected")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(live).To(Equal(names("e", 0, 10)))

	g.Expect(pidsOf()).To(Equal(pids), "the controllers without leader election ran through the outage in the same processes")
	g.Expect(elected.Pid()).NotTo(Equal(electedPid))
	t.Logf("the leader-elected replica was started %d times", elected.Restarts())
}
