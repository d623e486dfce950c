package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"

	"helm.sh/helm/v3/pkg/release"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	helmv1 "github.com/plumb-dev/plumb/helm-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/shared/objcache"
)

// helmManagedSelector selects the objects Helm made: install, upgrade and rollback label each
// object of a release app.kubernetes.io/managed-by=Helm. The controller watches them (in its
// own cluster, one watch per kind met, shared/objcache): drift detection skips the objects not
// changed since they were found in sync, and health waits are woken by their changes.
const helmManagedSelector = "app.kubernetes.io/managed-by=Helm"

// driftRecord is, for one HelmRelease, the snapshots (shared/objcache) at which its release's
// objects were last found in sync, for one basis (revision, manifest and ignore rules). It is
// kept in memory only: a restarted controller checks every object again.
type driftRecord struct {
	uid    types.UID
	basis  string
	inSync map[objcache.Key]objcache.Snapshot
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

// toCheck splits the release's objects: those to compare with the cluster (changed since they
// were found in sync, or never found so) and the snapshots the watch had of them before the
// check. An object found in sync needs no check while its snapshot is the same, or differs only
// by its status (a Deployment's rollout: a workload's generation moves with any other change):
// a change after the watch's reading moves it, and the next check sees that. A watch that
// failed since (another epoch) makes every object checked again.
func (d *driftRecords) toCheck(ctx context.Context, w *objcache.Cache, obj *helmv1.HelmRelease, basis string, objs []*unstructured.Unstructured) ([]*unstructured.Unstructured, map[objcache.Key]objcache.Snapshot) {
	var rec *driftRecord
	if v, ok := d.m.Load(types.NamespacedName{Namespace: obj.Namespace, Name: obj.Name}); ok {
		if r := v.(*driftRecord); r.uid == obj.UID && r.basis == basis {
			rec = r
		}
	}
	seen := map[objcache.Key]objcache.Snapshot{}
	var check []*unstructured.Unstructured
	for _, u := range objs {
		k := keyOf(u)
		if obj.Spec.KubeConfig == nil && w != nil {
			if now, found, synced := w.Get(ctx, k); synced && found {
				seen[k] = now
				if was, ok := rec.get(k); ok {
					switch objcache.Compare(was, now, objcache.GenerationTracked(k.GVK.GroupKind())) {
					case objcache.Same, objcache.StatusOnly:
						continue
					}
				}
			}
		}
		check = append(check, u)
	}
	return check, seen
}

// get is the snapshot at which k was found in sync; false without one.
func (r *driftRecord) get(k objcache.Key) (objcache.Snapshot, bool) {
	if r == nil {
		return objcache.Snapshot{}, false
	}
	s, ok := r.inSync[k]
	return s, ok
}

// record notes the objects found in sync at the snapshots seen before the check: every object
// seen but the drifted ones (those checked and found in sync, and those skipped because they
// were in sync at that same snapshot).
func (d *driftRecords) record(obj *helmv1.HelmRelease, basis string, drifted map[objcache.Key]bool, seen map[objcache.Key]objcache.Snapshot) {
	inSync := map[objcache.Key]objcache.Snapshot{}
	for k, s := range seen {
		if !drifted[k] {
			inSync[k] = s
		}
	}
	d.m.Store(types.NamespacedName{Namespace: obj.Namespace, Name: obj.Name}, &driftRecord{uid: obj.UID, basis: basis, inSync: inSync})
}

// forget drops obj's record.
func (d *driftRecords) forget(obj *helmv1.HelmRelease) {
	d.m.Delete(types.NamespacedName{Namespace: obj.Namespace, Name: obj.Name})
}
