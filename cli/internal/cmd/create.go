package cmd

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/plumb-dev/plumb/shared/sops"
)

// fieldOwner is plumb's field manager for server-side apply.
const fieldOwner = "plumb"

func newCreate(o *Options) *cobra.Command {
	c := &cobra.Command{
		Use:   "create",
		Short: "Create objects Plumb's controllers read",
	}
	s := &cobra.Command{
		Use:   "secret",
		Short: "Create (or update) a credentials Secret in the shape a Plumb object reads",
		Long: `create secret writes a Secret of the namespace (-n) with server-side apply: run again, it
updates the keys plumb wrote and leaves other keys alone. With --export it prints the Secret as
YAML instead and touches no cluster. Secret values are never printed, except by --export.`,
	}
	s.AddCommand(newCreateSecretGit(o), newCreateSecretGitHubApp(o), newCreateSecretOCI(o), newCreateSecretSOPS(o))
	c.AddCommand(s)
	return c
}

// secretFlags are the flags every create secret command shares.
type secretFlags struct {
	export        bool
	password      string
	passwordStdin bool
}

func (f *secretFlags) add(c *cobra.Command, password bool) {
	c.Flags().BoolVar(&f.export, "export", false, "print the Secret as YAML to stdout instead of applying it (the output holds the secret)")
	if password {
		c.Flags().StringVar(&f.password, "password", "", "the password (visible to other users of this machine and in shell history: prefer --password-stdin)")
		c.Flags().BoolVar(&f.passwordStdin, "password-stdin", false, "read the password from stdin")
	}
}

// readPassword returns --password, or stdin with --password-stdin ("" when neither is given).
func (f *secretFlags) readPassword(cmd *cobra.Command) (string, error) {
	if f.passwordStdin && f.password != "" {
		return "", usagef("--password and --password-stdin are exclusive")
	}
	if !f.passwordStdin {
		return f.password, nil
	}
	b, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), 1<<20))
	if err != nil {
		return "", fmt.Errorf("--password-stdin: %w", err)
	}
	p := strings.TrimRight(string(b), "\r\n")
	if p == "" {
		return "", usagef("--password-stdin: stdin is empty")
	}
	return p, nil
}

func newCreateSecretGit(o *Options) *cobra.Command {
	var f secretFlags
	var username, bearerToken, sshKeyFile, knownHostsFile, caFile string
	c := &cobra.Command{
		Use:   "git NAME",
		Short: "Create a Secret for a GitRepository's spec.secretRef",
		Long: `create secret git writes the keys a GitRepository reads from spec.secretRef, for one of:
  HTTP(S) basic auth: --username with --password-stdin (or --password)   keys username, password
  HTTP(S) token:      --bearer-token                                      key bearerToken
  SSH:                --ssh-key-file with --known-hosts-file              keys identity, known_hosts
                      (and --password/--password-stdin: the key's passphrase, key password)
--ca-file adds ca.crt, the CA bundle of an HTTPS server.`,
		Example: `  echo "$TOKEN" | plumb create secret git fleet-auth -n plumb-system --username plumb --password-stdin
  plumb create secret git fleet-ssh --ssh-key-file ~/.ssh/id_ed25519 --known-hosts-file known_hosts`,
		Args: exactName,
		RunE: func(cmd *cobra.Command, args []string) error {
			data := map[string][]byte{}
			modes := 0
			for _, set := range []bool{username != "", bearerToken != "", sshKeyFile != ""} {
				if set {
					modes++
				}
			}
			if modes != 1 {
				return usagef("give one of --username (with a password), --bearer-token or --ssh-key-file")
			}
			if knownHostsFile != "" && sshKeyFile == "" {
				return usagef("--known-hosts-file goes with --ssh-key-file")
			}
			password, err := f.readPassword(cmd)
			if err != nil {
				return err
			}
			switch {
			case username != "":
				if password == "" {
					return usagef("--username needs --password-stdin or --password")
				}
				data["username"], data["password"] = []byte(username), []byte(password)
			case bearerToken != "":
				if password != "" {
					return usagef("--bearer-token takes no password")
				}
				data["bearerToken"] = []byte(bearerToken)
			default:
				if knownHostsFile == "" {
					return usagef("--ssh-key-file needs --known-hosts-file: host keys are always verified")
				}
				if data["identity"], err = readFlagFile("--ssh-key-file", sshKeyFile); err != nil {
					return err
				}
				if data["known_hosts"], err = readFlagFile("--known-hosts-file", knownHostsFile); err != nil {
					return err
				}
				if password != "" {
					data["password"] = []byte(password)
				}
			}
			if caFile != "" {
				if data["ca.crt"], err = readFlagFile("--ca-file", caFile); err != nil {
					return err
				}
			}
			return o.writeSecret(cmd, &f, args[0], corev1.SecretTypeOpaque, data)
		},
	}
	f.add(c, true)
	c.Flags().StringVar(&username, "username", "", "user name for HTTP(S) basic auth")
	c.Flags().StringVar(&bearerToken, "bearer-token", "", "token for HTTP(S) bearer auth")
	c.Flags().StringVar(&sshKeyFile, "ssh-key-file", "", "file of the SSH private key")
	c.Flags().StringVar(&knownHostsFile, "known-hosts-file", "", "known_hosts file with the Git server's host keys")
	c.Flags().StringVar(&caFile, "ca-file", "", "PEM CA bundle of the HTTPS server")
	return c
}

