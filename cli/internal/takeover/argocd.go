package takeover

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/plumb-dev/plumb/cli/internal/migrate"
)

// Annotations of a takeover from Argo CD.
const (
	// ArgoApplicationAnnotation on a twin names its Application: <namespace>/<name>.
	ArgoApplicationAnnotation = "plumb.dev/argocd-application"
	// ArgoAutomatedAnnotation keeps the spec.syncPolicy.automated the takeover removed (JSON;
	// empty when there was none): on a twin for its Application, on an ApplicationSet for its
	// template. Rollback puts it back.
	ArgoAutomatedAnnotation = "plumb.dev/argocd-automated"
	// ArgoObjectsAnnotation on a twin records what the hand-over changed on each object.
	ArgoObjectsAnnotation = "plumb.dev/argocd-objects"
	migratedFromArgo      = "argocd"
)

// Argo CD's kinds.
var (
	ArgoApplication    = schema.GroupVersionKind{Group: "argoproj.io", Version: "v1alpha1", Kind: "Application"}
	ArgoApplicationSet = schema.GroupVersionKind{Group: "argoproj.io", Version: "v1alpha1", Kind: "ApplicationSet"}
)

// ArgoOptions tune a takeover from Argo CD.
type ArgoOptions struct {
	// Namespace of the twins.
	Namespace string
	// DropUnsupported takes over an Application whose conversion leaves something out.
	DropUnsupported bool
}

// RunArgoCD takes every Argo CD Application over: auto-sync off (the ApplicationSets'
// templates too, so that they do not put it back), its twins created (a source and a
// Kustomization or HelmRelease, suspended until its objects are handed over) and every object
// of its status.resources handed over. Running it again is safe.
func RunArgoCD(ctx context.Context, c client.Client, opts ArgoOptions) (*Report, error) {
	if opts.Namespace == "" {
		opts.Namespace = "plumb-system"
	}
	if err := needArgoCRD(ctx, c, "applications"); err != nil {
		return nil, err
	}
	kinds, err := discover(ctx, c)
	if err != nil {
		return nil, err
	}
	plumb := map[string]bool{}
	for _, s := range kinds {
		plumb[s.Kind.Kind] = s.Plumb
	}
	r := &Report{}
	if err := argoAppSets(ctx, c, r); err != nil {
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
	conv := migrate.NewArgoConverter(opts.Namespace)
	for i := range apps {
		app := &apps[i]
		msg, err := argoTakeOver(ctx, c, conv, plumb, twins[argoKey(app)], app, opts)
		if err != nil {
			r.fail(subject("Application", app), err)
			continue
		}
		r.ok(subject("Application", app), "%s", msg)
	}
	return r, nil
}

func argoKey(app client.Object) string { return app.GetNamespace() + "/" + app.GetName() }

// needArgoCRD says when Argo CD's CRD of a kind is not installed.
func needArgoCRD(ctx context.Context, c client.Reader, plural string) error {
	crd := &apiextensionsv1.CustomResourceDefinition{}
	err := c.Get(ctx, client.ObjectKey{Name: plural + ".argoproj.io"}, crd)
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("the CRD %s.argoproj.io of Argo CD is not installed: nothing to take over", plural)
	}
	return err
}

// listArgo lists Argo CD objects of a kind in every namespace, sorted by namespace and name,
// so that the twins get the same names at every run.
func listArgo(ctx context.Context, c client.Reader, gvk schema.GroupVersionKind) ([]unstructured.Unstructured, error) {
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
	if err := c.List(ctx, list); err != nil {
		return nil, fmt.Errorf("list Argo CD %ss: %w", gvk.Kind, err)
	}
	sort.Slice(list.Items, func(i, j int) bool { return argoKey(&list.Items[i]) < argoKey(&list.Items[j]) })
	return list.Items, nil
}

// argoDeployers are the kinds of an Application's twin.
var argoDeployers = []schema.GroupVersionKind{
	{Group: "apply.plumb.dev", Version: PlumbVersion, Kind: "Kustomization"},
	{Group: "helm.plumb.dev", Version: PlumbVersion, Kind: "HelmRelease"},
}

