//go:build chaos

package chaos

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	"helm.sh/helm/v3/pkg/chart"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/hack/internal/local"
	helmv1 "github.com/plumb-dev/plumb/helm-controller/api/v1beta1"
	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
)

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// configMaps is one YAML file of ConfigMaps prefix-NNN for n in [from, to).
func configMaps(prefix string, from, to int) string {
	var b strings.Builder
	for i := from; i < to; i++ {
		fmt.Fprintf(&b, "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s-%03d\ndata:\n  n: \"%d\"\n", prefix, i, i)
	}
	return b.String()
}

// configMapIDs are the inventory ids of configMaps(prefix, from, to) in namespace ns.
func configMapIDs(ns, prefix string, from, to int) []string {
	var ids []string
	for i := from; i < to; i++ {
		ids = append(ids, fmt.Sprintf("%s_%s-%03d__ConfigMap", ns, prefix, i))
	}
	slices.Sort(ids)
	return ids
}

// liveConfigMaps lists the ConfigMaps of ns that a Kustomization applied (by its owner label).
func liveConfigMaps(ctx context.Context, ns, ks string) ([]string, error) {
	var list corev1.ConfigMapList
	if err := bed.Env.Client.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{"apply.plumb.dev/name": ks}); err != nil {
		return nil, err
	}
	names := make([]string, 0, len(list.Items))
	for _, cm := range list.Items {
		names = append(names, cm.Name)
	}
	slices.Sort(names)
	return names, nil
}

func names(prefix string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%s-%03d", prefix, i))
	}
	return out
}

// keepRunning restarts a controller a test killed, should the test end before it did.
func keepRunning(t *testing.T, p *local.Process) {
	t.Cleanup(func() {
		select {
		case <-p.Exited():
			if err := p.Restart(); err != nil {
				t.Errorf("restarting after the test: %v", err)
			}
		default:
		}
	})
}

