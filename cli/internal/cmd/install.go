package cmd

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/plumb-dev/plumb/cli/internal/install"
)

// defaultComponents are installed unless --components says otherwise; image-automation is
// chosen on purpose, as it writes to Git.
var defaultComponents = []string{"source-controller", "apply-controller", "helm-controller", "notification-controller"}

func newInstall(o *Options) *cobra.Command {
	var components []string
	var export, wait bool
	var images install.Images
	c := &cobra.Command{
		Use:   "install",
		Short: "Install Plumb's controllers, or print their manifests",
		Long: `install renders the chosen components' Kustomize bases (CRDs, RBAC, Deployments) into the
namespace (-n, default plumb-system), applies them with server-side apply, and waits until the
controllers are available. A subset that cannot work, such as apply-controller without
source-controller, is refused. Running it again updates what changed and nothing else.`,
		Example: `  plumb install
  plumb install --components source-controller,apply-controller,notification-controller
  plumb install --components source-controller,apply-controller --export > plumb.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := install.Check(components); err != nil {
				return usageError{err}
			}
			objs, err := install.Render(components, o.installNamespace(), images)
			if err != nil {
				return err
			}
			if export {
				y, err := install.YAML(objs)
				if err != nil {
					return err
				}
				_, err = o.Out.Write(y)
				return err
			}
			_, cfg, err := o.Client()
			if err != nil {
				return err
			}
			rm, kc, err := install.Manager(cfg)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), o.Timeout)
			defer cancel()
			fmt.Fprintf(o.ErrOut, "► applying %s to namespace %s\n", strings.Join(components, ", "), o.installNamespace())
			cs, err := install.Apply(ctx, rm, kc, objs, o.Timeout)
			if cs != nil {
				for _, e := range cs.Entries {
					fmt.Fprintf(o.Out, "%s %s\n", e.Subject, e.Action)
				}
			}
			if err != nil {
				return describe(err)
			}
			if wait {
				fmt.Fprintf(o.ErrOut, "◎ waiting for the controllers to be available (at most %s)\n", o.Timeout)
				if err := install.Wait(ctx, rm, kc, cs, o.Timeout); err != nil {
					return err
				}
			}
			fmt.Fprintf(o.Out, "✔ installed %s\n", strings.Join(components, ", "))
			return nil
		},
	}
	c.Flags().StringSliceVar(&components, "components", defaultComponents, "components to install: "+strings.Join(install.Components, ","))
	c.Flags().BoolVar(&export, "export", false, "print the manifests instead of applying them")
	c.Flags().BoolVar(&wait, "wait", true, "wait until the controllers are available")
	imageFlags(c, &images)
	return c
}

// imageFlags binds --registry and --version: where the controllers' images come from.
func imageFlags(c *cobra.Command, images *install.Images) {
	c.Flags().StringVar(&images.Registry, "registry", install.DefaultRegistry, "registry and prefix of the controllers' images (<registry>/<component>)")
	c.Flags().StringVar(&images.Version, "version", "latest", "tag of the controllers' images")
}

func newUninstall(o *Options) *cobra.Command {
	var components []string
	var keepCRDs, yes bool
	c := &cobra.Command{
		Use:   "uninstall",
		Short: "Remove Plumb's controllers, leaving what they applied in place",
		Long: `uninstall removes the components from the namespace (-n, default plumb-system): the
controllers first, then, unless --keep-crds, the finalizers of every object of their kinds and the
CRDs with those objects, then RBAC, Services and the namespace. Workloads the controllers applied
stay as they are. It needs --yes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, comp := range components {
				if !contains(install.Components, comp) {
					return usagef("unknown component %q; choose among %s", comp, strings.Join(install.Components, ","))
				}
			}
			if !yes {
				return usagef("uninstall deletes the controllers%s; run it again with --yes", map[bool]string{false: " and every Plumb object of their kinds (CRDs included; workloads stay)", true: ""}[keepCRDs])
			}
			_, cfg, err := o.Client()
			if err != nil {
				return err
			}
			rm, c, err := install.Manager(cfg)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), o.Timeout)
			defer cancel()
			done, err := install.Uninstall(ctx, rm, c, components, o.installNamespace(), keepCRDs)
			for _, d := range done {
				fmt.Fprintf(o.Out, "%s deleted\n", d)
			}
			if err != nil {
				return describe(err)
			}
			fmt.Fprintf(o.Out, "✔ uninstalled %s\n", strings.Join(components, ", "))
			return nil
		},
	}
	c.Flags().StringSliceVar(&components, "components", install.Components, "components to remove")
	c.Flags().BoolVar(&keepCRDs, "keep-crds", false, "keep the CRDs and the objects of their kinds")
	c.Flags().BoolVar(&yes, "yes", false, "confirm")
	return c
}
