// Package takeover takes a live cluster over from Flux without touching its workloads: each Flux
// object is suspended and gets a Plumb twin made from its live spec, and the objects a Flux
// Kustomization applied are handed to apply-controller (field managers and owner labels), so
// that Plumb's first apply changes nothing. It also undoes a takeover (Rollback), shows what
// Plumb's first apply would change (DryRun), and removes Flux afterwards (Finish).
package takeover

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Options tune a takeover.
type Options struct {
	// DropUnsupported creates twins without the Flux fields Plumb's kind does not have, instead
	// of refusing those objects.
	DropUnsupported bool
}

// Result is what happened to one Flux object.
type Result struct {
	// Object is Kind/namespace/name.
	Object  string
	Message string
	Failed  bool
}

// Report is what a command did, object by object.
type Report struct {
	Results []Result
	// Notes are kinds left out, and why.
	Notes []string
}

func (r *Report) ok(object, format string, args ...any) {
	r.Results = append(r.Results, Result{Object: object, Message: fmt.Sprintf(format, args...)})
}

func (r *Report) fail(object string, err error) {
	r.Results = append(r.Results, Result{Object: object, Message: err.Error(), Failed: true})
}

// Failed says whether any object failed.
func (r *Report) Failed() bool {
	for _, x := range r.Results {
		if x.Failed {
			return true
		}
	}
	return false
}

// Print writes the report for a person, one line an object.
func (r *Report) Print(w io.Writer) {
	for _, n := range r.Notes {
		fmt.Fprintln(w, "note: "+n)
	}
	for _, x := range r.Results {
		mark := "✔"
		if x.Failed {
			mark = "✗"
		}
		fmt.Fprintf(w, "%s %s: %s\n", mark, x.Object, x.Message)
	}
}

// subject is Kind/namespace/name of an object.
func subject(kind string, o client.Object) string {
	return kind + "/" + o.GetNamespace() + "/" + o.GetName()
}

// Run takes every Flux object of the cluster over, kind by kind (sources first). An object that
// cannot be taken over is reported and left to Flux; the others go on. Running it again is safe:
// what is done already is left as it is.
func Run(ctx context.Context, c client.Client, opts Options) (*Report, error) {
	kinds, err := discover(ctx, c)
	if err != nil {
		return nil, err
	}
	r := &Report{}
	for _, s := range kinds {
		if s.FluxVersion == "" {
			continue
		}
		list, err := listFlux(ctx, c, s)
		if err != nil {
			return nil, err
		}
		if len(list) == 0 {
			continue
		}
		if !s.Plumb {
			r.Notes = append(r.Notes, fmt.Sprintf("%d Flux %s objects left to Flux: Plumb's %s CRD is not installed (plumb install --components %s)", len(list), s.Kind.Kind, s.Kind.Kind, s.Component))
			continue
		}
		for i := range list {
			obj := &list[i]
			msg, err := takeOver(ctx, c, s, obj, opts)
			if err != nil {
				r.fail(subject(s.Kind.Kind, obj), err)
				continue
			}
			r.ok(subject(s.Kind.Kind, obj), "%s", msg)
		}
	}
	return r, nil
}

// listFlux lists the Flux objects of a kind in every namespace.
func listFlux(ctx context.Context, c client.Reader, s served) ([]unstructured.Unstructured, error) {
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(s.FluxGVK().GroupVersion().WithKind(s.Kind.Kind + "List"))
	if err := c.List(ctx, list); err != nil {
		return nil, fmt.Errorf("list Flux %s objects: %w", s.Kind.Kind, err)
	}
	return list.Items, nil
}

// takeOver does one object: check its twin can be made, suspend it, make the twin (suspended,
// for a Kustomization, until its objects are handed over), hand the objects over, and let the
// twin run when the Flux object was running.
func takeOver(ctx context.Context, c client.Client, s served, flux *unstructured.Unstructured, opts Options) (string, error) {
	running, err := wasRunningBefore(flux)
	if err != nil {
		return "", err
	}
	kustomization := s.Kind.Kind == "Kustomization"
	tw := twin(s.Kind, flux, kustomization || !running)
	existing, dropped, err := createTwin(ctx, c, tw, opts, true)
	if err != nil {
		return "", err
	}
	made := existing == nil
	if err := suspend(ctx, c, flux, running); err != nil {
		return "", err
	}
	if existing == nil {
		if existing, dropped, err = createTwin(ctx, c, tw, opts, false); err != nil {
			return "", fmt.Errorf("suspended, but %w; run again, or plumb migrate cluster --rollback", err)
		}
	}
	msg := "suspended; Plumb twin created"
	if existing.GetLabels()[MigratedFromLabel] == "flux" && !made {
		msg = "suspended; Plumb twin already there"
	}
	if dropped != "" {
		msg += " without " + dropped
	}
	if !kustomization {
		return msg, nil
	}
	n, err := handOver(ctx, c, flux, existing)
	if err != nil {
		return "", fmt.Errorf("suspended, twin created, but %w; run again, or plumb migrate cluster --rollback", err)
	}
	if running && kindsSuspended(existing) {
		patch := []byte(`{"spec":{"suspend":null}}`)
		if err := c.Patch(ctx, existing, client.RawPatch(types.MergePatchType, patch), client.FieldOwner(FieldOwner)); err != nil {
			return "", fmt.Errorf("resume the twin: %w", err)
		}
	}
	return fmt.Sprintf("%s; %d applied objects handed over to apply-controller", msg, n), nil
}

func kindsSuspended(o *unstructured.Unstructured) bool {
	v, _, _ := unstructured.NestedBool(o.Object, "spec", "suspend")
	return v
}

