package controller

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/plumb-dev/plumb/shared/registry"
	"github.com/plumb-dev/plumb/shared/testing/cloudtest"
	"github.com/plumb-dev/plumb/shared/testing/ocitest"
	"github.com/plumb-dev/plumb/shared/testing/testenv"
	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
)

// irsaEnv gives the process the environment of a pod with IAM Roles for Service Accounts, the
// SDK's endpoints pointing at the loopback STS and ECR; nothing of the machine's is read.
func irsaEnv(t *testing.T, aws *cloudtest.AWS) {
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("projected-sa-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		"HOME": dir, "AWS_CONFIG_FILE": filepath.Join(dir, "config"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials"),
		"AWS_CA_BUNDLE": "", "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "", "AWS_PROFILE": "",
		"AWS_ENDPOINT_URL": "", "AWS_EC2_METADATA_DISABLED": "true", "AWS_REGION": "us-east-1",
		"AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/plumb-source", "AWS_WEB_IDENTITY_TOKEN_FILE": token,
		"AWS_ENDPOINT_URL_STS": aws.URL, "AWS_ENDPOINT_URL_ECR": aws.URL,
	} {
		t.Setenv(k, v)
		if v == "" {
			_ = os.Unsetenv(k)
		}
	}
}

// An OCIRepository with provider aws reaches Ready with the token ECR issued to the
// controller's IRSA identity, from a docker-registry reached by its ECR name; a refused
// exchange is AuthenticationFailed naming the provider; a registry that is not ECR stalls.
func TestOCIRepository_ProviderAWS(t *testing.T) {
	g := NewWithT(t)
	const ecrHost = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
	aws := cloudtest.NewAWS(t, "ecr-issued-password")
	irsaEnv(t, aws)
	reg, err := ocitest.StartDistribution(t.TempDir(), "AWS", aws.Password)
	if errors.Is(err, ocitest.ErrNoDistribution) {
		testenv.MissingTool(t, "docker-registry", err)
	}
	g.Expect(err).NotTo(HaveOccurred())
	defer reg.Stop()
	digest := pushFiles(t, reg.Host, "team/app", "v1.0.0", map[string]string{"deploy/cm.yaml": "kind: ConfigMap\n"},
		remote.WithAuth(&authn.Basic{Username: "AWS", Password: aws.Password}))
	p := cloudtest.NewProxy(t)
	p.Route(ecrHost+":80", reg.Host)
	ns := newNamespace(t)
	proxyRef := &meta.LocalObjectReference{Name: credentialsSecret(t, ns, map[string]string{"address": p.URL.String()})}

	obj := newOCIRepository(ns, "oci://"+ecrHost+"/team/app", func(o *sourcev1.OCIRepository) {
		o.Spec.Provider = "aws"
		o.Spec.Insecure = true
		o.Spec.ProxySecretRef = proxyRef
		o.Spec.Ref = &sourcev1.OCIRepositoryRef{Tag: "v1.0.0"}
	})
	create(g, obj)
	waitReady(g, obj, "v1.0.0@"+digest)
	g.Expect(files(g, obj.Status.Artifact)).To(Equal(map[string]string{"deploy/cm.yaml": "kind: ConfigMap\n"}))
	g.Expect(aws.Rejected()).To(BeEmpty(), "every ECR request was signed right")
	g.Expect(aws.ECRCalls()).To(Equal(1))
	g.Expect(aws.Assumes()).To(HaveLen(1))
	g.Expect(p.Served(ecrHost + ":80")).To(BeNumerically(">", 0))

	// Another region: a new exchange, which ECR refuses.
	aws.Fail("User: arn:aws:sts::123456789012:assumed-role/plumb-source is not authorized to perform: ecr:GetAuthorizationToken")
	refused := newOCIRepository(ns, "oci://123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/app", func(o *sourcev1.OCIRepository) {
		o.Spec.Provider = "aws"
		o.Spec.Insecure = true
		o.Spec.ProxySecretRef = proxyRef
	})
	create(g, refused)
	msg := waitFailed(g, refused, sourcev1.AuthenticationFailedReason)
	g.Expect(msg).To(ContainSubstring("provider aws: getting credentials for 123456789012.dkr.ecr.eu-west-1.amazonaws.com with the controller's identity"))
	g.Expect(msg).To(ContainSubstring("not authorized to perform: ecr:GetAuthorizationToken"))
	g.Expect(msg).NotTo(ContainSubstring("assumed-secret"))
	g.Expect(msg).NotTo(ContainSubstring("projected-sa-token"))

	notECR := newOCIRepository(ns, "oci://"+reg.Host+"/team/app", func(o *sourcev1.OCIRepository) {
		o.Spec.Provider = "aws"
		o.Spec.Insecure = true
	})
	create(g, notECR)
	g.Expect(waitFailed(g, notECR, sourcev1.InvalidSpecReason)).To(ContainSubstring("provider aws: " + reg.Host + " is not an ECR registry"))

	withSA := newOCIRepository(ns, "oci://"+ecrHost+"/team/app", func(o *sourcev1.OCIRepository) {
		o.Spec.Provider = "aws"
		o.Spec.ServiceAccountName = "puller"
	})
	create(g, withSA)
	g.Expect(waitFailed(g, withSA, sourcev1.FeatureGateDisabledReason)).To(ContainSubstring("--feature-gates=ObjectLevelWorkloadIdentity=true"))
}

