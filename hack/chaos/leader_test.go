//go:build chaos

package chaos

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/hack/internal/local"
	helmv1 "github.com/plumb-dev/plumb/helm-controller/api/v1beta1"
	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
)

// leaseDuration is the controllers' default --leader-election-lease-duration, and retryPeriod
// their --leader-election-retry-period: a replica takes over at most this long after the
// leader stopped renewing.
const leaseDuration, retryPeriod = 15 * time.Second, 2 * time.Second

const acquired = "Successfully acquired lease"

// replicas starts two leader-elected processes of module for the objects labelled elected,
// stopped when the test ends.
func replicas(t *testing.T, module string) [2]*local.Process {
	t.Helper()
	var out [2]*local.Process
	for i, n := range []string{"a", "b"} {
		p, err := bed.StartControllerAs(module+"-"+n, module, "--leader-elect=true", "--leader-election-namespace=default",
			"--watch-label-selector="+electedLabel)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Stop)
		out[i] = p
	}
	return out
}

// leader waits until one of the replicas logged that it acquired the lease, and returns it and
// the other.
func leader(t *testing.T, ps [2]*local.Process) (lead, other *local.Process) {
	t.Helper()
	NewWithT(t).Eventually(func() bool {
		for i, p := range ps {
			if logSays(p, acquired) {
				lead, other = p, ps[1-i]
				return true
			}
		}
		return false
	}, timeout, poll).Should(BeTrue(), "a replica acquires the lease")
	return lead, other
}

func logSays(p *local.Process, s string) bool {
	b, _ := os.ReadFile(p.Log())
	return strings.Contains(string(b), s)
}

// Two helm-controller replicas with leader election: the leader is killed during an upgrade's
// health wait; the other takes over within the lease and finishes the upgrade without running
// it again (Helm history shows one new revision).
func TestLeaderKilledMidUpgrade(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	c := bed.Env.Client
	defer dumpLogs(t)
	tr := record(t, "leader SIGKILLed mid-upgrade, two replicas", "helm-controller", "the other replica takes over within the lease; Helm history shows one new revision")
	ps := replicas(t, "helm-controller")
	const ns = "leader-helm"
	newNamespace(t, ns)
	dir, srv, hrepo := chartRepository(t, ns)
	hr := &helmv1.HelmRelease{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns, Labels: map[string]string{electedLabel: "true"}},
		Spec: helmv1.HelmReleaseSpec{
			Chart: &helmv1.HelmChartTemplate{Spec: helmv1.HelmChartTemplateSpec{Chart: "web", Version: ">=1.0.0",
				SourceRef: helmv1.LocalChartSourceReference{Kind: sourcev1.HelmRepositoryKind, Name: "charts"}}},
			Interval: metav1.Duration{Duration: time.Hour}, Timeout: &metav1.Duration{Duration: 3 * time.Minute}}}
	g.Expect(c.Create(ctx, hrepo)).To(Succeed())
	g.Expect(c.Create(ctx, hr)).To(Succeed())
	ready(t, hr, func(g Gomega) { g.Expect(hr.Status.History).To(HaveLen(1)) })
	lead, other := leader(t, ps)

	g.Expect(local.PublishChart(dir, srv.URL, chaosChart("2.0.0", true, 0))).To(Succeed())
	request(g, hrepo)
	killWhen(t, lead, timeout, func() bool {
		h, _ := helmHistory(ctx, ns, "web")
		return len(h) == 2 && h[1].Status == "deployed" &&
			c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web-slow"}, &appsv1.Deployment{}) == nil
	})
	killed := time.Now()
	g.Eventually(func() bool { return logSays(other, acquired) }, leaseDuration+retryPeriod+10*time.Second, poll).Should(BeTrue(),
		"the other replica takes over within the lease")
	t.Logf("the other replica took over %.1f s after the kill", time.Since(killed).Seconds())
	g.Eventually(func(g Gomega) {
		g.Expect(scaleDown(ctx, ns, "web-slow")).To(Succeed())
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(hr), hr)).To(Succeed())
		g.Expect(conditions.IsReady(hr)).To(BeTrue(), "Ready: %s", conditions.GetMessage(hr, meta.ReadyCondition))
		g.Expect(hr.Status.History[0].ChartVersion).To(Equal("2.0.0"))
	}, timeout, poll).Should(Succeed())
	tr.recovered(killed)
	h, err := helmHistory(ctx, ns, "web")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(h).To(Equal([]helmRevision{{Version: "1", Status: "superseded"}, {Version: "2", Status: "deployed"}}))
}

// Two apply-controller replicas with leader election: the leader is killed while it applies 300
// objects; the other takes over within the lease, and the inventory and objects are exact.
func TestLeaderKilledMidApply(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	c := bed.Env.Client
	defer dumpLogs(t)
	tr := record(t, "leader SIGKILLed mid-apply of 300 objects, two replicas", "apply-controller", "the other replica takes over within the lease; inventory exactly the 300 objects, all in the cluster")
	ps := replicas(t, "apply-controller")
	const ns = "leader-apply"
	newNamespace(t, ns)
	git := startGit(t, "leader-apply")
	repo, _, err := git.NewRepo("many", map[string]string{"apps/many/objects.yaml": configMaps("a", 0, 10)})
	g.Expect(err).NotTo(HaveOccurred())
	gr := followMain(git, ns, "many")
	ks := &applyv1.Kustomization{ObjectMeta: metav1.ObjectMeta{Name: "many", Namespace: ns, Labels: map[string]string{electedLabel: "true"}},
		Spec: applyv1.KustomizationSpec{SourceRef: applyv1.CrossNamespaceSourceReference{Kind: sourcev1.GitRepositoryKind, Name: "many"},
			Path: "apps/many", TargetNamespace: ns, Prune: true, Interval: metav1.Duration{Duration: time.Hour},
			RetryInterval: &metav1.Duration{Duration: 2 * time.Second}}}
	g.Expect(c.Create(ctx, gr)).To(Succeed())
	g.Expect(c.Create(ctx, ks)).To(Succeed())
	ready(t, ks, func(g Gomega) { g.Expect(inventory(ks)).To(HaveLen(10)) })
	lead, other := leader(t, ps)

	_, err = repo.Commit("300 objects", map[string]string{"apps/many/objects.yaml": configMaps("b", 0, 300)})
	g.Expect(err).NotTo(HaveOccurred())
	request(g, gr)
	killWhen(t, lead, timeout, func() bool {
		live, _ := liveConfigMaps(ctx, ns, "many")
		n := 0
		for _, name := range live {
			if strings.HasPrefix(name, "b-") {
				n++
			}
		}
		return n > 0 && n < 300
	})
	killed := time.Now()
	g.Eventually(func() bool { return logSays(other, acquired) }, leaseDuration+retryPeriod+10*time.Second, poll).Should(BeTrue(),
		"the other replica takes over within the lease")
	t.Logf("the other replica took over %.1f s after the kill", time.Since(killed).Seconds())
	ready(t, ks, func(g Gomega) { g.Expect(inventory(ks)).To(Equal(configMapIDs(ns, "b", 0, 300))) })
	tr.recovered(killed)
	live, err := liveConfigMaps(ctx, ns, "many")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(live).To(Equal(names("b", 0, 300)), "the new objects, and none of the old")
}