// argoTwins are the Kustomizations and HelmReleases a takeover from Argo CD made, by their
// Application.
func argoTwins(ctx context.Context, c client.Client) (map[string]*unstructured.Unstructured, error) {
	out := map[string]*unstructured.Unstructured{}
	for _, gvk := range argoDeployers {
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
		err := c.List(ctx, list, client.MatchingLabels{MigratedFromLabel: migratedFromArgo})
		if apierrors.IsNotFound(err) || isNoMatch(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list Plumb %ss: %w", gvk.Kind, err)
		}
		for i := range list.Items {
			if a := list.Items[i].GetAnnotations()[ArgoApplicationAnnotation]; a != "" {
				out[a] = &list.Items[i]
			}
		}
	}
	return out, nil
}

func isNoMatch(err error) bool {
	return err != nil && strings.Contains(err.Error(), "no matches for kind")
}

// argoAppSets removes auto-sync from the template of every ApplicationSet, keeping it in an
// annotation: the ApplicationSet controller would put it back on the Applications otherwise.
// The ApplicationSets stay (--finish deletes them).
func argoAppSets(ctx context.Context, c client.Client, r *Report) error {
	if needArgoCRD(ctx, c, "applicationsets") != nil {
		return nil
	}
	sets, err := listArgo(ctx, c, ArgoApplicationSet)
	if err != nil {
		return err
	}
	for i := range sets {
		set := &sets[i]
		automated, found, _ := unstructured.NestedFieldNoCopy(set.Object, "spec", "template", "spec", "syncPolicy", "automated")
		if _, done := set.GetAnnotations()[ArgoAutomatedAnnotation]; done || !found {
			r.ok(subject("ApplicationSet", set), "left as it is (no auto-sync in its template); its Applications are taken over one by one")
			continue
		}
		saved, _ := json.Marshal(automated)
		patch, _ := json.Marshal(map[string]any{
			"metadata": map[string]any{"annotations": map[string]string{ArgoAutomatedAnnotation: string(saved)}},
			"spec":     map[string]any{"template": map[string]any{"spec": map[string]any{"syncPolicy": map[string]any{"automated": nil}}}},
		})
		if err := c.Patch(ctx, set, client.RawPatch(types.MergePatchType, patch), client.FieldOwner(FieldOwner)); err != nil {
			r.fail(subject("ApplicationSet", set), fmt.Errorf("remove auto-sync from its template: %w", err))
			continue
		}
		msg := "auto-sync removed from its template, so that it does not turn it back on; its Applications are taken over one by one"
		if tp, _, _ := unstructured.NestedString(set.Object, "spec", "templatePatch"); strings.Contains(tp, "automated") {
			msg += "; its spec.templatePatch sets automated too: remove it there by hand"
		}
		r.ok(subject("ApplicationSet", set), "%s", msg)
	}
	return nil
}

