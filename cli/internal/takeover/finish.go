package takeover

import (
	"context"
	"errors"
	"fmt"

	"github.com/fluxcd/pkg/apis/meta"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/plumb-dev/plumb/cli/internal/kinds"
)

// FinishOptions tune Finish.
type FinishOptions struct {
	// FluxNamespace holds Flux's controllers.
	FluxNamespace string
	// DeleteCRDs also deletes Flux's CRDs, once no Flux object is left.
	DeleteCRDs bool
}

// fluxPartOf is the label Flux's install manifests put on every object of Flux itself.
var fluxPartOf = client.MatchingLabels{"app.kubernetes.io/part-of": "flux"}

// ErrNotReady ends a Finish that found a twin not Ready or a Flux object not taken over.
var ErrNotReady = errors.New("not finished: Flux is still installed")

// Finish removes Flux once every twin is Ready: Flux's controllers (Deployments, Services,
// ServiceAccounts and cluster RBAC labelled part-of=flux; the namespace stays, it may hold
// Secrets the twins read), then every Flux object with its finalizers removed first, so nothing
// Flux applied or installed is deleted, and with DeleteCRDs Flux's CRDs. It refuses, changing
// nothing, while a twin is not Ready or a Flux object has no twin.
func Finish(ctx context.Context, c client.Client, opts FinishOptions) (*Report, error) {
	served, err := discover(ctx, c)
	if err != nil {
		return nil, err
	}
	r := &Report{}
	var flux []unstructured.Unstructured
	for _, s := range served {
		if s.Plumb {
			list := &unstructured.UnstructuredList{}
			list.SetGroupVersionKind(s.PlumbGVK().GroupVersion().WithKind(s.Kind.Kind + "List"))
			if err := c.List(ctx, list, client.MatchingLabels{MigratedFromLabel: "flux"}); err != nil {
				return nil, fmt.Errorf("list Plumb %s objects: %w", s.Kind.Kind, err)
			}
			for i := range list.Items {
				if msg, ok := twinReady(&list.Items[i]); !ok {
					r.fail(subject(s.Kind.Kind, &list.Items[i]), errors.New(msg))
				}
			}
		}
		if s.FluxVersion == "" {
			continue
		}
		list, err := listFlux(ctx, c, s)
		if err != nil {
			return nil, err
		}
		for i := range list {
			if _, ok := list[i].GetAnnotations()[SuspendAnnotation]; !ok {
				r.fail(subject(s.Kind.Kind, &list[i]), errors.New("not taken over: finishing would remove it from Flux with nothing in its place; run plumb migrate cluster first, or delete it"))
			}
		}
		flux = append(flux, list...)
	}
	if r.Failed() {
		return r, ErrNotReady
	}
	if err := uninstallControllers(ctx, c, opts.FluxNamespace, r); err != nil {
		return r, err
	}
	charts, err := fluxHelmCharts(ctx, c)
	if err != nil {
		return r, err
	}
	for i, o := range append(flux, charts...) {
		if err := release(ctx, c, &o); err != nil {
			r.fail(subject(o.GetKind(), &o), err)
			continue
		}
		if i < len(flux) {
			r.ok(subject(o.GetKind(), &o), "Flux object deleted; what it applied stays")
		}
	}
	if len(charts) > 0 {
		r.ok("HelmCharts", "%d Flux HelmCharts deleted", len(charts))
	}
	if opts.DeleteCRDs && !r.Failed() {
		if err := deleteFluxCRDs(ctx, c, r); err != nil {
			return r, err
		}
	}
	return r, nil
}

// twinReady says whether a twin is Ready at its generation; a twin left suspended, as its Flux
// object was before the takeover, counts as ready.
func twinReady(o *unstructured.Unstructured) (string, bool) {
	if kindsSuspended(o) {
		return "", true
	}
	ready, msg := kinds.State(o)
	c := kinds.Condition(o, meta.ReadyCondition)
	switch {
	case ready != "True":
		return fmt.Sprintf("Plumb twin not Ready (%s): %s", ready, msg), false
	case c.ObservedGeneration != 0 && c.ObservedGeneration != o.GetGeneration():
		return "Plumb twin not reconciled at its generation yet", false
	}
	return "", true
}

