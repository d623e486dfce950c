package takeover

import (
	"context"
	"fmt"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/plumb-dev/plumb/cli/internal/migrate"
)

// Kind is a Flux kind that has a Plumb twin.
type Kind struct {
	Kind       string
	Plural     string
	FluxGroup  string
	PlumbGroup string
	// Component is Plumb's controller of the kind, for messages.
	Component string
}

// PlumbVersion is the version of every Plumb API group.
const PlumbVersion = "v1beta1"

// Kinds are the Flux kinds taken over, sources first so that a twin's source exists before the
// twins that read it. HelmCharts are not among them: Plumb's HelmReleases make their own.
var Kinds = []Kind{
	{"GitRepository", "gitrepositories", "source.toolkit.fluxcd.io", "source.plumb.dev", "source-controller"},
	{"OCIRepository", "ocirepositories", "source.toolkit.fluxcd.io", "source.plumb.dev", "source-controller"},
	{"HelmRepository", "helmrepositories", "source.toolkit.fluxcd.io", "source.plumb.dev", "source-controller"},
	{"Bucket", "buckets", "source.toolkit.fluxcd.io", "source.plumb.dev", "source-controller"},
	{"Kustomization", "kustomizations", "kustomize.toolkit.fluxcd.io", "apply.plumb.dev", "apply-controller"},
	{"HelmRelease", "helmreleases", "helm.toolkit.fluxcd.io", "helm.plumb.dev", "helm-controller"},
	{"ImageRepository", "imagerepositories", "image.toolkit.fluxcd.io", "image.plumb.dev", "image-automation"},
	{"ImagePolicy", "imagepolicies", "image.toolkit.fluxcd.io", "image.plumb.dev", "image-automation"},
	{"ImageUpdateAutomation", "imageupdateautomations", "image.toolkit.fluxcd.io", "image.plumb.dev", "image-automation"},
	{"Provider", "providers", "notification.toolkit.fluxcd.io", "notification.plumb.dev", "notification-controller"},
	{"Alert", "alerts", "notification.toolkit.fluxcd.io", "notification.plumb.dev", "notification-controller"},
	{"Receiver", "receivers", "notification.toolkit.fluxcd.io", "notification.plumb.dev", "notification-controller"},
}

// fluxGroups maps Flux's API groups to Plumb's, for the apiVersion fields of references.
var fluxGroups = migrate.FluxGroups

// PlumbGVK is the kind of the twin.
func (k Kind) PlumbGVK() schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: k.PlumbGroup, Version: PlumbVersion, Kind: k.Kind}
}

// served is what the cluster serves of a kind: Flux's version ("" when Flux's CRD is not
// installed) and whether Plumb's CRD is installed.
type served struct {
	Kind
	FluxVersion string
	Plumb       bool
}

// FluxGVK is the Flux kind at the version the cluster stores.
func (s served) FluxGVK() schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: s.FluxGroup, Version: s.FluxVersion, Kind: s.Kind.Kind}
}

// discover reads the CRDs of every kind: a part of Flux or of Plumb may be installed alone.
func discover(ctx context.Context, c client.Reader) ([]served, error) {
	out := make([]served, 0, len(Kinds))
	for _, k := range Kinds {
		s := served{Kind: k}
		crd := &apiextensionsv1.CustomResourceDefinition{}
		err := c.Get(ctx, client.ObjectKey{Name: k.Plural + "." + k.FluxGroup}, crd)
		switch {
		case err == nil:
			s.FluxVersion = storageVersion(crd)
		case !apierrors.IsNotFound(err):
			return nil, fmt.Errorf("read Flux's CRD of %s: %w", k.Kind, err)
		}
		err = c.Get(ctx, client.ObjectKey{Name: k.Plural + "." + k.PlumbGroup}, crd)
		switch {
		case err == nil:
			s.Plumb = true
		case !apierrors.IsNotFound(err):
			return nil, fmt.Errorf("read Plumb's CRD of %s: %w", k.Kind, err)
		}
		out = append(out, s)
	}
	return out, nil
}

func storageVersion(crd *apiextensionsv1.CustomResourceDefinition) string {
	for _, v := range crd.Spec.Versions {
		if v.Storage {
			return v.Name
		}
	}
	return ""
}
