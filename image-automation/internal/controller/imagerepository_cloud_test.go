package controller

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	imagev1 "github.com/plumb-dev/plumb/image-automation/api/v1beta1"
	"github.com/plumb-dev/plumb/shared/testing/cloudtest"
	"github.com/plumb-dev/plumb/shared/testing/ocitest"
	"github.com/plumb-dev/plumb/shared/testing/testenv"
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
		"AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/plumb-image", "AWS_WEB_IDENTITY_TOKEN_FILE": token,
		"AWS_ENDPOINT_URL_STS": aws.URL, "AWS_ENDPOINT_URL_ECR": aws.URL,
	} {
		t.Setenv(k, v)
		if v == "" {
			_ = os.Unsetenv(k)
		}
	}
}

// An ImageRepository with provider aws scans the tags of a docker-registry reached by its ECR
// name with the token ECR issued to the controller's IRSA identity, and an ImagePolicy looks the
// digest up with the same token (no second exchange). serviceAccountName without the feature
// gate stalls with a message naming the flag.
func TestImageRepository_ProviderAWS(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const ecrHost = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
	aws := cloudtest.NewAWS(t, "ecr-issued-password")
	irsaEnv(t, aws)
	reg, err := ocitest.StartDistribution(t.TempDir(), "AWS", aws.Password)
	if errors.Is(err, ocitest.ErrNoDistribution) {
		testenv.MissingTool(t, "docker-registry", err)
	}
	g.Expect(err).NotTo(HaveOccurred())
	defer reg.Stop()
	digests := pushTagsWith(t, reg.Host+"/team/app", []remote.Option{remote.WithAuth(&authn.Basic{Username: "AWS", Password: aws.Password})},
		"1.0.0", "1.1.0", "1.1.0.sig")
	p := cloudtest.NewProxy(t)
	p.Route(ecrHost+":80", reg.Host)
	ns := newNamespace(t, nil)
	g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "proxy", Namespace: ns},
		StringData: map[string]string{"address": p.URL.String()}})).To(Succeed())

	image := ecrHost + "/team/app"
	repo := imageRepository(ns, "app", image)
	repo.Spec.Provider = "aws"
	repo.Spec.ProxySecretRef = &meta.LocalObjectReference{Name: "proxy"}
	g.Expect(k8s.Create(ctx, repo)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(repo), repo)).To(Succeed())
		g.Expect(conditions.IsReady(repo)).To(BeTrue(), conditions.GetMessage(repo, meta.ReadyCondition))
		g.Expect(repo.Status.LastScanResult).NotTo(BeNil())
		g.Expect(repo.Status.LastScanResult.LatestTags).To(Equal([]string{"1.1.0", "1.0.0"}))
		g.Expect(repo.Status.CanonicalImageName).To(Equal(image))
	}, timeout, 100*time.Millisecond).Should(Succeed())
	g.Expect(aws.Rejected()).To(BeEmpty(), "every ECR request was signed right")
	assumes := aws.Assumes()
	g.Expect(assumes).To(HaveLen(1))
	g.Expect(assumes[0].Get("RoleArn")).To(Equal("arn:aws:iam::123456789012:role/plumb-image"))
	g.Expect(assumes[0].Get("WebIdentityToken")).To(Equal("projected-sa-token"))
	g.Expect(aws.ECRCalls()).To(Equal(1))
	g.Expect(p.Served(ecrHost+":80")).To(BeNumerically(">", 0), "the registry was reached by its ECR name")

	pol := semverPolicy(ns, "app", "", "app", "1.x")
	pol.Spec.DigestReflectionPolicy = imagev1.ReflectAlways
	pol.Spec.Interval = &metav1.Duration{Duration: time.Hour}
	g.Expect(k8s.Create(ctx, pol)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(pol), pol)).To(Succeed())
		g.Expect(conditions.IsReady(pol)).To(BeTrue(), conditions.GetMessage(pol, meta.ReadyCondition))
		g.Expect(pol.Status.LatestRef).To(Equal(&imagev1.ImageRef{Name: image, Tag: "1.1.0", Digest: digests["1.1.0"]}))
	}, timeout, 100*time.Millisecond).Should(Succeed())
	g.Expect(aws.ECRCalls()).To(Equal(1), "the digest look-up used the scan's token")

	// Without the provider the registry refuses the scan.
	anonymous := imageRepository(ns, "anonymous", image)
	anonymous.Spec.ProxySecretRef = repo.Spec.ProxySecretRef
	withSA := imageRepository(ns, "with-sa", image)
	withSA.Spec.Provider = "aws"
	withSA.Spec.ServiceAccountName = "puller"
	for _, o := range []client.Object{anonymous, withSA} {
		g.Expect(k8s.Create(ctx, o)).To(Succeed())
	}
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(anonymous), anonymous)).To(Succeed())
		g.Expect(conditions.GetReason(anonymous, meta.ReadyCondition)).To(Equal(imagev1.AuthenticationFailedReason))
		g.Expect(conditions.GetMessage(anonymous, meta.ReadyCondition)).To(ContainSubstring("registry refused the credentials for repository " + image + " (401)"))
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(withSA), withSA)).To(Succeed())
		g.Expect(conditions.GetReason(withSA, meta.ReadyCondition)).To(Equal(imagev1.FeatureGateDisabledReason))
		g.Expect(conditions.IsStalled(withSA)).To(BeTrue())
		g.Expect(conditions.GetMessage(withSA, meta.ReadyCondition)).To(ContainSubstring("--feature-gates=ObjectLevelWorkloadIdentity=true"))
	}, timeout, 100*time.Millisecond).Should(Succeed())
}
