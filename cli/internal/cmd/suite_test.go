package cmd

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/plumb-dev/plumb/shared/testing/testenv"
)

// The one control plane of this package (with kube-controller-manager, so that Deployments
// become available), and a kubeconfig file for the commands.
var (
	env        *testenv.Env
	k8s        client.Client
	kubeconfig string
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		panic(err)
	}
	var err error
	env, err = testenv.Start(testenv.Options{Scheme: scheme, ControllerManager: true})
	if err != nil {
		panic(err)
	}
	defer func() { _ = env.Stop() }()
	k8s = env.Client
	dir, err := os.MkdirTemp("", "plumb-cli-test-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, env.Kubeconfig, 0o600); err != nil {
		panic(err)
	}
	return m.Run()
}

// plumb runs a command line against the test cluster and returns its exit code, output and
// error output.
func plumb(ctx context.Context, args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := Execute(ctx, append([]string{"--kubeconfig", kubeconfig}, args...), &out, &errOut)
	return code, out.String(), strings.TrimSpace(errOut.String())
}