func newCreateSecretOCI(o *Options) *cobra.Command {
	var f secretFlags
	var server, username string
	c := &cobra.Command{
		Use:     "oci NAME",
		Short:   "Create a kubernetes.io/dockerconfigjson Secret for an OCIRepository or ImageRepository",
		Example: `  echo "$TOKEN" | plumb create secret oci ghcr -n apps --server ghcr.io --username bot --password-stdin`,
		Args:    exactName,
		RunE: func(cmd *cobra.Command, args []string) error {
			if server == "" || username == "" {
				return usagef("--server and --username are required")
			}
			password, err := f.readPassword(cmd)
			if err != nil {
				return err
			}
			if password == "" {
				return usagef("--password-stdin or --password is required")
			}
			type entry struct {
				Username string `json:"username"`
				Password string `json:"password"`
				Auth     string `json:"auth"`
			}
			doc := map[string]map[string]entry{"auths": {server: {Username: username, Password: password,
				Auth: base64.StdEncoding.EncodeToString([]byte(username + ":" + password))}}}
			b, err := json.Marshal(doc)
			if err != nil {
				return err
			}
			return o.writeSecret(cmd, &f, args[0], corev1.SecretTypeDockerConfigJson, map[string][]byte{corev1.DockerConfigJsonKey: b})
		},
	}
	f.add(c, true)
	c.Flags().StringVar(&server, "server", "", "the registry host (ghcr.io, registry.example.com:5000)")
	c.Flags().StringVar(&username, "username", "", "user name of the registry")
	return c
}

func newCreateSecretSOPS(o *Options) *cobra.Command {
	var f secretFlags
	var ageKeyFile string
	c := &cobra.Command{
		Use:   "sops NAME",
		Short: "Create a Secret of age identities for a Kustomization's spec.decryption.secretRef",
		Long: `create secret sops writes the age identity file under the key <basename>.agekey (the file's
name, with .agekey added unless it ends so), the entries a Kustomization decrypts SOPS files with.
The file must be an age identity file: lines AGE-SECRET-KEY-1..., blank lines and # comments.
Anything else is refused (exit 2) and the file's content is never printed.`,
		Example: `  plumb create secret sops sops-age -n apps --age-key-file age.agekey`,
		Args:    exactName,
		RunE: func(cmd *cobra.Command, args []string) error {
			if ageKeyFile == "" {
				return usagef("--age-key-file is required")
			}
			content, err := readFlagFile("--age-key-file", ageKeyFile)
			if err != nil {
				return err
			}
			if err := checkAgeIdentities(content); err != nil {
				return usagef("--age-key-file %s: %v", ageKeyFile, err)
			}
			key := filepath.Base(ageKeyFile)
			if !strings.HasSuffix(key, sops.AgeKeySuffix) {
				key += sops.AgeKeySuffix
			}
			if errs := validation.IsConfigMapKey(key); len(errs) > 0 {
				return usagef("--age-key-file: %q is not a usable Secret key: %s", key, strings.Join(errs, "; "))
			}
			// As the apply-controller will read it: a key with a bad checksum fails here.
			if _, err := sops.New(map[string][]byte{key: content}); err != nil {
				return usagef("--age-key-file %s: not an age identity file: an AGE-SECRET-KEY-1 line does not parse (damaged or truncated?)", ageKeyFile)
			}
			return o.writeSecret(cmd, &f, args[0], corev1.SecretTypeOpaque, map[string][]byte{key: content})
		},
	}
	f.add(c, false)
	c.Flags().StringVar(&ageKeyFile, "age-key-file", "", "age identity file (as age-keygen writes it)")
	return c
}

