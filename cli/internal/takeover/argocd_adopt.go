package takeover

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// What Argo CD leaves on the objects it applies.
const (
	// ArgoManager is the field manager of Argo CD's application controller, for client-side
	// (Update) and server-side (Apply) syncs.
	ArgoManager = "argocd-controller"
	// ArgoTrackingAnnotation is annotation tracking: <app>:<group>/<kind>:<namespace>/<name>.
	ArgoTrackingAnnotation = "argocd.argoproj.io/tracking-id"
	// ArgoInstanceLabel is label tracking. Charts and selectors use it too: it stays.
	ArgoInstanceLabel = "app.kubernetes.io/instance"
	lastApplied       = "kubectl.kubernetes.io/last-applied-configuration"
)

// Helm's ownership metadata: Helm installs over an existing object only when it has them.
const (
	helmManagedBy        = "app.kubernetes.io/managed-by"
	helmReleaseName      = "meta.helm.sh/release-name"
	helmReleaseNamespace = "meta.helm.sh/release-namespace"
)

// argoTarget is who an Application's objects are handed to: a Plumb Kustomization (its owner
// labels, apply-controller's field manager) or a Helm release (Helm's ownership metadata).
type argoTarget struct {
	helm            bool
	name, namespace string
}

// handed is what a hand-over changed on one object, kept on the twin so that rollback can
// give the object back as it was.
type handed struct {
	// ID and V name the object as an inventory entry does.
	ID string `json:"id"`
	V  string `json:"v"`
	// Op is the operation of Argo CD's field manager entry, "" when it had none.
	Op string `json:"op,omitempty"`
	// Tracking is the tracking annotation removed.
	Tracking string `json:"tracking,omitempty"`
	// ManagedBy says that Helm's managed-by label was added (or changed) by the hand-over.
	ManagedBy bool `json:"managedBy,omitempty"`
}

// fieldPath is a path in a fieldsV1 set.
type fieldPath []string

func labelField(k string) fieldPath      { return fieldPath{"f:metadata", "f:labels", "f:" + k} }
func annotationField(k string) fieldPath { return fieldPath{"f:metadata", "f:annotations", "f:" + k} }

// editFields removes and adds paths in a fieldsV1 set; a map left empty by a removal goes too.
// It says whether the set changed.
func editFields(f *metav1.FieldsV1, remove, add []fieldPath) (*metav1.FieldsV1, bool, error) {
	set := map[string]any{}
	if f != nil {
		if err := json.Unmarshal(f.GetRawBytes(), &set); err != nil {
			return nil, false, err
		}
	}
	changed := false
	for _, p := range remove {
		changed = removePath(set, p) || changed
	}
	for _, p := range add {
		m := set
		for i, k := range p {
			next, ok := m[k].(map[string]any)
			if !ok {
				next = map[string]any{}
				m[k] = next
				if i == len(p)-1 {
					changed = true
				}
			}
			m = next
		}
	}
	if !changed {
		return f, false, nil
	}
	raw, err := json.Marshal(set)
	if err != nil {
		return nil, false, err
	}
	return metav1.NewFieldsV1(string(raw)), true, nil
}

func removePath(m map[string]any, p fieldPath) bool {
	if len(p) == 1 {
		_, ok := m[p[0]]
		delete(m, p[0])
		return ok
	}
	next, ok := m[p[0]].(map[string]any)
	if !ok || !removePath(next, p[1:]) {
		return false
	}
	if len(next) == 0 {
		delete(m, p[0])
	}
	return true
}

