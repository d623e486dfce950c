package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
)

func certificate(name string) string {
	return "apiVersion: " + triggerGroup + "/v1\nkind: Certificate\nmetadata:\n  name: " + name + "\nspec:\n  dnsName: web.example.invalid\n"
}

// setCertState sets status.state of a Certificate, a status kstatus alone calls Current
// whatever it says.
func setCertState(g *WithT, ns, name, state string) {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion(triggerGroup + "/v1")
	u.SetKind("Certificate")
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, u)).To(Succeed())
		u.Object["status"] = map[string]any{"state": state}
		g.Expect(k8s.Status().Update(context.Background(), u)).To(Succeed())
	}, timeout, 100*time.Millisecond).Should(Succeed())
}

var certHealth = applyv1.CustomHealthCheck{
	APIVersion: triggerGroup + "/v1", Kind: "Certificate",
	Current: "has(status.state) && status.state == 'Issued'",
	Failed:  "has(status.state) && status.state == 'Failed'",
}

func TestKustomization_HealthCheckExprs(t *testing.T) {
	g := NewWithT(t)
	installKind(g, "Certificate", "certificates")
	ns := newNamespace(t)
	gr := source(t, ns, "certs", "main@sha1:1", map[string]string{"deploy/cert.yaml": certificate("web")})
	k := newKustomization(ns, gr.Name, func(k *applyv1.Kustomization) {
		k.Spec.Wait = true
		k.Spec.Timeout = &metav1.Duration{Duration: 30 * time.Second}
		k.Spec.HealthCheckExprs = []applyv1.CustomHealthCheck{certHealth}
	})
	g.Expect(k8s.Create(context.Background(), k)).To(Succeed())

	// Applied, and waited for: kstatus alone would call the Certificate Current at once.
	g.Eventually(func(g Gomega) {
		g.Expect(getK(g, k).Status.Inventory).NotTo(BeNil())
	}, timeout, 100*time.Millisecond).Should(Succeed())
	g.Expect(conditions.IsReady(getK(g, k))).To(BeFalse(), "Ready before the Certificate is issued")
	setCertState(g, ns, "web", "Issued")
	waitApplied(g, k, "main@sha1:1")
	g.Expect(conditions.IsTrue(getK(g, k), HealthyCondition)).To(BeTrue())

	// Failed is reported at once, not after the timeout.
	started := time.Now()
	setArtifact(t, gr, "main@sha1:2", map[string]string{"deploy/cert.yaml": certificate("web"), "deploy/api.yaml": certificate("api")})
	setCertState(g, ns, "api", "Failed")
	msg := waitNotReady(g, k, applyv1.HealthCheckFailedReason)
	g.Expect(msg).To(ContainSubstring("Certificate/" + ns + "/api"))
	g.Expect(time.Since(started)).To(BeNumerically("<", 30*time.Second))

	// Its recovery, with nothing to apply, is an event of its own: an Alert resolves on it.
	setCertState(g, ns, "api", "Issued")
	waitApplied(g, k, "main@sha1:2")
	g.Eventually(func(g Gomega) {
		var events eventsv1.EventList
		g.Expect(k8s.List(context.Background(), &events, client.InNamespace(ns))).To(Succeed())
		g.Expect(events.Items).To(ContainElement(SatisfyAll(
			HaveField("Regarding.Name", k.Name),
			HaveField("Type", corev1.EventTypeNormal),
			HaveField("Note", HavePrefix("recovered: applied revision main@sha1:2")),
		)))
	}, timeout).Should(Succeed())

	// An expression that does not compile stalls, naming it and the kind.
	getK(g, k)
	k.Spec.HealthCheckExprs = []applyv1.CustomHealthCheck{{APIVersion: triggerGroup + "/v1", Kind: "Certificate", Current: "status.state == ("}}
	g.Expect(k8s.Update(context.Background(), k)).To(Succeed())
	msg = waitNotReady(g, k, applyv1.InvalidCELExpressionReason)
	g.Expect(msg).To(ContainSubstring("status.state == ("))
	g.Expect(msg).To(ContainSubstring("Certificate." + triggerGroup))
	g.Expect(conditions.IsStalled(getK(g, k))).To(BeTrue())
}

