package testenv

import (
	"context"
	"os"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

var env *Env

func TestMain(m *testing.M) {
	var err error
	env, err = Start(Options{ControllerManager: true})
	if err != nil {
		panic(err)
	}
	code := m.Run()
	if err := env.Stop(); err != nil {
		panic(err)
	}
	os.Exit(code)
}

func TestWorkspaceCRDsAreServed(t *testing.T) {
	g := NewWithT(t)
	dirs, err := WorkspaceCRDDirs()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(dirs).NotTo(BeEmpty())
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(schema.GroupVersionKind{Group: "source.plumb.dev", Version: "v1beta1", Kind: "GitRepositoryList"})
	g.Expect(env.Client.List(context.Background(), list)).To(Succeed())
}

func TestControllerManagerGivesDeploymentsStatus(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	labels := map[string]string{"app": "idle"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "idle", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](0),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "example.invalid/idle:1"}}},
			},
		},
	}
	g.Expect(env.Client.Create(ctx, d)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(d), d)).To(Succeed())
		g.Expect(d.Status.ObservedGeneration).To(Equal(d.Generation))
		var available bool
		for _, c := range d.Status.Conditions {
			available = available || c.Type == appsv1.DeploymentAvailable && c.Status == corev1.ConditionTrue
		}
		g.Expect(available).To(BeTrue(), "conditions: %v", d.Status.Conditions)
	}, time.Minute, 200*time.Millisecond).Should(Succeed())
}

func TestKubeconfigWorks(t *testing.T) {
	g := NewWithT(t)
	g.Expect(string(env.Kubeconfig)).To(ContainSubstring("server: https://127.0.0.1"))
}

func TestAddUser(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	cfg, err := env.AddUser("plumb-test-nobody", "plumb-test-group")
	g.Expect(err).NotTo(HaveOccurred())
	c, err := client.New(cfg, client.Options{})
	g.Expect(err).NotTo(HaveOccurred())
	who := &authenticationv1.SelfSubjectReview{}
	g.Expect(c.Create(ctx, who)).To(Succeed())
	g.Expect(who.Status.UserInfo.Username).To(Equal("plumb-test-nobody"))
	g.Expect(who.Status.UserInfo.Groups).To(ContainElement("plumb-test-group"))
	err = c.List(ctx, &corev1.SecretList{}, client.InNamespace("default"))
	g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "a new user has no RBAC: %v", err)
}
