//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/hack/internal/local"
	"github.com/plumb-dev/plumb/shared/testing/testenv"
	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
)

// The dashboard in a real browser, against the real controllers: the overview, a click through
// to a failing Kustomization, the fixing commit pushed, "Reconcile with source" pressed, the
// page turning Ready by itself (server-sent events, no reload), the flow graph with its red
// path, and no console errors. A second dashboard, run as a user whose RBAC forbids patch,
// shows no action buttons. Screenshots go to the test's artifact folder (go test -artifacts
// keeps them); with PLUMB_UPDATE_SCREENSHOTS=1 the flow graph also goes to
// docs/images/dashboard-flow.png for the README.
func TestDashboardInBrowser(t *testing.T) {
	chromium := testenv.NeedTool(t, "chromium")
	g := NewWithT(t)
	ctx := context.Background()
	c := bed.Env.Client
	defer dumpLogs(t)
	root, err := testenv.WorkspaceRoot()
	g.Expect(err).NotTo(HaveOccurred())
	shots := t.ArtifactDir()

	// A repository whose web app does not build: its kustomization.yaml names a missing file.
	git, err := local.StartGitServer(filepath.Join(bed.Dir, "git-dashboard"))
	g.Expect(err).NotTo(HaveOccurred())
	defer git.Stop()
	files := app("hello", true)
	files["apps/web/kustomization.yaml"] = "resources: [deployment.yaml, config.yaml, service.yaml, missing.yaml]\n"
	files["infra/settings.yaml"] = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  region: local\n"
	files["frontend/frontend.yaml"] = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: frontend\ndata:\n  theme: light\n"
	repo, _, err := git.NewRepo("dashboard", files)
	g.Expect(err).NotTo(HaveOccurred())

	ns := "dash"
	g.Expect(c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	gr := &sourcev1.GitRepository{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: ns},
		Spec: sourcev1.GitRepositorySpec{URL: git.URL("dashboard"), Ref: &sourcev1.GitRepositoryRef{Branch: "main"}, Interval: metav1.Duration{Duration: time.Hour}}}
	g.Expect(c.Create(ctx, gr)).To(Succeed())
	ks := func(name, path string, deps ...string) *applyv1.Kustomization {
		k := &applyv1.Kustomization{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: applyv1.KustomizationSpec{
				SourceRef: applyv1.CrossNamespaceSourceReference{Kind: sourcev1.GitRepositoryKind, Name: "shop"},
				Path:      path, TargetNamespace: ns, Prune: true,
				Interval: metav1.Duration{Duration: time.Hour}, RetryInterval: &metav1.Duration{Duration: 2 * time.Second},
			}}
		for _, d := range deps {
			k.Spec.DependsOn = append(k.Spec.DependsOn, applyv1.DependencyReference{Name: d})
		}
		g.Expect(c.Create(ctx, k)).To(Succeed())
		return k
	}
	ks("infra", "infra")
	web := ks("web", "apps/web", "infra")
	ks("frontend", "frontend", "web")
	g.Eventually(func(g Gomega) {
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(web), web)).To(Succeed())
		g.Expect(conditions.IsFalse(web, meta.ReadyCondition)).To(BeTrue())
		g.Expect(conditions.GetReason(web, meta.ReadyCondition)).To(Equal(applyv1.BuildFailedReason))
	}, timeout, 200*time.Millisecond).Should(Succeed())

	// A user who may read Plumb's objects and their Events, and patch nothing.
	viewerRBAC(g, "plumb-e2e-viewer")

	url, err := bed.StartDashboard("dashboard")
	g.Expect(err).NotTo(HaveOccurred())
	viewerURL, err := bed.StartDashboard("dashboard-viewer", "--as", "plumb-e2e-viewer")
	g.Expect(err).NotTo(HaveOccurred())

	browser, cancel := newBrowser(t, chromium)
	defer cancel()
	var mu sync.Mutex
	var problems []string
	go func() {
		for m, err := range chromedp.Console(browser) {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleException || m.Type == chromedp.ConsoleWarning {
				mu.Lock()
				problems = append(problems, fmt.Sprintf("%s (%s:%d)", m, m.URL, m.Line+1))
				mu.Unlock()
			}
		}
	}()
	do := func(steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		step, cancel := context.WithTimeout(browser, timeout)
		defer cancel()
		g.Expect(chromedp.Do(step, steps...)).To(Succeed())
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(browser, chromedp.Text(chromedp.CSS(sel)))
		g.Expect(err).NotTo(HaveOccurred())
		return s
	}
	shot := func(name, sel string) []byte {
		t.Helper()
		var b []byte
		var err error
		if sel == "" {
			b, err = chromedp.Run(browser, chromedp.FullScreenshot(100))
		} else {
			b, err = chromedp.Run(browser, chromedp.Screenshot(chromedp.CSS(sel)))
		}
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(os.WriteFile(filepath.Join(shots, name), b, 0o644)).To(Succeed())
		return b
	}

	// The overview: every object of the namespace, the failing one written out.
	webLink := `a[href="/o/apply.plumb.dev/Kustomization/dash/web"]`
	do(chromedp.Navigate(url+"?ns="+ns), chromedp.WaitVisible(chromedp.CSS(webLink)))
	overview := text("#live-overview")
	g.Expect(overview).To(ContainSubstring("GitRepository"))
	g.Expect(overview).To(MatchRegexp(`web\s+✖ Failed\s+BuildFailed`))
	g.Expect(overview).To(MatchRegexp(`frontend\s+✖ Failed\s+DependencyNotReady`))
	shot("overview.png", "")
	// The first Tab reaches the skip link: the page is keyboard reachable from the top.
	do(chromedp.KeyEvent("\t"))
	active, err := chromedp.Run(browser, chromedp.Evaluate[string](`document.activeElement.textContent`))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(active).To(Equal("Skip to content"))

	// The flow graph: the red path from web to frontend.
	do(chromedp.Navigate(url+"graph?ns="+ns), chromedp.WaitVisible(chromedp.CSS("svg.graph")))
	g.Expect(text("#live-graph")).To(MatchRegexp(`Kustomization dash/web is\s+✖ Failed; it blocks\s+Kustomization dash/frontend`))
	red, err := chromedp.Run(browser, chromedp.Evaluate[int](`document.querySelectorAll('path.edge.red[data-from="apply.plumb.dev/Kustomization/dash/web"]').length`))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(red).To(BeNumerically(">=", 1))
	flow := shot("flow.png", ".graph-scroll")
	if os.Getenv("PLUMB_UPDATE_SCREENSHOTS") == "1" {
		g.Expect(os.WriteFile(filepath.Join(root, "docs", "images", "dashboard-flow.png"), flow, 0o644)).To(Succeed())
	}

	// Click through to the failing Kustomization.
	do(chromedp.Navigate(url+"?ns="+ns), chromedp.WaitVisible(chromedp.CSS(webLink)), chromedp.Click(chromedp.CSS(webLink)),
		chromedp.WaitVisible(chromedp.ID("act-reconcile-with-source")))
	g.Expect(text("#live-object")).To(ContainSubstring("missing.yaml"))
	shot("failing.png", "")
	do(chromedp.Evaluate[chromedp.Void](`window.plumbNoReload = 42`))

	// The fix, and "Reconcile with source": the page turns Ready without a reload.
	files["apps/web/kustomization.yaml"] = "resources: [deployment.yaml, config.yaml, service.yaml]\n"
	_, err = repo.Commit("web: drop the missing file", files)
	g.Expect(err).NotTo(HaveOccurred())
	do(chromedp.Click(chromedp.ID("act-reconcile-with-source")))
	ready, rcancel := context.WithTimeout(browser, timeout)
	defer rcancel()
	_, err = chromedp.Run(ready, chromedp.Poll[bool](`document.querySelector('#live-object dl.status dd').textContent.includes('Ready')`))
	g.Expect(err).NotTo(HaveOccurred(), "the Kustomization turns Ready on the page")
	g.Expect(text("#action-result")).To(ContainSubstring("Reconcile of the source GitRepository dash/shop requested"))
	marker, err := chromedp.Run(browser, chromedp.Evaluate[int](`window.plumbNoReload || 0`))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(marker).To(Equal(42), "live updates, not a reload")
	shot("ready.png", "")
	g.Expect(c.Get(ctx, client.ObjectKeyFromObject(web), web)).To(Succeed())
	g.Expect(conditions.IsReady(web)).To(BeTrue())

	// The viewer sees the object, and no action buttons.
	do(chromedp.Navigate(viewerURL+"o/apply.plumb.dev/Kustomization/dash/web"), chromedp.WaitVisible(chromedp.CSS("#live-object")))
	buttons, err := chromedp.Run(browser, chromedp.Evaluate[int](`document.querySelectorAll('form[data-action] button').length`))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(buttons).To(Equal(0))
	g.Expect(text("#live-object")).To(ContainSubstring("None: your RBAC does not allow patching this object."))
	shot("viewer.png", "")

	mu.Lock()
	defer mu.Unlock()
	g.Expect(problems).To(BeEmpty(), "console errors and warnings")
	t.Logf("screenshots in %s", shots)
}

// newBrowser starts Debian's chromium, headless, with a fresh profile and nothing that calls
// home.
func newBrowser(t *testing.T, path string) (context.Context, context.CancelFunc) {
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1700, 1000),
	)
	ctx, cancel := chromedp.NewContext(alloc)
	if err := chromedp.Do(ctx); err != nil { // start the browser now, bound to no step's timeout
		cancel()
		cancelAlloc()
		testenv.MissingTool(t, "chromium", err)
	}
	return ctx, func() { cancel(); cancelAlloc() }
}

// viewerRBAC lets user read Plumb's objects and their Events everywhere, and nothing more.
func viewerRBAC(g *WithT, user string) {
	ctx := context.Background()
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: user}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{"source.plumb.dev", "apply.plumb.dev", "helm.plumb.dev", "image.plumb.dev", "notification.plumb.dev"},
			Resources: []string{"*"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"get", "list", "watch"}},
	}}
	g.Expect(bed.Env.Client.Create(ctx, role)).To(Succeed())
	g.Expect(bed.Env.Client.Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: user},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: user},
		Subjects: []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: user}}})).To(Succeed())
}
