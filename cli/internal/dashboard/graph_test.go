package dashboard

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/plumb-dev/plumb/cli/internal/ops"
)

// obj is a Plumb object as the store holds it; ready is "True", "False" or "" (no status).
func obj(apiVersion, kind, ns, name, ready string, spec map[string]any, status map[string]any) *unstructured.Unstructured {
	if status == nil {
		status = map[string]any{}
	}
	if ready != "" {
		status["conditions"] = []any{map[string]any{"type": "Ready", "status": ready, "reason": "R", "message": "m"}}
	}
	return &unstructured.Unstructured{Object: map[string]any{"apiVersion": apiVersion, "kind": kind,
		"metadata": map[string]any{"name": name, "namespace": ns}, "spec": spec, "status": status}}
}

func edges(g *graph) []string {
	var out []string
	for _, e := range g.Edges {
		red := ""
		if e.Red {
			red = " red"
		}
		out = append(out, fmt.Sprintf("%s -%s-> %s%s", short2(e.From), e.Rel, short2(e.To), red))
	}
	sort.Strings(out)
	return out
}

// short2 drops the group from a node id, for readable expectations.
func short2(id string) string {
	if strings.HasPrefix(id, "applied|") {
		parts := strings.Split(id, "|")
		return "applied(" + short2(parts[1]) + " " + parts[2] + " " + parts[3] + ")"
	}
	parts := strings.Split(id, "/")
	return strings.Join(parts[1:], "/")
}