// objectLevelNamespace holds the objects of the manager whose Cloud has object-level workload
// identity; the package's manager leaves its OCIRepositories alone.
const objectLevelNamespace = "object-level-identity"

// startObjectLevelManager runs an OCIRepositoryReconciler whose Cloud has object-level identity
// (the controller started with --feature-gates=ObjectLevelWorkloadIdentity=true) on the
// OCIRepositories of objectLevelNamespace, until the test ends.
func startObjectLevelManager(t *testing.T) {
	t.Helper()
	g := NewWithT(t)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: objectLevelNamespace}}
	if err := k8s.Create(context.Background(), ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:     env.Scheme,
		Metrics:    metricsserver.Options{BindAddress: "0"},
		Cache:      cache.Options{DefaultNamespaces: map[string]cache.Config{objectLevelNamespace: {}}},
		Client:     client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}, &corev1.ServiceAccount{}}}},
		Controller: config.Controller{SkipNameValidation: ptr(true)},
	})
	g.Expect(err).NotTo(HaveOccurred())
	cloud, err := registry.NewCloud(registry.CloudOptions{ObjectLevel: true})
	g.Expect(err).NotTo(HaveOccurred())
	r := &OCIRepositoryReconciler{
		Client:         mgr.GetClient(),
		Events:         mgr.GetEventRecorder("source-controller"),
		Storage:        store,
		ControllerName: "source-controller",
		Limits:         &ociLimits,
		Cloud:          cloud,
	}
	ctx, cancel := context.WithCancel(context.Background())
	g.Expect(r.SetupWithManager(ctx, mgr, Options{Concurrent: 2})).To(Succeed())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
}

