package takeover

import (
	"context"
	"fmt"
	"path"
	"path/filepath"
	"strings"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	helmcli "helm.sh/helm/v3/pkg/cli"
	"helm.sh/helm/v3/pkg/registry"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/plumb-dev/plumb/shared/redact"
)

// chart pulls a HelmRelease twin's chart from its HelmRepository and returns its folder.
func (f *argoFiles) chart(tw, repo *unstructured.Unstructured) (string, error) {
	name, _, _ := unstructured.NestedString(tw.Object, "spec", "chart", "spec", "chart")
	version, _, _ := unstructured.NestedString(tw.Object, "spec", "chart", "spec", "version")
	repoURL, _, _ := unstructured.NestedString(repo.Object, "spec", "url")
	kind, _, _ := unstructured.NestedString(repo.Object, "spec", "type")
	dir := filepath.Join(f.tmp, fmt.Sprintf("chart-%d", len(f.cloned)))
	f.cloned[dir] = dir
	settings := helmcli.New()
	settings.RepositoryCache = filepath.Join(dir, "cache")
	settings.RepositoryConfig = filepath.Join(dir, "repositories.yaml")
	p := action.NewPullWithOpts(action.WithConfig(&action.Configuration{}))
	p.Settings, p.Version, p.DestDir, p.Untar, p.UntarDir = settings, version, dir, true, dir
	ref := name
	if kind == "oci" {
		rc, err := registry.NewClient(registry.ClientOptCredentialsFile(filepath.Join(dir, "config.json")))
		if err != nil {
			return "", err
		}
		p.SetRegistryClient(rc)
		ref = strings.TrimSuffix(repoURL, "/") + "/" + name
	} else {
		p.RepoURL = repoURL
	}
	if _, err := p.Run(ref); err != nil {
		return "", fmt.Errorf("pull chart %s %s from %s: %v", name, version, redact.URL(repoURL), err)
	}
	return filepath.Join(dir, name), nil
}

// argoDiffChart renders the twin's chart as helm-controller's install will and diffs each
// object as Helm's install over it would change it. It returns the inventory IDs of the
// render.
func argoDiffChart(ctx context.Context, c client.Client, m *argoManagers, tw *unstructured.Unstructured, dir string, d *KustomizationDiff) map[string]bool {
	chartDir := dir
	if kind, _, _ := unstructured.NestedString(tw.Object, "spec", "chart", "spec", "sourceRef", "kind"); kind == "GitRepository" {
		p, _, _ := unstructured.NestedString(tw.Object, "spec", "chart", "spec", "chart")
		chartDir = filepath.Join(dir, filepath.FromSlash(path.Clean("/"+p)))
	}
	ch, err := loader.Load(chartDir)
	if err != nil {
		d.Err = fmt.Errorf("load the chart: %w", err)
		return nil
	}
	vals, err := twinValues(ch, tw)
	if err != nil {
		d.Err = err
		return nil
	}
	t := argoTargetOf(tw)
	inst := action.NewInstall(&action.Configuration{})
	inst.ClientOnly, inst.DryRun, inst.Replace = true, true, true
	inst.ReleaseName, inst.Namespace = t.name, t.namespace
	if dc, err := discovery.NewDiscoveryClientForConfig(m.cfg); err == nil {
		if v, err := dc.ServerVersion(); err == nil {
			inst.KubeVersion, _ = chartutil.ParseKubeVersion(v.GitVersion)
		}
		if vs, err := action.GetVersionSet(dc); err == nil {
			inst.APIVersions = vs
		}
	}
	rel, err := inst.RunWithContext(ctx, ch, vals)
	if err != nil {
		d.Err = fmt.Errorf("render the chart: %w", err)
		return nil
	}
	if n := len(ch.CRDObjects()); n > 0 {
		d.Warnings = append(d.Warnings, fmt.Sprintf("the chart has %d CRDs: Helm creates those that are missing and leaves those that exist; they are not diffed", n))
	}
	inBuild := map[string]bool{}
	for _, doc := range strings.Split(rel.Manifest, "\n---") {
		obj := &unstructured.Unstructured{}
		if strings.TrimSpace(doc) == "" || yaml.Unmarshal([]byte(doc), &obj.Object) != nil || len(obj.Object) == 0 {
			continue
		}
		if namespaced, err := c.IsObjectNamespaced(obj); err == nil && namespaced && obj.GetNamespace() == "" {
			obj.SetNamespace(t.namespace)
		}
		inBuild[strings.Join([]string{obj.GetNamespace(), obj.GetName(), obj.GroupVersionKind().Group, obj.GetKind()}, "_")] = true
		od, err := diffObject(ctx, m.helm, obj, diffNothingIgnored, nil)
		if err != nil {
			d.Err = err
			return nil
		}
		d.Objects = append(d.Objects, od)
	}
	return inBuild
}

// twinValues are the values helm-controller gives the chart: its values files in order, then
// the HelmRelease's values.
func twinValues(ch *chart.Chart, tw *unstructured.Unstructured) (map[string]any, error) {
	out := map[string]any{}
	files, _, _ := unstructured.NestedStringSlice(tw.Object, "spec", "chart", "spec", "valuesFiles")
	ignoreMissing, _, _ := unstructured.NestedBool(tw.Object, "spec", "chart", "spec", "ignoreMissingValuesFiles")
	for _, name := range files {
		var data []byte
		for _, f := range ch.Raw {
			if f.Name == path.Clean(name) {
				data = f.Data
			}
		}
		if data == nil {
			if ignoreMissing {
				continue
			}
			return nil, fmt.Errorf("values file %s is not in the chart", name)
		}
		v, err := chartutil.ReadValues(data)
		if err != nil {
			return nil, fmt.Errorf("values file %s: %w", name, err)
		}
		mergeValues(out, v)
	}
	if v, ok, _ := unstructured.NestedMap(tw.Object, "spec", "values"); ok {
		mergeValues(out, v)
	}
	return out, nil
}

// mergeValues merges src into dst, src winning; maps merge, anything else is replaced.
func mergeValues(dst, src map[string]any) {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				mergeValues(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
}