// checkAgeIdentities accepts an age identity file: at least one AGE-SECRET-KEY-1 line, blank
// lines and # comments. Errors name a line number, never its content.
func checkAgeIdentities(content []byte) error {
	keys := 0
	sc := bufio.NewScanner(bytes.NewReader(content))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "AGE-SECRET-KEY-1") && bech32Upper(line[len("AGE-SECRET-KEY-1"):]):
			keys++
		default:
			return fmt.Errorf("line %d is not an age identity (AGE-SECRET-KEY-1...) or a # comment", n)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("not an age identity file: %w", err)
	}
	if keys == 0 {
		return fmt.Errorf("no age identity (AGE-SECRET-KEY-1...) in the file")
	}
	return nil
}

// bech32Upper reports whether s is a non-empty run of upper-case bech32 characters.
func bech32Upper(s string) bool {
	const charset = "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L"
	if s == "" {
		return false
	}
	for _, r := range s {
		if !strings.ContainsRune(charset, r) {
			return false
		}
	}
	return true
}

func exactName(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return usagef("%s needs the Secret's NAME", cmd.CommandPath())
	}
	if errs := validation.IsDNS1123Subdomain(args[0]); len(errs) > 0 {
		return usagef("NAME %q: %s", args[0], strings.Join(errs, "; "))
	}
	return nil
}

// readFlagFile reads the file a flag names; errors name the flag and file, never content.
func readFlagFile(flag, path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, usagef("%s: %v", flag, err)
	}
	if len(b) == 0 {
		return nil, usagef("%s %s: the file is empty", flag, path)
	}
	return b, nil
}

// writeSecret applies the Secret, or prints it with --export. Nothing else prints its values.
func (o *Options) writeSecret(cmd *cobra.Command, f *secretFlags, name string, typ corev1.SecretType, data map[string][]byte) error {
	ns := o.Namespace()
	if f.export {
		s := corev1.Secret{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Type:       typ,
			Data:       data,
		}
		b, err := yaml.Marshal(s)
		if err != nil {
			return err
		}
		b = bytes.Replace(b, []byte("  creationTimestamp: null\n"), nil, 1)
		fmt.Fprintln(o.ErrOut, "plumb: warning: this output holds a secret (base64 is not encryption); encrypt it, for example with sops, before it goes into Git")
		_, err = o.Out.Write(append([]byte("---\n"), b...))
		return err
	}
	c, _, err := o.Client()
	if err != nil {
		return err
	}
	ac := corev1ac.Secret(name, ns).WithType(typ).WithData(data)
	if err := c.Apply(cmd.Context(), ac, client.FieldOwner(fieldOwner), client.ForceOwnership); err != nil {
		return fmt.Errorf("secret %s/%s: %w", ns, name, err)
	}
	fmt.Fprintf(o.Out, "Secret %s/%s applied (%s)\n", ns, name, strings.Join(sortedKeys(data), ", "))
	return nil
}

func sortedKeys(m map[string][]byte) []string {
	return slices.Sorted(maps.Keys(m))
}
