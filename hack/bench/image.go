package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/plumb-dev/plumb/hack/internal/local"
	imagev1 "github.com/plumb-dev/plumb/image-automation/api/v1beta1"
	"github.com/plumb-dev/plumb/shared/reconcile"
	"github.com/plumb-dev/plumb/shared/testing/ocitest"
)

// benchImage: one repository of tags image tags on a loopback registry is scanned, a semver
// policy chooses from it, and an automation updates a Git repository of files YAML files of which
// markers carry a marker; then a new tag goes through scan → policy → commit. The registry is the
// CNCF distribution registry (Debian's docker-registry) with htpasswd, which pages tag lists as
// registries in the field do (go-containerregistry's in-process registry does not).
func benchImage(ctx context.Context, tagCount, files, markers int) ([]Metric, error) {
	const user, password = "bench", "bench-pa55word"
	dir, err := os.MkdirTemp("", "plumb-bench-registry-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	reg, err := ocitest.StartDistribution(dir, user, password)
	if err != nil {
		return nil, err
	}
	defer reg.Stop()
	image := reg.Host + "/acme/app"
	auth := remote.WithAuth(authn.FromConfig(authn.AuthConfig{Username: user, Password: password}))
	img, err := random.Image(256, 1)
	if err != nil {
		return nil, err
	}
	pushed := false
	push := func(tag string) error {
		ref, err := name.NewTag(image+":"+tag, name.Insecure)
		if err != nil {
			return err
		}
		if pushed { // the blobs are there: one manifest PUT per tag
			return remote.Tag(ref, img, auth)
		}
		pushed = true
		return remote.Write(ref, img, auth)
	}
	// Release tags, pre-releases and build tags, as a busy CI pushes them.
	for i := range tagCount {
		var tag string
		switch i % 4 {
		case 0:
			tag = fmt.Sprintf("1.%d.%d", i/100, i%100)
		case 1:
			tag = fmt.Sprintf("1.%d.%d-rc.1", i/100, i%100)
		case 2:
			tag = fmt.Sprintf("main-%07x-%d", i*7919, 1700000000+i)
		default:
			tag = fmt.Sprintf("v1.%d.%d", i/100, i%100)
		}
		if err := push(tag); err != nil {
			return nil, err
		}
	}

	git, err := local.StartGitServer("")
	if err != nil {
		return nil, err
	}
	defer git.Stop()
	content := map[string]string{}
	for i := range files {
		doc := fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-%04d\ndata:\n  key: value-%d\n", i, i)
		if i < markers {
			doc = fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-%04d
spec:
  template:
    spec:
      containers:
        - name: app
          image: %s:1.0.0 # {"$imagepolicy": "bench:app"}
`, i, image)
		}
		content[fmt.Sprintf("apps/dir-%02d/file-%04d.yaml", i%20, i)] = doc
	}
	if _, _, err := git.NewRepo("config", content); err != nil {
		return nil, err
	}

	bed, err := local.StartBed("plumb-bench-image-", false)
	if err != nil {
		return nil, err
	}
	defer bed.Stop()
	c := bed.Env.Client
	p, err := bed.StartController("image-automation", "--storage-path", bed.Dir+"/image-data")
	if err != nil {
		return nil, err
	}
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "bench"}}); err != nil {
		return nil, err
	}
	config := fmt.Sprintf(`{"auths":{%q:{"username":%q,"password":%q}}}`, reg.Host, user, password)
	if err := c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "registry", Namespace: "bench"}, Type: corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(config)}}); err != nil {
		return nil, err
	}
	repoObj := &imagev1.ImageRepository{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "bench"},
		Spec: imagev1.ImageRepositorySpec{Image: image, Interval: metav1.Duration{Duration: time.Hour}, Insecure: true,
			SecretRef: &meta.LocalObjectReference{Name: "registry"}}}
	begin := time.Now()
	if err := c.Create(ctx, repoObj); err != nil {
		return nil, err
	}
	if err := waitFor(ctx, c, repoObj, time.Minute, func() bool {
		return ready(repoObj.Status.Conditions) && repoObj.Status.LastScanResult != nil
	}); err != nil {
		return nil, err
	}
	scan := time.Since(begin)
	scanned := repoObj.Status.LastScanResult.TagCount
	// A scan on its own: requested, listed, stored.
	begin = time.Now()
	requested := begin.Format(time.RFC3339Nano)
	if err := c.Patch(ctx, repoObj, reconcile.RequestPatch(requested)); err != nil {
		return nil, err
	}
	if err := waitFor(ctx, c, repoObj, time.Minute, func() bool {
		return repoObj.Status.LastHandledReconcileAt == requested
	}); err != nil {
		return nil, err
	}
	rescan := time.Since(begin)

	pol := &imagev1.ImagePolicy{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "bench"},
		Spec: imagev1.ImagePolicySpec{ImageRepositoryRef: meta.NamespacedObjectReference{Name: "app"},
			Policy: imagev1.ImagePolicyChoice{SemVer: &imagev1.SemVerPolicy{Range: ">=1.0.0"}}}}
	begin = time.Now()
	if err := c.Create(ctx, pol); err != nil {
		return nil, err
	}
	if err := waitFor(ctx, c, pol, time.Minute, func() bool { return pol.Status.LatestRef != nil }); err != nil {
		return nil, err
	}
	policyReady := time.Since(begin)
	first := pol.Status.LatestRef.Tag

	src := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "source.plumb.dev/v1beta1", "kind": "GitRepository",
		"metadata": map[string]any{"name": "config", "namespace": "bench"},
		"spec":     map[string]any{"url": git.URL("config"), "interval": "1h", "ref": map[string]any{"branch": "main"}},
	}}
	if err := c.Create(ctx, src); err != nil {
		return nil, err
	}
	auto := &imagev1.ImageUpdateAutomation{ObjectMeta: metav1.ObjectMeta{Name: "apps", Namespace: "bench"},
		Spec: imagev1.ImageUpdateAutomationSpec{
			SourceRef: imagev1.SourceReference{Kind: "GitRepository", Name: "config"},
			Git:       imagev1.GitSpec{Commit: imagev1.CommitSpec{Author: imagev1.CommitUser{Name: "bench", Email: "bench@plumb.invalid"}}},
			Interval:  metav1.Duration{Duration: time.Hour},
		}}
	begin = time.Now()
	if err := c.Create(ctx, auto); err != nil {
		return nil, err
	}
	if err := waitFor(ctx, c, auto, 2*time.Minute, func() bool { return auto.Status.LastPushCommit != "" }); err != nil {
		return nil, err
	}
	firstRun := time.Since(begin)
	firstCommit := auto.Status.LastPushCommit

	// A new release: the scan sees it, the policy moves, the automation commits it.
	if err := push("2.0.0"); err != nil {
		return nil, err
	}
	begin = time.Now()
	if err := c.Patch(ctx, &imagev1.ImageRepository{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "bench"}},
		reconcile.RequestPatch(begin.Format(time.RFC3339Nano))); err != nil {
		return nil, err
	}
	var moved time.Duration
	if err := waitFor(ctx, c, pol, time.Minute, func() bool {
		if pol.Status.LatestRef != nil && pol.Status.LatestRef.Tag == "2.0.0" && moved == 0 {
			moved = time.Since(begin)
		}
		return moved != 0
	}); err != nil {
		return nil, err
	}
	if err := waitFor(ctx, c, auto, 2*time.Minute, func() bool { return auto.Status.LastPushCommit != firstCommit }); err != nil {
		return nil, err
	}
	loop := time.Since(begin)
	rss, _ := p.PeakRSS()
	cpu, _ := p.CPU()

	var f figures
	f.add("tags_scanned", "tags scanned and stored", float64(scanned), 0, "count", Higher)
	f.add("scan_cold", "ImageRepository created → tags scanned and stored (controller start included)", scan.Seconds(), 3, "s", Lower)
	f.add("scan_requested", "requested scan → tags listed and stored", rescan.Seconds(), 3, "s", Lower)
	f.add("policy_ready", fmt.Sprintf("ImagePolicy created → latest chosen (%s)", first), policyReady.Seconds(), 3, "s", Lower)
	f.add("automation_first_run", fmt.Sprintf("first automation run (clone, %d values rewritten, commit, push)", markers), firstRun.Seconds(), 3, "s", Lower)
	f.add("new_tag_policy_moved", "new tag: scan requested → policy moved", moved.Seconds(), 3, "s", Lower)
	f.add("new_tag_pushed", "new tag: scan requested → commit pushed (run on the kept clone)", loop.Seconds(), 3, "s", Lower)
	f.add("cpu", "image-automation CPU, whole scenario", cpu.Seconds(), 2, "CPU s", Lower)
	f.add("peak_rss", "image-automation peak RSS", rss, 1, "MiB", Lower)
	writeTable(os.Stdout, fmt.Sprintf("image: %d tags, %d YAML files with %d markers (%d CPUs, %s)", tagCount, files, markers, runtime.NumCPU(), runtime.GOARCH), f)
	return f, nil
}

// waitFor polls obj until done says so, or the limit passes.
func waitFor(ctx context.Context, c client.Client, obj client.Object, limit time.Duration, done func() bool) error {
	deadline := time.Now().Add(limit)
	for {
		if err := c.Get(ctx, client.ObjectKeyFromObject(obj), obj); err == nil && done() {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%T %s not done after %s: %+v", obj, obj.GetName(), limit, obj)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
