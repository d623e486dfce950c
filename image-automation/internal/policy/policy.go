// Package policy owns the choice of an ImagePolicy: from the tags of an image repository, it keeps
// those that pass filterTags and picks the newest by a semver range, an alphabetical order or a
// numerical order. It is pure logic, with no Kubernetes and no network, so that the controller can
// call it on every scan and tests can call it on any list.
//
// The rules follow what users of Flux's ImagePolicy expect, with one difference made on purpose:
// when several tags compare equal (v1.2.3 and 1.2.3, or two tags whose extracted values are the
// same), the lexically greatest original tag wins, so that the answer never depends on the order
// the registry listed the tags in.
package policy

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/Masterminds/semver/v3"
)

// ErrInvalid marks a policy that cannot work whatever the tags are; retrying will not help, so the
// caller stalls on it.
var ErrInvalid = errors.New("invalid image policy")

// Policy kinds, the values of Options.Kind.
const (
	KindSemVer       = "semver"
	KindAlphabetical = "alphabetical"
	KindNumerical    = "numerical"
)

// Orders of the alphabetical and numerical kinds.
const (
	// OrderAsc picks the greatest value: in ascending order the newest comes last.
	OrderAsc = "asc"
	// OrderDesc picks the least value.
	OrderDesc = "desc"
)

// Options is an ImagePolicy's choice: one kind with its argument, and an optional tag filter.
type Options struct {
	// SemVer is the range of the semver kind (Masterminds/semver/v3 constraint syntax), e.g.
	// ">=1.0.0 <2.0.0", "1.x" or "~1.2". Pre-releases count only when the range names one.
	SemVer string
	// Alphabetical is the order of the alphabetical kind: asc (the default) or desc.
	Alphabetical string
	// Numerical is the order of the numerical kind: asc (the default) or desc.
	Numerical string
	// Kind chooses the policy: semver, alphabetical or numerical. Empty means the one kind whose
	// field above is set; since an order may be empty, set Kind to choose alphabetical or
	// numerical with the default order.
	Kind string
	// Pattern is filterTags.pattern, a Go regular expression; tags it does not match are left
	// out. It is not anchored: write ^ and $ to match the whole tag.
	Pattern string
	// Extract is filterTags.extract, a template such as "$ts" or "${version}" expanded over the
	// pattern's match (as regexp.Expand does) into the value that is compared. Empty compares
	// the whole tag.
	Extract string
}

type kind int

const (
	semverKind kind = iota + 1
	alphabeticalKind
	numericalKind
)

// Selector applies one validated policy; it is safe for concurrent use.
type Selector struct {
	kind kind
	desc bool

	rng        string
	constraint *semver.Constraints

	pattern string
	re      *regexp.Regexp // nil without a pattern
	extract template       // nil when the whole tag is compared
}

// New checks every option up front, so that a bad policy is reported once, naming the field,
// rather than looking like a repository without a matching tag.
func New(o Options) (*Selector, error) {
	s := &Selector{}
	k, err := chooseKind(o)
	if err != nil {
		return nil, err
	}
	s.kind = k

	switch k {
	case semverKind:
		if strings.TrimSpace(o.SemVer) == "" {
			return nil, fmt.Errorf("%w: policy.semver.range is empty; give a range such as \">=1.0.0\" or \"1.x\"", ErrInvalid)
		}
		c, err := semver.NewConstraint(o.SemVer)
		if err != nil {
			return nil, fmt.Errorf("%w: policy.semver.range %q is not a valid semver range: %w", ErrInvalid, o.SemVer, err)
		}
		s.rng, s.constraint = o.SemVer, c
	case alphabeticalKind:
		if s.desc, err = parseOrder("policy.alphabetical.order", o.Alphabetical); err != nil {
			return nil, err
		}
	case numericalKind:
		if s.desc, err = parseOrder("policy.numerical.order", o.Numerical); err != nil {
			return nil, err
		}
	}

	if o.Pattern != "" {
		re, err := regexp.Compile(o.Pattern)
		if err != nil {
			return nil, fmt.Errorf("%w: filterTags.pattern %q does not compile: %w", ErrInvalid, o.Pattern, err)
		}
		s.pattern, s.re = o.Pattern, re
	}
	if o.Extract != "" {
		if s.re == nil {
			return nil, fmt.Errorf("%w: filterTags.extract %q needs filterTags.pattern to take groups from", ErrInvalid, o.Extract)
		}
		t, err := parseTemplate(o.Extract, s.re)
		if err != nil {
			return nil, fmt.Errorf("%w: filterTags.extract %q %s", ErrInvalid, o.Extract, err.Error())
		}
		s.extract = t
	}
	return s, nil
}

// chooseKind resolves Kind against the three argument fields, refusing two kinds at once.
func chooseKind(o Options) (kind, error) {
	var set []string
	if o.SemVer != "" {
		set = append(set, KindSemVer)
	}
	if o.Alphabetical != "" {
		set = append(set, KindAlphabetical)
	}
	if o.Numerical != "" {
		set = append(set, KindNumerical)
	}
	name := o.Kind
	switch o.Kind {
	case KindSemVer, KindAlphabetical, KindNumerical:
		for _, other := range set {
			if other != o.Kind {
				return 0, fmt.Errorf("%w: policy is %s but policy.%s is set too; set exactly one of semver, alphabetical and numerical", ErrInvalid, o.Kind, other)
			}
		}
	case "":
		switch len(set) {
		case 0:
			return 0, fmt.Errorf("%w: policy is empty; set exactly one of semver, alphabetical and numerical", ErrInvalid)
		case 1:
			name = set[0]
		default:
			return 0, fmt.Errorf("%w: policy sets %s; set exactly one of semver, alphabetical and numerical", ErrInvalid, strings.Join(set, " and "))
		}
	default:
		return 0, fmt.Errorf("%w: policy kind %q is unknown; use semver, alphabetical or numerical", ErrInvalid, o.Kind)
	}
	switch name {
	case KindSemVer:
		return semverKind, nil
	case KindAlphabetical:
		return alphabeticalKind, nil
	default:
		return numericalKind, nil
	}
}

// parseOrder reads an order field; empty is asc, as the API defaults it.
func parseOrder(field, order string) (desc bool, err error) {
	switch order {
	case "", OrderAsc:
		return false, nil
	case OrderDesc:
		return true, nil
	}
	return false, fmt.Errorf("%w: %s %q is unknown; use asc or desc", ErrInvalid, field, order)
}

// describe names the policy for messages, e.g. `semver range ">=1.0.0"`.
func (s *Selector) describe() string {
	order := OrderAsc
	if s.desc {
		order = OrderDesc
	}
	switch s.kind {
	case semverKind:
		return fmt.Sprintf("semver range %q", s.rng)
	case alphabeticalKind:
		return "alphabetical order " + order
	default:
		return "numerical order " + order
	}
}
