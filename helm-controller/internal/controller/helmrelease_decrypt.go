package controller

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path"
	"strings"

	helmv1 "github.com/plumb-dev/plumb/helm-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/shared/sops"
)

// errDecryption marks a valuesFrom document that is SOPS-encrypted and could not be decrypted.
var errDecryption = errors.New("decryption")

// valuesDecryptor decrypts the SOPS-encrypted documents of one reconcile's valuesFrom, reading
// the keys of spec.decryption once, when the first encrypted document is met.
type valuesDecryptor struct {
	r   *HelmReleaseReconciler
	obj *helmv1.HelmRelease
	d   *sops.Decryptor
}

// decrypt returns the plaintext of data when it is a SOPS-encrypted YAML or JSON document, and
// whether it was; where names the document in messages. The values that were encrypted join the
// values masked in this reconcile's messages (the caller adds the whole plaintext's).
func (v *valuesDecryptor) decrypt(ctx context.Context, where, key string, data []byte, targetPath string) ([]byte, bool, error) {
	name := valuesFileName(key, data)
	if sops.Detect(name, data) == sops.NotEncrypted {
		return data, false, nil
	}
	if targetPath != "" {
		return nil, true, fmt.Errorf("%w: %s is SOPS-encrypted: give it as a whole document (without targetPath) to have it decrypted", errDecryption, where)
	}
	d := v.obj.Spec.Decryption
	if d == nil {
		return nil, true, fmt.Errorf("%w: %s is SOPS-encrypted and the HelmRelease has no spec.decryption: add one naming the Secret of its keys", errDecryption, where)
	}
	if v.d == nil {
		if d.Provider != helmv1.DecryptionProviderSOPS {
			return nil, true, fmt.Errorf("%w: spec.decryption.provider %q is not supported (only %s)", errDecryption, d.Provider, helmv1.DecryptionProviderSOPS)
		}
		var ref string
		if d.SecretRef != nil {
			ref = d.SecretRef.Name
		}
		dec, _, err := sops.FromSecret(ctx, v.r.APIReader, v.obj.Namespace, ref, sops.WithWorkloadIdentity(v.r.KMSWorkloadIdentity))
		if err != nil {
			return nil, true, fmt.Errorf("%w: %w", errDecryption, err)
		}
		v.d = dec
	}
	plain, values, err := v.d.Decrypt(name, data)
	addSecrets(ctx, values)
	if err != nil {
		// The decryptor names the document by name; say which object it came from.
		return nil, true, fmt.Errorf("%w: %s: %s", errDecryption, where, strings.TrimPrefix(err.Error(), name+": "))
	}
	return plain, true, nil
}

// valuesFileName is a name that makes SOPS read the document in the format it is in, whatever its
// key is called: JSON when it is an object (as SOPS writes JSON), else YAML.
func valuesFileName(key string, data []byte) string {
	ext := ".yaml"
	if bytes.HasPrefix(bytes.TrimSpace(data), []byte("{")) {
		ext = ".json"
	}
	if path.Ext(key) == ext {
		return key
	}
	return key + ext
}
