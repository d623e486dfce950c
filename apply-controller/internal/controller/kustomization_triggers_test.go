package controller

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/shared/refwatch"
)

const triggerGroup = "triggers.plumb.test"

// installKind creates a namespaced CRD with a status subresource, labeled as a reference
// target, as another controller's installation would, while apply-controller is already
// running.
func installKind(g *WithT, kind, plural string) {
	crd := &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: plural + "." + triggerGroup,
			Labels: map[string]string{refwatch.ReferenceTargetLabel: "true"}}, // a third party's kind opts in
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: triggerGroup,
			Names: apiextensionsv1.CustomResourceDefinitionNames{Kind: kind, ListKind: kind + "List", Plural: plural, Singular: plural[:len(plural)-1]},
			Scope: apiextensionsv1.NamespaceScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: "v1", Served: true, Storage: true,
				Subresources: &apiextensionsv1.CustomResourceSubresources{Status: &apiextensionsv1.CustomResourceSubresourceStatus{}},
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object", XPreserveUnknownFields: ptrTo(true),
				}},
			}},
		},
	}
	g.Expect(k8s.Create(context.Background(), crd)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(crd), crd)).To(Succeed())
		established := false
		for _, c := range crd.Status.Conditions {
			established = established || (c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue)
		}
		g.Expect(established).To(BeTrue())
	}, timeout, 100*time.Millisecond).Should(Succeed())
}

func ptrTo[T any](v T) *T { return &v }

// setStatus replaces an object's status, with a Ready condition at its generation when ready.
func setStatus(g *WithT, u *unstructured.Unstructured, ready bool, extra map[string]any) {
	g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(u), u)).To(Succeed())
	st := metav1.ConditionFalse
	if ready {
		st = metav1.ConditionTrue
	}
	status := map[string]any{
		"observedGeneration": u.GetGeneration(),
		"conditions": []any{map[string]any{
			"type": "Ready", "status": string(st), "reason": "Test", "message": "set by the test",
			"lastTransitionTime": time.Now().UTC().Format(time.RFC3339),
		}},
	}
	for k, v := range extra {
		status[k] = v
	}
	u.Object["status"] = status
	g.Expect(k8s.Status().Update(context.Background(), u)).To(Succeed())
}

// A source and a dependency of kinds unknown when the controller started (as when another
// controller is installed later) trigger reconciles as GitRepositories and Kustomizations do:
// with interval and retryInterval at an hour, only the watches can make these steps happen.
func TestKustomization_TriggersFromKindsInstalledLater(t *testing.T) {
	g := NewWithT(t)
	installKind(g, "Archive", "archives")
	installKind(g, "Gate", "gates")
	ns := newNamespace(t)

	archive := &unstructured.Unstructured{}
	archive.SetAPIVersion(triggerGroup + "/v1")
	archive.SetKind("Archive")
	archive.SetNamespace(ns)
	archive.SetName("app")
	g.Expect(k8s.Create(context.Background(), archive)).To(Succeed())
	publish := func(revision, value string) {
		a := artifacts.publish(t, revision, map[string]string{"deploy/cm.yaml": configMap("cm", value)})
		raw, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&a)
		g.Expect(err).NotTo(HaveOccurred())
		setStatus(g, archive, true, map[string]any{"artifact": raw})
	}
	publish("v1@sha256:1", "one")

	gate := &unstructured.Unstructured{}
	gate.SetAPIVersion(triggerGroup + "/v1")
	gate.SetKind("Gate")
	gate.SetNamespace(ns)
	gate.SetName("gate")
	g.Expect(k8s.Create(context.Background(), gate)).To(Succeed())
	setStatus(g, gate, false, nil)

	k := newKustomization(ns, "app", func(k *applyv1.Kustomization) {
		k.Spec.SourceRef = applyv1.CrossNamespaceSourceReference{APIVersion: triggerGroup + "/v1", Kind: "Archive", Name: "app"}
		k.Spec.DependsOn = []applyv1.DependencyReference{{APIVersion: triggerGroup + "/v1", Kind: "Gate", Name: "gate"}}
		k.Spec.RetryInterval = &metav1.Duration{Duration: time.Hour}
	})
	g.Expect(k8s.Create(context.Background(), k)).To(Succeed())
	g.Expect(waitNotReady(g, k, applyv1.DependencyNotReadyReason)).To(ContainSubstring("Gate " + ns + "/gate is not ready"))

	setStatus(g, gate, true, nil)
	waitApplied(g, k, "v1@sha256:1")

	publish("v2@sha256:2", "two")
	waitApplied(g, k, "v2@sha256:2")
	cm := &corev1.ConfigMap{}
	g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "cm"}, cm)).To(Succeed())
	g.Expect(cm.Data).To(HaveKeyWithValue("key", "two"))
	g.Expect(conditions.IsStalled(k)).To(BeFalse())
}

// A build that reaches a remote base is made again on every reconcile: the base may change
// without a new artifact.
func TestKustomization_RemoteBaseIsFetchedEachTime(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	var mu sync.Mutex
	value := "one"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		_, _ = w.Write([]byte(configMap("remote", value)))
	}))
	defer srv.Close()
	source(t, ns, "app", "main@sha1:1", map[string]string{
		"deploy/kustomization.yaml": "resources:\n- " + srv.URL + "/cm.yaml\n",
	})
	k := newKustomization(ns, "app")
	g.Expect(k8s.Create(context.Background(), k)).To(Succeed())
	waitApplied(g, k, "main@sha1:1")
	cm := &corev1.ConfigMap{}
	g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "remote"}, cm)).To(Succeed())
	g.Expect(cm.Data).To(HaveKeyWithValue("key", "one"))

	mu.Lock()
	value = "two"
	mu.Unlock()
	requestReconcile(g, k)
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "remote"}, cm)).To(Succeed())
		g.Expect(cm.Data).To(HaveKeyWithValue("key", "two"))
	}, timeout, 100*time.Millisecond).Should(Succeed())
}
