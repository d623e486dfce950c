package artifact

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
)

// Fetcher downloads artifacts published under the artifact contract. It is safe for concurrent
// use; make one per process so that connections are reused.
type Fetcher struct {
	// Client makes the requests; nil uses a client with keep-alive and no overall timeout
	// (Timeout below bounds each attempt).
	Client *http.Client
	// Timeout bounds one download attempt (default 1m).
	Timeout time.Duration
	// Retries after a failed attempt caused by the network or a 5xx answer: 0 means the
	// default of 2, a negative number none.
	Retries int
	// MaxSize is the largest compressed artifact accepted (default 512 MiB).
	MaxSize int64
	// Limits bound the unpacked content (default DefaultLimits).
	Limits Limits
}

// ErrDigestMismatch is returned when the downloaded bytes do not hash to the advertised digest.
var ErrDigestMismatch = errors.New("artifact digest mismatch")

// Fetch downloads the artifact into memory and verifies its size and digest.
func (f *Fetcher) Fetch(ctx context.Context, a *meta.Artifact) ([]byte, error) {
	if a == nil || a.URL == "" {
		return nil, errors.New("no artifact URL")
	}
	want, ok := strings.CutPrefix(a.Digest, "sha256:")
	if !ok || len(want) != sha256.Size*2 {
		return nil, fmt.Errorf("artifact %s: unsupported digest %q (want sha256:<hex>)", a.URL, a.Digest)
	}
	retries := f.Retries
	switch {
	case retries == 0:
		retries = 2
	case retries < 0:
		retries = 0
	}
	var lastErr error
	for attempt := 0; attempt <= retries; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return nil, errors.Join(ctx.Err(), lastErr)
			case <-time.After(time.Duration(attempt*attempt) * 200 * time.Millisecond):
			}
		}
		data, retry, err := f.get(ctx, a.URL)
		if err == nil {
			sum := sha256.Sum256(data)
			if hex.EncodeToString(sum[:]) != want {
				return nil, fmt.Errorf("%w: %s has sha256:%x, status says %s", ErrDigestMismatch, a.URL, sum, a.Digest)
			}
			return data, nil
		}
		lastErr = err
		if !retry {
			break
		}
	}
	return nil, lastErr
}

// FetchAndExtract downloads, verifies and unpacks the artifact into dir.
func (f *Fetcher) FetchAndExtract(ctx context.Context, a *meta.Artifact, dir string) error {
	data, err := f.Fetch(ctx, a)
	if err != nil {
		return err
	}
	if err := Extract(bytes.NewReader(data), dir, f.limits()); err != nil {
		return fmt.Errorf("artifact %s: %w", a.URL, err)
	}
	return nil
}

func (f *Fetcher) limits() Limits {
	if f.Limits == (Limits{}) {
		return DefaultLimits
	}
	return f.Limits
}

// get makes one attempt; retry says whether another attempt could succeed.
func (f *Fetcher) get(ctx context.Context, url string) (data []byte, retry bool, err error) {
	timeout := f.Timeout
	if timeout <= 0 {
		timeout = time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, false, fmt.Errorf("artifact URL %q: %w", url, err)
	}
	client := f.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, ctx.Err() == nil || errors.Is(ctx.Err(), context.DeadlineExceeded), fmt.Errorf("download %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, resp.StatusCode >= 500, fmt.Errorf("download %s: %s", url, resp.Status)
	}
	max := f.MaxSize
	if max <= 0 {
		max = 512 << 20
	}
	if resp.ContentLength > max {
		return nil, false, fmt.Errorf("download %s: %d bytes is over the limit of %d", url, resp.ContentLength, max)
	}
	var buf bytes.Buffer
	if resp.ContentLength > 0 {
		buf.Grow(int(resp.ContentLength))
	}
	n, err := io.Copy(&buf, io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, true, fmt.Errorf("download %s: %w", url, err)
	}
	if n > max {
		return nil, false, fmt.Errorf("download %s: over the limit of %d bytes", url, max)
	}
	return buf.Bytes(), false, nil
}
