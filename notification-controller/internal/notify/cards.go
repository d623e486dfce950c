package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
)

// Teams posts an Adaptive Card to a Microsoft Teams incoming webhook or Workflows URL.
type Teams struct {
	URL    string
	Client *http.Client
}

// teamsMaxMessage bounds the card's message: Teams refuses a webhook message over 28 KB, and a
// failed apply can list hundreds of objects.
const teamsMaxMessage = 4000

// Send implements Sender.
func (t *Teams) Send(ctx context.Context, n Notification) error {
	return postJSON(ctx, t.Client, t.URL, teamsMessage(n))
}

// teamsMessage is the message Teams' incoming webhooks and Workflows' "When a Teams webhook
// request is received" take: one attachment, the Adaptive Card.
func teamsMessage(n Notification) map[string]any {
	return map[string]any{
		"type":        "message",
		"attachments": []any{map[string]any{"contentType": "application/vnd.microsoft.card.adaptive", "content": teamsCard(n)}},
	}
}

// teamsCard is an Adaptive Card of version 1.4 (all that the card uses is in 1.0): the title,
// red for errors, the message, and the revision, summary and metadata as facts when there are any.
func teamsCard(n Notification) map[string]any {
	color := "Good"
	if n.Severity == "error" {
		color = "Attention"
	}
	body := []any{
		map[string]any{"type": "TextBlock", "text": n.Title(), "weight": "Bolder", "size": "Medium", "color": color, "wrap": true},
		map[string]any{"type": "TextBlock", "text": truncate(n.Message, teamsMaxMessage), "wrap": true},
	}
	facts := []map[string]string{}
	if n.Revision != "" {
		facts = append(facts, map[string]string{"title": "revision", "value": ShortRevision(n.Revision)})
	}
	if n.Summary != "" {
		facts = append(facts, map[string]string{"title": "summary", "value": n.Summary})
	}
	for _, k := range sortedKeys(n.Metadata) {
		facts = append(facts, map[string]string{"title": k, "value": n.Metadata[k]})
	}
	if len(facts) > 0 {
		body = append(body, map[string]any{"type": "FactSet", "facts": facts})
	}
	return map[string]any{
		"$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
		"type":    "AdaptiveCard",
		"version": "1.4",
		"body":    body,
	}
}

// Discord posts an embed to a Discord webhook.
type Discord struct {
	URL      string
	Username string
	Client   *http.Client
}

// Send implements Sender.
func (d *Discord) Send(ctx context.Context, n Notification) error {
	color := 0x2eb886
	if n.Severity == "error" {
		color = 0xd50000
	}
	fields := []map[string]any{}
	if n.Revision != "" {
		fields = append(fields, map[string]any{"name": "revision", "value": "`" + ShortRevision(n.Revision) + "`", "inline": true})
	}
	if n.Summary != "" {
		fields = append(fields, map[string]any{"name": "summary", "value": n.Summary, "inline": true})
	}
	for _, k := range sortedKeys(n.Metadata) {
		fields = append(fields, map[string]any{"name": k, "value": n.Metadata[k], "inline": true})
	}
	return postJSON(ctx, d.Client, d.URL, map[string]any{
		"username": d.Username,
		"embeds": []any{map[string]any{
			"title": n.Title(), "description": truncate(n.Message, 4000), "color": color,
			"fields": fields, "timestamp": n.Time.Format("2006-01-02T15:04:05Z07:00"),
		}},
	})
}

func postJSON(ctx context.Context, c *http.Client, url string, payload any) error {
	body, err := json.Marshal(payload)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook address: %w", redactErr(err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "plumb-notification-controller")
	return do(c, req)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
