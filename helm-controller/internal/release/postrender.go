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
// and image overrides, in memory, plugins off.
type Kustomizer struct {
	Patches []KustomizePatch
	Images  []kustypes.Image
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
	out, err := m.AsYaml()
	if err != nil {
		return nil, fmt.Errorf("post-renderer kustomize: %w", err)
	}
	return bytes.NewBuffer(out), nil
}

// Selector builds a kustomize selector.
func Selector(group, version, kind, name, namespace, labels, annotations string) *kustypes.Selector {
	return &kustypes.Selector{
		ResId:              resid.ResId{Gvk: resid.Gvk{Group: group, Version: version, Kind: kind}, Name: name, Namespace: namespace},
		LabelSelector:      labels,
		AnnotationSelector: annotations,
	}
}
