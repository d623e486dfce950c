package notify

import (
	"context"
	"encoding/base64"
	"net/http"
	"regexp"
	"time"
)

// Alertmanager posts alerts to Prometheus Alertmanager's API (POST /api/v2/alerts, the
// documented JSON of its postableAlerts; its Go client models would bring the go-openapi
// stack for four fields). A failure fires an alert named by the object and the reason; the
// recovery posts the same alerts (one per failure reason sent) with endsAt, which resolves
// them. Successes that end no failure are not sent.
type Alertmanager struct {
	// URL of the alerts API, e.g. https://alertmanager.monitoring:9093/api/v2/alerts.
	URL string
	// Token is sent as a bearer token; Username and Password as basic authentication.
	Token, Username, Password string
	Client                    *http.Client
}

// amAlert is one of Alertmanager's postableAlerts.
type amAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations,omitempty"`
	StartsAt    string            `json:"startsAt,omitempty"`
	EndsAt      string            `json:"endsAt,omitempty"`
}

// Send implements Sender.
func (a *Alertmanager) Send(ctx context.Context, n Notification) error {
	at := n.Time.UTC().Format(time.RFC3339Nano)
	var alerts []amAlert
	switch {
	case n.Recovery():
		for _, reason := range n.Recovers {
			alerts = append(alerts, amAlert{Labels: alertmanagerLabels(n, reason), Annotations: alertmanagerAnnotations(n), StartsAt: at, EndsAt: at})
		}
	case n.Severity == "error":
		// No endsAt: the alert fires until its recovery is posted (or Alertmanager's
		// resolve_timeout passes without news, as for any client that sets none).
		alerts = append(alerts, amAlert{Labels: alertmanagerLabels(n, n.Reason), Annotations: alertmanagerAnnotations(n), StartsAt: at})
	default:
		return nil
	}
	headers := map[string]string{}
	switch {
	case a.Token != "":
		headers["Authorization"] = "Bearer " + a.Token
	case a.Username != "" || a.Password != "":
		headers["Authorization"] = "Basic " + base64.StdEncoding.EncodeToString([]byte(a.Username+":"+a.Password))
	}
	return requestJSON(ctx, a.Client, http.MethodPost, a.URL, headers, alerts)
}

// notLabelChar is what Alertmanager refuses in a label name.
var notLabelChar = regexp.MustCompile(`[^a-zA-Z0-9_]`)

// alertmanagerLabels name an alert: the Alert's eventMetadata (keys made label names), then
// alertname (Plumb<Kind><Reason>), severity (error: only failures fire), reason, kind,
// namespace, name and reportingcontroller, which metadata cannot override. A failure and its
// recovery have the same labels, so the recovery resolves the alert the failure fired.
func alertmanagerLabels(n Notification, reason string) map[string]string {
	l := map[string]string{}
	for k, v := range n.Metadata {
		k = notLabelChar.ReplaceAllString(k, "_")
		if k != "" && (k[0] < '0' || k[0] > '9') && v != "" {
			l[k] = v
		}
	}
	l["alertname"] = "Plumb" + n.Kind + reason
	l["severity"] = "error"
	l["reason"] = reason
	l["kind"], l["namespace"], l["name"] = n.Kind, n.Namespace, n.Name
	if n.Controller != "" {
		l["reportingcontroller"] = n.Controller
	}
	return l
}

// alertmanagerAnnotations describe an alert: message, revision, summary.
func alertmanagerAnnotations(n Notification) map[string]string {
	a := map[string]string{"message": n.Message}
	if n.Revision != "" {
		a["revision"] = n.Revision
	}
	if n.Summary != "" {
		a["summary"] = n.Summary
	}
	return a
}
