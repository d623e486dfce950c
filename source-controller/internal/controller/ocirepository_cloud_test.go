package controller

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	. "github.com/onsi/gomega"

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
