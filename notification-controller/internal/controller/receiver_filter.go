package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	notifyv1 "github.com/plumb-dev/plumb/notification-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/notification-controller/internal/expr"
)

// filters are a Receiver's compiled CEL filters: spec.resourceFilter (top) and
// spec.resources[i].filter (each[i]); nil where not set.
type filters struct {
	top  *expr.Expression
	each []*expr.Expression
}

// any says whether the Receiver has a filter at all.
func (f filters) any() bool {
	if f.top != nil {
		return true
	}
	for _, e := range f.each {
		if e != nil {
			return true
		}
	}
	return false
}

// compileFilters compiles a Receiver's filters; the error names the field and the expression.
// Only generic-oidc's see the token's `claims`.
func compileFilters(rcv *notifyv1.Receiver) (filters, error) {
	f := filters{each: make([]*expr.Expression, len(rcv.Spec.Resources))}
	kind := expr.ResourceFilter
	if rcv.Spec.Type == notifyv1.GenericOIDCReceiver {
		kind = expr.ResourceFilterOIDC
	}
	if src := rcv.Spec.ResourceFilter; src != "" {
		e, err := expr.Compile(kind, src)
		if err != nil {
			return f, fmt.Errorf("spec.resourceFilter: %w", err)
		}
		f.top = e
	}
	for i, ref := range rcv.Spec.Resources {
		if ref.Filter == "" {
			continue
		}
		e, err := expr.Compile(kind, ref.Filter)
		if err != nil {
			return f, fmt.Errorf("spec.resources[%d].filter (%s): %w", i, ref.Kind, err)
		}
		f.each[i] = e
	}
	return f, nil
}

// call is what a verified call gives the filters: `req`, and `claims` for generic-oidc (nil
// otherwise, and then not declared).
type call struct {
	req    map[string]any
	claims map[string]any
}

// pass says whether obj, selected by the Receiver's i-th resource, is to be asked to reconcile:
// both filters, where set, must be true.
func (f filters) pass(ctx context.Context, i int, obj *unstructured.Unstructured, c call) (bool, error) {
	// res is what Flux gives its filters: the object's metadata, not its spec or status.
	res := map[string]any{"apiVersion": obj.GetAPIVersion(), "kind": obj.GetKind(), "metadata": obj.Object["metadata"]}
	vars := map[string]any{"res": res, "req": c.req}
	if c.claims != nil {
		vars["claims"] = c.claims
	}
	for _, e := range []*expr.Expression{f.top, f.each[i]} {
		if e == nil {
			continue
		}
		ok, err := e.Bool(ctx, vars)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

// requestBody decodes a call's body for the filters' `req`, as Flux does: a JSON object when
// the Content-Type says application/json, otherwise empty. A type that finds its payload inside
// the body (gcr, a structured CloudEvent) gives it as payload: always JSON.
func requestBody(header http.Header, body, payload []byte) (map[string]any, error) {
	req := map[string]any{}
	if payload != nil {
		body = payload
	} else if !jsonContent(header.Get("Content-Type")) {
		return req, nil
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, fmt.Errorf("the body is not a JSON object: %w", err)
	}
	return req, nil
}

// jsonContent says whether a Content-Type (or a comma-separated list of them) is
// application/json.
func jsonContent(contentType string) bool {
	for v := range strings.SplitSeq(contentType, ",") {
		t, _, err := mime.ParseMediaType(v)
		if err != nil {
			return false
		}
		if t == "application/json" {
			return true
		}
	}
	return false
}
