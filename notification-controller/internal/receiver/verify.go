// Package receiver checks incoming webhook calls as each kind of caller signs them, and says
// whether a call asks for a reconcile. It is free of controller-runtime.
package receiver

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1" // some callers sign with HMAC-SHA1, which stays sound as a MAC
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"slices"
	"strings"
)

// Errors, to be told apart with errors.Is: ErrUnauthorized answers 401, ErrBadRequest 400,
// ErrNotReady (the Receiver lacks what its type needs) 503.
var (
	ErrUnauthorized = errors.New("unauthorized")
	ErrBadRequest   = errors.New("bad request")
	ErrNotReady     = errors.New("receiver not ready")
)

// CallerError is a refusal whose message the caller may read: it says what the caller must
// change (a generic-oidc validation's message), never what the controller holds.
type CallerError struct {
	Err     error
	Message string
}

func (e *CallerError) Error() string { return e.Err.Error() + ": " + e.Message }
func (e *CallerError) Unwrap() error { return e.Err }

// Call is what a caller sent.
type Call struct {
	Header http.Header
	Body   []byte
}

// Result says what to do with a verified call.
type Result struct {
	// Event is the caller's event name, when it sends one.
	Event string
	// Trigger is false for pings and events outside the filter.
	Trigger bool
	// Payload is what resource filters see as `req` when it is not the call's body: gcr's
	// registry notification (inside the Pub/Sub message), a CDEvent inside a structured
	// CloudEvent. Always JSON.
	Payload []byte
	// Claims are a generic-oidc token's verified claims, the filters' `claims`.
	Claims map[string]any
}

// eventless are the types that name no event: their Receivers' events filter is ignored, as
// Flux does.
var eventless = map[string]bool{"generic": true, "generic-hmac": true, "generic-oidc": true}

// filter applies a Receiver's events filter (empty accepts all) to a verified call.
func filter(kind string, events []string, r Result) Result {
	r.Trigger = len(events) == 0 || eventless[kind] ||
		slices.ContainsFunc(events, func(e string) bool { return eventMatches(kind, e, r.Event) })
	return r
}

// eventMatches says whether a name of a Receiver's events filter names the call's event,
// without case. A CDEvent's type ends with its version (dev.cdevents.change.merged.0.2.0): a
// name without it matches every version.
func eventMatches(kind, name, event string) bool {
	if strings.EqualFold(name, event) {
		return true
	}
	return kind == "cdevents" && strings.EqualFold(name, cdEventTypeName(event))
}

