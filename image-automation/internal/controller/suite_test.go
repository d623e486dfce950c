package controller

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fluxcd/pkg/gittestserver"
	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	imagev1 "github.com/plumb-dev/plumb/image-automation/api/v1beta1"
	"github.com/plumb-dev/plumb/image-automation/internal/tags"
	"github.com/plumb-dev/plumb/shared/hostlimit"
	"github.com/plumb-dev/plumb/shared/registry"
	"github.com/plumb-dev/plumb/shared/testing/testenv"
)

// The one control plane, registry, Git server and manager of this package.
var (
	env          *testenv.Env
	k8s          client.Client
	registryHost string // go-containerregistry's registry on loopback, plain HTTP
	gitServer    *gittestserver.GitServer
	workDir      string // the automations' working copies
	// beforePush holds, by repository (repo-N.git), a function the Git server runs once before
	// it takes the next push: another writer racing the automation.
	beforePush sync.Map
)

const (
	timeout     = 30 * time.Second
	gitUser     = "robot"
	gitPassword = "s3cret-pa55word"
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.UseDevMode(true)))
	scheme := runtime.NewScheme()
	must(clientgoscheme.AddToScheme(scheme))
	must(imagev1.AddToScheme(scheme))
	var err error
	env, err = testenv.Start(testenv.Options{Scheme: scheme})
	must(err)
	defer func() { must(env.Stop()) }()
	k8s = env.Client

	reg := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	defer reg.Close()
	registryHost = strings.TrimPrefix(reg.URL, "http://")

	dir, err := os.MkdirTemp("", "plumb-image-test-")
	must(err)
	defer os.RemoveAll(dir)
	gitServer = gittestserver.NewGitServer(filepath.Join(dir, "repos"))
	gitServer.Auth(gitUser, gitPassword).AutoCreate()
	gitServer.AddHTTPMiddlewares(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost && path.Base(r.URL.Path) == "git-receive-pack" {
				if f, ok := beforePush.LoadAndDelete(path.Base(path.Dir(r.URL.Path))); ok {
					f.(func())()
				}
			}
			next.ServeHTTP(w, r)
		})
	})
	must(gitServer.StartHTTP())
	defer gitServer.StopHTTP()

	workDir = filepath.Join(dir, "git")
	store, err := tags.New(filepath.Join(dir, "tags"))
	must(err)
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}})
	must(err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rec := mgr.GetEventRecorder("image-automation")
	// One scan per registry host at a time, so that a registry that hangs holds one of the two
	// workers at most; it fails at a short first-byte deadline.
	registry.SetDeadlines(hostlimit.Deadlines{Dial: 5 * time.Second, TLSHandshake: 5 * time.Second, ResponseHeader: 10 * time.Second})
	must((&ImageRepositoryReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Events: rec, Tags: store,
		ControllerName: "image-automation"}).SetupWithManager(ctx, mgr, Options{Concurrent: 2, Hosts: hostlimit.New(1, hostlimit.DefaultBusyWait), HostBusyRetry: hostlimit.DefaultBusyRetry}))
	must((&ImagePolicyReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Events: rec, Tags: store,
		ControllerName: "image-automation"}).SetupWithManager(ctx, mgr, Options{Concurrent: 2}))
	must((&ImageUpdateAutomationReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Events: rec,
		WorkDir: workDir, ControllerName: "image-automation"}).SetupWithManager(ctx, mgr, Options{Concurrent: 2}))
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

// newNamespace makes a namespace of its own for a test.
func newNamespace(t *testing.T, labels map[string]string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "image-", Labels: labels}}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

var imageCount atomic.Int64

// newImage names a fresh repository of the loopback registry.
func newImage() string {
	return fmt.Sprintf("%s/acme/app-%d", registryHost, imageCount.Add(1))
}

// pushTags pushes a small random image under each tag and returns the digests by tag.
func pushTags(t *testing.T, image string, tagList ...string) map[string]string {
	return pushTagsWith(t, image, nil, tagList...)
}

// pushTagsWith pushes with remote options, such as credentials.
func pushTagsWith(t *testing.T, image string, opts []remote.Option, tagList ...string) map[string]string {
	t.Helper()
	digests := map[string]string{}
	for _, tag := range tagList {
		ref, err := name.NewTag(image+":"+tag, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		img, err := random.Image(64, 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(ref, img, opts...); err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		digests[tag] = d.String()
	}
	return digests
}

var repoCount atomic.Int64

// gitRepo is a repository on the loopback Git server with a local working copy to write it.
type gitRepo struct {
	mu   sync.Mutex // the working copy, written by the test or the Git server's hook
	t    *testing.T
	URL  string
	dir  string
	repo *gogit.Repository
}

var gitAuth = &githttp.BasicAuth{Username: gitUser, Password: gitPassword}

// newGitRepo publishes files on branch main.
func newGitRepo(t *testing.T, files map[string]string) *gitRepo {
	t.Helper()
	r := &gitRepo{t: t, URL: fmt.Sprintf("%s/repo-%d.git", gitServer.HTTPAddress(), repoCount.Add(1)), dir: t.TempDir()}
	var err error
	r.repo, err = gogit.PlainInit(r.dir, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.repo.Storer.SetReference(plumbing.NewSymbolicReference(plumbing.HEAD, plumbing.NewBranchReferenceName("main"))); err != nil {
		t.Fatal(err)
	}
	if _, err := r.repo.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{r.URL}}); err != nil {
		t.Fatal(err)
	}
	r.commit(files)
	return r
}

// commit writes files and pushes them to main; a content "symlink:<target>" makes a symbolic
// link.
func (r *gitRepo) commit(files map[string]string) {
	if err := r.tryCommit(files); err != nil {
		r.t.Fatal(err)
	}
}

// tryCommit is commit for another goroutine than the test's.
func (r *gitRepo) tryCommit(files map[string]string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	wt, err := r.repo.Worktree()
	if err != nil {
		return err
	}
	for n, c := range files {
		p := filepath.Join(r.dir, n)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if target, ok := strings.CutPrefix(c, "symlink:"); ok {
			err = os.Symlink(target, p)
		} else {
			err = os.WriteFile(p, []byte(c), 0o644)
		}
		if err != nil {
			return err
		}
		if _, err := wt.Add(n); err != nil {
			return err
		}
	}
	sig := &object.Signature{Name: "dev", Email: "dev@example.com", When: time.Now()}
	if _, err := wt.Commit("dev change", &gogit.CommitOptions{Author: sig}); err != nil {
		return err
	}
	return r.repo.Push(&gogit.PushOptions{Auth: gitAuth, RefSpecs: []config.RefSpec{"refs/heads/main:refs/heads/main"}})
}

// file reads a file at the tip of a branch on the server.
func (r *gitRepo) file(branch, path string) (string, *object.Commit) {
	r.t.Helper()
	if err := r.repo.Fetch(&gogit.FetchOptions{Auth: gitAuth, Force: true,
		RefSpecs: []config.RefSpec{config.RefSpec("+refs/heads/*:refs/remotes/origin/*")}}); err != nil && err != gogit.NoErrAlreadyUpToDate {
		r.t.Fatal(err)
	}
	ref, err := r.repo.Reference(plumbing.NewRemoteReferenceName("origin", branch), true)
	if err != nil {
		return "", nil
	}
	c, err := r.repo.CommitObject(ref.Hash())
	if err != nil {
		r.t.Fatal(err)
	}
	f, err := c.File(path)
	if err != nil {
		return "", c
	}
	s, err := f.Contents()
	if err != nil {
		r.t.Fatal(err)
	}
	return s, c
}
