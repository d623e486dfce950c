package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

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

// verifyArtifact verifies the signature of digest in remote's repository with spec, unless the
// same digest was verified with the same settings before.
func verifyArtifact(ctx context.Context, c client.Reader, cache *verify.Cache, ns string, spec *sourcev1.OCIArtifactVerification, remote *oci.Remote, digest string) (verify.Result, error) {
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
