// Package notify turns Kubernetes events of Plumb objects into messages people read and delivers
// them: a generic JSON webhook (optionally HMAC-signed), Slack (incoming webhook, or a bot token
// and a channel, with slack-go), Microsoft Teams (an Adaptive Card) and Discord (an embed). It
// is free of controller-runtime.
package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/slack-go/slack"
)

// Notification is one event of one object, ready to send.
type Notification struct {
	// Kind, Namespace and Name of the object the event is about.
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Severity is info or error.
	Severity string `json:"severity"`
	Reason   string `json:"reason"`
	Message  string `json:"message"`
	// Revision the event is about, when the controller said (plumb.dev/revision).
	Revision string `json:"revision,omitempty"`
	// Controller that reported the event.
	Controller string `json:"reportingController,omitempty"`
	// Summary and Metadata come from the Alert.
	Summary  string            `json:"summary,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
	Time     time.Time         `json:"timestamp"`
	// APIVersion of the object the event is about, and the Alert that sent it (as unstructured
	// content): for a Provider's commitStatusExpr, not sent.
	APIVersion string         `json:"-"`
	Alert      map[string]any `json:"-"`
	// Recovers, on the success that ends a failure the Alert sent, holds the reasons of the
	// failures sent: incident services (PagerDuty, Opsgenie, Alertmanager) close what those
	// opened. Empty on other notifications. Not sent.
	Recovers []string `json:"-"`
}

// Recovery says whether the notification ends a failure that was sent.
func (n Notification) Recovery() bool { return len(n.Recovers) > 0 }

// ShortRevision keeps a revision readable: main@sha1:1a2b3c4d5e6f (12 digits of the digest).
func ShortRevision(rev string) string {
	i := strings.LastIndex(rev, ":")
	if i < 0 || len(rev)-i-1 <= 12 {
		return rev
	}
	return rev[:i+13]
}

// Title is the one-line heading of a notification: "Kustomization/shop/api: ReconciliationSucceeded".
func (n Notification) Title() string {
	return fmt.Sprintf("%s/%s/%s: %s", n.Kind, n.Namespace, n.Name, n.Reason)
}

// Sender delivers notifications.
type Sender interface {
	Send(ctx context.Context, n Notification) error
}

// RetryableError is a delivery failure worth retrying (a network error, 5xx, 429), after
// RetryAfter when the service said.
type RetryableError struct {
	Err        error
	RetryAfter time.Duration
}

func (e *RetryableError) Error() string { return e.Err.Error() }
func (e *RetryableError) Unwrap() error { return e.Err }

// Webhook posts the notification as JSON; with Key set it signs the body as
// X-Signature: sha256=<hex HMAC>.
type Webhook struct {
	URL     string
	Key     []byte
	Headers map[string]string
	Client  *http.Client
}

// Send implements Sender.
func (w *Webhook) Send(ctx context.Context, n Notification) error {
	body, err := json.Marshal(n)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook address: %w", redactErr(err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "plumb-notification-controller")
	for k, v := range w.Headers {
		req.Header.Set(k, v)
	}
	if len(w.Key) > 0 {
		m := hmac.New(sha256.New, w.Key)
		m.Write(body)
		req.Header.Set("X-Signature", "sha256="+hex.EncodeToString(m.Sum(nil)))
	}
	return do(w.Client, req)
}

// do sends a request and classifies the answer.
func do(c *http.Client, req *http.Request) error {
	resp, err := httpClient(c).Do(req)
	if err != nil {
		if refused(err) {
			return redactErr(err)
		}
		return &RetryableError{Err: redactErr(err)}
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return &RetryableError{Err: fmt.Errorf("%s answered %s", req.URL.Host, resp.Status), RetryAfter: retryAfter(resp.Header.Get("Retry-After"))}
	default:
		return fmt.Errorf("%s answered %s", req.URL.Host, resp.Status)
	}
}

// retryAfter reads a Retry-After header given in seconds (dates are treated as absent).
func retryAfter(v string) time.Duration {
	s, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || s < 0 {
		return 0
	}
	return time.Duration(min(s, 600)) * time.Second
}

// redactErr keeps a URL's path and query (which often hold a token, as Slack's webhooks do)
// out of an error: only the host stays.
func redactErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		host := "the address"
		if u, perr := url.Parse(ue.URL); perr == nil && u.Host != "" {
			host = u.Host
		}
		return fmt.Errorf("%s %s: %w", ue.Op, host, ue.Err)
	}
	return err
}

// Slack posts to an incoming webhook URL, or with Token to Channel through the Web API (APIURL
// overrides Slack's address, for tests).
type Slack struct {
	WebhookURL string
	Token      string
	Channel    string
	Username   string
	APIURL     string
	Client     *http.Client
}

// Send implements Sender.
func (s *Slack) Send(ctx context.Context, n Notification) error {
	blocks := slackBlocks(n)
	var err error
	if s.Token != "" {
		opts := []slack.Option{slack.OptionHTTPClient(httpClient(s.Client))}
		if s.APIURL != "" {
			opts = append(opts, slack.OptionAPIURL(s.APIURL))
		}
		_, _, err = slack.New(s.Token, opts...).PostMessageContext(ctx, s.Channel,
			slack.MsgOptionText(n.Title(), false), slack.MsgOptionBlocks(blocks.BlockSet...), slack.MsgOptionUsername(s.Username))
	} else {
		err = slack.PostWebhookCustomHTTPContext(ctx, s.WebhookURL, httpClient(s.Client), &slack.WebhookMessage{
			Username: s.Username, Channel: s.Channel, Text: n.Title(), Blocks: &blocks,
		})
	}
	if err == nil {
		return nil
	}
	var rl *slack.RateLimitedError
	if errors.As(err, &rl) {
		return &RetryableError{Err: errors.New("slack: rate limited"), RetryAfter: rl.RetryAfter}
	}
	var sc slack.StatusCodeError
	if errors.As(err, &sc) && sc.Code < 500 {
		return fmt.Errorf("slack answered %d %s", sc.Code, sc.Status)
	}
	if refused(err) {
		return fmt.Errorf("slack: %w", redactErr(err))
	}
	return &RetryableError{Err: fmt.Errorf("slack: %w", redactErr(err))}
}

// defaultClient, for senders made without a Client, follows redirects only within a host and
// scheme: the credentials a sender adds (headers, tokens) never reach another server. It has no
// address policy: the controller gives every sender a client of its AddressPolicy.
var defaultClient = &http.Client{CheckRedirect: sameHost}

func sameHost(req *http.Request, via []*http.Request) error {
	if len(via) >= 5 {
		return errors.New("stopped after 5 redirects")
	}
	if req.URL.Host != via[0].URL.Host || req.URL.Scheme != via[0].URL.Scheme {
		return fmt.Errorf("refused a redirect to another server (%s)", req.URL.Host)
	}
	return nil
}

func httpClient(c *http.Client) *http.Client {
	if c == nil {
		return defaultClient
	}
	return c
}

// slackBlocks lays a notification out for Slack: a header, the message, then the facts.
func slackBlocks(n Notification) slack.Blocks {
	icon := ":white_check_mark:"
	if n.Severity == "error" {
		icon = ":x:"
	}
	header := slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType,
		fmt.Sprintf("%s *%s/%s/%s* — %s", icon, n.Kind, n.Namespace, n.Name, n.Reason), false, false), nil, nil)
	msg := slack.NewSectionBlock(slack.NewTextBlockObject(slack.PlainTextType, truncate(n.Message, 2900), false, false), nil, nil)
	var facts []*slack.TextBlockObject
	if n.Revision != "" {
		facts = append(facts, slack.NewTextBlockObject(slack.MarkdownType, "*revision*\n`"+ShortRevision(n.Revision)+"`", false, false))
	}
	if n.Summary != "" {
		facts = append(facts, slack.NewTextBlockObject(slack.MarkdownType, "*summary*\n"+n.Summary, false, false))
	}
	for _, k := range sortedKeys(n.Metadata) {
		if len(facts) == 10 {
			break
		}
		facts = append(facts, slack.NewTextBlockObject(slack.MarkdownType, "*"+k+"*\n"+n.Metadata[k], false, false))
	}
	bs := []slack.Block{header, msg}
	if len(facts) > 0 {
		bs = append(bs, slack.NewSectionBlock(nil, facts, nil))
	}
	return slack.Blocks{BlockSet: bs}
}

// truncate cuts s to at most n bytes and marks the cut with "…", never inside a UTF-8 character
// (a cut character would reach the destination as U+FFFD, or be refused).
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
