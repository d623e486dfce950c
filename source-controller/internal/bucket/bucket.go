// Package bucket reads object storage buckets for the Bucket kind (S3-compatible servers with
// minio-go, Google Cloud Storage and Azure Blob Storage, each behind the Store interface):
// listing object keys and ETags, the digest of that index (the revision), the .sourceignore
// object, and the objects themselves written as a deterministic tarball. It holds no
// controller logic.
package bucket

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/plumb-dev/plumb/shared/artifact"
	"github.com/plumb-dev/plumb/shared/hostlimit"
	"github.com/plumb-dev/plumb/shared/proxy"
)

var (
	// ErrAuth: the server refused the credentials, or they could not be obtained.
	ErrAuth = errors.New("authentication failed")
	// ErrNotFound: the bucket does not exist.
	ErrNotFound = errors.New("bucket not found")
	// ErrInvalid: the settings cannot be used as they are (an endpoint with a scheme or path);
	// retrying cannot help.
	ErrInvalid = errors.New("invalid bucket settings")
	// ErrContent: the objects cannot be published (an unsafe key, over the size limits, an
	// object that changed size while it was read).
	ErrContent = errors.New("bucket content cannot be published")
)

// SourceIgnoreFile is the object, at the root of the bucket, whose patterns (in .gitignore
// syntax) add to spec.ignore, as in Flux.
const SourceIgnoreFile = ".sourceignore"

var deadlines atomic.Pointer[hostlimit.Deadlines]

func init() { SetDeadlines(hostlimit.DefaultDeadlines) }

// SetDeadlines bounds connecting and the wait for the first answer of every request of the
// process, inside the object's spec.timeout. Call it before the controllers start.
func SetDeadlines(d hostlimit.Deadlines) { deadlines.Store(&d) }

// Options say how to reach a bucket.
type Options struct {
	// Endpoint is host or host:port, without a scheme.
	Endpoint string
	// Insecure uses plain HTTP.
	Insecure bool
	// Region of the bucket; empty lets the client ask the server.
	Region string
	// Bucket is the bucket's name.
	Bucket string
	// Creds are the credentials; nil reads anonymously.
	Creds *credentials.Credentials
	// TLS, when set, is the TLS configuration (CA, client certificate).
	TLS *tls.Config
	// Proxy, when set, carries every connection.
	Proxy *proxy.Proxy
}

// Static returns credentials of an access key pair (and an optional session token).
func Static(accessKey, secretKey, sessionToken string) *credentials.Credentials {
	return credentials.NewStaticV4(accessKey, secretKey, sessionToken)
}

// Store is one bucket of one provider: what the Client needs of it.
type Store interface {
	// List returns every object whose key starts with prefix, in any order.
	List(ctx context.Context, prefix string) ([]Object, error)
	// Stat returns the object at key, or false when there is none.
	Stat(ctx context.Context, key string) (Object, bool, error)
	// Open starts the download of the object at key.
	Open(ctx context.Context, key string) (io.ReadCloser, error)
	// Classify wraps an error of the provider's API in the package's errors (ErrAuth,
	// ErrNotFound), saying what was done; the result holds no credential.
	Classify(err error, what string) error
}

// Client reads one bucket through its Store.
type Client struct {
	store Store
	proxy *proxy.Proxy
	where string // "bucket b at host" for messages
}

// NewClient returns a client of the store; where names the bucket in messages ("bucket b at
// host"), and p, when set, explains the errors of the proxy.
func NewClient(s Store, where string, p *proxy.Proxy) *Client {
	return &Client{store: s, proxy: p, where: where}
}

// s3Store is an S3-compatible bucket, read with minio-go.
type s3Store struct {
	mc     *minio.Client
	bucket string
	where  string
}

// Transport returns the HTTP transport of the options: the process's deadlines, the TLS
// configuration and the proxy.
func Transport(tlsConfig *tls.Config, p *proxy.Proxy) http.RoundTripper {
	tr := deadlines.Load().Transport(nil)
	if tlsConfig != nil {
		tr.TLSClientConfig = tlsConfig
	}
	if p != nil {
		return p.Transport(tr)
	}
	return tr
}

