// Package helm reads chart repositories for source-controller: it downloads and checks an
// index.yaml and writes it back sorted and as JSON, so that consumers parse it fast. It is free
// of controller-runtime.
package helm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/repo"
	"sigs.k8s.io/yaml"

	"github.com/plumb-dev/plumb/shared/certs"
	"github.com/plumb-dev/plumb/shared/hostlimit"
	"github.com/plumb-dev/plumb/shared/proxy"
	"github.com/plumb-dev/plumb/shared/redact"
)

// Errors, to be told apart with errors.Is.
var (
	// ErrAuth: the repository refused the credentials, or they are unusable.
	ErrAuth = errors.New("authentication failed")
	// ErrFetch: the index could not be downloaded.
	ErrFetch = errors.New("index download failed")
	// ErrIndex: the index is not a usable chart index.
	ErrIndex = errors.New("invalid index")
	// ErrInvalid: a setting of the spec that cannot work (bad URL, bad range).
	ErrInvalid = errors.New("invalid")
)

// MaxIndexSize bounds a downloaded index.yaml: the largest public indexes are tens of MiB.
const MaxIndexSize = 128 << 20

// Credentials of a repository, from its Secret.
type Credentials struct {
	Username, Password string
	CA, Cert, Key      []byte
	// DockerConfig is a .dockerconfigjson, for OCI repositories.
	DockerConfig []byte
	// Proxy, when set, carries every request (proxySecretRef); nil keeps the environment's.
	Proxy *proxy.Proxy
}

// sharedClient serves every repository without a TLS setting of its own, so that connections are
// reused across reconciles; deadlines are those of every client.
var (
	sharedClient atomic.Pointer[http.Client]
	deadlines    atomic.Pointer[hostlimit.Deadlines]
)

func init() { SetDeadlines(hostlimit.DefaultDeadlines) }

// SetDeadlines bounds connecting and the wait for the first answer of every index and chart
// download of the process, inside the object's spec.timeout: a server that accepts and never
// answers fails after d.ResponseHeader. Call it before the controllers start.
func SetDeadlines(d hostlimit.Deadlines) {
	deadlines.Store(&d)
	sharedClient.Store(&http.Client{Transport: d.Transport(nil)})
}

// Client returns an HTTP client for the credentials' TLS settings.
func Client(c Credentials) (*http.Client, error) {
	if len(c.CA) == 0 && len(c.Cert) == 0 && c.Proxy == nil {
		return sharedClient.Load(), nil
	}
	tr := deadlines.Load().Transport(nil)
	if len(c.CA) > 0 || len(c.Cert) > 0 {
		cfg, err := certs.ClientConfig(c.CA, c.Cert, c.Key)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrAuth, err)
		}
		tr.TLSClientConfig = cfg
	}
	if c.Proxy != nil {
		// The proxy is per object: a transport of its own, with the deadlines.
		return &http.Client{Transport: c.Proxy.Transport(tr)}, nil
	}
	return &http.Client{Transport: tr}, nil
}

// IndexURL is the address of the index.yaml of a repository URL.
func IndexURL(repoURL string) (string, error) {
	u, err := url.Parse(repoURL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", fmt.Errorf("%w: url %q is not an http(s) URL with a host", ErrInvalid, redact.URL(repoURL))
	}
	if u.User != nil {
		return "", fmt.Errorf("%w: url %q holds credentials; put them in secretRef", ErrInvalid, redact.URL(repoURL))
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/index.yaml"
	return u.String(), nil
}

// FetchIndex downloads the index.yaml of repoURL, at most limit bytes.
func FetchIndex(ctx context.Context, client *http.Client, repoURL string, c Credentials, limit int64) ([]byte, error) {
	u, err := IndexURL(repoURL)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if c.Username != "" || c.Password != "" {
		req.SetBasicAuth(c.Username, c.Password)
	}
	req.Header.Set("User-Agent", "plumb-source-controller")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFetch, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return nil, fmt.Errorf("%w: %s answered %s", ErrAuth, u, resp.Status)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("%w: %s answered %s", ErrFetch, u, resp.Status)
	}
	if resp.ContentLength > limit {
		return nil, fmt.Errorf("%w: %s is %d bytes, over the limit of %d", ErrIndex, u, resp.ContentLength, limit)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%w: reading %s: %v", ErrFetch, u, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%w: %s is over the limit of %d bytes", ErrIndex, u, limit)
	}
	return data, nil
}

// Index is a checked index.
type Index struct {
	// JSON is the index sorted (names, then versions highest first) and written as JSON.
	JSON []byte
	// Digest is the sha256 of JSON, as sha256:<hex>.
	Digest string
	// Charts and Versions count what the index lists; Skipped counts versions left out because
	// they are invalid (as Helm leaves them out).
	Charts, Versions, Skipped int
}

// ParseIndex checks an index.yaml (YAML or JSON) and normalizes it. Versions that Helm itself
// would skip (no name, an invalid version) are left out and counted.
func ParseIndex(data []byte) (*Index, error) {
	idx, out, err := decodeIndex(data)
	if err != nil {
		return nil, err
	}
	// Re-indexing an unchanged repository stamps a new generation time, and versions a new
	// creation time: both are left out, so that the revision follows what is published.
	idx.Generated = time.Time{}
	for _, versions := range idx.Entries {
		for _, cv := range versions {
			cv.Created = time.Time{}
		}
	}
	if out.JSON, err = json.Marshal(idx); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrIndex, err)
	}
	sum := sha256.Sum256(out.JSON)
	out.Digest = "sha256:" + hex.EncodeToString(sum[:])
	return out, nil
}

// LoadIndex reads an index (YAML or JSON: a repository's, or one ParseIndex wrote) for looking
// charts up, checked and sorted as ParseIndex does.
func LoadIndex(data []byte) (*repo.IndexFile, error) {
	idx, _, err := decodeIndex(data)
	return idx, err
}

// decodeIndex decodes and checks an index, leaves out (and counts) the versions Helm would
// skip, and sorts it: names, then versions highest first.
func decodeIndex(data []byte) (*repo.IndexFile, *Index, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil, fmt.Errorf("%w: index.yaml is empty", ErrIndex)
	}
	idx := &repo.IndexFile{}
	var err error
	if json.Valid(data) {
		err = json.Unmarshal(data, idx)
	} else {
		err = yaml.Unmarshal(data, idx)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%w: index.yaml: %v", ErrIndex, err)
	}
	if idx.APIVersion == "" {
		return nil, nil, fmt.Errorf("%w: index.yaml has no apiVersion", ErrIndex)
	}
	if idx.Entries == nil {
		return nil, nil, fmt.Errorf("%w: index.yaml has no entries", ErrIndex)
	}
	out := &Index{}
	for name, versions := range idx.Entries {
		kept := versions[:0]
		for _, cv := range versions {
			if cv == nil {
				out.Skipped++
				continue
			}
			if cv.Metadata == nil {
				cv.Metadata = &chart.Metadata{}
			}
			if cv.APIVersion == "" {
				cv.APIVersion = chart.APIVersionV1
			}
			if err := cv.Validate(); err != nil && !strings.HasPrefix(err.Error(), "validation: more than one dependency") {
				out.Skipped++
				continue
			}
			kept = append(kept, cv)
		}
		if len(kept) == 0 {
			delete(idx.Entries, name)
			continue
		}
		idx.Entries[name] = kept
		out.Versions += len(kept)
	}
	out.Charts = len(idx.Entries)
	idx.SortEntries()
	return idx, out, nil
}
