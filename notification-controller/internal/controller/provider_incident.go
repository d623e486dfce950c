package controller

import (
	"errors"
	"fmt"
	"strings"

	"github.com/plumb-dev/plumb/notification-controller/internal/notify"
)

// The senders of incident services (pagerduty, opsgenie, alertmanager), telemetry (otel) and
// buses (nats, googlepubsub, azureeventhub).

func pagerDutySender(c senderConfig) (notify.Sender, error) {
	key := c.Token
	if key == "" {
		key = c.Provider.Spec.Channel
	}
	if key == "" {
		return nil, errors.New("pagerduty needs the routing key of the service's Events API v2 integration: spec.channel, or the Secret's token")
	}
	return &notify.PagerDuty{URL: c.Address, RoutingKey: key, Scope: string(c.Provider.UID), Client: c.Client}, nil
}

func opsgenieSender(c senderConfig) (notify.Sender, error) {
	if c.Token == "" {
		return nil, &secretError{"opsgenie needs the Secret's token (the API key of an API integration)"}
	}
	return &notify.Opsgenie{URL: c.Address, APIKey: c.Token, Scope: string(c.Provider.UID), Client: c.Client}, nil
}

func alertmanagerSender(c senderConfig) (notify.Sender, error) {
	if c.Address == "" {
		return nil, needAddress(c, "the alerts API, https://<alertmanager>/api/v2/alerts")
	}
	user, password := usernamePassword(c)
	return &notify.Alertmanager{URL: c.Address, Token: c.Token, Username: user, Password: password, Client: c.Client}, nil
}

func otelSender(c senderConfig) (notify.Sender, error) {
	if c.Address == "" {
		return nil, needAddress(c, "the collector's OTLP/HTTP traces endpoint")
	}
	user, password := usernamePassword(c)
	return &notify.OTel{URL: c.Address, Token: c.Token, Username: user, Password: password, Headers: c.Headers, Client: c.Client}, nil
}

func natsSender(c senderConfig) (notify.Sender, error) {
	if c.Address == "" {
		return nil, needAddress(c, "the server's nats:// or tls:// URL")
	}
	if c.Provider.Spec.Channel == "" {
		return nil, errors.New("nats needs the subject to publish on in spec.channel")
	}
	if err := direct(c, false); err != nil {
		return nil, err
	}
	user, password := usernamePassword(c)
	return &notify.NATS{URL: c.Address, Subject: c.Provider.Spec.Channel, Creds: c.Data["creds"], NKeySeed: c.Data["nkey"],
		Username: user, Password: password, Token: c.Token, TLS: c.TLS, AllowPlainText: c.AllowInsecure, Addresses: c.Addresses}, nil
}

func pubSubSender(c senderConfig) (notify.Sender, error) {
	spec := c.Provider.Spec
	if c.Address == "" || spec.Channel == "" {
		return nil, errors.New("googlepubsub needs the Google Cloud project ID in spec.address and the topic ID in spec.channel")
	}
	if strings.Contains(c.Address, "/") {
		return nil, errors.New("googlepubsub's address is the Google Cloud project ID, not a URL")
	}
	if c.Token == "" {
		return nil, &secretError{"googlepubsub needs the Secret's token (a service account key, JSON) or spec.serviceAccountName; Plumb does not publish with the controller's own identity"}
	}
	if err := direct(c, true); err != nil {
		return nil, err
	}
	if c.Provider.Spec.ServiceAccountName != "" {
		return &notify.GooglePubSub{Project: c.Address, Topic: spec.Channel, AccessToken: c.Token, Attributes: c.Headers, Client: c.Client}, nil
	}
	return &notify.GooglePubSub{Project: c.Address, Topic: spec.Channel, CredentialsJSON: []byte(c.Token), Attributes: c.Headers, Client: c.Client}, nil
}

func eventHubSender(c senderConfig) (notify.Sender, error) {
	if strings.Contains(c.Address, "Endpoint=") {
		return &notify.AzureEventHub{ConnectionString: c.Address, Client: c.Client}, nil
	}
	if c.Address == "" || c.Token == "" || c.Provider.Spec.Channel == "" {
		return nil, &secretError{"azureeventhub needs the Secret's address (a connection string with SharedAccessKeyName, SharedAccessKey and EntityPath), " +
			"or spec.address (the event hub), spec.channel (the namespace) and the Secret's token (a Microsoft Entra ID token) or spec.serviceAccountName"}
	}
	return &notify.AzureEventHub{Namespace: c.Provider.Spec.Channel, Hub: c.Address, Token: c.Token, Client: c.Client}, nil
}

// usernamePassword are the Secret's username (or spec.username) and password.
func usernamePassword(c senderConfig) (string, string) {
	user := string(c.Data["username"])
	if user == "" {
		user = c.Provider.Spec.Username
	}
	return user, string(c.Data["password"])
}

// direct refuses the proxies (and with noCerts certSecretRef) of a type that does not connect
// over the Provider's HTTP client, so that none is silently bypassed.
func direct(c senderConfig, noCerts bool) error {
	spec, typ := c.Provider.Spec, c.Provider.Spec.Type
	if spec.Proxy != "" || spec.ProxySecretRef != nil || len(c.Data["proxy"]) > 0 {
		return fmt.Errorf("%s connects to its server directly: spec.proxy, spec.proxySecretRef and the Secret's proxy do not apply to it", typ)
	}
	if noCerts && spec.CertSecretRef != nil {
		return fmt.Errorf("%s connects to Google's API, whose certificate the system's authorities check: spec.certSecretRef does not apply to it", typ)
	}
	return nil
}
