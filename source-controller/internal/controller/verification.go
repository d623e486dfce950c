package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	plumbreconcile "github.com/plumb-dev/plumb/shared/reconcile"
	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/source-controller/internal/oci"
	"github.com/plumb-dev/plumb/source-controller/internal/verify"
)

// verifiedCacheSize bounds the verified digests a reconciler remembers: one per object and
// revision is plenty.
const verifiedCacheSize = 10000

// verifySettings reads the Secrets that spec names into verification settings.
func verifySettings(ctx context.Context, c client.Reader, ns string, spec *sourcev1.OCIArtifactVerification) (verify.Settings, error) {
	s := verify.Settings{Provider: spec.Provider}
	if s.Provider == "" {
		s.Provider = verify.ProviderCosign
	}
	for _, id := range spec.MatchOIDCIdentity {
		s.Identities = append(s.Identities, verify.Identity{Issuer: id.Issuer, Subject: id.Subject})
	}
	if ref := spec.TrustedRootSecretRef; ref != nil && s.Provider == verify.ProviderCosign {
		data, err := verifySecret(ctx, c, ns, ref.Name, "trustedRootSecretRef")
		if err != nil {
			return s, err
		}
		if s.TrustedRoot = data[sourcev1.TrustedRootKey]; len(s.TrustedRoot) == 0 {
			return s, fmt.Errorf("%w: Secret %s/%s (trustedRootSecretRef) has no key %s", verify.ErrMaterial, ns, ref.Name, sourcev1.TrustedRootKey)
		}
	}
	ref := spec.SecretRef
	if ref == nil {
		if s.Provider == verify.ProviderNotation {
			return s, fmt.Errorf("%w: notation verification needs a secretRef with %s and the trusted certificates", verify.ErrInvalid, sourcev1.NotationTrustPolicyKey)
		}
		return s, nil
	}
	data, err := verifySecret(ctx, c, ns, ref.Name, "secretRef")
	if err != nil {
		return s, err
	}
	from := fmt.Sprintf("Secret %s/%s", ns, ref.Name)
	switch s.Provider {
	case verify.ProviderCosign:
		s.Keys, s.KeysFrom = map[string][]byte{}, from
		for k, v := range data {
			if strings.HasSuffix(k, ".pub") {
				s.Keys[k] = v
			}
		}
		if len(s.Keys) == 0 {
			return s, fmt.Errorf("%w: %s has no cosign public key (a key ending in .pub)", verify.ErrMaterial, from)
		}
	case verify.ProviderNotation:
		s.KeysFrom = from
		if s.TrustPolicy = data[sourcev1.NotationTrustPolicyKey]; len(s.TrustPolicy) == 0 {
			return s, fmt.Errorf("%w: %s has no %s", verify.ErrMaterial, from, sourcev1.NotationTrustPolicyKey)
		}
		s.Certificates = map[string][]byte{}
		for k, v := range data {
			if strings.HasSuffix(k, ".crt") || strings.HasSuffix(k, ".pem") {
				s.Certificates[k] = v
			}
		}
		if len(s.Certificates) == 0 {
			return s, fmt.Errorf("%w: %s has no certificate (a key ending in .crt or .pem)", verify.ErrMaterial, from)
		}
	}
	return s, nil
}

// verifySecret reads a Secret of spec.verify; a missing one is ErrMaterial, retried.
func verifySecret(ctx context.Context, c client.Reader, ns, name, field string) (map[string][]byte, error) {
	var sec corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &sec); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("%w: Secret %s/%s (%s) not found", verify.ErrMaterial, ns, name, field)
		}
		return nil, fmt.Errorf("reading Secret %s/%s (%s): %w", ns, name, field, err)
	}
	return sec.Data, nil
}

// secretsRecheck is how long a digest that passed verification stays verified, while
// spec.verify is unchanged, without its Secrets being read again: a no-op reconcile of a
// verified artifact makes no request. A reconcile request (plumb reconcile) reads them at once,
// so that a key removed from its Secret takes effect for the artifact being served; a new digest
// is always verified with the Secrets as they are.
const secretsRecheck = time.Hour

