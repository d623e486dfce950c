package controller

import (
	"context"
	"regexp"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/plumb-dev/plumb/shared/testing/nettest"
	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
)

// Six GitRepositories of a server that accepts and never answers, with a long spec.timeout,
// must not keep a healthy GitRepository of another host waiting: the reconciler has 4 workers.
func TestGitRepository_HangingHostDoesNotStarveOthers(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	hang := nettest.NewHanging(t)
	var stuck []*sourcev1.GitRepository
	for range 6 {
		obj := newGitRepository(ns, "http://"+hang.Addr+"/stuck.git", "", nil)
		obj.Spec.Timeout = &metav1.Duration{Duration: 5 * time.Minute}
		create(g, obj)
		stuck = append(stuck, obj)
		t.Cleanup(func() { _ = k8s.Delete(context.Background(), obj) })
	}
	// The hung reconciles have started before the healthy one is created.
	g.Eventually(hang.Accepted, timeout, 50*time.Millisecond).Should(BeNumerically(">=", 2))

	start := time.Now()
	repo := newRepo(t, map[string]string{"app.yaml": "kind: ConfigMap\n"})
	head, err := repo.repo.Head()
	g.Expect(err).NotTo(HaveOccurred())
	healthy := newGitRepository(ns, repo.url, basicAuth(t, ns), nil)
	create(g, healthy)
	g.Eventually(func(g Gomega) {
		get(g, healthy)
		g.Expect(healthy.Status.Artifact).NotTo(BeNil())
		g.Expect(healthy.Status.Artifact.Revision).To(Equal("main@sha1:" + head.Hash().String()))
	}, 10*time.Second, 100*time.Millisecond).Should(Succeed(), "the healthy GitRepository waited behind the hanging host")
	t.Logf("healthy GitRepository Ready after %s", time.Since(start).Round(time.Millisecond))

	// Those queued behind the hung listing say why they wait.
	g.Eventually(func(g Gomega) {
		busy := 0
		for _, obj := range stuck {
			get(g, obj)
			if conditions.GetReason(obj, meta.ReadyCondition) == sourcev1.HostBusyReason {
				// One listing holds the host; the others queued behind it gave up.
				g.Expect(conditions.GetMessage(obj, meta.ReadyCondition)).To(MatchRegexp(`^host ` + regexp.QuoteMeta(hang.Addr) + ` is busy: [12] operations? in flight$`))
				busy++
			}
		}
		g.Expect(busy).To(BeNumerically(">=", 1))
	}, timeout, 100*time.Millisecond).Should(Succeed())
	// And a host that accepts and never answers fails at the response-header deadline, well
	// before the five minutes of spec.timeout.
	g.Eventually(func(g Gomega) {
		failed := 0
		for _, obj := range stuck {
			get(g, obj)
			if conditions.GetReason(obj, meta.ReadyCondition) == sourcev1.GitOperationFailedReason {
				g.Expect(conditions.GetMessage(obj, meta.ReadyCondition)).To(ContainSubstring("timeout awaiting response headers"))
				failed++
			}
		}
		g.Expect(failed).To(BeNumerically(">=", 1))
	}, testDeadlines.ResponseHeader+timeout, 100*time.Millisecond).Should(Succeed())
}
