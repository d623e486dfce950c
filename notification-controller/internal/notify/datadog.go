package notify

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// DatadogSite is Datadog's US1 site.
const DatadogSite = "https://api.datadoghq.com"

// Datadog posts an event to Datadog's events API (POST /api/v1/events) with an API key: the
// notification's title and Markdown text, Flux's tags (so monitors written for Flux's events
// match), alert type error or info, and the object as aggregation key, so that Datadog rolls
// up the events of one object.
type Datadog struct {
	// Site is the site's API (https://api.datadoghq.eu …): DatadogSite unless set.
	Site   string
	APIKey string
	Client *http.Client
}

type datadogEvent struct {
	Title          string   `json:"title"`
	Text           string   `json:"text"`
	Tags           []string `json:"tags"`
	AlertType      string   `json:"alert_type"`
	DateHappened   int64    `json:"date_happened"`
	SourceTypeName string   `json:"source_type_name"`
	AggregationKey string   `json:"aggregation_key"`
}

// Send implements Sender.
func (d *Datadog) Send(ctx context.Context, n Notification) error {
	site := d.Site
	if site == "" {
		site = DatadogSite
	}
	alert := "info"
	if failed(n) {
		alert = "error"
	}
	// Titles are at most 100 characters, text 4000, aggregation keys 100.
	ev := datadogEvent{
		Title: truncate(n.Title(), 99), Text: "%%%\n" + markdownText(n, 3000) + "\n%%%", Tags: datadogTags(n),
		AlertType: alert, DateHappened: when(n).Unix(), SourceTypeName: "fluxcd", AggregationKey: truncate(object(n), 99),
	}
	a, err := sendJSON(ctx, d.Client, http.MethodPost, strings.TrimSuffix(site, "/")+"/api/v1/events", map[string]string{"DD-API-KEY": d.APIKey}, ev)
	if err != nil {
		return err
	}
	if !a.ok() {
		// Datadog says when its rate limit resets, in seconds, instead of Retry-After.
		reset, _ := strconv.Atoi(a.header.Get("X-RateLimit-Reset"))
		return a.err(time.Duration(min(max(reset, 0), 600))*time.Second, d.APIKey)
	}
	return nil
}

// datadogTags are Flux's: the reporting controller, reason, kube_kind, kube_name,
// kube_namespace and the metadata as key:value, in lower case as Datadog keeps tags.
func datadogTags(n Notification) []string {
	tags := []string{
		"flux_reporting_controller:" + n.Controller, "flux_reason:" + n.Reason,
		"kube_kind:" + n.Kind, "kube_name:" + n.Name, "kube_namespace:" + n.Namespace,
	}
	for _, k := range sortedKeys(n.Metadata) {
		tags = append(tags, k+":"+n.Metadata[k])
	}
	for i := range tags {
		tags[i] = strings.ToLower(tags[i])
	}
	return tags
}
