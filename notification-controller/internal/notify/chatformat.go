package notify

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html"
	"strings"
	"time"
)

// This file lays a notification out for the chat and observability services that take text:
// one heading, the message, then the facts, in each service's markup.

// fact is one labelled value under a notification's message.
type fact struct{ Label, Value string }

// factsOf are a notification's facts, in order: the short revision, the Alert's summary, then
// its metadata by key.
func factsOf(n Notification) []fact {
	var fs []fact
	if n.Revision != "" {
		fs = append(fs, fact{"revision", ShortRevision(n.Revision)})
	}
	if n.Summary != "" {
		fs = append(fs, fact{"summary", n.Summary})
	}
	for _, k := range sortedKeys(n.Metadata) {
		fs = append(fs, fact{k, n.Metadata[k]})
	}
	return fs
}

// failed reports whether a notification is about a failure.
func failed(n Notification) bool { return n.Severity == "error" }

// icon is the notification's mark: ✅ for info, ❌ for an error, as Slack's blocks have it.
func icon(n Notification) string {
	if failed(n) {
		return "❌"
	}
	return "✅"
}

// object names the notification's object: Kustomization/shop/api.
func object(n Notification) string {
	return n.Kind + "/" + n.Namespace + "/" + n.Name
}

// markdownText lays a notification out in the Markdown that Webex, Zulip and Mattermost
// render: a bold heading, the message, then one line per fact.
func markdownText(n Notification, maxMessage int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s **%s** — %s\n%s\n", icon(n), object(n), n.Reason, truncate(n.Message, maxMessage))
	for _, f := range factsOf(n) {
		if f.Label == "revision" {
			fmt.Fprintf(&b, "\n**%s**: `%s`", f.Label, f.Value)
			continue
		}
		fmt.Fprintf(&b, "\n**%s**: %s", f.Label, f.Value)
	}
	return strings.TrimRight(b.String(), "\n")
}

// plainText lays a notification out without markup.
func plainText(n Notification, maxMessage int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s — %s\n%s", icon(n), object(n), n.Reason, truncate(n.Message, maxMessage))
	for _, f := range factsOf(n) {
		fmt.Fprintf(&b, "\n%s: %s", f.Label, f.Value)
	}
	return b.String()
}

// htmlLines lays a notification out as lines of escaped HTML (<b>, <code>), for Telegram
// (which breaks lines at newlines) and Matrix (at <br>).
func htmlLines(n Notification, maxMessage int) []string {
	lines := []string{fmt.Sprintf("%s <b>%s</b> — %s", icon(n), html.EscapeString(object(n)), html.EscapeString(n.Reason))}
	lines = append(lines, strings.Split(html.EscapeString(truncate(n.Message, maxMessage)), "\n")...)
	for _, f := range factsOf(n) {
		v := html.EscapeString(f.Value)
		if f.Label == "revision" {
			v = "<code>" + v + "</code>"
		}
		lines = append(lines, fmt.Sprintf("<b>%s</b>: %s", html.EscapeString(f.Label), v))
	}
	return lines
}

// when is the time of a notification, or now when the event had none.
func when(n Notification) time.Time {
	if n.Time.IsZero() {
		return time.Now()
	}
	return n.Time
}

// notificationID is a digest of the whole notification (hex, 64 digits): the same for every
// attempt to deliver it, so that services which deduplicate by a client's key (Matrix's
// transaction ID, Sentry's event ID) show a retried delivery once.
func notificationID(n Notification) string {
	b, _ := json.Marshal(n)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
