// Command demo runs Plumb on this machine: the local control plane, the controllers built from
// this workspace, and a Git repository on loopback that gets a new commit every little while, so
// you can watch the cluster follow Git, and put back a hand edit. Stop it with Ctrl-C.
//
//	go run ./demo [-for 2m] [-every 20s]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/hack/internal/local"
	"github.com/plumb-dev/plumb/shared/reconcile"
	"github.com/plumb-dev/plumb/shared/testenv"
	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
)

func main() {
	runFor := flag.Duration("for", 0, "stop after this long (default: until Ctrl-C)")
	every := flag.Duration("every", 20*time.Second, "push a new commit this often")
	flag.Parse()
	log.SetOutput(io.Discard) // the test Git server logs every request
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *runFor > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *runFor)
		defer cancel()
	}
	if err := run(ctx, *every); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, every time.Duration) error {
	root, err := testenv.WorkspaceRoot()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "plumb-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	say("starting the local control plane (etcd, kube-apiserver, kube-controller-manager)")
	scheme := k8sruntime.NewScheme()
	if err := errors.Join(clientgoscheme.AddToScheme(scheme), sourcev1.AddToScheme(scheme), applyv1.AddToScheme(scheme)); err != nil {
		return err
	}
	env, err := testenv.Start(testenv.Options{Scheme: scheme, ControllerManager: true})
	if err != nil {
		return err
	}
	defer env.Stop()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, env.Kubeconfig, 0o600); err != nil {
		return err
	}

	git, err := local.StartGitServer(filepath.Join(dir, "git"))
	if err != nil {
		return err
	}
	defer git.Stop()
	repo, commit, err := git.NewRepo("demo", sampleApp(1))
	if err != nil {
		return err
	}
	say("Git repository %s at %s", git.URL("demo"), commit[:12])

	say("building and starting source-controller and apply-controller")
	bin, err := local.Build(root, "source-controller", dir)
	if err != nil {
		return err
	}
	applyBin, err := local.Build(root, "apply-controller", dir)
	if err != nil {
		return err
	}
	addr, err := local.FreeAddr()
	if err != nil {
		return err
	}
	logFile := filepath.Join(dir, "source-controller.log")
	sc, err := local.Start(bin, kubeconfig, logFile,
		"--storage-path", filepath.Join(dir, "storage"), "--storage-addr", addr, "--storage-adv-addr", addr,
		"--metrics-addr", "0", "--health-addr", "0", "--leader-elect=false", "--log-development")
	if err != nil {
		return err
	}
	defer sc.Stop()
	applyLog := filepath.Join(dir, "apply-controller.log")
	ac, err := local.Start(applyBin, kubeconfig, applyLog,
		"--metrics-addr", "0", "--health-addr", "0", "--leader-elect=false", "--log-development")
	if err != nil {
		return err
	}
	defer ac.Stop()

	c := env.Client
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "demo"}}); err != nil {
		return err
	}
	gr := &sourcev1.GitRepository{
		ObjectMeta: metav1.ObjectMeta{Name: "demo", Namespace: "demo"},
		Spec: sourcev1.GitRepositorySpec{
			URL:      git.URL("demo"),
			Ref:      &sourcev1.GitRepositoryRef{Branch: "main"},
			Interval: metav1.Duration{Duration: 5 * time.Second},
		},
	}
	if err := c.Create(ctx, gr); err != nil {
		return err
	}
	ks := &applyv1.Kustomization{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "demo"},
		Spec: applyv1.KustomizationSpec{
			SourceRef: applyv1.CrossNamespaceSourceReference{Kind: sourcev1.GitRepositoryKind, Name: "demo"},
			Path:      "apps/web",
			Interval:  metav1.Duration{Duration: 10 * time.Second},
			Prune:     true,
		},
	}
	if err := c.Create(ctx, ks); err != nil {
		return err
	}
	fmt.Printf(`
Plumb is running. In another terminal:

  export KUBECONFIG=%s
  %s get gitrepositories -A -w
  git clone %s && cd demo   # push a commit and watch it arrive

Controller logs: %s, %s
A new commit is pushed every %s, and after the second one the Deployment is edited by hand to
show it put back; Ctrl-C stops everything.

`, kubeconfig, filepath.Join(testenv.AssetsDir(), "kubectl"), git.URL("demo"), logFile, applyLog, every)

	push := time.NewTicker(every)
	defer push.Stop()
	poll := time.NewTicker(500 * time.Millisecond)
	defer poll.Stop()
	replicas, pushes := 1, 0
	seen := map[string]string{}
	show := func(what, line string) {
		if seen[what] != line {
			say("%s: %s", what, line)
			seen[what] = line
		}
	}
	for {
		select {
		case <-ctx.Done():
			say("stopping")
			return nil
		case <-push.C:
			replicas = replicas%3 + 1
			commit, err := repo.Commit(fmt.Sprintf("scale to %d", replicas), sampleApp(replicas))
			if err != nil {
				return err
			}
			say("pushed %s: scale to %d", commit[:12], replicas)
			if pushes++; pushes == 2 {
				go func() {
					select {
					case <-ctx.Done():
					case <-time.After(every / 2):
						editByHand(ctx, c)
					}
				}()
			}
		case <-poll.C:
			if c.Get(ctx, client.ObjectKeyFromObject(gr), gr) == nil {
				show("GitRepository demo/demo", describe(gr.Status.Conditions))
			}
			if c.Get(ctx, client.ObjectKeyFromObject(ks), ks) == nil {
				show("Kustomization demo/web", describe(ks.Status.Conditions))
			}
			d := &appsv1.Deployment{}
			if c.Get(ctx, client.ObjectKey{Namespace: "demo", Name: "web"}, d) == nil && d.Spec.Replicas != nil {
				show("Deployment demo/web", fmt.Sprintf("spec.replicas=%d", *d.Spec.Replicas))
			}
		}
	}
}

