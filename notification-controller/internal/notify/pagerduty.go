package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/PagerDuty/go-pagerduty"
)

// PagerDutyEventsAPI is PagerDuty's Events API v2.
const PagerDutyEventsAPI = "https://events.pagerduty.com"

// PagerDuty sends Events API v2 events with go-pagerduty: a failure triggers an incident, its
// recovery resolves it, both under one dedup_key per object (and Provider). Successes that end
// no failure are not sent: there is nothing to page or resolve.
type PagerDuty struct {
	// URL of the Events API; its scheme and host are used (default PagerDutyEventsAPI).
	URL string
	// RoutingKey is the integration key of the service or event orchestration.
	RoutingKey string
	// Scope keeps the incidents of two Providers apart (their UID).
	Scope  string
	Client *http.Client
}

// Send implements Sender.
func (p *PagerDuty) Send(ctx context.Context, n Notification) error {
	ev := pagerduty.V2Event{RoutingKey: p.RoutingKey, DedupKey: incidentKey(p.Scope, n, 255), Client: "Plumb"}
	switch {
	case n.Recovery():
		ev.Action = "resolve"
	case n.Severity == "error":
		ev.Action = "trigger"
		ev.Payload = &pagerduty.V2Payload{
			Summary:   incidentSummary(n, 1024),
			Source:    "plumb " + n.Controller,
			Severity:  "error",
			Timestamp: n.Time.UTC().Format(time.RFC3339),
			Component: n.Name,
			Group:     n.Kind,
			Class:     n.Reason,
			Details:   pagerDutyDetails(n),
		}
	default:
		return nil
	}
	endpoint := PagerDutyEventsAPI
	if p.URL != "" {
		u, err := url.Parse(p.URL)
		if err != nil || u.Host == "" {
			return errors.New("pagerduty: the address is not a URL")
		}
		endpoint = u.Scheme + "://" + u.Host
	}
	rec := &recordingClient{c: httpClient(p.Client)}
	client := pagerduty.NewClient("", pagerduty.WithV2EventsAPIEndpoint(endpoint))
	client.HTTPClient = rec
	_, err := client.ManageEventWithContext(ctx, &ev)
	if err == nil {
		return nil
	}
	if rec.err != nil {
		if refused(rec.err) {
			return fmt.Errorf("pagerduty: %w", redactErr(rec.err))
		}
		return &RetryableError{Err: fmt.Errorf("pagerduty: %w", redactErr(rec.err))}
	}
	var ae pagerduty.APIError
	if !errors.As(err, &ae) {
		return fmt.Errorf("pagerduty: %w", err)
	}
	msg := fmt.Errorf("%s answered %d%s", rec.host, ae.StatusCode, rec.explained())
	if ae.StatusCode == http.StatusTooManyRequests || ae.StatusCode == http.StatusRequestTimeout || ae.StatusCode >= 500 {
		return &RetryableError{Err: msg, RetryAfter: rec.retryAfter}
	}
	return msg
}

// pagerDutyDetails are an incident's custom details: the message and the facts.
func pagerDutyDetails(n Notification) map[string]any {
	d := map[string]any{"message": n.Message}
	for k, v := range incidentDetails(n) {
		d[k] = v
	}
	return d
}

// recordingClient keeps what go-pagerduty does not pass on: the transport error itself (an
// address refusal is not retried), the host, Retry-After, and the Events API's own error
// object (go-pagerduty reads errors in the REST API's shape).
type recordingClient struct {
	c          *http.Client
	err        error
	host       string
	retryAfter time.Duration
	apiErr     pagerduty.EventsAPIV2ErrorObject
}

func (r *recordingClient) Do(req *http.Request) (*http.Response, error) {
	r.host = req.URL.Host
	resp, err := r.c.Do(req)
	r.err = err
	if err != nil || resp.StatusCode < 300 {
		return resp, err
	}
	r.retryAfter = retryAfter(resp.Header.Get("Retry-After"))
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	_ = json.Unmarshal(body, &r.apiErr)
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

// explained is the Events API's reason for an error answer, as ": <message> (<first error>)".
func (r *recordingClient) explained() string {
	e := r.apiErr
	if e.Message == "" {
		return ""
	}
	s := ": " + truncate(e.Message, 200)
	if len(e.Errors) > 0 {
		s += " (" + truncate(e.Errors[0], 200) + ")"
	}
	return s
}
