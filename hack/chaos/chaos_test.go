//go:build chaos

// Package chaos injects faults into Plumb running as it runs in a cluster, and measures what
// they do: the local control plane (with kube-controller-manager), the five controllers built
// and run as processes (as hack/e2e runs them), Git servers, registries and chart repositories
// on loopback. Faults come from real mechanisms: SIGKILL to a controller's process, kube-apiserver
// stopped and started again, etcd compacted, a TCP proxy (hack/internal/fault) in front of a
// server that refuses, resets, hangs or answers 500, a full tmpfs under source-controller's
// storage. Each test asserts that the objects converge, nothing is lost or wrongly pruned, and
// the conditions say what happened; each records a row of docs/reliability.md.
//
// Run with `make chaos` (`make chaos UPDATE=1` records the results in docs/reliability.json and
// the table); the suite needs root for the tmpfs, and skips the storage-full test without it.
package chaos

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/hack/internal/fault"
	"github.com/plumb-dev/plumb/hack/internal/local"
	"github.com/plumb-dev/plumb/hack/internal/reliability"
	"github.com/plumb-dev/plumb/shared/testing/testenv"
	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
)

const (
	timeout = 2 * time.Minute
	poll    = 100 * time.Millisecond
	// electedLabel marks the objects of the tests of leader election: the controllers started
	// in TestMain leave them to the leader-elected replicas those tests start.
	electedLabel = "chaos.plumb.dev/elected"
	// storageSize is the tmpfs under source-controller's --storage-path.
	storageSize = 256 << 20
)

var (
	update = flag.Bool("update", false, "record the results in docs/reliability.json and the table of docs/reliability.md")

	bed *local.Bed
	// procs are the controllers started in TestMain, by module.
	procs = map[string]*local.Process{}
	// apiProxy is in front of kube-apiserver for every controller.
	apiProxy *fault.Proxy
	// artifactProxy is in front of source-controller's artifact server: consumers download
	// through it (--storage-adv-addr).
	artifactProxy *fault.Proxy
	// storageDir is source-controller's --storage-path; onTmpfs says whether it is a tmpfs of
	// storageSize bytes the suite mounted.
	storageDir string
	onTmpfs    bool

	resultsMu sync.Mutex
	results   []reliability.Result
)

var controllers = []string{"source-controller", "apply-controller", "helm-controller", "image-automation", "notification-controller"}

func TestMain(m *testing.M) {
	flag.Parse()
	log.SetOutput(io.Discard) // the test Git servers log every request
	start := time.Now()
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(1)
	}
	if err := report(time.Since(start)); err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		code = 1
	}
	os.Exit(code)
}

func run(m *testing.M) (int, error) {
	var err error
	if bed, err = local.StartBed("plumb-chaos-", true); err != nil {
		return 0, err
	}
	defer func() {
		bed.Stop()
		// Stop left the tmpfs' mount point (or removed the folder under it only).
		if onTmpfs {
			_ = syscall.Unmount(storageDir, 0)
			_ = os.RemoveAll(bed.Dir)
		}
	}()
	if err := setUp(); err != nil {
		for _, p := range procs {
			p.Stop()
		}
		return 0, err
	}
	return m.Run(), nil
}

func setUp() error {
	storageDir = filepath.Join(bed.Dir, "storage")
	if err := os.MkdirAll(storageDir, 0o755); err != nil {
		return err
	}
	onTmpfs = syscall.Mount("tmpfs", storageDir, "tmpfs", 0, fmt.Sprintf("size=%d", storageSize)) == nil
	u, err := url.Parse(bed.Env.Config.Host)
	if err != nil {
		return err
	}
	if apiProxy, err = fault.Start(u.Host); err != nil {
		return err
	}
	// The controllers' kubeconfig leads to kube-apiserver through the proxy (its serving
	// certificate is for 127.0.0.1, whatever the port).
	kc, err := os.ReadFile(bed.Kubeconfig)
	if err != nil {
		return err
	}
	if !strings.Contains(string(kc), u.Host) {
		return fmt.Errorf("kubeconfig does not name %s", u.Host)
	}
	if err := os.WriteFile(bed.Kubeconfig, []byte(strings.ReplaceAll(string(kc), u.Host, apiProxy.Addr)), 0o600); err != nil {
		return err
	}
	storageAddr, err := local.FreeAddr()
	if err != nil {
		return err
	}
	if artifactProxy, err = fault.Start(storageAddr); err != nil {
		return err
	}
	shard := "--watch-label-selector=!" + electedLabel
	starts := []struct {
		module string
		args   []string
	}{
		{"source-controller", []string{"--storage-path", storageDir, "--storage-addr", storageAddr, "--storage-adv-addr", artifactProxy.Addr, "--artifact-retention", "2"}},
		{"apply-controller", []string{shard}},
		{"helm-controller", []string{shard}},
		{"image-automation", []string{"--storage-path", filepath.Join(bed.Dir, "image-data")}},
		{"notification-controller", []string{"--receiver-addr", "127.0.0.1:0", "--provider-allow-cidr=127.0.0.1/32"}},
	}
	for _, s := range starts {
		p, err := bed.StartController(s.module, s.args...)
		if err != nil {
			return err
		}
		procs[s.module] = p
	}
	return nil
}

