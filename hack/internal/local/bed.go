package local

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
	helmv1 "github.com/plumb-dev/plumb/helm-controller/api/v1beta1"
	imagev1 "github.com/plumb-dev/plumb/image-automation/api/v1beta1"
	notifyv1 "github.com/plumb-dev/plumb/notification-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/shared/testing/testenv"
	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
)

// Bed is Plumb on this machine: the control plane, a folder for binaries, kubeconfig, logs and
// artifacts, and the controllers started in it. Stop ends them all.
type Bed struct {
	Env        *testenv.Env
	Dir        string
	Kubeconfig string
	root       string
	keep       bool

	mu    sync.Mutex // tests start processes in parallel
	procs []*Process
	bins  map[string]string // module → binary built
	api   *apiServer        // kube-apiserver, once the bed stopped it
}

// StartBed starts the control plane (with kube-controller-manager when asked) in a new folder
// named after prefix. With PLUMB_KEEP set, the folder stays after Stop, for its logs.
func StartBed(prefix string, controllerManager bool) (*Bed, error) {
	root, err := testenv.WorkspaceRoot()
	if err != nil {
		return nil, err
	}
	scheme := k8sruntime.NewScheme()
	if err := errors.Join(clientgoscheme.AddToScheme(scheme), sourcev1.AddToScheme(scheme), applyv1.AddToScheme(scheme), helmv1.AddToScheme(scheme), notifyv1.AddToScheme(scheme), imagev1.AddToScheme(scheme)); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return nil, err
	}
	b := &Bed{Dir: dir, Kubeconfig: filepath.Join(dir, "kubeconfig"), root: root, bins: map[string]string{}, keep: os.Getenv("PLUMB_KEEP") != ""}
	if b.Env, err = testenv.Start(testenv.Options{Scheme: scheme, ControllerManager: controllerManager}); err != nil {
		b.Stop()
		return nil, err
	}
	if err := os.WriteFile(b.Kubeconfig, b.Env.Kubeconfig, 0o600); err != nil {
		b.Stop()
		return nil, err
	}
	return b, nil
}

// StartController builds a controller of the workspace and runs it against the control plane,
// without metrics, probes or leader election; args come on top. Its log is <module>.log.
func (b *Bed) StartController(module string, args ...string) (*Process, error) {
	return b.StartControllerAs(module, module, args...)
}

// StartControllerAs is StartController for one of several processes of a module (shards): the
// module is built once, and the log of this process is <name>.log.
func (b *Bed) StartControllerAs(name, module string, args ...string) (*Process, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	bin, ok := b.bins[module]
	if !ok {
		var err error
		if bin, err = Build(b.root, module, b.Dir); err != nil {
			return nil, err
		}
		b.bins[module] = bin
	}
	args = append([]string{"--metrics-addr", "0", "--health-addr", "0", "--leader-elect=false"}, args...)
	p, err := Start(bin, b.Kubeconfig, b.Log(name), args...)
	if err != nil {
		return nil, err
	}
	b.procs = append(b.procs, p)
	return p, nil
}

// StartSourceController runs source-controller with its artifacts in the bed's folder, served
// on a free loopback port.
func (b *Bed) StartSourceController(args ...string) (*Process, error) {
	return b.StartSourceControllerAs("source-controller", args...)
}

// StartSourceControllerAs is StartSourceController for one of several source-controller
// processes (shards by --watch-label-selector): each has a storage folder and port of its own,
// and its log is <name>.log.
func (b *Bed) StartSourceControllerAs(name string, args ...string) (*Process, error) {
	addr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	return b.StartControllerAs(name, "source-controller", append([]string{
		"--storage-path", filepath.Join(b.Dir, name+"-storage"), "--storage-addr", addr, "--storage-adv-addr", addr,
	}, args...)...)
}

// StartDashboard builds the plumb command once and runs `plumb dashboard` against the control
// plane on a free loopback port, args on top (`--as user` runs it as another user); it returns
// the dashboard's URL once it answers. Its log is <name>.log.
func (b *Bed) StartDashboard(name string, args ...string) (string, error) {
	b.mu.Lock()
	bin, ok := b.bins["cli"]
	if !ok {
		bin = filepath.Join(b.Dir, "plumb-dashboard") // the e2e tests build their own plumb
		cmd := exec.Command("go", "build", "-buildvcs=false", "-o", bin, "./cli/cmd/plumb")
		cmd.Dir, cmd.Stdout, cmd.Stderr = b.root, os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			b.mu.Unlock()
			return "", fmt.Errorf("build plumb: %w", err)
		}
		b.bins["cli"] = bin
	}
	b.mu.Unlock()
	addr, err := FreeAddr()
	if err != nil {
		return "", err
	}
	p, err := Start(bin, b.Kubeconfig, b.Log(name), append([]string{"dashboard", "--addr", addr}, args...)...)
	if err != nil {
		return "", err
	}
	b.mu.Lock()
	b.procs = append(b.procs, p)
	b.mu.Unlock()
	url := "http://" + addr + "/"
	deadline := time.Now().Add(2 * time.Minute)
	for {
		resp, err := http.Get(url + "healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url, nil
			}
		}
		select {
		case <-p.done:
			log, _ := os.ReadFile(b.Log(name))
			return "", fmt.Errorf("plumb dashboard ended: %s", log)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("plumb dashboard did not answer on %s in 2m (log: %s)", addr, b.Log(name))
		}
	}
}

// Log is the log file of a controller (or of a process started with StartControllerAs) in the
// bed.
func (b *Bed) Log(module string) string { return filepath.Join(b.Dir, module+".log") }

// Stop ends the controllers and the control plane, and removes the folder unless kept.
func (b *Bed) Stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.procs {
		p.Stop()
	}
	b.stopAPIServer()
	if b.Env != nil {
		_ = b.Env.Stop()
	}
	if b.keep {
		fmt.Fprintln(os.Stderr, "kept", b.Dir)
		return
	}
	_ = os.RemoveAll(b.Dir)
}
