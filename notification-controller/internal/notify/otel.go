package notify

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.41.0"
	"go.opentelemetry.io/otel/trace"
)

// OTel sends each notification as a span over OTLP/HTTP with the OpenTelemetry SDK, in Flux's
// shape: the spans of an Alert and a revision share a trace (its ID is made from the Alert's
// UID and the revision; no span is another's parent, as in Flux), the service is the Alert
// (<namespace>/<name>), the span is named after the object and carries its kind, namespace,
// name, reason, revision and the Alert's eventMetadata as attributes, the message as an event,
// and the status Error for a failure. The span is exported before Send returns: an answer of
// the collector is the delivery's.
type OTel struct {
	// URL of the collector's traces endpoint (https://collector:4318/v1/traces; a URL with no
	// path gets /v1/traces).
	URL string
	// Token is sent as a bearer token; Username and Password as basic authentication; Headers
	// as they are (they win over both).
	Token, Username, Password string
	Headers                   map[string]string
	Client                    *http.Client
}

// Send implements Sender.
func (o *OTel) Send(ctx context.Context, n Notification) error {
	u, err := url.Parse(o.URL)
	if err != nil || u.Host == "" {
		return errors.New("otel: the address is not a URL")
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/traces"
	}
	headers := map[string]string{}
	switch {
	case o.Token != "":
		headers["Authorization"] = "Bearer " + o.Token
	case o.Username != "" || o.Password != "":
		headers["Authorization"] = "Basic " + base64.StdEncoding.EncodeToString([]byte(o.Username+":"+o.Password))
	}
	for k, v := range o.Headers {
		headers[k] = v
	}
	base := httpClient(o.Client)
	rec := &statusRecorder{next: base.Transport}
	if rec.next == nil {
		rec.next = http.DefaultTransport
	}
	// The options set everything the OTEL_EXPORTER_OTLP_* environment could: the controller's
	// own settings never reach a Provider's collector.
	exp, err := otlptracehttp.New(ctx,
		otlptracehttp.WithEndpointURL(u.String()),
		otlptracehttp.WithHeaders(headers),
		otlptracehttp.WithHTTPClient(&http.Client{Transport: rec, CheckRedirect: base.CheckRedirect}),
		otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: false}),
		otlptracehttp.WithCompression(otlptracehttp.GzipCompression),
	)
	if err != nil {
		return fmt.Errorf("otel: %w", err)
	}
	defer func() { _ = exp.Shutdown(context.Background()) }()
	spans := o.span(ctx, n)
	if err := exp.ExportSpans(ctx, spans); err != nil {
		return rec.classify(u.Host, err)
	}
	return nil
}

// span makes the notification's span with a tracer provider of its own, which only collects
// it: the export is Send's, so that its error is Send's.
func (o *OTel) span(ctx context.Context, n Notification) []sdktrace.ReadOnlySpan {
	alertNS, alertName, alertUID := alertIdentity(n)
	col := &collector{}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithSpanProcessor(col),
		sdktrace.WithResource(resource.NewWithAttributes(semconv.SchemaURL,
			semconv.ServiceName(alertNS+"/"+alertName),
			semconv.ServiceNamespace(alertNS),
			semconv.ServiceInstanceID(alertUID),
		)),
	)
	defer func() { _ = tp.Shutdown(context.Background()) }()
	sum := sha256.Sum256([]byte(alertUID + ":" + revisionOrUnknown(n.Revision)))
	var traceID trace.TraceID
	copy(traceID[:], sum[:16])
	parent := trace.ContextWithSpanContext(context.WithoutCancel(ctx),
		trace.NewSpanContext(trace.SpanContextConfig{TraceID: traceID, TraceFlags: trace.FlagsSampled, Remote: true}))
	attrs := []attribute.KeyValue{
		attribute.String("object.kind", n.Kind), attribute.String("object.namespace", n.Namespace),
		attribute.String("object.name", n.Name), attribute.String("event.reason", n.Reason),
		attribute.String("event.severity", n.Severity),
	}
	if n.Revision != "" {
		attrs = append(attrs, attribute.String("revision", n.Revision))
	}
	if n.Controller != "" {
		attrs = append(attrs, attribute.String("reporting.controller", n.Controller))
	}
	if n.Summary != "" {
		attrs = append(attrs, attribute.String("summary", n.Summary))
	}
	for _, k := range sortedKeys(n.Metadata) {
		attrs = append(attrs, attribute.String(k, n.Metadata[k]))
	}
	_, span := tp.Tracer("plumb.dev/notification-controller").Start(parent, n.Kind+": "+n.Namespace+"/"+n.Name,
		trace.WithTimestamp(n.Time), trace.WithAttributes(attrs...), trace.WithSpanKind(trace.SpanKindInternal))
	span.AddEvent(n.Reason, trace.WithTimestamp(n.Time), trace.WithAttributes(attribute.String("message", n.Message)))
	if n.Severity == "error" {
		span.SetStatus(codes.Error, truncate(n.Message, 1000))
	} else {
		span.SetStatus(codes.Ok, "")
	}
	span.End(trace.WithTimestamp(n.Time))
	return col.spans()
}

// alertIdentity is the namespace, name and UID of the Alert that sent n ("plumb" when none).
func alertIdentity(n Notification) (ns, name, uid string) {
	ns, name, uid = n.Namespace, "plumb", "plumb"
	md, _ := n.Alert["metadata"].(map[string]any)
	if s, ok := md["namespace"].(string); ok && s != "" {
		ns = s
	}
	if s, ok := md["name"].(string); ok && s != "" {
		name = s
	}
	if s, ok := md["uid"].(string); ok && s != "" {
		uid = s
	}
	return ns, name, uid
}

func revisionOrUnknown(rev string) string {
	if rev == "" {
		return "unknown"
	}
	return rev
}

// collector keeps the spans that end.
type collector struct {
	mu    sync.Mutex
	ended []sdktrace.ReadOnlySpan
}

func (c *collector) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (c *collector) OnEnd(s sdktrace.ReadOnlySpan) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ended = append(c.ended, s)
}
func (c *collector) Shutdown(context.Context) error   { return nil }
func (c *collector) ForceFlush(context.Context) error { return nil }
func (c *collector) spans() []sdktrace.ReadOnlySpan {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ended
}

// statusRecorder keeps the status and Retry-After of the last answer, and the transport error:
// the exporter's own errors hold the whole URL and the answer's body.
type statusRecorder struct {
	next       http.RoundTripper
	status     string
	code       int
	retryAfter string
	err        error
}

func (r *statusRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	r.err = err
	if resp != nil {
		r.code, r.status, r.retryAfter = resp.StatusCode, resp.Status, resp.Header.Get("Retry-After")
	}
	return resp, err
}

// classify turns an export error into the delivery's: 429 and 5xx retried (after Retry-After),
// other answers not; network errors retried unless the address policy refused.
func (r *statusRecorder) classify(host string, err error) error {
	switch {
	case r.err != nil && refused(r.err):
		return fmt.Errorf("otel: %w", redactErr(r.err))
	case r.err != nil:
		return &RetryableError{Err: fmt.Errorf("otel: %w", redactErr(r.err))}
	case r.code == http.StatusTooManyRequests || r.code >= 500:
		return &RetryableError{Err: fmt.Errorf("%s answered %s", host, r.status), RetryAfter: retryAfter(r.retryAfter)}
	case r.code >= 300:
		return fmt.Errorf("%s answered %s", host, r.status)
	}
	return &RetryableError{Err: fmt.Errorf("otel: %w", err)}
}
