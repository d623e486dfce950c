package registry

import (
	"flag"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// CloudFlags are the controller flags of cloud workload identity, with Flux's names:
// --feature-gates=ObjectLevelWorkloadIdentity=true and --token-cache-max-size.
type CloudFlags struct {
	gates     featureGates
	cacheSize int
}

// Bind registers the flags.
func (f *CloudFlags) Bind(fs *flag.FlagSet) {
	f.gates = featureGates{ObjectLevelWorkloadIdentity: false}
	fs.Var(f.gates, "feature-gates", "Features on or off, Name=true|false separated by commas (Flux's flag). "+
		ObjectLevelWorkloadIdentity+" (default false): with a cloud provider, an object's serviceAccountName is its cloud identity, "+
		"obtained by a token exchange for that ServiceAccount.")
	fs.IntVar(&f.cacheSize, "token-cache-max-size", DefaultTokenCacheSize, "Cloud registry tokens kept in memory until shortly before they expire, one for each identity and registry.")
}

// Cloud makes the process's Cloud from the flags.
func (f *CloudFlags) Cloud() (*Cloud, error) {
	if f.cacheSize <= 0 {
		return nil, fmt.Errorf("--token-cache-max-size must be positive, got %d", f.cacheSize)
	}
	return NewCloud(CloudOptions{CacheSize: f.cacheSize, ObjectLevel: f.gates[ObjectLevelWorkloadIdentity]})
}

// featureGates is a flag.Value of Name=bool pairs; only known names are accepted.
type featureGates map[string]bool

func (g featureGates) String() string {
	var parts []string
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range g {
			if !yield(k) {
				return
			}
		}
	}) {
		parts = append(parts, k+"="+strconv.FormatBool(g[k]))
	}
	return strings.Join(parts, ",")
}

func (g featureGates) Set(s string) error {
	for pair := range strings.SplitSeq(s, ",") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		k, v, ok := strings.Cut(pair, "=")
		if !ok {
			v = "true"
		}
		if _, known := g[k]; !known {
			return fmt.Errorf("unknown feature gate %q (known: %s)", k, ObjectLevelWorkloadIdentity)
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("feature gate %s: %q is not true or false", k, v)
		}
		g[k] = b
	}
	return nil
}
