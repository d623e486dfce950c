package bucket

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"cloud.google.com/go/storage"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"

	"github.com/plumb-dev/plumb/shared/proxy"
)

// GCSEndpoint is Google Cloud Storage's own host, used when GCSOptions.Endpoint is empty.
const GCSEndpoint = "storage.googleapis.com"

// GCSOptions say how to reach a Google Cloud Storage bucket.
type GCSOptions struct {
	// Endpoint is host or host:port, without a scheme; empty is storage.googleapis.com.
	Endpoint string
	// Insecure uses plain HTTP (an emulator).
	Insecure bool
	// Bucket is the bucket's name.
	Bucket string
	// ServiceAccountJSON is a service account key (the `serviceaccount` key of secretRef).
	ServiceAccountJSON []byte
	// TokenSource, when ServiceAccountJSON is empty, gives the access tokens (the workload
	// identity); with neither the bucket is read anonymously.
	TokenSource oauth2.TokenSource
	// TLS, when set, is the TLS configuration (CA, client certificate).
	TLS *tls.Config
	// Proxy, when set, carries every connection.
	Proxy *proxy.Proxy
}

// gcsStore is a Google Cloud Storage bucket, read with its JSON API.
type gcsStore struct {
	bucket *storage.BucketHandle
	where  string
}

// NewGCS checks the options and returns a client of a Google Cloud Storage bucket; it makes
// no request (the service account's token is asked for with the first one).
func NewGCS(ctx context.Context, o GCSOptions) (*Client, error) {
	endpoint := o.Endpoint
	if endpoint == "" {
		endpoint = GCSEndpoint
	}
	if strings.Contains(endpoint, "://") || strings.Contains(endpoint, "/") {
		return nil, fmt.Errorf("%w: endpoint %q must be a host or host:port, without scheme or path (set insecure for plain HTTP)", ErrInvalid, endpoint)
	}
	where := fmt.Sprintf("bucket %s at %s", o.Bucket, endpoint)
	base := Transport(o.TLS, o.Proxy)
	var tr http.RoundTripper = base
	ts := o.TokenSource
	if len(o.ServiceAccountJSON) > 0 {
		// The token exchange goes through the same transport (deadlines, proxy).
		tctx := context.WithValue(context.Background(), oauth2.HTTPClient, &http.Client{Transport: base})
		creds, err := google.CredentialsFromJSONWithType(tctx, o.ServiceAccountJSON, google.ServiceAccount, storage.ScopeReadOnly)
		if err != nil {
			// The parser's error may quote the key's text: it is left out.
			return nil, fmt.Errorf("%w: %s: the serviceaccount key is not a Google service account key in JSON (type service_account)", ErrAuth, where)
		}
		ts = creds.TokenSource
	}
	if ts != nil {
		tr = &oauth2.Transport{Source: ts, Base: base}
	}
	scheme := "https"
	if o.Insecure {
		scheme = "http"
	}
	gc, err := storage.NewClient(ctx,
		option.WithHTTPClient(&http.Client{Transport: tr}),
		// The HTTP client carries the token itself. Without this the library would still look
		// for Application Default Credentials, probing the metadata server (169.254.169.254)
		// once per process and remembering the answer.
		option.WithoutAuthentication(),
		option.WithEndpoint(scheme+"://"+endpoint+"/storage/v1/"),
		// One API for everything: the JSON API (also what emulators serve best).
		storage.WithJSONReads(),
		// The client's own metrics are exported to Cloud Monitoring by default, after probing
		// the metadata server (169.254.169.254) to detect the resource: neither is wanted here.
		storage.WithDisabledClientMetrics())
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalid, where, err)
	}
	return NewClient(&gcsStore{bucket: gc.Bucket(o.Bucket), where: where}, where, o.Proxy), nil
}

// List pages through the objects under the prefix, asking only for name, ETag and size.
func (s *gcsStore) List(ctx context.Context, prefix string) ([]Object, error) {
	q := &storage.Query{Prefix: prefix}
	if err := q.SetAttrSelection([]string{"Name", "Etag", "Size"}); err != nil {
		return nil, err
	}
	var out []Object
	it := s.bucket.Objects(ctx, q)
	for {
		attrs, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, Object{Key: attrs.Name, ETag: attrs.Etag, Size: attrs.Size})
	}
}

// Stat reads the object's metadata.
func (s *gcsStore) Stat(ctx context.Context, key string) (Object, bool, error) {
	attrs, err := s.bucket.Object(key).Attrs(ctx)
	if errors.Is(err, storage.ErrObjectNotExist) {
		return Object{}, false, nil
	}
	if err != nil {
		return Object{}, false, err
	}
	return Object{Key: key, ETag: attrs.Etag, Size: attrs.Size}, true, nil
}

// Open downloads the object.
func (s *gcsStore) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	return s.bucket.Object(key).NewReader(ctx)
}

// Classify wraps an error of the GCS API or of the token exchange. Neither quotes the key:
// the token endpoint's answer is about the signed assertion, not the private key.
func (s *gcsStore) Classify(err error, what string) error {
	var rerr *oauth2.RetrieveError
	if errors.As(err, &rerr) {
		msg := tokenError(rerr)
		return fmt.Errorf("%w: %s: %s: getting an access token: %s", ErrAuth, what, s.where, msg)
	}
	if errors.Is(err, storage.ErrObjectNotExist) {
		return fmt.Errorf("%s of %s: the object no longer exists (it changed since the listing)", what, s.where)
	}
	if errors.Is(err, storage.ErrBucketNotExist) {
		return fmt.Errorf("%w: %s does not exist", ErrNotFound, s.where)
	}
	var gerr *googleapi.Error
	if errors.As(err, &gerr) {
		switch gerr.Code {
		case http.StatusNotFound:
			return fmt.Errorf("%w: %s does not exist (%s)", ErrNotFound, s.where, gerr.Message)
		case http.StatusUnauthorized, http.StatusForbidden:
			return fmt.Errorf("%w: %s: %s: %s (HTTP %d)", ErrAuth, what, s.where, gerr.Message, gerr.Code)
		}
		return fmt.Errorf("%s of %s: %s (HTTP %d)", what, s.where, gerr.Message, gerr.Code)
	}
	return fmt.Errorf("%s of %s: %w", what, s.where, err)
}

// tokenError is the OAuth error of a refused token request ("invalid_grant: Invalid JWT
// Signature."), or its HTTP status.
func tokenError(rerr *oauth2.RetrieveError) string {
	code, desc := rerr.ErrorCode, rerr.ErrorDescription
	if code == "" {
		var body struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		if json.Unmarshal(rerr.Body, &body) == nil {
			code, desc = body.Error, body.Description
		}
	}
	switch {
	case code != "" && desc != "":
		return code + ": " + desc
	case code != "":
		return code
	case rerr.Response != nil:
		return "HTTP " + rerr.Response.Status
	}
	return "refused"
}
