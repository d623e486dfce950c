//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/hack/internal/local"
	notifyv1 "github.com/plumb-dev/plumb/notification-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/shared/testing/notifytest"
	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
)

// pagerDutySink stands in for PagerDuty's Events API v2 on loopback: it keeps the action and
// dedup_key of each event and answers 202 as PagerDuty does.
type pagerDutySink struct {
	mu      sync.Mutex
	actions []string
}

func (s *pagerDutySink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var ev struct {
		Action   string `json:"event_action"`
		DedupKey string `json:"dedup_key"`
	}
	if r.URL.Path != "/v2/enqueue" || json.NewDecoder(r.Body).Decode(&ev) != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.actions = append(s.actions, ev.Action+" "+ev.DedupKey)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write([]byte(`{"status":"success","message":"Event processed","dedup_key":"` + ev.DedupKey + `"}`))
}

func (s *pagerDutySink) received() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.actions...)
}

// A failing then fixed Kustomization, its events fanned out by notification-controller to Slack
// (loopback), PagerDuty (loopback) and the real Alertmanager, one Alert per Provider with
// notifyOn Failure and Recovery: the failure pages once however often it is retried, the fix
// resolves once, and Alertmanager's alert fires and resolves.
func TestFailureFannedOutToIncidents(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	c := bed.Env.Client
	defer dumpLogs(t)
	am := notifytest.StartAlertmanager(t, "", "")
	slack := &local.SlackSink{}
	slackSrv := httptest.NewServer(slack)
	defer slackSrv.Close()
	pd := &pagerDutySink{}
	pdSrv := httptest.NewServer(pd)
	defer pdSrv.Close()

	git, err := local.StartGitServer(filepath.Join(bed.Dir, "git-incident"))
	g.Expect(err).NotTo(HaveOccurred())
	defer git.Stop()
	repo, commit, err := git.NewRepo("oncall", app("calm", false))
	g.Expect(err).NotTo(HaveOccurred())

	ns := "oncall"
	g.Expect(c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	gr := &sourcev1.GitRepository{ObjectMeta: metav1.ObjectMeta{Name: "oncall", Namespace: ns},
		Spec: sourcev1.GitRepositorySpec{URL: git.URL("oncall"), Interval: metav1.Duration{Duration: time.Hour}}}
	ks := &applyv1.Kustomization{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: applyv1.KustomizationSpec{SourceRef: applyv1.CrossNamespaceSourceReference{Kind: sourcev1.GitRepositoryKind, Name: "oncall"},
			Path: "apps/web", TargetNamespace: ns, Prune: true,
			Interval: metav1.Duration{Duration: time.Hour}, RetryInterval: &metav1.Duration{Duration: 2 * time.Second}}}
	providers := []*notifyv1.Provider{
		{ObjectMeta: metav1.ObjectMeta{Name: "slack", Namespace: ns},
			Spec: notifyv1.ProviderSpec{Type: notifyv1.SlackProvider, Address: slackSrv.URL + "/services/T000/B000/XXXX"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "pagerduty", Namespace: ns},
			Spec: notifyv1.ProviderSpec{Type: notifyv1.PagerDutyProvider, Address: pdSrv.URL, Channel: "0123456789abcdef0123456789abcdef"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "alertmanager", Namespace: ns},
			Spec: notifyv1.ProviderSpec{Type: notifyv1.AlertmanagerProvider, Address: am.URL + "/api/v2/alerts"}},
	}
	objs := []client.Object{gr, ks}
	for _, p := range providers {
		objs = append(objs, p, &notifyv1.Alert{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: ns},
			Spec: notifyv1.AlertSpec{ProviderRef: meta.LocalObjectReference{Name: p.Name}, NotifyOn: []string{"Failure", "Recovery"},
				EventSources: []notifyv1.EventSource{{Kind: "Kustomization", Name: "web"}}}})
	}
	for _, o := range objs {
		g.Expect(c.Create(ctx, o)).To(Succeed())
	}
	appliedCommit(g, ks, commit)
	g.Eventually(func(g Gomega) {
		for _, p := range providers {
			a := &notifyv1.Alert{}
			g.Expect(c.Get(ctx, client.ObjectKey{Namespace: ns, Name: p.Name}, a)).To(Succeed())
			g.Expect(conditions.IsReady(a)).To(BeTrue(), p.Name)
		}
	}, timeout, 200*time.Millisecond).Should(Succeed())
	g.Expect(c.Get(ctx, client.ObjectKeyFromObject(providers[1]), providers[1])).To(Succeed())
	key := "plumb/" + string(providers[1].UID) + "/Kustomization/" + ns + "/web"

	// A commit that does not build (a remote base, refused by --no-remote-bases), retried
	// every 2 s.
	_, err = repo.Commit("use a remote base", map[string]string{
		"apps/web/kustomization.yaml": "resources:\n- deployment.yaml\n- https://example.invalid/base.yaml\n",
	})
	g.Expect(err).NotTo(HaveOccurred())
	request(g, gr)
	g.Eventually(pd.received, timeout, 100*time.Millisecond).Should(Equal([]string{"trigger " + key}))
	g.Eventually(func(g Gomega) {
		alerts, err := am.Alerts()
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(alerts).To(HaveLen(1))
		g.Expect(alerts[0].Labels).To(And(HaveKeyWithValue("alertname", "PlumbKustomization"+applyv1.BuildFailedReason),
			HaveKeyWithValue("namespace", ns), HaveKeyWithValue("name", "web"), HaveKeyWithValue("reportingcontroller", "apply-controller")))
		g.Expect(alerts[0].Annotations["message"]).To(ContainSubstring("remote bases are turned off"))
	}, timeout, 100*time.Millisecond).Should(Succeed())
	g.Eventually(slack.Received, timeout, 100*time.Millisecond).Should(ConsistOf(HavePrefix("Kustomization/" + ns + "/web: " + applyv1.BuildFailedReason)))

	// The failure goes on (three failed attempts at least) and pages no one again.
	g.Eventually(func() int { return warnings(ctx, g, ns, "web") }, timeout, 200*time.Millisecond).Should(BeNumerically(">=", 3))
	g.Consistently(pd.received, time.Second, 100*time.Millisecond).Should(HaveLen(1))
	g.Expect(slack.Received()).To(HaveLen(1))

	// The fix (which changes the ConfigMap, so that apply-controller records its success).
	files := app("fixed", false)
	files["apps/web/kustomization.yaml"] = ""
	fixed, err := repo.Commit("back to local files", files)
	g.Expect(err).NotTo(HaveOccurred())
	request(g, gr)
	appliedCommit(g, ks, fixed)
	g.Eventually(pd.received, timeout, 100*time.Millisecond).Should(Equal([]string{"trigger " + key, "resolve " + key}))
	g.Eventually(func(g Gomega) {
		alerts, err := am.Alerts()
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(alerts).To(BeEmpty(), "the recovery resolves the alert")
	}, timeout, 100*time.Millisecond).Should(Succeed())
	g.Eventually(slack.Received, timeout, 100*time.Millisecond).Should(HaveLen(2))
	g.Expect(slack.Received()[1]).To(HavePrefix("Kustomization/" + ns + "/web: " + applyv1.SucceededReason))
	g.Consistently(pd.received, 2*time.Second, 100*time.Millisecond).Should(HaveLen(2), "exactly one page and one resolve")
}

// warnings counts the Warning events about a Kustomization, repeats included.
func warnings(ctx context.Context, g *WithT, ns, name string) int {
	var list eventsv1.EventList
	g.Expect(bed.Env.Client.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
	n := 0
	for _, ev := range list.Items {
		if ev.Type != corev1.EventTypeWarning || ev.Regarding.Kind != applyv1.KustomizationKind || ev.Regarding.Name != name {
			continue
		}
		n++
		if ev.Series != nil {
			n += int(ev.Series.Count) - 1
		}
	}
	return n
}
