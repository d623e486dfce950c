package cel

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func certificate(gen, observed int64, ready string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "cert.example.com/v1",
		"kind":       "Certificate",
		"metadata":   map[string]any{"name": "web", "generation": gen},
	}}
	if ready != "" {
		u.Object["status"] = map[string]any{
			"observedGeneration": observed,
			"conditions":         []any{map[string]any{"type": "Ready", "status": ready}},
		}
	}
	return u
}

var certCheck = HealthCheck{
	APIVersion: "cert.example.com/v1", Kind: "Certificate",
	Current: "status.conditions.exists(c, c.type == 'Ready' && c.status == 'True')",
	Failed:  "status.conditions.exists(c, c.type == 'Ready' && c.status == 'False')",
}

func TestEvaluatorStatus(t *testing.T) {
	ev, err := NewEvaluator("spec.healthCheckExprs", []HealthCheck{certCheck})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		obj  *unstructured.Unstructured
		want status.Status
		msg  string
	}{
		{"current", certificate(2, 2, "True"), status.CurrentStatus, ""},
		{"failed", certificate(2, 2, "False"), status.FailedStatus, ""},
		{"neither", certificate(2, 2, "Unknown"), status.InProgressStatus, "no expression"},
		{"generation not observed", certificate(3, 2, "True"), status.InProgressStatus, "not yet observed"},
		{"no status yet: the evaluation error is the message", certificate(1, 0, ""), status.InProgressStatus, "status"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, ok := ev.Status(context.Background(), tc.obj)
			if !ok {
				t.Fatal("the Certificate is not judged")
			}
			if res.Status != tc.want || !strings.Contains(res.Message, tc.msg) {
				t.Fatalf("status = %s %q, want %s containing %q", res.Status, res.Message, tc.want, tc.msg)
			}
		})
	}
	other := certificate(1, 1, "True")
	other.SetKind("Issuer")
	if _, ok := ev.Status(context.Background(), other); ok {
		t.Fatal("an Issuer is judged by the Certificate's entry")
	}
}

func TestEvaluatorGroupEntry(t *testing.T) {
	ev, err := NewEvaluator("f", []HealthCheck{
		{APIVersion: "cert.example.com/v2", Current: "true"},
		{APIVersion: "cert.example.com/v1", Kind: "Certificate", Current: "false", InProgress: "false"},
	})
	if err != nil {
		t.Fatal(err)
	}
	issuer := certificate(1, 1, "True")
	issuer.SetKind("Issuer")
	if res, ok := ev.Status(context.Background(), issuer); !ok || res.Status != status.CurrentStatus {
		t.Fatalf("Issuer: %v %v, want Current by the group entry (any version)", res, ok)
	}
	if res, ok := ev.Status(context.Background(), certificate(1, 1, "True")); !ok || res.Status != status.InProgressStatus {
		t.Fatalf("Certificate: %v %v, want InProgress by its own entry", res, ok)
	}
}

func TestNewEvaluatorErrors(t *testing.T) {
	cases := []struct {
		name   string
		checks []HealthCheck
		want   []string
	}{
		{"syntax", []HealthCheck{{APIVersion: "cert.example.com/v1", Kind: "Certificate", Current: "status.conditions.exists(c,"}},
			[]string{"spec.healthCheckExprs[0].current", "Certificate.cert.example.com", "status.conditions.exists(c,"}},
		{"no current", []HealthCheck{{APIVersion: "x.io/v1", Kind: "A"}}, []string{"[0].current", "required"}},
		{"duplicate", []HealthCheck{{APIVersion: "x.io/v1", Kind: "A", Current: "true"}, {APIVersion: "x.io/v2", Kind: "A", Current: "true"}},
			[]string{"[1]", "second entry"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewEvaluator("spec.healthCheckExprs", tc.checks)
			var ce *CheckError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v, want a *CheckError", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestDependency(t *testing.T) {
	self := map[string]any{"metadata": map[string]any{"labels": map[string]any{"v": "1"}}}
	dep := map[string]any{"metadata": map[string]any{"labels": map[string]any{"v": "1"}}}
	x, err := Dependency("dep.metadata.labels['v'] == self.metadata.labels['v']")
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := x.EvalDependency(context.Background(), self, dep); err != nil || !ok {
		t.Fatalf("= %v, %v; want true", ok, err)
	}
	dep["metadata"] = map[string]any{"labels": map[string]any{"v": "2"}}
	if ok, err := x.EvalDependency(context.Background(), self, dep); err != nil || ok {
		t.Fatalf("= %v, %v; want false", ok, err)
	}
	for _, bad := range []string{"self.generation == deps.generation", "dep.metadata.name", "dep.("} {
		if _, err := Dependency(bad); !errors.Is(err, ErrCompile) || !strings.Contains(err.Error(), bad) {
			t.Errorf("Dependency(%q) error = %v, want ErrCompile naming it", bad, err)
		}
	}
	y, _ := Dependency("dep.metadata.labels['v'] == self.metadata.labels['v']")
	if x.e != y.e {
		t.Error("the same expression was compiled twice")
	}
}

func TestCostLimit(t *testing.T) {
	x, err := Object("[1,2,3,4,5,6,7,8,9,10].all(a, [1,2,3,4,5,6,7,8,9,10].all(b, [1,2,3,4,5,6,7,8,9,10].all(c, [1,2,3,4,5,6,7,8,9,10].all(d, [1,2,3,4,5,6,7,8,9,10].all(e, [1,2,3,4,5,6,7,8,9,10].all(f, a+b+c+d+e+f > 0))))))")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := x.Eval(context.Background(), map[string]any{}); err == nil || !strings.Contains(err.Error(), "cost") {
		t.Fatalf("error = %v, want the cost limit", err)
	}
}
