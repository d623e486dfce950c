package status

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/plumb-dev/plumb/shared/testing/testenv"
)

var gitRepository = schema.GroupVersionKind{Group: "source.plumb.dev", Version: "v1beta1", Kind: "GitRepository"}

// The whole status goes in one write, so that a watcher never sees Ready=True next to an old
// observedGeneration (the contract's T5), and the finalizer in one more; nothing is sent when
// nothing changed.
func TestPatcherWritesTheStatusOnce(t *testing.T) {
	env, err := testenv.Start(testenv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := env.Client
	wc, err := client.NewWithWatch(env.Config, client.Options{Scheme: c.Scheme()})
	if err != nil {
		t.Fatal(err)
	}

	obj := &unstructured.Unstructured{}
	obj.SetGroupVersionKind(gitRepository)
	obj.SetNamespace("default")
	obj.SetName("one-write")
	obj.Object["spec"] = map[string]any{"url": "https://example.invalid/repo.git", "interval": "5m"}
	if err := c.Create(ctx, obj); err != nil {
		t.Fatal(err)
	}
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(gitRepository.GroupVersion().WithKind("GitRepositoryList"))
	w, err := wc.Watch(ctx, list, client.InNamespace("default"), client.MatchingFields{"metadata.name": "one-write"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	first := <-w.ResultChan() // the object as created
	if first.Type != watch.Added {
		t.Fatalf("first watch event %s, want ADDED", first.Type)
	}

	p := NewPatcher(c, obj)
	obj.SetFinalizers([]string{"plumb.dev/finalizer"})
	obj.Object["status"] = map[string]any{
		"observedGeneration": obj.GetGeneration(),
		"conditions": []any{map[string]any{"type": "Ready", "status": "True", "reason": "Succeeded",
			"message": "stored artifact", "lastTransitionTime": metav1.Now().UTC().Format(time.RFC3339)}},
	}
	if err := p.Patch(ctx, obj, "test"); err != nil {
		t.Fatal(err)
	}
	if err := p.Patch(ctx, obj, "test"); err != nil { // nothing changed: nothing sent
		t.Fatal(err)
	}
	if !p.Wrote() {
		t.Error("Wrote after a successful patch: false")
	}
	// Mark a change after the two patches, so that the watch can be read to the end.
	obj.SetLabels(map[string]string{"done": "yes"})
	if err := c.Update(ctx, obj); err != nil {
		t.Fatal(err)
	}

	var statusWrites, metaWrites int
	for ev := range w.ResultChan() {
		u := ev.Object.(*unstructured.Unstructured)
		if u.GetLabels()["done"] == "yes" {
			break
		}
		conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
		og, _, _ := unstructured.NestedInt64(u.Object, "status", "observedGeneration")
		switch {
		case len(conds) > 0:
			statusWrites++
			if og != u.GetGeneration() {
				t.Errorf("a watcher saw Ready next to observedGeneration %d of generation %d", og, u.GetGeneration())
			}
		case len(u.GetFinalizers()) > 0:
			metaWrites++
		}
	}
	if statusWrites != 1 || metaWrites != 1 {
		t.Errorf("%d status writes and %d metadata writes, want 1 and 1", statusWrites, metaWrites)
	}

	// A write that fails is not one the server holds.
	obj.SetFinalizers(nil)
	if err := c.Update(ctx, obj); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, obj); err != nil {
		t.Fatal(err)
	}
	p = NewPatcher(c, obj)
	obj.Object["status"] = map[string]any{"observedGeneration": obj.GetGeneration() + 1}
	if err := p.Patch(ctx, obj, "test"); err == nil {
		t.Fatal("patching a deleted object succeeded")
	}
	if p.Wrote() {
		t.Error("Wrote after a failed patch: true")
	}
}
