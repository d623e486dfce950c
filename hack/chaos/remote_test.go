//go:build chaos

package chaos

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	"github.com/google/go-containerregistry/pkg/registry"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/hack/internal/fault"
	"github.com/plumb-dev/plumb/hack/internal/local"
	helmv1 "github.com/plumb-dev/plumb/helm-controller/api/v1beta1"
	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
)

// faultModes are the ways a remote server fails, in the order the tests inject them.
var faultModes = []fault.Mode{fault.Down, fault.HTTP500, fault.Reset, fault.Hang}

func describe(m fault.Mode) string {
	switch m {
	case fault.Down:
		return "down (connection refused)"
	case fault.HTTP500:
		return "answering 500"
	case fault.Reset:
		return "resetting connections"
	case fault.Hang:
		return "hanging (accepts, never answers)"
	}
	return m.String()
}

// remoteFault is a server that fails under an object, as one test of remoteFaults sees it.
type remoteFault struct {
	remote, controller string
	// checked says what kept checks, for the results.
	checked string
	proxy   *fault.Proxy
	// obj's remote is behind proxy; its Ready reason under the fault is reason, shown within
	// bound of the fault (its spec.timeout and a margin: no worker waits longer).
	obj    conditionsObject
	reason string
	bound  time.Duration
	// push makes a new revision at the remote and returns the revision obj must reach; with
	// pushUnderFault, the fault is on while it runs (a consumer would fetch the new revision
	// as soon as its producer published it).
	push           func(g Gomega) string
	pushUnderFault bool
	// revision is obj's revision now (artifact or applied).
	revision func() string
	// kept checks what must stay served or applied through the fault.
	kept func(g Gomega)
	// neighbours, if set, makes objects on a healthy server of the same controller reach a new
	// revision while the fault lasts, and returns how long they took.
	neighbours func(g Gomega) time.Duration
}

// remoteFaults injects each fault mode in turn: the object says why it is not Ready within its
// bound, what it published or applied stays, the neighbours keep reconciling, and it reaches the
// new revision once the server is back, without a request.
func remoteFaults(t *testing.T, rf remoteFault) {
	ctx := context.Background()
	for _, m := range faultModes {
		t.Run(m.String(), func(t *testing.T) {
			checked := "Ready=False with the reason within the timeout; " + rf.checked
			if rf.neighbours != nil {
				checked += "; other objects of the controller kept reconciling"
			}
			tr := record(t, fmt.Sprintf("%s %s", rf.remote, describe(m)), rf.controller, checked)
			g := NewWithT(t)
			defer func() { g.Expect(rf.proxy.Set(fault.Pass)).To(Succeed()) }()
			var want string
			if !rf.pushUnderFault {
				want = rf.push(g)
			}
			g.Expect(rf.proxy.Set(m)).To(Succeed())
			start := time.Now()
			if rf.pushUnderFault {
				want = rf.push(g)
			}
			request(g, rf.obj)
			g.Eventually(func(g Gomega) {
				g.Expect(bed.Env.Client.Get(ctx, client.ObjectKeyFromObject(rf.obj), rf.obj)).To(Succeed())
				g.Expect(conditions.IsFalse(rf.obj, meta.ReadyCondition)).To(BeTrue(), "Ready: %s", conditions.GetMessage(rf.obj, meta.ReadyCondition))
				g.Expect(conditions.GetReason(rf.obj, meta.ReadyCondition)).To(Equal(rf.reason), conditions.GetMessage(rf.obj, meta.ReadyCondition))
			}, rf.bound, poll).Should(Succeed(), "%s: Ready=False within %s", rf.obj.GetName(), rf.bound)
			t.Logf("%s after %.1f s: %s", describe(m), time.Since(start).Seconds(), conditions.GetMessage(rf.obj, meta.ReadyCondition))
			rf.kept(g)
			if rf.neighbours != nil {
				t.Logf("neighbours reached their new revision in %.1f s", rf.neighbours(g).Seconds())
			}
			rf.kept(g)

			g.Expect(rf.proxy.Set(fault.Pass)).To(Succeed())
			since := time.Now()
			ready(t, rf.obj, func(g Gomega) { g.Expect(rf.revision()).To(Equal(want)) })
			tr.recovered(since)
			rf.kept(g)
		})
	}
}

