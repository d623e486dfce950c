package cmd

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/discovery"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/plumb-dev/plumb/cli/internal/install"
	"github.com/plumb-dev/plumb/cli/internal/kinds"
)

func newCheck(o *Options) *cobra.Command {
	return &cobra.Command{
		Use:   "check",
		Short: "Check the cluster: API server, Plumb's CRDs and controllers",
		Long: `check reports the API server's version, and for each component whether its CRDs are
established and its Deployment (in -n, default plumb-system) is available. It exits 1 when an
installed component is not healthy or nothing is installed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, cfg, err := o.Client()
			if err != nil {
				return err
			}
			dc, err := discovery.NewDiscoveryClientForConfig(cfg)
			if err != nil {
				return err
			}
			v, err := dc.ServerVersion()
			if err != nil {
				return fmt.Errorf("no cluster at %s: %w", cfg.Host, err)
			}
			fmt.Fprintf(o.Out, "✔ Kubernetes %s at %s\n", v.GitVersion, cfg.Host)
			ns := o.installNamespace()
			installed, bad := 0, 0
			for _, comp := range install.Components {
				crds, missing, err := crdState(cmd, c, comp)
				if err != nil {
					return err
				}
				if crds == 0 {
					fmt.Fprintf(o.Out, "· %s: not installed\n", comp)
					continue
				}
				installed++
				var problems []string
				if len(missing) > 0 {
					problems = append(problems, "CRDs not established: "+strings.Join(missing, ", "))
				}
				d := &appsv1.Deployment{}
				switch err := c.Get(cmd.Context(), client.ObjectKey{Namespace: ns, Name: comp}, d); {
				case apierrors.IsNotFound(err):
					problems = append(problems, fmt.Sprintf("no Deployment %s/%s", ns, comp))
				case err != nil:
					return err
				case !available(d):
					problems = append(problems, fmt.Sprintf("Deployment %s/%s is not available (%d of %d replicas)", ns, comp, d.Status.AvailableReplicas, replicas(d)))
				}
				if len(problems) > 0 {
					bad++
					fmt.Fprintf(o.Out, "✗ %s: %s\n", comp, strings.Join(problems, "; "))
					continue
				}
				fmt.Fprintf(o.Out, "✔ %s: %d CRDs, Deployment available\n", comp, crds)
			}
			switch {
			case installed == 0:
				return fmt.Errorf("no Plumb component is installed: plumb install")
			case bad > 0:
				return fmt.Errorf("%d of %d installed components are not healthy", bad, installed)
			}
			return nil
		},
	}
}

// crdState counts the component's CRDs present and lists those not established.
func crdState(cmd *cobra.Command, c client.Client, comp string) (int, []string, error) {
	count := 0
	var missing []string
	for _, k := range kinds.All {
		if k.Component != comp {
			continue
		}
		crd := &apiextensionsv1.CustomResourceDefinition{}
		name := k.Names[0] + "." + k.GVK.Group
		if err := c.Get(cmd.Context(), client.ObjectKey{Name: name}, crd); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return 0, nil, err
		}
		count++
		established := false
		for _, cond := range crd.Status.Conditions {
			if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
				established = true
			}
		}
		if !established {
			missing = append(missing, name)
		}
	}
	return count, missing, nil
}

func available(d *appsv1.Deployment) bool {
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentAvailable && c.Status == "True" {
			return d.Status.ObservedGeneration >= d.Generation
		}
	}
	return false
}

func replicas(d *appsv1.Deployment) int32 {
	if d.Spec.Replicas == nil {
		return 1
	}
	return *d.Spec.Replicas
}

// installNamespace is -n when given, else plumb-system: where the controllers run.
func (o *Options) installNamespace() string {
	if o.Config.Namespace != nil && *o.Config.Namespace != "" {
		return *o.Config.Namespace
	}
	return "plumb-system"
}
