package v1beta1

import (
	"github.com/fluxcd/pkg/apis/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ReceiverKind is the kind name of Receiver.
const ReceiverKind = "Receiver"

// Receiver types: who calls the webhook, and how a call is authenticated.
const (
	// GenericReceiver: any POST to the secret path.
	GenericReceiver = "generic"
	// GenericHMACReceiver: X-Signature: sha256=<hex HMAC of the body> (sha1 and sha512 too).
	GenericHMACReceiver = "generic-hmac"
	// GitHubReceiver: X-Hub-Signature-256, X-GitHub-Event (ping answered, not acted on).
	GitHubReceiver = "github"
	// GitLabReceiver: X-Gitlab-Token, X-Gitlab-Event.
	GitLabReceiver = "gitlab"
	// GiteaReceiver: X-Gitea-Signature (hex HMAC-SHA256), X-Gitea-Event.
	GiteaReceiver = "gitea"
	// BitbucketReceiver (Bitbucket Server / Data Center): X-Hub-Signature, X-Event-Key.
	BitbucketReceiver = "bitbucket"
	// HarborReceiver: Authorization equal to the token.
	HarborReceiver = "harbor"
	// DockerHubReceiver: the secret path, and a Docker Hub push payload.
	DockerHubReceiver = "dockerhub"
	// QuayReceiver: the secret path, and a Quay repository push payload.
	QuayReceiver = "quay"
	// GenericOIDCReceiver: Authorization: Bearer <OIDC ID token> of one of spec.oidcProviders,
	// whose claims pass its validations; no Secret.
	GenericOIDCReceiver = "generic-oidc"
	// GCRReceiver: a Pub/Sub push of Google Artifact Registry (or Container Registry)
	// notifications, with the Google-signed OIDC token of the subscription's service account.
	GCRReceiver = "gcr"
	// ACRReceiver: the secret path, and an Azure Container Registry webhook payload.
	ACRReceiver = "acr"
	// NexusReceiver: X-Nexus-Webhook-Signature (hex HMAC-SHA1 of the body), and a Nexus
	// Repository webhook payload.
	NexusReceiver = "nexus"
	// CDEventsReceiver: the secret path, and a CDEvent (a CloudEvent whose ce-type names it).
	CDEventsReceiver = "cdevents"
)

// DefaultOIDCAudience is the audience (aud claim) a generic-oidc token must name when its
// provider does not say (Flux's).
const DefaultOIDCAudience = "notification-controller"

// ReceiverSpec says who may call, which of their events count, and what to reconcile.
// +kubebuilder:validation:XValidation:rule="self.type != 'generic-oidc' || (has(self.oidcProviders) && size(self.oidcProviders) > 0)",message="generic-oidc receivers must define at least one oidcProvider"
// +kubebuilder:validation:XValidation:rule="self.type == 'generic-oidc' || !has(self.oidcProviders) || size(self.oidcProviders) == 0",message="oidcProviders can only be set when type is generic-oidc"
// +kubebuilder:validation:XValidation:rule="self.type != 'generic-oidc' || !has(self.secretRef)",message="secretRef cannot be set when type is generic-oidc"
// +kubebuilder:validation:XValidation:rule="self.type == 'generic-oidc' || has(self.secretRef)",message="secretRef is required when type is not generic-oidc"
type ReceiverSpec struct {
	// Type of the caller, which says how a call is authenticated.
	// +required
	// +kubebuilder:validation:Enum=generic;generic-hmac;generic-oidc;github;gitlab;gitea;bitbucket;harbor;dockerhub;quay;gcr;acr;nexus;cdevents
	Type string `json:"type"`
	// Events the call must be one of to act, compared without case: X-GitHub-Event,
	// X-Gitlab-Event, X-Gitea-Event, X-Event-Key, Harbor's type, the action of gcr, acr and
	// nexus payloads, a CDEvent's ce-type (an entry without the version matches every version).
	// Empty accepts all; ignored by generic, generic-hmac and generic-oidc, which name no event.
	// +optional
	Events []string `json:"events,omitempty"`
	// Resources to reconcile on a valid call: custom kinds that opted in (a ClusterRole labelled
	// notification.plumb.dev/receiver-target=true grants get, list, patch on them), never
	// Kubernetes' own kinds. A refused resource makes Ready False (AccessDenied); calls still
	// act on the others.
	// +required
	// +kubebuilder:validation:MinItems=1
	Resources []CrossNamespaceObjectReference `json:"resources"`
	// SecretRef names a Secret in the same namespace whose `token` key makes the webhook path
	// and authenticates calls; for gcr it also holds `email` (the service account of the
	// Pub/Sub push subscription) and `audience` (its token's aud). Required by every type but
	// generic-oidc, which must not set it: its path is made of the name and namespace alone,
	// and the OIDC token authenticates calls.
	// +optional
	SecretRef *meta.LocalObjectReference `json:"secretRef,omitempty"`
	// Suspend stops acting on calls (they are answered 503).
	// +optional
	Suspend bool `json:"suspend,omitempty"`
	// Interval at which the token Secret is read again, to publish the path of a new token.
	// +optional
	// +kubebuilder:default="10m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	Interval *metav1.Duration `json:"interval,omitempty"`
	// OIDCProviders are the issuers whose tokens authenticate calls of type generic-oidc: the
	// one whose issuerURL equals the token's iss claim checks its signature (keys found by
	// OIDC discovery), expiry and audience, then its validations must all be true of the
	// token's claims. Only with generic-oidc.
	// +optional
	// +listType=map
	// +listMapKey=issuerURL
	OIDCProviders []OIDCProvider `json:"oidcProviders,omitempty"`
	// ResourceFilter is a CEL expression returning a bool, evaluated for each object the
	// resources select when a valid call arrives: only objects for which it is true are asked to
	// reconcile. `res` is the object's apiVersion, kind and metadata; `req` is the call's body
	// when it is JSON (Content-Type application/json), otherwise empty (for gcr, the
	// registry's notification inside the Pub/Sub message); `claims` are the verified token's,
	// for generic-oidc only. E.g. `res.metadata.name == req.repository.name`. One that does not
	// compile or does not return a bool makes the Receiver Stalled (InvalidCELExpression).
	// +optional
	ResourceFilter string `json:"resourceFilter,omitempty"`
}

// CrossNamespaceObjectReference selects objects to reconcile.
// +kubebuilder:validation:XValidation:rule="!(has(self.name) && has(self.matchLabels)) || self.name == '*'",message="set name or matchLabels, not both"
type CrossNamespaceObjectReference struct {
	// APIVersion of the objects, e.g. source.plumb.dev/v1beta1.
	// +required
	APIVersion string `json:"apiVersion"`
	// Kind of the objects, e.g. GitRepository.
	// +required
	// +kubebuilder:validation:MinLength=1
	Kind string `json:"kind"`
	// Name of the object, or * for all of the kind in the namespace (with matchLabels, those
	// that match).
	// +optional
	Name string `json:"name,omitempty"`
	// Namespace of the objects; default the Receiver's. Another namespace is refused unless the
	// controller runs with --no-cross-namespace-refs=false.
	// +optional
	Namespace string `json:"namespace,omitempty"`
	// MatchLabels selects the objects by label.
	// +optional
	MatchLabels map[string]string `json:"matchLabels,omitempty"`
	// Filter is a CEL expression of `res` and `req` (and `claims` for generic-oidc), as
	// spec.resourceFilter, for the objects of this entry only; an object is asked to reconcile
	// only when both are true.
	// +optional
	Filter string `json:"filter,omitempty"`
}

// OIDCProvider is an OIDC issuer of a generic-oidc Receiver, in Flux's shape.
type OIDCProvider struct {
	// IssuerURL of the tokens: discovery is at <issuerURL>/.well-known/openid-configuration,
	// and it must equal their iss claim.
	// +required
	// +kubebuilder:validation:Pattern="^https?://"
	IssuerURL string `json:"issuerURL"`
	// Audience the tokens must name (their aud claim); default notification-controller.
	// +optional
	Audience string `json:"audience,omitempty"`
	// Variables are named CEL expressions of `claims` (and the variables before them), seen by
	// the validations as vars.<name>.
	// +optional
	Variables []OIDCVariable `json:"variables,omitempty"`
	// Validations are CEL expressions of `claims` and `vars` that must all be true. A valid
	// signature alone proves little: public issuers (GitHub Actions, say) give tokens to anyone
	// on the platform, so the validations must name the caller (e.g.
	// `claims.repository_owner == 'my-org'`).
	// +required
	// +kubebuilder:validation:MinItems=1
	Validations []OIDCValidation `json:"validations"`
}

// GetAudience returns spec.audience, or DefaultOIDCAudience.
func (in *OIDCProvider) GetAudience() string {
	if in.Audience != "" {
		return in.Audience
	}
	return DefaultOIDCAudience
}

// OIDCVariable is a named CEL expression of a token's claims.
type OIDCVariable struct {
	// Name of the variable, a CEL identifier.
	// +required
	Name string `json:"name"`
	// Expression that gives the variable's value.
	// +required
	Expression string `json:"expression"`
}

// OIDCValidation is a CEL expression of a token's claims that must be true.
type OIDCValidation struct {
	// Expression returning a bool.
	// +required
	Expression string `json:"expression"`
	// Message returned to the caller when the expression is false.
	// +required
	Message string `json:"message"`
}

// ReceiverStatus is what the controller observed.
type ReceiverStatus struct {
	// ObservedGeneration is the generation of the spec last reconciled.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready, Reconciling.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// WebhookPath is the path to call: /hook/<sha256 of token, name and namespace> (of name
	// and namespace alone for generic-oidc). A new token is read every interval (or on a
	// reconcile request); the old path is refused at once.
	// +optional
	WebhookPath                 string `json:"webhookPath,omitempty"`
	meta.ReconcileRequestStatus `json:",inline"`
}

// Receiver is an incoming webhook that reconciles objects at once when a Git host or registry
// calls it.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=plumb
// +kubebuilder:printcolumn:name="Ready",type="string",JSONPath=".status.conditions[?(@.type==\"Ready\")].status"
// +kubebuilder:printcolumn:name="Path",type="string",JSONPath=".status.webhookPath"
// +kubebuilder:printcolumn:name="Age",type="date",JSONPath=".metadata.creationTimestamp"
type Receiver struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec ReceiverSpec `json:"spec"`
	// +optional
	Status ReceiverStatus `json:"status,omitempty"`
}

// ReceiverList is a list of Receivers.
// +kubebuilder:object:root=true
type ReceiverList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Receiver `json:"items"`
}

// GetConditions returns the status conditions.
func (in *Receiver) GetConditions() []metav1.Condition { return in.Status.Conditions }

// SetConditions replaces the status conditions.
func (in *Receiver) SetConditions(c []metav1.Condition) { in.Status.Conditions = c }
