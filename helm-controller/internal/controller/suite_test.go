package controller

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	helmv1 "github.com/plumb-dev/plumb/helm-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/shared/artifact"
	"github.com/plumb-dev/plumb/shared/kubeconfig"
	"github.com/plumb-dev/plumb/shared/registry"
	"github.com/plumb-dev/plumb/shared/testing/artifacttest"
	"github.com/plumb-dev/plumb/shared/testing/testenv"
)

var (
	env        *testenv.Env
	k8s        client.Client
	reconciler *HelmReleaseReconciler
	artifacts  artifactServer
	// requests are the reconciler's requests to the API server.
	requests = &apiRequests{}
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.UseDevMode(true)))
	scheme := runtime.NewScheme()
	must(clientgoscheme.AddToScheme(scheme))
	must(helmv1.AddToScheme(scheme))
	var err error
	env, err = testenv.Start(testenv.Options{Scheme: scheme, ControllerManager: true})
	must(err)
	defer func() { must(env.Stop()) }()
	k8s = env.Client

	artifacts = artifactServer{artifacttest.NewServer()}
	defer artifacts.Close()

	cfg := rest.CopyConfig(env.Config)
	cfg.Wrap(requests.wrap)
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}})
	must(err)
	// As cmd/main.go makes it with --feature-gates=ObjectLevelWorkloadIdentity=true.
	cloud, err := registry.NewCloud(registry.CloudOptions{ObjectLevel: true})
	must(err)
	reconciler = &HelmReleaseReconciler{
		Clusters:          kubeconfig.NewClusters(cloud.TokenCache(), cloud.ObjectLevel()),
		Client:            mgr.GetClient(),
		APIReader:         mgr.GetAPIReader(),
		Config:            mgr.GetConfig(),
		Events:            mgr.GetEventRecorder("helm-controller"),
		ControllerName:    "helm-controller",
		Fetcher:           &artifact.Fetcher{},
		RequeueDependency: 200 * time.Millisecond,
	}
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

// artifactServer serves chart packages on loopback, as source-controller would.
type artifactServer struct{ *artifacttest.Server }

// testChart is a chart of a Deployment scaled to 0 (healthy without a kubelet) and a ConfigMap
// of the values' greeting; a bad chart's ConfigMap has a name the API server refuses.
func testChart(version string, bad bool) *chart.Chart {
	cmName := "{{ .Release.Name }}-cfg"
	if bad {
		cmName = "Not_A_Valid_Name"
	}
	return &chart.Chart{
		Metadata: &chart.Metadata{APIVersion: chart.APIVersionV2, Name: "app", Version: version, AppVersion: version},
		Templates: []*chart.File{
			{Name: "templates/configmap.yaml", Data: []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + cmName +
				"\ndata:\n  greeting: {{ .Values.greeting | quote }}\n  color: {{ .Values.color | default \"none\" | quote }}\n")},
			{Name: "templates/deployment.yaml", Data: []byte(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
spec:
  replicas: 0
  selector:
    matchLabels: {app: {{ .Release.Name }}}
  template:
    metadata:
      labels: {app: {{ .Release.Name }}}
    spec:
      containers:
        - name: app
          image: registry.example.invalid/app:{{ .Chart.AppVersion }}
`)},
		},
		Values: map[string]any{"greeting": "hello"},
		Raw:    []*chart.File{{Name: "values.yaml", Data: []byte("greeting: hello\n")}},
	}
}

// publish packages the chart, serves it and returns its artifact.
func (s artifactServer) publish(t *testing.T, ch *chart.Chart) meta.Artifact {
	t.Helper()
	p, err := chartutil.Save(ch, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return s.Publish(ch.Metadata.Version, ".tgz", data)
}

// chartSource creates a HelmChart object whose status publishes the chart, as source-controller
// would, and returns it for later updates.
func chartSource(t *testing.T, ns, name string, ch *chart.Chart) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("source.plumb.dev/v1beta1")
	u.SetKind("HelmChart")
	u.SetNamespace(ns)
	u.SetName(name)
	u.Object["spec"] = map[string]any{
		"chart": "app", "interval": "1h", "sourceRef": map[string]any{"kind": "HelmRepository", "name": "none"},
	}
	if err := k8s.Create(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	publishTo(t, u, ch)
	return u
}

// publishTo sets a new chart as the source's artifact.
func publishTo(t *testing.T, u *unstructured.Unstructured, ch *chart.Chart) {
	t.Helper()
	a := artifacts.publish(t, ch)
	raw, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&a)
	if err != nil {
		t.Fatal(err)
	}
	if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(u), u); err != nil {
		t.Fatal(err)
	}
	u.Object["status"] = map[string]any{
		"observedGeneration": u.GetGeneration(),
		"artifact":           raw,
		"conditions": []any{map[string]any{
			"type": "Ready", "status": "True", "reason": "Succeeded", "message": "packaged",
			"lastTransitionTime": time.Now().UTC().Format(time.RFC3339), "observedGeneration": u.GetGeneration(),
		}},
	}
	if err := k8s.Status().Update(context.Background(), u); err != nil {
		t.Fatal(err)
	}
}

// newNamespace creates a namespace of its own for a test.
func newNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "helm-"}}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}