// argoTakeOver takes one Application over. existing is its twin from an earlier run.
func argoTakeOver(ctx context.Context, c client.Client, conv *migrate.ArgoConverter, plumb map[string]bool, existing *unstructured.Unstructured, app *unstructured.Unstructured, opts ArgoOptions) (string, error) {
	orig := app.DeepCopy()
	automated, hadAutomated, _ := unstructured.NestedFieldCopy(app.Object, "spec", "syncPolicy", "automated")
	if existing != nil && !hadAutomated {
		if saved := existing.GetAnnotations()[ArgoAutomatedAnnotation]; saved != "" {
			if err := json.Unmarshal([]byte(saved), &automated); err != nil {
				return "", fmt.Errorf("annotation %s of its twin is not JSON; fix it by hand", ArgoAutomatedAnnotation)
			}
			_ = unstructured.SetNestedField(orig.Object, automated, "spec", "syncPolicy", "automated")
			hadAutomated = true
		}
	}
	res, err := conv.Application(orig.Object)
	if err != nil {
		return "", err
	}
	var problems, dropped []string
	for _, f := range res.Findings {
		if f.Field == migrate.AutomatedFinding {
			continue
		}
		problems = append(problems, f.Field+": "+f.Message)
		dropped = append(dropped, f.Field)
	}
	if len(problems) > 0 && !opts.DropUnsupported {
		return "", fmt.Errorf("cannot be carried over as it is, left to Argo CD: %s; change the Application, or run again with --drop-unsupported to take it over without", strings.Join(problems, "; "))
	}
	if len(res.Objects) != 1 {
		return "", fmt.Errorf("it makes %d Kustomizations or HelmReleases: a takeover moves Applications with one source; migrate it with plumb migrate repo, and move it by hand; left to Argo CD", len(res.Objects))
	}
	tw := res.Objects[0]
	for _, o := range append(res.Sources, tw) {
		if !plumb[o.GetKind()] {
			return "", fmt.Errorf("the %s CRD of Plumb is not installed (plumb install); left to Argo CD", o.GetKind())
		}
		labels := o.GetLabels()
		if labels == nil {
			labels = map[string]string{}
		}
		labels[MigratedFromLabel] = migratedFromArgo
		o.SetLabels(labels)
	}
	saved := ""
	if hadAutomated {
		b, _ := json.Marshal(automated)
		saved = string(b)
	}
	tw.SetAnnotations(map[string]string{ArgoApplicationAnnotation: argoKey(app), ArgoAutomatedAnnotation: saved})
	_ = unstructured.SetNestedField(tw.Object, true, "spec", "suspend")
	for _, o := range append(res.Sources, tw) {
		if _, _, err := createTwin(ctx, c, o, Options{}, true); err != nil {
			return "", err
		}
	}
	if hadAutomated {
		if err := c.Patch(ctx, app, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"syncPolicy":{"automated":null}}}`)), client.FieldOwner(FieldOwner)); err != nil {
			return "", fmt.Errorf("turn auto-sync off: %w", err)
		}
	}
	for _, s := range res.Sources {
		if _, _, err := createTwin(ctx, c, s, Options{}, false); err != nil {
			return "", fmt.Errorf("auto-sync off, but %w; run again, or plumb migrate cluster --from argocd --rollback", err)
		}
	}
	made, _, err := createTwin(ctx, c, tw, Options{}, false)
	if err != nil {
		return "", fmt.Errorf("auto-sync off, but %w; run again, or plumb migrate cluster --from argocd --rollback", err)
	}
	if made.GetAnnotations()[ArgoApplicationAnnotation] != argoKey(app) {
		return "", fmt.Errorf("the Plumb %s %s/%s was made for Application %s: rename one of them; left to Argo CD", made.GetKind(), made.GetNamespace(), made.GetName(), made.GetAnnotations()[ArgoApplicationAnnotation])
	}
	t := argoTargetOf(made)
	n, err := argoHandOver(ctx, c, app, made, t)
	if err != nil {
		return "", fmt.Errorf("auto-sync off, twin created, but %w; run again, or plumb migrate cluster --from argocd --rollback", err)
	}
	msg := "auto-sync off; "
	if !hadAutomated {
		msg = "synced by hand in Argo CD: its twin stays suspended (plumb resume when Plumb may apply); "
	}
	msg += fmt.Sprintf("Plumb %s %s/%s", made.GetKind(), made.GetNamespace(), made.GetName())
	if t.helm {
		msg += fmt.Sprintf("; %d objects given Helm's ownership metadata of release %s/%s", n, t.namespace, t.name)
	} else {
		msg += fmt.Sprintf("; %d objects handed over to apply-controller", n)
	}
	if len(dropped) > 0 {
		msg += " (without " + strings.Join(dropped, ", ") + ")"
	}
	if hadAutomated && kindsSuspended(made) {
		patch := []byte(`{"spec":{"suspend":null}}`)
		if err := c.Patch(ctx, made, client.RawPatch(types.MergePatchType, patch), client.FieldOwner(FieldOwner)); err != nil {
			return "", fmt.Errorf("resume the twin: %w", err)
		}
	}
	return msg, nil
}

// argoTargetOf says to whom a twin's objects go: its Kustomization, or its Helm release.
func argoTargetOf(tw *unstructured.Unstructured) argoTarget {
	if tw.GetKind() != "HelmRelease" {
		return argoTarget{name: tw.GetName(), namespace: tw.GetNamespace()}
	}
	name, _, _ := unstructured.NestedString(tw.Object, "spec", "releaseName")
	ns, _, _ := unstructured.NestedString(tw.Object, "spec", "targetNamespace")
	if ns == "" {
		ns = tw.GetNamespace()
	}
	if name == "" {
		name = tw.GetName()
	}
	return argoTarget{helm: true, name: name, namespace: ns}
}

// argoRecords reads what a twin's hand-over changed.
func argoRecords(tw *unstructured.Unstructured) ([]handed, error) {
	var recs []handed
	if raw := tw.GetAnnotations()[ArgoObjectsAnnotation]; raw != "" {
		if err := json.Unmarshal([]byte(raw), &recs); err != nil {
			return nil, fmt.Errorf("annotation %s is not JSON; fix it by hand", ArgoObjectsAnnotation)
		}
	}
	return recs, nil
}

// argoHandOver records, then hands over, every object of the Application's status.resources,
// and seeds a Kustomization twin's inventory with them, so that Plumb prunes what Argo CD would
// have. It returns how many objects it changed.
func argoHandOver(ctx context.Context, c client.Client, app, tw *unstructured.Unstructured, t argoTarget) (int, error) {
	recs, err := argoRecords(tw)
	if err != nil {
		return 0, err
	}
	known := map[string]bool{}
	for _, x := range recs {
		known[x.ID] = true
	}
	resources, _, _ := unstructured.NestedSlice(app.Object, "status", "resources")
	var refs []ObjectRef
	var inventory []any
	var errs []error
	for _, raw := range resources {
		e, _ := raw.(map[string]any)
		if hook, _ := e["hook"].(bool); hook {
			continue
		}
		str := func(k string) string { s, _ := e[k].(string); return s }
		ref := ObjectRef{GVK: schema.GroupVersionKind{Group: str("group"), Version: str("version"), Kind: str("kind")}, Namespace: str("namespace"), Name: str("name")}
		id := strings.Join([]string{ref.Namespace, ref.Name, ref.GVK.Group, ref.GVK.Kind}, "_")
		obj, err := argoObject(ctx, c, ref)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", ref, err))
			continue
		}
		if obj == nil {
			continue
		}
		if tr := obj.GetAnnotations()[ArgoTrackingAnnotation]; tr != "" {
			owner, _, _ := strings.Cut(tr, ":")
			if owner != app.GetName() && owner != app.GetNamespace()+"_"+app.GetName() {
				errs = append(errs, fmt.Errorf("%s: tracked by Argo CD Application %s, not this one; left as it is", ref, owner))
				continue
			}
		}
		refs = append(refs, ref)
		inventory = append(inventory, map[string]any{"id": id, "v": ref.GVK.Version})
		if known[id] {
			continue
		}
		rec := handed{ID: id, V: ref.GVK.Version, Tracking: obj.GetAnnotations()[ArgoTrackingAnnotation]}
		for _, m := range obj.GetManagedFields() {
			if m.Manager == ArgoManager && m.Subresource == "" && (rec.Op == "" || m.Operation == "Update") {
				rec.Op = string(m.Operation)
			}
		}
		rec.ManagedBy = t.helm && obj.GetLabels()[helmManagedBy] != "Helm"
		recs = append(recs, rec)
		known[id] = true
	}
	b, _ := json.Marshal(recs)
	if tw.GetAnnotations()[ArgoObjectsAnnotation] != string(b) {
		patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{ArgoObjectsAnnotation: string(b)}}})
		if err := c.Patch(ctx, tw, client.RawPatch(types.MergePatchType, patch), client.FieldOwner(FieldOwner)); err != nil {
			return 0, fmt.Errorf("record the hand-over on the twin: %w", err)
		}
	}
	n := 0
	for _, ref := range refs {
		changed, err := argoAdopt(ctx, c, ref, t)
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
	if _, found, _ := unstructured.NestedMap(tw.Object, "status", "inventory"); t.helm || found || len(inventory) == 0 {
		return n, nil
	}
	patch, _ := json.Marshal(map[string]any{"status": map[string]any{"inventory": map[string]any{"entries": inventory}}})
	if err := c.Status().Patch(ctx, tw, client.RawPatch(types.MergePatchType, patch), client.FieldOwner(FieldOwner)); err != nil {
		return n, fmt.Errorf("seed the twin's inventory: %w", err)
	}
	return n, nil
}
