// Command demo runs Plumb on this machine: the local control plane, the controllers built from
// this workspace, and a Git repository on loopback that gets a new commit every little while, so
// you can watch the cluster follow Git, and put back a hand edit. Stop it with Ctrl-C.
//
//	go run ./demo [-for 2m] [-every 20s]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/hack/internal/local"
	notifyv1 "github.com/plumb-dev/plumb/notification-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/shared/reconcile"
	"github.com/plumb-dev/plumb/shared/testing/testenv"
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
	say("starting the local control plane (etcd, kube-apiserver, kube-controller-manager)")
	bed, err := local.StartBed("plumb-demo-", true)
	if err != nil {
		return err
	}
	defer bed.Stop()

	git, err := local.StartGitServer(filepath.Join(bed.Dir, "git"))
	if err != nil {
		return err
	}
	defer git.Stop()
	repo, commit, err := git.NewRepo("demo", sampleApp(1))
	if err != nil {
		return err
	}
	say("Git repository %s at %s", git.URL("demo"), commit[:12])

	say("building and starting source-controller, apply-controller and notification-controller")
	if _, err := bed.StartSourceController("--log-development"); err != nil {
		return err
	}
	if _, err := bed.StartController("apply-controller", "--log-development"); err != nil {
		return err
	}
	receiverAddr, err := local.FreeAddr()
	if err != nil {
		return err
	}
	if _, err := bed.StartController("notification-controller", "--log-development", "--receiver-addr", receiverAddr, "--provider-allow-cidr=127.0.0.1/32"); err != nil {
		return err
	}
	chat := httptest.NewServer(chatSink{})
	defer chat.Close()

	c := bed.Env.Client
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "demo"}}); err != nil {
		return err
	}
	gr := &sourcev1.GitRepository{
		ObjectMeta: metav1.ObjectMeta{Name: "demo", Namespace: "demo"},
		Spec: sourcev1.GitRepositorySpec{
			URL: git.URL("demo"),
			Ref: &sourcev1.GitRepositoryRef{Branch: "main"},
			// The Git host's webhook (a Receiver) brings commits in at once; the interval is
			// only the safety net.
			Interval: metav1.Duration{Duration: 10 * time.Minute},
		},
	}
	if err := c.Create(ctx, gr); err != nil {
		return err
	}
	hook, err := notifications(ctx, c, chat.URL)
	if err != nil {
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
	say("building and starting plumb dashboard")
	dashboard, err := bed.StartDashboard("dashboard")
	if err != nil {
		return err
	}
	fmt.Printf(`
Plumb is running. Open the dashboard: %s
In another terminal:

  export KUBECONFIG=%s
  %s get gitrepositories -A -w
  git clone %s && cd demo   # push a commit and watch it arrive

Controller logs: %s, %s, %s; the dashboard's: %s
A new commit is pushed every %s and announced through a Receiver webhook, so it is applied at
once; after the second one the Deployment is edited by hand to show it put back. Lines starting
with "chat>" are the notifications an Alert sends (as a chat would show them). Ctrl-C stops
everything.

`, dashboard, bed.Kubeconfig, filepath.Join(testenv.AssetsDir(), "kubectl"), git.URL("demo"), bed.Log("source-controller"), bed.Log("apply-controller"), bed.Log("notification-controller"), bed.Log("dashboard"), every)

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
			say("pushed %s: scale to %d; the Git host calls the webhook", commit[:12], replicas)
			callWebhook(ctx, c, receiverAddr, hook)
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
	if err := c.Patch(ctx, ks, reconcile.RequestPatch(edited.Format(time.RFC3339Nano))); err != nil {
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

// notifications sets up a Receiver (the Git host's webhook) for the GitRepository, and an Alert
// that sends the Kustomization's and GitRepository's events to the demo's chat; it returns the
// Receiver's key.
func notifications(ctx context.Context, c client.Client, chatURL string) (client.ObjectKey, error) {
	objs := []client.Object{
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "webhook", Namespace: "demo"}, StringData: map[string]string{"token": "demo-webhook-token"}},
		&notifyv1.Receiver{
			ObjectMeta: metav1.ObjectMeta{Name: "git-push", Namespace: "demo"},
			Spec: notifyv1.ReceiverSpec{Type: notifyv1.GenericReceiver, SecretRef: &meta.LocalObjectReference{Name: "webhook"},
				Resources: []notifyv1.CrossNamespaceObjectReference{{APIVersion: "source.plumb.dev/v1beta1", Kind: sourcev1.GitRepositoryKind, Name: "demo"}}},
		},
		&notifyv1.Provider{
			ObjectMeta: metav1.ObjectMeta{Name: "chat", Namespace: "demo"},
			Spec:       notifyv1.ProviderSpec{Type: notifyv1.GenericProvider, Address: chatURL},
		},
		&notifyv1.Alert{
			ObjectMeta: metav1.ObjectMeta{Name: "demo", Namespace: "demo"},
			Spec: notifyv1.AlertSpec{
				ProviderRef:  meta.LocalObjectReference{Name: "chat"},
				EventSources: []notifyv1.EventSource{{Kind: "Kustomization", Name: "*"}, {Kind: sourcev1.GitRepositoryKind, Name: "*"}},
				NotifyOn:     []string{"Failure", "Recovery", "Change"},
				Summary:      "local demo",
			},
		},
	}
	for _, o := range objs {
		if err := c.Create(ctx, o); err != nil {
			return client.ObjectKey{}, err
		}
	}
	return client.ObjectKey{Namespace: "demo", Name: "git-push"}, nil
}

// callWebhook posts to the Receiver as a Git host would after a push.
func callWebhook(ctx context.Context, c client.Client, addr string, key client.ObjectKey) {
	r := &notifyv1.Receiver{}
	if err := c.Get(ctx, key, r); err != nil || r.Status.WebhookPath == "" {
		say("webhook not ready yet; the interval will bring the commit in")
		return
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+r.Status.WebhookPath, strings.NewReader(`{"ref":"refs/heads/main"}`))
	if err != nil {
		return
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		say("webhook call failed: %v", err)
		return
	}
	resp.Body.Close()
}

// chatSink prints each notification as a chat message would read.
type chatSink struct{}

func (chatSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var n struct {
		Kind, Namespace, Name, Severity, Reason, Message, Revision string
	}
	if err := json.NewDecoder(r.Body).Decode(&n); err != nil {
		http.Error(w, "bad notification", http.StatusBadRequest)
		return
	}
	icon := "✅"
	if n.Severity == "error" {
		icon = "❌"
	}
	rev := ""
	if i := strings.LastIndex(n.Revision, ":"); i >= 0 && len(n.Revision) > i+13 {
		rev = " (" + n.Revision[:i+13] + ")" // short, as a chat message shows it
	} else if n.Revision != "" {
		rev = " (" + n.Revision + ")"
	}
	say("chat> %s %s/%s/%s %s: %s%s", icon, n.Kind, n.Namespace, n.Name, n.Reason, n.Message, rev)
}
