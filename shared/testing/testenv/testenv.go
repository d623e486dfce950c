// Package testenv starts the local control plane for a test package: a real etcd and
// kube-apiserver (and, when asked, kube-controller-manager) built by hack/controlplane.sh, with
// every CRD of the workspace installed. Start one per package, in TestMain.
package testenv

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// DefaultKubernetesVersion is the release hack/controlplane.sh builds.
const DefaultKubernetesVersion = "1.37.2"

// Options tune Start.
type Options struct {
	// Scheme for the client; nil uses client-go's scheme. Add the API packages under test to it.
	Scheme *runtime.Scheme
	// CRDDirs to install; nil installs every config/crd/bases folder of the workspace.
	CRDDirs []string
	// ControllerManager also runs kube-controller-manager, so that Deployments, ReplicaSets and
	// namespaces get real status and deletion.
	ControllerManager bool
}

// Env is a running control plane.
type Env struct {
	// Client talks to the API server as cluster admin, without a cache; it can watch.
	Client client.WithWatch
	// Config is the admin REST config.
	Config *rest.Config
	// Kubeconfig is Config as a kubeconfig file's content.
	Kubeconfig []byte
	// Scheme is the client's scheme.
	Scheme *runtime.Scheme

	env      *envtest.Environment
	kcm      *exec.Cmd
	kcmDir   string
	stopping chan struct{}
	done     chan struct{}
}

// AssetsDir returns the folder of the control-plane binaries: $KUBEBUILDER_ASSETS, or
// $PLUMB_CACHE/bin/<version> (default ~/.cache/plumb).
func AssetsDir() string {
	if d := os.Getenv("KUBEBUILDER_ASSETS"); d != "" {
		return d
	}
	cache := os.Getenv("PLUMB_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "plumb")
	}
	v := os.Getenv("K8S_VERSION")
	if v == "" {
		v = DefaultKubernetesVersion
	}
	return filepath.Join(cache, "bin", v)
}

// Start starts etcd and kube-apiserver, installs the CRDs and waits until they are served.
func Start(opts Options) (*Env, error) {
	assets := AssetsDir()
	bins := []string{"etcd", "kube-apiserver"}
	if opts.ControllerManager {
		bins = append(bins, "kube-controller-manager")
	}
	for _, b := range bins {
		if _, err := os.Stat(filepath.Join(assets, b)); err != nil {
			return nil, fmt.Errorf("control plane binary %s missing in %s: run `make controlplane` (or `make test`, which builds it)", b, assets)
		}
	}
	scheme := opts.Scheme
	if scheme == nil {
		scheme = clientgoscheme.Scheme
	}
	dirs := opts.CRDDirs
	if dirs == nil {
		var err error
		if dirs, err = WorkspaceCRDDirs(); err != nil {
			return nil, err
		}
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory:    assets,
		CRDDirectoryPaths:        dirs,
		ErrorIfCRDPathMissing:    true,
		Scheme:                   scheme,
		ControlPlaneStartTimeout: 2 * time.Minute,
		ControlPlaneStopTimeout:  time.Minute,
	}
	// A /16 of (virtual, never routed) Service IPs: tests and benchmarks create thousands of
	// Services, and the default /24 runs out at 256.
	env.ControlPlane.GetAPIServer().Configure().Set("service-cluster-ip-range", "10.0.0.0/16")
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("start control plane from %s: %w", assets, err)
	}
	// Tests create many objects quickly; the default client rate limit would slow them down.
	cfg.QPS, cfg.Burst = 500, 1000
	e := &Env{Config: cfg, Scheme: scheme, env: env}
	if e.Client, err = client.NewWithWatch(cfg, client.Options{Scheme: scheme}); err != nil {
		return nil, errors.Join(err, e.Stop())
	}
	user, err := env.AddUser(envtest.User{Name: "plumb-test-admin", Groups: []string{"system:masters"}}, cfg)
	if err != nil {
		return nil, errors.Join(err, e.Stop())
	}
	if e.Kubeconfig, err = user.KubeConfig(); err != nil {
		return nil, errors.Join(err, e.Stop())
	}
	if opts.ControllerManager {
		if err := e.startControllerManager(assets); err != nil {
			return nil, errors.Join(err, e.Stop())
		}
	}
	return e, nil
}

