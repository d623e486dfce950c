package takeover

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// argoSources are the kinds of the sources a takeover from Argo CD makes.
var argoSources = []string{"GitRepository", "HelmRepository", "OCIRepository"}

// RollbackArgoCD undoes a takeover from Argo CD that has not been finished: each twin is
// suspended (its controller prunes and uninstalls nothing), its objects are given back to
// Argo CD as the hand-over recorded them, it is deleted without its finalizer, and its
// Application gets its auto-sync back; then the sources go, and the ApplicationSets' templates
// get their auto-sync back.
func RollbackArgoCD(ctx context.Context, c client.Client) (*Report, error) {
	if err := needArgoCRD(ctx, c, "applications"); err != nil {
		return nil, err
	}
	r := &Report{}
	twins, err := argoTwins(ctx, c)
	if err != nil {
		return nil, err
	}
	for _, key := range sortedKeys(twins) {
		tw := twins[key]
		if err := argoRemoveTwin(ctx, c, tw); err != nil {
			r.fail(subject(tw.GetKind(), tw), err)
			continue
		}
		msg, err := argoRestoreSync(ctx, c, key, tw.GetAnnotations()[ArgoAutomatedAnnotation])
		if err != nil {
			r.fail(subject(tw.GetKind(), tw), fmt.Errorf("twin removed, but %w", err))
			continue
		}
		r.ok(subject(tw.GetKind(), tw), "Plumb twin removed, nothing pruned; objects given back to Argo CD; %s", msg)
	}
	sources, err := argoSourceTwins(ctx, c)
	if err != nil {
		return nil, err
	}
	for i := range sources {
		if err := argoRemoveTwin(ctx, c, &sources[i]); err != nil {
			r.fail(subject(sources[i].GetKind(), &sources[i]), err)
			continue
		}
		r.ok(subject(sources[i].GetKind(), &sources[i]), "Plumb source removed")
	}
	if needArgoCRD(ctx, c, "applicationsets") == nil {
		sets, err := listArgo(ctx, c, ArgoApplicationSet)
		if err != nil {
			return nil, err
		}
		for i := range sets {
			if err := argoRestoreAppSet(ctx, c, &sets[i]); err != nil {
				r.fail(subject("ApplicationSet", &sets[i]), err)
			} else if _, ok := sets[i].GetAnnotations()[ArgoAutomatedAnnotation]; ok {
				r.ok(subject("ApplicationSet", &sets[i]), "auto-sync back in its template")
			}
		}
	}
	return r, nil
}

// argoSourceTwins are the sources a takeover from Argo CD made.
func argoSourceTwins(ctx context.Context, c client.Client) ([]unstructured.Unstructured, error) {
	var out []unstructured.Unstructured
	for _, kind := range argoSources {
		list := &unstructured.UnstructuredList{}
		list.SetAPIVersion("source.plumb.dev/" + PlumbVersion)
		list.SetKind(kind + "List")
		err := c.List(ctx, list, client.MatchingLabels{MigratedFromLabel: migratedFromArgo})
		if isNoMatch(err) || apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list Plumb %ss: %w", kind, err)
		}
		out = append(out, list.Items...)
	}
	return out, nil
}

