package controller

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/fluxcd/pkg/apis/meta"
	. "github.com/onsi/gomega"

	"github.com/plumb-dev/plumb/shared/testing/testenv"
	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/source-controller/internal/bucket"
	"github.com/plumb-dev/plumb/source-controller/internal/bucket/buckettest"
)

var (
	gcsOnce   sync.Once
	gcsServer *buckettest.GCS
	gcsErr    error
)

// gcsEmulator returns the package's Google Cloud Storage emulator (fake-gcs-server on
// loopback), started on first use. Where it cannot be built the test is skipped, or fails when
// CI is set.
func gcsEmulator(t *testing.T) *buckettest.GCS {
	t.Helper()
	gcsOnce.Do(func() {
		dir, err := os.MkdirTemp(tmp, "gcs-")
		if err != nil {
			gcsErr = err
			return
		}
		gcsServer, gcsErr = buckettest.StartGCS(dir)
	})
	if gcsErr != nil {
		testenv.MissingTool(t, "fake-gcs-server", gcsErr)
	}
	return gcsServer
}

// googleTokens is Google's OAuth token endpoint on loopback for service account keys: it
// checks the RS256 signature of the JWT assertion with the key's public half and issues an
// access token, or answers invalid_grant as Google does.
type googleTokens struct {
	URL    string
	issued atomic.Int64
}

const gcsAccessToken = "ya29.plumb-test-token"

func newGoogleTokens(t *testing.T, pub *rsa.PublicKey) *googleTokens {
	gt := &googleTokens{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if err := r.ParseForm(); err != nil || r.Form.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" || !validJWT(r.Form.Get("assertion"), pub) {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"error":"invalid_grant","error_description":"Invalid JWT Signature."}`)
			return
		}
		gt.issued.Add(1)
		fmt.Fprintf(w, `{"access_token":%q,"token_type":"Bearer","expires_in":3600}`, gcsAccessToken)
	}))
	t.Cleanup(srv.Close)
	gt.URL = srv.URL + "/token"
	return gt
}

// validJWT checks a compact RS256 JWT's signature.
func validJWT(token string, pub *rsa.PublicKey) bool {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return false
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return false
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	return rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig) == nil
}

