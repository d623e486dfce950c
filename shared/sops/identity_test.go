package sops_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"golang.org/x/oauth2"

	"github.com/plumb-dev/plumb/shared/sops"
	"github.com/plumb-dev/plumb/shared/sops/sopstest"
)

// identity stands for a ServiceAccount's cloud identity (apply-controller's obtains its
// credentials by a token exchange, tested there against a real API server): AWS credentials
// of the one key sopstest's KMS accepts, and the regions asked for.
type identity struct {
	mu      sync.Mutex
	regions []string
	none    bool // no AWS credentials
}

func (i *identity) AWS(_ context.Context, region string) aws.CredentialsProvider {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.regions = append(i.regions, region)
	if i.none {
		return nil
	}
	return credentials.NewStaticCredentialsProvider(sopstest.KMSAccessKeyID, "identity-secret", "")
}
func (i *identity) Azure(context.Context) azcore.TokenCredential { return nil }
func (i *identity) GCP(context.Context) oauth2.TokenSource       { return nil }

// The Secret's credentials come before the cloud identity of spec.decryption.serviceAccountName
// (Flux's order), which comes before the controller's own; the identity is asked for the key
// ARN's region.
func TestCloudIdentity(t *testing.T) {
	k := sopstest.NewKMS(t)
	t.Setenv("AWS_ENDPOINT_URL_KMS", k.URL)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDFROMENV") // the controller's own identity, never used here
	t.Setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
	enc := sopstest.Encrypt(t, "json", []byte(`{"token":"tok-123456"}`), sopstest.Options{AWS: credentials.NewStaticCredentialsProvider(sopstest.KMSAccessKeyID, "s", "")}, []string{arn})

	// A Secret entry: used; the identity is not asked.
	id := &identity{}
	entry := "aws_access_key_id: " + sopstest.KMSAccessKeyID + "\naws_secret_access_key: secret-of-the-entry\n"
	d, err := sops.New(map[string][]byte{sops.AWSKMSEntry: []byte(entry)}, sops.WithCloudIdentity(id), sops.WithWorkloadIdentity(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.Decrypt("token.json", enc); err != nil {
		t.Fatal(err)
	}
	if len(id.regions) != 0 {
		t.Errorf("the identity was asked (%q) although the Secret has credentials", id.regions)
	}

	// No entry: the identity, not the controller's own (the environment's key, which KMS
	// refuses); a Decryptor needs no Secret then.
	d, err = sops.New(nil, sops.WithCloudIdentity(id), sops.WithWorkloadIdentity(true))
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := d.Decrypt("token.json", enc)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), `"token": "tok-123456"`) {
		t.Errorf("plaintext: %s", out)
	}
	if len(id.regions) != 1 || id.regions[0] != "us-east-1" {
		t.Errorf("regions asked %q, want the key ARN's us-east-1", id.regions)
	}
	h := k.Headers()
	if len(h) != 2 || !strings.Contains(h[1], "Credential="+sopstest.KMSAccessKeyID+"/") {
		t.Errorf("Authorization headers = %q, want the second signed with the identity's key", h)
	}

	// An identity without credentials: the key fails; the SDK does not fall back to the
	// controller's own identity.
	d, err = sops.New(nil, sops.WithCloudIdentity(&identity{none: true}), sops.WithWorkloadIdentity(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err = d.Decrypt("token.json", enc); !errors.Is(err, sops.ErrNoKey) {
		t.Errorf("err = %v, want ErrNoKey", err)
	}
	if len(k.Headers()) != 2 {
		t.Errorf("a request reached KMS without the identity's credentials: %q", k.Headers()[2:])
	}

	// Neither: the message says what to add, the field among it.
	id2, _ := sopstest.Identity(t)
	d, err = sops.New(map[string][]byte{"k.agekey": []byte(id2)})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = d.Decrypt("token.json", enc)
	if !errors.Is(err, sops.ErrNoKey) || !strings.Contains(err.Error(), "spec.decryption.serviceAccountName") {
		t.Errorf("err = %v, want a message naming spec.decryption.serviceAccountName", err)
	}
}