// apply-controller killed while it applies 300 objects, then started again: the same objects
// and inventory as a run without the kill. Then killed while it applies a revision that
// replaces them all, and started only after a third revision dropped those new objects again:
// the objects of the interrupted revision must not be left behind unowned.
func TestKillApplyMidApply(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	c := bed.Env.Client
	defer dumpLogs(t)
	p := procs["apply-controller"]
	keepRunning(t, p)
	const ns = "kill-apply"
	newNamespace(t, ns)
	git := startGit(t, "kill-apply")
	repo, _, err := git.NewRepo("many", map[string]string{"apps/many/objects.yaml": configMaps("a", 0, 300)})
	g.Expect(err).NotTo(HaveOccurred())

	gr := followMain(git, ns, "many")
	ks := &applyv1.Kustomization{ObjectMeta: metav1.ObjectMeta{Name: "many", Namespace: ns},
		Spec: applyv1.KustomizationSpec{SourceRef: applyv1.CrossNamespaceSourceReference{Kind: sourcev1.GitRepositoryKind, Name: "many"},
			Path: "apps/many", TargetNamespace: ns, Prune: true, Interval: metav1.Duration{Duration: time.Hour},
			RetryInterval: &metav1.Duration{Duration: 2 * time.Second}}}

	t.Run("first apply", func(t *testing.T) {
		tr := record(t, "SIGKILL mid-apply of 300 objects", "apply-controller", "inventory exactly the 300 objects, all 300 in the cluster")
		g := NewWithT(t)
		g.Expect(c.Create(ctx, gr)).To(Succeed())
		g.Expect(c.Create(ctx, ks)).To(Succeed())
		var atKill int
		killWhen(t, p, timeout, func() bool {
			live, _ := liveConfigMaps(ctx, ns, "many")
			atKill = len(live)
			return atKill > 0 && atKill < 300
		})
		t.Logf("killed with %d of 300 objects applied", atKill)
		since := restart(t, p)
		ready(t, ks, func(g Gomega) {
			g.Expect(inventory(ks)).To(HaveLen(300))
		})
		tr.recovered(since)
		g.Expect(inventory(ks)).To(Equal(configMapIDs(ns, "a", 0, 300)))
		live, err := liveConfigMaps(ctx, ns, "many")
		g.Expect(err).NotTo(HaveOccurred())
		if !slices.Equal(live, names("a", 0, 300)) {
			tr.lost(fmt.Sprintf("%d of 300 objects in the cluster", len(live)))
		}
	})

	t.Run("revision dropped while its apply was interrupted", func(t *testing.T) {
		tr := record(t, "SIGKILL mid-apply of a revision replaced before the restart", "apply-controller", "objects of the interrupted revision pruned, none of the surviving ones")
		g := NewWithT(t)
		_, err := repo.Commit("300 new objects instead", map[string]string{"apps/many/objects.yaml": configMaps("b", 0, 300)})
		g.Expect(err).NotTo(HaveOccurred())
		request(g, gr)
		var atKill int
		killWhen(t, p, timeout, func() bool {
			live, _ := liveConfigMaps(ctx, ns, "many")
			atKill = 0
			for _, n := range live {
				if strings.HasPrefix(n, "b-") {
					atKill++
				}
			}
			return atKill > 0 && atKill < 300
		})
		t.Logf("killed with %d of 300 new objects applied", atKill)
		third, err := repo.Commit("back to half of the first objects", map[string]string{"apps/many/objects.yaml": configMaps("a", 0, 150)})
		g.Expect(err).NotTo(HaveOccurred())
		request(g, gr)
		g.Eventually(func(g Gomega) {
			g.Expect(c.Get(ctx, client.ObjectKeyFromObject(gr), gr)).To(Succeed())
			g.Expect(gr.Status.Artifact).NotTo(BeNil())
			g.Expect(gr.Status.Artifact.Revision).To(Equal("main@sha1:" + third))
		}, timeout, poll).Should(Succeed())
		since := restart(t, p)
		ready(t, ks, func(g Gomega) {
			g.Expect(ks.Status.LastAppliedRevision).To(Equal("main@sha1:" + third))
		})
		tr.recovered(since)
		g.Expect(inventory(ks)).To(Equal(configMapIDs(ns, "a", 0, 150)))
		live, err := liveConfigMaps(ctx, ns, "many")
		g.Expect(err).NotTo(HaveOccurred())
		var orphans []string
		for _, n := range live {
			if strings.HasPrefix(n, "b-") {
				orphans = append(orphans, n)
			}
		}
		g.Expect(orphans).To(BeEmpty(), "%d objects of the interrupted revision left behind, owned by no inventory", len(orphans))
		if missing := len(names("a", 0, 150)) - (len(live) - len(orphans)); missing > 0 {
			tr.lost(fmt.Sprintf("%d objects of the current revision", missing))
		}
	})
}

// chaosChart is version of the chart "web": a ConfigMap; from 2.0.0 a Deployment of one
// replica, which never becomes healthy without a kubelet until the test scales it to 0, so that
// the upgrade's health wait lasts as long as the test wants; and with extra ConfigMaps, a Helm
// action that takes long enough to be killed in.
func chaosChart(version string, slow bool, extra int) *chart.Chart {
	templates := []*chart.File{{Name: "templates/configmap.yaml",
		Data: []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\ndata:\n  version: {{ .Chart.Version | quote }}\n")}}
	if slow {
		templates = append(templates, &chart.File{Name: "templates/slow.yaml", Data: []byte(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-slow
spec:
  replicas: 1
  selector:
    matchLabels: {app: slow}
  template:
    metadata:
      labels: {app: slow}
    spec:
      containers:
        - name: slow
          image: registry.example.invalid/slow:1.0.0
`)})
	}
	if extra > 0 {
		templates = append(templates, &chart.File{Name: "templates/extra.yaml", Data: []byte(fmt.Sprintf(`{{- range $i := until %d }}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ $.Release.Name }}-extra-{{ $i }}
data:
  n: "{{ $i }}"
{{- end }}
`, extra))})
	}
	return &chart.Chart{
		Metadata:  &chart.Metadata{APIVersion: chart.APIVersionV2, Name: "web", Version: version, AppVersion: version},
		Templates: templates,
	}
}

// helmRevision is one stored revision of a Helm release, from its Secret's labels.
type helmRevision struct {
	Version, Status string
}

// helmHistory lists the stored revisions of release in ns, oldest first.
func helmHistory(ctx context.Context, ns, release string) ([]helmRevision, error) {
	var list corev1.SecretList
	if err := bed.Env.Client.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{"owner": "helm", "name": release}); err != nil {
		return nil, err
	}
	out := make([]helmRevision, 0, len(list.Items))
	for _, s := range list.Items {
		out = append(out, helmRevision{Version: s.Labels["version"], Status: s.Labels["status"]})
	}
	number := func(r helmRevision) int { n, _ := strconv.Atoi(r.Version); return n }
	slices.SortFunc(out, func(a, b helmRevision) int { return number(a) - number(b) })
	return out, nil
}

// scaleDown scales the chart's slow Deployment to 0 replicas, which ends its health wait.
func scaleDown(ctx context.Context, ns, name string) error {
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	return client.IgnoreNotFound(bed.Env.Client.Patch(ctx, d, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"replicas":0}}`)), client.FieldOwner("chaos-scale")))
}

