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

	// GoogleChatProvider posts a card (cards v2) to a Google Chat space's incoming webhook.
	GoogleChatProvider = "googlechat"
	// TelegramProvider sends a message with a bot's token to the chat of spec.channel.
	TelegramProvider = "telegram"
	// MatrixProvider sends an m.notice to the room of spec.channel through a homeserver.
	MatrixProvider = "matrix"
	// RocketProvider posts to a Rocket.Chat incoming webhook.
	RocketProvider = "rocket"
	// MattermostProvider posts to a Mattermost incoming webhook.
	MattermostProvider = "mattermost"
	// WebexProvider posts a message with a bot's token to the room of spec.channel.
	WebexProvider = "webex"
	// LarkProvider posts a message card to a Lark (Feishu) custom bot's webhook.
	LarkProvider = "lark"
	// ZulipProvider sends a message as a bot to the <channel>/<topic> of spec.channel.
	ZulipProvider = "zulip"
	// GrafanaProvider adds a tagged annotation through Grafana's annotations API.
	GrafanaProvider = "grafana"
	// DatadogProvider posts an event to Datadog's events API.
	DatadogProvider = "datadog"
	// SentryProvider sends an error event (errors) or a transaction (info) to a Sentry DSN.
	SentryProvider = "sentry"

	// Incidents, telemetry and buses.

	// PagerDutyProvider triggers a PagerDuty incident (Events API v2) on a failure and resolves
	// it on its recovery.
	PagerDutyProvider = "pagerduty"
	// OpsgenieProvider creates an Opsgenie alert on a failure and closes it on its recovery.
	OpsgenieProvider = "opsgenie"
	// AlertmanagerProvider fires a Prometheus Alertmanager alert on a failure and resolves it
	// on its recovery.
	AlertmanagerProvider = "alertmanager"
	// OTelProvider sends each event as an OpenTelemetry span over OTLP/HTTP.
	OTelProvider = "otel"
	// NATSProvider publishes the event as JSON on a NATS subject.
	NATSProvider = "nats"
	// GooglePubSubProvider publishes the event as JSON on a Google Cloud Pub/Sub topic.
	GooglePubSubProvider = "googlepubsub"
	// AzureEventHubProvider sends the event as JSON to an Azure Event Hub.
	AzureEventHubProvider = "azureeventhub"
)

// Provider types of Git hosts: commit statuses, pull and merge request comments, dispatches.
const (
	// GiteaProvider sets a commit status on the commit of the event's revision.
	GiteaProvider = "gitea"
	// BitbucketProvider sets a build status on the commit of the event's revision (Bitbucket
	// Cloud).
	BitbucketProvider = "bitbucket"
	// BitbucketServerProvider sets a build status on the commit of the event's revision
	// (Bitbucket Server and Data Center).
	BitbucketServerProvider = "bitbucketserver"
	// AzureDevOpsProvider sets a commit status on the commit of the event's revision.
	AzureDevOpsProvider = "azuredevops"
	// GitHubPullRequestCommentProvider keeps one comment per object up to date on the pull
	// request of the event's commit.
	GitHubPullRequestCommentProvider = "githubpullrequestcomment"
	// GitLabMergeRequestCommentProvider keeps one comment per object up to date on the merge
	// request of the event's commit.
	GitLabMergeRequestCommentProvider = "gitlabmergerequestcomment"
	// GiteaPullRequestCommentProvider keeps one comment per object up to date on the pull
	// request of the event's commit.
	GiteaPullRequestCommentProvider = "giteapullrequestcomment"
	// GitHubDispatchProvider sends a repository_dispatch event to a GitHub repository.
	GitHubDispatchProvider = "githubdispatch"
)

