package controller

import (
	"context"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"

	"github.com/plumb-dev/plumb/shared/testing/testenv"
	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/source-controller/internal/bucket"
	"github.com/plumb-dev/plumb/source-controller/internal/bucket/buckettest"
)

var (
	azuriteOnce   sync.Once
	azuriteServer *buckettest.Azurite
	azuriteErr    error
)

// azurite returns the package's Azure Blob Storage emulator (Azurite on loopback), started on
// first use. Where it cannot be installed the test is skipped, or fails when CI is set.
func azurite(t *testing.T) *buckettest.Azurite {
	t.Helper()
	azuriteOnce.Do(func() {
		dir, err := os.MkdirTemp(tmp, "azurite-")
		if err != nil {
			azuriteErr = err
			return
		}
		azuriteServer, azuriteErr = buckettest.StartAzurite(dir)
	})
	if azuriteErr != nil {
		testenv.MissingTool(t, "azurite", azuriteErr)
	}
	return azuriteServer
}

// azureRevision is the revision of the blobs as Azurite lists them.
func azureRevision(g *WithT, az *buckettest.Azurite, container string, keys ...string) string {
	var objects []bucket.Object
	for _, k := range keys {
		etag, err := az.ETag(context.Background(), container, k)
		g.Expect(err).NotTo(HaveOccurred())
		objects = append(objects, bucket.Object{Key: k, ETag: etag})
	}
	return bucket.Digest(objects)
}

// containerSAS is a read and list SAS of the container signed with key.
func containerSAS(t *testing.T, container, key string) string {
	cred, err := azblob.NewSharedKeyCredential(buckettest.AzuriteAccount, key)
	if err != nil {
		t.Fatal(err)
	}
	q, err := sas.BlobSignatureValues{
		Protocol: sas.ProtocolHTTPSandHTTP, ExpiryTime: time.Now().Add(time.Hour).UTC(),
		Permissions: (&sas.ContainerPermissions{Read: true, List: true}).String(), ContainerName: container,
	}.SignWithSharedKey(cred)
	if err != nil {
		t.Fatal(err)
	}
	return q.Encode()
}

func azureSecret(t *testing.T, ns string, data map[string]string) func(*sourcev1.Bucket) {
	name := credentialsSecret(t, ns, data)
	return func(b *sourcev1.Bucket) {
		b.Spec.Provider = sourcev1.BucketProviderAzure
		b.Spec.SecretRef = &meta.LocalObjectReference{Name: name}
	}
}

// A Bucket of provider azure reads the container at the storage account's URL with the
// account key of secretRef: the artifact holds the blobs under the prefix; an unchanged
// listing downloads nothing; a changed blob is a new revision. A SAS reads it as well.
func TestBucket_AzureWithAccountKeyAndSAS(t *testing.T) {
	g := NewWithT(t)
	az := azurite(t)
	downloads := az.NewDownloads(t)
	ns := newNamespace(t)
	name := bucketName(t)
	g.Expect(az.MakeContainer(context.Background(), name, map[string]string{
		"apps/deploy.yaml": "kind: Deployment\n", "apps/notes.md": "notes\n", "other/x.yaml": "x\n",
	})).To(Succeed())
	obj := newBucket(ns, "http://"+downloads.Endpoint+"/"+buckettest.AzuriteAccount, name,
		azureSecret(t, ns, map[string]string{"accountKey": buckettest.AzuriteKey}),
		func(b *sourcev1.Bucket) {
			b.Spec.Prefix = "apps/"
			b.Spec.Ignore = ptr("*.md\n")
		})
	create(g, obj)
	rev := azureRevision(g, az, name, "apps/deploy.yaml")
	waitReady(g, obj, rev)
	g.Expect(files(g, obj.Status.Artifact)).To(Equal(map[string]string{"apps/deploy.yaml": "kind: Deployment\n"}))
	g.Expect(downloads.Gets()).To(Equal(1), "one download per published blob")
	g.Expect(downloads.Authorization()).To(HavePrefix("SharedKey "+buckettest.AzuriteAccount+":"), "signed with the account key")

	gets, last := downloads.Gets(), *obj.Status.Artifact
	waitHandled(g, obj)
	g.Expect(downloads.Gets()).To(Equal(gets), "an unchanged listing downloads nothing")
	g.Expect(obj.Status.Artifact.Digest).To(Equal(last.Digest))

	g.Expect(az.Put(context.Background(), name, map[string]string{"apps/deploy.yaml": "kind: Deployment\nspec: {}\n"})).To(Succeed())
	requestReconcile(g, obj)
	rev2 := azureRevision(g, az, name, "apps/deploy.yaml")
	g.Expect(rev2).NotTo(Equal(rev))
	waitReady(g, obj, rev2)
	g.Expect(files(g, obj.Status.Artifact)).To(Equal(map[string]string{"apps/deploy.yaml": "kind: Deployment\nspec: {}\n"}))

	// A container SAS (read and list) in sasKey, without a scheme in the endpoint.
	withSAS := newBucket(ns, az.Endpoint+"/"+buckettest.AzuriteAccount, name,
		azureSecret(t, ns, map[string]string{"sasKey": "?" + containerSAS(t, name, buckettest.AzuriteKey)}))
	create(g, withSAS)
	waitReady(g, withSAS, azureRevision(g, az, name, "apps/deploy.yaml", "apps/notes.md", "other/x.yaml"))
}

