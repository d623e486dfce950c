package notify

import (
	"context"
	"encoding/base64"
	"net/http"
	"strings"
)

// GrafanaAnnotationsPath is the path of Grafana's annotations API.
const GrafanaAnnotationsPath = "/api/annotations"

// Grafana adds an annotation to Grafana (POST /api/annotations) at the time of the event,
// tagged so that a dashboard's annotation query can pick it: plumb and flux (the tag of Flux's
// annotations, so dashboards made for Flux show them), the reporting controller, the object's
// kind, name and namespace, the reason and severity, and the metadata.
type Grafana struct {
	// URL is Grafana's annotations API (https://grafana.example.com/api/annotations), or
	// Grafana's base URL, to which the API's path is added.
	URL string
	// Token is a service account token; else Username and Password are basic auth; else none.
	Token              string
	Username, Password string
	Client             *http.Client
}

type grafanaAnnotation struct {
	Time int64    `json:"time"`
	Tags []string `json:"tags"`
	Text string   `json:"text"`
}

// Send implements Sender.
func (g *Grafana) Send(ctx context.Context, n Notification) error {
	endpoint := strings.TrimSuffix(g.URL, "/")
	if !strings.HasSuffix(endpoint, GrafanaAnnotationsPath) {
		endpoint += GrafanaAnnotationsPath
	}
	headers := map[string]string{}
	switch {
	case g.Token != "":
		headers["Authorization"] = "Bearer " + g.Token
	case g.Username != "" || g.Password != "":
		headers["Authorization"] = "Basic " + base64.StdEncoding.EncodeToString([]byte(g.Username+":"+g.Password))
	}
	return deliverJSON(ctx, g.Client, http.MethodPost, endpoint, headers,
		grafanaAnnotation{Time: when(n).UnixMilli(), Tags: grafanaTags(n), Text: plainText(n, 3000)}, g.Token, g.Password)
}

// grafanaTags are Flux's tags ("key: value", with ':' in keys and values written '|'), plus
// plumb, reason and severity.
func grafanaTags(n Notification) []string {
	tag := func(k, v string) string {
		return strings.ReplaceAll(k, ":", "|") + ": " + strings.ReplaceAll(v, ":", "|")
	}
	tags := []string{"plumb", "flux"}
	if n.Controller != "" {
		tags = append(tags, n.Controller)
	}
	tags = append(tags, tag("kind", n.Kind), tag("name", n.Name), tag("namespace", n.Namespace),
		tag("reason", n.Reason), tag("severity", n.Severity))
	for _, k := range sortedKeys(n.Metadata) {
		tags = append(tags, tag(k, n.Metadata[k]))
	}
	return tags
}
