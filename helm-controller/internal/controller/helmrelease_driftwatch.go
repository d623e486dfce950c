package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"

	"helm.sh/helm/v3/pkg/release"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	helmv1 "github.com/plumb-dev/plumb/helm-controller/api/v1beta1"
)

// helmManagedSelector selects the objects Helm made: install, upgrade and rollback label each
// object of a release app.kubernetes.io/managed-by=Helm.
const helmManagedSelector = "app.kubernetes.io/managed-by=Helm"

// objectWatch watches the metadata of the objects Helm made in the controller's own cluster,
// one watch per kind, started when a drift check first meets the kind. It keeps names and
// resource versions only. An object whose resource version is the one a drift check found in
// sync has not been changed since, and needs no server-side dry-run.
type objectWatch struct {
	client metadata.Interface

	mu        sync.Mutex
	ctx       context.Context // the manager's, once started
	informers map[schema.GroupVersionResource]cache.SharedIndexInformer
}

func newObjectWatch(cfg *rest.Config) (*objectWatch, error) {
	mc, err := metadata.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &objectWatch{client: mc, informers: map[schema.GroupVersionResource]cache.SharedIndexInformer{}}, nil
}

// Start lets watches start until ctx ends (a manager.Runnable).
func (w *objectWatch) Start(ctx context.Context) error {
	w.mu.Lock()
	w.ctx = ctx
	w.mu.Unlock()
	<-ctx.Done()
	return nil
}

// resourceVersion is the object's resource version as the watch of its kind has it: false
// when the kind's watch has not synced yet (it is started then), or the object is not there
// (missing, or no longer labeled as Helm's).
func (w *objectWatch) resourceVersion(gvr schema.GroupVersionResource, namespace, name string) (string, bool) {
	if w == nil {
		return "", false
	}
	inf := w.informer(gvr)
	if inf == nil || !inf.HasSynced() {
		return "", false
	}
	key := name
	if namespace != "" {
		key = namespace + "/" + name
	}
	item, found, err := inf.GetStore().GetByKey(key)
	if err != nil || !found {
		return "", false
	}
	m, ok := item.(*metav1.PartialObjectMetadata)
	if !ok {
		return "", false
	}
	return m.ResourceVersion, true
}

// informer returns the kind's watch, starting it on first use; nil before the manager started.
func (w *objectWatch) informer(gvr schema.GroupVersionResource) cache.SharedIndexInformer {
	w.mu.Lock()
	defer w.mu.Unlock()
	if inf, ok := w.informers[gvr]; ok {
		return inf
	}
	if w.ctx == nil {
		return nil
	}
	inf := metadatainformer.NewFilteredMetadataInformer(w.client, gvr, metav1.NamespaceAll, 0, cache.Indexers{},
		func(o *metav1.ListOptions) { o.LabelSelector = helmManagedSelector }).Informer()
	_ = inf.SetTransform(func(obj any) (any, error) {
		m, ok := obj.(*metav1.PartialObjectMetadata)
		if !ok {
			return obj, nil
		}
		return &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: m.Name, Namespace: m.Namespace, ResourceVersion: m.ResourceVersion}}, nil
	})
	go inf.Run(w.ctx.Done())
	w.informers[gvr] = inf
	return inf
}

// driftRecord is, for one HelmRelease, the resource versions at which its release's objects
// were last found in sync, for one basis (revision, manifest and ignore rules). It is kept in
// memory only: a restarted controller checks every object again.
type driftRecord struct {
	uid    types.UID
	basis  string
	inSync map[string]string // object key → resource version
}

// driftRecords are the driftRecord of each HelmRelease, by namespace/name.
type driftRecords struct{ m sync.Map }

// driftBasis names what a drift check compares the objects with: the revision, its manifest
// and the ignore rules.
func driftBasis(rls *release.Release, dd *helmv1.DriftDetection) string {
	rules, _ := json.Marshal(dd.Ignore)
	sum := sha256.Sum256([]byte(rls.Manifest))
	return fmt.Sprintf("%s/%s/%d/%s/%s", rls.Namespace, rls.Name, rls.Version, hex.EncodeToString(sum[:8]), rules)
}

// objectKey names an object of a release for a driftRecord.
func objectKey(u *unstructured.Unstructured) string {
	gvk := u.GroupVersionKind()
	return gvk.Group + "/" + gvk.Kind + "/" + u.GetNamespace() + "/" + u.GetName()
}

// toCheck splits the release's objects: those to compare with the cluster (changed since they
// were found in sync, or never found so) and the resource versions the watch had for them
// before the check. An object found in sync at that resource version needs no check while it
// keeps it: a change after the watch's reading moves it, and the next check sees that.
func (d *driftRecords) toCheck(w *objectWatch, mapper apimeta.RESTMapper, obj *helmv1.HelmRelease, basis string, objs []*unstructured.Unstructured) ([]*unstructured.Unstructured, map[string]string) {
	var rec *driftRecord
	if v, ok := d.m.Load(types.NamespacedName{Namespace: obj.Namespace, Name: obj.Name}); ok {
		if r := v.(*driftRecord); r.uid == obj.UID && r.basis == basis {
			rec = r
		}
	}
	seen := map[string]string{}
	var check []*unstructured.Unstructured
	for _, u := range objs {
		rv := ""
		if obj.Spec.KubeConfig == nil {
			gvk := u.GroupVersionKind()
			if m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version); err == nil {
				ns := u.GetNamespace()
				if m.Scope.Name() != apimeta.RESTScopeNameNamespace {
					ns = ""
				}
				rv, _ = w.resourceVersion(m.Resource, ns, u.GetName())
			}
		}
		key := objectKey(u)
		if rv != "" {
			seen[key] = rv
			if rec != nil && rec.inSync[key] == rv {
				continue
			}
		}
		check = append(check, u)
	}
	return check, seen
}

// record notes the objects found in sync at the resource versions seen before the check:
// every object seen but the drifted ones (those checked and found in sync, and those skipped
// because they were in sync at that same resource version).
func (d *driftRecords) record(obj *helmv1.HelmRelease, basis string, drifted map[string]bool, seen map[string]string) {
	inSync := map[string]string{}
	for k, rv := range seen {
		if !drifted[k] {
			inSync[k] = rv
		}
	}
	d.m.Store(types.NamespacedName{Namespace: obj.Namespace, Name: obj.Name}, &driftRecord{uid: obj.UID, basis: basis, inSync: inSync})
}

// forget drops obj's record.
func (d *driftRecords) forget(obj *helmv1.HelmRelease) {
	d.m.Delete(types.NamespacedName{Namespace: obj.Namespace, Name: obj.Name})
}