// With object-level identity, an OCIRepository's serviceAccountName is its AWS identity: the
// controller asks the API server for a token of that ServiceAccount (audience sts.amazonaws.com),
// exchanges it at STS for the role its eks.amazonaws.com/role-arn annotation names, and signs
// the ECR request with the keys STS issued. Objects naming the same ServiceAccount share one
// exchange; another ServiceAccount is another exchange; one without the annotation fails
// with a message naming it.
func TestOCIRepository_ProviderAWSObjectLevelIdentity(t *testing.T) {
	g := NewWithT(t)
	const ecrHost = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
	aws := cloudtest.NewAWS(t, "ecr-issued-password")
	irsaEnv(t, aws) // the controller's own identity is there too, and must not be used
	reg, err := ocitest.StartDistribution(t.TempDir(), "AWS", aws.Password)
	if errors.Is(err, ocitest.ErrNoDistribution) {
		testenv.MissingTool(t, "docker-registry", err)
	}
	g.Expect(err).NotTo(HaveOccurred())
	defer reg.Stop()
	digest := pushFiles(t, reg.Host, "team/app", "v1.0.0", map[string]string{"deploy/cm.yaml": "kind: ConfigMap\n"},
		remote.WithAuth(&authn.Basic{Username: "AWS", Password: aws.Password}))
	p := cloudtest.NewProxy(t)
	p.Route(ecrHost+":80", reg.Host)
	startObjectLevelManager(t)
	ns := objectLevelNamespace
	proxyRef := &meta.LocalObjectReference{Name: credentialsSecret(t, ns, map[string]string{"address": p.URL.String()})}

	serviceAccount := func(name, roleARN string) {
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
		if roleARN != "" {
			sa.Annotations = map[string]string{"eks.amazonaws.com/role-arn": roleARN}
		}
		create(g, sa)
	}
	const pullerRole, otherRole = "arn:aws:iam::123456789012:role/team-puller", "arn:aws:iam::123456789012:role/other-puller"
	serviceAccount("puller", pullerRole)
	serviceAccount("other", otherRole)
	serviceAccount("bare", "")
	withSA := func(sa string) *sourcev1.OCIRepository {
		return newOCIRepository(ns, "oci://"+ecrHost+"/team/app", func(o *sourcev1.OCIRepository) {
			o.Spec.Provider = "aws"
			o.Spec.ServiceAccountName = sa
			o.Spec.ProxySecretRef = proxyRef
			o.Spec.Ref = &sourcev1.OCIRepositoryRef{Tag: "v1.0.0"}
		})
	}

	// Two objects of ServiceAccount puller: one token request, one exchange, one ECR token.
	a, b := withSA("puller"), withSA("puller")
	create(g, a)
	waitReady(g, a, "v1.0.0@"+digest)
	create(g, b)
	waitReady(g, b, "v1.0.0@"+digest)
	g.Expect(files(g, b.Status.Artifact)).To(Equal(map[string]string{"deploy/cm.yaml": "kind: ConfigMap\n"}))
	assumes := aws.Assumes()
	g.Expect(assumes).To(HaveLen(1), "one exchange for both objects of the ServiceAccount")
	g.Expect(assumes[0].Get("RoleArn")).To(Equal(pullerRole))
	g.Expect(assumes[0].Get("RoleSessionName")).To(Equal("puller." + ns + ".us-east-1.fluxcd.io"))
	g.Expect(assumes[0].Get("WebIdentityToken")).NotTo(Equal("projected-sa-token"), "not the controller's own token")
	claims, err := cloudtest.JWTClaims(assumes[0].Get("WebIdentityToken"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(claims["sub"]).To(Equal("system:serviceaccount:" + ns + ":puller"))
	g.Expect(claims["aud"]).To(ConsistOf("sts.amazonaws.com"))
	g.Expect(aws.ECRCalls()).To(Equal(1))
	g.Expect(aws.Rejected()).To(BeEmpty(), "ECR requests were signed with the keys STS issued")

	// Another ServiceAccount: its own token and exchange.
	c := withSA("other")
	create(g, c)
	waitReady(g, c, "v1.0.0@"+digest)
	assumes = aws.Assumes()
	g.Expect(assumes).To(HaveLen(2))
	g.Expect(assumes[1].Get("RoleArn")).To(Equal(otherRole))
	claims, err = cloudtest.JWTClaims(assumes[1].Get("WebIdentityToken"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(claims["sub"]).To(Equal("system:serviceaccount:" + ns + ":other"))
	g.Expect(aws.ECRCalls()).To(Equal(2))

	// A ServiceAccount without the annotation names no role: no exchange, a message naming it.
	bare := withSA("bare")
	create(g, bare)
	msg := waitFailed(g, bare, sourcev1.AuthenticationFailedReason)
	g.Expect(msg).To(ContainSubstring("provider aws: getting credentials for " + ecrHost + " as ServiceAccount " + ns + "/bare"))
	g.Expect(msg).To(ContainSubstring("eks.amazonaws.com/role-arn annotation"))
	g.Expect(aws.Assumes()).To(HaveLen(2))

	// A ServiceAccount that does not exist.
	missing := withSA("nobody")
	create(g, missing)
	g.Expect(waitFailed(g, missing, sourcev1.AuthenticationFailedReason)).To(ContainSubstring("nobody"))
}