func sortedKeys(m map[string]*unstructured.Unstructured) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// argoRemoveTwin suspends a twin, gives its recorded objects back to Argo CD, and deletes it
// without its finalizer.
func argoRemoveTwin(ctx context.Context, c client.Client, tw *unstructured.Unstructured) error {
	if !kindsSuspended(tw) {
		patch := []byte(`{"spec":{"suspend":true}}`)
		if err := c.Patch(ctx, tw, client.RawPatch(types.MergePatchType, patch), client.FieldOwner(FieldOwner)); err != nil {
			return fmt.Errorf("suspend: %w", err)
		}
	}
	recs, err := argoRecords(tw)
	if err != nil {
		return err
	}
	t := argoTargetOf(tw)
	var errs []error
	for _, rec := range recs {
		ref, err := parseInventoryID(rec.ID, rec.V)
		if err == nil {
			err = argoGiveBack(ctx, c, ref, t, rec)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("give %s back to Argo CD: %w", ref, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if len(tw.GetFinalizers()) > 0 {
		patch := []byte(`{"metadata":{"finalizers":null}}`)
		if err := c.Patch(ctx, tw, client.RawPatch(types.MergePatchType, patch), client.FieldOwner(FieldOwner)); err != nil {
			return fmt.Errorf("remove the finalizer: %w", err)
		}
	}
	if err := c.Delete(ctx, tw); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete: %w", err)
	}
	return nil
}

// argoRestoreSync puts an Application's auto-sync back, as saved.
func argoRestoreSync(ctx context.Context, c client.Client, key, saved string) (string, error) {
	if saved == "" {
		return "its Application was synced by hand, and still is", nil
	}
	var automated any
	if err := json.Unmarshal([]byte(saved), &automated); err != nil {
		return "", fmt.Errorf("annotation %s is not JSON; turn auto-sync on by hand", ArgoAutomatedAnnotation)
	}
	app := &unstructured.Unstructured{}
	app.SetGroupVersionKind(ArgoApplication)
	ns, name, _ := strings.Cut(key, "/")
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, app); apierrors.IsNotFound(err) {
		return "its Application is gone", nil
	} else if err != nil {
		return "", err
	}
	patch, _ := json.Marshal(map[string]any{"spec": map[string]any{"syncPolicy": map[string]any{"automated": automated}}})
	if err := c.Patch(ctx, app, client.RawPatch(types.MergePatchType, patch), client.FieldOwner(FieldOwner)); err != nil {
		return "", fmt.Errorf("turn auto-sync back on: %w", err)
	}
	return "auto-sync back on", nil
}

// argoRestoreAppSet puts the auto-sync of an ApplicationSet's template back, as saved.
func argoRestoreAppSet(ctx context.Context, c client.Client, set *unstructured.Unstructured) error {
	saved, ok := set.GetAnnotations()[ArgoAutomatedAnnotation]
	if !ok {
		return nil
	}
	var automated any
	if err := json.Unmarshal([]byte(saved), &automated); err != nil {
		return fmt.Errorf("annotation %s is not JSON; put auto-sync back in the template by hand", ArgoAutomatedAnnotation)
	}
	patch, _ := json.Marshal(map[string]any{
		"metadata": map[string]any{"annotations": map[string]any{ArgoAutomatedAnnotation: nil}},
		"spec":     map[string]any{"template": map[string]any{"spec": map[string]any{"syncPolicy": map[string]any{"automated": automated}}}},
	})
	if err := c.Patch(ctx, set, client.RawPatch(types.MergePatchType, patch), client.FieldOwner(FieldOwner)); err != nil {
		return fmt.Errorf("put auto-sync back in its template: %w", err)
	}
	return nil
}

// ArgoFinishOptions tune FinishArgoCD.
type ArgoFinishOptions struct {
	// ArgoNamespace holds Argo CD's controllers.
	ArgoNamespace string
	// DeleteCRDs also deletes Argo CD's CRDs.
	DeleteCRDs bool
}

// argoPartOf is the label Argo CD's install manifests put on every object of Argo CD itself.
var argoPartOf = client.MatchingLabels{"app.kubernetes.io/part-of": "argocd"}

// FinishArgoCD removes Argo CD once every twin is Ready: its controllers (Deployments,
// StatefulSets, Services, ServiceAccounts labelled part-of=argocd in its namespace; the
// namespace stays), then every Application with its finalizers removed first, so nothing it
// deployed is deleted, then the ApplicationSets (their Applications are gone by then, so
// nothing cascades), and with DeleteCRDs Argo CD's CRDs. It refuses, changing nothing, while a
// twin (a source, Kustomization or HelmRelease) is not Ready or an Application has no twin.
func FinishArgoCD(ctx context.Context, c client.Client, opts ArgoFinishOptions) (*Report, error) {
	if err := needArgoCRD(ctx, c, "applications"); err != nil {
		return nil, err
	}
	r := &Report{}
	twins, err := argoTwins(ctx, c)
	if err != nil {
		return nil, err
	}
	sources, err := argoSourceTwins(ctx, c)
	if err != nil {
		return nil, err
	}
	for i := range sources {
		if msg, ok := twinReady(&sources[i]); !ok {
			r.fail(subject(sources[i].GetKind(), &sources[i]), errors.New(msg))
		}
	}
	for _, key := range sortedKeys(twins) {
		if msg, ok := twinReady(twins[key]); !ok {
			r.fail(subject(twins[key].GetKind(), twins[key]), errors.New(msg))
		}
	}
	apps, err := listArgo(ctx, c, ArgoApplication)
	if err != nil {
		return nil, err
	}
	for i := range apps {
		if twins[argoKey(&apps[i])] == nil {
			r.fail(subject("Application", &apps[i]), errors.New("not taken over: finishing would remove it from Argo CD with nothing in its place; run plumb migrate cluster --from argocd first, or delete it"))
		}
	}
	if r.Failed() {
		return r, ErrArgoNotReady
	}
	for _, l := range []client.ObjectList{&appsv1.DeploymentList{}, &appsv1.StatefulSetList{}, &corev1.ServiceList{}, &corev1.ServiceAccountList{}} {
		if err := deleteAll(ctx, c, l, r, "Argo CD", client.InNamespace(opts.ArgoNamespace), argoPartOf); err != nil {
			return r, err
		}
	}
	for i := range apps {
		if err := release(ctx, c, &apps[i]); err != nil {
			r.fail(subject("Application", &apps[i]), err)
			continue
		}
		r.ok(subject("Application", &apps[i]), "Argo CD Application deleted; what it deployed stays")
	}
	if needArgoCRD(ctx, c, "applicationsets") == nil && !r.Failed() {
		sets, err := listArgo(ctx, c, ArgoApplicationSet)
		if err != nil {
			return r, err
		}
		for i := range sets {
			if err := release(ctx, c, &sets[i]); err != nil {
				r.fail(subject("ApplicationSet", &sets[i]), err)
				continue
			}
			r.ok(subject("ApplicationSet", &sets[i]), "Argo CD ApplicationSet deleted")
		}
	}
	if opts.DeleteCRDs && !r.Failed() {
		list := &apiextensionsv1.CustomResourceDefinitionList{}
		if err := c.List(ctx, list); err != nil {
			return r, err
		}
		for i := range list.Items {
			if crd := &list.Items[i]; crd.Spec.Group == "argoproj.io" {
				if err := c.Delete(ctx, crd); err != nil && !apierrors.IsNotFound(err) {
					return r, fmt.Errorf("delete CRD %s: %w", crd.Name, err)
				}
				r.ok("CustomResourceDefinition/"+crd.Name, "deleted")
			}
		}
	}
	return r, nil
}

// ErrArgoNotReady ends a FinishArgoCD that found a twin not Ready or an Application not taken
// over.
var ErrArgoNotReady = errors.New("not finished: Argo CD is still installed")
