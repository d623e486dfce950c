package takeover

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/fluxcd/pkg/ssa"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/cli/internal/install"
	"github.com/plumb-dev/plumb/shared/artifact"
	"github.com/plumb-dev/plumb/shared/kustomize"
	"github.com/plumb-dev/plumb/shared/redact"
)

// honoured are Flux's per-object annotations that Plumb reads as its own.
var honoured = map[string]bool{
	applyv1.FluxSSAAnnotation: true, applyv1.FluxPruneAnnotation: true, applyv1.FluxForceAnnotation: true,
	kustomize.FluxSubstituteAnnotation: true,
}

// DryRunOptions tune DryRun.
type DryRunOptions struct {
	// ArtifactsFrom replaces the scheme and host of the artifact URLs in Flux's sources, for a
	// port-forward to Flux's source-controller.
	ArtifactsFrom string
}

// ObjectDiff is what Plumb's first apply would do to one object.
type ObjectDiff struct {
	Subject string
	Action  ssa.Action
	// Live and Merged are set when the object would change.
	Live, Merged *unstructured.Unstructured
}

// KustomizationDiff is what Plumb's first apply of one Flux Kustomization's twin would do.
type KustomizationDiff struct {
	Object  string
	Objects []ObjectDiff
	// Pruned are inventory objects that left the build: the twin would delete them.
	Pruned []string
	// Warnings are things the diff cannot show.
	Warnings []string
	// Secrets are values to mask in a diff.
	Secrets []string
	Err     error
}

// Changed says whether the first apply would change anything.
func (d KustomizationDiff) Changed() bool {
	if d.Err != nil || len(d.Pruned) > 0 {
		return true
	}
	for _, o := range d.Objects {
		if o.Action != ssa.UnchangedAction && o.Action != ssa.SkippedAction {
			return true
		}
	}
	return false
}

// HelmReleaseCheck says whether helm-controller would adopt a Flux HelmRelease's release.
type HelmReleaseCheck struct {
	Object  string
	Message string
	Adopt   bool
}

// DryRunResult is what a takeover would lead to.
type DryRunResult struct {
	Kustomizations []KustomizationDiff
	HelmReleases   []HelmReleaseCheck
}

// DryRun changes nothing. Per Flux Kustomization, it builds the artifact of the Flux source as
// apply-controller will build it for the twin, and asks the API server for a server-side dry-run
// apply of each object. An object not yet handed over is diffed as kustomize-controller with
// Flux's owner labels: after the hand-over apply-controller holds exactly those field sets and
// values under its own names, so the result is the one Plumb's first apply would have, without
// the owner-label swap. Per Flux HelmRelease, it reads Helm's storage.
func DryRun(ctx context.Context, c client.Client, cfg *rest.Config, opts DryRunOptions) (*DryRunResult, error) {
	kinds, err := discover(ctx, c)
	if err != nil {
		return nil, err
	}
	byKind := map[string]served{}
	for _, s := range kinds {
		byKind[s.Kind.Kind] = s
	}
	res := &DryRunResult{}
	if s := byKind["Kustomization"]; s.FluxVersion != "" {
		list, err := listFlux(ctx, c, s)
		if err != nil {
			return nil, err
		}
		flux, _, err := install.ManagerAs(cfg, Flux.Manager, Flux.Group)
		if err != nil {
			return nil, err
		}
		plumb, _, err := install.ManagerAs(cfg, Plumb.Manager, Plumb.Group)
		if err != nil {
			return nil, err
		}
		for i := range list {
			d := diffKustomization(ctx, c, byKind, &list[i], flux, plumb, opts)
			res.Kustomizations = append(res.Kustomizations, d)
		}
	}
	if s := byKind["HelmRelease"]; s.FluxVersion != "" {
		list, err := listFlux(ctx, c, s)
		if err != nil {
			return nil, err
		}
		for i := range list {
			res.HelmReleases = append(res.HelmReleases, checkRelease(ctx, c, &list[i]))
		}
	}
	return res, nil
}

