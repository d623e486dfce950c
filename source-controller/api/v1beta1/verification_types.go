package v1beta1

import (
	"github.com/fluxcd/pkg/apis/meta"
)

// Signature providers of OCIArtifactVerification.
const (
	// VerifyProviderCosign verifies cosign signatures: with the public keys of secretRef, or
	// keyless with a certificate identity (matchOIDCIdentity) against a Sigstore trusted root.
	VerifyProviderCosign = "cosign"
	// VerifyProviderNotation verifies Notary Project signatures with the trust policy and
	// certificates of secretRef.
	VerifyProviderNotation = "notation"
)

// Secret keys read by OCIArtifactVerification.
const (
	// TrustedRootKey is the key of the Sigstore trusted root in trustedRootSecretRef's Secret.
	TrustedRootKey = "trusted_root.json"
	// NotationTrustPolicyKey is the key of the Notary Project trust policy in secretRef's
	// Secret (provider notation).
	NotationTrustPolicyKey = "trustpolicy.json"
)

// OCIArtifactVerification says how the signature of an OCI artifact is verified before it is
// published: the artifact is refused (Ready=False, VerificationError) unless a signature of
// its manifest digest verifies.
type OCIArtifactVerification struct {
	// Provider of the signatures: cosign (the default) or notation.
	// +optional
	// +kubebuilder:default=cosign
	// +kubebuilder:validation:Enum=cosign;notation
	Provider string `json:"provider,omitempty"`
	// SecretRef names a Secret in the same namespace with the trusted material. For cosign,
	// its keys ending in .pub are PEM public keys (a signature by any of them passes); without
	// secretRef, cosign verifies keyless (see matchOIDCIdentity). For notation, it holds
	// trustpolicy.json and the trusted certificates (keys ending in .crt or .pem).
	// +optional
	SecretRef *meta.LocalObjectReference `json:"secretRef,omitempty"`
	// MatchOIDCIdentity lists the certificate identities accepted by cosign keyless
	// verification: a signature passes when its certificate's OIDC issuer and subject match
	// the regular expressions of any entry. Required for keyless verification.
	// +optional
	MatchOIDCIdentity []OIDCIdentityMatch `json:"matchOIDCIdentity,omitempty"`
	// TrustedRootSecretRef names a Secret in the same namespace whose key trusted_root.json is
	// a Sigstore trusted root (Fulcio CAs, Rekor and CT logs) for cosign keyless verification,
	// e.g. of a private Sigstore instance. Without it the Sigstore public-good instance's root
	// is used, which the controller fetches over TUF.
	// +optional
	TrustedRootSecretRef *meta.LocalObjectReference `json:"trustedRootSecretRef,omitempty"`
}

// OIDCIdentityMatch is a certificate identity accepted by cosign keyless verification.
type OIDCIdentityMatch struct {
	// Issuer is a regular expression (Go syntax, anchored by the caller with ^ and $ as
	// needed) that the certificate's OIDC issuer must match, e.g.
	// ^https://token\.actions\.githubusercontent\.com$.
	// +required
	Issuer string `json:"issuer"`
	// Subject is a regular expression that the certificate's subject (its SAN: a workflow URL
	// or an email) must match.
	// +required
	Subject string `json:"subject"`
}
