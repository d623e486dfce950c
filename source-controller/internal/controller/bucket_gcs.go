package controller

import (
	"context"
	"fmt"
	"strings"

	authgcp "github.com/fluxcd/pkg/auth/gcp"
	"golang.org/x/oauth2"

	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/source-controller/internal/bucket"
)

// bucketGCPServiceAccount is the secretRef key of provider gcp: a service account key in JSON,
// as in Flux.
const bucketGCPServiceAccount = "serviceaccount"

// gcsClient returns a client of a Google Cloud Storage bucket: with the service account key
// of secretRef, or else with the workload identity (GKE Workload Identity Federation, the
// metadata server, or serviceAccountName's).
func (r *BucketReconciler) gcsClient(ctx context.Context, obj *sourcev1.Bucket) (*bucket.Client, error) {
	o := bucket.GCSOptions{Endpoint: obj.Spec.Endpoint, Insecure: obj.Spec.Insecure, Bucket: obj.Spec.BucketName}
	var err error
	if o.TLS, o.Proxy, err = r.connection(ctx, obj); err != nil {
		return nil, err
	}
	if ref := obj.Spec.SecretRef; ref != nil {
		data, err := r.secretData(ctx, obj.Namespace, ref.Name, "secretRef", bucketGCPServiceAccount)
		if err != nil {
			return nil, err
		}
		o.ServiceAccountJSON = data[bucketGCPServiceAccount]
	} else {
		opts, who, err := r.identity(obj, o.Proxy)
		if err != nil {
			return nil, err
		}
		o.TokenSource = &identityTokens{ts: authgcp.NewTokenSource(ctx, opts...), who: who}
	}
	return bucket.NewGCS(ctx, o)
}

// identityTokens marks the failures of the workload identity as authentication failures.
type identityTokens struct {
	ts  oauth2.TokenSource
	who string
}

func (t *identityTokens) Token() (*oauth2.Token, error) {
	tok, err := t.ts.Token()
	if err != nil {
		return nil, fmt.Errorf("%w: provider gcp: getting an access token%s: %s", bucket.ErrAuth, t.who, strings.Join(strings.Fields(err.Error()), " "))
	}
	return tok, nil
}
