package kubeconfig

import (
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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

func TestConfigMapOptionsRefuseWhatCannotWork(t *testing.T) {
	cases := []struct {
		name        string
		data        map[string]string
		objectLevel bool
		err         error
		msg         string
	}{
		{"no provider", map[string]string{"address": "https://127.0.0.1:6443"}, true, ErrInvalidConfigMap, "no key provider"},
		{"unknown provider", map[string]string{"provider": "oci", "address": "https://127.0.0.1:6443"}, true, ErrInvalidConfigMap, `provider "oci"`},
		{"generic without address", map[string]string{"provider": "generic"}, true, ErrInvalidConfigMap, "needs the key address"},
		{"cloud without cluster or address", map[string]string{"provider": "aws"}, true, ErrInvalidConfigMap, "needs the key cluster"},
		{"plain http", map[string]string{"provider": "generic", "address": "http://127.0.0.1:6443"}, true, ErrInvalidConfigMap, "not an https URL"},
		{"serviceAccountName without the gate", map[string]string{"provider": "generic", "address": "https://127.0.0.1:6443", "serviceAccountName": "deployer"}, false, ErrObjectLevelIdentityDisabled, "--feature-gates=ObjectLevelWorkloadIdentity=true"},
		{"generic with the gate", map[string]string{"provider": "generic", "address": "https://127.0.0.1:6443", "serviceAccountName": "deployer", "audiences": "a\n\n b \n"}, true, nil, ""},
		{"gcp by cluster name", map[string]string{"provider": "gcp", "cluster": "projects/p/locations/l/clusters/c"}, false, nil, ""},
		{"the default ServiceAccount without the gate", map[string]string{"provider": "gcp", "cluster": "projects/p/locations/l/clusters/c", "default": "tenant"}, false, ErrObjectLevelIdentityDisabled, "serviceAccountName tenant"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := NewClusters(nil, tc.objectLevel)
			c.DefaultServiceAccount = tc.data["default"]
			delete(tc.data, "default")
			cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "remote"}, Data: tc.data}
			_, _, err := c.options(cm, Object{Kind: "Kustomization", Namespace: "ns", Name: "k"}, nil)
			if tc.err == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want %v with %q", err, tc.err, tc.msg)
			}
		})
	}
	if got := audiences("a\n\n b \n"); len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Fatalf("audiences: got %q", got)
	}
}

func TestConfigMapKeyFollowsContents(t *testing.T) {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "remote"}, Data: map[string]string{"provider": "generic", "address": "https://a"}}
	k1 := key(cm)
	if k1 != key(cm.DeepCopy()) {
		t.Fatal("the same ConfigMap gives another key")
	}
	cm.Data["serviceAccountName"] = "other"
	if key(cm) == k1 {
		t.Fatal("another identity gives the same key: clients would be shared")
	}
}
