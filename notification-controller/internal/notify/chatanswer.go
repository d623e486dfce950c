package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// answer is what a service said to one request: its status, headers and the start of its body
// (the services of this package explain a refusal in a small JSON document).
type answer struct {
	status int
	host   string
	header http.Header
	body   []byte
	// secrets are the parts of the request's URL that may be credentials.
	secrets []string
}

// ok reports a 2xx answer.
func (a *answer) ok() bool { return a.status >= 200 && a.status < 300 }

// err is the error of an answer that is not 2xx: retryable for 429 and 5xx, after wait when
// the service said in its body (else after its Retry-After header), and naming what the
// service said was wrong (with the URL's credentials and the secrets given scrubbed out,
// should it echo one).
func (a *answer) err(wait time.Duration, secrets ...string) error {
	msg := fmt.Sprintf("%s answered %d %s", a.host, a.status, http.StatusText(a.status))
	if why := a.says(secrets...); why != "" {
		msg += ": " + why
	}
	if a.status == http.StatusTooManyRequests || a.status >= 500 {
		if wait <= 0 {
			wait = retryAfter(a.header.Get("Retry-After"))
		}
		return &RetryableError{Err: fmt.Errorf("%s", msg), RetryAfter: min(wait, 10*time.Minute)}
	}
	return fmt.Errorf("%s", msg)
}

// exchange sends a request and reads the answer. Not reaching the service is retryable,
// unless the address policy refused it; the error names the host only.
func exchange(c *http.Client, req *http.Request) (*answer, error) {
	req.Header.Set("User-Agent", "plumb-notification-controller")
	resp, err := httpClient(c).Do(req)
	if err != nil {
		if refused(err) {
			return nil, redactErr(err)
		}
		return nil, &RetryableError{Err: redactErr(err)}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return &answer{status: resp.StatusCode, host: req.URL.Host, header: resp.Header, body: body, secrets: urlSecrets(req.URL)}, nil
}

// says is what the service said, scrubbed of the URL's credentials and the secrets given.
func (a *answer) says(secrets ...string) string {
	return scrub(serviceSays(a.body), append(secrets, a.secrets...)...)
}

// urlSecrets are the parts of a URL that may be credentials: its user and password, query
// values of 8 characters or more (Google Chat's key and token) and path segments of 16 or more
// (the IDs and tokens of webhooks, a Telegram bot's token).
func urlSecrets(u *url.URL) []string {
	var out []string
	if u.User != nil {
		p, _ := u.User.Password()
		out = append(out, u.User.Username(), p)
	}
	for _, vs := range u.Query() {
		for _, v := range vs {
			if len(v) >= 8 {
				out = append(out, v)
			}
		}
	}
	for _, seg := range strings.Split(u.Path, "/") {
		if len(seg) >= 16 {
			out = append(out, seg)
		}
	}
	return out
}

// sendJSON sends payload as JSON with method to address, with the headers given, and returns
// the answer whatever its status.
func sendJSON(ctx context.Context, c *http.Client, method, address string, headers map[string]string, payload any) (*answer, error) {
	body, err := json.Marshal(payload)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, method, address, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("address: %w", redactErr(err))
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	return exchange(c, req)
}

// deliverJSON is sendJSON where any 2xx answer is a delivery.
func deliverJSON(ctx context.Context, c *http.Client, method, address string, headers map[string]string, payload any, secrets ...string) error {
	a, err := sendJSON(ctx, c, method, address, headers, payload)
	if err != nil {
		return err
	}
	if !a.ok() {
		return a.err(0, secrets...)
	}
	return nil
}

// serviceSays is the explanation in a service's JSON answer, in the field each service uses:
// Telegram's description, Matrix's errcode and error, Zulip's and Lark's msg, Google's
// error.message, Webex's and Mattermost's message, Datadog's errors. At most 300 bytes.
func serviceSays(body []byte) string {
	var doc map[string]any
	if json.Unmarshal(body, &doc) != nil {
		return ""
	}
	var parts []string
	add := func(v any) {
		if s, ok := v.(string); ok && s != "" {
			parts = append(parts, s)
		}
	}
	add(doc["errcode"])
	switch e := doc["error"].(type) {
	case string:
		add(e)
	case map[string]any:
		add(e["status"])
		add(e["message"])
	}
	add(doc["description"])
	add(doc["msg"])
	add(doc["message"])
	if es, ok := doc["errors"].([]any); ok {
		for _, e := range es {
			add(e)
		}
	}
	return truncate(strings.Join(parts, ": "), 300)
}

// scrub replaces every secret given in s.
func scrub(s string, secrets ...string) string {
	for _, secret := range secrets {
		if secret != "" {
			s = strings.ReplaceAll(s, secret, "<redacted>")
		}
	}
	return s
}