// serviceAccountKey is a Google service account key in JSON whose token_uri is tokenURI.
func serviceAccountKey(t *testing.T, key *rsa.PrivateKey, tokenURI string) string {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(map[string]string{
		"type": "service_account", "project_id": "plumb-test", "private_key_id": "k1",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": "plumb-source@plumb-test.iam.gserviceaccount.com", "client_id": "1",
		"token_uri": tokenURI,
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func rsaKey(t *testing.T) *rsa.PrivateKey {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// gcsRevision is the revision of the objects as the emulator lists them.
func gcsRevision(g *WithT, emu *buckettest.GCS, name string, keys ...string) string {
	var objects []bucket.Object
	for _, k := range keys {
		etag, err := emu.ETag(context.Background(), name, k)
		g.Expect(err).NotTo(HaveOccurred())
		objects = append(objects, bucket.Object{Key: k, ETag: etag})
	}
	return bucket.Digest(objects)
}

// A Bucket of provider gcp reads Google Cloud Storage's JSON API with the access token of the
// service account key in secretRef: the artifact holds the objects under the prefix; an
// unchanged listing downloads nothing; a changed object is a new revision.
func TestBucket_GCSWithServiceAccountKey(t *testing.T) {
	g := NewWithT(t)
	emu := gcsEmulator(t)
	downloads := emu.NewDownloads(t)
	key := rsaKey(t)
	tokens := newGoogleTokens(t, &key.PublicKey)
	ns := newNamespace(t)
	name := bucketName(t)
	g.Expect(emu.MakeBucket(context.Background(), name, map[string]string{
		"apps/deploy.yaml": "kind: Deployment\n", "apps/notes.md": "notes\n", "other/x.yaml": "x\n",
	})).To(Succeed())
	obj := newBucket(ns, downloads.Endpoint, name, func(b *sourcev1.Bucket) {
		b.Spec.Provider = sourcev1.BucketProviderGoogle
		b.Spec.Prefix = "apps/"
		b.Spec.Ignore = ptr("*.md\n")
		b.Spec.SecretRef = &meta.LocalObjectReference{Name: credentialsSecret(t, ns, map[string]string{
			"serviceaccount": serviceAccountKey(t, key, tokens.URL)})}
	})
	create(g, obj)
	rev := gcsRevision(g, emu, name, "apps/deploy.yaml")
	waitReady(g, obj, rev)
	g.Expect(files(g, obj.Status.Artifact)).To(Equal(map[string]string{"apps/deploy.yaml": "kind: Deployment\n"}))
	g.Expect(downloads.Gets()).To(Equal(1), "one download per published object")
	g.Expect(downloads.Authorization()).To(Equal("Bearer "+gcsAccessToken), "the service account's token")
	g.Expect(tokens.issued.Load()).To(BeNumerically(">=", 1))

	gets, last := downloads.Gets(), *obj.Status.Artifact
	waitHandled(g, obj)
	g.Expect(downloads.Gets()).To(Equal(gets), "an unchanged listing downloads nothing")
	g.Expect(obj.Status.Artifact.Digest).To(Equal(last.Digest))

	g.Expect(emu.Put(context.Background(), name, map[string]string{"apps/deploy.yaml": "kind: Deployment\nspec: {}\n"})).To(Succeed())
	requestReconcile(g, obj)
	rev2 := gcsRevision(g, emu, name, "apps/deploy.yaml")
	g.Expect(rev2).NotTo(Equal(rev))
	waitReady(g, obj, rev2)
	g.Expect(files(g, obj.Status.Artifact)).To(Equal(map[string]string{"apps/deploy.yaml": "kind: Deployment\nspec: {}\n"}))
}

// A key the token endpoint refuses, a secret that is no service account key, and a missing
// bucket are failures a person can act on; no message holds the key.
func TestBucket_GCSFailures(t *testing.T) {
	g := NewWithT(t)
	emu := gcsEmulator(t)
	good := rsaKey(t)
	tokens := newGoogleTokens(t, &good.PublicKey)
	ns := newNamespace(t)
	name := bucketName(t)
	g.Expect(emu.MakeBucket(context.Background(), name, map[string]string{"a.yaml": "a\n"})).To(Succeed())
	gcp := func(secret string) func(*sourcev1.Bucket) {
		return func(b *sourcev1.Bucket) {
			b.Spec.Provider = sourcev1.BucketProviderGoogle
			b.Spec.SecretRef = &meta.LocalObjectReference{Name: credentialsSecret(t, ns, map[string]string{"serviceaccount": secret})}
		}
	}

	wrongKey := serviceAccountKey(t, rsaKey(t), tokens.URL)
	wrong := newBucket(ns, emu.Endpoint, name, gcp(wrongKey))
	create(g, wrong)
	msg := waitFailed(g, wrong, sourcev1.AuthenticationFailedReason)
	g.Expect(msg).To(ContainSubstring("bucket " + name + " at " + emu.Endpoint))
	g.Expect(msg).To(ContainSubstring("invalid_grant: Invalid JWT Signature."))
	g.Expect(msg).NotTo(ContainSubstring("PRIVATE KEY"))
	g.Expect(msg).NotTo(ContainSubstring(gcsAccessToken))

	const notAKey = "hmac-s3cr3t-not-json"
	garbage := newBucket(ns, emu.Endpoint, name, gcp(notAKey))
	create(g, garbage)
	msg = waitFailed(g, garbage, sourcev1.AuthenticationFailedReason)
	g.Expect(msg).To(ContainSubstring("not a Google service account key"))
	g.Expect(msg).NotTo(ContainSubstring(notAKey))

	missing := newBucket(ns, emu.Endpoint, "no-such-gcs-bucket", gcp(serviceAccountKey(t, good, tokens.URL)))
	create(g, missing)
	g.Expect(waitFailed(g, missing, sourcev1.BucketNotFoundReason)).To(ContainSubstring("bucket no-such-gcs-bucket at " + emu.Endpoint + " does not exist"))
}
