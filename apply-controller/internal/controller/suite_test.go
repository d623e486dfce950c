package controller

import (
	"bytes"
	"context"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/auth/aws"
	"github.com/fluxcd/pkg/auth/azure"
	"github.com/fluxcd/pkg/auth/gcp"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/shared/artifact"
	"github.com/plumb-dev/plumb/shared/kubeconfig"
	"github.com/plumb-dev/plumb/shared/registry"
	"github.com/plumb-dev/plumb/shared/sops/sopstest"
	"github.com/plumb-dev/plumb/shared/testing/artifacttest"
	"github.com/plumb-dev/plumb/shared/testing/testenv"
	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
)

var (
	env        *testenv.Env
	k8s        client.Client
	reconciler *KustomizationReconciler
	artifacts  artifactServer
	testScheme *runtime.Scheme
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.UseDevMode(true)))
	scheme := runtime.NewScheme()
	must(clientgoscheme.AddToScheme(scheme))
	must(sourcev1.AddToScheme(scheme))
	must(applyv1.AddToScheme(scheme))
	must(apiextensionsv1.AddToScheme(scheme)) // tests install kinds while the controller runs
	var err error
	env, err = testenv.Start(testenv.Options{Scheme: scheme, ControllerManager: true})
	must(err)
	defer func() { must(env.Stop()) }()
	k8s = env.Client

	artifacts = artifactServer{artifacttest.NewServer()}
	defer artifacts.Close()

	// Kustomizations labeled for a shard are left to the reconcilers a test starts (startShard).
	notSharded, err := labels.Parse("!" + shardLabel)
	must(err)
	mgr, err := ctrl.NewManager(countingConfig(env.Config), ctrl.Options{
		Scheme:  scheme,
		Metrics: metricsserver.Options{BindAddress: "0"},
		Cache:   cache.Options{ByObject: map[client.Object]cache.ByObject{&applyv1.Kustomization{}: {Label: notSharded}}},
		// As cmd/main.go: ServiceAccounts are read when named, not watched.
		Client: client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.ServiceAccount{}}}},
	})
	must(err)
	// As cmd/main.go makes it with --feature-gates=ObjectLevelWorkloadIdentity=true.
	cloud, err := registry.NewCloud(registry.CloudOptions{ObjectLevel: true})
	must(err)
	reconciler = &KustomizationReconciler{
		Clusters:       kubeconfig.NewClusters(cloud.TokenCache(), cloud.ObjectLevel()),
		Client:         mgr.GetClient(),
		APIReader:      mgr.GetAPIReader(),
		Config:         mgr.GetConfig(), // counting: see countRequests
		Mapper:         mgr.GetRESTMapper(),
		Events:         mgr.GetEventRecorder("apply-controller"),
		ControllerName: "apply-controller",
		Fetcher:        &artifact.Fetcher{},
		ConcurrentSSA:  4,
		// The AWS, Azure and Google token exchanges are the test's (kustomization_identity_test.go):
		// their STS and Entra ID cannot run on loopback.
		DecryptionIdentity: DecryptionIdentity{Enabled: true, Cache: cloud.TokenCache(), AWS: aws.Provider{Implementation: stsFake},
			Azure: azure.Provider{Implementation: entraFake}, GCP: gcp.Provider{Implementation: googleFake}},
		// Reaches the tests' Key Vaults (https, named under .localhost); other hosts as usual. Every
		// SOPS test of the suite sends its KMS and Vault requests through it, where the controller
		// leaves the SDKs their own transports.
		KMSHTTPClient: sopstest.KeyVaultClient(),
	}
	testScheme = scheme
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	must(reconciler.SetupWithManager(ctx, mgr, Options{Concurrent: 4}))
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	code := m.Run()
	cancel()
	must(<-done)
	return code
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

// artifactServer serves tarballs on loopback, as a source producer would.
type artifactServer struct{ *artifacttest.Server }

// publish packs files into an artifact, serves it and returns its description.
func (s artifactServer) publish(t *testing.T, revision string, files map[string]string) meta.Artifact {
	t.Helper()
	var buf bytes.Buffer
	w := artifact.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := w.File(n, false, int64(len(files[n])), strings.NewReader(files[n])); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return s.Publish(revision, ".tar.gz", buf.Bytes())
}

// newNamespace creates a namespace of its own for a test.
func newNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "apply-"}}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

// source creates a Ready GitRepository whose artifact holds files.
func source(t *testing.T, ns, name, revision string, files map[string]string) *sourcev1.GitRepository {
	t.Helper()
	gr := &sourcev1.GitRepository{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       sourcev1.GitRepositorySpec{URL: "http://127.0.0.1/none.git", Interval: metav1.Duration{Duration: time.Hour}},
	}
	if err := k8s.Create(context.Background(), gr); err != nil {
		t.Fatal(err)
	}
	setArtifact(t, gr, revision, files)
	return gr
}

// setArtifact publishes files as the GitRepository's new artifact, as source-controller would.
func setArtifact(t *testing.T, gr *sourcev1.GitRepository, revision string, files map[string]string) {
	t.Helper()
	a := artifacts.publish(t, revision, files)
	if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(gr), gr); err != nil {
		t.Fatal(err)
	}
	gr.Status.Artifact = &a
	gr.Status.ObservedGeneration = gr.Generation
	gr.Status.Conditions = []metav1.Condition{{
		Type: meta.ReadyCondition, Status: metav1.ConditionTrue, Reason: "Succeeded",
		Message: "stored artifact", LastTransitionTime: metav1.Now(), ObservedGeneration: gr.Generation,
	}}
	if err := k8s.Status().Update(context.Background(), gr); err != nil {
		t.Fatal(err)
	}
}