// startControllerManager runs kube-controller-manager with the controllers that give workloads
// and namespaces their status and lifecycle. Its log is kept in a temporary folder that Stop
// removes, and printed to stderr if it exits before Stop.
func (e *Env) startControllerManager(assets string) error {
	dir, err := os.MkdirTemp("", "plumb-kcm-")
	if err != nil {
		return err
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, e.Kubeconfig, 0o600); err != nil {
		return err
	}
	api := e.env.ControlPlane.GetAPIServer()
	cmd := exec.Command(filepath.Join(assets, "kube-controller-manager"),
		"--kubeconfig="+kubeconfig,
		"--authentication-kubeconfig="+kubeconfig,
		"--authorization-kubeconfig="+kubeconfig,
		"--leader-elect=false",
		"--secure-port=0",
		"--service-account-private-key-file="+filepath.Join(api.CertDir, "sa-signer.key"),
		"--use-service-account-credentials=false",
		"--controllers=deployment-controller,replicaset-controller,statefulset-controller,daemonset-controller,job-controller,namespace-controller,garbage-collector-controller,serviceaccount-controller",
		"--concurrent-deployment-syncs=10", "--concurrent-replicaset-syncs=10",
		// The test bed: no client-side throttling of the controllers that give objects status.
		"--kube-api-qps=1000", "--kube-api-burst=2000",
		"--v=0",
	)
	log, err := os.Create(filepath.Join(dir, "kcm.log"))
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start kube-controller-manager: %w", err)
	}
	e.kcm, e.kcmDir = cmd, dir
	e.stopping, e.done = make(chan struct{}), make(chan struct{})
	go func() {
		err := cmd.Wait()
		_ = log.Close()
		select {
		case <-e.stopping:
		default:
			out, _ := os.ReadFile(log.Name())
			fmt.Fprintf(os.Stderr, "kube-controller-manager exited early (%v):\n%s\n", err, out)
		}
		close(e.done)
	}()
	return nil
}

// AddUser makes a user of the control plane that has only the RBAC the test grants it (and
// what every authenticated user has), and returns a config that authenticates as it.
func (e *Env) AddUser(name string, groups ...string) (*rest.Config, error) {
	u, err := e.env.AddUser(envtest.User{Name: name, Groups: groups}, e.Config)
	if err != nil {
		return nil, err
	}
	cfg := u.Config()
	cfg.QPS, cfg.Burst = e.Config.QPS, e.Config.Burst
	return cfg, nil
}

// Stop stops every process of the control plane.
func (e *Env) Stop() error {
	if e.kcm != nil && e.kcm.Process != nil {
		close(e.stopping)
		_ = e.kcm.Process.Signal(os.Interrupt)
		select {
		case <-e.done:
		case <-time.After(10 * time.Second):
			_ = e.kcm.Process.Kill()
			<-e.done
		}
		_ = os.RemoveAll(e.kcmDir)
	}
	return e.env.Stop()
}

// WorkspaceCRDDirs returns every config/crd/bases folder below the workspace root (the folder of
// go.work above the working directory).
func WorkspaceCRDDirs() ([]string, error) {
	root, err := WorkspaceRoot()
	if err != nil {
		return nil, err
	}
	var dirs []string
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if strings.HasPrefix(d.Name(), ".") && p != root || d.Name() == "testdata" || d.Name() == "node_modules" {
			return filepath.SkipDir
		}
		if strings.HasSuffix(filepath.ToSlash(p), "/config/crd/bases") {
			dirs = append(dirs, p)
			return filepath.SkipDir
		}
		return nil
	})
	return dirs, err
}

// WorkspaceRoot returns the nearest folder at or above the working directory holding go.work.
func WorkspaceRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.work found above the working directory")
		}
		dir = parent
	}
}
