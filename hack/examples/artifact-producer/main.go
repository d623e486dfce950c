// Command artifact-producer is an example of a source of Plumb artifacts written outside Plumb:
// a controller that packs the data of a ConfigMap into a tarball and publishes it in the
// status of a ConfigMapArtifact (demo.example.com/v1alpha1, crd.yaml), which an unchanged
// apply-controller or helm-controller then consumes through `sourceRef`. It follows the
// producer side of docs/contracts/artifact.md ("Write your own source"):
//
//   - the CRD opts in as a reference target with the label plumb.dev/reference-target: "true";
//   - the artifact is a gzip tar of regular files, sorted, with fixed modes and times, so the
//     same data gives the same bytes and digest (P4, P7);
//   - status.artifact has path, url, revision, digest (sha256:<hex> of the bytes served),
//     lastUpdateTime and size (P1, P2); the URL holds the digest, so its bytes never change (P8);
//   - this process serves the URL over plain HTTP without authentication (P3);
//   - Ready=True and observedGeneration=generation once status.artifact is current (P5); a
//     failure keeps the last artifact named and served (P9).
//
// It keeps artifacts in memory and reads objects as unstructured to stay short; a real producer
// keeps them on disk or in object storage and has typed, generated API types.
//
//	artifact-producer --addr 127.0.0.1:9091 [--adv-addr artifacts.example.svc:80]
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// GVK is the example's kind; its spec is `configMapRef: {name}`, a ConfigMap of its namespace.
var GVK = schema.GroupVersionKind{Group: "demo.example.com", Version: "v1alpha1", Kind: "ConfigMapArtifact"}

func newObject() *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(GVK)
	return u
}

// producer reconciles ConfigMapArtifacts and serves their artifacts from memory by path.
type producer struct {
	client.Client
	advAddr string
	mu      sync.RWMutex
	files   map[string][]byte // path -> bytes
}

func (p *producer) Reconcile(ctx context.Context, req reconcile.Request) (ctrl.Result, error) {
	obj := newObject()
	if err := p.Get(ctx, req.NamespacedName, obj); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	name, _, _ := unstructured.NestedString(obj.Object, "spec", "configMapRef", "name")
	cm := &corev1.ConfigMap{}
	if err := p.Get(ctx, types.NamespacedName{Namespace: req.Namespace, Name: name}, cm); err != nil {
		// Ready=False with the cause; status.artifact, when there is one, stays as it was (P9).
		// A ConfigMap created later is met by the watch below.
		return ctrl.Result{}, p.setStatus(ctx, obj, nil, metav1.ConditionFalse, "ConfigMapNotFound", fmt.Sprintf("ConfigMap %s/%s: %v", req.Namespace, name, err))
	}
	data, err := pack(cm.Data)
	if err != nil {
		return ctrl.Result{}, p.setStatus(ctx, obj, nil, metav1.ConditionFalse, "ArtifactFailed", err.Error())
	}
	hex := fmt.Sprintf("%x", sha256.Sum256(data))
	path := fmt.Sprintf("%s/%s/%s.tar.gz", req.Namespace, req.Name, hex)
	p.mu.Lock()
	p.files[path] = data // older paths are kept: a consumer may be fetching one (a real producer garbage-collects them)
	p.mu.Unlock()
	size := int64(len(data))
	art := &meta.Artifact{Path: path, URL: "http://" + p.advAddr + "/" + path, Revision: "sha256:" + hex, Digest: "sha256:" + hex,
		LastUpdateTime: metav1.Now(), Size: &size}
	if old, found, _ := unstructured.NestedString(obj.Object, "status", "artifact", "digest"); found && old == art.Digest {
		t, _, _ := unstructured.NestedString(obj.Object, "status", "artifact", "lastUpdateTime")
		if parsed, err := time.Parse(time.RFC3339, t); err == nil {
			art.LastUpdateTime = metav1.NewTime(parsed) // unchanged content: no status churn
		}
	}
	return ctrl.Result{}, p.setStatus(ctx, obj, art, metav1.ConditionTrue, "Succeeded",
		fmt.Sprintf("packed %d keys of ConfigMap %s as %s", len(cm.Data), name, art.Revision))
}