// helm-controller killed during an upgrade, at two moments: in its health wait (where an
// upgrade spends nearly all its time), and inside the Helm action (a release left
// pending-upgrade). Restarted, it leaves no release pending and no upgrade run twice.
func TestKillHelmMidUpgrade(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	c := bed.Env.Client
	defer dumpLogs(t)
	p := procs["helm-controller"]
	keepRunning(t, p)
	const ns = "kill-helm"
	newNamespace(t, ns)
	dir, srv, hrepo := chartRepository(t, ns)
	hr := &helmv1.HelmRelease{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: helmv1.HelmReleaseSpec{
			Chart: &helmv1.HelmChartTemplate{Spec: helmv1.HelmChartTemplateSpec{Chart: "web", Version: ">=1.0.0",
				SourceRef: helmv1.LocalChartSourceReference{Kind: sourcev1.HelmRepositoryKind, Name: "charts"}}},
			Interval: metav1.Duration{Duration: time.Hour},
			Timeout:  &metav1.Duration{Duration: 3 * time.Minute},
		}}
	g.Expect(c.Create(ctx, hrepo)).To(Succeed())
	g.Expect(c.Create(ctx, hr)).To(Succeed())
	released := func(t *testing.T, version string) {
		t.Helper()
		NewWithT(t).Eventually(func(g Gomega) {
			g.Expect(scaleDown(ctx, ns, "web-slow")).To(Succeed())
			g.Expect(c.Get(ctx, client.ObjectKeyFromObject(hr), hr)).To(Succeed())
			g.Expect(conditions.IsReady(hr)).To(BeTrue(), "Ready: %s", conditions.GetMessage(hr, meta.ReadyCondition))
			g.Expect(hr.Status.History).NotTo(BeEmpty())
			g.Expect(hr.Status.History[0].ChartVersion).To(Equal(version))
		}, timeout, poll).Should(Succeed())
	}
	released(t, "1.0.0")

	t.Run("in the health wait", func(t *testing.T) {
		tr := record(t, "SIGKILL mid-upgrade, in the health wait", "helm-controller", "no release pending; Helm history shows one new revision, deployed")
		g := NewWithT(t)
		g.Expect(local.PublishChart(dir, srv.URL, chaosChart("2.0.0", true, 0))).To(Succeed())
		request(g, hrepo)
		// Revision 2 is deployed as Helm sees it; helm-controller waits for its health.
		killWhen(t, p, timeout, func() bool {
			h, _ := helmHistory(ctx, ns, "web")
			return len(h) == 2 && h[1].Status == "deployed" &&
				c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web-slow"}, &appsv1.Deployment{}) == nil
		})
		h, err := helmHistory(ctx, ns, "web")
		g.Expect(err).NotTo(HaveOccurred())
		t.Logf("killed with the history %s", jsonString(h))
		since := restart(t, p)
		released(t, "2.0.0")
		tr.recovered(since)
		h, err = helmHistory(ctx, ns, "web")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(h).To(Equal([]helmRevision{{Version: "1", Status: "superseded"}, {Version: "2", Status: "deployed"}}))
	})

	t.Run("in the Helm action", func(t *testing.T) {
		tr := record(t, "SIGKILL mid-upgrade, in the Helm action (release pending-upgrade)", "helm-controller", "no release left pending; the interrupted revision marked failed, one deployed after it")
		g := NewWithT(t)
		g.Expect(local.PublishChart(dir, srv.URL, chaosChart("3.0.0", true, 200))).To(Succeed())
		request(g, hrepo)
		killWhen(t, p, timeout, func() bool {
			h, _ := helmHistory(ctx, ns, "web")
			return len(h) > 0 && h[len(h)-1].Status == "pending-upgrade"
		})
		since := restart(t, p)
		released(t, "3.0.0")
		tr.recovered(since)
		h, err := helmHistory(ctx, ns, "web")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(h).To(Equal([]helmRevision{{Version: "1", Status: "superseded"}, {Version: "2", Status: "superseded"},
			{Version: "3", Status: "failed"}, {Version: "4", Status: "deployed"}}))
		g.Expect(hr.Status.History[0].Version).To(Equal(4))
	})
}