func diffKustomization(ctx context.Context, c client.Client, byKind map[string]served, flux *unstructured.Unstructured, fluxRM, plumbRM *ssa.ResourceManager, opts DryRunOptions) KustomizationDiff {
	d := KustomizationDiff{Object: subject("Kustomization", flux)}
	ks := &applyv1.Kustomization{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(twin(byKind["Kustomization"].Kind, flux, false).Object, ks); err != nil {
		d.Err = fmt.Errorf("read its spec as Plumb's: %w", err)
		return d
	}
	tree, err := sourceTree(ctx, c, byKind, ks, opts)
	if err != nil {
		d.Err = err
		return d
	}
	bo, err := kustomize.OptionsFor(ctx, c, ks, false)
	if err != nil {
		d.Err = err
		return d
	}
	d.Secrets = bo.Secrets
	built, err := tree.Build(bo)
	if err != nil {
		d.Err = fmt.Errorf("build: %s", redact.String(err.Error(), bo.Secrets))
		return d
	}
	inBuild := map[string]bool{}
	for _, o := range built.Objects {
		obj := o.DeepCopy()
		inBuild[strings.Join([]string{obj.GetNamespace(), obj.GetName(), obj.GroupVersionKind().Group, obj.GetKind()}, "_")] = true
		for k := range obj.GetAnnotations() {
			if strings.HasPrefix(k, Flux.Group+"/") && !honoured[k] {
				d.Warnings = append(d.Warnings, fmt.Sprintf("%s: annotation %s is Flux's and Plumb has no counterpart: it is ignored", describe(obj), k))
			}
		}
		rm := fluxRM
		live := &metav1.PartialObjectMetadata{}
		live.SetGroupVersionKind(obj.GroupVersionKind())
		if err := c.Get(ctx, client.ObjectKeyFromObject(obj), live); err == nil && live.Labels[Plumb.Group+"/name"] == ks.Name {
			rm = plumbRM
		}
		rm.SetOwnerLabels([]*unstructured.Unstructured{obj}, ks.Name, ks.Namespace)
		entry, liveObj, merged, err := rm.Diff(ctx, obj, kustomize.DiffOptions(ks))
		if err != nil {
			d.Err = fmt.Errorf("%s", redact.String(err.Error(), bo.Secrets))
			return d
		}
		d.Objects = append(d.Objects, ObjectDiff{Subject: entry.Subject, Action: entry.Action, Live: liveObj, Merged: merged})
	}
	if ks.Spec.Prune {
		entries, _, _ := unstructured.NestedSlice(flux.Object, "status", "inventory", "entries")
		for _, raw := range entries {
			e, _ := raw.(map[string]any)
			id, _ := e["id"].(string)
			v, _ := e["v"].(string)
			if ref, err := parseInventoryID(id, v); err == nil && !inBuild[id] {
				d.Pruned = append(d.Pruned, ref.String())
			}
		}
		sort.Strings(d.Pruned)
	}
	return d
}

func describe(o *unstructured.Unstructured) string {
	return ObjectRef{GVK: o.GroupVersionKind(), Namespace: o.GetNamespace(), Name: o.GetName()}.String()
}

// sourceTree downloads and loads the artifact of the Flux source a Kustomization names.
func sourceTree(ctx context.Context, c client.Client, byKind map[string]served, ks *applyv1.Kustomization, opts DryRunOptions) (*kustomize.Tree, error) {
	ref := ks.Spec.SourceRef
	s, ok := byKind[ref.Kind]
	if !ok || s.FluxVersion == "" {
		return nil, fmt.Errorf("source kind %s: no Flux CRD for it in the cluster", ref.Kind)
	}
	ns := ref.Namespace
	if ns == "" {
		ns = ks.Namespace
	}
	src := &unstructured.Unstructured{}
	src.SetGroupVersionKind(s.FluxGVK())
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: ref.Name}, src); err != nil {
		return nil, fmt.Errorf("source %s/%s/%s: %w", ref.Kind, ns, ref.Name, err)
	}
	a, err := artifact.FromStatus(src)
	if err != nil {
		return nil, err
	}
	if a.URL == "" {
		return nil, fmt.Errorf("source %s/%s/%s has no artifact yet", ref.Kind, ns, ref.Name)
	}
	if opts.ArtifactsFrom != "" {
		if a.URL, err = rehost(a.URL, opts.ArtifactsFrom); err != nil {
			return nil, err
		}
	}
	data, err := (&artifact.Fetcher{}).Fetch(ctx, &a)
	if err != nil {
		return nil, fmt.Errorf("source %s/%s/%s: %w (with a port-forward to Flux's source-controller, pass --artifacts-from)", ref.Kind, ns, ref.Name, err)
	}
	return kustomize.Load(bytes.NewReader(data), artifact.DefaultLimits)
}

// rehost replaces the scheme and host of an artifact URL.
func rehost(raw, base string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("artifact URL %q: %w", raw, err)
	}
	b, err := url.Parse(base)
	if err != nil || b.Host == "" {
		return "", fmt.Errorf("--artifacts-from %q is not a URL like http://localhost:8080", base)
	}
	u.Scheme, u.Host = b.Scheme, b.Host
	return u.String(), nil
}

// checkRelease finds the Helm release a Flux HelmRelease manages in Helm's storage (Secrets
// named sh.helm.release.v1.<release>.v<revision>) and says what helm-controller will do.
func checkRelease(ctx context.Context, c client.Client, hr *unstructured.Unstructured) HelmReleaseCheck {
	chk := HelmReleaseCheck{Object: subject("HelmRelease", hr)}
	name, _, _ := unstructured.NestedString(hr.Object, "spec", "releaseName")
	if name == "" {
		name = hr.GetName()
		if tns, _, _ := unstructured.NestedString(hr.Object, "spec", "targetNamespace"); tns != "" {
			name = tns + "-" + hr.GetName()
		}
	}
	ns, _, _ := unstructured.NestedString(hr.Object, "spec", "storageNamespace")
	if ns == "" {
		ns = hr.GetNamespace()
	}
	list := &corev1.SecretList{}
	err := c.List(ctx, list, client.InNamespace(ns), client.MatchingLabels{"owner": "helm", "name": name})
	if err != nil && !apierrors.IsForbidden(err) {
		chk.Message = fmt.Sprintf("cannot read Helm's storage in %s: %v", ns, err)
		return chk
	}
	latest, status := 0, ""
	for _, s := range list.Items {
		v, _ := strconv.Atoi(s.Labels["version"])
		if v > latest {
			latest, status = v, s.Labels["status"]
		}
	}
	chart, _, _ := unstructured.NestedSlice(hr.Object, "status", "history")
	version := ""
	if len(chart) > 0 {
		if h, ok := chart[0].(map[string]any); ok {
			version, _ = h["chartVersion"].(string)
		}
	}
	switch {
	case latest == 0:
		chk.Message = fmt.Sprintf("no release %s in Helm's storage in %s: helm-controller would install it", name, ns)
	case status != "deployed":
		chk.Message = fmt.Sprintf("release %s/%s revision %d is %s, not deployed: helm-controller would upgrade it", ns, name, latest, status)
	default:
		chk.Adopt = true
		chk.Message = fmt.Sprintf("release %s/%s revision %d deployed (chart %s): helm-controller adopts it without a new revision when the chart version and values are the same, else upgrades", ns, name, latest, version)
	}
	return chk
}
