package notify

import (
	"context"
	"net/http"
)

// Rocket posts to a Rocket.Chat incoming webhook: one attachment (colour bar, title, message,
// facts as fields). Username is sent as the message's alias, Channel overrides the webhook's
// channel.
type Rocket struct {
	URL      string
	Channel  string
	Username string
	Client   *http.Client
}

type rocketMessage struct {
	Alias       string           `json:"alias,omitempty"`
	Channel     string           `json:"channel,omitempty"`
	Text        string           `json:"text"`
	Attachments []chatAttachment `json:"attachments"`
}

// Send implements Sender.
func (r *Rocket) Send(ctx context.Context, n Notification) error {
	return deliverJSON(ctx, r.Client, http.MethodPost, r.URL, nil, rocketMessage{
		Alias: r.Username, Channel: r.Channel, Attachments: []chatAttachment{chatAttachmentOf(n)},
	})
}
