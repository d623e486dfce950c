package cmd

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/plumb-dev/plumb/cli/internal/install"
	"github.com/plumb-dev/plumb/cli/internal/migrate"
)

func newMigrate(o *Options) *cobra.Command {
	c := &cobra.Command{
		Use:   "migrate",
		Short: "Move a repository from Flux or Argo CD to Plumb",
	}
	c.AddCommand(newMigrateRepo(o), newMigrateCluster(o))
	return c
}

func newMigrateRepo(o *Options) *cobra.Command {
	var from string
	var write bool
	var repoURLs []string
	c := &cobra.Command{
		Use:   "repo DIR",
		Short: "Rewrite a repository's Flux or Argo CD manifests into Plumb's, and report what cannot be migrated",
		Long: `migrate repo reads every *.yaml and *.yml file under DIR.

With --from flux (the default) it moves each Flux object to Plumb's API group
(source.plumb.dev/v1beta1, apply.plumb.dev/v1beta1, ...), with the apiVersion fields of its
references. Only those values change: comments and formatting stay as they are. It prints every
field Plumb's kind does not have, with file:line, and every kind Plumb does not have.

With --from argocd it turns each Argo CD Application, and each Application an ApplicationSet's
list and git generators make, into a GitRepository, HelmRepository, Kustomization or HelmRelease
in the namespace of -n (plumb-system by default). The objects of FILE.yaml are written to
FILE.plumb.yaml next to it; the Argo CD files stay until the cluster is taken over. Sources in
the repository itself (its .git/config remotes, or --repo-url) are read to tell a Helm chart
from a kustomization and to expand git generators. It prints every field that has no Plumb
counterpart, with file:line and what to do.

Without --write it writes nothing; with --write it writes and prints the same report. Either way
it exits 1 when something cannot be migrated, 0 otherwise. It touches no cluster.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if from != "flux" && from != "argocd" {
				return usagef("--from %s: flux or argocd", from)
			}
			if len(repoURLs) > 0 && from != "argocd" {
				return usagef("--repo-url is for --from argocd")
			}
			if info, err := os.Stat(args[0]); err != nil {
				return usagef("%v", err)
			} else if !info.IsDir() {
				return usagef("%s is not a directory", args[0])
			}
			if from == "argocd" {
				opts := migrate.ArgoOptions{Namespace: install.DefaultNamespace, RepoURLs: repoURLs, Write: write}
				if ns := o.Config.Namespace; ns != nil && *ns != "" {
					opts.Namespace = *ns
				}
				r, err := migrate.ArgoCD(args[0], opts)
				if err != nil {
					return err
				}
				return report(o, r, write)
			}
			schemas, err := migrate.PlumbSchemas()
			if err != nil {
				return fmt.Errorf("reading Plumb's CRDs: %w", err)
			}
			r, err := migrate.Repo(args[0], schemas, write)
			if err != nil {
				return err
			}
			return report(o, r, write)
		},
	}
	c.Flags().StringVar(&from, "from", "flux", "the tool the repository is written for: flux or argocd")
	c.Flags().BoolVar(&write, "write", false, "write the changes (without it, only report)")
	c.Flags().StringSliceVar(&repoURLs, "repo-url", nil, "with --from argocd: a URL Argo CD knows DIR's repository by (besides its .git/config remotes)")
	return c
}

// report prints a migration's report; it exits 1 when something cannot be migrated.
func report(o *Options, r *migrate.Report, written bool) error {
	r.Print(o.Out, written)
	if len(r.Findings) > 0 {
		return exitError{code: ExitFailure}
	}
	return nil
}
