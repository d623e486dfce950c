package release

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strings"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	helmrelease "helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/releaseutil"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
)

// Adopting a release that no HelmRelease owns (made by Flux's helm-controller, or by hand with
// helm install): when what the HelmRelease would deploy is what is deployed, the stored revision
// only gets Plumb's labels, with no new revision and nothing applied.

// FluxOriginLabels are the labels Flux's helm-controller post-renders onto every object of its
// releases (its OriginLabels post-renderer). They are left out when a Flux release's manifest is
// compared with what Plumb renders, which does not set them.
var FluxOriginLabels = []string{"helm.toolkit.fluxcd.io/name", "helm.toolkit.fluxcd.io/namespace"}

// RenderOptions tune Render as the action it stands for.
type RenderOptions struct {
	// SkipSchemaValidation does not check the values against values.schema.json.
	SkipSchemaValidation bool
	// PostRenderer, when not nil, changes the rendered manifests.
	PostRenderer *Kustomizer
}

// AdoptionBlocker says why cur, a deployed release, is not what chart ch with values of
// valuesDigest (Digest) would make, before anything is rendered: another chart name or version,
// other values. "" when those match.
func AdoptionBlocker(cur *helmrelease.Release, ch *chart.Chart, valuesDigest string) string {
	if cur.Chart == nil || cur.Chart.Metadata == nil {
		return "the release records no chart"
	}
	have, want := cur.Chart.Metadata, ch.Metadata
	if have.Name != want.Name {
		return fmt.Sprintf("chart %s deployed, chart %s wanted", have.Name, want.Name)
	}
	if have.Version != want.Version {
		return fmt.Sprintf("chart version %s deployed, %s wanted", have.Version, want.Version)
	}
	if Digest(cur.Config) != valuesDigest {
		return "the deployed values differ from the HelmRelease's"
	}
	return ""
}

// RenderedDifference compares the manifest and hooks of the stored revision cur with those
// rendered (Render) for it, object by object after Flux's origin labels are left out; it names
// the first objects that differ, "" when none does.
func RenderedDifference(cur, rendered *helmrelease.Release) (string, error) {
	have, err := manifestObjects(cur.Manifest)
	if err != nil {
		return "", fmt.Errorf("the stored manifest: %w", err)
	}
	want, err := manifestObjects(rendered.Manifest)
	if err != nil {
		return "", fmt.Errorf("the rendered manifest: %w", err)
	}
	diffs := objectDiffs("", have, want)
	haveHooks, err := hookObjects(cur.Hooks)
	if err != nil {
		return "", fmt.Errorf("the stored hooks: %w", err)
	}
	wantHooks, err := hookObjects(rendered.Hooks)
	if err != nil {
		return "", fmt.Errorf("the rendered hooks: %w", err)
	}
	diffs = append(diffs, objectDiffs("hook ", haveHooks, wantHooks)...)
	if len(diffs) == 0 {
		return "", nil
	}
	sort.Strings(diffs)
	const shown = 3
	if len(diffs) > shown {
		diffs = append(diffs[:shown], fmt.Sprintf("%d more", len(diffs)-shown))
	}
	return "the rendered manifest differs from the deployed one: " + strings.Join(diffs, ", "), nil
}

// objectDiffs lists, as "<kind> <name> <what>", the objects of have and want that differ.
func objectDiffs(prefix string, have, want map[string]map[string]any) []string {
	var out []string
	for id, w := range want {
		h, ok := have[id]
		switch {
		case !ok:
			out = append(out, prefix+id+" not deployed")
		case !reflect.DeepEqual(h, w):
			out = append(out, prefix+id+" changed")
		}
	}
	for id := range have {
		if _, ok := want[id]; !ok {
			out = append(out, prefix+id+" no longer rendered")
		}
	}
	return out
}

// manifestObjects reads a manifest's objects by "<kind> [<namespace>/]<name>", without Flux's
// origin labels (and without a labels map they leave empty).
func manifestObjects(manifest string) (map[string]map[string]any, error) {
	out := map[string]map[string]any{}
	dec := yaml.NewYAMLOrJSONDecoder(strings.NewReader(manifest), 4096)
	for {
		var obj map[string]any
		err := dec.Decode(&obj)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if len(obj) == 0 {
			continue
		}
		withoutOriginLabels(obj)
		out[objectID(obj)] = obj
	}
}

// hookObjects reads the hooks' manifests as manifestObjects does; a hook is also known by its
// template's path, so that the same object from another template counts as a change.
func hookObjects(hooks []*helmrelease.Hook) (map[string]map[string]any, error) {
	out := map[string]map[string]any{}
	for _, h := range hooks {
		objs, err := manifestObjects(h.Manifest)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", h.Path, err)
		}
		for id, obj := range objs {
			out[id+" ("+h.Path+")"] = obj
		}
	}
	return out, nil
}

