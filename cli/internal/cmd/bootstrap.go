package cmd

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/plumb-dev/plumb/cli/internal/bootstrap"
	"github.com/plumb-dev/plumb/cli/internal/install"
	"github.com/plumb-dev/plumb/cli/internal/kinds"
	"github.com/plumb-dev/plumb/shared/redact"
)

func newBootstrap(o *Options) *cobra.Command {
	c := &cobra.Command{
		Use:   "bootstrap",
		Short: "Make a cluster manage Plumb itself from a Git repository",
	}
	c.AddCommand(newBootstrapGit(o))
	return c
}

func newBootstrapGit(o *Options) *cobra.Command {
	b := bootstrap.Options{}
	var wait bool
	var sopsKeyFile, sopsSecret string
	c := &cobra.Command{
		Use:   "git",
		Short: "Commit Plumb's manifests and sync objects to a Git repository and apply them once",
		Long: `bootstrap git writes <path>/<namespace>/ into the repository: the components' manifests
(components.yaml), a GitRepository of the repository and a Kustomization of <path> (sync.yaml),
and a kustomization.yaml; it commits and pushes them when they differ from the branch, applies
them to the cluster once and, with --wait, waits until the Kustomization has applied the commit.
From then on the cluster reconciles Plumb from Git: an upgrade or a new component is a commit
(or bootstrap again). Running it again changes nothing that is already so.

The password (or token) is read from --password or the PLUMB_GIT_PASSWORD environment variable;
it goes into the cluster as the GitRepository's Secret, never into Git. With --secret, the
credentials come from an existing Secret of the namespace (keys username and password) instead,
which the GitRepository then uses.

With --sops-age-key-file, the Kustomization decrypts SOPS-encrypted files from the first commit
on: the age identity file goes into the cluster only, as the entry age.agekey of the Secret
--sops-secret-name (default sops-age) of the namespace, and the Kustomization's spec.decryption
names that Secret. When neither <path> nor a folder above it has a .sops.yaml, bootstrap commits
one to <path> whose creation rule encrypts for the identities' public keys (age1...). The key is
checked before anything is pushed, and never printed. --sops-secret-name alone uses an existing
Secret of the namespace (entries *.agekey or *.asc), which bootstrap leaves as it is.`,
		Example: `  PLUMB_GIT_PASSWORD=$TOKEN plumb bootstrap git --url https://git.example.com/org/fleet.git \
    --username plumb --branch main --path clusters/prod
  plumb bootstrap git --url https://git.example.com/org/fleet.git --username plumb \
    --path clusters/prod --sops-age-key-file age.agekey`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if b.URL == "" {
				return usagef("--url is required")
			}
			u, err := url.Parse(b.URL)
			if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				return usagef("--url %q: an http(s) URL of the repository", redact.URL(b.URL))
			}
			if u.User != nil {
				return usagef("--url holds credentials, which would be committed; use --username with --password or PLUMB_GIT_PASSWORD, or --secret")
			}
			if b.Password == "" {
				b.Password = os.Getenv("PLUMB_GIT_PASSWORD")
			}
			if err := install.Check(b.Components); err != nil {
				return usageError{err}
			}
			for _, need := range []string{"source-controller", "apply-controller"} {
				if !contains(b.Components, need) {
					return usagef("bootstrap needs %s: the cluster syncs Plumb with a GitRepository and a Kustomization", need)
				}
			}
			b.Namespace = o.installNamespace()
			if b.SecretName != "" {
				if err := o.credentialsFrom(cmd.Context(), &b); err != nil {
					return err
				}
			}
			// The key is checked before the cluster or the repository is touched.
			if sopsKeyFile != "" || cmd.Flags().Changed("sops-secret-name") {
				s, err := sopsOptions(sopsKeyFile, sopsSecret)
				if err != nil {
					return err
				}
				b.SOPS = s
				if sopsKeyFile == "" {
					if err := o.decryptionSecretExists(cmd.Context(), b.Namespace, sopsSecret); err != nil {
						return err
					}
				}
			}
			files, comps, sync, err := bootstrap.Files(b)
			if err != nil {
				return usageError{err}
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), o.Timeout)
			defer cancel()
			// The cluster first: nothing is pushed for a cluster that cannot be reached.
			_, cfg, err := o.Client()
			if err != nil {
				return err
			}
			if err := reachable(cfg); err != nil {
				return err
			}
			pushed, err := bootstrap.Commit(ctx, b, files)
			if err != nil {
				return err
			}
			commit := pushed.Commit
			if pushed.Changed {
				fmt.Fprintf(o.Out, "✔ committed %s to %s: %s\n", b.Dir(), b.Branch, commit[:12])
			} else {
				fmt.Fprintf(o.Out, "✔ %s on %s is up to date (%s)\n", b.Dir(), b.Branch, commit[:12])
			}
			o.reportSOPSConfig(b, pushed)
			rm, c, err := install.Manager(cfg)
			if err != nil {
				return err
			}
			objs := comps
			if s := bootstrap.Secret(b); s != nil {
				objs = append(objs, s)
			}
			// Before the Kustomization, so that its first build finds the keys.
			if s := bootstrap.DecryptionSecret(b); s != nil {
				objs = append(objs, s)
			}
			if _, err := install.Apply(ctx, rm, c, append(objs, sync...), o.Timeout); err != nil {
				return describe(err)
			}
			fmt.Fprintf(o.Out, "✔ applied %s and the sync objects to namespace %s\n", strings.Join(b.Components, ", "), b.Namespace)
			if !wait {
				return nil
			}
			revision := b.Branch + "@sha1:" + commit
			fmt.Fprintf(o.ErrOut, "◎ waiting for Kustomization %s/%s to apply %s\n", b.Namespace, b.Name(), revision)
			k, _ := kinds.ByKind("Kustomization")
			ks := &unstructured.Unstructured{}
			ks.SetGroupVersionKind(k.GVK)
			ks.SetNamespace(b.Namespace)
			ks.SetName(b.Name())
			return waitApplied(ctx, c, ks, revision, o)
		},
	}
	f := c.Flags()
	f.StringVar(&b.URL, "url", "", "http(s) URL of the repository")
	f.StringVar(&b.Branch, "branch", "main", "branch to commit to and sync from")
	f.StringVar(&b.Path, "path", "", "folder of the cluster in the repository, e.g. clusters/prod")
	f.StringVar(&b.Username, "username", "", "user name for the repository")
	f.StringVar(&b.Password, "password", "", "password or token for the repository (or PLUMB_GIT_PASSWORD)")
	f.StringVar(&b.SecretName, "secret", "", "existing Secret of the namespace with the repository's username and password")
	f.StringSliceVar(&b.Components, "components", defaultComponents, "components: "+strings.Join(install.Components, ","))
	f.DurationVar(&b.Interval, "interval", 10*time.Minute, "how often the cluster checks the repository")
	f.StringVar(&b.AuthorName, "author-name", "plumb", "author of the commit")
	f.StringVar(&b.AuthorEmail, "author-email", "plumb@localhost", "author's email")
	f.BoolVar(&wait, "wait", true, "wait until the cluster has applied the commit")
	f.StringVar(&sopsKeyFile, "sops-age-key-file", "", "age identity file (age-keygen) the Kustomization decrypts SOPS files with; it goes into the cluster only")
	f.StringVar(&sopsSecret, "sops-secret-name", "sops-age", "Secret of the namespace with the SOPS keys (written from --sops-age-key-file, or an existing one)")
	imageFlags(c, &b.Images)
	_ = c.MarkFlagRequired("path")
	return c
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// reachable asks the API server for its version.
func reachable(cfg *rest.Config) error {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return err
	}
	if _, err := dc.ServerVersion(); err != nil {
		return fmt.Errorf("cannot reach the cluster at %s: %w", cfg.Host, err)
	}
	return nil
}

// credentialsFrom reads the username and password of bootstrap's --secret.
func (o *Options) credentialsFrom(ctx context.Context, b *bootstrap.Options) error {
	c, _, err := o.Client()
	if err != nil {
		return err
	}
	s := &corev1.Secret{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: b.Namespace, Name: b.SecretName}, s); err != nil {
		return fmt.Errorf("--secret: %w", err)
	}
	b.Username, b.Password = string(s.Data["username"]), string(s.Data["password"])
	if b.Password == "" {
		return fmt.Errorf("--secret: Secret %s/%s has no password key", b.Namespace, b.SecretName)
	}
	return nil
}