func TestKustomization_ReadyExpr(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	gr := source(t, ns, "app", "main@sha1:1", map[string]string{"deploy/a.yaml": configMap("a", "1")})
	// A dependency that is never Ready: its source does not exist.
	dep := newKustomization(ns, "missing", func(k *applyv1.Kustomization) {
		k.Labels = map[string]string{"app/version": "v1"}
	})
	g.Expect(k8s.Create(context.Background(), dep)).To(Succeed())
	k := newKustomization(ns, gr.Name, func(k *applyv1.Kustomization) {
		k.Labels = map[string]string{"app/version": "v1"}
		k.Spec.DependsOn = []applyv1.DependencyReference{{
			Name:      dep.Name,
			ReadyExpr: "dep.metadata.labels['app/version'] == self.metadata.labels['app/version']",
		}}
	})
	g.Expect(k8s.Create(context.Background(), k)).To(Succeed())
	waitApplied(g, k, "main@sha1:1") // the expression, not the Ready condition, decides

	getK(g, k)
	k.Labels["app/version"] = "v2"
	g.Expect(k8s.Update(context.Background(), k)).To(Succeed())
	requestReconcile(g, k) // a label is no new generation
	g.Expect(waitNotReady(g, k, applyv1.DependencyNotReadyReason)).To(ContainSubstring("readyExpr"))

	getK(g, k)
	k.Spec.DependsOn[0].ReadyExpr = "self.generation == deps.generation"
	g.Expect(k8s.Update(context.Background(), k)).To(Succeed())
	msg := waitNotReady(g, k, applyv1.InvalidCELExpressionReason)
	g.Expect(msg).To(ContainSubstring("spec.dependsOn[0].readyExpr"))
	g.Expect(msg).To(ContainSubstring("deps.generation"))
	g.Expect(conditions.IsStalled(getK(g, k))).To(BeTrue())
}

func TestKustomization_DriftIgnore(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	cm := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n  labels: {team: a}\ndata:\n  key: git\n  scale: git\n"
	gr := source(t, ns, "app", "main@sha1:1", map[string]string{"deploy/cfg.yaml": cm})
	k := newKustomization(ns, gr.Name, func(k *applyv1.Kustomization) {
		k.Spec.Ignore = []applyv1.IgnoreRule{{Paths: []string{"/data/scale"}, Target: &applyv1.Selector{Kind: "ConfigMap", LabelSelector: "team=a"}}}
	})
	g.Expect(k8s.Create(context.Background(), k)).To(Succeed())
	waitApplied(g, k, "main@sha1:1")

	// Someone else changes both fields; a reconcile takes back only the one not ignored.
	live := &corev1.ConfigMap{}
	g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "cfg"}, live)).To(Succeed())
	live.Data = map[string]string{"key": "hand", "scale": "autoscaler"}
	g.Expect(k8s.Update(context.Background(), live)).To(Succeed())
	handled(g, k, requestReconcile(g, k))
	g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "cfg"}, live)).To(Succeed())
	g.Expect(live.Data).To(Equal(map[string]string{"key": "git", "scale": "autoscaler"}))

	// A rule that cannot be used stalls.
	getK(g, k)
	k.Spec.Ignore[0].Target.Name = "(["
	g.Expect(k8s.Update(context.Background(), k)).To(Succeed())
	g.Expect(waitNotReady(g, k, applyv1.InvalidSpecReason)).To(ContainSubstring("spec.ignore[0]"))
}

func TestKustomization_DeletionPolicyWaitForTermination(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	const hold = "test.plumb.dev/hold"
	cm := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n  finalizers: [" + hold + "]\ndata:\n  key: v\n"
	gr := source(t, ns, "app", "main@sha1:1", map[string]string{"deploy/held.yaml": cm})
	k := newKustomization(ns, gr.Name, func(k *applyv1.Kustomization) {
		k.Spec.DeletionPolicy = applyv1.DeletionPolicyWaitForTermination
		k.Spec.Timeout = &metav1.Duration{Duration: 50 * time.Second}
	})
	g.Expect(k8s.Create(context.Background(), k)).To(Succeed())
	waitApplied(g, k, "main@sha1:1")
	g.Expect(k8s.Delete(context.Background(), k)).To(Succeed())

	held := &corev1.ConfigMap{}
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "held"}, held)).To(Succeed())
		g.Expect(held.DeletionTimestamp).NotTo(BeNil())
	}, timeout, 100*time.Millisecond).Should(Succeed())
	// The ConfigMap is deleted but not gone: the Kustomization waits for it.
	g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(k), &applyv1.Kustomization{})).To(Succeed())

	held.Finalizers = nil
	g.Expect(k8s.Update(context.Background(), held)).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8s.Get(context.Background(), client.ObjectKeyFromObject(k), &applyv1.Kustomization{}))
	}, timeout, 100*time.Millisecond).Should(BeTrue())
}

