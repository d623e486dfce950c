package release

import (
	"bytes"
	"fmt"

	"sigs.k8s.io/kustomize/api/krusty"
	kustypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/kustomize/kyaml/resid"
	"sigs.k8s.io/yaml"
)

// KustomizePatch is a strategic merge or JSON 6902 patch with an optional target.
type KustomizePatch struct {
	Patch  string
	Target *kustypes.Selector
}

// Kustomizer is a Helm post-renderer that runs kustomize over the rendered manifests: patches
// and image overrides, in memory, plugins off; then it sets Labels and Annotations on every
// object's metadata (never on selectors or templates), over what the object has.
type Kustomizer struct {
	Patches     []KustomizePatch
	Images      []kustypes.Image
	Labels      map[string]string
	Annotations map[string]string
}

// Run implements helm.sh/helm/v3/pkg/postrender.PostRenderer.
func (k *Kustomizer) Run(rendered *bytes.Buffer) (*bytes.Buffer, error) {
	fs := filesys.MakeFsInMemory()
	if err := fs.WriteFile("/render/all.yaml", rendered.Bytes()); err != nil {
		return nil, err
	}
	kz := kustypes.Kustomization{
		TypeMeta:  kustypes.TypeMeta{APIVersion: kustypes.KustomizationVersion, Kind: kustypes.KustomizationKind},
		Resources: []string{"all.yaml"},
		Images:    k.Images,
	}
	for _, p := range k.Patches {
		kz.Patches = append(kz.Patches, kustypes.Patch{Patch: p.Patch, Target: p.Target})
	}
	data, err := yaml.Marshal(kz)
	if err != nil {
		return nil, err
	}
	if err := fs.WriteFile("/render/kustomization.yaml", data); err != nil {
		return nil, err
	}
	m, err := krusty.MakeKustomizer(&krusty.Options{
		Reorder:          krusty.ReorderOptionNone,
		LoadRestrictions: kustypes.LoadRestrictionsRootOnly,
		PluginConfig:     kustypes.DisabledPluginConfig(),
	}).Run(fs, "/render")
	if err != nil {
		return nil, fmt.Errorf("post-renderer kustomize: %w", err)
	}
	if len(k.Labels)+len(k.Annotations) > 0 {
		for _, res := range m.Resources() {
			if err := res.SetLabels(merged(res.GetLabels(), k.Labels)); err != nil {
				return nil, fmt.Errorf("post-renderer commonMetadata: %w", err)
			}
			if err := res.SetAnnotations(merged(res.GetAnnotations(), k.Annotations)); err != nil {
				return nil, fmt.Errorf("post-renderer commonMetadata: %w", err)
			}
		}
	}
	out, err := m.AsYaml()
	if err != nil {
		return nil, fmt.Errorf("post-renderer kustomize: %w", err)
	}
	return bytes.NewBuffer(out), nil
}

// merged is have with want's entries over it, nil when both are empty.
func merged(have, want map[string]string) map[string]string {
	if len(want) == 0 {
		return have
	}
	out := make(map[string]string, len(have)+len(want))
	for k, v := range have {
		out[k] = v
	}
	for k, v := range want {
		out[k] = v
	}
	return out
}

// Selector builds a kustomize selector.
func Selector(group, version, kind, name, namespace, labels, annotations string) *kustypes.Selector {
	return &kustypes.Selector{
		ResId:              resid.ResId{Gvk: resid.Gvk{Group: group, Version: version, Kind: kind}, Name: name, Namespace: namespace},
		LabelSelector:      labels,
		AnnotationSelector: annotations,
	}
}
