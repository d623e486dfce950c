package controller

import (
	"context"
	"fmt"
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
	"github.com/go-git/go-billy/v5/memfs"
	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	"github.com/go-git/go-git/v5/storage/memory"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/plumb-dev/plumb/shared/artifact"
	"github.com/plumb-dev/plumb/shared/hostlimit"
	"github.com/plumb-dev/plumb/shared/registry"
	"github.com/plumb-dev/plumb/shared/testing/testenv"
	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/source-controller/internal/bucket"
	"github.com/plumb-dev/plumb/source-controller/internal/git"
	"github.com/plumb-dev/plumb/source-controller/internal/helm"
	"github.com/plumb-dev/plumb/source-controller/internal/storage"
)

// The one control plane, Git server, artifact server and manager of this package.
var (
	env        *testenv.Env
	k8s        client.Client
	store      *storage.Storage
	gitServer  *gittestserver.GitServer
	reconciler *GitRepositoryReconciler
	// ociReconciler's limits are small, so that a test can exceed them.
	ociReconciler *OCIRepositoryReconciler
	ociLimits     = artifact.Limits{MaxFiles: 1000, MaxBytes: 1 << 20}
	// helmRepositoryReconciler and helmChartReconciler are the Helm kinds' reconcilers.
	helmRepositoryReconciler *HelmRepositoryReconciler
	helmChartReconciler      *HelmChartReconciler
	// bucketReconciler reads the Buckets, from the S3 server of bucket_controller_test.go.
	bucketReconciler *BucketReconciler
	// uploadPacks counts the fetches (git-upload-pack POSTs) the Git server answered, by
	// repository.
	uploadPacks sync.Map
	// tmp is the package's folder, removed when its tests end: the storage servers started on
	// first use keep their data under it.
	tmp string
)

// testDeadlines are the connect and first-byte deadlines of the tests' clients.
var testDeadlines = hostlimit.Deadlines{Dial: 5 * time.Second, TLSHandshake: 5 * time.Second, ResponseHeader: 10 * time.Second}

