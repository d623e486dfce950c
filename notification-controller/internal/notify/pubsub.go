package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"cloud.google.com/go/auth"
	"cloud.google.com/go/auth/credentials"
	"cloud.google.com/go/pubsub/v2"
	"google.golang.org/api/option"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// GooglePubSub publishes the notification, as the JSON of Webhook, on a Google Cloud Pub/Sub
// topic with Google's client (cloud.google.com/go/pubsub/v2), authenticated with a service
// account key. One client per delivery: a Sender is dropped without being closed.
type GooglePubSub struct {
	Project, Topic string
	// CredentialsJSON is a service account key (JSON of type service_account); other types
	// (external accounts read files and URLs of their own) are refused.
	CredentialsJSON []byte
	// AccessToken, instead, is a Google access token (of a Provider's ServiceAccount, obtained
	// by the controller), used as it is.
	AccessToken string
	// Attributes of every message.
	Attributes map[string]string
	// Client fetches the key's access tokens (at its token_uri): the address policy applies.
	Client *http.Client
	// ClientOptions are added to the Pub/Sub client's (tests: pstest's connection, without
	// authentication).
	ClientOptions []option.ClientOption
}

// pubSubScope is the OAuth scope of publishing.
const pubSubScope = "https://www.googleapis.com/auth/pubsub"

// Send implements Sender.
func (g *GooglePubSub) Send(ctx context.Context, n Notification) error {
	body, err := json.Marshal(n)
	if err != nil {
		return err
	}
	opts := append([]option.ClientOption{}, g.ClientOptions...)
	if len(g.CredentialsJSON) > 0 {
		creds, err := serviceAccountCredentials(g.CredentialsJSON, httpClient(g.Client))
		if err != nil {
			return err
		}
		opts = append(opts, option.WithAuthCredentials(creds))
	}
	if g.AccessToken != "" {
		opts = append(opts, option.WithAuthCredentials(auth.NewCredentials(&auth.CredentialsOptions{TokenProvider: staticToken(g.AccessToken)})))
	}
	topic := "projects/" + g.Project + "/topics/" + g.Topic
	client, err := pubsub.NewClient(ctx, g.Project, opts...)
	if err != nil {
		return fmt.Errorf("google pub/sub: %w", err)
	}
	defer func() { _ = client.Close() }()
	publisher := client.Publisher(g.Topic)
	// The publisher retries within its own timeout, and Stop waits for it: the delivery's
	// deadline bounds both.
	publisher.PublishSettings.Timeout = 15 * time.Second
	if d, ok := ctx.Deadline(); ok {
		publisher.PublishSettings.Timeout = time.Until(d)
	}
	publisher.PublishSettings.CountThreshold = 1
	defer publisher.Stop()
	attrs := g.Attributes
	if len(attrs) == 0 {
		attrs = nil
	}
	if _, err := publisher.Publish(ctx, &pubsub.Message{Data: body, Attributes: attrs}).Get(ctx); err != nil {
		return pubSubError(topic, err)
	}
	return nil
}

// serviceAccountCredentials reads a service account key, and only that.
func serviceAccountCredentials(key []byte, c *http.Client) (*auth.Credentials, error) {
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(key, &head); err != nil || head.Type != "service_account" {
		return nil, errors.New("google pub/sub: the Secret's token is not a service account key (JSON with \"type\": \"service_account\")")
	}
	creds, err := credentials.NewCredentialsFromJSON(credentials.ServiceAccount, key, &credentials.DetectOptions{Scopes: []string{pubSubScope}, Client: c})
	if err != nil {
		return nil, fmt.Errorf("google pub/sub: the Secret's service account key: %w", err)
	}
	return creds, nil
}

// pubSubError classifies an answer of Pub/Sub: codes that may pass are retried.
func pubSubError(topic string, err error) error {
	st, ok := status.FromError(err)
	if !ok {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			return &RetryableError{Err: fmt.Errorf("google pub/sub topic %s: %w", topic, err)}
		}
		return fmt.Errorf("google pub/sub topic %s: %w", topic, err)
	}
	e := fmt.Errorf("google pub/sub topic %s: %s: %s", topic, st.Code(), st.Message())
	switch st.Code() {
	case codes.Unavailable, codes.ResourceExhausted, codes.DeadlineExceeded, codes.Aborted, codes.Internal, codes.Unknown:
		return &RetryableError{Err: e}
	}
	return e
}

// staticToken is an access token obtained elsewhere, as Google's client takes one.
type staticToken string

func (t staticToken) Token(context.Context) (*auth.Token, error) {
	return &auth.Token{Value: string(t), Type: "Bearer"}, nil
}
