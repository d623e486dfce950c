package notify

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/getsentry/sentry-go"
)

// Sentry sends a notification to a Sentry project, as Flux does: an error is an error event
// (an issue, grouped per object and reason), info a transaction (a trace in Performance),
// both tagged with the object and the reporting controller. The event ID is the
// notification's digest, so a retried delivery shows once.
//
// sentry-go gives the DSN and the event's model; the envelope is posted here, with the
// Provider's client, because sentry-go's transports keep a delivery's outcome to themselves
// (and its synchronous one drops events while rate limited) and a delivery's failure must be
// retried and shown on the Provider.
type Sentry struct {
	dsn         *sentry.Dsn
	environment string
	client      *http.Client
}

// NewSentry reads a DSN (https://<key>@<host>/<project>); environment (a Provider's channel)
// is the events' environment. The error never holds the DSN.
func NewSentry(dsn, environment string, client *http.Client) (*Sentry, error) {
	d, err := sentry.NewDsn(dsn)
	if err != nil {
		why := "it is not a URL"
		var pe *sentry.DsnParseError
		if errors.As(err, &pe) && !strings.HasPrefix(pe.Message, "invalid url") {
			why = pe.Message
		}
		return nil, fmt.Errorf("the Sentry DSN is not valid: %s (want https://<key>@<host>/<project>)", why)
	}
	return &Sentry{dsn: d, environment: environment, client: client}, nil
}

// Send implements Sender.
func (s *Sentry) Send(ctx context.Context, n Notification) error {
	ev := sentryEvent(n, s.environment)
	payload, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	itemType := "event"
	if ev.Type == "transaction" {
		itemType = "transaction"
	}
	var body bytes.Buffer
	enc := json.NewEncoder(&body) // Encode ends each line with '\n', as envelopes want.
	_ = enc.Encode(map[string]any{"event_id": ev.EventID, "sent_at": time.Now().UTC().Format(time.RFC3339Nano)})
	_ = enc.Encode(map[string]any{"type": itemType, "length": len(payload)})
	body.Write(payload)
	body.WriteByte('\n')

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.dsn.GetAPIURL().String(), &body)
	if err != nil {
		return fmt.Errorf("sentry address: %w", redactErr(err))
	}
	auth := "Sentry sentry_version=7, sentry_client=plumb-notification-controller/1, sentry_key=" + s.dsn.GetPublicKey()
	if secret := s.dsn.GetSecretKey(); secret != "" {
		auth += ", sentry_secret=" + secret
	}
	req.Header.Set("Content-Type", "application/x-sentry-envelope")
	req.Header.Set("X-Sentry-Auth", auth)
	a, err := exchange(s.client, req)
	if err != nil {
		return err
	}
	if !a.ok() {
		return a.err(0, s.dsn.GetPublicKey(), s.dsn.GetSecretKey())
	}
	return nil
}

// sentryEvent is the Sentry event of a notification: an error event for an error, else a
// transaction, with Flux's tags plus the metadata.
func sentryEvent(n Notification, environment string) *sentry.Event {
	id := notificationID(n)
	t := when(n).UTC()
	tags := map[string]string{
		"flux_involved_object_kind":      n.Kind,
		"flux_involved_object_namespace": n.Namespace,
		"flux_involved_object_name":      n.Name,
		"flux_reporting_controller":      n.Controller,
		"flux_reason":                    n.Reason,
	}
	for k, v := range n.Metadata {
		tags[k] = v
	}
	details := sentry.Context{}
	for _, f := range factsOf(n) {
		details[f.Label] = f.Value
	}
	ev := &sentry.Event{
		EventID: sentry.EventID(id[:32]), Timestamp: t, Platform: "other", Environment: environment,
		Logger: n.Controller, Message: truncate(n.Message, 8000), Transaction: object(n), Tags: tags,
		Contexts: map[string]sentry.Context{"plumb": details},
		Sdk:      sentry.SdkInfo{Name: "plumb.notification-controller", Version: "1"},
	}
	if failed(n) {
		ev.Level = sentry.LevelError
		// One issue per object and reason, however many times it fails.
		ev.Fingerprint = []string{"plumb", n.Kind, n.Namespace, n.Name, n.Reason}
		return ev
	}
	var trace sentry.TraceID
	var span sentry.SpanID
	raw, _ := hex.DecodeString(id)
	copy(trace[:], raw[:16])
	copy(span[:], raw[16:24])
	ev.Type, ev.StartTime = "transaction", t
	ev.Contexts["trace"] = sentry.TraceContext{TraceID: trace, SpanID: span, Op: "plumb.event", Description: n.Title(), Status: sentry.SpanStatusOK}.Map()
	return ev
}
