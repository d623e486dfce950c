package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// restAPI calls a Git host's REST API: JSON in and out, the host's credential on every request,
// and answers classified as the dispatcher retries them (a network error, 429 and 5xx are
// retried, after Retry-After when the host says; GitHub's rate limits answer 403 and are
// retried too). Errors name the host, the status and the host's own message, never the
// credential.
type restAPI struct {
	client *http.Client
	// auth sets the credential on a request.
	auth func(*http.Request)
	// secrets are the credentials, cut out of any message the host echoes.
	secrets []string
}

// maxPages bounds how many pages of a list are read when looking for something.
const maxPages = 10

// call sends in (when not nil) as JSON and decodes the answer into out (when not nil). The
// answer's headers are returned for pagination.
func (a restAPI) call(ctx context.Context, method, endpoint string, in, out any) (http.Header, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, endpoint, body)
	if err != nil {
		return nil, fmt.Errorf("API address: %w", redactErr(err))
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "plumb-notification-controller")
	if a.auth != nil {
		a.auth(req)
	}
	resp, err := httpClient(a.client).Do(req)
	if err != nil {
		if refused(err) {
			return nil, redactErr(err)
		}
		return nil, &RetryableError{Err: redactErr(err)}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, &RetryableError{Err: fmt.Errorf("reading the answer of %s: %w", req.URL.Host, err)}
	}
	if err := a.answerError(req, resp, raw); err != nil {
		return nil, err
	}
	if out != nil && len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return nil, fmt.Errorf("%s answered %s %s with JSON that is not what its API documents: %w", req.URL.Host, method, req.URL.Path, err)
		}
	}
	return resp.Header, nil
}

// answerError classifies an answer that is not a success.
func (a restAPI) answerError(req *http.Request, resp *http.Response, raw []byte) error {
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	err := fmt.Errorf("%s answered %s", req.URL.Host, resp.Status)
	if msg := a.hostMessage(raw); msg != "" {
		err = fmt.Errorf("%s answered %s: %s", req.URL.Host, resp.Status, msg)
	}
	return classified(resp.StatusCode, resp.Header, err)
}

// classified is the error of a failed answer as the dispatcher retries it: 429 and 5xx after
// Retry-After, a 403 of a rate limit at its reset; others are not retried.
func classified(status int, h http.Header, err error) error {
	switch {
	case status == http.StatusTooManyRequests || status >= 500:
		return &RetryableError{Err: err, RetryAfter: retryAfter(h.Get("Retry-After"))}
	case status == http.StatusForbidden && rateLimited(h):
		return &RetryableError{Err: err, RetryAfter: rateLimitWait(h, time.Now())}
	}
	return err
}

// rateLimited says whether a 403 is GitHub's rate limit rather than a refusal: GitHub answers
// its primary limit with x-ratelimit-remaining: 0 and its secondary limits with Retry-After.
func rateLimited(h http.Header) bool {
	return h.Get("Retry-After") != "" || h.Get("X-RateLimit-Remaining") == "0"
}

// rateLimitWait is how long GitHub asks to wait: Retry-After, else until x-ratelimit-reset
// (seconds since the epoch), at most 10 minutes.
func rateLimitWait(h http.Header, now time.Time) time.Duration {
	if d := retryAfter(h.Get("Retry-After")); d > 0 {
		return d
	}
	reset, err := strconv.ParseInt(h.Get("X-RateLimit-Reset"), 10, 64)
	if err != nil {
		return 0
	}
	return min(max(time.Unix(reset, 0).Sub(now), 0), 10*time.Minute)
}

// hostMessage is the message a Git host put in its error answer (GitHub's, Gitea's and Azure
// DevOps's `message`, GitLab's `message` or `error`, Bitbucket's `error.message`, Bitbucket
// Server's `errors[].message`), on one line, short, without the credential.
func (a restAPI) hostMessage(raw []byte) string {
	var body struct {
		Message any `json:"message"`
		Error   any `json:"error"`
		Errors  []struct {
			Message string `json:"message"`
		} `json:"errors"`
	}
	if json.Unmarshal(raw, &body) != nil {
		return ""
	}
	var msg string
	switch m := body.Message.(type) {
	case string:
		msg = m
	case nil:
	default: // GitLab answers validation errors as an object of fields
		b, _ := json.Marshal(m)
		msg = string(b)
	}
	if msg == "" {
		switch e := body.Error.(type) {
		case string:
			msg = e
		case map[string]any:
			msg, _ = e["message"].(string)
		}
	}
	if msg == "" && len(body.Errors) > 0 {
		msg = body.Errors[0].Message
	}
	for _, s := range a.secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "***")
		}
	}
	return clip(strings.Join(strings.Fields(msg), " "), 200)
}

// nextPage is the URL of the next page of a list, from the Link header GitHub, GitLab and
// Gitea send, or "".
func nextPage(h http.Header) string {
	for _, link := range strings.Split(h.Get("Link"), ",") {
		target, params, ok := strings.Cut(link, ";")
		if !ok || !strings.Contains(params, `rel="next"`) {
			continue
		}
		return strings.Trim(strings.TrimSpace(target), "<>")
	}
	return ""
}

