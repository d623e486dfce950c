package controller

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	"github.com/minio/minio-go/v7"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/plumb-dev/plumb/shared/testing/cloudtest"
	"github.com/plumb-dev/plumb/shared/testing/testenv"
	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/source-controller/internal/bucket"
	"github.com/plumb-dev/plumb/source-controller/internal/bucket/buckettest"
)

const (
	s3AccessKey = "plumb-root"
	s3SecretKey = "s3-r00t-s3cr3t-key"
)

var (
	s3Once   sync.Once
	s3Server *buckettest.Server
	s3Err    error
)

// s3 returns the package's S3 server (versitygw on loopback), started on first use. Where it
// cannot be built the test is skipped, or fails when CI is set.
func s3(t *testing.T) *buckettest.Server {
	t.Helper()
	s3Once.Do(func() {
		dir, err := os.MkdirTemp(tmp, "s3-")
		if err != nil {
			s3Err = err
			return
		}
		s3Server, s3Err = buckettest.Start(dir, s3AccessKey, s3SecretKey)
	})
	if s3Err != nil {
		testenv.MissingTool(t, "versitygw", s3Err)
	}
	return s3Server
}

// stopStorageServers stops the S3 server and the emulators the tests started.
func stopStorageServers() {
	if s3Server != nil {
		s3Server.Stop()
	}
	if gcsServer != nil {
		gcsServer.Stop()
	}
	if azuriteServer != nil {
		azuriteServer.Stop()
	}
}

var bucketCount sync.Map

// bucketName returns a bucket name of the test's own.
func bucketName(t *testing.T) string {
	name := "b-" + strings.ToLower(strings.ReplaceAll(t.Name(), "_", "-"))
	if len(name) > 50 {
		name = name[:50]
	}
	n, _ := bucketCount.LoadOrStore(name, new(atomic.Int64))
	return fmt.Sprintf("%s-%d", strings.TrimRight(name, "-"), n.(*atomic.Int64).Add(1))
}

// newS3Bucket creates a bucket with a name of its own holding the objects.
func newS3Bucket(t *testing.T, srv *buckettest.Server, objects map[string]string) string {
	t.Helper()
	name := bucketName(t)
	if err := srv.MakeBucket(context.Background(), name, objects); err != nil {
		t.Fatal(err)
	}
	return name
}

func newBucket(ns, endpoint, name string, mutate ...func(*sourcev1.Bucket)) *sourcev1.Bucket {
	obj := &sourcev1.Bucket{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "bucket-", Namespace: ns},
		Spec: sourcev1.BucketSpec{BucketName: name, Endpoint: endpoint, Insecure: true,
			Interval: metav1.Duration{Duration: time.Hour}},
	}
	for _, m := range mutate {
		m(obj)
	}
	return obj
}

// s3Secret creates the accesskey/secretkey Secret.
func s3Secret(t *testing.T, ns, secretKey string) *meta.LocalObjectReference {
	return &meta.LocalObjectReference{Name: credentialsSecret(t, ns, map[string]string{"accesskey": s3AccessKey, "secretkey": secretKey})}
}

