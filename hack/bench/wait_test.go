package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"github.com/plumb-dev/plumb/shared/testing/testenv"
)

// TestWaitAll: waitAll follows the objects' changes, counting out again one that stops being
// done or is deleted, reports the count when the limit passes, and returns once n are done.
func TestWaitAll(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	env, err := testenv.Start(testenv.Options{Scheme: scheme})
	if err != nil {
		testenv.MissingTool(t, "kube-apiserver", err)
	}
	defer func() { _ = env.Stop() }()
	c := env.Client
	ctx := context.Background()
	const ns = "wait"
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	set := func(name, v string) {
		t.Helper()
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Data: map[string]string{"done": v}}
		if err := c.Update(ctx, cm); err != nil {
			if err := c.Create(ctx, cm); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := range 4 {
		set(fmt.Sprint("cm-", i), "no")
	}
	items := func(l *corev1.ConfigMapList) []corev1.ConfigMap { return l.Items }
	done := func(cm *corev1.ConfigMap) bool { return cm.Data["done"] == "yes" }

	err = waitAll(ctx, c, ns, 3, time.Second, items, done)
	if err == nil || !strings.Contains(err.Error(), "0 of 3 done after 1s") {
		t.Fatalf("with none done: %v, want 0 of 3 done after 1s", err)
	}

	// Done, undone, deleted: of these changes, made while it waits, one object stays done.
	result := make(chan error, 1)
	go func() { result <- waitAll(ctx, c, ns, 3, 3*time.Second, items, done) }()
	set("cm-0", "yes")
	set("cm-1", "yes")
	set("cm-1", "no")
	if err := c.Delete(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm-0", Namespace: ns}}); err != nil {
		t.Fatal(err)
	}
	set("cm-2", "yes")
	if err := <-result; err == nil || !strings.Contains(err.Error(), "1 of 3 done after 3s") {
		t.Fatalf("after done, undone, deleted and done: %v, want 1 of 3 done after 3s", err)
	}

	go func() { result <- waitAll(ctx, c, ns, 3, time.Minute, items, done) }()
	set("cm-1", "yes")
	set("cm-3", "yes")
	select {
	case err := <-result:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("waitAll did not return 30 s after three objects were done")
	}
}
