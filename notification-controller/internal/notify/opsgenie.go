package notify

import (
	"context"
	"net/http"
	"net/url"
	"strings"
)

// OpsgenieAlertsAPI is Opsgenie's Alert API (api.eu.opsgenie.com in the EU instance).
const OpsgenieAlertsAPI = "https://api.opsgenie.com/v2/alerts"

// Opsgenie creates an alert on a failure and closes it on its recovery, both under one alias
// per object (and Provider), through the Alert API with GenieKey authentication. Successes
// that end no failure are not sent. There is no Go client kept up for Opsgenie: the requests
// are the documented JSON.
type Opsgenie struct {
	// URL of the Alert API (default OpsgenieAlertsAPI).
	URL string
	// APIKey is the API integration's key.
	APIKey string
	// Scope keeps the alerts of two Providers apart (their UID).
	Scope  string
	Client *http.Client
}

// Send implements Sender.
func (o *Opsgenie) Send(ctx context.Context, n Notification) error {
	api := strings.TrimSuffix(o.URL, "/")
	if api == "" {
		api = OpsgenieAlertsAPI
	}
	alias := incidentKey(o.Scope, n, 512)
	auth := map[string]string{"Authorization": "GenieKey " + o.APIKey}
	switch {
	case n.Recovery():
		// POST /v2/alerts/{alias}/close?identifierType=alias
		endpoint := api + "/" + url.PathEscape(alias) + "/close?identifierType=alias"
		return requestJSON(ctx, o.Client, http.MethodPost, endpoint, auth, map[string]any{
			"source": "plumb", "note": truncate(n.Title()+": "+n.Message, 25000),
		})
	case n.Severity == "error":
		return requestJSON(ctx, o.Client, http.MethodPost, api, auth, map[string]any{
			"message":     truncate(n.Title(), 130),
			"alias":       alias,
			"description": truncate(opsgenieDescription(n), 15000),
			"details":     incidentDetails(n),
			"entity":      n.Kind + "/" + n.Namespace + "/" + n.Name,
			"source":      "plumb " + n.Controller,
			"tags":        []string{"plumb", n.Kind},
		})
	}
	return nil
}

// opsgenieDescription is the message, the revision and the Alert's summary.
func opsgenieDescription(n Notification) string {
	d := n.Message
	if n.Revision != "" {
		d += "\n\nrevision: " + n.Revision
	}
	if n.Summary != "" {
		d += "\nsummary: " + n.Summary
	}
	return d
}