func TestBuildGraph(t *testing.T) {
	src := map[string]any{"sourceRef": map[string]any{"kind": "GitRepository", "name": "repo"}}
	objs := []*unstructured.Unstructured{
		obj("source.plumb.dev/v1beta1", "GitRepository", "a", "repo", "False", map[string]any{}, nil),
		obj("apply.plumb.dev/v1beta1", "Kustomization", "a", "infra", "True", src, map[string]any{
			"inventory": map[string]any{"entries": []any{
				map[string]any{"id": "a_web_apps_Deployment", "v": "v1"},
				map[string]any{"id": "a_api_apps_Deployment", "v": "v1"},
				map[string]any{"id": "a_web__Service", "v": "v1"},
				map[string]any{"id": "b_apps_apply.plumb.dev_Kustomization", "v": "v1beta1"},
			}}}),
		obj("apply.plumb.dev/v1beta1", "Kustomization", "a", "apps", "True", map[string]any{
			"sourceRef": map[string]any{"kind": "GitRepository", "name": "repo"},
			"dependsOn": []any{map[string]any{"name": "infra"}}}, nil),
		obj("apply.plumb.dev/v1beta1", "Kustomization", "b", "apps", "True", map[string]any{
			"sourceRef": map[string]any{"kind": "GitRepository", "name": "other", "namespace": "c"}}, nil),
		obj("helm.plumb.dev/v1beta1", "HelmRelease", "a", "db", "True", map[string]any{
			"chart":     map[string]any{"spec": map[string]any{"chart": "db", "sourceRef": map[string]any{"kind": "HelmRepository", "name": "charts"}}},
			"dependsOn": []any{map[string]any{"kind": "Kustomization", "name": "infra"}}}, nil),
		obj("source.plumb.dev/v1beta1", "HelmRepository", "a", "charts", "True", map[string]any{}, nil),
		obj("image.plumb.dev/v1beta1", "ImageRepository", "a", "web", "True", map[string]any{}, nil),
		obj("image.plumb.dev/v1beta1", "ImagePolicy", "a", "web", "True", map[string]any{"imageRepositoryRef": map[string]any{"name": "web"}}, nil),
		obj("image.plumb.dev/v1beta1", "ImageUpdateAutomation", "a", "bump", "True", map[string]any{"sourceRef": map[string]any{"name": "repo"}}, nil),
		obj("notification.plumb.dev/v1beta1", "Alert", "a", "chat", "True", map[string]any{}, nil),
	}
	g := buildGraph(objs, func(hr *unstructured.Unstructured) []ops.Ref {
		return []ops.Ref{{Version: "v1", Kind: "StatefulSet", Namespace: "a", Name: "db"}}
	})
	g.redPath()
	got := edges(g)
	wantEdges := []string{
		"GitRepository/a/repo -source-> Kustomization/a/apps red",
		"GitRepository/a/repo -source-> Kustomization/a/infra red",
		"GitRepository/c/other -source-> Kustomization/b/apps",
		"HelmRelease/a/db -applies-> applied(HelmRelease/a/db a StatefulSet) red",
		"HelmRepository/a/charts -source-> HelmRelease/a/db",
		"ImagePolicy/a/web -image-> ImageUpdateAutomation/a/bump",
		"ImageRepository/a/web -image-> ImagePolicy/a/web",
		"ImageUpdateAutomation/a/bump -pushes-> GitRepository/a/repo",
		"Kustomization/a/infra -applies-> Kustomization/b/apps red",
		"Kustomization/a/infra -applies-> applied(Kustomization/a/infra a Deployment) red",
		"Kustomization/a/infra -applies-> applied(Kustomization/a/infra a Service) red",
		"Kustomization/a/infra -dependsOn-> HelmRelease/a/db red",
		"Kustomization/a/infra -dependsOn-> Kustomization/a/apps red",
	}
	if d := cmp.Diff(wantEdges, got); d != "" {
		t.Errorf("edges (-want +got):\n%s", d)
	}
	byID := g.byID
	if n := byID["applied|apply.plumb.dev/Kustomization/a/infra|a|Deployment"]; n == nil || n.Label != "Deployment ×2" {
		t.Errorf("applied Deployments: %+v", n)
	}
	if n := byID["source.plumb.dev/GitRepository/c/other"]; n == nil || n.State != stateUnknown || !strings.Contains(n.Label, "not found") {
		t.Errorf("a missing source is drawn as missing: %+v", n)
	}
	for id, blocked := range map[string]bool{
		"apply.plumb.dev/Kustomization/a/apps":     true,
		"helm.plumb.dev/HelmRelease/a/db":          true,
		"apply.plumb.dev/Kustomization/b/apps":     true,
		"image.plumb.dev/ImagePolicy/a/web":        false,
		"source.plumb.dev/HelmRepository/a/charts": false,
	} {
		if n := byID[id]; n.Blocked != blocked {
			t.Errorf("%s blocked = %v, want %v", id, n.Blocked, blocked)
		}
	}
	if by := byID["helm.plumb.dev/HelmRelease/a/db"].BlockedBy; by != "GitRepository a/repo" {
		t.Errorf("BlockedBy = %q", by)
	}
	if _, ok := byID["notification.plumb.dev/Alert/a/chat"]; ok {
		t.Error("alerts are not part of the flow")
	}
	bl := g.blockages()
	if len(bl) != 1 || bl[0].Node.Name != "repo" || len(bl[0].Blocked) != 4 {
		t.Errorf("blockages: %+v", bl)
	}

	// Layers: images, sources, then Kustomizations and HelmReleases in dependency order, then
	// what they applied.
	g.layout()
	col := func(id string) int { return byID[id].X }
	for _, chain := range [][]string{
		{"image.plumb.dev/ImageRepository/a/web", "image.plumb.dev/ImagePolicy/a/web", "image.plumb.dev/ImageUpdateAutomation/a/bump",
			"source.plumb.dev/GitRepository/a/repo", "apply.plumb.dev/Kustomization/a/infra", "apply.plumb.dev/Kustomization/a/apps",
			"applied|apply.plumb.dev/Kustomization/a/infra|a|Deployment"},
		{"apply.plumb.dev/Kustomization/a/infra", "helm.plumb.dev/HelmRelease/a/db"},
	} {
		for i := 1; i < len(chain); i++ {
			if col(chain[i-1]) >= col(chain[i]) {
				t.Errorf("%s (x %d) is not left of %s (x %d)", chain[i-1], col(chain[i-1]), chain[i], col(chain[i]))
			}
		}
	}
	seen := map[[2]int]string{}
	for _, n := range g.Nodes {
		at := [2]int{n.X, n.Y}
		if other, ok := seen[at]; ok {
			t.Errorf("%s and %s overlap at %v", n.ID, other, at)
		}
		seen[at] = n.ID
	}
}

