package controller

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/fluxcd/pkg/auth"
	authaws "github.com/fluxcd/pkg/auth/aws"
	"github.com/fluxcd/pkg/cache"
	"github.com/minio/minio-go/v7/pkg/credentials"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	"github.com/plumb-dev/plumb/shared/certs"
	"github.com/plumb-dev/plumb/shared/proxy"
	"github.com/plumb-dev/plumb/shared/registry"
	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/source-controller/internal/bucket"
)

// Secret keys of a Bucket's secretRef (Flux's) and of its sts.secretRef.
const (
	bucketAccessKey = "accesskey"
	bucketSecretKey = "secretkey"
	ldapUsernameKey = "username"
	ldapPasswordKey = "password"
)

// errUnsupported marks a spec the controller cannot serve yet; the Bucket stalls.
var errUnsupported = errors.New("not supported")

// bucketClient reads the Secrets the Bucket names and returns a client of its provider; it
// makes no request to the bucket. Errors wrap bucket.ErrAuth, proxy.ErrProxy,
// bucket.ErrInvalid or errUnsupported, and name Secrets and keys, never values.
func (r *BucketReconciler) bucketClient(ctx context.Context, obj *sourcev1.Bucket) (*bucket.Client, error) {
	switch p := obj.GetProvider(); p {
	case sourcev1.BucketProviderGeneric, sourcev1.BucketProviderAWS:
		o, err := r.bucketOptions(ctx, obj)
		if err != nil {
			return nil, err
		}
		return bucket.New(o)
	case sourcev1.BucketProviderGoogle:
		return r.gcsClient(ctx, obj)
	case sourcev1.BucketProviderAzure:
		return r.azureClient(ctx, obj)
	default:
		return nil, fmt.Errorf("%w: provider %s: Plumb reads S3-compatible buckets (provider generic or aws), Google Cloud Storage (gcp) and Azure Blob Storage (azure)", errUnsupported, p)
	}
}

// connection reads certSecretRef and proxySecretRef.
func (r *BucketReconciler) connection(ctx context.Context, obj *sourcev1.Bucket) (*tls.Config, *proxy.Proxy, error) {
	var cfg *tls.Config
	var p *proxy.Proxy
	var err error
	if ref := obj.Spec.CertSecretRef; ref != nil {
		if cfg, err = r.tlsFrom(ctx, obj.Namespace, ref.Name, "certSecretRef"); err != nil {
			return nil, nil, err
		}
	}
	if ref := obj.Spec.ProxySecretRef; ref != nil {
		if p, err = proxy.FromSecret(ctx, r.Client, obj.Namespace, ref.Name); err != nil {
			return nil, nil, err
		}
	}
	return cfg, p, nil
}

// bucketOptions returns how to reach an S3-compatible bucket.
func (r *BucketReconciler) bucketOptions(ctx context.Context, obj *sourcev1.Bucket) (bucket.Options, error) {
	spec := obj.Spec
	o := bucket.Options{Endpoint: spec.Endpoint, Insecure: spec.Insecure, Region: spec.Region, Bucket: spec.BucketName}
	if spec.STS != nil && spec.STS.Provider == sourcev1.BucketProviderAWS && obj.GetProvider() != sourcev1.BucketProviderAWS {
		return o, fmt.Errorf("%w: sts.provider aws needs spec.provider aws", bucket.ErrInvalid)
	}
	var err error
	if o.TLS, o.Proxy, err = r.connection(ctx, obj); err != nil {
		return o, err
	}
	switch {
	case spec.SecretRef != nil:
		// As in Flux, a secretRef wins over the provider's identity.
		data, err := r.secretData(ctx, obj.Namespace, spec.SecretRef.Name, "secretRef", bucketAccessKey, bucketSecretKey)
		if err != nil {
			return o, err
		}
		o.Creds = bucket.Static(string(data[bucketAccessKey]), string(data[bucketSecretKey]), "")
	case spec.STS != nil && spec.STS.Provider == sourcev1.STSProviderLDAP:
		o.Creds, err = r.ldapCredentials(ctx, obj, o.Proxy)
	case obj.GetProvider() == sourcev1.BucketProviderAWS:
		o.Creds, err = r.awsCredentials(ctx, obj, o.Proxy)
	}
	return o, err
}

// secretData reads a Secret of the namespace and checks that it has the keys.
func (r *BucketReconciler) secretData(ctx context.Context, namespace, name, field string, keys ...string) (map[string][]byte, error) {
	secret := &corev1.Secret{}
	key := types.NamespacedName{Namespace: namespace, Name: name}
	if err := r.Get(ctx, key, secret); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("%w: %s: Secret %s not found", bucket.ErrAuth, field, key)
		}
		return nil, fmt.Errorf("%w: %s: Secret %s: %v", bucket.ErrAuth, field, key, err)
	}
	var missing []string
	for _, k := range keys {
		if len(secret.Data[k]) == 0 {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w: %s: Secret %s has no %s", bucket.ErrAuth, field, key, strings.Join(missing, ", "))
	}
	return secret.Data, nil
}

// tlsFrom reads a certSecretRef: ca.crt, and optionally tls.crt and tls.key.
func (r *BucketReconciler) tlsFrom(ctx context.Context, namespace, name, field string) (*tls.Config, error) {
	data, err := r.secretData(ctx, namespace, name, field)
	if err != nil {
		return nil, err
	}
	cfg, err := certs.FromSecret(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: Secret %s/%s: %v", bucket.ErrAuth, field, namespace, name, err)
	}
	return cfg, nil
}