// argoMove hands an object Argo CD applied to t: Argo CD's bookkeeping (tracking annotation,
// kubectl's last-applied configuration) goes; for a Kustomization, Argo CD's field manager
// becomes apply-controller's (operation Apply) and Plumb's owner labels are added, for a Helm
// release Helm's ownership metadata is added. Tracking label ownership is given up, not the
// label. It returns false when nothing is left to change.
func argoMove(obj metav1.Object, t argoTarget) (moved, bool, error) {
	labels, annotations := maps.Clone(obj.GetLabels()), maps.Clone(obj.GetAnnotations())
	if labels == nil {
		labels = map[string]string{}
	}
	if annotations == nil {
		annotations = map[string]string{}
	}
	remove := []fieldPath{annotationField(lastApplied), annotationField(ArgoTrackingAnnotation)}
	var add []fieldPath
	if t.helm {
		if n, ok := annotations[helmReleaseName]; ok && (n != t.name || annotations[helmReleaseNamespace] != t.namespace) {
			return moved{}, false, fmt.Errorf("its annotations name Helm release %s/%s; left as it is", annotations[helmReleaseNamespace], n)
		}
		annotations[helmReleaseName], annotations[helmReleaseNamespace] = t.name, t.namespace
		labels[helmManagedBy] = "Helm"
	} else {
		name, ns := Plumb.Group+"/name", Plumb.Group+"/namespace"
		if n, ok := labels[name]; ok && (n != t.name || labels[ns] != t.namespace) {
			return moved{}, false, fmt.Errorf("its label %s=%s, %s=%s names another Kustomization; left as it is", name, n, ns, labels[ns])
		}
		labels[name], labels[ns] = t.name, t.namespace
		remove = append(remove, labelField(ArgoInstanceLabel))
		add = []fieldPath{labelField(name), labelField(ns)}
	}
	delete(annotations, lastApplied)
	delete(annotations, ArgoTrackingAnnotation)
	changed := !maps.Equal(labels, obj.GetLabels()) || !maps.Equal(annotations, obj.GetAnnotations())
	m := moved{Labels: labels, Annotations: annotations}
	for _, e := range obj.GetManagedFields() {
		if e.Manager == FieldOwner {
			changed = true // left by a hand-over stopped between its two patches
			continue
		}
		mine := e.Manager == ArgoManager && e.Subresource == "" && !t.helm
		var more []fieldPath
		if mine {
			more = add
		}
		f, edited, err := editFields(e.FieldsV1, remove, more)
		if err != nil {
			return moved{}, false, fmt.Errorf("managed fields of %s: %w", e.Manager, err)
		}
		e.FieldsV1 = f
		changed = changed || edited
		if !mine {
			m.ManagedFields = append(m.ManagedFields, e)
			continue
		}
		changed = true
		e.Manager, e.Operation = Plumb.Manager, metav1.ManagedFieldsOperationApply
		m.ManagedFields = mergeEntry(m.ManagedFields, e)
	}
	return m, changed, nil
}

// argoUnmove gives an object back to Argo CD as the hand-over recorded it.
func argoUnmove(obj metav1.Object, t argoTarget, rec handed) (moved, bool) {
	labels, annotations := maps.Clone(obj.GetLabels()), maps.Clone(obj.GetAnnotations())
	if labels == nil {
		labels = map[string]string{}
	}
	if annotations == nil {
		annotations = map[string]string{}
	}
	var remove, add []fieldPath
	if t.helm {
		delete(annotations, helmReleaseName)
		delete(annotations, helmReleaseNamespace)
		remove = append(remove, annotationField(helmReleaseName), annotationField(helmReleaseNamespace))
		if rec.ManagedBy {
			delete(labels, helmManagedBy)
		}
	} else {
		for _, k := range []string{Plumb.Group + "/name", Plumb.Group + "/namespace"} {
			delete(labels, k)
			remove = append(remove, labelField(k))
		}
		if _, ok := labels[ArgoInstanceLabel]; ok {
			add = append(add, labelField(ArgoInstanceLabel))
		}
	}
	if rec.Tracking != "" {
		annotations[ArgoTrackingAnnotation] = rec.Tracking
		add = append(add, annotationField(ArgoTrackingAnnotation))
	}
	m := moved{Labels: labels, Annotations: annotations}
	changed := !maps.Equal(labels, obj.GetLabels()) || !maps.Equal(annotations, obj.GetAnnotations())
	for _, e := range obj.GetManagedFields() {
		if e.Manager == FieldOwner {
			changed = true
			continue
		}
		mine := (!t.helm && e.Manager == Plumb.Manager && e.Operation == metav1.ManagedFieldsOperationApply) || (t.helm && e.Manager == ArgoManager)
		var more []fieldPath
		if mine {
			more = add
		}
		if f, edited, err := editFields(e.FieldsV1, remove, more); err == nil {
			e.FieldsV1, changed = f, changed || edited
		}
		if mine && !t.helm && rec.Op != "" {
			e.Manager, e.Operation, changed = ArgoManager, metav1.ManagedFieldsOperationType(rec.Op), true
		}
		m.ManagedFields = mergeEntry(m.ManagedFields, e)
	}
	return m, changed
}

// argoObject reads an object's metadata; nil when it is gone.
func argoObject(ctx context.Context, c client.Client, ref ObjectRef) (*metav1.PartialObjectMetadata, error) {
	obj := &metav1.PartialObjectMetadata{}
	obj.SetGroupVersionKind(ref.GVK)
	if err := c.Get(ctx, types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}, obj); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	return obj, nil
}

// argoAdopt hands one object over; a missing object is not an error.
func argoAdopt(ctx context.Context, c client.Client, ref ObjectRef, t argoTarget) (bool, error) {
	obj, err := argoObject(ctx, c, ref)
	if err != nil || obj == nil {
		return false, err
	}
	m, changed, err := argoMove(obj, t)
	if err != nil || !changed {
		return false, err
	}
	return true, writeMoved(ctx, c, obj, m)
}

// argoGiveBack hands one object back to Argo CD.
func argoGiveBack(ctx context.Context, c client.Client, ref ObjectRef, t argoTarget, rec handed) error {
	obj, err := argoObject(ctx, c, ref)
	if err != nil || obj == nil {
		return err
	}
	m, changed := argoUnmove(obj, t, rec)
	if !changed {
		return nil
	}
	return writeMoved(ctx, c, obj, m)
}
