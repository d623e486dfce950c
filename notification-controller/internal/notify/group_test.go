package notify

import (
	"reflect"
	"testing"
)

func TestGroup(t *testing.T) {
	a1 := Notification{Kind: "Kustomization", Namespace: "shop", Name: "api", Revision: "r1", Severity: "info", Reason: "Progressing", Message: "applying"}
	a2 := Notification{Kind: "Kustomization", Namespace: "shop", Name: "api", Revision: "r1", Severity: "error", Reason: "HealthCheckFailed", Message: "Deployment/shop/api not ready"}
	a3 := Notification{Kind: "Kustomization", Namespace: "shop", Name: "api", Revision: "r1", Severity: "info", Reason: "Progressing", Message: "applying"}
	b := Notification{Kind: "Kustomization", Namespace: "shop", Name: "web", Revision: "r1", Severity: "info", Reason: "Succeeded", Message: "ok"}
	next := Notification{Kind: "Kustomization", Namespace: "shop", Name: "api", Revision: "r2", Severity: "info", Reason: "Succeeded", Message: "applied r2"}
	got := Group([]Notification{a1, b, a2, a3, next})
	want := []Notification{
		{Kind: "Kustomization", Namespace: "shop", Name: "api", Revision: "r1", Severity: "error", Reason: "HealthCheckFailed", Message: "applying\nDeployment/shop/api not ready"},
		b, next,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Group =\n%+v\nwant\n%+v", got, want)
	}
	// A burst that ends in a recovery is one; one that fails after a recovery is not.
	failed := a2
	recovered := Notification{Kind: "Kustomization", Namespace: "shop", Name: "api", Revision: "r1", Severity: "info", Reason: "Succeeded", Message: "ok", Recovers: []string{"HealthCheckFailed"}}
	if g := Group([]Notification{failed, recovered}); len(g) != 1 || !g[0].Recovery() || g[0].Reason != "HealthCheckFailed" {
		t.Fatalf("failure then recovery grouped as %+v", g)
	}
	if g := Group([]Notification{recovered, failed}); len(g) != 1 || g[0].Recovery() || g[0].Severity != "error" {
		t.Fatalf("recovery then failure grouped as %+v", g)
	}
	if len(Group(nil)) != 0 {
		t.Fatal("nothing groups to nothing")
	}
}
