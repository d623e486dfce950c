package controller

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"

	notifyv1 "github.com/plumb-dev/plumb/notification-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/notification-controller/internal/notify"
)

// senderConfig is what a Provider gives its Sender: the address (the Secret's wins over the
// spec's), the Secret's token, headers and whole data (for the keys of one type), the HTTP
// client of its proxy, certificates and address policy, and the name and description of its
// commit statuses (its CEL expressions). With a GitHub App in the Secret (types with
// githubApp), TokenSource gives the app's installation tokens and APIURL is the app's API.
type senderConfig struct {
	Provider    *notifyv1.Provider
	Address     string
	Token       string
	Headers     map[string]string
	Data        map[string][]byte
	Client      *http.Client
	Status      notify.StatusText
	TokenSource func(context.Context) (string, error)
	APIURL      string
	// For senders that connect without the HTTP client (nats): the TLS configuration of
	// certSecretRef (nil without one), the address policy, and whether credentials may travel
	// in clear text (--provider-allow-insecure-http).
	TLS           *tls.Config
	Addresses     *notify.AddressPolicy
	AllowInsecure bool
}

// providerType is what the controller knows of one Provider type.
type providerType struct {
	// sender makes the type's Sender, or says what the Provider lacks.
	sender func(c senderConfig) (notify.Sender, error)
	// sendsToken is set when the Secret's token or password goes to the address (an API token,
	// basic auth): such a Provider, when its Secret has one, is refused over plain HTTP unless
	// the controller allows it.
	sendsToken bool
	// githubApp is set when a GitHub App in the Secret can stand in for the token.
	githubApp bool
	// perObject is set when each message is about one object and its state (a commit status, a
	// pull request comment, an incident opened and resolved): a digest reaches such a Provider
	// as the last notification of each object, one after the other, rather than as one message.
	perObject bool
}

// providerTypes is every Provider type the controller delivers to; the API's enum of
// spec.type lists the same names.
var providerTypes = map[string]providerType{
	notifyv1.SlackProvider:       {sender: slackSender},
	notifyv1.MSTeamsProvider:     {sender: teamsSender},
	notifyv1.DiscordProvider:     {sender: discordSender},
	notifyv1.GitHubProvider:      {sender: commitStatusSender, sendsToken: true, githubApp: true, perObject: true},
	notifyv1.GitLabProvider:      {sender: commitStatusSender, sendsToken: true, perObject: true},
	notifyv1.GenericProvider:     {sender: webhookSender},
	notifyv1.GenericHMACProvider: {sender: webhookSender},
	// Chat and observability (provider_types_chat.go).
	notifyv1.GoogleChatProvider: {sender: googleChatSender},
	notifyv1.TelegramProvider:   {sender: telegramSender, sendsToken: true},
	notifyv1.MatrixProvider:     {sender: matrixSender, sendsToken: true},
	notifyv1.RocketProvider:     {sender: rocketSender},
	notifyv1.MattermostProvider: {sender: mattermostSender},
	notifyv1.WebexProvider:      {sender: webexSender, sendsToken: true},
	notifyv1.LarkProvider:       {sender: larkSender},
	notifyv1.ZulipProvider:      {sender: zulipSender, sendsToken: true},
	notifyv1.GrafanaProvider:    {sender: grafanaSender, sendsToken: true},
	notifyv1.DatadogProvider:    {sender: datadogSender, sendsToken: true},
	notifyv1.SentryProvider:     {sender: sentrySender, sendsToken: true},

	// Git hosts: commit statuses, pull and merge request comments, dispatches
	// (provider_types_git.go).
	notifyv1.GiteaProvider:                     {sender: giteaSender, sendsToken: true, perObject: true},
	notifyv1.BitbucketProvider:                 {sender: bitbucketSender, sendsToken: true, perObject: true},
	notifyv1.BitbucketServerProvider:           {sender: bitbucketServerSender, sendsToken: true, perObject: true},
	notifyv1.AzureDevOpsProvider:               {sender: azureDevOpsSender, sendsToken: true, perObject: true},
	notifyv1.GitHubPullRequestCommentProvider:  {sender: githubCommentSender, sendsToken: true, githubApp: true, perObject: true},
	notifyv1.GitLabMergeRequestCommentProvider: {sender: gitlabCommentSender, sendsToken: true, perObject: true},
	notifyv1.GiteaPullRequestCommentProvider:   {sender: giteaCommentSender, sendsToken: true, perObject: true},
	notifyv1.GitHubDispatchProvider:            {sender: githubDispatchSender, sendsToken: true, githubApp: true},

	// Incidents, telemetry and buses (provider_incident.go).
	notifyv1.PagerDutyProvider:     {sender: pagerDutySender, sendsToken: true, perObject: true},
	notifyv1.OpsgenieProvider:      {sender: opsgenieSender, sendsToken: true, perObject: true},
	notifyv1.AlertmanagerProvider:  {sender: alertmanagerSender, sendsToken: true, perObject: true},
	notifyv1.OTelProvider:          {sender: otelSender, sendsToken: true},
	notifyv1.NATSProvider:          {sender: natsSender},
	notifyv1.GooglePubSubProvider:  {sender: pubSubSender},
	notifyv1.AzureEventHubProvider: {sender: eventHubSender, sendsToken: true},
}

