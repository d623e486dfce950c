package cmd

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/fluxcd/pkg/ssa"

	"github.com/spf13/cobra"

	"github.com/plumb-dev/plumb/cli/internal/ops"
	"github.com/plumb-dev/plumb/cli/internal/takeover"
)

func newMigrateCluster(o *Options) *cobra.Command {
	var (
		from                        string
		dryRun, finish, rollback    bool
		dropUnsupported, deleteCRDs bool
		artifactsFrom, fluxNS       string
		argoNS                      string
		sourceDirs                  []string
	)
	c := &cobra.Command{
		Use:   "cluster --from flux|argocd [--dry-run | --finish | --rollback]",
		Short: "Take a live cluster over from Flux without touching its workloads",
		Long: `migrate cluster takes the cluster over from Flux. For every Flux object whose kind Plumb has
installed (sources, Kustomizations, HelmReleases, image and notification objects) it suspends
the Flux object, creates its Plumb twin from the live spec (same name and namespace, labelled
plumb.dev/migrated-from=flux) and hands what each Flux Kustomization applied to apply-controller:
the field managers of kustomize-controller become apply-controller's and Flux's owner labels
become Plumb's, in one patch per object, so that Plumb's first apply changes nothing. Helm
releases stay where they are: helm-controller adopts a release Flux made without a new revision.
Running it again is safe. An object whose twin cannot be made (a field Plumb lacks, unless
--drop-unsupported) is reported and left to Flux; the command then exits 1.

--dry-run changes nothing: per Flux Kustomization it builds the source's artifact as
apply-controller will and prints, per object, "unchanged" or the server-side diff Plumb's first
apply would cause; per HelmRelease, whether helm-controller will adopt the release. It exits 1
when anything would change.

--rollback (before --finish) deletes every twin without letting its controller prune or
uninstall anything, hands the objects back to Flux and resumes the Flux objects that ran before.

With --from argocd, --dry-run gets each Application's files (a clone of its repository at its
revision, or --source-dir URL=DIR) and diffs each object as the twin's first apply, or its Helm
install, would change it (see docs/guides/migrate-from-argocd.md).

--finish, once every twin is Ready, deletes Flux's controllers and Flux's objects (their
finalizers removed first, so nothing they applied is deleted). Flux's CRDs stay unless
--delete-crds.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if from != "flux" && from != "argocd" {
				return usagef("--from %s: flux or argocd", from)
			}
			n := 0
			for _, b := range []bool{dryRun, finish, rollback} {
				if b {
					n++
				}
			}
			if n > 1 {
				return usagef("--dry-run, --finish and --rollback go one at a time")
			}
			if len(sourceDirs) > 0 && (!dryRun || from != "argocd") {
				return usagef("--source-dir goes with --from argocd --dry-run")
			}
			if deleteCRDs && !finish {
				return usagef("--delete-crds goes with --finish")
			}
			c, cfg, err := o.Client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			var r *takeover.Report
			if from == "argocd" {
				ns := "plumb-system"
				if o.Config.Namespace != nil && *o.Config.Namespace != "" {
					ns = *o.Config.Namespace
				}
				switch {
				case dryRun:
					dirs, err := parseSourceDirs(sourceDirs)
					if err != nil {
						return err
					}
					res, err := takeover.DryRunArgoCD(ctx, c, cfg, takeover.ArgoDryRunOptions{Namespace: ns, SourceDirs: dirs})
					if err != nil {
						return err
					}
					return o.printDryRun(res)
				case rollback:
					r, err = takeover.RollbackArgoCD(ctx, c)
				case finish:
					r, err = takeover.FinishArgoCD(ctx, c, takeover.ArgoFinishOptions{ArgoNamespace: argoNS, DeleteCRDs: deleteCRDs})
				default:
					r, err = takeover.RunArgoCD(ctx, c, takeover.ArgoOptions{Namespace: ns, DropUnsupported: dropUnsupported})
				}
				return o.endTakeover(r, err)
			}
			switch {
			case dryRun:
				res, err := takeover.DryRun(ctx, c, cfg, takeover.DryRunOptions{ArtifactsFrom: artifactsFrom})
				if err != nil {
					return err
				}
				return o.printDryRun(res)
			case rollback:
				r, err = takeover.Rollback(ctx, c)
			case finish:
				r, err = takeover.Finish(ctx, c, takeover.FinishOptions{FluxNamespace: fluxNS, DeleteCRDs: deleteCRDs})
			default:
				r, err = takeover.Run(ctx, c, takeover.Options{DropUnsupported: dropUnsupported})
			}
			return o.endTakeover(r, err)
		},
	}
	f := c.Flags()
	f.StringVar(&from, "from", "flux", "the tool to take over: flux or argocd (see docs/guides/migrate-from-argocd.md)")
	f.BoolVar(&dryRun, "dry-run", false, "change nothing: show what Plumb's first apply would change after the takeover")
	f.BoolVar(&rollback, "rollback", false, "undo the takeover: delete the twins (pruning nothing) and resume Flux")
	f.BoolVar(&finish, "finish", false, "once every twin is Ready, remove Flux's controllers and objects (not what they applied)")
	f.BoolVar(&dropUnsupported, "drop-unsupported", false, "create twins without the Flux fields Plumb lacks, rather than leave those objects to Flux")
	f.BoolVar(&deleteCRDs, "delete-crds", false, "with --finish, also delete Flux's CRDs")
	f.StringVar(&artifactsFrom, "artifacts-from", "", "with --dry-run, download Flux's artifacts from this URL instead of the host in their status (e.g. http://localhost:8080 with kubectl -n flux-system port-forward svc/source-controller 8080:80)")
	f.StringVar(&fluxNS, "flux-namespace", "flux-system", "with --finish, the namespace of Flux's controllers")
	f.StringArrayVar(&sourceDirs, "source-dir", nil, "with --from argocd --dry-run, URL=DIR: read the Git repository URL from the local checkout DIR instead of cloning it (repeatable)")
	f.StringVar(&argoNS, "argocd-namespace", "argocd", "with --from argocd --finish, the namespace of Argo CD's controllers")
	return c
}

// parseSourceDirs reads --source-dir URL=DIR flags.
func parseSourceDirs(flags []string) (map[string]string, error) {
	out := map[string]string{}
	for _, f := range flags {
		u, dir, ok := strings.Cut(f, "=")
		if !ok || u == "" || dir == "" {
			return nil, usagef("--source-dir %s: URL=DIR, e.g. https://github.com/org/repo.git=../repo", f)
		}
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			return nil, usagef("--source-dir %s: %s is not a folder", f, dir)
		}
		out[u] = dir
	}
	return out, nil
}

// endTakeover prints a report and ends with exit 1 when an object failed.
func (o *Options) endTakeover(r *takeover.Report, err error) error {
	if r != nil {
		r.Print(o.Out)
	}
	if err != nil {
		return err
	}
	if r.Failed() {
		return exitError{code: ExitFailure, err: errors.New("some objects were not migrated: see above")}
	}
	return nil
}

// printDryRun prints what the takeover would lead to, and ends with exit 1 when anything would
// change.
func (o *Options) printDryRun(res *takeover.DryRunResult) error {
	changed := false
	for _, d := range res.Kustomizations {
		changed = changed || d.Changed()
		fmt.Fprintf(o.Out, "► %s\n", d.Object)
		for _, w := range d.Warnings {
			fmt.Fprintf(o.Out, "  warning: %s\n", w)
		}
		if d.Err != nil {
			fmt.Fprintf(o.Out, "  ✗ cannot tell: %v\n", d.Err)
			continue
		}
		for _, x := range d.Objects {
			switch x.Action {
			case ssa.UnchangedAction, ssa.SkippedAction:
				fmt.Fprintf(o.Out, "  %s unchanged\n", x.Subject)
			case ssa.CreatedAction:
				fmt.Fprintf(o.Out, "  %s created\n", x.Subject)
			default:
				fmt.Fprintf(o.Out, "  %s changed\n", x.Subject)
				diff, err := ops.UnifiedDiff(x.Live, x.Merged, d.Secrets)
				if err != nil {
					return err
				}
				fmt.Fprint(o.Out, diff)
			}
		}
		for _, p := range d.Pruned {
			fmt.Fprintf(o.Out, "  %s deleted (left the build; the twin prunes it)\n", p)
		}
	}
	for _, h := range res.HelmReleases {
		changed = changed || !h.Adopt
		fmt.Fprintf(o.Out, "► %s: %s\n", h.Object, h.Message)
	}
	if changed {
		return errDifferences
	}
	fmt.Fprintln(o.ErrOut, "no changes: the takeover is clean")
	return nil
}