// A wrong account key, a forged SAS, an incomplete Secret and a missing container are failures
// a person can act on; no message holds a key or a signature.
func TestBucket_AzureFailures(t *testing.T) {
	g := NewWithT(t)
	az := azurite(t)
	ns := newNamespace(t)
	name := bucketName(t)
	g.Expect(az.MakeContainer(context.Background(), name, map[string]string{"a.yaml": "a\n"})).To(Succeed())
	endpoint := az.AccountURL()

	// Another well-formed key: the signature does not match.
	wrongKey := strings.ToLower(buckettest.AzuriteKey[:40]) + buckettest.AzuriteKey[40:]
	wrong := newBucket(ns, endpoint, name, azureSecret(t, ns, map[string]string{"accountKey": wrongKey}))
	create(g, wrong)
	msg := waitFailed(g, wrong, sourcev1.AuthenticationFailedReason)
	g.Expect(msg).To(ContainSubstring("container " + name + " at " + endpoint))
	g.Expect(msg).NotTo(ContainSubstring(wrongKey))
	g.Expect(msg).NotTo(ContainSubstring(buckettest.AzuriteKey))

	forged := containerSAS(t, name, wrongKey)
	q, err := url.ParseQuery(forged)
	g.Expect(err).NotTo(HaveOccurred())
	badSAS := newBucket(ns, endpoint, name, azureSecret(t, ns, map[string]string{"sasKey": forged}))
	create(g, badSAS)
	msg = waitFailed(g, badSAS, sourcev1.AuthenticationFailedReason)
	g.Expect(msg).To(ContainSubstring("AuthorizationFailure"))
	g.Expect(msg).NotTo(ContainSubstring(q.Get("sig")))
	g.Expect(msg).NotTo(ContainSubstring(url.QueryEscape(q.Get("sig"))))

	incomplete := newBucket(ns, endpoint, name, azureSecret(t, ns, map[string]string{"tenantId": "t"}))
	create(g, incomplete)
	g.Expect(waitFailed(g, incomplete, sourcev1.AuthenticationFailedReason)).To(ContainSubstring("has none of accountKey, sasKey"))

	missing := newBucket(ns, endpoint, "no-such-container", azureSecret(t, ns, map[string]string{"accountKey": buckettest.AzuriteKey}))
	create(g, missing)
	g.Expect(waitFailed(g, missing, sourcev1.BucketNotFoundReason)).To(ContainSubstring("container no-such-container at " + endpoint + " does not exist"))

	query := newBucket(ns, endpoint+"?sv=1", name, azureSecret(t, ns, map[string]string{"accountKey": buckettest.AzuriteKey}))
	create(g, query)
	g.Expect(waitFailed(g, query, sourcev1.InvalidSpecReason)).To(ContainSubstring("must be the storage account's URL"))
	g.Expect(conditions.IsStalled(query)).To(BeTrue())
}