// wasRunningBefore says whether the Flux object ran before the takeover: the annotation a
// first run left, else its spec.
func wasRunningBefore(flux *unstructured.Unstructured) (bool, error) {
	switch flux.GetAnnotations()[SuspendAnnotation] {
	case wasRunning:
		return true, nil
	case wasSuspended:
		return false, nil
	case "":
		return !kindsSuspended(flux), nil
	default:
		return false, fmt.Errorf("annotation %s=%q is neither %s nor %s; fix it by hand", SuspendAnnotation, flux.GetAnnotations()[SuspendAnnotation], wasRunning, wasSuspended)
	}
}

// suspend suspends a Flux object and records whether it was running, in one patch.
func suspend(ctx context.Context, c client.Client, flux *unstructured.Unstructured, running bool) error {
	if kindsSuspended(flux) && flux.GetAnnotations()[SuspendAnnotation] != "" {
		return nil
	}
	was := wasSuspended
	if running {
		was = wasRunning
	}
	patch, _ := json.Marshal(map[string]any{
		"metadata": map[string]any{"annotations": map[string]string{SuspendAnnotation: was}},
		"spec":     map[string]any{"suspend": true},
	})
	if err := c.Patch(ctx, flux, client.RawPatch(types.MergePatchType, patch), client.FieldOwner(FieldOwner)); err != nil {
		return fmt.Errorf("suspend: %w", err)
	}
	return nil
}

// unknownField is how the API server names a field the schema does not have.
var unknownField = regexp.MustCompile(`unknown field "([^"]+)"`)

// createTwin creates the twin (only checks it, with dryRun). The API server's strict field
// validation finds the fields Plumb's kind does not have; with DropUnsupported they are left out
// and named in dropped. A twin that exists already is returned when a takeover made it, and is
// an error otherwise: it is not ours to change.
func createTwin(ctx context.Context, c client.Client, tw *unstructured.Unstructured, opts Options, dryRun bool) (existing *unstructured.Unstructured, dropped string, err error) {
	create := func(validation string) error {
		o := []client.CreateOption{client.FieldOwner(FieldOwner), client.FieldValidation(validation)}
		if dryRun {
			o = append(o, client.DryRunAll)
		}
		return c.Create(ctx, tw.DeepCopy(), o...)
	}
	err = create("Strict")
	if m := unknownField.FindAllStringSubmatch(errString(err), -1); len(m) > 0 && apierrors.IsBadRequest(err) {
		fields := make([]string, len(m))
		for i, x := range m {
			fields[i] = x[1]
		}
		dropped = strings.Join(fields, ", ")
		if !opts.DropUnsupported {
			from := tw.GetLabels()[MigratedFromLabel]
			return nil, "", fmt.Errorf("the Plumb %s would lack field %s (see docs/compat/flux.md): remove it from the %s object, or run again with --drop-unsupported to leave it out; left to %s", tw.GetKind(), dropped, toolName[from], toolName[from])
		}
		err = create("Ignore")
	}
	if apierrors.IsAlreadyExists(err) {
		cur := &unstructured.Unstructured{}
		cur.SetGroupVersionKind(tw.GroupVersionKind())
		if err := c.Get(ctx, client.ObjectKeyFromObject(tw), cur); err != nil {
			return nil, "", err
		}
		if from := tw.GetLabels()[MigratedFromLabel]; cur.GetLabels()[MigratedFromLabel] != from {
			return nil, "", fmt.Errorf("a Plumb %s of that name exists and was not made by plumb migrate (no label %s=%s): rename or delete one of them; left to %s", tw.GetKind(), MigratedFromLabel, from, toolName[from])
		}
		return cur, "", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("create the Plumb %s: %w", tw.GetKind(), err)
	}
	if dryRun {
		return nil, dropped, nil
	}
	created := &unstructured.Unstructured{}
	created.SetGroupVersionKind(tw.GroupVersionKind())
	if err := c.Get(ctx, client.ObjectKeyFromObject(tw), created); err != nil {
		return nil, "", err
	}
	return created, dropped, nil
}

// toolName is how messages name the tool a twin's object comes from.
var toolName = map[string]string{"flux": "Flux", "argocd": "Argo CD"}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// handOver hands every object of a Flux Kustomization's inventory to apply-controller and seeds
// the twin's inventory with Flux's, so that Plumb prunes what Flux would have. It returns how
// many objects it changed.
func handOver(ctx context.Context, c client.Client, flux, tw *unstructured.Unstructured) (int, error) {
	entries, _, _ := unstructured.NestedSlice(flux.Object, "status", "inventory", "entries")
	n := 0
	var errs []error
	var inventory []any
	for _, raw := range entries {
		e, _ := raw.(map[string]any)
		id, _ := e["id"].(string)
		v, _ := e["v"].(string)
		ref, err := parseInventoryID(id, v)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		inventory = append(inventory, map[string]any{"id": id, "v": v})
		changed, err := adopt(ctx, c, ref, Flux, Plumb, flux.GetName(), flux.GetNamespace())
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", ref, err))
			continue
		}
		if changed {
			n++
		}
	}
	if err := errors.Join(errs...); err != nil {
		return n, err
	}
	if _, found, _ := unstructured.NestedMap(tw.Object, "status", "inventory"); found || len(inventory) == 0 {
		return n, nil
	}
	patch, _ := json.Marshal(map[string]any{"status": map[string]any{"inventory": map[string]any{"entries": inventory}}})
	if err := c.Status().Patch(ctx, tw, client.RawPatch(types.MergePatchType, patch), client.FieldOwner(FieldOwner)); err != nil {
		return n, fmt.Errorf("seed the twin's inventory: %w", err)
	}
	return n, nil
}
