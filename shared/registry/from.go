package registry

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Refs are the credentials an object names in its own namespace, as OCIRepository and
// ImageRepository spell them.
type Refs struct {
	Namespace string
	// SecretRef names a kubernetes.io/dockerconfigjson Secret.
	SecretRef string
	// ServiceAccount names a ServiceAccount whose image pull secrets are tried after SecretRef;
	// with a cloud Provider it is the cloud identity instead (Cloud.Login) and its image pull
	// secrets are not read, as in Flux.
	ServiceAccount string
	// Provider is spec.provider: generic (or empty), aws, azure or gcp.
	Provider string
	// CertSecretRef names a Secret with ca.crt, and tls.crt and tls.key for a client certificate.
	CertSecretRef string
	Insecure      bool
}

// CredentialsFrom reads the Secrets and ServiceAccount the refs name. Every error wraps ErrAuth
// and names the Secret or ServiceAccount, never a value.
func CredentialsFrom(ctx context.Context, r client.Reader, refs Refs) (Credentials, error) {
	creds := Credentials{Insecure: refs.Insecure}
	secret := func(name, purpose string) (*corev1.Secret, error) {
		s := &corev1.Secret{}
		key := types.NamespacedName{Namespace: refs.Namespace, Name: name}
		if err := r.Get(ctx, key, s); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, fmt.Errorf("%w: %s Secret %s not found", ErrAuth, purpose, key)
			}
			return nil, fmt.Errorf("%w: %s Secret %s: %v", ErrAuth, purpose, key, err)
		}
		return s, nil
	}
	pullSecret := func(name, purpose string) error {
		s, err := secret(name, purpose)
		if err != nil {
			return err
		}
		data, ok := s.Data[corev1.DockerConfigJsonKey]
		if !ok {
			return fmt.Errorf("%w: %s Secret %s/%s has no %s key", ErrAuth, purpose, refs.Namespace, name, corev1.DockerConfigJsonKey)
		}
		creds.DockerConfigs = append(creds.DockerConfigs, data)
		return nil
	}
	if refs.SecretRef != "" {
		if err := pullSecret(refs.SecretRef, "credentials"); err != nil {
			return creds, err
		}
	}
	if name := refs.ServiceAccount; name != "" && !IsCloud(refs.Provider) {
		sa := &corev1.ServiceAccount{}
		if err := r.Get(ctx, types.NamespacedName{Namespace: refs.Namespace, Name: name}, sa); err != nil {
			return creds, fmt.Errorf("%w: ServiceAccount %s/%s: %v", ErrAuth, refs.Namespace, name, err)
		}
		for _, ps := range sa.ImagePullSecrets {
			if err := pullSecret(ps.Name, "image pull"); err != nil {
				return creds, err
			}
		}
	}
	if refs.CertSecretRef != "" {
		s, err := secret(refs.CertSecretRef, "TLS")
		if err != nil {
			return creds, err
		}
		creds.CA, creds.Cert, creds.Key = s.Data["ca.crt"], s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey]
	}
	return creds, nil
}
