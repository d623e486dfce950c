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
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	helmv1 "github.com/plumb-dev/plumb/helm-controller/api/v1beta1"
)

// spec.kubeConfig: a kubeconfig Secret reaches a cluster (here the same one, through its admin
// kubeconfig); one with a credential plugin is refused until the Secret is fixed.
func TestHelmRelease_KubeConfig(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	chartSource(t, ns, "app", testChart("1.0.0", false))
	exec := strings.Replace(string(env.Kubeconfig), "users:", "users:\n- name: plugin\n  user:\n    exec: {apiVersion: client.authentication.k8s.io/v1, command: /bin/sh}", 1)
	for name, data := range map[string]string{"remote": string(env.Kubeconfig), "plugin": exec} {
		g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, StringData: map[string]string{"value": data}})).To(Succeed())
	}
	hr := newRelease(ns, "app", func(hr *helmv1.HelmRelease) {
		hr.Spec.KubeConfig = &helmv1.KubeConfigReference{SecretRef: &meta.SecretKeyReference{Name: "remote"}}
	})
	g.Expect(k8s.Create(ctx, hr)).To(Succeed())
	waitReleased(g, hr, "1.0.0")

	bad := newRelease(ns, "app", func(hr *helmv1.HelmRelease) {
		hr.Name = "bad"
		hr.Spec.KubeConfig = &helmv1.KubeConfigReference{SecretRef: &meta.SecretKeyReference{Name: "plugin"}}
	})
	g.Expect(k8s.Create(ctx, bad)).To(Succeed())
	g.Expect(waitReason(g, bad, helmv1.InvalidSpecReason)).To(ContainSubstring("credential plugin"))
	g.Expect(conditions.IsStalled(bad)).To(BeFalse(), "a fixed Secret would never be seen")

	fixed := &corev1.Secret{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "plugin"}, fixed)).To(Succeed())
	fixed.Data = map[string][]byte{"value": env.Kubeconfig}
	g.Expect(k8s.Update(ctx, fixed)).To(Succeed())
	waitReleased(g, bad, "1.0.0")
}

// spec.kubeConfig.configMapRef: the generic provider reaches the test's own API server as
// ServiceAccount deployer, with a token the controller creates; a missing ConfigMap is named.
func TestHelmRelease_KubeConfigConfigMapRef(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	chartSource(t, ns, "app", testChart("1.0.0", false))
	hr := newRelease(ns, "app", func(hr *helmv1.HelmRelease) {
		hr.Spec.KubeConfig = &helmv1.KubeConfigReference{ConfigMapRef: &meta.LocalObjectReference{Name: "remote"}}
	})
	g.Expect(k8s.Create(ctx, hr)).To(Succeed())
	msg := waitReason(g, hr, helmv1.ClusterNotReadyReason)
	g.Expect(msg).To(And(ContainSubstring("spec.kubeConfig ConfigMap "+ns+"/remote"), ContainSubstring("not found")))

	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "deployer", Namespace: ns}}
	g.Expect(k8s.Create(ctx, sa)).To(Succeed())
	// At first deployer may touch only ConfigMaps: Helm cannot keep its release Secrets.
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "deployer", Namespace: ns},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"*"}}},
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "deployer", Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "deployer"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "deployer", Namespace: ns}},
	}
	g.Expect(k8s.Create(ctx, role)).To(Succeed())
	g.Expect(k8s.Create(ctx, binding)).To(Succeed())
	tr := &authenticationv1.TokenRequest{}
	g.Expect(k8s.SubResource("token").Create(ctx, sa, tr)).To(Succeed())
	g.Expect(k8s.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "remote", Namespace: ns}, Data: map[string]string{
		"provider":           "generic",
		"address":            env.Config.Host,
		"ca.crt":             string(env.Config.CAData),
		"audiences":          strings.Join(tr.Spec.Audiences, "\n"),
		"serviceAccountName": "deployer",
	}})).To(Succeed())
	g.Eventually(func(g Gomega) {
		getHR(g, hr)
		g.Expect(conditions.GetMessage(hr, meta.ReadyCondition)).To(ContainSubstring("system:serviceaccount:" + ns + ":deployer"))
	}, timeout, 100*time.Millisecond).Should(Succeed(), "the release is made as deployer")
	g.Expect(conditions.IsFalse(hr, meta.ReadyCondition)).To(BeTrue())

	role.Rules = []rbacv1.PolicyRule{{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"*"}}}
	g.Expect(k8s.Update(ctx, role)).To(Succeed())
	waitReleased(g, hr, "1.0.0")
}