// senderOf makes the Sender of a Provider's type.
func senderOf(c senderConfig) (notify.Sender, error) {
	t, ok := providerTypes[c.Provider.Spec.Type]
	if !ok {
		return nil, fmt.Errorf("unknown provider type %q", c.Provider.Spec.Type)
	}
	return t.sender(c)
}

// needAddress is the error of a type that has no address to send to.
func needAddress(c senderConfig, what string) error {
	if what == "" {
		return fmt.Errorf("%s needs an address", c.Provider.Spec.Type)
	}
	return fmt.Errorf("%s needs an address (%s)", c.Provider.Spec.Type, what)
}

func slackSender(c senderConfig) (notify.Sender, error) {
	spec := c.Provider.Spec
	if c.Token != "" {
		if spec.Channel == "" {
			return nil, errors.New("a Slack bot token needs spec.channel")
		}
		return &notify.Slack{Token: c.Token, Channel: spec.Channel, Username: spec.Username, Client: c.Client}, nil
	}
	if c.Address == "" {
		return nil, errors.New("slack needs an address (incoming webhook) or a token and a channel")
	}
	return &notify.Slack{WebhookURL: c.Address, Channel: spec.Channel, Username: spec.Username, Client: c.Client}, nil
}

func teamsSender(c senderConfig) (notify.Sender, error) {
	if c.Address == "" {
		return nil, needAddress(c, "incoming webhook or Workflows URL")
	}
	return &notify.Teams{URL: c.Address, Client: c.Client}, nil
}

func discordSender(c senderConfig) (notify.Sender, error) {
	if c.Address == "" {
		return nil, needAddress(c, "webhook URL")
	}
	return &notify.Discord{URL: c.Address, Username: c.Provider.Spec.Username, Client: c.Client}, nil
}

func commitStatusSender(c senderConfig) (notify.Sender, error) {
	typ := c.Provider.Spec.Type
	if err := needRepositoryAndToken(c); err != nil {
		return nil, err
	}
	return &notify.CommitStatus{GitLab: typ == notifyv1.GitLabProvider, Repository: c.Address, APIURL: c.APIURL,
		Token: c.Token, TokenSource: c.TokenSource, Client: c.Client, Text: c.Status}, nil
}

func webhookSender(c senderConfig) (notify.Sender, error) {
	if c.Address == "" {
		return nil, needAddress(c, "")
	}
	w := &notify.Webhook{URL: c.Address, Headers: c.Headers, Client: c.Client}
	if c.Provider.Spec.Type == notifyv1.GenericHMACProvider {
		if c.Token == "" {
			return nil, &secretError{"generic-hmac needs the Secret's token key (the HMAC key)"}
		}
		w.Key = []byte(c.Token)
	}
	return w, nil
}
