package install

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/plumb-dev/plumb/shared/testing/testenv"
)

// A control plane with no CRD installed: the tests install them.
var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		panic(err)
	}
	if err := apiextensionsv1.AddToScheme(scheme); err != nil {
		panic(err)
	}
	var err error
	if env, err = testenv.Start(testenv.Options{Scheme: scheme, CRDDirs: []string{}}); err != nil {
		panic(err)
	}
	defer func() { _ = env.Stop() }()
	return m.Run()
}

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		components []string
		wantErr    string
	}{
		{components: []string{"source-controller"}},
		{components: []string{"notification-controller"}},
		{components: []string{"source-controller", "apply-controller", "image-automation"}},
		{components: nil, wantErr: "no component chosen"},
		{components: []string{"apply-controller"}, wantErr: "apply-controller cannot work without source-controller"},
		{components: []string{"notification-controller", "helm-controller"}, wantErr: "helm-controller cannot work without source-controller"},
		{components: []string{"image-automation"}, wantErr: "image-automation cannot work without source-controller"},
		{components: []string{"source-controller", "kustomize-controller"}, wantErr: `unknown component "kustomize-controller"`},
	} {
		err := Check(tc.components)
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("Check(%v) = %v, want %q", tc.components, err, tc.wantErr)
		}
	}
}

func TestRenderIntoNamespace(t *testing.T) {
	objs, err := Render([]string{"source-controller", "apply-controller"}, "gitops", Images{Registry: "registry.example.com/plumb", Version: "v0.1.0"})
	if err != nil {
		t.Fatal(err)
	}
	if objs[0].GetKind() != "Namespace" || objs[0].GetName() != "gitops" {
		t.Fatalf("first object %s/%s, want the Namespace gitops", objs[0].GetKind(), objs[0].GetName())
	}
	deployments := 0
	for _, o := range objs {
		switch o.GetKind() {
		case "Namespace", "CustomResourceDefinition", "ClusterRole":
		case "ClusterRoleBinding":
			subjects, _, _ := unstructured.NestedSlice(o.Object, "subjects")
			for _, s := range subjects {
				if ns := s.(map[string]any)["namespace"]; ns != "gitops" {
					t.Errorf("ClusterRoleBinding %s binds a ServiceAccount of namespace %v", o.GetName(), ns)
				}
			}
		default:
			if o.GetNamespace() != "gitops" {
				t.Errorf("%s/%s is in namespace %q", o.GetKind(), o.GetName(), o.GetNamespace())
			}
			if o.GetKind() == "Deployment" {
				deployments++
				containers, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
				if img := containers[0].(map[string]any)["image"]; img != "registry.example.com/plumb/"+o.GetName()+":v0.1.0" {
					t.Errorf("Deployment %s runs image %v", o.GetName(), img)
				}
			}
		}
	}
	if deployments != 2 {
		t.Errorf("%d Deployments, want 2", deployments)
	}
}

func TestInstallAndUninstall(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	c := env.Client
	rm, _, err := Manager(env.Config)
	g.Expect(err).NotTo(HaveOccurred())
	objs, err := Render([]string{"source-controller", "notification-controller"}, "plumb-test", Images{})
	g.Expect(err).NotTo(HaveOccurred())
	cs, err := Apply(ctx, rm, c, objs, time.Minute)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cs.Entries).To(HaveLen(len(objs)))

	// Only the chosen components' CRDs and Deployments.
	var crds apiextensionsv1.CustomResourceDefinitionList
	g.Expect(c.List(ctx, &crds)).To(Succeed())
	var groups []string
	for _, crd := range crds.Items {
		groups = append(groups, crd.Spec.Group)
	}
	g.Expect(groups).To(HaveLen(8), "5 source kinds and 3 notification kinds")
	g.Expect(groups).To(HaveEach(BeElementOf("source.plumb.dev", "notification.plumb.dev")))
	var deployments appsv1.DeploymentList
	g.Expect(c.List(ctx, &deployments, client.InNamespace("plumb-test"))).To(Succeed())
	g.Expect(deployments.Items).To(HaveLen(2))

	// Again: nothing changes.
	cs, err = Apply(ctx, rm, c, objs, time.Minute)
	g.Expect(err).NotTo(HaveOccurred())
	for _, e := range cs.Entries {
		g.Expect(string(e.Action)).To(Equal("unchanged"), e.Subject)
	}

	// Without a kubelet no controller becomes available: the wait says which.
	err = Wait(ctx, rm, c, cs, 3*time.Second)
	g.Expect(err).To(MatchError(ContainSubstring("Deployment/plumb-test/source-controller (0 of 1 replicas available)")))

	// A GitRepository with a finalizer, as source-controller leaves it.
	g.Expect(c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "apps"}})).To(Succeed())
	repo := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "source.plumb.dev/v1beta1", "kind": "GitRepository",
		"metadata": map[string]any{"name": "repo", "namespace": "apps", "finalizers": []any{"plumb.dev/finalizer"}},
		"spec":     map[string]any{"url": "https://example.invalid/repo.git", "interval": "5m"}}}
	g.Expect(c.Create(ctx, repo)).To(Succeed())

	// A namespace that was there before install is used, not taken over, and stays.
	g.Expect(c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-gitops"}})).To(Succeed())
	notify, err := Render([]string{"notification-controller"}, "team-gitops", Images{})
	g.Expect(err).NotTo(HaveOccurred())
	_, err = Apply(ctx, rm, c, notify, time.Minute)
	g.Expect(err).NotTo(HaveOccurred())
	_, err = Uninstall(ctx, rm, c, Components, "team-gitops", true)
	g.Expect(err).NotTo(HaveOccurred())
	existing := &corev1.Namespace{}
	g.Expect(c.Get(ctx, client.ObjectKey{Name: "team-gitops"}, existing)).To(Succeed())
	g.Expect(existing.DeletionTimestamp).To(BeNil(), "uninstall deleted a namespace it did not make")
	g.Expect(existing.Labels).NotTo(HaveKey("app.kubernetes.io/part-of"))

	done, err := Uninstall(ctx, rm, c, Components, "plumb-test", false)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(done).To(ContainElement("Deployment/plumb-test/source-controller"))
	g.Eventually(func() bool {
		return apierrors.IsNotFound(c.Get(ctx, client.ObjectKey{Name: "gitrepositories.source.plumb.dev"}, &apiextensionsv1.CustomResourceDefinition{}))
	}, 30*time.Second, 100*time.Millisecond).Should(BeTrue(), "the CRD stayed: its objects' finalizers were not released")
	g.Expect(c.List(ctx, &deployments, client.InNamespace("plumb-test"))).To(Succeed())
	g.Expect(deployments.Items).To(BeEmpty())
	ns := &corev1.Namespace{}
	g.Expect(c.Get(ctx, client.ObjectKey{Name: "plumb-test"}, ns)).To(Succeed())
	g.Expect(ns.DeletionTimestamp).NotTo(BeNil(), "the namespace is being deleted")
}
