package helm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/Masterminds/semver/v3"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/repo"
	"sigs.k8s.io/yaml"

	"github.com/plumb-dev/plumb/shared/artifact"
	"github.com/plumb-dev/plumb/shared/redact"
)

var (
	// ErrNotFound: the chart is not in the index, or no version is in the range.
	ErrNotFound = errors.New("not found")
	// ErrPackage: the chart cannot be loaded or packaged.
	ErrPackage = errors.New("chart")
)

// SelectVersion returns the highest version of the chart name in the index within the semver
// range rng. When none is, the error names the highest versions there are.
func SelectVersion(idx *repo.IndexFile, name, rng string) (*repo.ChartVersion, error) {
	c, err := semver.NewConstraint(rng)
	if err != nil {
		return nil, fmt.Errorf("%w: version %q is not a semver range: %v", ErrInvalid, rng, err)
	}
	versions, ok := idx.Entries[name]
	if !ok || len(versions) == 0 {
		return nil, fmt.Errorf("%w: chart %q is not in the repository's index", ErrNotFound, name)
	}
	var best *repo.ChartVersion
	var bestV *semver.Version
	var seen []*semver.Version
	for _, cv := range versions {
		v, err := semver.NewVersion(cv.Version)
		if err != nil {
			continue
		}
		seen = append(seen, v)
		if c.Check(v) && (bestV == nil || v.GreaterThan(bestV)) {
			best, bestV = cv, v
		}
	}
	if best != nil {
		return best, nil
	}
	highest := highestOf(seen, 5)
	return nil, fmt.Errorf("%w: no version of chart %q matches %q; highest versions: %s", ErrNotFound, name, rng, strings.Join(highest, ", "))
}

func highestOf(vs []*semver.Version, n int) []string {
	sorted := append([]*semver.Version(nil), vs...)
	for i := 1; i < len(sorted); i++ { // insertion sort, highest first: indexes are sorted already
		for j := i; j > 0 && sorted[j].GreaterThan(sorted[j-1]); j-- {
			sorted[j], sorted[j-1] = sorted[j-1], sorted[j]
		}
	}
	var out []string
	for i := 0; i < len(sorted) && i < n; i++ {
		out = append(out, sorted[i].Original())
	}
	return out
}

// Download fetches the package of a chart version: its first URL, resolved against the
// repository's URL. Credentials go along to the repository's own host and scheme, and to others
// only with passCredentials. The package is checked against the digest the index gives.
func Download(ctx context.Context, client *http.Client, repoURL string, cv *repo.ChartVersion, c Credentials, passCredentials bool, limit int64) ([]byte, error) {
	if len(cv.URLs) == 0 {
		return nil, fmt.Errorf("%w: chart %s %s has no URL in the index", ErrPackage, cv.Name, cv.Version)
	}
	base, err := url.Parse(strings.TrimSuffix(repoURL, "/") + "/")
	if err != nil {
		return nil, fmt.Errorf("%w: url %q: %v", ErrInvalid, redact.URL(repoURL), err)
	}
	ref, err := url.Parse(cv.URLs[0])
	if err != nil {
		return nil, fmt.Errorf("%w: chart %s %s: URL %q does not parse", ErrPackage, cv.Name, cv.Version, redact.Userinfo(cv.URLs[0]))
	}
	u := base.ResolveReference(ref)
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%w: chart %s %s: URL %q is not http(s)", ErrPackage, cv.Name, cv.Version, redact.URL(u.String()))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if (c.Username != "" || c.Password != "") && (passCredentials || (u.Host == base.Host && u.Scheme == base.Scheme)) {
		req.SetBasicAuth(c.Username, c.Password)
	}
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its URL may carry a token in its query
		}
		return nil, fmt.Errorf("%w: chart %s %s from %s: %w", ErrFetch, cv.Name, cv.Version, redact.URL(u.String()), err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return nil, fmt.Errorf("%w: %s answered %s", ErrAuth, redact.URL(u.String()), resp.Status)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("%w: %s answered %s", ErrFetch, redact.URL(u.String()), resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%w: reading %s: %v", ErrFetch, redact.URL(u.String()), err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%w: %s is over the limit of %d bytes", ErrPackage, redact.URL(u.String()), limit)
	}
	if cv.Digest != "" {
		sum := sha256.Sum256(data)
		if got := hex.EncodeToString(sum[:]); !strings.EqualFold(strings.TrimPrefix(cv.Digest, "sha256:"), got) {
			return nil, fmt.Errorf("%w: %s has digest sha256:%s, the index says %s", ErrPackage, redact.URL(u.String()), got, cv.Digest)
		}
	}
	return data, nil
}

