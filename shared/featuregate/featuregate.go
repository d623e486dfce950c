// Package featuregate is the --feature-gates flag of the controllers, with Flux's syntax:
// Name=true|false pairs separated by commas (a bare Name is true); only known names are
// accepted.
package featuregate

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Gates is a flag.Value of the known gates and their values.
type Gates map[string]bool

// New returns the gates of names, all off.
func New(names ...string) Gates {
	g := Gates{}
	for _, n := range names {
		g[n] = false
	}
	return g
}

func (g Gates) String() string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(g)) {
		parts = append(parts, k+"="+strconv.FormatBool(g[k]))
	}
	return strings.Join(parts, ",")
}

// Set reads Name=bool pairs separated by commas.
func (g Gates) Set(s string) error {
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
			return fmt.Errorf("unknown feature gate %q (known: %s)", k, strings.Join(slices.Sorted(maps.Keys(g)), ", "))
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("feature gate %s: %q is not true or false", k, v)
		}
		g[k] = b
	}
	return nil
}