func TestGraphCollapses(t *testing.T) {
	var objs []*unstructured.Unstructured
	for i := range 30 {
		ns := fmt.Sprintf("team-%02d", i)
		objs = append(objs, obj("source.plumb.dev/v1beta1", "GitRepository", ns, "repo", "True", map[string]any{}, nil))
		for j := range 10 {
			ready := "True"
			if i == 3 && j == 0 {
				ready = "False"
			}
			objs = append(objs, obj("apply.plumb.dev/v1beta1", "Kustomization", ns, fmt.Sprint("app-", j), ready,
				map[string]any{"sourceRef": map[string]any{"kind": "GitRepository", "name": "repo", "namespace": "team-00"}}, nil))
		}
	}
	g := buildGraph(objs, nil)
	g.redPath()
	if len(g.Nodes) <= maxGraphNodes {
		t.Fatalf("the test needs more than %d nodes, has %d", maxGraphNodes, len(g.Nodes))
	}
	c := g.collapse()
	if len(c.Nodes) != 30 {
		t.Fatalf("collapsed to %d nodes, want one per namespace", len(c.Nodes))
	}
	n := c.byID["ns|team-03"]
	if !n.Failing || n.Label != "11 objects, 1 failing" || n.Href != "/graph?ns=team-03" {
		t.Errorf("team-03: %+v", n)
	}
	if len(c.Edges) != 29 {
		t.Errorf("%d edges between namespaces, want 29 (team-00's repository feeds the others)", len(c.Edges))
	}
	w, h := c.layout()
	if w <= 0 || h <= 0 {
		t.Errorf("size %dx%d", w, h)
	}
}

func TestGraphPage(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(g)
	gitRepository(g, ns, "repo", "http://127.0.0.1:1/a.tar.gz", "sha256:00")
	kustomization(g, ns, "infra", nil, "False", "HealthCheckFailed", "Deployment/web not ready", ns+"_web_apps_Deployment", ns+"_web__Service")
	kustomization(g, ns, "apps", map[string]any{"dependsOn": []any{map[string]any{"name": "infra"}}}, "False", "DependencyNotReady", "infra is not ready")
	object(g, "helm.plumb.dev/v1beta1", "HelmRelease", ns, "db",
		map[string]any{"interval": "5m", "chart": map[string]any{"spec": map[string]any{"chart": "db", "sourceRef": map[string]any{"kind": "HelmRepository", "name": "charts"}}}},
		map[string]any{"conditions": ready("True", "InstallSucceeded", "installed"),
			"history": []any{map[string]any{"name": "db", "namespace": ns, "version": int64(1), "chartName": "db", "chartVersion": "1.0.0", "status": "deployed"}}})
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write([]byte(`{"name":"db","version":1,"manifest":"---\napiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: db\n"}`))
	g.Expect(zw.Close()).To(Succeed())
	g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sh.helm.release.v1.db.v1", Namespace: ns},
		Type: "helm.sh/release.v1", Data: map[string][]byte{"release": []byte(base64.StdEncoding.EncodeToString(gz.Bytes()))}})).To(Succeed())

	body := page(g, admin, "/graph?ns="+ns, "/"+ns+"/apps", "/"+ns+"/db")
	for _, e := range []string{
		`data-from="source.plumb.dev/GitRepository/` + ns + `/repo" data-to="apply.plumb.dev/Kustomization/` + ns + `/infra" data-rel="source"`,
		`data-from="apply.plumb.dev/Kustomization/` + ns + `/infra" data-to="apply.plumb.dev/Kustomization/` + ns + `/apps" data-rel="dependsOn"`,
		`data-from="apply.plumb.dev/Kustomization/` + ns + `/infra" data-to="applied|apply.plumb.dev/Kustomization/` + ns + `/infra|` + ns + `|Deployment" data-rel="applies"`,
		`data-from="helm.plumb.dev/HelmRelease/` + ns + `/db" data-to="applied|helm.plumb.dev/HelmRelease/` + ns + `/db|` + ns + `|StatefulSet" data-rel="applies"`,
		`data-from="source.plumb.dev/HelmRepository/` + ns + `/charts" data-to="helm.plumb.dev/HelmRelease/` + ns + `/db" data-rel="source"`,
	} {
		g.Expect(body).To(ContainSubstring(e))
	}
	// The red path: from the failing infra to apps and what infra applied, and it is written out.
	g.Expect(body).To(MatchRegexp(`class="edge rel-dependsOn red" d="[^"]+" data-from="apply.plumb.dev/Kustomization/` + ns + `/infra"`))
	g.Expect(body).To(MatchRegexp(`class="edge rel-source" d="[^"]+" data-from="source.plumb.dev/GitRepository/` + ns + `/repo"`))
	g.Expect(body).To(ContainSubstring("Kustomization " + ns + "/infra</a> is "))
	g.Expect(body).To(MatchRegexp(`it blocks\s+<a href="/o/apply.plumb.dev/Kustomization/` + ns + `/apps">`))
	g.Expect(body).To(ContainSubstring("StatefulSet ×1"))
	g.Expect(body).To(ContainSubstring("HelmRepository · " + ns))
	g.Expect(body).To(ContainSubstring("charts (not found)"))
	g.Expect(body).To(ContainSubstring(`<svg class="graph"`))
}