// neighboursOf makes a change for each object (change returns the revision each must reach, by
// name), requests them and waits until all reach it, bounded: they must not wait on the faulty
// server's worker.
func neighboursOf(objs []conditionsObject, change func(g Gomega) map[string]string, revision func(conditionsObject) string) func(g Gomega) time.Duration {
	return func(g Gomega) time.Duration {
		want := change(g)
		start := time.Now()
		for _, o := range objs {
			request(g, o)
		}
		g.Eventually(func(g Gomega) {
			for _, o := range objs {
				g.Expect(bed.Env.Client.Get(context.Background(), client.ObjectKeyFromObject(o), o)).To(Succeed())
				g.Expect(conditions.IsReady(o)).To(BeTrue(), "%s: %s", o.GetName(), conditions.GetMessage(o, meta.ReadyCondition))
				g.Expect(revision(o)).To(Equal(want[o.GetName()]), o.GetName())
			}
		}, 30*time.Second, poll).Should(Succeed(), "neighbours on a healthy server")
		return time.Since(start)
	}
}

// The Git server down, answering 500, resetting connections and hanging, under a GitRepository
// (and a Kustomization applying it), while three GitRepositories of another Git server must keep
// reconciling; then source-controller's artifact server failing under the Kustomization.
func TestGitServerFaults(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	c := bed.Env.Client
	defer dumpLogs(t)
	const ns = "git-faults"
	newNamespace(t, ns)
	faulty := startGit(t, "faulty")
	healthy := startGit(t, "healthy")
	proxy, err := fault.Start(faulty.Addr())
	g.Expect(err).NotTo(HaveOccurred())
	defer proxy.Close()

	greeting := func(v string) map[string]string {
		return map[string]string{"apps/app/config.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  greeting: \"" + v + "\"\n"}
	}
	repo, _, err := faulty.NewRepo("app", greeting("v0"))
	g.Expect(err).NotTo(HaveOccurred())
	gr := &sourcev1.GitRepository{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: ns},
		Spec: sourcev1.GitRepositorySpec{URL: "http://" + proxy.Addr + "/app.git", Ref: &sourcev1.GitRepositoryRef{Branch: "main"},
			Interval: metav1.Duration{Duration: time.Hour}, Timeout: &metav1.Duration{Duration: 5 * time.Second}}}
	ks := &applyv1.Kustomization{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: ns},
		Spec: applyv1.KustomizationSpec{SourceRef: applyv1.CrossNamespaceSourceReference{Kind: sourcev1.GitRepositoryKind, Name: "app"},
			Path: "apps/app", TargetNamespace: ns, Prune: true, Interval: metav1.Duration{Duration: time.Hour},
			RetryInterval: &metav1.Duration{Duration: 2 * time.Second}, Timeout: &metav1.Duration{Duration: 10 * time.Second}}}
	g.Expect(c.Create(ctx, gr)).To(Succeed())
	g.Expect(c.Create(ctx, ks)).To(Succeed())
	var others []conditionsObject
	var otherRepos []*local.Repo
	for i := range 3 {
		name := fmt.Sprintf("other-%d", i)
		r, _, err := healthy.NewRepo(name, greeting(name))
		g.Expect(err).NotTo(HaveOccurred())
		otherRepos = append(otherRepos, r)
		o := &sourcev1.GitRepository{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: sourcev1.GitRepositorySpec{URL: healthy.URL(name), Ref: &sourcev1.GitRepositoryRef{Branch: "main"}, Interval: metav1.Duration{Duration: time.Hour}}}
		g.Expect(c.Create(ctx, o)).To(Succeed())
		others = append(others, o)
	}
	ready(t, gr, nil)
	ready(t, ks, nil)
	for _, o := range others {
		ready(t, o, nil)
	}

	commits := 0
	artifactRevision := func(o conditionsObject) string {
		if a := o.(*sourcev1.GitRepository).Status.Artifact; a != nil {
			return a.Revision
		}
		return ""
	}
	// What the Kustomization applied stays, and so does the artifact it came from.
	applied := func(g Gomega) {
		cm := &corev1.ConfigMap{}
		g.Expect(c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "app"}, cm)).To(Succeed(), "the applied ConfigMap is not pruned")
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(gr), gr)).To(Succeed())
		fetchArtifact(g, gr.Status.Artifact)
	}
	t.Run("Git server", func(t *testing.T) {
		remoteFaults(t, remoteFault{
			remote: "Git server", controller: "source-controller", proxy: proxy,
			checked: "last artifact served with its digest; applied objects kept",
			obj:     gr, reason: sourcev1.GitOperationFailedReason, bound: 5*time.Second + 15*time.Second,
			push: func(g Gomega) string {
				commits++
				commit, err := repo.Commit("change", greeting(fmt.Sprintf("v%d", commits)))
				g.Expect(err).NotTo(HaveOccurred())
				return "main@sha1:" + commit
			},
			revision: func() string { return artifactRevision(gr) },
			kept:     applied,
			neighbours: neighboursOf(others, func(g Gomega) map[string]string {
				commits++
				want := map[string]string{}
				for i, r := range otherRepos {
					commit, err := r.Commit("change", greeting(fmt.Sprintf("other v%d", commits)))
					g.Expect(err).NotTo(HaveOccurred())
					want[others[i].GetName()] = "main@sha1:" + commit
				}
				return want
			}, artifactRevision),
		})
	})

	t.Run("artifact server", func(t *testing.T) {
		remoteFaults(t, remoteFault{
			remote: "source-controller's artifact server", controller: "apply-controller", proxy: artifactProxy,
			checked: "applied objects kept, nothing pruned",
			obj:     ks, reason: applyv1.ArtifactFailedReason, bound: 10*time.Second + 20*time.Second, pushUnderFault: true,
			push: func(g Gomega) string {
				commits++
				commit, err := repo.Commit("change", greeting(fmt.Sprintf("v%d", commits)))
				g.Expect(err).NotTo(HaveOccurred())
				request(g, gr)
				g.Eventually(func(g Gomega) {
					g.Expect(c.Get(ctx, client.ObjectKeyFromObject(gr), gr)).To(Succeed())
					g.Expect(artifactRevision(gr)).To(Equal("main@sha1:" + commit))
				}, timeout, poll).Should(Succeed())
				return "main@sha1:" + commit
			},
			revision: func() string { return ks.Status.LastAppliedRevision },
			kept: func(g Gomega) {
				cm := &corev1.ConfigMap{}
				g.Expect(c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "app"}, cm)).To(Succeed(), "the applied ConfigMap is not pruned")
			},
		})
	})
}

