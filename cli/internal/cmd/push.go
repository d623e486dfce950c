package cmd

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/cobra"

	"github.com/plumb-dev/plumb/cli/internal/ociartifact"
	"github.com/plumb-dev/plumb/shared/cosign"
)

// passwordEnv holds the password of an encrypted cosign.key, as for cosign itself.
const passwordEnv = "COSIGN_PASSWORD"

func newPush(o *Options) *cobra.Command {
	c := &cobra.Command{
		Use:   "push",
		Short: "Push content to where Plumb's sources read it",
	}
	c.AddCommand(newPushArtifact(o))
	return c
}

func newPushArtifact(o *Options) *cobra.Command {
	var signKey, creds, source, revision string
	c := &cobra.Command{
		Use:   "artifact DIR oci://REGISTRY/REPOSITORY:TAG",
		Short: "Push a folder as an OCI artifact an OCIRepository reads, and sign it with a cosign key",
		Long: `push artifact packs the files of DIR (without .git) into a tarball, pushes it as an OCI
artifact in the format of Flux's flux push artifact (which an OCIRepository reads) and prints its
digest. Equal content and flags give an equal digest.

With --sign-key it signs the pushed digest as cosign sign --key does, so that an OCIRepository
with spec.verify.provider cosign and the public key accepts it. The key is cosign's cosign.key
(its password in COSIGN_PASSWORD) or an unencrypted PEM ECDSA P-256 key, as made by
openssl ecparam -genkey -name prime256v1 -noout -out key.pem.

Credentials: --creds user:password, or else those of docker login (~/.docker/config.json).
Registries on localhost, loopback or private addresses are spoken to over HTTP, others over
HTTPS.`,
		Example: `  plumb push artifact ./deploy oci://ghcr.io/acme/app-manifests:v1.2.0 \
    --source https://github.com/acme/app --revision main@sha1:$(git rev-parse HEAD) \
    --sign-key cosign.key`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := ociartifact.TrimScheme(args[1])
			if err != nil {
				return usageError{err}
			}
			opts, err := registryAuth(creds)
			if err != nil {
				return err
			}
			var key *cosign.Key
			if signKey != "" {
				// Read the key first: a wrong password must not leave an unsigned push behind.
				if key, err = loadSignKey(signKey); err != nil {
					return err
				}
			}
			tarball, err := ociartifact.Pack(args[0])
			if err != nil {
				return err
			}
			repo, digest, err := ociartifact.Push(cmd.Context(), ref, tarball, ociartifact.Meta{Source: source, Revision: revision}, opts...)
			if err != nil {
				return err
			}
			fmt.Fprintf(o.ErrOut, "pushed %s@%s\n", ref, digest)
			if key != nil {
				if err := cosign.Sign(repo, digest, []cosign.Signature{{Key: key.Private}}, append(opts, remote.WithContext(cmd.Context()))...); err != nil {
					return fmt.Errorf("pushed %s@%s but did not sign it: %w", ref, digest, err)
				}
				fmt.Fprintf(o.ErrOut, "signed %s@%s with %s\n", repo, digest, signKey)
			}
			fmt.Fprintln(o.Out, digest)
			return nil
		},
	}
	c.Flags().StringVar(&signKey, "sign-key", "", "sign with this private key: cosign.key (password in "+passwordEnv+") or a PEM ECDSA P-256 key")
	c.Flags().StringVar(&creds, "creds", "", "registry credentials user:password (default: docker login's)")
	c.Flags().StringVar(&source, "source", "", "URL of the origin, recorded as org.opencontainers.image.source")
	c.Flags().StringVar(&revision, "revision", "", "revision of the origin (main@sha1:<commit>), recorded as org.opencontainers.image.revision")
	return c
}

// registryAuth is --creds, or docker's keychain without it.
func registryAuth(creds string) ([]remote.Option, error) {
	if creds == "" {
		return []remote.Option{remote.WithAuthFromKeychain(authn.DefaultKeychain)}, nil
	}
	user, pass, ok := strings.Cut(creds, ":")
	if !ok || user == "" {
		return nil, usagef("--creds: want user:password")
	}
	return []remote.Option{remote.WithAuth(&authn.Basic{Username: user, Password: pass})}, nil
}

// loadSignKey reads --sign-key; an encrypted cosign.key needs COSIGN_PASSWORD.
func loadSignKey(path string) (*cosign.Key, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--sign-key: %w", err)
	}
	key, err := cosign.LoadPrivateKey(data, []byte(os.Getenv(passwordEnv)))
	if err != nil {
		if errors.Is(err, cosign.ErrKey) && os.Getenv(passwordEnv) == "" && strings.Contains(string(data), "ENCRYPTED") {
			return nil, fmt.Errorf("--sign-key %s is encrypted: set %s to its password", path, passwordEnv)
		}
		return nil, fmt.Errorf("--sign-key %s: %w", path, err)
	}
	return key, nil
}
