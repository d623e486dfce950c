package cmd

import (
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"

	"github.com/plumb-dev/plumb/shared/gitauth"
)

func newCreateSecretGitHubApp(o *Options) *cobra.Command {
	var f secretFlags
	var appID, installationID int64
	var owner, keyFile, baseURL string
	c := &cobra.Command{
		Use:   "githubapp NAME",
		Short: "Create a Secret of a GitHub App for a GitRepository (provider github) or a github Provider",
		Long: `create secret githubapp writes Flux's GitHub App keys: githubAppID, githubAppInstallationID
(or githubAppInstallationOwner, the organization or user the app is installed on, looked up at
use), githubAppPrivateKey (the PEM file GitHub gave) and, with --base-url, githubAppBaseURL (the
API of GitHub Enterprise Server, such as https://github.example.com/api/v3). The controllers
trade it for installation tokens. The key is checked as the controllers read it, and is never
printed (except by --export).`,
		Example: `  plumb create secret githubapp fleet-app -n plumb-system --app-id 123456 --installation-id 7890123 \
    --private-key-file app.private-key.pem
  plumb create secret githubapp ghe-app --app-id 12 --installation-owner platform \
    --private-key-file app.pem --base-url https://github.example.com/api/v3 --export`,
		Args: exactName,
		RunE: func(cmd *cobra.Command, args []string) error {
			if appID <= 0 {
				return usagef("--app-id (the app's numeric ID) is required")
			}
			if (installationID > 0) == (owner != "") {
				return usagef("give one of --installation-id and --installation-owner")
			}
			if keyFile == "" {
				return usagef("--private-key-file is required")
			}
			key, err := readFlagFile("--private-key-file", keyFile)
			if err != nil {
				return err
			}
			data := map[string][]byte{
				gitauth.GitHubAppIDKey:         []byte(strconv.FormatInt(appID, 10)),
				gitauth.GitHubAppPrivateKeyKey: key,
			}
			if installationID > 0 {
				data[gitauth.GitHubAppInstallationIDKey] = []byte(strconv.FormatInt(installationID, 10))
			} else {
				data[gitauth.GitHubAppInstallationOwnerKey] = []byte(owner)
			}
			if baseURL != "" {
				data[gitauth.GitHubAppBaseURLKey] = []byte(baseURL)
			}
			// As the controllers will read it: a key that is not a PEM RSA key fails here.
			if _, err := gitauth.GitHubAppFromSecret(data, ""); err != nil {
				msg := strings.TrimPrefix(err.Error(), gitauth.ErrAuth.Error()+": ")
				return usagef("%s", strings.NewReplacer("the Secret's `githubAppPrivateKey`", "--private-key-file "+keyFile,
					"the Secret's `githubAppBaseURL`", "--base-url", "the Secret's `githubAppInstallationOwner`", "--installation-owner").Replace(msg))
			}
			return o.writeSecret(cmd, &f, args[0], corev1.SecretTypeOpaque, data)
		},
	}
	f.add(c, false)
	c.Flags().Int64Var(&appID, "app-id", 0, "the GitHub App's ID")
	c.Flags().Int64Var(&installationID, "installation-id", 0, "the ID of the app's installation")
	c.Flags().StringVar(&owner, "installation-owner", "", "the organization or user the app is installed on (instead of --installation-id)")
	c.Flags().StringVar(&keyFile, "private-key-file", "", "the app's private key (PEM), as GitHub generated it")
	c.Flags().StringVar(&baseURL, "base-url", "", "the GitHub API for GitHub Enterprise Server (default https://api.github.com)")
	return c
}
