//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/fluxcd/cli-utils/pkg/kstatus/polling"
	"github.com/fluxcd/pkg/ssa"
	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/release"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/yaml"

	applyv1 "github.com/plumb-dev/plumb/apply-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/shared/artifact"
	"github.com/plumb-dev/plumb/shared/kustomize"
	"github.com/plumb-dev/plumb/shared/testing/testenv"
)

// This file makes the state a cluster run by Flux is in, without Flux's controllers: Flux's
// CRDs, Flux objects with the status Flux writes, what kustomize-controller applies (with its
// field manager and owner labels) and a Helm release stored as Flux's helm-controller stores it.

// installFluxCRDs installs Flux's published CRDs (vendored in hack/compat/flux-crds) next to
// Plumb's, as in a cluster that runs Flux. Their groups are Flux's, so the other tests, which use
// Plumb's kinds only, see no difference.
func installFluxCRDs(g *WithT) {
	ctrllog.SetLogger(logr.Discard()) // envtest logs each CRD it reads
	root, err := testenv.WorkspaceRoot()
	g.Expect(err).NotTo(HaveOccurred())
	_, err = envtest.InstallCRDs(bed.Env.Config, envtest.CRDInstallOptions{
		Paths: []string{filepath.Join(root, "hack", "compat", "flux-crds")}, ErrorIfPathMissing: true})
	g.Expect(err).NotTo(HaveOccurred())
}

// fluxObject creates a Flux object with Flux's finalizer and the status Flux's controller
// writes once it reconciled it: Ready and the fields given.
func fluxObject(g *WithT, apiVersion, kind, ns, name string, spec, status map[string]any) *unstructured.Unstructured {
	ctx := context.Background()
	u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	u.SetAPIVersion(apiVersion)
	u.SetKind(kind)
	u.SetNamespace(ns)
	u.SetName(name)
	u.SetFinalizers([]string{"finalizers.fluxcd.io"})
	g.Expect(bed.Env.Client.Create(ctx, u, client.FieldOwner("kubectl"))).To(Succeed(), kind)
	if status == nil {
		status = map[string]any{}
	}
	status["observedGeneration"] = u.GetGeneration()
	status["conditions"] = []any{map[string]any{
		"type": "Ready", "status": "True", "reason": "Succeeded", "message": "reconciled by Flux",
		"observedGeneration": u.GetGeneration(), "lastTransitionTime": time.Now().UTC().Format(time.RFC3339),
	}}
	u.Object["status"] = status
	g.Expect(bed.Env.Client.Status().Update(ctx, u, client.FieldOwner(fluxControllerOf(kind)))).To(Succeed(), kind)
	return u
}

func fluxControllerOf(kind string) string {
	switch kind {
	case "Kustomization":
		return "kustomize-controller"
	case "HelmRelease":
		return "helm-controller"
	}
	return "source-controller"
}

// artifactStatus is a meta.Artifact as status fields.
func artifactStatus(g *WithT, a any) map[string]any {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(a)
	g.Expect(err).NotTo(HaveOccurred())
	return m
}

// packFiles makes an artifact of files, as a source-controller packs a checkout.
func packFiles(g *WithT, files map[string]string) []byte {
	var buf bytes.Buffer
	w := artifact.NewWriter(&buf)
	for _, name := range slices.Sorted(maps.Keys(files)) {
		g.Expect(w.File(name, false, int64(len(files[name])), strings.NewReader(files[name]))).To(Succeed())
	}
	g.Expect(w.Close()).To(Succeed())
	return buf.Bytes()
}

// buildAs builds path of an artifact with targetNamespace ns, as kustomize-controller (and
// apply-controller, with the same kustomize) builds it.
func buildAs(g *WithT, data []byte, path, ns string) []*unstructured.Unstructured {
	tree, err := kustomize.Load(bytes.NewReader(data), artifact.DefaultLimits)
	g.Expect(err).NotTo(HaveOccurred())
	res, err := tree.Build(kustomize.Options{Path: path, TargetNamespace: ns})
	g.Expect(err).NotTo(HaveOccurred())
	objs := make([]*unstructured.Unstructured, len(res.Objects))
	for i, o := range res.Objects {
		objs[i] = o.DeepCopy()
	}
	return objs
}

