package kubeconfig

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fluxcd/pkg/auth"
	"github.com/fluxcd/pkg/cache"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/plumb-dev/plumb/shared/testing/testenv"
)

// counting is the test API server's client, counting the ServiceAccount tokens it creates.
type counting struct {
	client.Client
	tokens atomic.Int32
}

func (c *counting) SubResource(sub string) client.SubResourceClient {
	return countingSub{SubResourceClient: c.Client.SubResource(sub), c: c, sub: sub}
}

type countingSub struct {
	client.SubResourceClient
	c   *counting
	sub string
}

func (s countingSub) Create(ctx context.Context, obj, sub client.Object, opts ...client.SubResourceCreateOption) error {
	if s.sub == "token" {
		s.c.tokens.Add(1)
	}
	return s.SubResourceClient.Create(ctx, obj, sub, opts...)
}

// FromConfigMap against a real API server, which is also the "remote" cluster.
func TestFromConfigMap(t *testing.T) {
	env, err := testenv.Start(testenv.Options{CRDDirs: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	t.Run("generic tokens are cached and renewed", func(t *testing.T) { testGenericTokens(t, env) })
	t.Run("missing objects are named", func(t *testing.T) { testMissingObjects(t, env) })
}

// The generic provider: the ServiceAccount's token is created once, used for every request and
// shared by objects of the same identity and cluster, and created again once 80 % of its
// lifetime has passed.
func testGenericTokens(t *testing.T, env *testenv.Env) {
	ctx := context.Background()
	ns := "default"
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "deployer", Namespace: ns}}
	if err := env.Client.Create(ctx, sa); err != nil {
		t.Fatal(err)
	}
	tr := &authenticationv1.TokenRequest{}
	if err := env.Client.SubResource("token").Create(ctx, sa, tr); err != nil {
		t.Fatal(err)
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "remote", Namespace: ns}, Data: map[string]string{
		"provider": "generic", "address": env.Config.Host, "ca.crt": string(env.Config.CAData),
		"audiences": strings.Join(tr.Spec.Audiences, "\n"), "serviceAccountName": "deployer",
	}}
	if err := env.Client.Create(ctx, cm); err != nil {
		t.Fatal(err)
	}

	tc, err := cache.NewTokenCache(8)
	if err != nil {
		t.Fatal(err)
	}
	auth.EnableObjectLevelWorkloadIdentity()
	t.Cleanup(auth.DisableObjectLevelWorkloadIdentity)
	c := NewClusters(tc, true)
	kube := &counting{Client: env.Client}
	cfg, _, err := c.FromConfigMap(ctx, env.Client, kube, Object{Kind: "Kustomization", Namespace: ns, Name: "a"}, "remote")
	if err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(cfg)
	for range 3 {
		// The ServiceAccount may not read Secrets: a Forbidden naming it proves whose token it is.
		_, err := cs.CoreV1().Secrets(ns).Get(ctx, "x", metav1.GetOptions{})
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "system:serviceaccount:default:deployer") {
			t.Fatalf("want Forbidden for the ServiceAccount, got %v", err)
		}
	}
	if n := kube.tokens.Load(); n != 1 {
		t.Fatalf("%d tokens created for three requests, want 1", n)
	}

	// A ConfigMap that names no ServiceAccount takes --default-kubeconfig-service-account's.
	bare := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "remote-default", Namespace: ns}, Data: map[string]string{
		"provider": "generic", "address": env.Config.Host, "ca.crt": string(env.Config.CAData), "audiences": strings.Join(tr.Spec.Audiences, "\n"),
	}}
	if err := env.Client.Create(ctx, bare); err != nil {
		t.Fatal(err)
	}
	withDefault := NewClusters(nil, true)
	withDefault.DefaultServiceAccount = "deployer"
	dcfg, _, err := withDefault.FromConfigMap(ctx, env.Client, env.Client, Object{Kind: "Kustomization", Namespace: ns, Name: "d"}, "remote-default")
	if err != nil {
		t.Fatal(err)
	}
	_, err = kubernetes.NewForConfigOrDie(dcfg).CoreV1().Secrets(ns).Get(ctx, "x", metav1.GetOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "system:serviceaccount:default:deployer") {
		t.Fatalf("want Forbidden for the default ServiceAccount, got %v", err)
	}

	// Another object with the same ConfigMap contents shares the cached token.
	if _, _, err := c.FromConfigMap(ctx, env.Client, kube, Object{Kind: "HelmRelease", Namespace: ns, Name: "b"}, "remote"); err != nil {
		t.Fatal(err)
	}
	if n := kube.tokens.Load(); n != 1 {
		t.Fatalf("%d tokens created, want the cached one", n)
	}

	// Near expiry (here: a source without the shared cache whose renewal time has passed),
	// a new token is created.
	uncached := NewClusters(nil, true)
	p, opts, err := uncached.options(cm, Object{Namespace: ns}, direct{Client: kube, r: env.Client})
	if err != nil {
		t.Fatal(err)
	}
	src := &tokenSource{provider: p, opts: opts}
	first, err := src.get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if life := time.Until(first.ExpiresAt); life < 10*time.Minute {
		t.Fatalf("token lifetime %s", life)
	}
	if again, _ := src.get(ctx); again != first {
		t.Fatal("a fresh token was not reused")
	}
	before := kube.tokens.Load()
	src.renewAt = time.Now().Add(-time.Second)
	if _, err := src.get(ctx); err != nil {
		t.Fatal(err)
	}
	if n := kube.tokens.Load(); n != before+1 {
		t.Fatalf("%d tokens created at renewal, want 1", n-before)
	}
}

// A ConfigMap that does not exist is named in the error, as is a ServiceAccount that does not.
func testMissingObjects(t *testing.T, env *testenv.Env) {
	ctx := context.Background()
	c := NewClusters(nil, true)
	auth.EnableObjectLevelWorkloadIdentity()
	t.Cleanup(auth.DisableObjectLevelWorkloadIdentity)
	obj := Object{Kind: "Kustomization", Namespace: "default", Name: "k"}
	_, _, err := c.FromConfigMap(ctx, env.Client, env.Client, obj, "missing")
	if !apierrors.IsNotFound(err) || !strings.Contains(err.Error(), "ConfigMap default/missing") {
		t.Fatalf("got %v", err)
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "nobody", Namespace: "default"}, Data: map[string]string{
		"provider": "generic", "address": env.Config.Host, "serviceAccountName": "nobody",
	}}
	if err := env.Client.Create(ctx, cm); err != nil {
		t.Fatal(err)
	}
	_, _, err = c.FromConfigMap(ctx, env.Client, env.Client, obj, "nobody")
	if err == nil || !strings.Contains(err.Error(), "ServiceAccount default/nobody") || errors.Is(err, ErrInvalidConfigMap) {
		t.Fatalf("got %v", err)
	}
}