// New checks the options and returns a client of an S3-compatible bucket; it makes no request.
func New(o Options) (*Client, error) {
	if o.Endpoint == "" || strings.Contains(o.Endpoint, "://") || strings.Contains(o.Endpoint, "/") {
		return nil, fmt.Errorf("%w: endpoint %q must be a host or host:port, without scheme or path (set insecure for plain HTTP)", ErrInvalid, o.Endpoint)
	}
	creds := o.Creds
	if creds == nil {
		creds = credentials.NewStatic("", "", "", credentials.SignatureAnonymous)
	}
	mc, err := minio.New(o.Endpoint, &minio.Options{
		Creds:      creds,
		Secure:     !o.Insecure,
		Region:     o.Region,
		Transport:  Transport(o.TLS, o.Proxy),
		MaxRetries: 2,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: endpoint %s: %v", ErrInvalid, o.Endpoint, err)
	}
	where := fmt.Sprintf("bucket %s at %s", o.Bucket, o.Endpoint)
	return NewClient(&s3Store{mc: mc, bucket: o.Bucket, where: where}, where, o.Proxy), nil
}

// Object is one object of a listing.
type Object struct {
	Key  string
	ETag string
	Size int64
}

// List returns the objects whose key starts with prefix, sorted by key; folder markers (keys
// ending in /) are left out.
func (c *Client) List(ctx context.Context, prefix string) ([]Object, error) {
	objects, err := c.store.List(ctx, prefix)
	if err != nil {
		return nil, c.classify(err, "listing objects")
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("listing objects of %s: %w", c.where, ctx.Err())
	}
	out := slices.DeleteFunc(objects, func(o Object) bool { return strings.HasSuffix(o.Key, "/") })
	slices.SortFunc(out, func(a, b Object) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// Stat returns the object at key, or false when there is none.
func (c *Client) Stat(ctx context.Context, key string) (Object, bool, error) {
	o, found, err := c.store.Stat(ctx, key)
	if err != nil {
		return Object{}, false, c.classify(err, "reading "+key)
	}
	return o, found, nil
}

// List lists the bucket with minio-go.
func (s *s3Store) List(ctx context.Context, prefix string) ([]Object, error) {
	var out []Object
	for info := range s.mc.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if info.Err != nil {
			return nil, info.Err
		}
		out = append(out, Object{Key: info.Key, ETag: info.ETag, Size: info.Size})
	}
	return out, nil
}

// Stat is a HEAD of the object.
func (s *s3Store) Stat(ctx context.Context, key string) (Object, bool, error) {
	info, err := s.mc.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		if code := minio.ToErrorResponse(err).Code; code == "NoSuchKey" || code == "NotFound" {
			return Object{}, false, nil
		}
		return Object{}, false, err
	}
	return Object{Key: key, ETag: info.ETag, Size: info.Size}, true, nil
}

// Open is a GET of the object; minio-go sends it at the first read.
func (s *s3Store) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	return s.mc.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{})
}

// maxIgnoreFile bounds the .sourceignore object read into memory.
const maxIgnoreFile = 1 << 20

// ReadSmall downloads a small object (at most 1 MiB), such as the .sourceignore file.
func (c *Client) ReadSmall(ctx context.Context, o Object) (string, error) {
	if o.Size > maxIgnoreFile {
		return "", fmt.Errorf("%w: %s is %d bytes, over the limit of %d", ErrContent, o.Key, o.Size, maxIgnoreFile)
	}
	rc, err := c.store.Open(ctx, o.Key)
	if err != nil {
		return "", c.classify(err, "downloading "+o.Key)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxIgnoreFile+1))
	if err != nil {
		return "", c.classify(err, "downloading "+o.Key)
	}
	return string(data), nil
}

