package kustomize

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/api/resource"
	"sigs.k8s.io/yaml"

	"github.com/plumb-dev/plumb/shared/redact"
)

// objectOf is a built resource as an object, decoded from its JSON (numbers are float64).
// kustomize's YAML of a resource is its JSON converted, and parsing that YAML converts it back
// to JSON: on a small build the two conversions cost more than the rest of the output. (Not
// RNode.Map: decoding the YAML node itself reads a flow mapping's `{a}` as a null where
// kustomize's output, and so Flux's, has "": testdata/fuzz/FuzzObjectOf.)
func objectOf(res *resource.Resource) (*unstructured.Unstructured, error) {
	data, err := res.MarshalJSON()
	if err != nil {
		return nil, err
	}
	obj := &unstructured.Unstructured{}
	return obj, json.Unmarshal(data, &obj.Object)
}

// maskedForms adds to secret values the forms they take in the digested output: escaped in a
// JSON string (a quote, a backslash, a control character), as JSON writes a number (SOPS gives
// a decrypted 1e-7 as "1e-07", a large integer in full), and in base64 (a Secret's data, as a
// Secret generator writes a decrypted file or env value).
func maskedForms(secrets []string) []string {
	out := slices.Clone(secrets)
	for _, s := range secrets {
		if s == "" {
			continue
		}
		if e := jsonString(s); e != s {
			out = append(out, e)
		}
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			if n, err := json.Marshal(f); err == nil && string(n) != s {
				out = append(out, string(n))
			}
		}
		out = append(out, base64.StdEncoding.EncodeToString([]byte(s)))
	}
	return out
}

// jsonString is s as it appears inside a JSON string of the digest (HTML characters unescaped).
func jsonString(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if enc.Encode(s) != nil {
		return s
	}
	return b.String()[1 : b.Len()-2] // without the quotes and the newline
}

// maskedSubstitution is the substitution of vars in an object's YAML y as the digest takes it:
// the decrypted values masked in y's values before (YAML writes a multi-line one as an indented
// block, where masking the text cannot find it), and the values read from Secrets masked in
// vars.
func maskedSubstitution(y []byte, vars map[string]string, secrets, decrypted []string) (string, error) {
	if len(decrypted) > 0 {
		var obj any
		if err := yaml.Unmarshal(y, &obj); err != nil {
			return "", err
		}
		var err error
		forms := maskedForms(decrypted)
		slices.SortFunc(forms, func(a, b string) int { return len(b) - len(a) }) // a value holding another is masked whole
		if y, err = yaml.Marshal(maskValues(obj, forms)); err != nil {
			return "", err
		}
	}
	masked := make(map[string]string, len(vars))
	for k, v := range vars {
		if v != "" && slices.Contains(secrets, v) {
			v = redact.Mask
		}
		masked[k] = v
	}
	return Substitute(string(y), masked)
}

// maskValues replaces each of secrets in v's strings by redact.Mask, and a number one of them
// reads as by redact.Mask.
func maskValues(v any, secrets []string) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = maskValues(e, secrets)
		}
	case []any:
		for i, e := range v {
			v[i] = maskValues(e, secrets)
		}
	case string:
		for _, s := range secrets {
			if s != "" {
				v = strings.ReplaceAll(v, s, redact.Mask)
			}
		}
		return v
	case float64:
		for _, s := range secrets {
			if f, err := strconv.ParseFloat(s, 64); err == nil && f == v {
				return redact.Mask
			}
		}
	}
	return v
}