// source-controller killed while it writes an artifact (a 48 MiB file): the last artifact stays
// the one in status and is served with its digest, nothing half-written is ever served, the
// half-written file does not outlive the next write, and the new revision is built on restart.
func TestKillSourceMidWrite(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	c := bed.Env.Client
	defer dumpLogs(t)
	p := procs["source-controller"]
	keepRunning(t, p)
	tr := record(t, "SIGKILL mid-artifact write (48 MiB)", "source-controller", "old artifact served with its digest through the kill; the partial file never served, removed at the next write")
	const ns = "kill-source"
	newNamespace(t, ns)
	git := startGit(t, "kill-source")
	repo, _, err := git.NewRepo("big", map[string]string{"README.md": "small at first\n"})
	g.Expect(err).NotTo(HaveOccurred())
	gr := &sourcev1.GitRepository{ObjectMeta: metav1.ObjectMeta{Name: "big", Namespace: ns},
		Spec: sourcev1.GitRepositorySpec{URL: git.URL("big"), Ref: &sourcev1.GitRepositoryRef{Branch: "main"},
			Interval: metav1.Duration{Duration: time.Hour}, Timeout: &metav1.Duration{Duration: 2 * time.Minute}}}
	g.Expect(c.Create(ctx, gr)).To(Succeed())
	ready(t, gr, nil)
	first := gr.Status.Artifact.DeepCopy()

	noise := make([]byte, 48<<20) // random: gzip cannot shrink it
	_, _ = rand.Read(noise)
	big, err := repo.Commit("a big file", map[string]string{"data.bin": string(noise)})
	g.Expect(err).NotTo(HaveOccurred())
	request(g, gr)
	objDir := filepath.Join(storageDir, "gitrepository", ns, "big")
	var partial string
	killWhen(t, p, timeout, func() bool {
		entries, _ := os.ReadDir(objDir)
		for _, e := range entries {
			if info, err := e.Info(); err == nil && strings.HasPrefix(e.Name(), ".tmp-") && info.Size() > 1<<20 {
				partial = e.Name()
				return true
			}
		}
		return false
	})
	info, err := os.Stat(filepath.Join(objDir, partial))
	g.Expect(err).NotTo(HaveOccurred())
	t.Logf("killed with %d bytes of the new artifact written", info.Size())
	g.Expect(c.Get(ctx, client.ObjectKeyFromObject(gr), gr)).To(Succeed())
	g.Expect(gr.Status.Artifact).To(Equal(first), "status names the last artifact")

	since := restart(t, p)
	// As soon as the artifact server is back, it serves the last artifact, whole.
	g.Eventually(func(g Gomega) { fetchArtifact(g, first) }, timeout, poll).Should(Succeed())
	resp, err := http.Get("http://" + artifactProxy.Addr + "/" + path.Join("gitrepository", ns, "big", partial))
	g.Expect(err).NotTo(HaveOccurred())
	resp.Body.Close()
	g.Expect(resp.StatusCode).To(Equal(http.StatusNotFound), "the partial file is not served")

	ready(t, gr, func(g Gomega) { g.Expect(gr.Status.Artifact.Revision).To(Equal("main@sha1:" + big)) })
	tr.recovered(since)
	g.Eventually(func(g Gomega) { fetchArtifact(g, gr.Status.Artifact) }, timeout, poll).Should(Succeed())
	_, err = os.Stat(filepath.Join(objDir, partial))
	g.Expect(os.IsNotExist(err)).To(BeTrue(), "the partial file of the killed process outlived the next write: %v", err)
}
