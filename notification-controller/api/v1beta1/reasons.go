package v1beta1

// Reasons of Provider, Alert and Receiver conditions.
const (
	// SucceededReason: the object is ready to deliver or receive.
	SucceededReason = "Succeeded"
	// InvalidProviderReason: the Provider's spec cannot make a sender (type, address, proxy or
	// certificate).
	InvalidProviderReason = "InvalidProvider"
	// SecretNotFoundReason: a Secret the Provider names, or a key in it, is missing.
	SecretNotFoundReason = "SecretNotFound"
	// AddressRefusedReason: the Provider's address (or proxy) resolves to one the controller's
	// address policy refuses (loopback, link-local, unspecified, the API server);
	// --provider-allow-cidr lifts it.
	AddressRefusedReason = "AddressRefused"
	// PlainHTTPRefusedReason: the Provider would send credentials from its Secret to an http://
	// address; --provider-allow-insecure-http allows it.
	PlainHTTPRefusedReason = "PlainHTTPRefused"
	// ProxyFailedReason: the Provider's proxySecretRef Secret is missing or its address is not a
	// proxy URL, or the proxy cannot be reached or refused the credentials (407); the message
	// names the proxy host, never the credentials.
	ProxyFailedReason = "ProxyFailed"
	// AuthenticationFailedReason: the Provider's GitHub App is unusable (a missing or malformed
	// key in the Secret) or GitHub refused it (an unknown app, key or installation); the message
	// names the Secret's key, never its value.
	AuthenticationFailedReason = "AuthenticationFailed"
	// DeliveryFailedReason: the last delivery through the Provider failed.
	DeliveryFailedReason = "DeliveryFailed"
	// ProviderNotReadyReason: the Alert's Provider is missing or cannot be read.
	ProviderNotReadyReason = "ProviderNotReady"
	// InvalidSpecReason: the spec cannot work as written; retrying cannot help.
	InvalidSpecReason = "InvalidSpec"
	// FeatureGateDisabledReason: the Provider names a ServiceAccount (spec.serviceAccountName)
	// and the controller runs without --feature-gates=ObjectLevelWorkloadIdentity=true.
	FeatureGateDisabledReason = "FeatureGateDisabled"
	// InvalidCELExpressionReason: a Receiver's spec.resourceFilter, spec.resources[].filter or
	// an expression of spec.oidcProviders does not compile or does not return what it must, or a
	// Provider's spec.commitStatusExpr or spec.commitStatusDescriptionExpr does not compile or
	// does not return a string; the message names the field and the expression.
	InvalidCELExpressionReason = "InvalidCELExpression"
	// TokenNotFoundReason: the Receiver's token Secret, its token key, or a key its type needs
	// (gcr: email, audience) is missing.
	TokenNotFoundReason = "TokenNotFound"
	// AccessDeniedReason: the spec reaches beyond what the object's namespace may reach: an
	// Alert's event sources or a Receiver's resources in another namespace (while
	// --no-cross-namespace-refs is on), or Receiver resources of a kind that did not opt in.
	AccessDeniedReason = "AccessDenied"
)
