package takeover

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/fluxcd/pkg/ssa"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/cli/internal/install"
	"github.com/plumb-dev/plumb/cli/internal/localdir"
	"github.com/plumb-dev/plumb/cli/internal/migrate"
	"github.com/plumb-dev/plumb/shared/kustomize"
	"github.com/plumb-dev/plumb/shared/redact"
)

// ArgoDryRunOptions tune DryRunArgoCD.
type ArgoDryRunOptions struct {
	// Namespace of the twins.
	Namespace string
	// SourceDirs are local checkouts of Git repositories, by repository URL, read instead of a
	// clone (for a private repository, or to try a change before committing it).
	SourceDirs map[string]string
}

// helmManager is the field manager the dry-run of a Helm install applies as: a manager that
// owns nothing yet, so that, as with Helm's install over existing objects, the chart's values
// are written and nothing else is removed.
const helmManager = "helm-controller"

// DryRunArgoCD changes nothing. Per Application, it gets the files of its source (a clone of
// the repository at its revision, or a local checkout), builds them as the twin will, and
// asks the API server for a server-side dry-run apply of each object:
//
//   - for a Kustomization twin, an object not yet handed over is applied as Argo CD's field
//     manager with Argo CD's tracking metadata, which the hand-over removes; after the
//     hand-over apply-controller holds Argo CD's field set, so the diff is that of Plumb's
//     first apply. Fields Argo CD set client-side that the build no longer has are named: the
//     first apply removes them.
//   - for a HelmRelease twin, the chart is rendered with the Helm SDK, as helm-controller's
//     install will, and each object is applied by a manager that owns nothing: Helm's install
//     over existing objects writes the chart's values and removes nothing.
func DryRunArgoCD(ctx context.Context, c client.Client, cfg *rest.Config, opts ArgoDryRunOptions) (*DryRunResult, error) {
	if opts.Namespace == "" {
		opts.Namespace = "plumb-system"
	}
	if err := needArgoCRD(ctx, c, "applications"); err != nil {
		return nil, err
	}
	apps, err := listArgo(ctx, c, ArgoApplication)
	if err != nil {
		return nil, err
	}
	twins, err := argoTwins(ctx, c)
	if err != nil {
		return nil, err
	}
	m := &argoManagers{cfg: cfg}
	for _, x := range []struct {
		rm            **ssa.ResourceManager
		manager, kind string
	}{{&m.argo, ArgoManager, "argoproj.io"}, {&m.plumb, Plumb.Manager, Plumb.Group}, {&m.helm, helmManager, "helm.plumb.dev"}} {
		if *x.rm, _, err = install.ManagerAs(cfg, x.manager, x.kind); err != nil {
			return nil, err
		}
	}
	tmp, err := os.MkdirTemp("", "plumb-argocd-dry-run-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	files := &argoFiles{dirs: opts.SourceDirs, tmp: tmp, cloned: map[string]string{}}
	conv := migrate.NewArgoConverter(opts.Namespace)
	res := &DryRunResult{}
	for i := range apps {
		res.Kustomizations = append(res.Kustomizations, argoDryRun(ctx, c, m, files, conv, twins[argoKey(&apps[i])], &apps[i]))
	}
	return res, nil
}

// argoManagers apply as Argo CD, apply-controller and Helm.
type argoManagers struct {
	argo, plumb, helm *ssa.ResourceManager
	cfg               *rest.Config
}

// diffNothingIgnored diffs every field: Helm's install writes them all.
var diffNothingIgnored = ssa.DiffOptions{}

// argoDryRun is the dry-run of one Application.
func argoDryRun(ctx context.Context, c client.Client, m *argoManagers, files *argoFiles, conv *migrate.ArgoConverter, existing, app *unstructured.Unstructured) KustomizationDiff {
	d := KustomizationDiff{Object: subject("Application", app)}
	orig, err := withSavedAutomated(app, existing)
	if err != nil {
		d.Err = err
		return d
	}
	res, err := conv.Application(orig.Object)
	if err != nil {
		d.Err = err
		return d
	}
	for _, f := range res.Findings {
		if f.Field != migrate.AutomatedFinding {
			d.Warnings = append(d.Warnings, fmt.Sprintf("%s: %s (the takeover leaves the Application to Argo CD unless --drop-unsupported)", f.Field, f.Message))
		}
	}
	if len(res.Objects) != 1 {
		d.Err = fmt.Errorf("it makes %d Kustomizations or HelmReleases: a takeover moves Applications with one source", len(res.Objects))
		return d
	}
	tw := res.Objects[0]
	d.Object += " → " + tw.GetKind() + "/" + tw.GetNamespace() + "/" + tw.GetName()
	dir, err := files.sourceOf(ctx, tw, res.Sources)
	if err != nil {
		d.Err = err
		return d
	}
	var inBuild map[string]bool
	if tw.GetKind() == "HelmRelease" {
		inBuild = argoDiffChart(ctx, c, m, tw, dir, &d)
	} else {
		inBuild = argoDiffKustomization(ctx, c, m, tw, dir, &d)
	}
	if d.Err != nil {
		return d
	}
	prune, _, _ := unstructured.NestedBool(tw.Object, "spec", "prune")
	resources, _, _ := unstructured.NestedSlice(app.Object, "status", "resources")
	for _, raw := range resources {
		e, _ := raw.(map[string]any)
		if hook, _ := e["hook"].(bool); hook {
			continue
		}
		str := func(k string) string { s, _ := e[k].(string); return s }
		id := strings.Join([]string{str("namespace"), str("name"), str("group"), str("kind")}, "_")
		ref, err := parseInventoryID(id, str("version"))
		if err != nil || inBuild[id] {
			continue
		}
		switch {
		case tw.GetKind() == "HelmRelease":
			d.Warnings = append(d.Warnings, fmt.Sprintf("%s: deployed by the Application, not in the chart as rendered: the Helm release will not own it; it stays as it is", ref))
		case prune:
			d.Pruned = append(d.Pruned, ref.String())
		}
	}
	sort.Strings(d.Pruned)
	return d
}

// withSavedAutomated is the Application as it was before a takeover turned its auto-sync
// off: the twin keeps what was removed.
func withSavedAutomated(app, existing *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	orig := app.DeepCopy()
	if _, found, _ := unstructured.NestedFieldNoCopy(app.Object, "spec", "syncPolicy", "automated"); found || existing == nil {
		return orig, nil
	}
	saved := existing.GetAnnotations()[ArgoAutomatedAnnotation]
	if saved == "" {
		return orig, nil
	}
	var automated any
	if err := json.Unmarshal([]byte(saved), &automated); err != nil {
		return nil, fmt.Errorf("annotation %s of its twin is not JSON; fix it by hand", ArgoAutomatedAnnotation)
	}
	_ = unstructured.SetNestedField(orig.Object, automated, "spec", "syncPolicy", "automated")
	return orig, nil
}

// argoDiffKustomization builds the source's files as apply-controller will for the twin and
// diffs each object. It returns the inventory IDs of the build.
func argoDiffKustomization(ctx context.Context, c client.Client, m *argoManagers, tw *unstructured.Unstructured, dir string, d *KustomizationDiff) map[string]bool {
	ks := &applyv1.Kustomization{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(tw.Object, ks); err != nil {
		d.Err = fmt.Errorf("read the twin's spec: %w", err)
		return nil
	}
	tree, err := localdir.Load(dir)
	if err != nil {
		d.Err = fmt.Errorf("read the source's files: %w", err)
		return nil
	}
	bo, err := kustomize.OptionsFor(ctx, c, ks, false)
	if err != nil {
		d.Err = err
		return nil
	}
	d.Secrets = bo.Secrets
	built, err := tree.Build(bo)
	if err != nil {
		d.Err = fmt.Errorf("build: %s", redact.String(err.Error(), bo.Secrets))
		return nil
	}
	inBuild := map[string]bool{}
	for _, o := range built.Objects {
		obj := o.DeepCopy()
		inBuild[strings.Join([]string{obj.GetNamespace(), obj.GetName(), obj.GroupVersionKind().Group, obj.GetKind()}, "_")] = true
		live := &unstructured.Unstructured{}
		live.SetGroupVersionKind(obj.GroupVersionKind())
		if err := c.Get(ctx, client.ObjectKeyFromObject(obj), live); err != nil {
			live = nil
		}
		rm := m.argo
		if live != nil && live.GetLabels()[Plumb.Group+"/name"] == ks.Name && live.GetLabels()[Plumb.Group+"/namespace"] == ks.Namespace {
			rm = m.plumb
			rm.SetOwnerLabels([]*unstructured.Unstructured{obj}, ks.Name, ks.Namespace)
		} else if live != nil {
			keepArgoBookkeeping(obj, live)
		}
		od, err := diffObject(ctx, rm, obj, kustomize.DiffOptions(ks), bo.Secrets)
		if err != nil {
			d.Err = err
			return nil
		}
		if rm == m.argo && live != nil {
			removed, err := argoRemoved(ctx, c, obj, live)
			if err != nil {
				d.Err = fmt.Errorf("%s: %s", od.Subject, redact.String(err.Error(), bo.Secrets))
				return nil
			}
			if len(removed) > 0 {
				d.Warnings = append(d.Warnings, fmt.Sprintf("%s: Argo CD set %s, which the build no longer has: Plumb's first apply removes it", od.Subject, strings.Join(removed, ", ")))
				if od.Action == ssa.UnchangedAction {
					od.Action = ssa.ConfiguredAction
				}
			}
		}
		d.Objects = append(d.Objects, od)
	}
	return inBuild
}

// diffObject is one server-side dry-run apply.
func diffObject(ctx context.Context, rm *ssa.ResourceManager, obj *unstructured.Unstructured, opts ssa.DiffOptions, secrets []string) (ObjectDiff, error) {
	entry, live, merged, err := rm.Diff(ctx, obj, opts)
	if err != nil {
		return ObjectDiff{}, errors.New(redact.String(err.Error(), secrets))
	}
	return ObjectDiff{Subject: entry.Subject, Action: entry.Action, Live: live, Merged: merged}, nil
}

// keepArgoBookkeeping copies the live object's Argo CD tracking metadata into the object to
// apply as Argo CD: the hand-over removes it, Plumb's apply does not.
func keepArgoBookkeeping(obj, live *unstructured.Unstructured) {
	annotations := obj.GetAnnotations()
	for _, k := range []string{ArgoTrackingAnnotation, lastApplied} {
		if v, ok := live.GetAnnotations()[k]; ok {
			if annotations == nil {
				annotations = map[string]string{}
			}
			annotations[k] = v
		}
	}
	obj.SetAnnotations(annotations)
	if v, ok := live.GetLabels()[ArgoInstanceLabel]; ok {
		labels := obj.GetLabels()
		if labels == nil {
			labels = map[string]string{}
		}
		if _, set := labels[ArgoInstanceLabel]; !set {
			labels[ArgoInstanceLabel] = v
			obj.SetLabels(labels)
		}
	}
}

// argoRemoved names the fields Argo CD's client-side sync set (its Update entry) that no
// manager keeps once the object is applied as it is built: the hand-over gives them to
// apply-controller, whose first apply removes them. A server-side apply as Argo CD does not
// show them, as the Update entry is another field set.
func argoRemoved(ctx context.Context, c client.Client, obj, live *unstructured.Unstructured) ([]string, error) {
	var update *metav1.FieldsV1
	for _, e := range live.GetManagedFields() {
		if e.Manager == ArgoManager && e.Operation == metav1.ManagedFieldsOperationUpdate && e.Subresource == "" {
			update = e.FieldsV1
		}
	}
	if update == nil {
		return nil, nil
	}
	applied := obj.DeepCopy()
	//lint:ignore SA1019 a dry-run apply of an unstructured object, as fluxcd/pkg/ssa makes it
	if err := c.Patch(ctx, applied, client.Apply, client.DryRunAll, client.ForceOwnership, client.FieldOwner(ArgoManager)); err != nil {
		return nil, fmt.Errorf("dry-run apply: %w", err)
	}
	kept := map[string]bool{}
	for _, e := range applied.GetManagedFields() {
		if e.Manager == ArgoManager && e.Operation == metav1.ManagedFieldsOperationUpdate {
			continue
		}
		for _, p := range fieldLeaves(e.FieldsV1) {
			kept[p] = true
		}
	}
	skip := []string{
		".metadata.annotations." + ArgoTrackingAnnotation, ".metadata.annotations." + lastApplied,
		".metadata.labels." + ArgoInstanceLabel,
	}
	// An Update entry owns the defaults the API server filled in too: only what kubectl's
	// last-applied configuration holds was Argo CD's to set.
	var set map[string]any
	if raw := live.GetAnnotations()[lastApplied]; raw != "" {
		_ = json.Unmarshal([]byte(raw), &set)
	}
	var out []string
	for _, segs := range fieldLeafPaths(update) {
		p := fieldPathString(segs)
		if kept[p] || containsString(skip, p) || (set != nil && !hasField(set, segs)) {
			continue
		}
		out = append(out, p)
	}
	sort.Strings(out)
	return out, nil
}

// hasField says whether an object has the field at a fieldsV1 path.
func hasField(v any, segs []string) bool {
	if len(segs) == 0 {
		return true
	}
	seg := segs[0]
	switch {
	case strings.HasPrefix(seg, "f:"):
		m, ok := v.(map[string]any)
		if !ok {
			return false
		}
		x, ok := m[seg[2:]]
		return ok && hasField(x, segs[1:])
	case strings.HasPrefix(seg, "k:"), strings.HasPrefix(seg, "v:"):
		var want any
		if json.Unmarshal([]byte(seg[2:]), &want) != nil {
			return false
		}
		list, _ := v.([]any)
		for _, item := range list {
			if matches(item, want, seg[0] == 'k') {
				return hasField(item, segs[1:])
			}
		}
	}
	return false
}

// matches says whether a list item has a key's fields (k:) or is a value (v:).
func matches(item, want any, byKey bool) bool {
	same := func(a, b any) bool {
		x, _ := json.Marshal(a)
		y, _ := json.Marshal(b)
		return string(x) == string(y)
	}
	if !byKey {
		return same(item, want)
	}
	m, ok := item.(map[string]any)
	keys, _ := want.(map[string]any)
	if !ok {
		return false
	}
	for k, x := range keys {
		// A key field the configuration leaves out is one the API server defaults (a port's
		// protocol).
		if y, ok := m[k]; ok && !same(y, x) {
			return false
		}
	}
	return true
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// fieldLeaves are the fields a fieldsV1 set owns, as paths like .data.greeting (list items by
// their keys, as fieldsV1 writes them).
func fieldLeaves(f *metav1.FieldsV1) []string {
	var out []string
	for _, segs := range fieldLeafPaths(f) {
		out = append(out, fieldPathString(segs))
	}
	return out
}

// fieldLeafPaths are the fields a fieldsV1 set owns, as its keys. A map's own marker "." is not
// a field of its own.
func fieldLeafPaths(f *metav1.FieldsV1) [][]string {
	set := map[string]any{}
	if f == nil || json.Unmarshal(f.GetRawBytes(), &set) != nil {
		return nil
	}
	var out [][]string
	var walk func(prefix []string, m map[string]any)
	walk = func(prefix []string, m map[string]any) {
		for k, v := range m {
			if k == "." {
				continue
			}
			p := append(append([]string{}, prefix...), k)
			child, _ := v.(map[string]any)
			if len(child) == 1 && child["."] != nil {
				continue // the map alone: it goes when its fields go
			}
			if len(child) == 0 {
				out = append(out, p)
				continue
			}
			walk(p, child)
		}
	}
	walk(nil, set)
	return out
}

func fieldPathString(segs []string) string {
	var b strings.Builder
	for _, s := range segs {
		if name, ok := strings.CutPrefix(s, "f:"); ok {
			b.WriteString("." + name)
		} else {
			b.WriteString("[" + s + "]")
		}
	}
	return b.String()
}
