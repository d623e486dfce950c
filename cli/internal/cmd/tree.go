package cmd

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	ssautils "github.com/fluxcd/pkg/ssa/utils"
	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/plumb-dev/plumb/cli/internal/kinds"
)

func newTree(o *Options) *cobra.Command {
	c := &cobra.Command{
		Use:   "tree",
		Short: "Show what a Kustomization applied, as a tree",
	}
	c.AddCommand(&cobra.Command{
		Use:     "kustomization <NAME>",
		Aliases: []string{"ks"},
		Short:   "The inventory of a Kustomization, nested Kustomizations and HelmReleases expanded",
		Long: `tree shows what a Kustomization applied (its status.inventory), expanding the Kustomizations
it applied into theirs and the HelmReleases into the objects of their current Helm release (read
from the release's storage Secret, which needs read access to Secrets there).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, err := o.Client()
			if err != nil {
				return err
			}
			k, _ := kinds.ByKind("Kustomization")
			root, err := get(cmd.Context(), c, k, o.Namespace(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(o.Out, "Kustomization/%s/%s%s\n", root.GetNamespace(), root.GetName(), note(root))
			return printInventory(cmd.Context(), c, o.Out, root, "", map[string]bool{root.GetNamespace() + "/" + root.GetName(): true})
		},
	})
	return c
}

// note is what a tree line says about a Plumb object: its revision and, unless Ready, its state.
func note(o *unstructured.Unstructured) string {
	var parts []string
	if rev := kinds.Revision(o); rev != "" {
		parts = append(parts, rev)
	}
	if ready, msg := kinds.State(o); ready != "True" {
		parts = append(parts, "Ready="+ready+" "+kinds.Reason(o)+": "+oneLineString(msg))
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, "; ") + ")"
}

// printInventory prints the entries of a Kustomization's inventory under prefix, recursing into
// the Kustomizations it applied; seen stops a loop.
func printInventory(ctx context.Context, c client.Client, w io.Writer, ks *unstructured.Unstructured, prefix string, seen map[string]bool) error {
	entries, _, _ := unstructured.NestedSlice(ks.Object, "status", "inventory", "entries")
	for i, e := range entries {
		id, _ := e.(map[string]any)["id"].(string)
		last := i == len(entries)-1
		branch, indent := "├── ", "│   "
		if last {
			branch, indent = "└── ", "    "
		}
		parts := strings.Split(id, "_")
		if len(parts) != 4 {
			fmt.Fprintf(w, "%s%s%s\n", prefix, branch, id)
			continue
		}
		ns, name, group, kind := parts[0], parts[1], parts[2], parts[3]
		line := subjectOf(id)
		k, plumbKind := kinds.ByKind(kind)
		if !plumbKind || k.GVK.Group != group {
			fmt.Fprintf(w, "%s%s%s\n", prefix, branch, line)
			continue
		}
		child, err := get(ctx, c, k, ns, name)
		switch {
		case apierrors.IsNotFound(err):
			fmt.Fprintf(w, "%s%s%s (not found)\n", prefix, branch, line)
			continue
		case err != nil:
			return err
		}
		fmt.Fprintf(w, "%s%s%s%s\n", prefix, branch, line, note(child))
		switch {
		case kind == "Kustomization" && !seen[ns+"/"+name]:
			seen[ns+"/"+name] = true
			if err := printInventory(ctx, c, w, child, prefix+indent, seen); err != nil {
				return err
			}
		case kind == "HelmRelease":
			objs, err := releaseObjects(ctx, c, child)
			if err != nil {
				fmt.Fprintf(w, "%s%s└── (release objects unreadable: %v)\n", prefix, indent, err)
				continue
			}
			for j, o := range objs {
				b := "├── "
				if j == len(objs)-1 {
					b = "└── "
				}
				fmt.Fprintf(w, "%s%s%s%s\n", prefix, indent, b, o)
			}
		}
	}
	return nil
}

// clusterScoped are kinds a chart commonly holds that have no namespace.
var clusterScoped = map[string]bool{"Namespace": true, "ClusterRole": true, "ClusterRoleBinding": true,
	"CustomResourceDefinition": true, "PriorityClass": true, "StorageClass": true, "PersistentVolume": true,
	"ValidatingWebhookConfiguration": true, "MutatingWebhookConfiguration": true, "IngressClass": true}

// releaseObjects lists the objects of a HelmRelease's current release (status.history[0]) as
// Kind/namespace/name, from the release's Helm storage Secret: base64 of gzipped JSON whose
// manifest field holds the rendered YAML.
func releaseObjects(ctx context.Context, c client.Client, hr *unstructured.Unstructured) ([]string, error) {
	history, _, _ := unstructured.NestedSlice(hr.Object, "status", "history")
	if len(history) == 0 {
		return nil, nil
	}
	latest, _ := history[0].(map[string]any)
	release, _ := latest["name"].(string)
	releaseNS, _ := latest["namespace"].(string)
	version, _ := latest["version"].(int64)
	storage, _, _ := unstructured.NestedString(hr.Object, "spec", "storageNamespace")
	if storage == "" {
		storage = releaseNS
	}
	s := &corev1.Secret{}
	key := client.ObjectKey{Namespace: storage, Name: fmt.Sprintf("sh.helm.release.v1.%s.v%d", release, version)}
	if err := c.Get(ctx, key, s); err != nil {
		return nil, err
	}
	raw, err := base64.StdEncoding.DecodeString(string(s.Data["release"]))
	if err != nil {
		return nil, fmt.Errorf("storage Secret %s: %w", key, err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("storage Secret %s: %w", key, err)
	}
	var rel struct {
		Manifest string `json:"manifest"`
	}
	if err := json.NewDecoder(io.LimitReader(zr, 64<<20)).Decode(&rel); err != nil {
		return nil, fmt.Errorf("storage Secret %s: %w", key, err)
	}
	objs, err := ssautils.ReadObjects(strings.NewReader(rel.Manifest))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, o := range objs {
		ns := o.GetNamespace()
		if ns == "" && !clusterScoped[o.GetKind()] {
			ns = releaseNS
		}
		if ns == "" {
			out = append(out, o.GetKind()+"/"+o.GetName())
		} else {
			out = append(out, o.GetKind()+"/"+ns+"/"+o.GetName())
		}
	}
	return out, nil
}
