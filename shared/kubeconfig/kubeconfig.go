// Package kubeconfig reads the kubeconfig Secrets that let a consumer act on another cluster,
// refusing what would make the controller run a program or read its own files.
package kubeconfig

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// RESTConfig reads a kubeconfig, refusing what would make the controller run a program or read
// its own files (exec and auth-provider plugins, file paths): a Secret of a tenant must not
// reach the controller's process or credentials.
func RESTConfig(data []byte) (*rest.Config, error) {
	kc, err := clientcmd.Load(data)
	if err != nil {
		return nil, errors.New("not a kubeconfig")
	}
	for name, a := range kc.AuthInfos {
		if a.Exec != nil || a.AuthProvider != nil {
			return nil, fmt.Errorf("user %q uses a credential plugin; only tokens and client certificates inside the kubeconfig are accepted", name)
		}
		if a.TokenFile != "" || a.ClientCertificate != "" || a.ClientKey != "" {
			return nil, fmt.Errorf("user %q names a file; put the token or certificate in the kubeconfig itself", name)
		}
	}
	for name, c := range kc.Clusters {
		if c.CertificateAuthority != "" {
			return nil, fmt.Errorf("cluster %q names a CA file; use certificate-authority-data", name)
		}
	}
	cfg, err := clientcmd.NewDefaultClientConfig(*kc, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, errors.New("the kubeconfig has no usable context")
	}
	return cfg, nil
}

// FromSecret reads a kubeconfig Secret's key (by default value, then value.yaml).
func FromSecret(ctx context.Context, r client.Reader, ns, name, key string) ([]byte, error) {
	s := &corev1.Secret{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, s); err != nil {
		return nil, fmt.Errorf("spec.kubeConfig Secret %s/%s: %w", ns, name, err)
	}
	keys := []string{"value", "value.yaml"}
	if key != "" {
		keys = []string{key}
	}
	for _, k := range keys {
		if len(s.Data[k]) > 0 {
			return s.Data[k], nil
		}
	}
	return nil, fmt.Errorf("spec.kubeConfig Secret %s/%s has no key %q, value or value.yaml", ns, name, key)
}