// The OCI registry down, answering 500, resetting connections and hanging under an
// OCIRepository, while OCIRepositories of another registry keep reconciling.
func TestRegistryFaults(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	c := bed.Env.Client
	defer dumpLogs(t)
	const ns = "registry-faults"
	newNamespace(t, ns)
	quiet := registry.Logger(log.New(io.Discard, "", 0))
	faulty := httptest.NewServer(registry.New(quiet))
	defer faulty.Close()
	healthy := httptest.NewServer(registry.New(quiet))
	defer healthy.Close()
	proxy, err := fault.Start(strings.TrimPrefix(faulty.URL, "http://"))
	g.Expect(err).NotTo(HaveOccurred())
	defer proxy.Close()
	faultyHost, healthyHost := strings.TrimPrefix(faulty.URL, "http://"), strings.TrimPrefix(healthy.URL, "http://")

	pushes := 0
	push := func(g Gomega, host string) string {
		pushes++
		d, err := local.PushManifests(host, "team/app", "latest", map[string]string{"config.yaml": fmt.Sprintf("push: %d\n", pushes)})
		g.Expect(err).NotTo(HaveOccurred())
		return "latest@" + d
	}
	push(g, faultyHost)
	push(g, healthyHost)
	oci := func(name, host string) *sourcev1.OCIRepository {
		return &sourcev1.OCIRepository{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: sourcev1.OCIRepositorySpec{URL: "oci://" + host + "/team/app", Ref: &sourcev1.OCIRepositoryRef{Tag: "latest"}, Insecure: true,
				Interval: metav1.Duration{Duration: time.Hour}, Timeout: &metav1.Duration{Duration: 5 * time.Second}}}
	}
	src := oci("app", proxy.Addr)
	g.Expect(c.Create(ctx, src)).To(Succeed())
	var others []conditionsObject
	for i := range 3 {
		o := oci(fmt.Sprintf("other-%d", i), healthyHost)
		g.Expect(c.Create(ctx, o)).To(Succeed())
		others = append(others, o)
	}
	ready(t, src, nil)
	for _, o := range others {
		ready(t, o, nil)
	}
	revision := func(o conditionsObject) string {
		if a := o.(*sourcev1.OCIRepository).Status.Artifact; a != nil {
			return a.Revision
		}
		return ""
	}
	remoteFaults(t, remoteFault{
		remote: "OCI registry", controller: "source-controller", proxy: proxy,
		checked: "last artifact served with its digest",
		obj:     src, reason: sourcev1.OCIOperationFailedReason, bound: 5*time.Second + 15*time.Second,
		push:     func(g Gomega) string { return push(g, proxy.Addr) },
		revision: func() string { return revision(src) },
		kept: func(g Gomega) {
			g.Expect(c.Get(ctx, client.ObjectKeyFromObject(src), src)).To(Succeed())
			fetchArtifact(g, src.Status.Artifact)
		},
		neighbours: neighboursOf(others, func(g Gomega) map[string]string {
			rev := push(g, healthyHost)
			want := map[string]string{}
			for _, o := range others {
				want[o.GetName()] = rev
			}
			return want
		}, revision),
	})
}

