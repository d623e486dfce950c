package cmd

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/plumb-dev/plumb/cli/internal/migrate"
)

func newMigrate(o *Options) *cobra.Command {
	c := &cobra.Command{
		Use:   "migrate",
		Short: "Move a repository from Flux to Plumb",
	}
	c.AddCommand(newMigrateRepo(o), newMigrateCluster(o))
	return c
}

func newMigrateRepo(o *Options) *cobra.Command {
	var from string
	var write bool
	c := &cobra.Command{
		Use:   "repo DIR",
		Short: "Rewrite a repository's Flux manifests into Plumb's, and report what cannot be migrated",
		Long: `migrate repo reads every *.yaml and *.yml file under DIR and moves each Flux object to
Plumb's API group (source.plumb.dev/v1beta1, apply.plumb.dev/v1beta1, ...), with the apiVersion
fields of its references. Only those values change: comments and formatting stay as they are.

It prints every field Plumb's kind does not have, with file:line, and every kind Plumb does not
have, with what to do. Without --write it changes nothing; with --write it rewrites the files in
place and prints the same report. Either way it exits 1 when something cannot be migrated, 0
otherwise. It touches no cluster.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if from != "flux" {
				return usagef("--from %s: only flux is supported (Argo CD is not built yet)", from)
			}
			if info, err := os.Stat(args[0]); err != nil {
				return usagef("%v", err)
			} else if !info.IsDir() {
				return usagef("%s is not a directory", args[0])
			}
			schemas, err := migrate.PlumbSchemas()
			if err != nil {
				return fmt.Errorf("reading Plumb's CRDs: %w", err)
			}
			r, err := migrate.Repo(args[0], schemas, write)
			if err != nil {
				return err
			}
			r.Print(o.Out, write)
			if len(r.Findings) > 0 {
				return exitError{code: ExitFailure}
			}
			return nil
		},
	}
	c.Flags().StringVar(&from, "from", "flux", "the tool the repository is written for (flux)")
	c.Flags().BoolVar(&write, "write", false, "rewrite the files in place (without it, only report)")
	return c
}