const (
	gitUser     = "plumber"
	gitPassword = "s3cr3t-pa55word"
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.UseDevMode(true)))
	scheme := runtime.NewScheme()
	must(clientgoscheme.AddToScheme(scheme))
	must(sourcev1.AddToScheme(scheme))
	var err error
	env, err = testenv.Start(testenv.Options{Scheme: scheme})
	must(err)
	defer func() { must(env.Stop()) }()
	k8s = env.Client

	dir, err := os.MkdirTemp("", "plumb-source-test-")
	must(err)
	defer os.RemoveAll(dir)
	tmp = dir
	defer stopStorageServers()
	artifacts := httptest.NewServer(http.NotFoundHandler())
	defer artifacts.Close()
	store, err = storage.New(filepath.Join(dir, "artifacts"), artifacts.URL, 2)
	must(err)
	artifacts.Config.Handler = store.Handler()

	gitServer, err = gittestserver.NewTempGitServer()
	must(err)
	defer os.RemoveAll(gitServer.Root())
	gitServer.Auth(gitUser, gitPassword).AutoCreate()
	gitServer.AddHTTPMiddlewares(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost && filepath.Base(r.URL.Path) == "git-upload-pack" {
				n, _ := uploadPacks.LoadOrStore(path.Base(path.Dir(r.URL.Path)), new(atomic.Int64))
				n.(*atomic.Int64).Add(1)
			}
			next.ServeHTTP(w, r)
		})
	})
	must(gitServer.StartHTTP())
	defer gitServer.StopHTTP()
	stopSSH, err := startSSH(dir)
	must(err)
	defer stopSSH()

	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:  scheme,
		Metrics: metricsserver.Options{BindAddress: "0"},
		Client:  client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}, &corev1.ServiceAccount{}}}},
		// The OCIRepositories of objectLevelNamespace are another manager's, whose Cloud has
		// object-level workload identity (ocirepository_cloud_test.go); the verifiable kinds of
		// the policy namespaces are those of managers run with --require-verification
		// (require_verification_test.go).
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&sourcev1.OCIRepository{}: {Field: notInNamespaces(objectLevelNamespace, requireAllNamespace, requireSomeNamespace)},
			&sourcev1.GitRepository{}: {Field: notInNamespaces(requireAllNamespace, requireSomeNamespace)},
			&sourcev1.HelmChart{}:     {Field: notInNamespaces(requireAllNamespace, requireSomeNamespace)},
		}},
	})
	must(err)
	reconciler = &GitRepositoryReconciler{
		Client:         mgr.GetClient(),
		Events:         mgr.GetEventRecorder("source-controller"),
		Storage:        store,
		ControllerName: "source-controller",
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The production bound per host and busy wait; a host that never answers fails after
	// seconds, so that the tests stay short.
	git.SetDeadlines(testDeadlines)
	helm.SetDeadlines(testDeadlines)
	registry.SetDeadlines(testDeadlines)
	bucket.SetDeadlines(testDeadlines)
	opts := Options{Concurrent: 4, Hosts: hostlimit.New(hostlimit.DefaultMaxPerHost, hostlimit.DefaultBusyWait), HostBusyRetry: hostlimit.DefaultBusyRetry}
	must(reconciler.SetupWithManager(ctx, mgr, opts))
	ociReconciler = &OCIRepositoryReconciler{
		Client:         mgr.GetClient(),
		Events:         mgr.GetEventRecorder("source-controller"),
		Storage:        store,
		ControllerName: "source-controller",
		Limits:         &ociLimits,
	}
	must(ociReconciler.SetupWithManager(ctx, mgr, opts))
	helmRepositoryReconciler = &HelmRepositoryReconciler{
		Client:         mgr.GetClient(),
		Events:         mgr.GetEventRecorder("source-controller"),
		Storage:        store,
		ControllerName: "source-controller",
		MaxIndexSize:   1 << 20,
	}
	must(helmRepositoryReconciler.SetupWithManager(ctx, mgr, opts))
	helmChartReconciler = &HelmChartReconciler{
		Client:         mgr.GetClient(),
		Events:         mgr.GetEventRecorder("source-controller"),
		Storage:        store,
		ControllerName: "source-controller",
	}
	must(helmChartReconciler.SetupWithManager(ctx, mgr, opts))
	bucketReconciler = &BucketReconciler{
		Client:         mgr.GetClient(),
		Events:         mgr.GetEventRecorder("source-controller"),
		Storage:        store,
		ControllerName: "source-controller",
	}
	must(bucketReconciler.SetupWithManager(ctx, mgr, opts))
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	code := m.Run()
	cancel()
	must(<-done)
	return code
}

// notInNamespaces selects the objects of every namespace but those named.
func notInNamespaces(names ...string) fields.Selector {
	var sel []fields.Selector
	for _, n := range names {
		sel = append(sel, fields.OneTermNotEqualSelector("metadata.namespace", n))
	}
	return fields.AndSelectors(sel...)
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

// newNamespace creates a namespace of its own for a test.
func newNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "git-"}}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

// credentialsSecret creates the basic-auth Secret of the test Git server.
func credentialsSecret(t *testing.T, ns string, data map[string]string) string {
	t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{GenerateName: "creds-", Namespace: ns}, StringData: data}
	if err := k8s.Create(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	return s.Name
}

func basicAuth(t *testing.T, ns string) string {
	return credentialsSecret(t, ns, map[string]string{"username": gitUser, "password": gitPassword})
}

// testRepo is a repository on the test Git server, edited through an in-memory clone.
type testRepo struct {
	t    *testing.T
	url  string
	repo *gogit.Repository
}

var repoCount atomic.Int64