// ProviderSpec says where notifications go.
// +kubebuilder:validation:XValidation:rule="self.type in ['github', 'gitlab', 'gitea', 'bitbucketserver', 'bitbucket', 'azuredevops'] || !has(self.commitStatusExpr)",message="spec.commitStatusExpr is only supported for the 'github', 'gitlab', 'gitea', 'bitbucketserver', 'bitbucket', 'azuredevops' provider types"
// +kubebuilder:validation:XValidation:rule="self.type in ['github', 'gitlab', 'gitea', 'bitbucketserver', 'bitbucket', 'azuredevops'] || !has(self.commitStatusDescriptionExpr)",message="spec.commitStatusDescriptionExpr is only supported for the 'github', 'gitlab', 'gitea', 'bitbucketserver', 'bitbucket', 'azuredevops' provider types"
// +kubebuilder:validation:XValidation:rule="!has(self.address) || self.type in ['nats', 'googlepubsub', 'azureeventhub'] || self.address.matches('^https?://.+$')",message="address must be an http:// or https:// URL"
// +kubebuilder:validation:XValidation:rule="self.type != 'nats' || !has(self.address) || self.address.matches('^(nats|tls|ws|wss)://.+$')",message="the address of a nats Provider is a nats://, tls://, ws:// or wss:// URL"
type ProviderSpec struct {
	// Interval is accepted so that Flux manifests apply, and not used: Flux deprecated it in
	// v1beta3, and Plumb reads a Provider's Secrets at each delivery.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	Interval *metav1.Duration `json:"interval,omitempty"`
	// Type of the receiving service.
	// +required
	// +kubebuilder:validation:Enum=slack;msteams;discord;github;gitlab;generic;generic-hmac;googlechat;telegram;matrix;rocket;mattermost;webex;lark;zulip;grafana;datadog;sentry;pagerduty;opsgenie;alertmanager;otel;nats;googlepubsub;azureeventhub;gitea;bitbucket;bitbucketserver;azuredevops;githubpullrequestcomment;gitlabmergerequestcomment;giteapullrequestcomment;githubdispatch
	Type string `json:"type"`
	// Address to post to, an http:// or https:// URL (a webhook URL; for the Git host types the
	// repository's URL, for bitbucketserver its HTTPS clone URL); for nats the server's nats://
	// or tls:// URL, for googlepubsub the Google Cloud project ID, for azureeventhub the event
	// hub's name (with a token). secretRef's `address` wins, so that a URL with a token in it
	// can stay in a Secret.
	// Loopback, link-local (cloud metadata) and the API server's address are refused unless the
	// controller's --provider-allow-cidr lists them; credentials are not sent to http:// addresses
	// unless --provider-allow-insecure-http is set.
	// For matrix the homeserver, zulip the server, grafana its annotations API, sentry the DSN;
	// telegram (a Bot API server), webex (its messages API) and datadog (the site's API) have
	// their service's as default.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	Address string `json:"address,omitempty"`
	// Channel for Slack with a bot token.
	// The chat of telegram (<chat ID or @username>[:<topic ID>]), the room ID of matrix
	// (!…:server) and webex, the <channel>/<topic> of zulip, the channel of rocket and
	// mattermost, the environment of sentry, the routing key of pagerduty, the subject of nats,
	// the topic of googlepubsub, the Event Hubs namespace of azureeventhub (with a token).
	// +optional
	Channel string `json:"channel,omitempty"`
	// Username shown as the sender, where the service allows it. For zulip the bot's email, for
	// bitbucketserver the user of the Secret's `password`; for zulip, rocket, mattermost and
	// bitbucketserver the Secret's `username` wins.
	// +optional
	Username string `json:"username,omitempty"`
	// SecretRef names a Secret in the same namespace with `address`, `token` (Slack bot token,
	// the API token of a Git host type, `<username>:<app-password>` for bitbucket, or the HMAC
	// key of generic-hmac), and optionally `headers` (YAML map of extra headers) and `proxy` (a
	// proxy URL that wins over spec.proxy, for one with a password in it). bitbucketserver and
	// gitea also take `username` and `password` instead of `token`. Some types read more:
	// `username` and `password` (alertmanager, otel, nats), `creds` and `nkey` (nats); `token` is
	// the routing key of pagerduty, the API key of opsgenie, the service account key of
	// googlepubsub; `address` the connection string of azureeventhub.
	//
	// `token` is also the bot token of telegram and webex, the access token of matrix, the
	// service account token of grafana, the API key of datadog and the signing secret of lark;
	// `username` and `password` are grafana's basic auth and zulip's bot email and API key.
	//
	// For github, githubpullrequestcomment and githubdispatch a GitHub App can stand in for
	// `token`: `githubAppID`, `githubAppInstallationID` (or `githubAppInstallationOwner`),
	// `githubAppPrivateKey` (PEM) and optionally `githubAppBaseURL` (the API, e.g.
	// https://github.example.com/api/v3; it is also where the API calls go). Its installation
	// token is asked for and cached by the controller, through the Provider's proxy and address
	// policy.
	// +optional
	SecretRef *meta.LocalObjectReference `json:"secretRef,omitempty"`
	// ServiceAccountName names a ServiceAccount in the Provider's namespace whose cloud
	// identity (workload identity) authenticates the deliveries of azureeventhub (an Entra ID
	// token for Event Hubs), azuredevops (an Entra ID token for Azure DevOps) and googlepubsub
	// (a Google access token): a token of the ServiceAccount is exchanged for the cloud's, and
	// cached until shortly before it expires. The ServiceAccount carries the identity as for
	// Flux: azure.workload.identity/client-id and azure.workload.identity/tenant-id, or
	// iam.gke.io/gcp-service-account (with gcp.auth.fluxcd.io/workload-identity-provider
	// outside GKE). It needs the controller flag
	// --feature-gates=ObjectLevelWorkloadIdentity=true. The Secret must then hold no token
	// (nor, for azureeventhub, a connection string); other types refuse the field. Without it,
	// these types use the Secret's credentials only, never the controller's own identity.
	// +optional
	ServiceAccountName string `json:"serviceAccountName,omitempty"`
	// CommitStatusExpr is a CEL expression returning a string, the commit status's name for the
	// commit status types (github, gitlab, gitea, bitbucket, bitbucketserver, azuredevops:
	// GitHub's and Gitea's context, GitLab's name, Bitbucket's key and name, Azure DevOps's
	// context name) instead of <kind>/<namespace>/<name>, e.g.
	// `event.involvedObject.name + '/' + event.metadata.env`. Its variables are Flux's:
	// `event` (involvedObject {apiVersion, kind, namespace, name}, severity, reason, message,
	// metadata, reportingController, timestamp), `alert` and `provider` (the objects). One that
	// does not compile or does not return a string makes the Provider Stalled
	// (InvalidCELExpression); one that fails on an event fails that delivery.
	// +optional
	CommitStatusExpr string `json:"commitStatusExpr,omitempty"`
	// CommitStatusDescriptionExpr is a CEL expression returning a string, the commit status's
	// description for the same types instead of `<reason>: <message>`, e.g.
	// `event.reason + ' in ' + event.metadata.env`. It sees what commitStatusExpr sees (Flux has
	// no such field; it is CEL because commitStatusExpr is). A description longer than 130
	// characters is cut. One that does not compile or does not return a string makes the
	// Provider Stalled (InvalidCELExpression); one that fails on an event fails that delivery.
	// +optional
	CommitStatusDescriptionExpr string `json:"commitStatusDescriptionExpr,omitempty"`
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