// uninstallControllers deletes what Flux's install made for its controllers.
func uninstallControllers(ctx context.Context, c client.Client, ns string, r *Report) error {
	for _, l := range []client.ObjectList{&appsv1.DeploymentList{}, &corev1.ServiceList{}, &corev1.ServiceAccountList{}} {
		if err := deleteAll(ctx, c, l, r, "Flux", client.InNamespace(ns), fluxPartOf); err != nil {
			return err
		}
	}
	for _, l := range []client.ObjectList{&rbacv1.ClusterRoleBindingList{}, &rbacv1.ClusterRoleList{}} {
		if err := deleteAll(ctx, c, l, r, "Flux", fluxPartOf); err != nil {
			return err
		}
	}
	return nil
}

// deleteAll deletes what a list finds of a tool's own install; tool names it in the report.
func deleteAll(ctx context.Context, c client.Client, l client.ObjectList, r *Report, tool string, opts ...client.ListOption) error {
	if err := c.List(ctx, l, opts...); err != nil {
		return fmt.Errorf("list %s's controllers: %w", tool, err)
	}
	items, err := metaItems(l)
	if err != nil {
		return err
	}
	for _, o := range items {
		if err := c.Delete(ctx, o, client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete %s: %w", o.GetName(), err)
		}
		gvk, _ := c.GroupVersionKindFor(o)
		r.ok(subject(gvk.Kind, o), "deleted (%s's controllers)", tool)
	}
	return nil
}

// metaItems returns the items of a typed list.
func metaItems(l client.ObjectList) ([]client.Object, error) {
	var out []client.Object
	switch l := l.(type) {
	case *appsv1.DeploymentList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	case *appsv1.StatefulSetList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	case *corev1.ServiceList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	case *corev1.ServiceAccountList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	case *rbacv1.ClusterRoleBindingList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	case *rbacv1.ClusterRoleList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	default:
		return nil, fmt.Errorf("unexpected list %T", l)
	}
	return out, nil
}

// fluxHelmCharts lists the HelmCharts Flux's HelmReleases made (Plumb's make their own).
func fluxHelmCharts(ctx context.Context, c client.Client) ([]unstructured.Unstructured, error) {
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := c.Get(ctx, client.ObjectKey{Name: "helmcharts.source.toolkit.fluxcd.io"}, crd); apierrors.IsNotFound(err) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(schema.GroupVersionKind{Group: "source.toolkit.fluxcd.io", Version: storageVersion(crd), Kind: "HelmChartList"})
	if err := c.List(ctx, list); err != nil {
		return nil, fmt.Errorf("list Flux HelmCharts: %w", err)
	}
	return list.Items, nil
}

// release removes a Flux object's finalizers, so that no Flux controller acts on its deletion,
// then deletes it.
func release(ctx context.Context, c client.Client, o *unstructured.Unstructured) error {
	if len(o.GetFinalizers()) > 0 {
		patch := []byte(`{"metadata":{"finalizers":null}}`)
		if err := c.Patch(ctx, o, client.RawPatch(types.MergePatchType, patch), client.FieldOwner(FieldOwner)); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("remove the finalizers: %w", err)
		}
	}
	if err := c.Delete(ctx, o); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete: %w", err)
	}
	return nil
}

// deleteFluxCRDs deletes the CRDs of Flux's groups. No Flux object is left by then, so the API
// server deletes no object with them.
func deleteFluxCRDs(ctx context.Context, c client.Client, r *Report) error {
	list := &apiextensionsv1.CustomResourceDefinitionList{}
	if err := c.List(ctx, list); err != nil {
		return err
	}
	n := 0
	for i := range list.Items {
		crd := &list.Items[i]
		if _, ok := fluxGroups[crd.Spec.Group]; !ok {
			continue
		}
		if err := c.Delete(ctx, crd); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete CRD %s: %w", crd.Name, err)
		}
		n++
	}
	r.ok("CustomResourceDefinitions", "%d Flux CRDs deleted", n)
	return nil
}
