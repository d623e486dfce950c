package controller

import (
	"context"
	"maps"
	"slices"
	"sync"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/release"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	helmv1 "github.com/plumb-dev/plumb/helm-controller/api/v1beta1"
	plumbrelease "github.com/plumb-dev/plumb/helm-controller/internal/release"
)

// storageWatch watches the metadata of Helm's release Secrets (label owner=helm) in the
// controller's own cluster: names, labels and resource versions only, never the release data
// (gzipped manifests and charts), so that its memory stays small. It tells whether a release's
// storage is as a reconcile last read it; only then is the read skipped.
type storageWatch struct {
	informer cache.SharedIndexInformer
}

// releaseIndex indexes Helm's Secrets by "<namespace>/<release name>".
const releaseIndex = "release"

func newStorageWatch(cfg *rest.Config) (*storageWatch, error) {
	mc, err := metadata.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	inf := metadatainformer.NewFilteredMetadataInformer(mc, corev1.SchemeGroupVersion.WithResource("secrets"), metav1.NamespaceAll, 0,
		cache.Indexers{releaseIndex: func(obj any) ([]string, error) {
			m, ok := obj.(*metav1.PartialObjectMetadata)
			if !ok {
				return nil, nil
			}
			return []string{m.Namespace + "/" + m.Labels["name"]}, nil
		}},
		func(o *metav1.ListOptions) { o.LabelSelector = "owner=helm" }).Informer()
	// What a fingerprint needs: the rest of the metadata (managed fields above all) is dropped.
	if err := inf.SetTransform(func(obj any) (any, error) {
		m, ok := obj.(*metav1.PartialObjectMetadata)
		if !ok {
			return obj, nil
		}
		return &metav1.PartialObjectMetadata{TypeMeta: m.TypeMeta, ObjectMeta: metav1.ObjectMeta{
			Name: m.Name, Namespace: m.Namespace, ResourceVersion: m.ResourceVersion, Labels: map[string]string{"name": m.Labels["name"]},
		}}, nil
	}); err != nil {
		return nil, err
	}
	return &storageWatch{informer: inf}, nil
}

// Start runs the watch until ctx ends (a manager.Runnable).
func (s *storageWatch) Start(ctx context.Context) error {
	s.informer.Run(ctx.Done())
	return nil
}

// fingerprint is the Fingerprint of release name's Secrets in namespace ns as the watch has
// them; false until the watch has synced.
func (s *storageWatch) fingerprint(ns, name string) (string, bool) {
	objs, ok := s.objects(ns, name)
	if !ok {
		return "", false
	}
	return plumbrelease.Fingerprint(objs), true
}

// objects is the metadata of release name's Secrets in namespace ns as the watch has them;
// false until the watch has synced.
func (s *storageWatch) objects(ns, name string) ([]metav1.Object, bool) {
	if s == nil || !s.informer.HasSynced() {
		return nil, false
	}
	items, err := s.informer.GetIndexer().ByIndex(releaseIndex, ns+"/"+name)
	if err != nil {
		return nil, false
	}
	objs := make([]metav1.Object, 0, len(items))
	for _, it := range items {
		if m, ok := it.(*metav1.PartialObjectMetadata); ok {
			objs = append(objs, m)
		}
	}
	return objs, true
}

// watched is the watch's view of release name's Secrets in namespace ns, for Helm's storage
// client (plumbrelease.Target.Watched); nil without a watch. The resource version is the
// last the watch received, which may be ahead of what its index holds: that only makes the
// client list again.
func (s *storageWatch) watched(ns, name string) plumbrelease.Watched {
	if s == nil {
		return nil
	}
	return func() ([]metav1.Object, string, bool) {
		objs, ok := s.objects(ns, name)
		return objs, s.informer.LastSyncResourceVersion(), ok
	}
}

// storedRelease is what a reconcile read of a release's storage, kept in memory for the next
// reconcile: a copy of the newest revision without the chart's files (the manifest only when
// drift detection needs it), the values' digest and status.history.
type storedRelease struct {
	uid             types.UID
	name, storageNS string
	maxHistory      int
	fingerprint     string
	cur             *release.Release
	valuesDigest    string
	history         []helmv1.Snapshot
}

// storedReleases are the storedRelease of each HelmRelease, by namespace/name.
type storedReleases struct{ m sync.Map }

