package ops

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/fluxcd/pkg/ssa"
	ssautil "github.com/fluxcd/pkg/ssa/utils"
	"github.com/pmezard/go-difflib/difflib"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/cli/internal/install"
	"github.com/plumb-dev/plumb/shared/kustomize"
	"github.com/plumb-dev/plumb/shared/redact"
)

// What a diff found for an object.
const (
	Created = "created"
	Changed = "changed"
	Deleted = "deleted"
)

// Change is an object that applying a build would create, change or prune.
type Change struct {
	// Subject is Kind/namespace/name.
	Subject string
	// Action is Created, Changed or Deleted.
	Action string
	// Live and Merged are the object in the cluster and after applying, as YAML without
	// managed fields and status, Secret values masked; empty for Created and Deleted.
	Live, Merged string
}

// Unified is the unified diff of Live and Merged.
func (c Change) Unified() (string, error) {
	return difflib.GetUnifiedDiffString(difflib.UnifiedDiff{A: difflib.SplitLines(c.Live), B: difflib.SplitLines(c.Merged),
		FromFile: "cluster", ToFile: "local", Context: 3})
}

// DiffKustomization builds tree with the Kustomization's settings, exactly as apply-controller
// builds (target namespace, prefix and suffix, patches, images, components, postBuild
// variables, decryption), asks the API server for a server-side dry-run apply of each object,
// and returns what would change, pruned inventory entries included. With atRoot the tree is the
// folder spec.path names (a local copy); otherwise the tree is the whole source artifact and
// spec.path is built. The values of Secrets and of postBuild Secret variables never appear in
// the result or its errors. The dry run is authorised as a write: it needs patch on the objects.
func DiffKustomization(ctx context.Context, c client.Client, cfg *rest.Config, ks *applyv1.Kustomization, tree *kustomize.Tree, atRoot bool) ([]Change, error) {
	opts, err := kustomize.OptionsFor(ctx, c, ks, false)
	if err != nil {
		return nil, err
	}
	if atRoot {
		opts.Path = ""
	}
	res, err := tree.Build(opts)
	if err != nil {
		return nil, errors.New(redact.String(err.Error(), opts.Secrets))
	}
	rm, _, err := install.ManagerAs(cfg, "apply-controller", applyv1.GroupVersion.Group)
	if err != nil {
		return nil, err
	}
	var out []Change
	built := map[string]bool{}
	for _, obj := range res.Objects {
		built[InventoryID(obj)] = true
		entry, live, merged, err := rm.Diff(ctx, obj, kustomize.DiffOptions(ks))
		if err != nil {
			return nil, errors.New(redact.String(err.Error(), opts.Secrets))
		}
		switch entry.Action {
		case ssa.CreatedAction:
			out = append(out, Change{Subject: entry.Subject, Action: Created})
		case ssa.ConfiguredAction:
			ch := Change{Subject: entry.Subject, Action: Changed}
			if ch.Live, err = MaskedYAML(live, opts.Secrets); err != nil {
				return nil, err
			}
			if ch.Merged, err = MaskedYAML(merged, opts.Secrets); err != nil {
				return nil, err
			}
			out = append(out, ch)
		}
	}
	if ks.Spec.Prune && ks.Status.Inventory != nil {
		var gone []string
		for _, e := range ks.Status.Inventory.Entries {
			if !built[e.ID] && !pruneDisabled(ctx, c, e.ID, e.Version) {
				gone = append(gone, e.ID)
			}
		}
		sort.Strings(gone)
		for _, id := range gone {
			out = append(out, Change{Subject: SubjectOf(id), Action: Deleted})
		}
	}
	return out, nil
}

// UnifiedDiff is the YAML diff of the live object and the result of applying, with the values
// of Secrets and of the postBuild Secrets masked.
func UnifiedDiff(live, merged *unstructured.Unstructured, secrets []string) (string, error) {
	a, err := MaskedYAML(live, secrets)
	if err != nil {
		return "", err
	}
	b, err := MaskedYAML(merged, secrets)
	if err != nil {
		return "", err
	}
	return Change{Live: a, Merged: b}.Unified()
}

// MaskedYAML is an object as YAML for a person to compare: without managed fields, resource
// version, generation and status, a Secret's values replaced by their sizes, and every value of
// secrets masked. A nil object is empty.
func MaskedYAML(o *unstructured.Unstructured, secrets []string) (string, error) {
	if o == nil {
		return "", nil
	}
	o = o.DeepCopy()
	unstructured.RemoveNestedField(o.Object, "metadata", "managedFields")
	unstructured.RemoveNestedField(o.Object, "metadata", "resourceVersion")
	unstructured.RemoveNestedField(o.Object, "metadata", "generation")
	unstructured.RemoveNestedField(o.Object, "status")
	if o.GetKind() == "Secret" {
		o.SetAnnotations(nil) // kubectl's last-applied-configuration holds the data
		for _, field := range []string{"data", "stringData"} {
			if m, ok, _ := unstructured.NestedMap(o.Object, field); ok {
				for k, v := range m {
					m[k] = fmt.Sprintf("***(%d bytes)", len(fmt.Sprint(v)))
				}
				_ = unstructured.SetNestedMap(o.Object, m, field)
			}
		}
	}
	b, err := yaml.Marshal(o.Object)
	return redact.String(string(b), secrets), err
}

// pruneDisabled says whether the live object of an inventory entry is marked to stay when it
// leaves the build.
func pruneDisabled(ctx context.Context, c client.Client, id, version string) bool {
	r, ok := ParseID(id, version)
	if !ok {
		return false
	}
	u := &unstructured.Unstructured{}
	u.SetAPIVersion(strings.TrimPrefix(r.Group+"/"+version, "/"))
	u.SetKind(r.Kind)
	if err := c.Get(ctx, client.ObjectKey{Namespace: r.Namespace, Name: r.Name}, u); err != nil {
		return false
	}
	return ssautil.AnyInMetadata(u, applyv1.PruneDisabledSelector())
}
