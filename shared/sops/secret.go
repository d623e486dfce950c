package sops

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// FromSecret reads the keys of the decryption Secret named name in namespace ns, and returns
// the Decryptor with "<name>/<resourceVersion>", which changes when the keys do. With no name,
// only a cloud identity can open files: allowed with WithCloudIdentity or WithWorkloadIdentity.
func FromSecret(ctx context.Context, reader client.Reader, ns, name string, opts ...Option) (*Decryptor, string, error) {
	if name == "" {
		d, err := New(nil, opts...)
		if err != nil {
			return nil, "", fmt.Errorf("spec.decryption.secretRef is required: the Secret holding the keys (without one, only KMS keys opened with a cloud identity can be used: spec.decryption.serviceAccountName, or the controller's own with its --sops-kms-workload-identity flag)")
		}
		return d, "controller-identity", nil
	}
	key := types.NamespacedName{Namespace: ns, Name: name}
	s := &corev1.Secret{}
	if err := reader.Get(ctx, key, s); err != nil {
		return nil, "", fmt.Errorf("decryption Secret %s is not ready or not found", key)
	}
	d, err := New(s.Data, opts...)
	if err != nil {
		return nil, "", fmt.Errorf("decryption Secret %s: %w", key, err)
	}
	return d, name + "/" + s.ResourceVersion, nil
}
