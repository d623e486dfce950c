package controller

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
)

func TestAdded(t *testing.T) {
	obj := func(apiVersion, kind, ns, name string) *unstructured.Unstructured {
		u := &unstructured.Unstructured{}
		u.SetAPIVersion(apiVersion)
		u.SetKind(kind)
		u.SetNamespace(ns)
		u.SetName(name)
		return u
	}
	objs := []*unstructured.Unstructured{
		obj("v1", "ConfigMap", "shop", "kept"),
		obj("v1", "ConfigMap", "shop", "new"),
		obj("apps/v1", "Deployment", "shop", "web"),
		obj("v1", "Namespace", "", "shop"),
		obj("v1", "ConfigMap", "shop", "new"), // twice in the build: once in the inventory
	}
	cases := []struct {
		name string
		inv  *applyv1.Inventory
		want *applyv1.Inventory
	}{
		{name: "no inventory yet", inv: nil, want: &applyv1.Inventory{Entries: []applyv1.InventoryEntry{
			{ID: "shop_kept__ConfigMap", Version: "v1"},
			{ID: "shop_new__ConfigMap", Version: "v1"},
			{ID: "shop_web_apps_Deployment", Version: "v1"},
			{ID: "_shop__Namespace", Version: "v1"},
		}}},
		{name: "some known", inv: &applyv1.Inventory{Entries: []applyv1.InventoryEntry{
			{ID: "shop_kept__ConfigMap", Version: "v1"},
			{ID: "_shop__Namespace", Version: "v1"},
			{ID: "shop_gone__ConfigMap", Version: "v1"},
		}}, want: &applyv1.Inventory{Entries: []applyv1.InventoryEntry{
			{ID: "shop_new__ConfigMap", Version: "v1"},
			{ID: "shop_web_apps_Deployment", Version: "v1"},
		}}},
		{name: "all known", inv: &applyv1.Inventory{Entries: []applyv1.InventoryEntry{
			{ID: "shop_kept__ConfigMap", Version: "v1"}, {ID: "shop_new__ConfigMap", Version: "v1"},
			{ID: "shop_web_apps_Deployment", Version: "v1"}, {ID: "_shop__Namespace", Version: "v1"},
		}}, want: &applyv1.Inventory{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, added(tc.inv, objs)); diff != "" {
				t.Errorf("added (-want +got):\n%s", diff)
			}
		})
	}
}
