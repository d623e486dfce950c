package cmd

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/plumb-dev/plumb/cli/internal/bootstrap"
	"github.com/plumb-dev/plumb/shared/sops"
)

// sopsOptions checks bootstrap's SOPS flags: the Secret's name, and the age identity file as
// plumb create secret sops and the apply-controller read it. Errors name the flag and the file,
// never its content.
func sopsOptions(keyFile, secretName string) (*bootstrap.SOPS, error) {
	if errs := validation.IsDNS1123Subdomain(secretName); len(errs) > 0 {
		return nil, usagef("--sops-secret-name %q: %s", secretName, strings.Join(errs, "; "))
	}
	s := &bootstrap.SOPS{SecretName: secretName}
	if keyFile == "" {
		return s, nil
	}
	key, err := readFlagFile("--sops-age-key-file", keyFile)
	if err != nil {
		return nil, err
	}
	if err := checkAgeIdentities(key); err != nil {
		return nil, usagef("--sops-age-key-file %s: %v", keyFile, err)
	}
	if _, err := sops.New(map[string][]byte{bootstrap.AgeKeyEntry: key}); err != nil {
		return nil, usagef("--sops-age-key-file %s: not an age identity file: an AGE-SECRET-KEY-1 line does not parse (damaged or truncated?)", keyFile)
	}
	if s.Recipients, err = bootstrap.AgeRecipients(key); err != nil {
		return nil, usagef("--sops-age-key-file %s: %v", keyFile, err)
	}
	s.AgeKey = key
	return s, nil
}

// decryptionSecretExists checks that the Secret of --sops-secret-name (without a key file) is
// there and holds keys the apply-controller reads.
func (o *Options) decryptionSecretExists(ctx context.Context, namespace, name string) error {
	c, _, err := o.Client()
	if err != nil {
		return err
	}
	s := &corev1.Secret{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, s); err != nil {
		return fmt.Errorf("--sops-secret-name: %w (give --sops-age-key-file to create it)", err)
	}
	// As the apply-controller will read it; its errors name entries, never their content.
	if _, err := sops.New(s.Data); err != nil {
		return fmt.Errorf("--sops-secret-name: Secret %s/%s: %w", namespace, name, err)
	}
	return nil
}

// reportSOPSConfig says which .sops.yaml the team's sops uses, and what it must encrypt for.
func (o *Options) reportSOPSConfig(b bootstrap.Options, p bootstrap.Pushed) {
	if b.SOPS == nil || len(b.SOPS.Recipients) == 0 {
		return
	}
	recipients := strings.Join(b.SOPS.Recipients, ",")
	if p.SOPSConfigWritten {
		fmt.Fprintf(o.Out, "✔ committed %s: sops encrypts for %s\n", p.SOPSConfig, recipients)
		return
	}
	fmt.Fprintf(o.Out, "✔ %s exists and is left as it is: its creation rules must encrypt for %s\n", p.SOPSConfig, recipients)
}