// findInPages reads a JSON list page by page, following the Link header, until match finds an
// item; it reads at most maxPages pages, and no page on another server.
func findInPages[T any](ctx context.Context, api restAPI, first string, match func(T) bool) (T, bool, error) {
	var zero T
	for page, next := 0, first; next != "" && page < maxPages; page++ {
		var items []T
		h, err := api.call(ctx, http.MethodGet, next, nil, &items)
		if err != nil {
			return zero, false, err
		}
		for _, it := range items {
			if match(it) {
				return it, true, nil
			}
		}
		if next = nextPage(h); next != "" && !sameAPI(first, next) {
			return zero, false, fmt.Errorf("the next page is on another server (%s)", redactURL(next))
		}
	}
	return zero, false, nil
}

// redactURL is a URL's scheme and host only.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "an unreadable URL"
	}
	return u.Scheme + "://" + u.Host
}

// sameAPI reports whether a next-page link stays on the API first called: a host that links
// elsewhere gets no credential.
func sameAPI(first, next string) bool {
	a, err1 := url.Parse(first)
	b, err2 := url.Parse(next)
	return err1 == nil && err2 == nil && a.Scheme == b.Scheme && a.Host == b.Host
}

// StatusText names and describes a commit status: a Provider's commitStatusExpr and
// commitStatusDescriptionExpr, each nil for the default.
type StatusText struct {
	Name        func(ctx context.Context, n Notification) (string, error)
	Description func(ctx context.Context, n Notification) (string, error)
}

// of is a notification's status name (default <kind>/<namespace>/<name>) and description
// (default <reason>: <message>), at most 130 characters.
func (t StatusText) of(ctx context.Context, n Notification) (name, desc string, err error) {
	name = fmt.Sprintf("%s/%s/%s", n.Kind, n.Namespace, n.Name)
	desc = n.Reason + ": " + n.Message
	if t.Name != nil {
		if name, err = t.Name(ctx, n); err != nil {
			return "", "", fmt.Errorf("commitStatusExpr: %w", err)
		}
		if strings.TrimSpace(name) == "" {
			return "", "", fmt.Errorf("commitStatusExpr returned an empty name for %s/%s/%s", n.Kind, n.Namespace, n.Name)
		}
	}
	if t.Description != nil {
		if desc, err = t.Description(ctx, n); err != nil {
			return "", "", fmt.Errorf("commitStatusDescriptionExpr: %w", err)
		}
	}
	return name, clip(desc, 130), nil
}

// clip cuts s to at most n characters (not bytes), marking the cut with an ellipsis.
func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// repoPath is the path of a repository's web URL without slashes around it and without .git:
// "org/app" of https://github.com/org/app.git.
func repoPath(u *url.URL) string {
	return strings.TrimSuffix(strings.Trim(u.Path, "/"), ".git")
}

// parseRepository reads a repository's web URL: the URL and the segments of its path.
func parseRepository(typ, repository string) (*url.URL, []string, error) {
	u, err := url.Parse(repository)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, nil, fmt.Errorf("%s repository address %q is not an http(s) URL", typ, repository)
	}
	p := repoPath(u)
	if p == "" {
		return nil, nil, fmt.Errorf("%s repository address %s has no repository in its path", typ, u.Redacted())
	}
	segs := strings.Split(p, "/")
	if slices.Contains(segs, "") {
		return nil, nil, fmt.Errorf("%s repository address %s has an empty segment (//) in its path", typ, u.Redacted())
	}
	return u, segs, nil
}

// ownerRepo reads a repository's web URL of the form <base>/<owner>/<repository>: the base
// (scheme, host and any path before the owner), the owner and the repository.
func ownerRepo(typ, repository string) (base *url.URL, owner, repo string, err error) {
	u, segs, err := parseRepository(typ, repository)
	if err != nil {
		return nil, "", "", err
	}
	if len(segs) < 2 {
		return nil, "", "", fmt.Errorf("%s repository address %s is not <host>/<owner>/<repository>", typ, u.Redacted())
	}
	b := *u
	b.Path, b.RawPath, b.RawQuery, b.Fragment, b.User = "/"+strings.Join(segs[:len(segs)-2], "/"), "", "", "", nil
	b.Path = strings.TrimSuffix(b.Path, "/")
	return &b, segs[len(segs)-2], segs[len(segs)-1], nil
}

// FluxEvent is a notification in the shape of Flux's events (event.toolkit.fluxcd.io/v1beta1
// Event), as commit status expressions see it and githubdispatch sends it: the revision is in
// metadata, as Flux's controllers put it, with the Alert's eventMetadata.
func FluxEvent(n Notification) map[string]any {
	md := map[string]any{}
	for k, v := range n.Metadata {
		md[k] = v
	}
	if n.Revision != "" {
		md["revision"] = n.Revision
	}
	return map[string]any{
		"involvedObject": map[string]any{
			"apiVersion": n.APIVersion, "kind": n.Kind, "namespace": n.Namespace, "name": n.Name,
		},
		"severity":            n.Severity,
		"reason":              n.Reason,
		"message":             n.Message,
		"metadata":            md,
		"reportingController": n.Controller,
		"timestamp":           n.Time.UTC().Format(time.RFC3339),
	}
}