// ldapCredentials are MinIO's AssumeRoleWithLDAPIdentity credentials for the username and
// password of sts.secretRef, obtained at the STS endpoint when the first request is signed.
func (r *BucketReconciler) ldapCredentials(ctx context.Context, obj *sourcev1.Bucket, p *proxy.Proxy) (*credentials.Credentials, error) {
	sts := obj.Spec.STS
	if sts.SecretRef == nil {
		return nil, fmt.Errorf("%w: sts provider ldap needs sts.secretRef with %s and %s", bucket.ErrAuth, ldapUsernameKey, ldapPasswordKey)
	}
	data, err := r.secretData(ctx, obj.Namespace, sts.SecretRef.Name, "sts.secretRef", ldapUsernameKey, ldapPasswordKey)
	if err != nil {
		return nil, err
	}
	var cfg *tls.Config
	if ref := sts.CertSecretRef; ref != nil {
		if cfg, err = r.tlsFrom(ctx, obj.Namespace, ref.Name, "sts.certSecretRef"); err != nil {
			return nil, err
		}
	}
	httpClient := &http.Client{Transport: bucket.Transport(cfg, p)}
	creds, err := credentials.NewLDAPIdentity(sts.Endpoint, string(data[ldapUsernameKey]), string(data[ldapPasswordKey]),
		func(l *credentials.LDAPIdentity) { l.Client = httpClient })
	if err != nil {
		return nil, fmt.Errorf("%w: sts provider ldap at %s: %v", bucket.ErrAuth, sts.Endpoint, err)
	}
	// Asked now rather than when the first request is signed, so that a refusal is reported
	// as the STS's, not as a failed listing. The STS's answers never quote the password.
	if _, err := creds.GetWithContext(&credentials.CredContext{Client: httpClient, Context: ctx}); err != nil {
		if p != nil {
			if perr := p.Explain(err); errors.Is(perr, proxy.ErrProxy) {
				return nil, perr
			}
		}
		return nil, fmt.Errorf("%w: sts provider ldap at %s: %s", bucket.ErrAuth, sts.Endpoint, strings.Join(strings.Fields(err.Error()), " "))
	}
	return creds, nil
}

// awsCredentials are short-lived keys of the controller's AWS identity (IRSA, EKS Pod
// Identity, the SDK's default chain), or with serviceAccountName of that ServiceAccount's role,
// cached until shortly before they expire.
func (r *BucketReconciler) awsCredentials(ctx context.Context, obj *sourcev1.Bucket, p *proxy.Proxy) (*credentials.Credentials, error) {
	opts, who, err := r.identity(obj, p)
	if err != nil {
		return nil, err
	}
	if obj.Spec.Region != "" {
		opts = append(opts, auth.WithSTSRegion(obj.Spec.Region))
	}
	if sts := obj.Spec.STS; sts != nil && sts.Provider == sourcev1.BucketProviderAWS {
		opts = append(opts, auth.WithSTSEndpoint(sts.Endpoint))
	}
	token, err := auth.GetAccessToken(ctx, authaws.Provider{}, opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: provider aws: getting credentials%s: %s", bucket.ErrAuth, who, strings.Join(strings.Fields(err.Error()), " "))
	}
	c, ok := token.(*authaws.Credentials)
	if !ok || c.AccessKeyId == nil || c.SecretAccessKey == nil {
		return nil, fmt.Errorf("%w: provider aws: the identity gave no access key", bucket.ErrAuth)
	}
	session := ""
	if c.SessionToken != nil {
		session = *c.SessionToken
	}
	return bucket.Static(*c.AccessKeyId, *c.SecretAccessKey, session), nil
}

// identity returns the options of the workload identity of the controller, or with
// serviceAccountName of that ServiceAccount (behind the feature gate), cached per object, and
// "with the controller's identity" or "as ServiceAccount ns/name" for messages.
func (r *BucketReconciler) identity(obj *sourcev1.Bucket, p *proxy.Proxy) ([]auth.Option, string, error) {
	opts := []auth.Option{auth.WithCache(*r.tokens, cache.InvolvedObject{Kind: sourcev1.BucketKind, Name: obj.Name, Namespace: obj.Namespace, Operation: cache.OperationReconcile})}
	who := " with the controller's identity"
	if sa := obj.Spec.ServiceAccountName; sa != "" {
		if r.Cloud == nil || !r.Cloud.ObjectLevel() {
			return nil, "", fmt.Errorf("%w: provider %s: serviceAccountName %s names the cloud identity, which needs the controller flag --feature-gates=%s=true",
				registry.ErrObjectLevelIdentityDisabled, obj.GetProvider(), sa, registry.ObjectLevelWorkloadIdentity)
		}
		opts = append(opts, auth.WithClient(r.Client), auth.WithServiceAccountNamespace(obj.Namespace), auth.WithServiceAccountName(sa))
		who = fmt.Sprintf(" as ServiceAccount %s/%s", obj.Namespace, sa)
	}
	if p != nil {
		u := *p.URL
		if p.Username != "" || p.Password != "" {
			u.User = url.UserPassword(p.Username, p.Password)
		}
		opts = append(opts, auth.WithProxyURL(u))
	}
	return opts, who, nil
}