// newRepo creates a repository on the server whose branch main holds files.
func newRepo(t *testing.T, files map[string]string) *testRepo {
	t.Helper()
	url := fmt.Sprintf("%s/repo-%d.git", gitServer.HTTPAddress(), repoCount.Add(1))
	repo, err := gogit.Init(memory.NewStorage(), memfs.New())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{url}}); err != nil {
		t.Fatal(err)
	}
	// The first commit lands on master in go-git; point HEAD at main first.
	if err := repo.Storer.SetReference(plumbing.NewSymbolicReference(plumbing.HEAD, plumbing.NewBranchReferenceName("main"))); err != nil {
		t.Fatal(err)
	}
	r := &testRepo{t: t, url: url, repo: repo}
	r.commit(files)
	r.push("refs/heads/main:refs/heads/main")
	// The server created the bare repository on push with HEAD at master; make main the default.
	head := filepath.Join(gitServer.Root(), filepath.Base(url), "HEAD")
	if err := os.WriteFile(head, []byte("ref: refs/heads/main\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return r
}

// commit writes files (an empty content deletes the file, "-> target" makes a symlink) and
// commits on the current branch.
func (r *testRepo) commit(files map[string]string) string {
	r.t.Helper()
	wt, err := r.repo.Worktree()
	if err != nil {
		r.t.Fatal(err)
	}
	for name, content := range files {
		if content == "" {
			if _, err := wt.Remove(name); err != nil {
				r.t.Fatal(err)
			}
			continue
		}
		if target, ok := strings.CutPrefix(content, "-> "); ok {
			if err := wt.Filesystem.Symlink(target, name); err != nil {
				r.t.Fatal(err)
			}
			if _, err := wt.Add(name); err != nil {
				r.t.Fatal(err)
			}
			continue
		}
		if err := wt.Filesystem.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			r.t.Fatal(err)
		}
		f, err := wt.Filesystem.Create(name)
		if err != nil {
			r.t.Fatal(err)
		}
		if _, err := f.Write([]byte(content)); err != nil {
			r.t.Fatal(err)
		}
		must(f.Close())
		if _, err := wt.Add(name); err != nil {
			r.t.Fatal(err)
		}
	}
	h, err := wt.Commit("change", &gogit.CommitOptions{
		Author: &object.Signature{Name: "Test", Email: "test@example.invalid", When: time.Now()},
	})
	if err != nil {
		r.t.Fatal(err)
	}
	return h.String()
}

func (r *testRepo) push(refspecs ...string) {
	r.t.Helper()
	specs := make([]config.RefSpec, len(refspecs))
	for i, s := range refspecs {
		specs[i] = config.RefSpec("+" + s)
	}
	err := r.repo.Push(&gogit.PushOptions{
		RemoteName: "origin", RefSpecs: specs,
		Auth: &githttp.BasicAuth{Username: gitUser, Password: gitPassword},
	})
	if err != nil && err != gogit.NoErrAlreadyUpToDate {
		r.t.Fatal(err)
	}
}

// commitAndPush commits on main and pushes it.
func (r *testRepo) commitAndPush(files map[string]string) string {
	r.t.Helper()
	h := r.commit(files)
	r.push("refs/heads/main:refs/heads/main")
	return h
}

// tag creates a tag on HEAD (annotated when message is set) and pushes it.
func (r *testRepo) tag(name, message string) string {
	r.t.Helper()
	head, err := r.repo.Head()
	if err != nil {
		r.t.Fatal(err)
	}
	var opts *gogit.CreateTagOptions
	if message != "" {
		opts = &gogit.CreateTagOptions{Message: message, Tagger: &object.Signature{Name: "Test", Email: "test@example.invalid", When: time.Now()}}
	}
	if _, err := r.repo.CreateTag(name, head.Hash(), opts); err != nil {
		r.t.Fatal(err)
	}
	r.push("refs/tags/" + name + ":refs/tags/" + name)
	return head.Hash().String()
}

// branch creates a branch at HEAD, commits files on it and pushes it; the clone stays on main.
func (r *testRepo) branch(name string, files map[string]string) string {
	r.t.Helper()
	wt, err := r.repo.Worktree()
	if err != nil {
		r.t.Fatal(err)
	}
	ref := plumbing.NewBranchReferenceName(name)
	if err := wt.Checkout(&gogit.CheckoutOptions{Branch: ref, Create: true}); err != nil {
		r.t.Fatal(err)
	}
	h := r.commit(files)
	r.push(string(ref) + ":" + string(ref))
	if err := wt.Checkout(&gogit.CheckoutOptions{Branch: plumbing.NewBranchReferenceName("main")}); err != nil {
		r.t.Fatal(err)
	}
	return h
}

// fetches returns how many fetches the server answered for the repository.
func (r *testRepo) fetches() int64 {
	n, ok := uploadPacks.Load(path.Base(r.url))
	if !ok {
		return 0
	}
	return n.(*atomic.Int64).Load()
}
