package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/fluxcd/pkg/apis/meta"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	helmv1 "github.com/plumb-dev/plumb/helm-controller/api/v1beta1"
	plumbrelease "github.com/plumb-dev/plumb/helm-controller/internal/release"
)

// values composes the values of the release and records the attempt: a change of chart, values
// or spec, or the reset annotation, starts the failure counts again. It returns the values and
// their Digest, to compare with the release's.
func (r *HelmReleaseReconciler) values(ctx context.Context, obj *helmv1.HelmRelease, a *meta.Artifact) (map[string]any, string, error) {
	vals, versions, err := r.composeValues(ctx, obj)
	if errors.Is(err, errSpecValues) {
		return nil, "", r.stall(ctx, obj, helmv1.InvalidSpecReason, err.Error())
	}
	if errors.Is(err, errDecryption) {
		return nil, "", r.failure(ctx, obj, a.Revision, helmv1.DecryptionFailedReason, err)
	}
	if err != nil {
		return nil, "", r.failure(ctx, obj, a.Revision, helmv1.ValuesFailedReason, err)
	}
	// digest compares values with the release's; checksum is the one to publish.
	digest, checksum := plumbrelease.Digest(vals), plumbrelease.MaskedDigest(vals, secretsOf(ctx), versions)

	if obj.Status.LastAttemptedRevision != a.Revision || obj.Status.LastAttemptedValuesChecksum != checksum || obj.Status.LastAttemptedGeneration != obj.Generation {
		obj.Status.InstallFailures, obj.Status.UpgradeFailures = 0, 0
	}
	if v, ok := obj.GetAnnotations()[helmv1.ResetAtAnnotation]; ok && v != obj.Status.LastHandledResetAt {
		obj.Status.InstallFailures, obj.Status.UpgradeFailures = 0, 0
		obj.Status.LastHandledResetAt = v
	}
	obj.Status.LastAttemptedRevision, obj.Status.LastAttemptedValuesChecksum, obj.Status.LastAttemptedGeneration = a.Revision, checksum, obj.Generation
	return vals, digest, nil
}

// composeValues composes valuesFrom (in order) and spec.values (last). It also returns the
// resource versions of the Secrets read, which go into the published checksum.
func (r *HelmReleaseReconciler) composeValues(ctx context.Context, obj *helmv1.HelmRelease) (map[string]any, []string, error) {
	vals := map[string]any{}
	var versions []string
	dec := &valuesDecryptor{r: r, obj: obj}
	for _, ref := range obj.Spec.ValuesFrom {
		key := ref.ValuesKey
		if key == "" {
			key = "values.yaml"
		}
		nn := types.NamespacedName{Namespace: obj.Namespace, Name: ref.Name}
		var data []byte
		var found bool
		var err error
		var version string
		switch ref.Kind {
		case "Secret":
			s := &corev1.Secret{}
			if err = r.APIReader.Get(ctx, nn, s); err == nil {
				data, found = s.Data[key]
				version = nn.Name + "@" + s.ResourceVersion
				versions = append(versions, version)
			}
		default:
			cm := &corev1.ConfigMap{}
			if err = r.APIReader.Get(ctx, nn, cm); err == nil {
				var str string
				str, found = cm.Data[key]
				data = []byte(str)
				version = "configmap/" + nn.Name + "@" + cm.ResourceVersion
			}
		}
		if err != nil && !apierrors.IsNotFound(err) {
			return nil, nil, fmt.Errorf("valuesFrom %s %s: %w", ref.Kind, nn, err)
		}
		if err != nil || !found {
			if ref.Optional {
				continue
			}
			if err != nil {
				return nil, nil, fmt.Errorf("valuesFrom: %s %s not found", ref.Kind, nn)
			}
			return nil, nil, fmt.Errorf("valuesFrom: %s %s has no key %q", ref.Kind, nn, key)
		}
		// An encrypted document's ciphertext and SOPS metadata (recipients, key IDs) are not
		// secret and name the keys in messages: its plaintext is what is masked.
		where := fmt.Sprintf("valuesFrom %s %s key %q", ref.Kind, nn, key)
		plain, encrypted, err := dec.decrypt(ctx, where, key, data, ref.TargetPath)
		if err != nil {
			return nil, nil, err
		}
		data = plain
		if encrypted && ref.Kind != "Secret" { // its values are masked: the version shows a change
			versions = append(versions, version)
		}
		if ref.Kind == "Secret" || encrypted {
			addSecrets(ctx, stringLeaves(data))
		}
		if ref.TargetPath != "" {
			if err := plumbrelease.SetPath(vals, ref.TargetPath, strings.TrimRight(string(data), "\n")); err != nil {
				return nil, nil, fmt.Errorf("valuesFrom %s %s: %w", ref.Kind, nn, err)
			}
			continue
		}
		v, err := plumbrelease.ParseValues(data)
		if err != nil {
			// The parser's message may quote the content, which may be secret: only its place.
			return nil, nil, fmt.Errorf("valuesFrom %s %s key %q is not a YAML map of values", ref.Kind, nn, key)
		}
		vals = plumbrelease.Merge(vals, v)
	}
	if obj.Spec.Values != nil && len(obj.Spec.Values.Raw) > 0 {
		v, err := plumbrelease.ParseValues(obj.Spec.Values.Raw)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %v", errSpecValues, err)
		}
		vals = plumbrelease.Merge(vals, v)
	}
	return vals, versions, nil
}

// errSpecValues marks spec.values that are not a map of values: only a change of the spec helps.
var errSpecValues = errors.New("spec.values")

// secretValuesKey carries a reconcile's *secretValues in its context.
type secretValuesKey struct{}

// secretValues are the values a reconcile read from Secrets.
type secretValues struct{ v []string }

func addSecrets(ctx context.Context, values []string) {
	if sv, ok := ctx.Value(secretValuesKey{}).(*secretValues); ok {
		sv.v = append(sv.v, values...)
	}
}

func secretsOf(ctx context.Context) []string {
	if sv, ok := ctx.Value(secretValuesKey{}).(*secretValues); ok {
		return sv.v
	}
	return nil
}

// stringLeaves returns a Secret key's value and, when it is YAML, the scalar values in it.
func stringLeaves(data []byte) []string {
	out := []string{strings.TrimRight(string(data), "\n")}
	vals, err := plumbrelease.ParseValues(data)
	if err != nil {
		return out
	}
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		case nil:
		default:
			out = append(out, fmt.Sprint(x))
		}
	}
	walk(vals)
	return out
}