// editByHand changes the Deployment behind Git's back, then asks for a reconcile, as a person
// who wants the drift fixed now would.
func editByHand(ctx context.Context, c client.Client) {
	d := &appsv1.Deployment{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: "demo", Name: "web"}, d); err != nil {
		return
	}
	five := int32(5)
	d.Spec.Replicas = &five
	if err := c.Update(ctx, d, client.FieldOwner("kubectl-edit")); err != nil {
		say("hand edit failed: %v", err)
		return
	}
	say("edited Deployment demo/web by hand: spec.replicas=5 (Git says otherwise); requesting a reconcile")
	edited := time.Now()
	ks := &applyv1.Kustomization{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "demo"}}
	patch := client.RawPatch("application/merge-patch+json",
		fmt.Appendf(nil, `{"metadata":{"annotations":{%q:%q}}}`, reconcile.RequestedAtAnnotation, edited.Format(time.RFC3339Nano)))
	if err := c.Patch(ctx, ks, patch); err != nil {
		return
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for range tick.C {
		if ctx.Err() != nil || c.Get(ctx, client.ObjectKeyFromObject(d), d) != nil {
			return
		}
		if *d.Spec.Replicas != five {
			say("hand edit put back: spec.replicas=%d, %d ms after the request", *d.Spec.Replicas, time.Since(edited).Milliseconds())
			return
		}
	}
}

func describe(conds []metav1.Condition) string {
	for _, cond := range conds {
		if cond.Type == meta.ReadyCondition {
			return fmt.Sprintf("Ready=%s %s", cond.Status, cond.Message)
		}
	}
	return "waiting for the first reconcile"
}

func sampleApp(replicas int) map[string]string {
	return map[string]string{
		"apps/web/deployment.yaml": fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: demo
spec:
  replicas: %d
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: registry.example.invalid/web:1.0.0
`, replicas),
		"apps/web/service.yaml": `apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: demo
spec:
  selector: {app: web}
  ports: [{port: 80}]
`,
	}
}

func say(format string, args ...any) {
	fmt.Printf("%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}
