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
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
	plumbevents "github.com/plumb-dev/plumb/shared/events"
	plumbreconcile "github.com/plumb-dev/plumb/shared/reconcile"
	"github.com/plumb-dev/plumb/shared/testing/testenv"
)

const timeout = 60 * time.Second

func configMap(name, value string) string {
	return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + name + "\ndata:\n  key: \"" + value + "\"\n"
}

const idleDeployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 0
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: registry.example.invalid/web:1.0.0
`

func newKustomization(ns, source string, mutate ...func(*applyv1.Kustomization)) *applyv1.Kustomization {
	k := &applyv1.Kustomization{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "ks-", Namespace: ns},
		Spec: applyv1.KustomizationSpec{
			SourceRef:       applyv1.CrossNamespaceSourceReference{Kind: "GitRepository", Name: source},
			Path:            "deploy",
			Interval:        metav1.Duration{Duration: time.Hour},
			RetryInterval:   &metav1.Duration{Duration: time.Second},
			Prune:           true,
			TargetNamespace: ns,
		},
	}
	for _, m := range mutate {
		m(k)
	}
	return k
}

func getK(g Gomega, k *applyv1.Kustomization) *applyv1.Kustomization {
	g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(k), k)).To(Succeed())
	return k
}

func waitApplied(g *WithT, k *applyv1.Kustomization, revision string) {
	g.Eventually(func(g Gomega) {
		getK(g, k)
		g.Expect(conditions.IsReady(k)).To(BeTrue(), "Ready: %s", conditions.GetMessage(k, meta.ReadyCondition))
		g.Expect(k.Status.LastAppliedRevision).To(Equal(revision))
		g.Expect(k.Status.ObservedGeneration).To(Equal(k.Generation))
	}, timeout, 100*time.Millisecond).Should(Succeed())
}

func waitNotReady(g *WithT, k *applyv1.Kustomization, reason string) string {
	var msg string
	g.Eventually(func(g Gomega) {
		getK(g, k)
		g.Expect(conditions.GetReason(k, meta.ReadyCondition)).To(Equal(reason), conditions.GetMessage(k, meta.ReadyCondition))
		g.Expect(conditions.IsFalse(k, meta.ReadyCondition)).To(BeTrue())
		msg = conditions.GetMessage(k, meta.ReadyCondition)
	}, timeout, 100*time.Millisecond).Should(Succeed())
	return msg
}

// requestReconcile sets the reconcile annotation to a new value and returns it.
func requestReconcile(g *WithT, k *applyv1.Kustomization) string {
	v := time.Now().Format(time.RFC3339Nano)
	g.Expect(k8s.Patch(context.Background(), k, plumbreconcile.RequestPatch(v))).To(Succeed())
	return v
}

// handled waits until the controller has handled the reconcile request v.
func handled(g *WithT, k *applyv1.Kustomization, v string) {
	g.Eventually(func(g Gomega) {
		g.Expect(getK(g, k).Status.LastHandledReconcileAt).To(Equal(v))
	}, timeout).Should(Succeed())
}

func exists(ns, name string, obj client.Object) bool {
	err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, obj)
	return err == nil
}

func TestKustomization_ApplyPruneAndFailureSafety(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	gr := source(t, ns, "app", "main@sha1:1", map[string]string{
		"deploy/web.yaml": idleDeployment, "deploy/a.yaml": configMap("a", "1"), "deploy/b.yaml": configMap("b", "1"),
	})
	k := newKustomization(ns, gr.Name, func(k *applyv1.Kustomization) { k.Spec.Wait = true })
	g.Expect(k8s.Create(context.Background(), k)).To(Succeed())
	waitApplied(g, k, "main@sha1:1")

	g.Expect(k.Status.Inventory.Entries).To(HaveLen(3))
	g.Expect(conditions.IsTrue(k, HealthyCondition)).To(BeTrue(), "the Deployment scaled to 0 is Available")
	cm := &corev1.ConfigMap{}
	g.Expect(exists(ns, "a", cm)).To(BeTrue())
	g.Expect(cm.Labels).To(HaveKeyWithValue("apply.plumb.dev/name", k.Name))
	g.Expect(k.Status.History).To(HaveLen(1))
	g.Expect(k.Status.History[0].Digest).To(HavePrefix("sha256:"))
	g.Eventually(func(g Gomega) {
		var events eventsv1.EventList
		g.Expect(k8s.List(context.Background(), &events, client.InNamespace(ns))).To(Succeed())
		g.Expect(events.Items).To(ContainElement(SatisfyAll(
			HaveField("Regarding.Name", k.Name),
			HaveField("Reason", applyv1.SucceededReason),
			HaveField("Note", ContainSubstring("ConfigMap/"+ns+"/a created")),
			HaveField("ObjectMeta.Annotations", HaveKeyWithValue(plumbevents.RevisionAnnotation, "main@sha1:1")),
		)))
	}, timeout).Should(Succeed())

	// A new revision drops b and changes a: b is pruned, a configured.
	setArtifact(t, gr, "main@sha1:2", map[string]string{"deploy/web.yaml": idleDeployment, "deploy/a.yaml": configMap("a", "2")})
	waitApplied(g, k, "main@sha1:2")
	g.Expect(exists(ns, "b", &corev1.ConfigMap{})).To(BeFalse(), "pruned")
	g.Expect(exists(ns, "a", cm)).To(BeTrue())
	g.Expect(cm.Data["key"]).To(Equal("2"))
	g.Expect(k.Status.Inventory.Entries).To(HaveLen(2))

	// A broken revision: Ready=False, nothing applied, nothing pruned, last applied kept.
	setArtifact(t, gr, "main@sha1:3", map[string]string{"deploy/web.yaml": "kind: [\n"})
	msg := waitNotReady(g, k, applyv1.BuildFailedReason)
	g.Expect(msg).To(ContainSubstring("web.yaml"))
	g.Expect(k.Status.LastAppliedRevision).To(Equal("main@sha1:2"))
	g.Expect(k.Status.LastAttemptedRevision).To(Equal("main@sha1:3"))
	g.Expect(exists(ns, "a", &corev1.ConfigMap{})).To(BeTrue())
	g.Expect(exists(ns, "web", &appsv1.Deployment{})).To(BeTrue())
	g.Expect(conditions.IsReconciling(k)).To(BeTrue())

	// An object the API server refuses: ApplyFailed naming it, nothing pruned.
	setArtifact(t, gr, "main@sha1:4", map[string]string{"deploy/bad.yaml": configMap("Bad_Name", "x")})
	msg = waitNotReady(g, k, applyv1.ApplyFailedReason)
	g.Expect(msg).To(ContainSubstring("Bad_Name"))
	g.Expect(exists(ns, "a", &corev1.ConfigMap{})).To(BeTrue())
	g.Expect(k.Status.Inventory.Entries).To(HaveLen(2))

	// Deleting the Kustomization (prune: true) deletes what it applied.
	g.Expect(k8s.Delete(context.Background(), k)).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8s.Get(context.Background(), client.ObjectKeyFromObject(k), k))
	}, timeout).Should(BeTrue())
	g.Eventually(func() bool { return exists(ns, "a", &corev1.ConfigMap{}) }, timeout).Should(BeFalse())
}

func TestKustomization_DriftCorrectAndWarn(t *testing.T) {
	ns := newNamespace(t)
	for _, tc := range []struct{ policy, want string }{
		{applyv1.DriftPolicyCorrect, "git"},
		{applyv1.DriftPolicyWarn, "hand"},
	} {
		t.Run(tc.policy, func(t *testing.T) {
			g := NewWithT(t)
			name := strings.ToLower(tc.policy)
			gr := source(t, ns, name, "main@sha1:1", map[string]string{"deploy/cm.yaml": configMap(name, "git")})
			k := newKustomization(ns, gr.Name, func(k *applyv1.Kustomization) { k.Spec.DriftPolicy = tc.policy })
			g.Expect(k8s.Create(context.Background(), k)).To(Succeed())
			waitApplied(g, k, "main@sha1:1")

			cm := &corev1.ConfigMap{}
			g.Expect(exists(ns, name, cm)).To(BeTrue())
			cm.Data["key"] = "hand"
			g.Expect(k8s.Update(context.Background(), cm, client.FieldOwner("kubectl-edit"))).To(Succeed())
			requestReconcile(g, k)
			if tc.want == "git" {
				g.Eventually(func(g Gomega) {
					g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(cm), cm)).To(Succeed())
					g.Expect(cm.Data["key"]).To(Equal("git"))
				}, timeout).Should(Succeed())
				return
			}
			g.Eventually(func(g Gomega) {
				g.Expect(conditions.GetMessage(getK(g, k), meta.ReadyCondition)).To(ContainSubstring("drifted"))
			}, timeout).Should(Succeed())
			g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(cm), cm)).To(Succeed())
			g.Expect(cm.Data["key"]).To(Equal("hand"), "Warn leaves the object as it is")
		})
	}
}

func TestKustomization_DependsOnAndSource(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	dependent := newKustomization(ns, "later", func(k *applyv1.Kustomization) {
		k.Spec.DependsOn = []applyv1.DependencyReference{{Name: "base"}}
	})
	g.Expect(k8s.Create(context.Background(), dependent)).To(Succeed())
	msg := waitNotReady(g, dependent, applyv1.DependencyNotReadyReason)
	g.Expect(msg).To(ContainSubstring("Kustomization " + ns + "/base is not ready or not found"))
	g.Expect(conditions.IsReconciling(dependent)).To(BeTrue())

	base := newKustomization(ns, "later")
	base.GenerateName, base.Name = "", "base"
	g.Expect(k8s.Create(context.Background(), base)).To(Succeed())
	msg = waitNotReady(g, base, applyv1.SourceNotReadyReason)
	g.Expect(msg).To(ContainSubstring("GitRepository " + ns + "/later is not ready or not found"))

	source(t, ns, "later", "main@sha1:1", map[string]string{"deploy/cm.yaml": configMap("cm", "1")})
	waitApplied(g, base, "main@sha1:1")
	waitApplied(g, dependent, "main@sha1:1")
}

func TestKustomization_SuspendAndVariables(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	vars := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "vars", Namespace: ns}, Data: map[string]string{"VALUE": "from-configmap"}}
	g.Expect(k8s.Create(context.Background(), vars)).To(Succeed())
	gr := source(t, ns, "app", "main@sha1:1", map[string]string{"deploy/cm.yaml": configMap("cm", "${VALUE:=default}")})
	k := newKustomization(ns, gr.Name, func(k *applyv1.Kustomization) {
		k.Spec.PostBuild = &applyv1.PostBuild{SubstituteFrom: []applyv1.SubstituteReference{
			{Kind: "ConfigMap", Name: "vars"}, {Kind: "Secret", Name: "missing", Optional: true},
		}}
	})
	g.Expect(k8s.Create(context.Background(), k)).To(Succeed())
	waitApplied(g, k, "main@sha1:1")
	cm := &corev1.ConfigMap{}
	g.Expect(exists(ns, "cm", cm)).To(BeTrue())
	g.Expect(cm.Data["key"]).To(Equal("from-configmap"))

	getK(g, k)
	k.Spec.Suspend = true
	g.Expect(k8s.Update(context.Background(), k)).To(Succeed())
	// A handled request after the update: the controller has seen the suspension.
	handled(g, k, requestReconcile(g, k))
	setArtifact(t, gr, "main@sha1:2", map[string]string{"deploy/cm.yaml": configMap("cm", "two")})
	handled(g, k, requestReconcile(g, k))
	g.Expect(k.Status.LastAppliedRevision).To(Equal("main@sha1:1"), "suspended: nothing applied")
	g.Expect(exists(ns, "cm", cm)).To(BeTrue())
	g.Expect(cm.Data["key"]).To(Equal("from-configmap"))

	getK(g, k)
	k.Spec.Suspend = false
	g.Expect(k8s.Update(context.Background(), k)).To(Succeed())
	waitApplied(g, k, "main@sha1:2")
	g.Expect(exists(ns, "cm", cm)).To(BeTrue())
	g.Expect(strings.TrimSpace(cm.Data["key"])).To(Equal("two"))
}

func TestKustomization_ImpersonationFollowsRBAC(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "tenant", Namespace: ns}}
	g.Expect(k8s.Create(context.Background(), sa)).To(Succeed())
	gr := source(t, ns, "app", "main@sha1:1", map[string]string{"deploy/cm.yaml": configMap("cm", "1")})
	k := newKustomization(ns, gr.Name, func(k *applyv1.Kustomization) { k.Spec.ServiceAccountName = "tenant" })
	g.Expect(k8s.Create(context.Background(), k)).To(Succeed())
	msg := waitNotReady(g, k, applyv1.ApplyFailedReason)
	g.Expect(msg).To(ContainSubstring("system:serviceaccount:" + ns + ":tenant"))
	g.Expect(exists(ns, "cm", &corev1.ConfigMap{})).To(BeFalse())

	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "tenant", Namespace: ns},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list", "create", "patch", "update"}}},
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "tenant", Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "tenant"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "tenant", Namespace: ns}},
	}
	g.Expect(k8s.Create(context.Background(), role)).To(Succeed())
	g.Expect(k8s.Create(context.Background(), binding)).To(Succeed())
	requestReconcile(g, k)
	waitApplied(g, k, "main@sha1:1")
	g.Expect(exists(ns, "cm", &corev1.ConfigMap{})).To(BeTrue())

	// The ServiceAccount may not delete: the Kustomization waits, its objects are not orphaned.
	g.Expect(k8s.Delete(context.Background(), k)).To(Succeed())
	g.Expect(waitNotReady(g, k, applyv1.PruneFailedReason)).To(ContainSubstring("forbidden"))
	g.Expect(exists(ns, "cm", &corev1.ConfigMap{})).To(BeTrue())
	role.Rules[0].Verbs = []string{"*"}
	g.Expect(k8s.Update(context.Background(), role)).To(Succeed())
	g.Eventually(func() bool { return exists(ns, "cm", &corev1.ConfigMap{}) }, timeout).Should(BeFalse())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8s.Get(context.Background(), client.ObjectKeyFromObject(k), k))
	}, timeout).Should(BeTrue())
}

func TestKustomization_RemoteClusterByKubeConfig(t *testing.T) {
	g := NewWithT(t)
	remote, err := testenv.Start(testenv.Options{CRDDirs: []string{}})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = remote.Stop() })

	ns := newNamespace(t)
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "remote", Namespace: ns}, Data: map[string][]byte{"value": remote.Kubeconfig}}
	g.Expect(k8s.Create(context.Background(), secret)).To(Succeed())
	gr := source(t, ns, "app", "main@sha1:1", map[string]string{"deploy/cm.yaml": configMap("remote-cm", "1")})
	k := newKustomization(ns, gr.Name, func(k *applyv1.Kustomization) {
		k.Spec.TargetNamespace = "default"
		k.Spec.KubeConfig = &applyv1.KubeConfigReference{SecretRef: &meta.SecretKeyReference{Name: "remote"}}
	})
	g.Expect(k8s.Create(context.Background(), k)).To(Succeed())
	waitApplied(g, k, "main@sha1:1")

	cm := &corev1.ConfigMap{}
	g.Expect(remote.Client.Get(context.Background(), client.ObjectKey{Namespace: "default", Name: "remote-cm"}, cm)).To(Succeed())
	g.Expect(exists("default", "remote-cm", &corev1.ConfigMap{})).To(BeFalse(), "not applied to the local cluster")

	// Deleting the Kustomization prunes in the remote cluster.
	g.Expect(k8s.Delete(context.Background(), k)).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(remote.Client.Get(context.Background(), client.ObjectKeyFromObject(cm), cm))
	}, timeout).Should(BeTrue())
}

func TestKustomization_NewRevisionCancelsHealthWait(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	// Without nodes a Deployment of one replica never becomes Available.
	stuck := strings.Replace(idleDeployment, "replicas: 0", "replicas: 1", 1)
	gr := source(t, ns, "app", "main@sha1:1", map[string]string{"deploy/web.yaml": stuck})
	k := newKustomization(ns, gr.Name, func(k *applyv1.Kustomization) {
		k.Spec.Wait = true
		k.Spec.Timeout = &metav1.Duration{Duration: 10 * time.Minute}
	})
	g.Expect(k8s.Create(context.Background(), k)).To(Succeed())
	// Applied: the health wait has begun (status is written when the reconcile ends).
	g.Eventually(func() bool { return exists(ns, "web", &appsv1.Deployment{}) }, timeout).Should(BeTrue())

	// The fix arrives while the first revision's health check would wait 10 minutes.
	setArtifact(t, gr, "main@sha1:2", map[string]string{"deploy/web.yaml": idleDeployment})
	waitApplied(g, k, "main@sha1:2")
	g.Expect(conditions.IsTrue(k, HealthyCondition)).To(BeTrue())
}

func TestKustomization_SkippedObjectsAreNotPrunedAndCyclesStall(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	keep := strings.Replace(configMap("keep", "1"), "metadata:\n", "metadata:\n  annotations:\n    apply.plumb.dev/ssa: IfNotPresent\n", 1)
	gr := source(t, ns, "app", "main@sha1:1", map[string]string{"deploy/keep.yaml": keep, "deploy/cm.yaml": configMap("cm", "1")})
	k := newKustomization(ns, gr.Name)
	g.Expect(k8s.Create(context.Background(), k)).To(Succeed())
	waitApplied(g, k, "main@sha1:1")
	// A second apply skips the existing IfNotPresent object: it stays, and stays in the inventory.
	setArtifact(t, gr, "main@sha1:2", map[string]string{"deploy/keep.yaml": keep, "deploy/cm.yaml": configMap("cm", "2")})
	waitApplied(g, k, "main@sha1:2")
	g.Expect(exists(ns, "keep", &corev1.ConfigMap{})).To(BeTrue())
	g.Expect(k.Status.Inventory.Entries).To(HaveLen(2))

	a := newKustomization(ns, gr.Name, func(k *applyv1.Kustomization) { k.Spec.DependsOn = []applyv1.DependencyReference{{Name: "cycle-b"}} })
	a.GenerateName, a.Name = "", "cycle-a"
	b := newKustomization(ns, gr.Name, func(k *applyv1.Kustomization) { k.Spec.DependsOn = []applyv1.DependencyReference{{Name: "cycle-a"}} })
	b.GenerateName, b.Name = "", "cycle-b"
	g.Expect(k8s.Create(context.Background(), a)).To(Succeed())
	g.Expect(k8s.Create(context.Background(), b)).To(Succeed())
	for _, o := range []*applyv1.Kustomization{a, b} {
		g.Eventually(func(g Gomega) {
			g.Expect(conditions.IsStalled(getK(g, o))).To(BeTrue())
			g.Expect(conditions.GetReason(o, meta.ReadyCondition)).To(Equal(applyv1.DependencyCycleReason))
		}, timeout).Should(Succeed())
	}

	// A dependsOn apiVersion that does not parse cannot be fixed by waiting.
	bad := newKustomization(ns, gr.Name, func(k *applyv1.Kustomization) {
		k.Spec.DependsOn = []applyv1.DependencyReference{{APIVersion: "a/b/c", Kind: "Thing", Name: "x"}}
	})
	g.Expect(k8s.Create(context.Background(), bad)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(conditions.IsStalled(getK(g, bad))).To(BeTrue())
		g.Expect(conditions.GetReason(bad, meta.ReadyCondition)).To(Equal(applyv1.InvalidSpecReason))
		g.Expect(conditions.GetMessage(bad, meta.ReadyCondition)).To(ContainSubstring(`apiVersion "a/b/c"`))
	}, timeout).Should(Succeed())
}
