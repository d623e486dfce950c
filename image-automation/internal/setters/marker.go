package setters

import (
	"regexp"
	"strings"
)

// Field names a marker may append to its policy key to select one part of the image reference.
const (
	FieldFull   = ""
	FieldTag    = "tag"
	FieldName   = "name"
	FieldDigest = "digest"
)

// markerKey is the literal every marker comment contains; files without it are never parsed.
const markerKey = "$imagepolicy"

// markerPattern matches the text of a comment after its '#': a one-entry JSON-ish object with
// spaces allowed around every token.
var markerPattern = regexp.MustCompile(`^[ \t]*\{[ \t]*"\$imagepolicy"[ \t]*:[ \t]*"([^"]*)"[ \t]*\}[ \t]*$`)

// nsPattern and namePattern follow Kubernetes' DNS label and subdomain rules, loosely: a policy
// key that could never name an object is not a marker.
var (
	nsPattern   = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
	namePattern = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$`)
)

// marker is a parsed setter comment.
type marker struct {
	policy string // "namespace:name"
	field  string // FieldFull, FieldTag, FieldName or FieldDigest
}

// parseMarker reads a comment as yaml.v3 stores it or as it appears in the source: an optional
// leading '#', then the marker object. It reports false for anything else.
func parseMarker(comment string) (marker, bool) {
	comment = strings.TrimPrefix(strings.TrimLeft(comment, " \t"), "#")
	if !strings.Contains(comment, markerKey) {
		return marker{}, false
	}
	m := markerPattern.FindStringSubmatch(comment)
	if m == nil {
		return marker{}, false
	}
	parts := strings.Split(m[1], ":")
	var field string
	switch len(parts) {
	case 2:
	case 3:
		field = parts[2]
		if field != FieldTag && field != FieldName && field != FieldDigest {
			return marker{}, false
		}
	default:
		return marker{}, false
	}
	if !nsPattern.MatchString(parts[0]) || !namePattern.MatchString(parts[1]) {
		return marker{}, false
	}
	return marker{policy: parts[0] + ":" + parts[1], field: field}, true
}

// value returns what the marker's field should hold for ref, or a reason it cannot be set.
func (m marker) value(ref Ref) (string, string) {
	switch m.field {
	case FieldTag:
		if ref.Tag == "" {
			return "", "policy has no tag"
		}
		return ref.Tag, ""
	case FieldName:
		if ref.Name == "" {
			return "", "policy has no image name"
		}
		return ref.Name, ""
	case FieldDigest:
		if ref.Digest == "" {
			return "", "policy has no digest"
		}
		return ref.Digest, ""
	default:
		if ref.Name == "" || ref.Tag == "" {
			return "", "policy has no image name or tag"
		}
		if ref.Digest != "" {
			return ref.Name + ":" + ref.Tag + "@" + ref.Digest, ""
		}
		return ref.Name + ":" + ref.Tag, ""
	}
}