// remember keeps what a reconcile just read of obj's release (hist, with the fingerprint of
// the read); nothing when the storage is another cluster's (the watch is of this one).
func (s *storedReleases) remember(obj *helmv1.HelmRelease, fingerprint string, hist []*release.Release) {
	key := types.NamespacedName{Namespace: obj.Namespace, Name: obj.Name}
	cur := plumbrelease.Newest(hist)
	if fingerprint == "" || cur == nil || obj.Spec.KubeConfig != nil {
		s.m.Delete(key)
		return
	}
	s.m.Store(key, &storedRelease{
		uid: obj.UID, name: obj.GetReleaseName(), storageNS: obj.GetStorageNamespace(), maxHistory: obj.GetMaxHistory(),
		fingerprint: fingerprint, cur: trimmed(cur, driftOn(obj)), valuesDigest: plumbrelease.Digest(cur.Config),
		history: plumbrelease.Snapshots(hist, obj.GetMaxHistory()),
	})
}

// forget drops what was kept of obj's release.
func (s *storedReleases) forget(obj *helmv1.HelmRelease) {
	s.m.Delete(types.NamespacedName{Namespace: obj.Namespace, Name: obj.Name})
}

// upToDate returns the newest revision and status.history kept for obj when its storage is
// as last read (the watch has the same fingerprint) and that revision is deployed, healthy,
// obj's, and made from this chart artifact, values and post-renderers: the release needs no
// action and its storage no read.
func (s *storedReleases) upToDate(w *storageWatch, obj *helmv1.HelmRelease, valuesDigest, chartDigest string) (*release.Release, []helmv1.Snapshot, bool) {
	v, ok := s.m.Load(types.NamespacedName{Namespace: obj.Namespace, Name: obj.Name})
	if !ok {
		return nil, nil, false
	}
	sr := v.(*storedRelease)
	if sr.uid != obj.UID || sr.name != obj.GetReleaseName() || sr.storageNS != obj.GetStorageNamespace() ||
		sr.maxHistory != obj.GetMaxHistory() || obj.Spec.KubeConfig != nil {
		return nil, nil, false
	}
	if fp, ok := w.fingerprint(sr.storageNS, sr.name); !ok || fp != sr.fingerprint {
		return nil, nil, false
	}
	cur := sr.cur
	if cur.Info == nil || cur.Info.Status != release.StatusDeployed || cur.Labels[plumbrelease.HealthyLabel] == "false" ||
		plumbrelease.OwnerOf(cur) != plumbrelease.OwnerID(obj) || sr.valuesDigest != valuesDigest ||
		cur.Labels[plumbrelease.PostRenderersLabel] != plumbrelease.PostRenderersDigest(obj) ||
		cur.Labels[plumbrelease.ChartDigestLabel] != chartDigest || (driftOn(obj) && cur.Manifest == "") {
		return nil, nil, false
	}
	return cur, slices.Clone(sr.history), true
}

// trimmed is what the reconcile of a release up to date reads of its newest revision: the
// chart's metadata without its files, test hooks without their manifests, and the manifest
// only when drift detection compares it.
func trimmed(rls *release.Release, manifest bool) *release.Release {
	out := &release.Release{Name: rls.Name, Namespace: rls.Namespace, Version: rls.Version, Labels: maps.Clone(rls.Labels)}
	if rls.Info != nil {
		info := *rls.Info
		info.Notes, info.Resources = "", nil
		out.Info = &info
	}
	if rls.Chart != nil && rls.Chart.Metadata != nil {
		md := *rls.Chart.Metadata
		out.Chart = &chart.Chart{Metadata: &md}
	}
	for _, h := range rls.Hooks {
		if h == nil || !isTestHook(h) {
			continue
		}
		hk := *h
		hk.Manifest = ""
		out.Hooks = append(out.Hooks, &hk)
	}
	if manifest {
		out.Manifest = rls.Manifest
	}
	return out
}

func isTestHook(h *release.Hook) bool {
	for _, e := range h.Events {
		if e == release.HookTest {
			return true
		}
	}
	return false
}

// driftOn says whether obj's drift detection compares the release's objects.
func driftOn(obj *helmv1.HelmRelease) bool {
	dd := obj.Spec.DriftDetection
	return dd != nil && dd.Mode != "" && dd.Mode != helmv1.DriftDisabled
}