// Verify authenticates a call of a receiver type that needs no more than the token (every type
// but gcr and generic-oidc, see Tokens.Check), and applies the events filter.
func Verify(kind, token string, events []string, c Call) (Result, error) {
	var event string
	var payload []byte
	switch kind {
	case "generic":
	case "generic-hmac":
		if err := checkPrefixedHMAC(token, c.Header.Get("X-Signature"), c.Body); err != nil {
			return Result{}, err
		}
	case "github":
		if err := checkPrefixedHMAC(token, c.Header.Get("X-Hub-Signature-256"), c.Body); err != nil {
			return Result{}, err
		}
		event = c.Header.Get("X-GitHub-Event")
		if event == "ping" {
			return Result{Event: event}, nil
		}
	case "gitlab":
		if !equal(c.Header.Get("X-Gitlab-Token"), token) {
			return Result{}, fmt.Errorf("%w: X-Gitlab-Token does not match", ErrUnauthorized)
		}
		event = c.Header.Get("X-Gitlab-Event")
	case "gitea":
		if !checkHMAC(sha256.New, token, c.Header.Get("X-Gitea-Signature"), c.Body) {
			return Result{}, fmt.Errorf("%w: X-Gitea-Signature does not match", ErrUnauthorized)
		}
		event = c.Header.Get("X-Gitea-Event")
	case "bitbucket":
		event = c.Header.Get("X-Event-Key")
		if event == "diagnostics:ping" {
			return Result{Event: event}, nil
		}
		if err := checkPrefixedHMAC(token, c.Header.Get("X-Hub-Signature"), c.Body); err != nil {
			return Result{}, err
		}
	case "harbor":
		if !equal(c.Header.Get("Authorization"), token) {
			return Result{}, fmt.Errorf("%w: Authorization does not match", ErrUnauthorized)
		}
		var p struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(c.Body, &p); err != nil || p.Type == "" {
			return Result{}, fmt.Errorf("%w: not a Harbor event", ErrBadRequest)
		}
		event = p.Type
	case "dockerhub":
		var p struct {
			PushData *struct {
				Tag string `json:"tag"`
			} `json:"push_data"`
			Repository *struct {
				RepoName string `json:"repo_name"`
			} `json:"repository"`
		}
		if err := json.Unmarshal(c.Body, &p); err != nil || p.PushData == nil || p.Repository == nil || p.Repository.RepoName == "" {
			return Result{}, fmt.Errorf("%w: not a Docker Hub push", ErrBadRequest)
		}
		event = "push"
	case "quay":
		var p struct {
			DockerURL   string   `json:"docker_url"`
			UpdatedTags []string `json:"updated_tags"`
		}
		if err := json.Unmarshal(c.Body, &p); err != nil || p.DockerURL == "" {
			return Result{}, fmt.Errorf("%w: not a Quay repository push", ErrBadRequest)
		}
		event = "push"
	case "nexus":
		if !checkNexusHMAC(token, c.Header.Get("X-Nexus-Webhook-Signature"), c.Body) {
			return Result{}, fmt.Errorf("%w: X-Nexus-Webhook-Signature does not match", ErrUnauthorized)
		}
		// Repository events (rm:repository:component, rm:repository:asset, rm:global:repository)
		// say what happened in action; audit events do not concern a Receiver.
		var p struct {
			Action string `json:"action"`
		}
		if err := json.Unmarshal(c.Body, &p); err != nil || p.Action == "" {
			return Result{}, fmt.Errorf("%w: not a Nexus repository event", ErrBadRequest)
		}
		event = p.Action
	case "acr":
		var p struct {
			Action string `json:"action"`
			Target *struct {
				Repository string `json:"repository"`
			} `json:"target"`
		}
		if err := json.Unmarshal(c.Body, &p); err != nil || p.Action == "" {
			return Result{}, fmt.Errorf("%w: not an Azure Container Registry event", ErrBadRequest)
		}
		event = p.Action
		// The portal's Ping sends action ping: answered, not acted on.
		if event == "ping" {
			return Result{Event: event}, nil
		}
		if p.Target == nil || p.Target.Repository == "" {
			return Result{}, fmt.Errorf("%w: an Azure Container Registry %s event without target.repository", ErrBadRequest, event)
		}
	case "cdevents":
		ev, err := parseCDEvent(c.Header, c.Body)
		if err != nil {
			return Result{}, fmt.Errorf("%w: %v", ErrBadRequest, err)
		}
		event, payload = ev.ceType, ev.payload
	default:
		return Result{}, fmt.Errorf("%w: unknown receiver type %q", ErrBadRequest, kind)
	}
	return filter(kind, events, Result{Event: event, Payload: payload}), nil
}

// checkNexusHMAC checks Nexus's hex HMAC-SHA1. Nexus signs its JSON without whitespace: a body
// that reached us indented (through a proxy that reformats, say) is checked compacted too.
func checkNexusHMAC(token, sig string, body []byte) bool {
	if checkHMAC(sha1.New, token, sig, body) {
		return true
	}
	var compact bytes.Buffer
	if json.Compact(&compact, body) != nil || bytes.Equal(compact.Bytes(), body) {
		return false
	}
	return checkHMAC(sha1.New, token, sig, compact.Bytes())
}

// checkPrefixedHMAC checks a signature "<alg>=<hex HMAC of body>" (sha1, sha256 or sha512).
func checkPrefixedHMAC(token, sig string, body []byte) error {
	alg, mac, ok := strings.Cut(sig, "=")
	if !ok {
		return fmt.Errorf("%w: signature missing or not <algorithm>=<hex>", ErrUnauthorized)
	}
	var h func() hash.Hash
	switch strings.ToLower(alg) {
	case "sha1":
		h = sha1.New
	case "sha256":
		h = sha256.New
	case "sha512":
		h = sha512.New
	default:
		return fmt.Errorf("%w: signature algorithm %q not supported", ErrUnauthorized, alg)
	}
	if !checkHMAC(h, token, mac, body) {
		return fmt.Errorf("%w: signature does not match", ErrUnauthorized)
	}
	return nil
}

// checkHMAC compares, in constant time, a hex HMAC with the one of body keyed by token.
func checkHMAC(h func() hash.Hash, token, hexMAC string, body []byte) bool {
	got, err := hex.DecodeString(hexMAC)
	if err != nil || token == "" {
		return false
	}
	m := hmac.New(h, []byte(token))
	m.Write(body)
	return hmac.Equal(got, m.Sum(nil))
}

// equal compares two secrets in constant time; an empty token never matches.
func equal(got, want string) bool {
	return want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// Path is the webhook path of a Receiver: /hook/<hex sha256 of token, name and namespace>.
func Path(token, name, namespace string) string {
	sum := sha256.Sum256([]byte(token + name + namespace))
	return "/hook/" + hex.EncodeToString(sum[:])
}
