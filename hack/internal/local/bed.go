package local

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

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
	procs      []*Process
	bins       map[string]string // module → binary built
	keep       bool
	api        *apiServer // kube-apiserver, once the bed stopped it
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
	addr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	return b.StartController("source-controller", append([]string{
		"--storage-path", filepath.Join(b.Dir, "storage"), "--storage-addr", addr, "--storage-adv-addr", addr,
	}, args...)...)
}

// Log is the log file of a controller (or of a process started with StartControllerAs) in the
// bed.
func (b *Bed) Log(module string) string { return filepath.Join(b.Dir, module+".log") }

// Stop ends the controllers and the control plane, and removes the folder unless kept.
func (b *Bed) Stop() {
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
