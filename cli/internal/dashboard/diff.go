package dashboard

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/pmezard/go-difflib/difflib"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/cli/internal/kinds"
	"github.com/plumb-dev/plumb/cli/internal/ops"
	"github.com/plumb-dev/plumb/shared/artifact"
	"github.com/plumb-dev/plumb/shared/kustomize"
)

// sideLine is one line of a side-by-side diff: the cluster's on the left, the build's on the
// right; Op is "equal", "delete", "insert" or "replace".
type sideLine struct {
	Op          string
	LeftNo      int
	Left        string
	RightNo     int
	Right       string
	Gap         bool
	LeftMissing bool
}

type diffChange struct {
	Subject, Action string
	Lines           []sideLine
}

type diffPage struct {
	base
	Href, Object, Revision string
	Changes                []diffChange
	Err                    string
}

func (s *Server) serveDiff(w http.ResponseWriter, r *http.Request) {
	k, u, ok := s.lookup(w, r)
	if !ok {
		return
	}
	p := diffPage{base: s.base("Drift of "+u.GetNamespace()+"/"+u.GetName(), ""), Href: hrefOf(keyOf(u)),
		Object: k.GVK.Kind + " " + u.GetNamespace() + "/" + u.GetName()}
	if k.GVK.Kind != applyv1.KustomizationKind {
		s.errorPage(w, r, http.StatusNotFound, "Only a Kustomization has a drift view.")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.Timeout)
	defer cancel()
	changes, rev, err := s.diff(ctx, r, u.Object)
	p.Revision = rev
	if err != nil {
		p.Err = err.Error()
		s.render(w, r, "diff", p)
		return
	}
	for _, ch := range changes {
		dc := diffChange{Subject: ch.Subject, Action: ch.Action}
		if ch.Action == ops.Changed {
			dc.Lines = sideBySide(ch.Live, ch.Merged)
		}
		p.Changes = append(p.Changes, dc)
	}
	s.render(w, r, "diff", p)
}

// diff builds the Kustomization from its source's current artifact and dry-runs it, as the
// person: the dry run is authorised as a write, and the postBuild Secrets are read as them.
func (s *Server) diff(ctx context.Context, r *http.Request, obj map[string]any) ([]ops.Change, string, error) {
	id, why := s.identity(r)
	if why != "" {
		return nil, "", fmt.Errorf("no drift view: %s A server-side dry run is authorised as a write, so it is done as the signed-in person", why)
	}
	uc, err := s.users.get(id)
	if err != nil {
		return nil, "", err
	}
	ks := &applyv1.Kustomization{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj, ks); err != nil {
		return nil, "", err
	}
	kind, ns := ks.Spec.SourceRef.Kind, ks.Spec.SourceRef.Namespace
	if ns == "" {
		ns = ks.Namespace
	}
	src := s.store.Get(kind, ns, ks.Spec.SourceRef.Name)
	if _, known := kinds.ByKind(kind); !known || src == nil {
		return nil, "", fmt.Errorf("its source %s %s/%s is not here", kind, ns, ks.Spec.SourceRef.Name)
	}
	a, err := artifact.FromStatus(src)
	if err != nil {
		return nil, "", err
	}
	if a.URL == "" {
		return nil, "", fmt.Errorf("its source %s %s/%s has no artifact yet", kind, ns, ks.Spec.SourceRef.Name)
	}
	data, err := s.fetch(ctx, uc.cfg, a)
	if err != nil {
		return nil, a.Revision, err
	}
	tree, err := kustomize.Load(bytes.NewReader(data), artifact.DefaultLimits)
	if err != nil {
		return nil, a.Revision, fmt.Errorf("artifact of %s %s/%s: %w", kind, ns, ks.Spec.SourceRef.Name, err)
	}
	changes, err := ops.DiffKustomization(ctx, uc.c, uc.cfg, ks, tree, false)
	return changes, a.Revision, err
}

// clusterService matches the host of an artifact URL served by a Service of the cluster:
// name.namespace.svc, with or without cluster.local.
var clusterService = regexp.MustCompile(`^([a-z0-9-]+)\.([a-z0-9-]+)\.svc(\.cluster\.local)?\.?$`)

// fetch downloads an artifact. Outside the cluster a Service's address does not resolve, so
// the download goes through the API server's service proxy, as the person (it needs
// services/proxy in source-controller's namespace).
func (s *Server) fetch(ctx context.Context, cfg *rest.Config, a meta.Artifact) ([]byte, error) {
	f := &artifact.Fetcher{Timeout: s.cfg.Timeout, Retries: -1}
	u, err := url.Parse(a.URL)
	if err != nil {
		return nil, fmt.Errorf("artifact URL: %w", err)
	}
	if m := clusterService.FindStringSubmatch(u.Hostname()); m != nil && !s.cfg.InCluster {
		httpClient, err := rest.HTTPClientFor(cfg)
		if err != nil {
			return nil, err
		}
		port := u.Port()
		if port == "" {
			port = "80"
		}
		host := strings.TrimSuffix(cfg.Host, "/")
		a.URL = fmt.Sprintf("%s/api/v1/namespaces/%s/services/%s:%s:%s/proxy%s", host, m[2], u.Scheme, m[1], port, u.EscapedPath())
		f.Client = httpClient
	}
	data, err := f.Fetch(ctx, &a)
	if err != nil {
		return nil, fmt.Errorf("download the artifact: %s", describeErr(err))
	}
	return data, nil
}

// sideBySide pairs the lines of two texts, with three lines of context around each change.
func sideBySide(a, b string) []sideLine {
	la, lb := difflib.SplitLines(a), difflib.SplitLines(b)
	m := difflib.NewMatcher(la, lb)
	var out []sideLine
	for gi, group := range m.GetGroupedOpCodes(3) {
		if gi > 0 {
			out = append(out, sideLine{Gap: true})
		}
		for _, op := range group {
			switch op.Tag {
			case 'e':
				for i := 0; i < op.I2-op.I1; i++ {
					out = append(out, sideLine{Op: "equal", LeftNo: op.I1 + i + 1, Left: trim(la[op.I1+i]), RightNo: op.J1 + i + 1, Right: trim(lb[op.J1+i])})
				}
			default:
				n := max(op.I2-op.I1, op.J2-op.J1)
				for i := range n {
					l := sideLine{Op: map[byte]string{'d': "delete", 'i': "insert", 'r': "replace"}[op.Tag]}
					if op.I1+i < op.I2 {
						l.LeftNo, l.Left = op.I1+i+1, trim(la[op.I1+i])
					} else {
						l.LeftMissing = true
					}
					if op.J1+i < op.J2 {
						l.RightNo, l.Right = op.J1+i+1, trim(lb[op.J1+i])
					}
					out = append(out, l)
				}
			}
		}
	}
	return out
}

func trim(s string) string { return strings.TrimRight(s, "\n") }
