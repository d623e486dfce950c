package kustomize

import (
	"context"
	"fmt"

	"github.com/fluxcd/pkg/ssa"
	"github.com/fluxcd/pkg/ssa/jsondiff"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	kustypes "sigs.k8s.io/kustomize/api/types"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/shared/sops"
)

// OptionsFor turns a Kustomization's spec into build options, reading the ConfigMaps and
// Secrets of its postBuild.substituteFrom with reader: what apply-controller builds, and what
// `plumb diff` builds the same way. The values read from Secrets are in Options.Secrets, to be
// kept out of messages. decrypt are the controller's settings of the SOPS decryptor.
func OptionsFor(ctx context.Context, reader client.Reader, obj *applyv1.Kustomization, remoteBases bool, decrypt ...sops.Option) (Options, error) {
	s := obj.Spec
	opts := Options{
		Path: s.Path, TargetNamespace: s.TargetNamespace, NamePrefix: s.NamePrefix, NameSuffix: s.NameSuffix,
		Components: s.Components, IgnoreMissingComponents: s.IgnoreMissingComponents, RemoteBases: remoteBases,
		BuildMetadata: s.BuildMetadata,
	}
	if s.CommonMetadata != nil {
		opts.Labels, opts.Annotations = s.CommonMetadata.Labels, s.CommonMetadata.Annotations
	}
	for _, p := range s.Patches {
		bp := Patch{Patch: p.Patch}
		if t := p.Target; t != nil {
			bp.Target = Selector(t.Group, t.Version, t.Kind, t.Name, t.Namespace, t.LabelSelector, t.AnnotationSelector)
		}
		opts.Patches = append(opts.Patches, bp)
	}
	for _, i := range s.Images {
		opts.Images = append(opts.Images, kustypes.Image{Name: i.Name, NewName: i.NewName, NewTag: i.NewTag, Digest: i.Digest})
	}
	if pb := s.PostBuild; pb != nil {
		opts.Vars = map[string]string{}
		for _, from := range pb.SubstituteFrom {
			vars, version, err := variables(ctx, reader, obj.Namespace, from)
			if err != nil {
				return opts, err
			}
			for k, v := range vars {
				opts.Vars[k] = v
				if from.Kind == "Secret" {
					opts.Secrets = append(opts.Secrets, v)
				}
			}
			if from.Kind == "Secret" {
				opts.SecretVersions = append(opts.SecretVersions, from.Name+"@"+version)
			}
		}
		for k, v := range pb.Substitute {
			opts.Vars[k] = v
		}
		// Flux substitutes only when there is a variable, unless told to always: without
		// one, ${var:=default} stays as written.
		if len(opts.Vars) == 0 && pb.SubstituteStrategy != applyv1.SubstituteStrategyAlways {
			opts.Vars = nil
		}
	}
	if d := s.Decryption; d != nil {
		dec, version, err := decryptor(ctx, reader, obj.Namespace, d, decrypt)
		if err != nil {
			return opts, fmt.Errorf("%w: %w", ErrDecryption, err)
		}
		opts.Decryptor = dec
		opts.SecretVersions = append(opts.SecretVersions, "decryption@"+version)
	}
	return opts, nil
}

// decryptor reads the keys of spec.decryption.secretRef; it returns the Secret's name and
// resource version, for the build's cache key.
func decryptor(ctx context.Context, reader client.Reader, ns string, d *applyv1.Decryption, opts []sops.Option) (Decryptor, string, error) {
	if d.Provider != applyv1.DecryptionProviderSOPS {
		return nil, "", fmt.Errorf("spec.decryption.provider %q is not supported (only %s)", d.Provider, applyv1.DecryptionProviderSOPS)
	}
	var ref string
	if d.SecretRef != nil {
		ref = d.SecretRef.Name
	}
	return sops.FromSecret(ctx, reader, ns, ref, opts...)
}

// variables reads a ConfigMap or Secret of postBuild.substituteFrom, and its resource version.
func variables(ctx context.Context, reader client.Reader, ns string, from applyv1.SubstituteReference) (map[string]string, string, error) {
	key := types.NamespacedName{Namespace: ns, Name: from.Name}
	out := map[string]string{}
	var obj client.Object
	var err error
	switch from.Kind {
	case "Secret":
		s := &corev1.Secret{}
		if err = reader.Get(ctx, key, s); err == nil {
			for k, v := range s.Data {
				out[k] = string(v)
			}
		}
		obj = s
	default:
		cm := &corev1.ConfigMap{}
		if err = reader.Get(ctx, key, cm); err == nil {
			for k, v := range cm.Data {
				out[k] = v
			}
		}
		obj = cm
	}
	if apierrors.IsNotFound(err) && from.Optional {
		return nil, "absent", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("postBuild.substituteFrom %s %s: %w", from.Kind, key, err)
	}
	return out, obj.GetResourceVersion(), nil
}

// IgnoreRules maps spec.ignore to the drift ignore rules of server-side apply: an ignored field
// is neither compared nor taken back; ssa leaves it to its other owner, or keeps the value the
// cluster has.
func IgnoreRules(rules []applyv1.IgnoreRule) []jsondiff.IgnoreRule {
	if len(rules) == 0 {
		return nil
	}
	out := make([]jsondiff.IgnoreRule, 0, len(rules))
	for _, r := range rules {
		ir := jsondiff.IgnoreRule{Paths: r.Paths}
		if t := r.Target; t != nil {
			ir.Selector = &jsondiff.Selector{Group: t.Group, Version: t.Version, Kind: t.Kind, Name: t.Name,
				Namespace: t.Namespace, LabelSelector: t.LabelSelector, AnnotationSelector: t.AnnotationSelector}
		}
		out = append(out, ir)
	}
	return out
}

// ApplyOptions maps the spec and the per-object annotations to server-side apply options.
func ApplyOptions(obj *applyv1.Kustomization) ssa.ApplyOptions {
	o := ssa.DefaultApplyOptions()
	o.Force = obj.Spec.Force
	o.ForceSelector = applyv1.ForceSelector()
	o.ExclusionSelector = applyv1.SSASelector("Ignore")
	o.IfNotPresentSelector = applyv1.SSASelector("IfNotPresent")
	o.WaitTimeout = obj.GetTimeout()
	// Fields last set by hand with kubectl are taken back, so that drift is corrected.
	o.Cleanup = ssa.ApplyCleanupOptions{
		Annotations: []string{corev1.LastAppliedConfigAnnotation},
		FieldManagers: []ssa.FieldManager{
			{Name: "kubectl", OperationType: metav1.ManagedFieldsOperationApply},
			{Name: "kubectl", OperationType: metav1.ManagedFieldsOperationUpdate},
			{Name: "before-first-apply", OperationType: metav1.ManagedFieldsOperationUpdate},
		},
		Exclusions: applyv1.SSASelector("Merge"),
	}
	o.DriftIgnoreRules = IgnoreRules(obj.Spec.Ignore)
	return o
}

// DiffOptions are ApplyOptions for a server-side dry-run: what `plumb diff` shows is what the
// controller would apply.
func DiffOptions(obj *applyv1.Kustomization) ssa.DiffOptions {
	ao := ApplyOptions(obj)
	return ssa.DiffOptions{Exclusions: ao.ExclusionSelector, IfNotPresentSelector: ao.IfNotPresentSelector,
		Force: ao.Force, ForceSelector: ao.ForceSelector, DriftIgnoreRules: ao.DriftIgnoreRules}
}