// report writes the results: with -update into docs/reliability.json and the table of
// docs/reliability.md, otherwise into the bed's folder, and prints the table.
func report(d time.Duration) error {
	resultsMu.Lock()
	defer resultsMu.Unlock()
	if len(results) == 0 {
		return nil
	}
	commit, dirty := gitState()
	run := &reliability.Run{
		Date:            time.Now().UTC().Format(time.DateOnly),
		Commit:          commit,
		Dirty:           dirty,
		Machine:         fmt.Sprintf("%d CPUs, %s/%s, kube-apiserver %s", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, filepath.Base(testenv.AssetsDir())),
		DurationSeconds: d.Round(time.Second).Seconds(),
		Results:         results,
	}
	fmt.Println(run.Markdown())
	if !*update {
		return nil
	}
	for _, r := range results {
		if !r.Green() {
			return fmt.Errorf("not recorded: %s under %q did not recover without loss (%s)", r.Controller, r.Fault, r.Outcome)
		}
	}
	root, err := testenv.WorkspaceRoot()
	if err != nil {
		return err
	}
	if err := run.Save(filepath.Join(root, "docs", "reliability.json")); err != nil {
		return err
	}
	return reliability.WriteTable(filepath.Join(root, "docs", "reliability.md"), run)
}

// gitState is the short hash of HEAD, and whether files other than the recorded results have
// uncommitted changes.
func gitState() (string, bool) {
	root, err := testenv.WorkspaceRoot()
	if err != nil {
		return "unknown", true
	}
	head, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown", true
	}
	status, err := exec.Command("git", "-C", root, "status", "--porcelain", "--", ".", ":!docs/reliability.json", ":!docs/reliability.md").Output()
	return strings.TrimSpace(string(head)), err != nil || len(strings.TrimSpace(string(status))) > 0
}

// trial is one row of the results: a fault on a controller, recorded when its test ends, as
// failed if the test failed.
type trial struct {
	t *testing.T
	r reliability.Result
}

// record starts the row of a fault; checked says what the test asserts beyond convergence.
func record(t *testing.T, faultName, controller, checked string) *trial {
	tr := &trial{t: t, r: reliability.Result{Fault: faultName, Controller: controller, Checked: checked, Test: t.Name(), DataLost: "none", RecoverySeconds: -1}}
	t.Cleanup(func() {
		tr.r.Outcome = "recovered"
		if t.Failed() {
			tr.r.Outcome = "failed"
		} else if tr.r.RecoverySeconds < 0 {
			tr.r.Outcome = "failed: no recovery measured"
		}
		resultsMu.Lock()
		results = append(results, tr.r)
		resultsMu.Unlock()
	})
	return tr
}

// recovered records the time from the end of the fault to convergence.
func (tr *trial) recovered(since time.Time) {
	tr.r.RecoverySeconds = time.Since(since).Round(100 * time.Millisecond).Seconds()
	tr.t.Logf("%s: recovered in %.1f s", tr.r.Fault, tr.r.RecoverySeconds)
}

// lost records what the fault lost (the test fails too).
func (tr *trial) lost(what string) {
	tr.r.DataLost = what
	tr.t.Errorf("%s: lost %s", tr.r.Fault, what)
}