// setStatus writes Ready, observedGeneration and, when given, the artifact in one patch.
func (p *producer) setStatus(ctx context.Context, obj *unstructured.Unstructured, art *meta.Artifact, ready metav1.ConditionStatus, reason, msg string) error {
	var conds []metav1.Condition
	if raw, found, _ := unstructured.NestedSlice(obj.Object, "status", "conditions"); found {
		b, _ := json.Marshal(raw)
		_ = json.Unmarshal(b, &conds)
	}
	apimeta.SetStatusCondition(&conds, metav1.Condition{Type: meta.ReadyCondition, Status: ready, Reason: reason,
		Message: msg, ObservedGeneration: obj.GetGeneration()})
	status := map[string]any{"observedGeneration": obj.GetGeneration(), "conditions": conds}
	if art != nil {
		status["artifact"] = art
	}
	patch, err := json.Marshal(map[string]any{"status": status})
	if err != nil {
		return err
	}
	return p.Status().Patch(ctx, obj, client.RawPatch(types.MergePatchType, patch))
}

// pack writes the ConfigMap's keys as files of a gzip tar, sorted, with fixed modes and times.
func pack(data map[string]string) ([]byte, error) {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, k := range slices.Sorted(maps.Keys(data)) {
		// ConfigMap keys are [-._a-zA-Z0-9]+: never a folder, never "..".
		if err := tw.WriteHeader(&tar.Header{Name: k, Mode: 0o644, Size: int64(len(data[k])), Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
			return nil, err
		}
		if _, err := tw.Write([]byte(data[k])); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := gz.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// ServeHTTP serves an artifact by path, to anyone who can reach the address (P3).
func (p *producer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.RLock()
	data, ok := p.files[strings.TrimPrefix(r.URL.Path, "/")]
	p.mu.RUnlock()
	if !ok || r.Method != http.MethodGet {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/gzip")
	_, _ = w.Write(data)
}

func main() {
	addr := flag.String("addr", "127.0.0.1:9091", "Address to serve artifacts on.")
	adv := flag.String("adv-addr", "", "Host:port written in artifact URLs; default --addr.")
	flag.Parse()
	if *adv == "" {
		*adv = *addr
	}
	ctrl.SetLogger(zap.New())
	if err := run(ctrl.SetupSignalHandler(), *addr, *adv); err != nil {
		ctrl.Log.Error(err, "artifact-producer")
	}
}

func run(ctx context.Context, addr, adv string) error {
	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{Metrics: metricsserver.Options{BindAddress: "0"}})
	if err != nil {
		return err
	}
	p := &producer{Client: mgr.GetClient(), advAddr: adv, files: map[string][]byte{}}
	srv := &http.Server{Addr: addr, Handler: p, ReadHeaderTimeout: 10 * time.Second}
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		go func() { <-ctx.Done(); _ = srv.Close() }()
		if err := srv.ListenAndServe(); err != http.ErrServerClosed {
			return err
		}
		return nil
	})); err != nil {
		return err
	}
	// A change of a ConfigMap reconciles the ConfigMapArtifacts of its namespace that name it.
	byConfigMap := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, cm client.Object) []reconcile.Request {
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(GVK.GroupVersion().WithKind(GVK.Kind + "List"))
		if err := mgr.GetClient().List(ctx, list, client.InNamespace(cm.GetNamespace())); err != nil {
			return nil
		}
		var out []reconcile.Request
		for _, o := range list.Items {
			if name, _, _ := unstructured.NestedString(o.Object, "spec", "configMapRef", "name"); name == cm.GetName() {
				out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&o)})
			}
		}
		return out
	})
	if err := ctrl.NewControllerManagedBy(mgr).Named("configmapartifact").For(newObject()).
		Watches(&corev1.ConfigMap{}, byConfigMap).Complete(p); err != nil {
		return err
	}
	return mgr.Start(ctx)
}