// The chart repository down, answering 500, resetting connections and hanging under a
// HelmRepository (and a HelmRelease of its chart): the last index stays served and the release
// untouched; a new chart version is released once the repository is back.
func TestChartRepositoryFaults(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	c := bed.Env.Client
	defer dumpLogs(t)
	const ns = "chart-faults"
	newNamespace(t, ns)
	dir := t.TempDir()
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer srv.Close()
	proxy, err := fault.Start(strings.TrimPrefix(srv.URL, "http://"))
	g.Expect(err).NotTo(HaveOccurred())
	defer proxy.Close()
	url := "http://" + proxy.Addr
	versions := 0
	publish := func(g Gomega) string {
		versions++
		v := fmt.Sprintf("1.%d.0", versions)
		g.Expect(local.PublishChart(dir, url, chaosChart(v, false, 0))).To(Succeed())
		return v
	}
	publish(g)
	hrepo := &sourcev1.HelmRepository{ObjectMeta: metav1.ObjectMeta{Name: "charts", Namespace: ns},
		Spec: sourcev1.HelmRepositorySpec{URL: url, Interval: metav1.Duration{Duration: time.Hour}, Timeout: &metav1.Duration{Duration: 5 * time.Second}}}
	hr := &helmv1.HelmRelease{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: helmv1.HelmReleaseSpec{
			Chart: &helmv1.HelmChartTemplate{Spec: helmv1.HelmChartTemplateSpec{Chart: "web", Version: ">=1.0.0",
				SourceRef: helmv1.LocalChartSourceReference{Kind: sourcev1.HelmRepositoryKind, Name: "charts"}}},
			Interval: metav1.Duration{Duration: time.Hour}}}
	g.Expect(c.Create(ctx, hrepo)).To(Succeed())
	g.Expect(c.Create(ctx, hr)).To(Succeed())
	ready(t, hr, nil)
	var want string
	remoteFaults(t, remoteFault{
		remote: "chart repository", controller: "source-controller, helm-controller", proxy: proxy,
		checked: "last index served with its digest; the release untouched and Ready",
		obj:     hrepo, reason: sourcev1.IndexFetchFailedReason, bound: 5*time.Second + 15*time.Second,
		push: func(g Gomega) string {
			want = publish(g)
			return "released " + want
		},
		revision: func() string {
			// The HelmRepository is Ready again; what counts is the release of the new version.
			g := NewWithT(t)
			g.Expect(c.Get(ctx, client.ObjectKeyFromObject(hr), hr)).To(Succeed())
			if len(hr.Status.History) > 0 && hr.Status.History[0].ChartVersion == want && conditions.IsReady(hr) {
				return "released " + want
			}
			return "not yet"
		},
		kept: func(g Gomega) {
			g.Expect(c.Get(ctx, client.ObjectKeyFromObject(hrepo), hrepo)).To(Succeed())
			fetchArtifact(g, hrepo.Status.Artifact)
			g.Expect(c.Get(ctx, client.ObjectKeyFromObject(hr), hr)).To(Succeed())
			g.Expect(conditions.IsReady(hr)).To(BeTrue(), "the release is untouched: %s", conditions.GetMessage(hr, meta.ReadyCondition))
		},
	})
}
