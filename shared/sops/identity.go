package sops

import (
	"context"
	"fmt"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/aws/aws-sdk-go-v2/aws"
	"golang.org/x/oauth2"
)

// CloudIdentity is the cloud identity a Kustomization's spec.decryption.serviceAccountName
// names (object-level workload identity): it opens the AWS KMS, GCP KMS and Azure Key Vault keys
// whose credentials the decryption Secret does not hold. apply-controller's obtains them by a
// token exchange for the ServiceAccount; this package only asks for them, when a key needs them.
type CloudIdentity interface {
	// AWS are the credentials for a KMS key of region (the STS exchange needs one). The AWS
	// SDK asks for them with a context that never ends: they are obtained within ctx, the call's.
	AWS(ctx context.Context, region string) aws.CredentialsProvider
	// Azure is the credential for Key Vault, for calls bounded by ctx.
	Azure(ctx context.Context) azcore.TokenCredential
	// GCP is the token source for Cloud KMS, for calls bounded by ctx.
	GCP(ctx context.Context) oauth2.TokenSource
}

// A nil credential of a CloudIdentity is no credential: the key fails, rather than the SDK
// falling back to the controller's own identity.

// WithCloudIdentity opens the cloud keys the Secret has no credentials for with id, rather than
// with the controller's own identity (WithWorkloadIdentity).
func WithCloudIdentity(id CloudIdentity) Option {
	return func(d *Decryptor) { d.identity = id }
}

// kmsRegion is the region of an AWS KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>).
func kmsRegion(arn string) (string, error) {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) < 6 || parts[0] != "arn" || parts[2] != "kms" || parts[3] == "" {
		return "", fmt.Errorf("the key %q is not a KMS key ARN with a region", arn)
	}
	return parts[3], nil
}