func objectID(obj map[string]any) string {
	kind, _ := obj["kind"].(string)
	meta, _ := obj["metadata"].(map[string]any)
	name, _ := meta["name"].(string)
	if ns, _ := meta["namespace"].(string); ns != "" {
		name = ns + "/" + name
	}
	return kind + " " + name
}

func withoutOriginLabels(obj map[string]any) {
	meta, _ := obj["metadata"].(map[string]any)
	labels, _ := meta["labels"].(map[string]any)
	if labels == nil {
		return
	}
	for _, l := range FluxOriginLabels {
		delete(labels, l)
	}
	if len(labels) == 0 {
		delete(meta, "labels")
	}
}

// Render renders chart ch with vals as the stored revision like would have been made from
// them: its name, namespace and revision number, the cluster's capabilities, template lookups
// in the cluster, then the post-renderer. Nothing is written. The result holds the manifest
// and hooks, as Helm stores them.
func (h *Helm) Render(ch *chart.Chart, vals map[string]any, like *helmrelease.Release, opts RenderOptions) (*helmrelease.Release, error) {
	if err := chartutil.ProcessDependenciesWithMerge(ch, vals); err != nil {
		return nil, err
	}
	caps, err := h.capabilities()
	if err != nil {
		return nil, err
	}
	if kv := ch.Metadata.KubeVersion; kv != "" && !chartutil.IsCompatibleRange(kv, caps.KubeVersion.String()) {
		return nil, fmt.Errorf("chart requires kubeVersion %s, which is incompatible with Kubernetes %s", kv, caps.KubeVersion.String())
	}
	options := chartutil.ReleaseOptions{Name: like.Name, Namespace: like.Namespace, Revision: like.Version,
		IsInstall: like.Version == 1, IsUpgrade: like.Version > 1}
	toRender, err := chartutil.ToRenderValuesWithSchemaValidation(ch, vals, options, caps, opts.SkipSchemaValidation)
	if err != nil {
		return nil, err
	}
	restConfig, err := h.cfg.RESTClientGetter.ToRESTConfig()
	if err != nil {
		return nil, err
	}
	files, err := engine.New(restConfig).Render(ch, toRender)
	if err != nil {
		return nil, err
	}
	for name := range files {
		if strings.HasSuffix(name, "NOTES.txt") {
			delete(files, name)
		}
	}
	hooks, manifests, err := releaseutil.SortManifests(files, nil, releaseutil.InstallOrder)
	if err != nil {
		return nil, err
	}
	b := bytes.NewBuffer(nil)
	for _, m := range manifests {
		fmt.Fprintf(b, "---\n# Source: %s\n%s\n", m.Name, m.Content)
	}
	if opts.PostRenderer != nil {
		if b, err = opts.PostRenderer.Run(b); err != nil {
			return nil, err
		}
	}
	return &helmrelease.Release{Name: like.Name, Namespace: like.Namespace, Version: like.Version, Manifest: b.String(), Hooks: hooks}, nil
}

// capabilities are the cluster's, as Helm's actions read them.
func (h *Helm) capabilities() (*chartutil.Capabilities, error) {
	if h.cfg.Capabilities != nil {
		return h.cfg.Capabilities, nil
	}
	dc, err := h.cfg.RESTClientGetter.ToDiscoveryClient()
	if err != nil {
		return nil, err
	}
	dc.Invalidate()
	kv, err := dc.ServerVersion()
	if err != nil {
		return nil, fmt.Errorf("reading the Kubernetes version: %w", err)
	}
	versions, err := action.GetVersionSet(dc)
	// As Helm: an API service registered but not served leaves the others usable.
	if err != nil && !discovery.IsGroupDiscoveryFailedError(err) {
		return nil, fmt.Errorf("reading the API versions: %w", err)
	}
	h.cfg.Capabilities = &chartutil.Capabilities{
		APIVersions: versions,
		KubeVersion: chartutil.KubeVersion{Version: kv.GitVersion, Major: kv.Major, Minor: kv.Minor},
		HelmVersion: chartutil.DefaultCapabilities.HelmVersion,
	}
	return h.cfg.Capabilities, nil
}

// Adopt writes labels onto the stored revision rls (over those it has): no new revision.
func (h *Helm) Adopt(rls *helmrelease.Release, labels map[string]string) error {
	cur, err := h.cfg.Releases.Get(rls.Name, rls.Version)
	if err != nil {
		return err
	}
	if cur.Labels == nil {
		cur.Labels = map[string]string{}
	}
	for k, v := range labels {
		cur.Labels[k] = v
	}
	if err := h.cfg.Releases.Update(cur); err != nil {
		return err
	}
	rls.Labels = cur.Labels
	return nil
}
