package kubeconfig

import (
	"strings"
	"testing"
)

func TestRESTConfigRefusesPluginsAndFiles(t *testing.T) {
	base := `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster:
    server: https://127.0.0.1:6443
    CLUSTER
users:
- name: u
  user:
    USER
contexts:
- name: x
  context: {cluster: c, user: u}
current-context: x
`
	kc := func(cluster, user string) []byte {
		return []byte(strings.NewReplacer("CLUSTER", cluster, "USER", user).Replace(base))
	}
	cases := []struct {
		name, cluster, user, err string
	}{
		{"token inline", "insecure-skip-tls-verify: true", "token: abc", ""},
		{"exec plugin", "insecure-skip-tls-verify: true", "exec: {apiVersion: client.authentication.k8s.io/v1, command: /bin/sh}", "credential plugin"},
		{"auth provider", "insecure-skip-tls-verify: true", "auth-provider: {name: oidc}", "credential plugin"},
		{"token file", "insecure-skip-tls-verify: true", "tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token", "names a file"},
		{"client certificate file", "insecure-skip-tls-verify: true", "client-certificate: /etc/cert.pem", "names a file"},
		{"CA file", "certificate-authority: /etc/ca.pem", "token: abc", "CA file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := RESTConfig(kc(tc.cluster, tc.user))
			if tc.err == "" {
				if err != nil || cfg.Host != "https://127.0.0.1:6443" {
					t.Fatalf("restConfig = %v, %v", cfg, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %v, want %q", err, tc.err)
			}
		})
	}
	if _, err := RESTConfig([]byte("not: [yaml")); err == nil {
		t.Fatal("garbage accepted")
	}
}
