package notify

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// otlpReceiver is a loopback OTLP/HTTP traces endpoint: it decodes each request as the
// protocol says (POST of a protobuf ExportTraceServiceRequest, gzip when Content-Encoding says
// so) and answers with an ExportTraceServiceResponse, or the statuses given first.
type otlpReceiver struct {
	mu       sync.Mutex
	requests []*coltracepb.ExportTraceServiceRequest
	headers  []http.Header
	paths    []string
	statuses []int
	invalid  []string
}

func (o *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.statuses) > 0 {
		st := o.statuses[0]
		o.statuses = o.statuses[1:]
		if st == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "3")
		}
		w.WriteHeader(st)
		return
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			o.invalid = append(o.invalid, "gzip: "+err.Error())
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		body = zr
	}
	raw, _ := io.ReadAll(body)
	req := &coltracepb.ExportTraceServiceRequest{}
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-protobuf" || proto.Unmarshal(raw, req) != nil {
		o.invalid = append(o.invalid, r.Method+" "+r.Header.Get("Content-Type"))
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	o.requests = append(o.requests, req)
	o.headers = append(o.headers, r.Header.Clone())
	o.paths = append(o.paths, r.URL.Path)
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

func TestOTelSpans(t *testing.T) {
	g := NewWithT(t)
	rcv := &otlpReceiver{}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	o := &OTel{URL: srv.URL, Username: "plumb", Password: "s3cret", Headers: map[string]string{"X-Scope-OrgID": "team-a"}}
	n := failing
	n.Alert = map[string]any{"metadata": map[string]any{"namespace": "shop", "name": "deploys", "uid": "alert-uid"}}

	g.Expect(o.Send(context.Background(), n)).To(Succeed())
	g.Expect(o.Send(context.Background(), changed)).To(Succeed())
	g.Expect(rcv.invalid).To(BeEmpty())
	g.Expect(rcv.paths).To(Equal([]string{"/v1/traces", "/v1/traces"}), "an address with no path gets /v1/traces")
	g.Expect(rcv.headers[0].Get("Authorization")).To(Equal("Basic cGx1bWI6czNjcmV0"))
	g.Expect(rcv.headers[0].Get("X-Scope-OrgID")).To(Equal("team-a"))

	rs := rcv.requests[0].ResourceSpans
	g.Expect(rs).To(HaveLen(1))
	res := map[string]string{}
	for _, kv := range rs[0].Resource.Attributes {
		res[kv.Key] = kv.Value.GetStringValue()
	}
	g.Expect(res).To(And(HaveKeyWithValue("service.name", "shop/deploys"), HaveKeyWithValue("service.namespace", "shop"),
		HaveKeyWithValue("service.instance.id", "alert-uid")))
	span := rs[0].ScopeSpans[0].Spans[0]
	g.Expect(span.Name).To(Equal("Kustomization: shop/api"))
	sum := sha256.Sum256([]byte("alert-uid:" + sample.Revision))
	g.Expect(span.TraceId).To(Equal(sum[:16]), "the trace of the Alert and the revision")
	g.Expect(span.ParentSpanId).To(BeEmpty())
	g.Expect(span.StartTimeUnixNano).To(Equal(uint64(n.Time.UnixNano())))
	g.Expect(span.Status.Code).To(Equal(tracepb.Status_STATUS_CODE_ERROR))
	g.Expect(span.Status.Message).To(Equal(n.Message))
	got := map[string]string{}
	for _, kv := range span.Attributes {
		got[kv.Key] = kv.Value.GetStringValue()
	}
	g.Expect(got).To(Equal(map[string]string{
		"object.kind": "Kustomization", "object.namespace": "shop", "object.name": "api", "event.reason": "HealthCheckFailed",
		"event.severity": "error", "revision": sample.Revision, "reporting.controller": "apply-controller", "summary": "prod", "cluster": "eu-1",
	}))
	g.Expect(span.Events).To(HaveLen(1))
	g.Expect(span.Events[0].Name).To(Equal("HealthCheckFailed"))
	g.Expect(span.Events[0].Attributes[0].Value.GetStringValue()).To(Equal(n.Message))
	ok := rcv.requests[1].ResourceSpans[0].ScopeSpans[0].Spans[0]
	g.Expect(ok.Status.Code).To(Equal(tracepb.Status_STATUS_CODE_OK))
}

func TestOTelFailedDelivery(t *testing.T) {
	g := NewWithT(t)
	rcv := &otlpReceiver{statuses: []int{http.StatusUnauthorized, http.StatusTooManyRequests, http.StatusServiceUnavailable}}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	o := &OTel{URL: srv.URL + "/secret-tenant/v1/traces", Token: "t0ken"}

	err := o.Send(context.Background(), failing)
	var re *RetryableError
	g.Expect(err).To(MatchError(ContainSubstring("answered 401 Unauthorized")))
	g.Expect(errors.As(err, &re)).To(BeFalse(), "401 is not retried")
	g.Expect(err.Error()).NotTo(Or(ContainSubstring("secret-tenant"), ContainSubstring("t0ken")))
	err = o.Send(context.Background(), failing)
	g.Expect(errors.As(err, &re)).To(BeTrue(), "429 is retried: %v", err)
	g.Expect(re.RetryAfter).To(Equal(3 * time.Second))
	err = o.Send(context.Background(), failing)
	g.Expect(errors.As(err, &re)).To(BeTrue(), "5xx is retried: %v", err)
	g.Expect(rcv.requests).To(BeEmpty())
	g.Expect(o.Send(context.Background(), failing)).To(Succeed())
	g.Expect(rcv.headers[0].Get("Authorization")).To(Equal("Bearer t0ken"))
	g.Expect(rcv.paths[0]).To(Equal("/secret-tenant/v1/traces"))

	srv.Close()
	err = o.Send(context.Background(), failing)
	g.Expect(errors.As(err, &re)).To(BeTrue(), "unreachable is retried: %v", err)
	g.Expect(err.Error()).NotTo(ContainSubstring("secret-tenant"))
}