// Load reads a packaged chart (Helm refuses absolute and parent paths and bounds the size) and
// checks its metadata.
func Load(data []byte) (*chart.Chart, error) {
	ch, err := loader.LoadArchive(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPackage, err)
	}
	if err := ch.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrPackage, ch.Name(), err)
	}
	return ch, nil
}

// LoadDir reads a chart from a folder.
func LoadDir(dir string) (*chart.Chart, error) {
	ch, err := loader.LoadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPackage, err)
	}
	if err := ch.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrPackage, ch.Name(), err)
	}
	return ch, nil
}

// MergeValuesFiles merges the chart's values files over values.yaml, later files winning, and
// makes the result the chart's values.yaml. It returns the files it merged; a file the chart
// lacks is an error unless ignoreMissing.
func MergeValuesFiles(ch *chart.Chart, files []string, ignoreMissing bool) ([]string, error) {
	if len(files) == 0 {
		return nil, nil
	}
	merged := map[string]any{}
	for k, v := range ch.Values {
		merged[k] = v
	}
	var used []string
	for _, name := range files {
		clean := path.Clean(strings.TrimPrefix(name, "./"))
		data, ok := chartFile(ch, clean)
		if !ok {
			if ignoreMissing {
				continue
			}
			return nil, fmt.Errorf("%w: %s has no values file %q", ErrPackage, ch.Name(), name)
		}
		vals, err := chartutil.ReadValues(data)
		if err != nil {
			return nil, fmt.Errorf("%w: values file %q: %v", ErrPackage, name, err)
		}
		merged = chartutil.CoalesceTables(vals.AsMap(), merged)
		used = append(used, name)
	}
	out, err := yaml.Marshal(merged)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPackage, err)
	}
	ch.Values = merged
	replaced := false
	for _, f := range ch.Raw {
		if f.Name == chartutil.ValuesfileName {
			f.Data, replaced = out, true
		}
	}
	if !replaced {
		ch.Raw = append(ch.Raw, &chart.File{Name: chartutil.ValuesfileName, Data: out})
	}
	return used, nil
}

func chartFile(ch *chart.Chart, name string) ([]byte, bool) {
	for _, f := range append(append([]*chart.File{}, ch.Raw...), ch.Files...) {
		if f.Name == name {
			return f.Data, true
		}
	}
	return nil, false
}

// Package writes the chart as a .tgz, deterministically (fixed times and modes), so that the
// same chart always gives the same digest.
func Package(ch *chart.Chart, out io.Writer) error {
	dir, err := os.MkdirTemp("", "plumb-chart-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	file, err := chartutil.Save(ch, dir)
	if err != nil {
		return fmt.Errorf("%w: packaging %s: %v", ErrPackage, ch.Name(), err)
	}
	f, err := os.Open(filepath.Clean(file))
	if err != nil {
		return err
	}
	defer f.Close()
	w := artifact.NewWriter(out)
	err = artifact.Walk(f, artifact.DefaultLimits, func(e artifact.Entry, body io.Reader) error {
		if e.Linkname != "" {
			return w.Symlink(e.Name, e.Linkname)
		}
		return w.File(e.Name, e.Executable, e.Size, body)
	})
	if err != nil {
		return fmt.Errorf("%w: packaging %s: %v", ErrPackage, ch.Name(), err)
	}
	return w.Close()
}
