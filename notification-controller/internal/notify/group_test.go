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
		{Kind: "Kustomization", Namespace: "shop", Name: "api", Revision: "r1", Severity: "error", Reason: "Progressing", Message: "applying\nDeployment/shop/api not ready"},
		b, next,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Group =\n%+v\nwant\n%+v", got, want)
	}
	if len(Group(nil)) != 0 {
		t.Fatal("nothing groups to nothing")
	}
}
