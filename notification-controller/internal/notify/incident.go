package notify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// incidentKey names the incident of an object, the same for its failure and its recovery:
// PagerDuty's dedup_key, Opsgenie's alias. scope (the Provider's UID) keeps apart the objects of
// two clusters (two Providers) that share a name and a service. A key longer than max is
// hashed.
func incidentKey(scope string, n Notification, max int) string {
	key := "plumb/" + scope + "/" + n.Kind + "/" + n.Namespace + "/" + n.Name
	if len(key) <= max {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	return "plumb/" + hex.EncodeToString(sum[:])
}

// incidentSummary is the one line an incident is filed under: the object, the reason and the
// first line of the message.
func incidentSummary(n Notification, max int) string {
	msg, _, _ := strings.Cut(n.Message, "\n")
	s := n.Title()
	if msg != "" {
		s += " — " + msg
	}
	return truncate(s, max)
}

// incidentDetails are the facts of a notification, as incident services show them.
func incidentDetails(n Notification) map[string]string {
	d := map[string]string{}
	for k, v := range n.Metadata {
		d[k] = v
	}
	d["kind"], d["namespace"], d["name"], d["reason"], d["severity"] = n.Kind, n.Namespace, n.Name, n.Reason, n.Severity
	if n.Revision != "" {
		d["revision"] = n.Revision
	}
	if n.Summary != "" {
		d["summary"] = n.Summary
	}
	if n.Controller != "" {
		d["reportingController"] = n.Controller
	}
	return d
}

// requestJSON sends payload as JSON with the headers given, and classifies the answer as do does.
func requestJSON(ctx context.Context, c *http.Client, method, url string, headers map[string]string, payload any) error {
	body, err := json.Marshal(payload)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("address: %w", redactErr(err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "plumb-notification-controller")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	return do(c, req)
}