func TestKustomization_SubstituteStrategyCommonMetadataComponents(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	files := map[string]string{
		"deploy/kustomization.yaml":           "resources: [cfg.yaml]\n",
		"deploy/cfg.yaml":                     "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n  labels: {team: old}\ndata:\n  size: \"${SIZE:=small}\"\n",
		"deploy/extra/kustomization.yaml":     "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\nresources: [more.yaml]\n",
		"deploy/extra/more.yaml":              configMap("more", "1"),
		"deploy/unrelated/kustomization.yaml": "resources: []\n",
	}
	gr := source(t, ns, "app", "main@sha1:1", files)
	k := newKustomization(ns, gr.Name, func(k *applyv1.Kustomization) {
		k.Spec.PostBuild = &applyv1.PostBuild{} // no variable: WithVariables leaves ${...} alone
		k.Spec.CommonMetadata = &applyv1.CommonMetadata{Labels: map[string]string{"team": "platform"}, Annotations: map[string]string{"owner": "ops"}}
		k.Spec.Components = []string{"extra", "gone"}
	})
	g.Expect(k8s.Create(context.Background(), k)).To(Succeed())
	msg := waitNotReady(g, k, applyv1.BuildFailedReason)
	g.Expect(msg).To(ContainSubstring("gone"))

	getK(g, k)
	k.Spec.IgnoreMissingComponents = true
	g.Expect(k8s.Update(context.Background(), k)).To(Succeed())
	waitApplied(g, k, "main@sha1:1")
	cfg := &corev1.ConfigMap{}
	g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "cfg"}, cfg)).To(Succeed())
	g.Expect(cfg.Data["size"]).To(Equal("${SIZE:=small}"))
	g.Expect(cfg.Labels).To(HaveKeyWithValue("team", "platform"))
	g.Expect(cfg.Annotations).To(HaveKeyWithValue("owner", "ops"))
	g.Expect(exists(ns, "more", &corev1.ConfigMap{})).To(BeTrue(), "the component that exists is built")

	getK(g, k)
	k.Spec.PostBuild.SubstituteStrategy = applyv1.SubstituteStrategyAlways
	g.Expect(k8s.Update(context.Background(), k)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "cfg"}, cfg)).To(Succeed())
		g.Expect(cfg.Data["size"]).To(Equal("small"))
	}, timeout, 100*time.Millisecond).Should(Succeed())
	g.Expect(conditions.GetReason(getK(g, k), meta.ReadyCondition)).To(Equal(applyv1.SucceededReason))
}

func TestKustomization_KubeConfigConfigMapRefGeneric(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	// The "remote" cluster is the test's own API server, reached as ServiceAccount deployer with
	// a token the controller creates; deployer may write ConfigMaps of ns and nothing else.
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "deployer", Namespace: ns}}
	g.Expect(k8s.Create(context.Background(), sa)).To(Succeed())
	grantConfigMaps(g, ns, "deployer")
	remote := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "remote", Namespace: ns}, Data: map[string]string{
		"provider":           "generic",
		"address":            env.Config.Host,
		"ca.crt":             string(env.Config.CAData),
		"audiences":          strings.Join(apiAudiences(g, sa), "\n"),
		"serviceAccountName": "deployer",
	}}
	g.Expect(k8s.Create(context.Background(), remote)).To(Succeed())

	secret := "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\nstringData:\n  k: v\n"
	gr := source(t, ns, "app", "main@sha1:1", map[string]string{"deploy/a.yaml": configMap("a", "1"), "deploy/s.yaml": secret})
	k := newKustomization(ns, gr.Name, func(k *applyv1.Kustomization) {
		k.Spec.KubeConfig = &applyv1.KubeConfigReference{ConfigMapRef: &meta.LocalObjectReference{Name: "remote"}}
	})
	g.Expect(k8s.Create(context.Background(), k)).To(Succeed())
	// The Secret is refused to the ServiceAccount: the objects are written as deployer.
	msg := waitNotReady(g, k, applyv1.ApplyFailedReason)
	g.Expect(msg).To(ContainSubstring("system:serviceaccount:" + ns + ":deployer"))
	g.Expect(msg).To(ContainSubstring("secrets"))
	g.Expect(exists(ns, "s", &corev1.Secret{})).To(BeFalse())

	setArtifact(t, gr, "main@sha1:2", map[string]string{"deploy/a.yaml": configMap("a", "2")})
	waitApplied(g, k, "main@sha1:2")
	cm := &corev1.ConfigMap{}
	g.Expect(exists(ns, "a", cm)).To(BeTrue())
	g.Expect(cm.Data["key"]).To(Equal("2"))

	// Deleting prunes through the ConfigMap's identity too.
	g.Expect(k8s.Delete(context.Background(), k)).To(Succeed())
	g.Eventually(func() bool { return exists(ns, "a", &corev1.ConfigMap{}) }, timeout).Should(BeFalse())
}

