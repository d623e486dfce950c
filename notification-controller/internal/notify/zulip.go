package notify

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// Zulip sends a message to a channel's topic through a Zulip server's API (POST
// /api/v1/messages), as a bot: its email and API key are the basic auth of the request.
type Zulip struct {
	// Server is the Zulip server (https://example.zulipchat.com).
	Server string
	// Email and APIKey are the bot's.
	Email, APIKey string
	// Channel and Topic the message goes to.
	Channel, Topic string
	Client         *http.Client
}

// ParseZulipChannel reads a Provider's channel: <channel>/<topic>, as Flux writes it.
func ParseZulipChannel(channel string) (stream, topic string, err error) {
	stream, topic, ok := strings.Cut(channel, "/")
	if !ok || stream == "" || topic == "" {
		return "", "", fmt.Errorf("zulip needs spec.channel as <channel>/<topic>, got %q", channel)
	}
	return stream, topic, nil
}

// ZulipMessagesPath is the path of Zulip's send-message API.
const ZulipMessagesPath = "/api/v1/messages"

// Send implements Sender.
func (z *Zulip) Send(ctx context.Context, n Notification) error {
	endpoint := strings.TrimSuffix(z.Server, "/")
	if !strings.HasSuffix(endpoint, ZulipMessagesPath) {
		endpoint += ZulipMessagesPath
	}
	// Zulip takes up to 10000 bytes of content.
	form := url.Values{"type": {"stream"}, "to": {z.Channel}, "topic": {z.Topic}, "content": {markdownText(n, 6000)}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("address: %w", redactErr(err))
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(z.Email, z.APIKey)
	a, err := exchange(z.Client, req)
	if err != nil {
		return err
	}
	if !a.ok() {
		return a.err(0, z.APIKey)
	}
	return nil
}
