package refwatch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// ReferenceTargetLabel, set to "true" on a CustomResourceDefinition, lets Plumb's consumers
// refer to the CRD's kind as a source or a dependency (docs/contracts/artifact.md). The kinds
// of Plumb's own groups need no label.
const ReferenceTargetLabel = "plumb.dev/reference-target"

// PlumbGroup is the suffix of the API groups whose kinds may always be referred to.
const PlumbGroup = "plumb.dev"

// ErrKindRefused is the error of a reference to a kind that did not opt in: a kind of the core
// group, a built-in kind (one without a CRD) or a CRD without ReferenceTargetLabel. Watching such
// a kind would make the controller cache every object of it (every Secret of the cluster), and
// reading one would tell a tenant whether it exists.
var ErrKindRefused = errors.New("kind is not a reference target")

// crdGVK is what the opt-in label is read from, as metadata only.
var crdGVK = schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"}

// Allowed returns nil when objects of gvk may be referred to; an error wrapping ErrKindRefused
// when they may not, and another error when the CRD could not be read (try again). A kind the
// API server does not serve (yet) is allowed: reading it finds nothing, and it is checked again
// once it is served. It reads CRDs' metadata from the watcher's cache, so deciding costs no
// request once the CRDs are cached.
func (w *Watcher) Allowed(ctx context.Context, gvk schema.GroupVersionKind) error {
	gk := gvk.GroupKind()
	if gk.Group == PlumbGroup || strings.HasSuffix(gk.Group, "."+PlumbGroup) {
		return nil
	}
	refused := fmt.Errorf("%s: %w: only kinds of the *.%s groups and kinds whose CustomResourceDefinition is labeled %s=true may be referred to", gvk.GroupKind(), ErrKindRefused, PlumbGroup, ReferenceTargetLabel)
	if gk.Group == "" || w == nil {
		return refused
	}
	m, err := w.mapper.RESTMapping(gk, gvk.Version)
	if apimeta.IsNoMatchError(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: %w", gk, err)
	}
	crd := &metav1.PartialObjectMetadata{}
	crd.SetGroupVersionKind(crdGVK)
	// The first read waits for the cache of CRDs to sync; a controller that may not list CRDs
	// would wait for ever.
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err = w.cache.Get(cctx, types.NamespacedName{Name: m.Resource.Resource + "." + gk.Group}, crd)
	switch {
	case apierrors.IsNotFound(err):
		return refused // served without a CRD: a built-in kind
	case err != nil:
		return fmt.Errorf("reading the CustomResourceDefinition of %s: %w", gk, err)
	case crd.GetLabels()[ReferenceTargetLabel] != "true":
		return refused
	}
	return nil
}

// Kinds returns the kinds the watcher has started watches on, sorted: what the controller
// caches besides its own kinds.
func (w *Watcher) Kinds() []schema.GroupKind {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]schema.GroupKind, 0, len(w.kinds))
	for gk := range w.kinds {
		out = append(out, gk)
	}
	slices.SortFunc(out, func(a, b schema.GroupKind) int { return strings.Compare(a.String(), b.String()) })
	return out
}