func TestKustomization_KubeConfigConfigMapRefFailures(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	gr := source(t, ns, "app", "main@sha1:1", map[string]string{"deploy/a.yaml": configMap("a", "1")})
	k := newKustomization(ns, gr.Name, func(k *applyv1.Kustomization) {
		k.Spec.KubeConfig = &applyv1.KubeConfigReference{ConfigMapRef: &meta.LocalObjectReference{Name: "remote"}}
	})
	g.Expect(k8s.Create(context.Background(), k)).To(Succeed())
	msg := waitNotReady(g, k, applyv1.ApplyFailedReason)
	g.Expect(msg).To(ContainSubstring("spec.kubeConfig ConfigMap " + ns + "/remote"))
	g.Expect(msg).To(ContainSubstring("not found"))
	g.Expect(conditions.IsStalled(getK(g, k))).To(BeFalse(), "a ConfigMap created later is used")

	// An address that is not https: the ConfigMap must change.
	remote := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "remote", Namespace: ns}, Data: map[string]string{
		"provider": "generic", "address": "http://127.0.0.1:1", "serviceAccountName": "nobody",
	}}
	g.Expect(k8s.Create(context.Background(), remote)).To(Succeed())
	requestReconcile(g, k)
	g.Expect(waitNotReady(g, k, applyv1.InvalidSpecReason)).To(ContainSubstring(`key address: "http://127.0.0.1:1" is not an https URL`))

	// A ServiceAccount that does not exist: named, so that it can be created.
	remote.Data["address"] = "https://127.0.0.1:1"
	g.Expect(k8s.Update(context.Background(), remote)).To(Succeed())
	requestReconcile(g, k)
	g.Expect(waitNotReady(g, k, applyv1.ApplyFailedReason)).To(And(ContainSubstring("ServiceAccount "+ns+"/nobody"), ContainSubstring("not found")))

	// An address where no API server listens.
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "nobody", Namespace: ns}}
	g.Expect(k8s.Create(context.Background(), sa)).To(Succeed())
	requestReconcile(g, k)
	g.Expect(waitNotReady(g, k, applyv1.ApplyFailedReason)).To(ContainSubstring("127.0.0.1:1"))
	g.Expect(exists(ns, "a", &corev1.ConfigMap{})).To(BeFalse())

	both := newKustomization(ns, gr.Name, func(k *applyv1.Kustomization) {
		k.Spec.KubeConfig = &applyv1.KubeConfigReference{ConfigMapRef: &meta.LocalObjectReference{Name: "remote"}, SecretRef: &meta.SecretKeyReference{Name: "remote"}}
	})
	g.Expect(k8s.Create(context.Background(), both)).To(MatchError(ContainSubstring("exactly one of")))
}

// grantConfigMaps lets the ServiceAccount sa write ConfigMaps of ns.
func grantConfigMaps(g *WithT, ns, sa string) {
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: sa, Namespace: ns},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"*"}}},
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: sa, Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: sa},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa, Namespace: ns}},
	}
	g.Expect(k8s.Create(context.Background(), role)).To(Succeed())
	g.Expect(k8s.Create(context.Background(), binding)).To(Succeed())
}

// apiAudiences returns the audiences the test's API server accepts: those of a token requested
// without any.
func apiAudiences(g *WithT, sa *corev1.ServiceAccount) []string {
	tr := &authenticationv1.TokenRequest{}
	g.Expect(k8s.SubResource("token").Create(context.Background(), sa, tr)).To(Succeed())
	g.Expect(tr.Status.Token).NotTo(BeEmpty())
	g.Expect(tr.Spec.Audiences).NotTo(BeEmpty())
	return tr.Spec.Audiences
}
