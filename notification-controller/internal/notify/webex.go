package notify

import (
	"context"
	"net/http"
)

// WebexAPI is the Webex messages API.
const WebexAPI = "https://webexapis.com/v1/messages"

// Webex posts a message with a bot's token to a Webex room (space), in Markdown, with the
// plain text for clients that show no Markdown.
type Webex struct {
	// URL is the messages API: WebexAPI unless set.
	URL    string
	Token  string
	RoomID string
	Client *http.Client
}

type webexMessage struct {
	RoomID   string `json:"roomId"`
	Text     string `json:"text"`
	Markdown string `json:"markdown"`
}

// Send implements Sender.
func (w *Webex) Send(ctx context.Context, n Notification) error {
	address := w.URL
	if address == "" {
		address = WebexAPI
	}
	// Webex takes up to 7439 bytes of text or Markdown.
	return deliverJSON(ctx, w.Client, http.MethodPost, address, map[string]string{"Authorization": "Bearer " + w.Token},
		webexMessage{RoomID: w.RoomID, Text: plainText(n, 3000), Markdown: markdownText(n, 3000)}, w.Token)
}