// Write downloads the objects, in the order given (sorted by key), into a deterministic
// tarball on w, each under its full key. An object whose size differs from the listing's (it
// changed meanwhile) fails the build, which is retried.
func (c *Client) Write(ctx context.Context, objects []Object, lim artifact.Limits, w io.Writer) error {
	if lim.MaxFiles > 0 && len(objects) > lim.MaxFiles {
		return fmt.Errorf("%w: %d objects, over the limit of %d files", ErrContent, len(objects), lim.MaxFiles)
	}
	var total int64
	for _, o := range objects {
		total += o.Size
	}
	if lim.MaxBytes > 0 && total > lim.MaxBytes {
		return fmt.Errorf("%w: the objects add up to %d bytes, over the limit of %d", ErrContent, total, lim.MaxBytes)
	}
	tw := artifact.NewWriter(w)
	for _, o := range objects {
		if err := c.copy(ctx, tw, o); err != nil {
			return err
		}
	}
	return tw.Close()
}

func (c *Client) copy(ctx context.Context, tw *artifact.Writer, o Object) error {
	rc, err := c.store.Open(ctx, o.Key)
	if err != nil {
		return c.classify(err, "downloading "+o.Key)
	}
	defer rc.Close()
	body := &countReader{r: io.LimitReader(rc, o.Size+1)}
	if err := tw.File(o.Key, false, o.Size, body); err != nil {
		if errors.Is(err, artifact.ErrUnsafe) {
			return fmt.Errorf("%w: object %s: %v; add it to spec.ignore", ErrContent, o.Key, err)
		}
		if body.err != nil {
			return c.classify(body.err, "downloading "+o.Key)
		}
		return fmt.Errorf("%w: object %s changed while it was read (listed with %d bytes): %v", ErrContent, o.Key, o.Size, err)
	}
	// One byte more than listed means the object grew since the listing.
	if n, _ := body.Read(make([]byte, 1)); n > 0 {
		return fmt.Errorf("%w: object %s changed while it was read (listed with %d bytes)", ErrContent, o.Key, o.Size)
	}
	return nil
}

// countReader keeps the reader's own error apart from the tar writer's.
type countReader struct {
	r   io.Reader
	err error
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err != nil && err != io.EOF {
		c.err = err
	}
	return n, err
}

// classify explains an error of the proxy, or lets the store wrap it.
func (c *Client) classify(err error, what string) error {
	if c.proxy != nil {
		if perr := c.proxy.Explain(err); errors.Is(perr, proxy.ErrProxy) {
			return perr
		}
	}
	if errors.Is(err, ErrAuth) || errors.Is(err, ErrNotFound) || errors.Is(err, ErrInvalid) {
		// A credential that failed inside the HTTP transport: its own message, without the
		// request's URL.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			return uerr.Err
		}
		return err
	}
	return c.store.Classify(err, what)
}

// Classify wraps an error of the S3 API in the package's errors, naming the bucket and what
// was done; S3 error answers never quote the credentials.
func (s *s3Store) Classify(err error, what string) error {
	resp := minio.ToErrorResponse(err)
	switch resp.Code {
	case "NoSuchBucket":
		return fmt.Errorf("%w: %s does not exist (%s)", ErrNotFound, s.where, resp.Message)
	case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken", "AllAccessDisabled":
		return fmt.Errorf("%w: %s: %s: %s (%s)", ErrAuth, what, s.where, resp.Message, resp.Code)
	case "":
		return fmt.Errorf("%s of %s: %w", what, s.where, err)
	}
	return fmt.Errorf("%s of %s: %s (%s)", what, s.where, resp.Message, resp.Code)
}

// Digest is the revision of an index in Flux's shape: sha256:<hex> of the lines
// "<key> <etag>\n" in key order.
func Digest(objects []Object) string {
	h := sha256.New()
	for _, o := range objects {
		fmt.Fprintf(h, "%s %s\n", o.Key, o.ETag)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}
