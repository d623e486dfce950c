package v1beta1

import (
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ProviderKind is the kind name of Provider.
const ProviderKind = "Provider"

// Provider types.
const (
	// SlackProvider posts to a Slack incoming webhook, or with a bot token to a channel.
	SlackProvider = "slack"
	// MSTeamsProvider posts an Adaptive Card to a Teams incoming webhook or Workflows URL.
	MSTeamsProvider = "msteams"
	// DiscordProvider posts an embed to a Discord webhook.
	DiscordProvider = "discord"
	// GitHubProvider sets a commit status on the commit of the event's revision.
	GitHubProvider = "github"
	// GitLabProvider sets a commit status on the commit of the event's revision.
	GitLabProvider = "gitlab"
	// GenericProvider posts the event as JSON.
	GenericProvider = "generic"
	// GenericHMACProvider posts the event as JSON with X-Signature: sha256=<hex HMAC>.
	GenericHMACProvider = "generic-hmac"
)

// ProviderSpec says where notifications go.
// +kubebuilder:validation:XValidation:rule="self.type == 'github' || self.type == 'gitlab' || !has(self.commitStatusExpr)",message="commitStatusExpr is only supported for the github and gitlab provider types"
type ProviderSpec struct {
	// Interval is accepted so that Flux manifests apply, and not used: Flux deprecated it in
	// v1beta3, and Plumb reads a Provider's Secrets at each delivery.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	Interval *metav1.Duration `json:"interval,omitempty"`
	// Type of the receiving service.
	// +required
	// +kubebuilder:validation:Enum=slack;msteams;discord;github;gitlab;generic;generic-hmac
	Type string `json:"type"`
	// Address to post to (a webhook URL; for github and gitlab the repository's URL);
	// secretRef's `address` wins, so that a URL with a token in it can stay in a Secret.
	// Loopback, link-local (cloud metadata) and the API server's address are refused unless the
	// controller's --provider-allow-cidr lists them; credentials are not sent to http:// addresses
	// unless --provider-allow-insecure-http is set.
	// +optional
	// +kubebuilder:validation:Pattern="^https?://.+$"
	Address string `json:"address,omitempty"`
	// Channel for Slack with a bot token.
	// +optional
	Channel string `json:"channel,omitempty"`
	// Username shown as the sender, where the service allows it.
	// +optional
	Username string `json:"username,omitempty"`
	// SecretRef names a Secret in the same namespace with `address`, `token` (Slack bot token,
	// GitHub or GitLab API token, or the HMAC key of generic-hmac), and optionally `headers` (YAML
	// map of extra headers) and `proxy` (a proxy URL that wins over spec.proxy, for one with a
	// password in it).
	//
	// For github a GitHub App can stand in for `token`: `githubAppID`,
	// `githubAppInstallationID` (or `githubAppInstallationOwner`), `githubAppPrivateKey` (PEM)
	// and optionally `githubAppBaseURL` (the API, e.g. https://github.example.com/api/v3; it is
	// also where commit statuses go). Its installation token is asked for and cached by the
	// controller, through the Provider's proxy and address policy.
	// +optional
	SecretRef *meta.LocalObjectReference `json:"secretRef,omitempty"`
	// CommitStatusExpr is a CEL expression returning a string, the commit status's name for
	// github and gitlab (GitHub's context, GitLab's name) instead of <kind>/<namespace>/<name>,
	// e.g. `event.involvedObject.name + '/' + event.metadata.env`. Its variables are Flux's:
	// `event` (involvedObject {apiVersion, kind, namespace, name}, severity, reason, message,
	// metadata, reportingController, timestamp), `alert` and `provider` (the objects). One that
	// does not compile or does not return a string makes the Provider Stalled
	// (InvalidCELExpression); one that fails on an event fails that delivery.
	// +optional
	CommitStatusExpr string `json:"commitStatusExpr,omitempty"`
	// ProxySecretRef names a Secret in the same namespace with the HTTP(S) proxy every delivery
	// goes through: `address` (http://host:port or https://host:port) and optionally `username`
	// and `password`. NO_PROXY of the controller's environment still applies. It wins over
	// spec.proxy and the Secret's `proxy`. The proxy's own address and the address delivered to
	// are both held to the address policy.
	// +optional
	ProxySecretRef *meta.LocalObjectReference `json:"proxySecretRef,omitempty"`
	// Proxy is the URL of an HTTP(S) or SOCKS5 proxy that every delivery goes through. Without
	// it the controller's HTTPS_PROXY, HTTP_PROXY and NO_PROXY environment applies. The proxy's
	// own address is held to the same address policy as Address.
	// +optional
	// +kubebuilder:validation:Pattern="^(http|https|socks5)://[^@/]+(/.*)?$"
	Proxy string `json:"proxy,omitempty"`
	// CertSecretRef names a Secret in the same namespace with `ca.crt` (PEM certificate
	// authorities the service's certificate is checked against, instead of the system's) and
	// optionally `tls.crt` and `tls.key` (a client certificate, for mutual TLS).
	// +optional
	CertSecretRef *meta.LocalObjectReference `json:"certSecretRef,omitempty"`
	// Timeout of one delivery attempt; default 15s.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// Suspend stops deliveries through this Provider.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
}

// ProviderStatus is what the controller observed.
type ProviderStatus struct {
	// ObservedGeneration is the generation of the spec last reconciled.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready (False with the last delivery error, if any), Reconciling.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions                  []metav1.Condition `json:"conditions,omitempty"`
	meta.ReconcileRequestStatus `json:",inline"`
	// Folded counts the notifications that waited while the Provider delivered slower than
	// they came, and went out folded into digests (the last state of each object in one
	// message) instead of one by one.
	// +optional
	Folded int64 `json:"folded,omitempty"`
	// Dropped counts, of the folded notifications, those lost because a digest holds at most
	// 1,000 objects: the oldest object's went. Zero unless a Provider stays backed up for long.
	// +optional
	Dropped int64 `json:"dropped,omitempty"`
	// LastFoldedTime is when notifications were last folded (or dropped).
	// +optional
	LastFoldedTime *metav1.Time `json:"lastFoldedTime,omitempty"`
}

// Provider is a chat or webhook service that Alerts send notifications to.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=plumb
// +kubebuilder:printcolumn:name="Type",type="string",JSONPath=".spec.type"
// +kubebuilder:printcolumn:name="Ready",type="string",JSONPath=".status.conditions[?(@.type==\"Ready\")].status"
// +kubebuilder:printcolumn:name="Status",type="string",JSONPath=".status.conditions[?(@.type==\"Ready\")].message"
type Provider struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec ProviderSpec `json:"spec"`
	// +optional
	Status ProviderStatus `json:"status,omitempty"`
}

// ProviderList is a list of Providers.
// +kubebuilder:object:root=true
type ProviderList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Provider `json:"items"`
}

// GetConditions returns the status conditions.
func (in *Provider) GetConditions() []metav1.Condition { return in.Status.Conditions }

// SetConditions replaces the status conditions.
func (in *Provider) SetConditions(c []metav1.Condition) { in.Status.Conditions = c }

// GetTimeout returns spec.timeout, or 15s.
func (in *Provider) GetTimeout() time.Duration {
	if in.Spec.Timeout == nil || in.Spec.Timeout.Duration <= 0 {
		return 15 * time.Second
	}
	return in.Spec.Timeout.Duration
}
