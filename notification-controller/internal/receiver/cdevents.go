package receiver

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// cdEventType is a CDEvent's type: dev.cdevents.<subject>.<predicate>.<semver> (dev.cdeventsx.
// for custom events of spec v0.5).
var cdEventType = regexp.MustCompile(`^dev\.cdeventsx?\.[A-Za-z0-9-]+\.[A-Za-z0-9]+\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?$`)

// specVersion is a CDEvents spec version (0.4.1, 0.5.0-draft).
var specVersion = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$`)

// cdEventTypeName is a CDEvent type without its version: dev.cdevents.change.merged.0.2.0 →
// dev.cdevents.change.merged. Other strings are returned as they are.
func cdEventTypeName(t string) string {
	parts := strings.Split(t, ".")
	if len(parts) < 7 || !cdEventType.MatchString(t) {
		return t
	}
	return strings.Join(parts[:4], ".")
}

// cdEvent is what a Receiver takes from a CDEvents call.
type cdEvent struct {
	// ceType is the CloudEvent's type (the ce-type header, or the envelope's type), else the
	// CDEvent's own: the event the events filter compares.
	ceType string
	// payload is the CDEvent, when it came inside a structured CloudEvent.
	payload []byte
}

// parseCDEvent reads a CDEvent sent as a CloudEvent over HTTP: in binary mode (the body is the
// CDEvent, ce-* headers carry the CloudEvent's attributes, as Flux and the CDEvents SDKs send
// it) or in structured mode (Content-Type application/cloudevents+json, the CDEvent in data).
// The CDEvent is checked against the context and subject every spec version requires.
func parseCDEvent(h http.Header, body []byte) (cdEvent, error) {
	ev := cdEvent{ceType: h.Get("Ce-Type")}
	if t, _, _ := mime.ParseMediaType(h.Get("Content-Type")); t == "application/cloudevents+json" {
		var ce struct {
			SpecVersion string          `json:"specversion"`
			Type        string          `json:"type"`
			Data        json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(body, &ce); err != nil || ce.SpecVersion == "" || ce.Type == "" {
			return ev, errors.New("not a structured CloudEvent (specversion, type and data)")
		}
		if len(ce.Data) == 0 {
			return ev, errors.New("a CloudEvent without data: no CDEvent in it")
		}
		ev.ceType, ev.payload, body = ce.Type, ce.Data, ce.Data
	}
	t, err := checkCDEvent(body)
	if err != nil {
		return ev, err
	}
	if ev.ceType == "" {
		ev.ceType = t
	}
	return ev, nil
}

// checkCDEvent checks a CDEvent's context (spec version, id, source, type, timestamp) and
// subject (id), and returns its type.
func checkCDEvent(body []byte) (string, error) {
	var ev struct {
		Context *struct {
			Version     string `json:"version"`     // spec v0.4 and before
			SpecVersion string `json:"specversion"` // spec v0.5
			ID          string `json:"id"`
			Source      string `json:"source"`
			Type        string `json:"type"`
			Timestamp   string `json:"timestamp"`
		} `json:"context"`
		Subject *struct {
			ID string `json:"id"`
		} `json:"subject"`
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		return "", errors.New("not a CDEvent: the body is not a JSON object")
	}
	c := ev.Context
	if c == nil {
		return "", errors.New("not a CDEvent: no context")
	}
	v := c.SpecVersion
	if v == "" {
		v = c.Version
	}
	var problems []string
	if !specVersion.MatchString(v) {
		problems = append(problems, "context.specversion (or version) is not a spec version")
	}
	if c.ID == "" {
		problems = append(problems, "context.id is empty")
	}
	if u, err := url.Parse(c.Source); c.Source == "" || err != nil || u == nil {
		problems = append(problems, "context.source is not a URI reference")
	}
	if !cdEventType.MatchString(c.Type) {
		problems = append(problems, fmt.Sprintf("context.type %q is not dev.cdevents.<subject>.<predicate>.<version>", c.Type))
	}
	if _, err := time.Parse(time.RFC3339Nano, c.Timestamp); err != nil {
		problems = append(problems, "context.timestamp is not an RFC 3339 time")
	}
	if ev.Subject == nil || ev.Subject.ID == "" {
		problems = append(problems, "subject.id is empty")
	}
	if len(problems) > 0 {
		return "", fmt.Errorf("not a valid CDEvent: %s", strings.Join(problems, "; "))
	}
	return c.Type, nil
}
