package tags

import (
	"errors"
	"os"
	"testing"

	"k8s.io/apimachinery/pkg/types"
)

func TestStore(t *testing.T) {
	dir := t.TempDir()
	s, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	key := types.NamespacedName{Namespace: "apps", Name: "app"}
	if _, err := s.Get(key); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of nothing: %v, want ErrNotFound", err)
	}
	l, err := s.Put(key, "ghcr.io/acme/app", "ghcr.io/acme/app", []string{"1.1.0", "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	if l.Tags[0] != "1.0.0" || l.Revision != Revision([]string{"1.0.0", "1.1.0"}) {
		t.Fatalf("stored %+v, want sorted tags and an order-free revision", l)
	}
	// A new store over the same folder (a restart) reads the list from disk.
	s2, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s2.Get(key)
	if err != nil || got.Revision != l.Revision || len(got.Tags) != 2 || got.Image != "ghcr.io/acme/app" {
		t.Fatalf("after restart: %+v, %v", got, err)
	}
	if !s2.Has(key, l.Revision) || s2.Has(key, "sha256:other") {
		t.Fatal("Has does not match the stored revision")
	}
	if _, err := s.Put(key, "ghcr.io/acme/app", "ghcr.io/acme/app", []string{"2.0.0"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Get(key); got.Revision == l.Revision {
		t.Fatal("revision did not change with the tags")
	}
	if err := s.Delete(key); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(key); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after Delete: %v", err)
	}
	if s.Has(key, l.Revision) {
		t.Fatal("Has after Delete")
	}
	if err := s.Delete(key); err != nil {
		t.Fatalf("Delete twice: %v", err)
	}
	entries, _ := os.ReadDir(dir + "/apps")
	if len(entries) != 0 {
		t.Fatalf("left files behind: %v", entries)
	}
}
