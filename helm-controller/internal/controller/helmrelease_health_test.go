package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	helmv1 "github.com/plumb-dev/plumb/helm-controller/api/v1beta1"
	plumbrelease "github.com/plumb-dev/plumb/helm-controller/internal/release"
	"github.com/plumb-dev/plumb/shared/objcache"
)

// workerDeployment is a Deployment of one replica: with no kubelet in the test bed its Pod is
// never ready until the test makes it so, and then kube-controller-manager makes the Deployment
// Available.
const workerDeployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-worker
spec:
  replicas: 1
  selector:
    matchLabels: {app: {{ .Release.Name }}-worker}
  template:
    metadata:
      labels: {app: {{ .Release.Name }}-worker}
    spec:
      containers:
        - name: worker
          image: registry.example.invalid/worker:1
`

// watching waits until the watch of the objects Helm made answers for the kinds: each kind's
// watch starts when a release first meets it, and a wait reads the objects of a kind until then.
func watching(g *WithT, ns string, gvks ...schema.GroupVersionKind) {
	for _, gvk := range gvks {
		g.Eventually(func() bool {
			_, _, synced := reconciler.objects.Get(context.Background(), objcache.Key{GVK: gvk, Namespace: ns, Name: "none"})
			return synced
		}, timeout, 20*time.Millisecond).Should(BeTrue(), "the watch of %s", gvk.Kind)
	}
}

var (
	deploymentGVK = appsv1.SchemeGroupVersion.WithKind("Deployment")
	configMapGVK  = corev1.SchemeGroupVersion.WithKind("ConfigMap")
)

// Health from watches: the wait judges the release's objects first by the install's answers,
// then its Deployments by the watch of the objects Helm made, woken when one changes. No object
// of the release is read after the install, however long the wait; a Deployment that becomes
// Available ends the wait at once, not at the next poll; and the watch's copy of an object is
// not trusted below the generation the action wrote.
func TestHelmRelease_HealthFromWatches(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	watching(g, ns, deploymentGVK, configMapGVK)
	chartSource(t, ns, "app", withTemplate(testChart("1.0.0", false), "worker.yaml", workerDeployment))
	hr := newRelease(ns, "app", func(hr *helmv1.HelmRelease) {
		hr.Spec.Timeout = &metav1.Duration{Duration: 2 * time.Minute}
	})
	m := requests.mark()
	g.Expect(k8s.Create(ctx, hr)).To(Succeed())

	pod := onlyPod(g, ns, client.MatchingLabels{"app": "web-worker"})
	// While the Pod is not ready the release is not healthy; meanwhile the wait has backed off
	// past a 2 s poll.
	g.Consistently(func(g Gomega) {
		getHR(g, hr)
		g.Expect(conditions.GetReason(hr, meta.ReadyCondition)).To(Equal(helmv1.ProgressingReason), conditions.GetMessage(hr, meta.ReadyCondition))
	}, 4*time.Second, 200*time.Millisecond).Should(Succeed())

	// The test plays the kubelet: the Pod is ready, kube-controller-manager makes the
	// Deployment Available.
	now := metav1.Now()
	pod.Status.Phase = corev1.PodRunning
	pod.Status.StartTime = &now
	pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now}}
	g.Expect(k8s.Status().Update(ctx, &pod)).To(Succeed())
	var available time.Time
	g.Eventually(func(g Gomega) {
		dep := &appsv1.Deployment{}
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web-worker"}, dep)).To(Succeed())
		g.Expect(dep.Status.AvailableReplicas).To(BeEquivalentTo(1))
	}, timeout, 5*time.Millisecond).Should(Succeed())
	available = time.Now()
	// The wait's end is the revision labelled healthy in Helm's storage.
	g.Eventually(func(g Gomega) {
		s := &corev1.Secret{}
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "sh.helm.release.v1.web.v1"}, s)).To(Succeed())
		g.Expect(s.Labels).To(HaveKeyWithValue(plumbrelease.HealthyLabel, "true"))
	}, timeout, 5*time.Millisecond).Should(Succeed())
	took := time.Since(available)
	t.Logf("Deployment Available to the revision labelled healthy: %v", took)
	g.Expect(took).To(BeNumerically("<", time.Second), "woken by the change, not at a poll (2 s, or 30 s while the watch wakes the wait)")
	waitReleased(g, hr, "1.0.0")

	// No object of the release was read after the install wrote it (Helm itself reads each
	// before, to see whether it may adopt it).
	log := requests.since(m, ns)
	last := -1
	for i, l := range log {
		if strings.HasPrefix(l, "POST /apis/apps/v1/namespaces/"+ns+"/deployments") || strings.HasPrefix(l, "POST /api/v1/namespaces/"+ns+"/configmaps") {
			last = i
		}
	}
	g.Expect(last).To(BeNumerically(">=", 0), "the install's writes: %q", log)
	for _, l := range log[last+1:] {
		g.Expect(l).NotTo(MatchRegexp(`^GET .*/(deployments|configmaps)/web`), "a read of a release object after the install")
	}

	// The watch's copy is trusted from the generation written (or read) on, not below.
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(deploymentGVK)
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web-worker"}, u)).To(Succeed())
	w := &healthWatch{r: reconciler, local: true, floors: map[objcache.Key]int64{}}
	g.Expect(w.cached(ctx, u)).To(BeNil(), "no floor: nothing written or read by this wait")
	w.floors[keyOf(u)] = u.GetGeneration() + 1
	g.Expect(w.cached(ctx, u)).To(BeNil(), "the watch has not seen the generation written")
	w.floors[keyOf(u)] = u.GetGeneration()
	g.Expect(w.cached(ctx, u)).NotTo(BeNil())
}