// verifyArtifact verifies the signature of digest in remote's repository with spec, unless the
// same digest was verified with the same settings before. Unless requested, a digest verified
// with the same spec within secretsRecheck is taken as verified without reading the Secrets.
func verifyArtifact(ctx context.Context, c client.Reader, cache *verify.Cache, ns string, requested bool, spec *sourcev1.OCIArtifactVerification, remote *oci.Remote, digest string) (verify.Result, error) {
	repo, specKey := remote.Repo.String(), verifySpecKey(ns, spec)
	now := time.Now()
	if r, ok := cache.Recent(repo, digest, specKey, secretsRecheck, now); ok && !requested {
		return r, nil
	}
	r, err := verifyWithSecrets(ctx, c, cache, ns, spec, remote, digest)
	if err != nil {
		// What the Secrets say now wins over what they said before.
		cache.Forget(repo, digest, specKey)
		return r, err
	}
	cache.Remember(repo, digest, specKey, r, now)
	return r, nil
}

// verifyWithSecrets reads spec's Secrets and verifies digest with them, unless it was verified
// with the same settings before.
func verifyWithSecrets(ctx context.Context, c client.Reader, cache *verify.Cache, ns string, spec *sourcev1.OCIArtifactVerification, remote *oci.Remote, digest string) (verify.Result, error) {
	s, err := verifySettings(ctx, c, ns, spec)
	if err != nil {
		return verify.Result{}, err
	}
	repo, key := remote.Repo.String(), s.Digest()
	if r, ok := cache.Get(repo, digest, key); ok {
		return r, nil
	}
	r, err := verify.Verify(ctx, remote, digest, s, func(err error) bool { return errors.Is(err, oci.ErrNotFound) })
	if err != nil {
		return r, err
	}
	cache.Put(repo, digest, key, r)
	return r, nil
}

// verifySpecKey names spec.verify in namespace ns: its provider, Secrets and identities.
func verifySpecKey(ns string, spec *sourcev1.OCIArtifactVerification) string {
	b, _ := json.Marshal(spec)
	return ns + "/" + string(b)
}

// requested tells whether obj carries a reconcile request it has not handled yet.
func requested(obj interface{ GetAnnotations() map[string]string }, handled string) bool {
	v, ok := plumbreconcile.RequestedAt(obj.GetAnnotations())
	return ok && v != handled
}

// markVerified sets SourceVerified=True with the signer.
func markVerified(obj conditions.Setter, revision string, r verify.Result) {
	conditions.MarkTrue(obj, sourcev1.SourceVerifiedCondition, sourcev1.SucceededReason, "verified signature of revision %s by %s", revision, r.Signer)
}

// verificationFailure reports a failed verification: Stalled for settings that cannot work,
// otherwise Ready=False and SourceVerified=False with VerificationError. It returns nil for
// errors that are not verification's (a registry that failed), which the caller reports.
func (h statusHelper) verificationFailure(obj sourceObject, revision string, err error) error {
	switch {
	case errors.Is(err, verify.ErrInvalid):
		conditions.MarkFalse(obj, sourcev1.SourceVerifiedCondition, sourcev1.InvalidSpecReason, "%v", err)
		return h.stall(obj, sourcev1.InvalidSpecReason, err.Error())
	case errors.Is(err, verify.ErrVerification), errors.Is(err, verify.ErrMaterial):
		conditions.MarkFalse(obj, sourcev1.SourceVerifiedCondition, sourcev1.VerificationErrorReason, "%v", err)
		h.event(obj, revision, corev1.EventTypeWarning, sourcev1.VerificationErrorReason, "%v", err)
		conditions.MarkFalse(obj, meta.ReadyCondition, sourcev1.VerificationErrorReason, "%v", err)
		return err
	}
	return nil
}
