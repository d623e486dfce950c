package notify

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Matrix sends an m.notice (the message type of bots) to a room through the client-server API
// of a homeserver, as plain text and as HTML. The transaction ID is the notification's
// digest, so a retried delivery shows once.
type Matrix struct {
	// Homeserver is the homeserver's base URL (https://matrix.example.org).
	Homeserver string
	// Token is an access token of the bot's account.
	Token string
	// RoomID is the room's ID (!abc123:example.org), which the bot has joined.
	RoomID string
	Client *http.Client
}

type matrixMessage struct {
	MsgType       string `json:"msgtype"`
	Body          string `json:"body"`
	Format        string `json:"format"`
	FormattedBody string `json:"formatted_body"`
}

// Send implements Sender.
func (m *Matrix) Send(ctx context.Context, n Notification) error {
	txn := "plumb-" + notificationID(n)[:32]
	endpoint := strings.TrimSuffix(m.Homeserver, "/") + "/_matrix/client/v3/rooms/" + url.PathEscape(m.RoomID) + "/send/m.room.message/" + txn
	msg := matrixMessage{MsgType: "m.notice", Body: plainText(n, 3000), Format: "org.matrix.custom.html",
		FormattedBody: strings.Join(htmlLines(n, 3000), "<br>")}
	a, err := sendJSON(ctx, m.Client, http.MethodPut, endpoint, map[string]string{"Authorization": "Bearer " + m.Token}, msg)
	if err != nil {
		return err
	}
	if !a.ok() {
		// M_LIMIT_EXCEEDED says how long to wait in its body.
		var e struct {
			RetryAfterMs int64 `json:"retry_after_ms"`
		}
		_ = json.Unmarshal(a.body, &e)
		return a.err(time.Duration(e.RetryAfterMs)*time.Millisecond, m.Token)
	}
	return nil
}