// startGit starts a Git server of the test's own, its repositories under the bed's folder
// (kept with the logs), stopped when the test ends.
func startGit(t *testing.T, name string) *local.GitServer {
	t.Helper()
	git, err := local.StartGitServer(filepath.Join(bed.Dir, "git-"+name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(git.Stop)
	return git
}

// followMain is a GitRepository of ns that follows the main branch of the repository name on
// git, hourly.
func followMain(git *local.GitServer, ns, name string) *sourcev1.GitRepository {
	return &sourcev1.GitRepository{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: sourcev1.GitRepositorySpec{URL: git.URL(name), Ref: &sourcev1.GitRepositoryRef{Branch: "main"}, Interval: metav1.Duration{Duration: time.Hour}}}
}

// chartRepository serves a chart repository of the test's own from dir (closed when the test
// ends), with chaosChart 1.0.0 published, and returns the HelmRepository of ns that reads it.
func chartRepository(t *testing.T, ns string) (dir string, srv *httptest.Server, repo *sourcev1.HelmRepository) {
	t.Helper()
	dir = t.TempDir()
	srv = httptest.NewServer(http.FileServer(http.Dir(dir)))
	t.Cleanup(srv.Close)
	if err := local.PublishChart(dir, srv.URL, chaosChart("1.0.0", false, 0)); err != nil {
		t.Fatal(err)
	}
	repo = &sourcev1.HelmRepository{ObjectMeta: metav1.ObjectMeta{Name: "charts", Namespace: ns},
		Spec: sourcev1.HelmRepositorySpec{URL: srv.URL, Interval: metav1.Duration{Duration: time.Hour}}}
	return dir, srv, repo
}

// newNamespace creates a namespace for one test.
func newNamespace(t *testing.T, name string) {
	t.Helper()
	NewWithT(t).Expect(bed.Env.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})).To(Succeed())
}

// request asks for a reconcile now, as a webhook Receiver would.
func request(g Gomega, obj client.Object) {
	g.Expect(local.RequestReconcile(context.Background(), bed.Env.Client, obj)).To(Succeed())
}

// killWhen polls cond and kills p with SIGKILL as soon as it holds; it fails the test if cond
// never held, or held only once p had nothing left to do (then the kill missed its moment).
func killWhen(t *testing.T, p *local.Process, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("the moment to kill never came within %s", within)
		}
		time.Sleep(5 * time.Millisecond) // a poll with a deadline
	}
	p.Kill()
}

// restart starts a killed controller again and returns when it was started.
func restart(t *testing.T, p *local.Process) time.Time {
	t.Helper()
	if err := p.Restart(); err != nil {
		t.Fatal(err)
	}
	return time.Now()
}

// dumpLogs shows the end of the controllers' logs when a test failed.
func dumpLogs(t *testing.T) {
	if !t.Failed() {
		return
	}
	for _, m := range controllers {
		data, _ := os.ReadFile(bed.Log(m))
		if len(data) > 6000 {
			data = data[len(data)-6000:]
		}
		t.Logf("--- %s (end of log)\n%s", m, data)
	}
}

// ready waits until obj is Ready at its generation and check holds of it.
func ready(t *testing.T, obj conditionsObject, check func(Gomega)) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) {
		g.Expect(bed.Env.Client.Get(context.Background(), client.ObjectKeyFromObject(obj), obj)).To(Succeed())
		g.Expect(conditions.IsReady(obj)).To(BeTrue(), "%s Ready: %s", obj.GetName(), conditions.GetMessage(obj, meta.ReadyCondition))
		if check != nil {
			check(g)
		}
	}, timeout, poll).Should(Succeed())
}

type conditionsObject interface {
	client.Object
	conditions.Getter
}

// fetchArtifact downloads an artifact's URL and checks its bytes against its digest.
func fetchArtifact(g Gomega, a *meta.Artifact) {
	g.Expect(a).NotTo(BeNil())
	resp, err := http.Get(a.URL)
	g.Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(resp.StatusCode).To(Equal(http.StatusOK), "GET %s: %s", a.URL, body)
	g.Expect(digestOf(body)).To(Equal(a.Digest), "the bytes served at %s", a.URL)
}

// inventory lists the ids of a Kustomization's inventory, sorted.
func inventory(ks *applyv1.Kustomization) []string {
	ids := ks.Status.Inventory.IDs()
	slices.Sort(ids)
	return ids
}

// pidsOf returns the process id of each controller started in TestMain, 0 for one that has
// exited.
func pidsOf() map[string]int {
	out := map[string]int{}
	for m, p := range procs {
		select {
		case <-p.Exited():
			out[m] = 0
		default:
			out[m] = p.Pid()
		}
	}
	return out
}

// jsonString is v as JSON, for messages.
func jsonString(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
