package notify

import (
	"context"
	"net/http"
)

// Mattermost posts to a Mattermost incoming webhook: one attachment (colour bar, title,
// message, facts as fields, the reporting controller as footer). Channel and Username
// override the webhook's, where the webhook allows it.
type Mattermost struct {
	URL      string
	Channel  string
	Username string
	Client   *http.Client
}

type mattermostMessage struct {
	Channel     string           `json:"channel,omitempty"`
	Username    string           `json:"username,omitempty"`
	Attachments []chatAttachment `json:"attachments"`
}

// Send implements Sender.
func (m *Mattermost) Send(ctx context.Context, n Notification) error {
	a := chatAttachmentOf(n)
	a.Fallback, a.Footer, a.TS = icon(n)+" "+n.Title(), n.Controller, when(n).Unix()
	return deliverJSON(ctx, m.Client, http.MethodPost, m.URL, nil, mattermostMessage{
		Channel: m.Channel, Username: m.Username, Attachments: []chatAttachment{a},
	})
}