// The shape of hack/bench apply: one GitRepository, many Kustomizations of four objects each.
func TestGraphCondenses(t *testing.T) {
	objs := []*unstructured.Unstructured{obj("source.plumb.dev/v1beta1", "GitRepository", "bench", "apps", "True", map[string]any{}, nil)}
	inv := func(name string) map[string]any {
		var entries []any
		for _, id := range []string{"bench_" + name + "_apps_Deployment", "bench_" + name + "__Service", "bench_" + name + "__ServiceAccount", "bench_" + name + "__ConfigMap"} {
			entries = append(entries, map[string]any{"id": id, "v": "v1"})
		}
		return map[string]any{"inventory": map[string]any{"entries": entries}}
	}
	src := map[string]any{"sourceRef": map[string]any{"kind": "GitRepository", "name": "apps"}}
	for i := range 300 {
		name := fmt.Sprintf("app-%04d", i)
		objs = append(objs, obj("apply.plumb.dev/v1beta1", "Kustomization", "bench", name, "True", src, inv(name)))
	}
	objs = append(objs,
		obj("apply.plumb.dev/v1beta1", "Kustomization", "bench", "broken", "False", src, nil),
		obj("apply.plumb.dev/v1beta1", "Kustomization", "bench", "after", "True", map[string]any{
			"sourceRef": map[string]any{"kind": "GitRepository", "name": "apps"}, "dependsOn": []any{map[string]any{"name": "broken"}}}, nil))
	g := buildGraph(objs, nil)
	g.redPath()
	c := g.condense()
	var ids []string
	for _, n := range c.Nodes {
		id := n.ID
		if !strings.HasPrefix(id, "group|") && !strings.HasPrefix(id, "applied|*|") {
			id = short2(id)
		}
		ids = append(ids, id+" "+n.Label)
	}
	sort.Strings(ids)
	want := []string{
		"GitRepository/bench/apps apps",
		"Kustomization/bench/after after",
		"Kustomization/bench/broken broken",
		"applied|*|bench|ConfigMap ConfigMap ×300",
		"applied|*|bench|Deployment Deployment ×300",
		"applied|*|bench|Service Service ×300",
		"applied|*|bench|ServiceAccount ServiceAccount ×300",
		"group|Kustomization|bench|source.plumb.dev/GitRepository/bench/apps|Ready|false 300 Kustomizations",
	}
	if d := cmp.Diff(want, ids); d != "" {
		t.Errorf("condensed nodes (-want +got):\n%s", d)
	}
	for _, n := range c.Nodes {
		if n.Count == 300 && n.Kind == "Kustomization" && n.Href != "/?kind=Kustomization&ns=bench&state=Ready" {
			t.Errorf("the group links to the overview of its objects, not %q", n.Href)
		}
	}
	if got := edges(c); len(got) != 8 || !slices.Contains(got, "Kustomization/bench/broken -dependsOn-> Kustomization/bench/after red") {
		t.Errorf("edges: %v", got)
	}
}