// applyAsFlux applies objects as kustomize-controller does for the Kustomization name/ns:
// fluxcd/pkg/ssa with its field manager and owner labels. It returns the inventory Flux writes.
func applyAsFlux(g *WithT, name, ns string, objs []*unstructured.Unstructured) []any {
	c := bed.Env.Client
	rm := ssa.NewResourceManager(c, polling.NewStatusPoller(c, c.RESTMapper(), polling.Options{}),
		ssa.Owner{Field: "kustomize-controller", Group: "kustomize.toolkit.fluxcd.io"})
	rm.SetOwnerLabels(objs, name, ns)
	cs, err := rm.ApplyAllStaged(context.Background(), objs, kustomize.ApplyOptions(&applyv1.Kustomization{Spec: applyv1.KustomizationSpec{Prune: true}}))
	g.Expect(err).NotTo(HaveOccurred())
	var inventory []any
	for _, e := range cs.Entries {
		m := e.ObjMetadata
		inventory = append(inventory, map[string]any{"id": m.Namespace + "_" + m.Name + "_" + m.GroupKind.Group + "_" + m.GroupKind.Kind, "v": e.GroupVersion})
	}
	sort.Slice(inventory, func(i, j int) bool {
		return inventory[i].(map[string]any)["id"].(string) < inventory[j].(map[string]any)["id"].(string)
	})
	return inventory
}

// helmConfig is the Helm SDK's configuration for releases stored in ns, as Flux's
// helm-controller stores them (Secrets in the HelmRelease's namespace).
func helmConfig(g *WithT, ns string) *action.Configuration {
	flags := genericclioptions.NewConfigFlags(false)
	kubeconfig := bed.Kubeconfig
	flags.KubeConfig, flags.Namespace = &kubeconfig, &ns
	cfg := &action.Configuration{}
	g.Expect(cfg.Init(flags, ns, "secret", func(string, ...any) {})).To(Succeed())
	return cfg
}

// helmHistory is the release's stored revisions.
func helmHistory(g Gomega, cfg *action.Configuration, name string) []*release.Release {
	h := action.NewHistory(cfg)
	h.Max = 256
	rels, err := h.Run(name)
	g.Expect(err).NotTo(HaveOccurred())
	return rels
}

// originLabels is the post-renderer Flux's helm-controller runs on every release: the
// HelmRelease's name and namespace as labels on every object.
type originLabels struct{ name, namespace string }

func (p originLabels) Run(in *bytes.Buffer) (*bytes.Buffer, error) {
	out := &bytes.Buffer{}
	dec := k8syaml.NewYAMLOrJSONDecoder(in, 4096)
	for {
		obj := &unstructured.Unstructured{}
		err := dec.Decode(&obj.Object)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if len(obj.Object) == 0 {
			continue
		}
		labels := obj.GetLabels()
		if labels == nil {
			labels = map[string]string{}
		}
		labels["helm.toolkit.fluxcd.io/name"], labels["helm.toolkit.fluxcd.io/namespace"] = p.name, p.namespace
		obj.SetLabels(labels)
		data, err := yaml.Marshal(obj.Object)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(out, "---\n%s", data)
	}
}

// installAsFlux installs a chart archive with values as Flux's helm-controller installs the
// HelmRelease name/ns: release name and storage namespace those of the HelmRelease, Flux's
// origin labels post-rendered. It returns the release.
func installAsFlux(g *WithT, cfg *action.Configuration, chartFile, name, ns string, values map[string]any) *release.Release {
	ch, err := loader.Load(chartFile)
	g.Expect(err).NotTo(HaveOccurred())
	act := action.NewInstall(cfg)
	act.ReleaseName, act.Namespace, act.Timeout = name, ns, 30*time.Second
	act.PostRenderer = originLabels{name: name, namespace: ns}
	rls, err := act.RunWithContext(context.Background(), ch, values)
	g.Expect(err).NotTo(HaveOccurred())
	return rls
}

// releaseSnapshot is a release as Flux's HelmRelease status.history records it.
func releaseSnapshot(rls *release.Release) map[string]any {
	config, _ := yaml.Marshal(rls.Config)
	return map[string]any{
		"name": rls.Name, "namespace": rls.Namespace, "version": int64(rls.Version), "status": rls.Info.Status.String(),
		"chartName": rls.Chart.Metadata.Name, "chartVersion": rls.Chart.Metadata.Version, "appVersion": rls.Chart.Metadata.AppVersion,
		"configDigest":  fmt.Sprintf("sha256:%x", sha256.Sum256(config)),
		"digest":        fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(rls.Manifest))),
		"firstDeployed": rls.Info.FirstDeployed.UTC().Format(time.RFC3339),
		"lastDeployed":  rls.Info.LastDeployed.UTC().Format(time.RFC3339),
	}
}