// s3Revision is the revision Flux would give the objects: the digest of their keys and ETags as
// the server lists them.
func s3Revision(g *WithT, srv *buckettest.Server, name string, keys ...string) string {
	c, err := srv.Client()
	g.Expect(err).NotTo(HaveOccurred())
	var objects []bucket.Object
	for _, k := range keys {
		info, err := c.StatObject(context.Background(), name, k, minio.StatObjectOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		objects = append(objects, bucket.Object{Key: k, ETag: info.ETag})
	}
	return bucket.Digest(objects)
}

func waitHandled(g *WithT, obj *sourcev1.Bucket) {
	v := requestReconcile(g, obj)
	g.Eventually(func(g Gomega) {
		g.Expect(get(g, obj).Status.LastHandledReconcileAt).To(Equal(v))
	}, timeout, 50*time.Millisecond).Should(Succeed())
}

// A Bucket publishes the objects under its prefix less the ignored ones, under their full keys,
// with Flux's revision; an unchanged listing downloads nothing; a changed object is a new
// revision, a changed ignored object is not; .sourceignore at the bucket's root applies.
func TestBucket_PublishesListsAndFollowsChanges(t *testing.T) {
	g := NewWithT(t)
	srv := s3(t)
	counter := srv.NewCounter(t)
	ns := newNamespace(t)
	name := newS3Bucket(t, srv, map[string]string{
		"apps/shop/deploy.yaml": "kind: Deployment\n",
		"apps/shop/notes.md":    "notes\n",
		"apps/web/cm.yaml":      "kind: ConfigMap\n",
		"apps/.github/ci.yml":   "on: push\n",
		"infra/ns.yaml":         "kind: Namespace\n",
	})
	obj := newBucket(ns, counter.Endpoint, name, func(b *sourcev1.Bucket) {
		b.Spec.Prefix = "apps/"
		b.Spec.Ignore = ptr(".github/\n*.md\n")
		b.Spec.SecretRef = s3Secret(t, ns, s3SecretKey)
	})
	create(g, obj)
	rev := s3Revision(g, srv, name, "apps/shop/deploy.yaml", "apps/web/cm.yaml")
	waitReady(g, obj, rev)
	g.Expect(rev).To(MatchRegexp("^sha256:[0-9a-f]{64}$"))
	g.Expect(files(g, obj.Status.Artifact)).To(Equal(map[string]string{
		"apps/shop/deploy.yaml": "kind: Deployment\n", "apps/web/cm.yaml": "kind: ConfigMap\n"}))
	g.Expect(conditions.IsTrue(obj, sourcev1.ArtifactInStorageCondition)).To(BeTrue())
	g.Expect(counter.Gets()).To(Equal(2), "one GET per published object")

	// No change: a listing (and the HEAD of .sourceignore), no download, the same artifact.
	gets, lists, last := counter.Gets(), counter.Lists(), *obj.Status.Artifact
	waitHandled(g, obj)
	g.Expect(counter.Lists()).To(BeNumerically(">", lists))
	g.Expect(counter.Gets()).To(Equal(gets), "an unchanged listing downloads nothing")
	g.Expect(obj.Status.Artifact.Digest).To(Equal(last.Digest))

	// Only an ignored object changes: same revision, still nothing downloaded.
	g.Expect(srv.Put(context.Background(), name, map[string]string{"apps/shop/notes.md": "more notes\n"})).To(Succeed())
	waitHandled(g, obj)
	g.Expect(counter.Gets()).To(Equal(gets))
	g.Expect(obj.Status.Artifact.Revision).To(Equal(rev))

	// A changed object is a new revision with the new content.
	g.Expect(srv.Put(context.Background(), name, map[string]string{"apps/web/cm.yaml": "kind: ConfigMap\ndata: {}\n"})).To(Succeed())
	requestReconcile(g, obj)
	rev2 := s3Revision(g, srv, name, "apps/shop/deploy.yaml", "apps/web/cm.yaml")
	g.Expect(rev2).NotTo(Equal(rev))
	waitReady(g, obj, rev2)
	g.Expect(files(g, obj.Status.Artifact)).To(HaveKeyWithValue("apps/web/cm.yaml", "kind: ConfigMap\ndata: {}\n"))

	// .sourceignore at the root of the bucket adds to spec.ignore.
	g.Expect(srv.Put(context.Background(), name, map[string]string{".sourceignore": "# not this one\nshop/\n"})).To(Succeed())
	requestReconcile(g, obj)
	waitReady(g, obj, s3Revision(g, srv, name, "apps/web/cm.yaml"))
	g.Expect(names(files(g, obj.Status.Artifact))).To(Equal([]string{"apps/web/cm.yaml"}))
}

// Without a prefix the whole bucket is published, and the default ignore (CI metadata) applies.
func TestBucket_WholeBucketWithDefaultIgnore(t *testing.T) {
	g := NewWithT(t)
	srv := s3(t)
	ns := newNamespace(t)
	name := newS3Bucket(t, srv, map[string]string{
		"deploy.yaml": "a\n", "sub/dir/cm.yaml": "b\n", ".github/workflows/ci.yml": "c\n",
	})
	obj := newBucket(ns, srv.Endpoint, name, func(b *sourcev1.Bucket) { b.Spec.SecretRef = s3Secret(t, ns, s3SecretKey) })
	create(g, obj)
	waitReady(g, obj, s3Revision(g, srv, name, "deploy.yaml", "sub/dir/cm.yaml"))
	g.Expect(files(g, obj.Status.Artifact)).To(Equal(map[string]string{"deploy.yaml": "a\n", "sub/dir/cm.yaml": "b\n"}))
}

// Refused credentials, a missing Secret and a missing bucket are failures a person can act on;
// no message holds a secret.
func TestBucket_Failures(t *testing.T) {
	g := NewWithT(t)
	srv := s3(t)
	ns := newNamespace(t)
	name := newS3Bucket(t, srv, map[string]string{"a.yaml": "a\n"})

	const wrongKey = "wr0ng-s3cr3t-value"
	wrong := newBucket(ns, srv.Endpoint, name, func(b *sourcev1.Bucket) { b.Spec.SecretRef = s3Secret(t, ns, wrongKey) })
	create(g, wrong)
	msg := waitFailed(g, wrong, sourcev1.AuthenticationFailedReason)
	g.Expect(msg).To(ContainSubstring("bucket " + name + " at " + srv.Endpoint))
	g.Expect(msg).NotTo(ContainSubstring(wrongKey))
	g.Expect(msg).NotTo(ContainSubstring(s3SecretKey))
	g.Expect(conditions.IsTrue(wrong, sourcev1.FetchFailedCondition)).To(BeTrue())
	g.Expect(conditions.IsStalled(wrong)).To(BeFalse(), "retried: the Secret may be fixed")

	noSecret := newBucket(ns, srv.Endpoint, name, func(b *sourcev1.Bucket) { b.Spec.SecretRef = &meta.LocalObjectReference{Name: "absent"} })
	create(g, noSecret)
	g.Expect(waitFailed(g, noSecret, sourcev1.AuthenticationFailedReason)).To(ContainSubstring("Secret " + ns + "/absent not found"))

	incomplete := newBucket(ns, srv.Endpoint, name, func(b *sourcev1.Bucket) {
		b.Spec.SecretRef = &meta.LocalObjectReference{Name: credentialsSecret(t, ns, map[string]string{"accesskey": s3AccessKey})}
	})
	create(g, incomplete)
	g.Expect(waitFailed(g, incomplete, sourcev1.AuthenticationFailedReason)).To(ContainSubstring("has no secretkey"))

	missing := newBucket(ns, srv.Endpoint, "no-such-bucket", func(b *sourcev1.Bucket) { b.Spec.SecretRef = s3Secret(t, ns, s3SecretKey) })
	create(g, missing)
	g.Expect(waitFailed(g, missing, sourcev1.BucketNotFoundReason)).To(ContainSubstring("bucket no-such-bucket at " + srv.Endpoint + " does not exist"))

	// Once the bucket exists, the retry picks it up.
	g.Expect(srv.MakeBucket(context.Background(), "no-such-bucket", map[string]string{"a.yaml": "a\n"})).To(Succeed())
	requestReconcile(g, missing)
	waitReady(g, missing, s3Revision(g, srv, "no-such-bucket", "a.yaml"))
}

// An endpoint with a scheme stalls with a reason.
func TestBucket_Stalls(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	for _, tc := range []struct {
		name, reason, msg string
		mutate            func(*sourcev1.Bucket)
	}{
		{"scheme", sourcev1.InvalidSpecReason, "must be a host or host:port, without scheme",
			func(b *sourcev1.Bucket) { b.Spec.Endpoint = "https://s3.example.com" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			obj := newBucket(ns, "127.0.0.1:1", "b", tc.mutate)
			create(g, obj)
			g.Expect(waitFailed(g, obj, tc.reason)).To(ContainSubstring(tc.msg))
			g.Expect(conditions.IsStalled(obj)).To(BeTrue())
		})
	}
	_ = g
}

// With provider aws and no secretRef, the controller's AWS identity (IRSA, from the loopback
// STS) signs the S3 requests: the server sees the STS-issued key. versitygw knows only its own
// accounts, so it refuses it, which is reported as an authentication failure.
func TestBucket_ProviderAWSSignsWithTheAssumedRole(t *testing.T) {
	g := NewWithT(t)
	srv := s3(t) // before irsaEnv, which moves HOME (and so the default cache)
	aws := cloudtest.NewAWS(t, "unused")
	irsaEnv(t, aws)
	counter := srv.NewCounter(t)
	ns := newNamespace(t)
	name := newS3Bucket(t, srv, map[string]string{"a.yaml": "a\n"})
	obj := newBucket(ns, counter.Endpoint, name, func(b *sourcev1.Bucket) {
		b.Spec.Provider = sourcev1.BucketProviderAWS
		b.Spec.Region = "us-east-1"
	})
	create(g, obj)
	msg := waitFailed(g, obj, sourcev1.AuthenticationFailedReason)
	g.Expect(msg).To(ContainSubstring("bucket " + name))
	g.Expect(aws.Assumes()).To(HaveLen(1))
	g.Expect(aws.Assumes()[0].Get("RoleArn")).To(Equal("arn:aws:iam::123456789012:role/plumb-source"))
	g.Expect(counter.AccessKey()).To(HavePrefix("ASIATEST"), "signed with the key STS issued")
	g.Expect(msg).NotTo(ContainSubstring("assumed-secret"))

	// serviceAccountName as the identity needs the feature gate this manager runs without.
	sa := newBucket(ns, counter.Endpoint, name, func(b *sourcev1.Bucket) {
		b.Spec.Provider = sourcev1.BucketProviderAWS
		b.Spec.ServiceAccountName = "puller"
	})
	create(g, sa)
	g.Expect(waitFailed(g, sa, sourcev1.FeatureGateDisabledReason)).To(ContainSubstring("--feature-gates=ObjectLevelWorkloadIdentity=true"))
}

// ldapSTS serves MinIO's AssumeRoleWithLDAPIdentity on loopback: for the user and password it
// issues the server's root keys with a session token, for anything else it answers 403 as
// MinIO does.
func ldapSTS(t *testing.T, srv *buckettest.Server, user, password string) (string, *atomic.Int64) {
	calls := &atomic.Int64{}
	sts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if err := r.ParseForm(); err != nil || r.Method != http.MethodPost || r.Form.Get("Action") != "AssumeRoleWithLDAPIdentity" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/xml")
		if r.Form.Get("LDAPUsername") != user || r.Form.Get("LDAPPassword") != password {
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type></Type><Code>AccessDenied</Code><Message>Access denied: LDAP login failed</Message></Error><RequestId>1</RequestId></ErrorResponse>`)
			return
		}
		fmt.Fprintf(w, `<AssumeRoleWithLDAPIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleWithLDAPIdentityResult><Credentials><AccessKeyId>%s</AccessKeyId><SecretAccessKey>%s</SecretAccessKey><Expiration>%s</Expiration><SessionToken></SessionToken></Credentials></AssumeRoleWithLDAPIdentityResult></AssumeRoleWithLDAPIdentityResponse>`,
			srv.AccessKey, srv.SecretKey, time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	}))
	t.Cleanup(sts.Close)
	return sts.URL, calls
}

// With sts provider ldap, the LDAP user's password is exchanged at the STS for the keys that
// read the bucket; a refused login is an authentication failure that names the STS.
func TestBucket_STSLDAP(t *testing.T) {
	g := NewWithT(t)
	srv := s3(t)
	const ldapPassword = "ld4p-pa55word"
	stsURL, calls := ldapSTS(t, srv, "alice", ldapPassword)
	ns := newNamespace(t)
	name := newS3Bucket(t, srv, map[string]string{"a.yaml": "a\n"})
	obj := newBucket(ns, srv.Endpoint, name, func(b *sourcev1.Bucket) {
		b.Spec.STS = &sourcev1.BucketSTSSpec{Provider: sourcev1.STSProviderLDAP, Endpoint: stsURL,
			SecretRef: &meta.LocalObjectReference{Name: credentialsSecret(t, ns, map[string]string{"username": "alice", "password": ldapPassword})}}
	})
	create(g, obj)
	waitReady(g, obj, s3Revision(g, srv, name, "a.yaml"))
	g.Expect(calls.Load()).To(BeNumerically(">=", 1))

	refused := newBucket(ns, srv.Endpoint, name, func(b *sourcev1.Bucket) {
		b.Spec.STS = &sourcev1.BucketSTSSpec{Provider: sourcev1.STSProviderLDAP, Endpoint: stsURL,
			SecretRef: &meta.LocalObjectReference{Name: credentialsSecret(t, ns, map[string]string{"username": "alice", "password": "wr0ng-ld4p"})}}
	})
	create(g, refused)
	msg := waitFailed(g, refused, sourcev1.AuthenticationFailedReason)
	g.Expect(msg).To(ContainSubstring("sts provider ldap at " + stsURL + ": Access denied: LDAP login failed"))
	g.Expect(msg).NotTo(ContainSubstring("wr0ng-ld4p"))
}

// proxySecretRef carries every request to the S3 server; a refused proxy login is ProxyFailed,
// naming the proxy and not its password.
func TestBucket_Proxy(t *testing.T) {
	g := NewWithT(t)
	srv := s3(t)
	px := newProxy(t)
	ns := newNamespace(t)
	name := newS3Bucket(t, srv, map[string]string{"a.yaml": "a\n"})
	obj := newBucket(ns, srv.Endpoint, name, func(b *sourcev1.Bucket) {
		b.Spec.SecretRef = s3Secret(t, ns, s3SecretKey)
		b.Spec.ProxySecretRef = proxySecret(t, ns, px, proxyPassword)
	})
	create(g, obj)
	waitReady(g, obj, s3Revision(g, srv, name, "a.yaml"))
	g.Expect(px.Served(srv.Endpoint)).To(BeNumerically(">", 0), "the server was reached through the proxy")

	wrong := newBucket(ns, srv.Endpoint, name, func(b *sourcev1.Bucket) {
		b.Spec.SecretRef = s3Secret(t, ns, s3SecretKey)
		b.Spec.ProxySecretRef = proxySecret(t, ns, px, "wrong-"+proxyPassword)
	})
	create(g, wrong)
	expectProxyFailed(t, g, ns, wrong, px)
}
