package controller

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
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
	plumbreconcile "github.com/plumb-dev/plumb/shared/reconcile"
	"github.com/plumb-dev/plumb/shared/testing/ocitest"
	"github.com/plumb-dev/plumb/shared/testing/testenv"
)

func imageRepository(ns, name, image string) *imagev1.ImageRepository {
	return &imagev1.ImageRepository{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: imagev1.ImageRepositorySpec{Image: image, Interval: metav1.Duration{Duration: time.Hour}, Insecure: true}}
}

// requestReconcile sets the reconcile request annotation, as `plumb reconcile` does.
func requestReconcile(g Gomega, obj client.Object) {
	g.Expect(k8s.Patch(context.Background(), obj, plumbreconcile.RequestPatch(time.Now().Format(time.RFC3339Nano)))).To(Succeed())
}

func TestImageRepository_ScansAndExcludes(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, nil)
	image := newImage()
	pushTags(t, image, "1.0.0", "1.1.0", "sha256-abc.sig", "1.1.0.att")
	repo := imageRepository(ns, "app", image)
	g.Expect(k8s.Create(ctx, repo)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(repo), repo)).To(Succeed())
		g.Expect(conditions.IsReady(repo)).To(BeTrue(), conditions.GetMessage(repo, meta.ReadyCondition))
		g.Expect(repo.Status.LastScanResult).NotTo(BeNil())
		g.Expect(repo.Status.LastScanResult.TagCount).To(Equal(2), "signature and attestation tags are left out by default")
		g.Expect(repo.Status.LastScanResult.LatestTags).To(Equal([]string{"1.1.0", "1.0.0"}))
		g.Expect(repo.Status.CanonicalImageName).To(Equal(image))
		g.Expect(repo.Status.ObservedGeneration).To(Equal(repo.Generation))
	}, timeout, 100*time.Millisecond).Should(Succeed())

	// The interval is an hour: a new tag shows only after a requested scan.
	pushTags(t, image, "1.2.0")
	requestReconcile(g, repo)
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(repo), repo)).To(Succeed())
		g.Expect(repo.Status.LastScanResult.TagCount).To(Equal(3))
		g.Expect(repo.Status.LastScanResult.LatestTags[0]).To(Equal("1.2.0"))
	}, timeout, 100*time.Millisecond).Should(Succeed())

	// An exclusion list of its own replaces the default one.
	repo.Spec.ExclusionList = []string{"^none$"}
	g.Expect(k8s.Update(ctx, repo)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(repo), repo)).To(Succeed())
		g.Expect(repo.Status.LastScanResult.TagCount).To(Equal(5))
	}, timeout, 100*time.Millisecond).Should(Succeed())
}

func TestImageRepository_BadInput(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, nil)
	image := newImage()
	pushTags(t, image, "1.0.0")

	badRegex := imageRepository(ns, "bad-regex", image)
	badRegex.Spec.ExclusionList = []string{"(unclosed"}
	missing := imageRepository(ns, "missing", newImage()) // nothing pushed
	unreachable := imageRepository(ns, "unreachable", "127.0.0.1:1/acme/app")
	noSecret := imageRepository(ns, "no-secret", image)
	noSecret.Spec.SecretRef = &meta.LocalObjectReference{Name: "absent"}
	notJSON := imageRepository(ns, "not-json", image)
	notJSON.Spec.SecretRef = &meta.LocalObjectReference{Name: "not-json"}
	plainHTTP := imageRepository(ns, "plain-http", image)
	plainHTTP.Spec.Insecure = false
	g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "not-json", Namespace: ns},
		Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte("{not json: hunter2")}})).To(Succeed())
	for _, o := range []client.Object{badRegex, missing, unreachable, noSecret, notJSON, plainHTTP} {
		g.Expect(k8s.Create(ctx, o)).To(Succeed())
	}
	expect := func(obj *imagev1.ImageRepository, stalled bool, reason, msg string) {
		t.Helper()
		g.Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(obj), obj)).To(Succeed())
			g.Expect(conditions.IsFalse(obj, meta.ReadyCondition)).To(BeTrue())
			g.Expect(conditions.GetReason(obj, meta.ReadyCondition)).To(Equal(reason))
			g.Expect(conditions.GetMessage(obj, meta.ReadyCondition)).To(ContainSubstring(msg))
			g.Expect(conditions.IsStalled(obj)).To(Equal(stalled))
		}, timeout, 100*time.Millisecond).Should(Succeed(), obj.Name)
		g.Expect(conditions.GetMessage(obj, meta.ReadyCondition)).NotTo(ContainSubstring("hunter2"))
	}
	expect(badRegex, true, imagev1.InvalidSpecReason, `expression "(unclosed"`)
	expect(missing, false, imagev1.ImageNotFoundReason, "registry has no repository")
	expect(unreachable, false, imagev1.ScanFailedReason, "reading repository 127.0.0.1:1/acme/app")
	expect(noSecret, false, imagev1.AuthenticationFailedReason, "Secret "+ns+"/absent not found")
	expect(notJSON, false, imagev1.AuthenticationFailedReason, "not valid JSON")
	expect(plainHTTP, false, imagev1.ScanFailedReason, "insecure")
}

// Against the CNCF distribution registry with htpasswd, as registries in the field are: no
// credentials is a clear refusal; a dockerconfigjson Secret, or a ServiceAccount's image pull
// secret, gets the tags; a policy looks the digest up with the same credentials.
func TestImageRepository_DistributionWithCredentials(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const user, password = "ci", "regi5try-pa55"
	reg, err := ocitest.StartDistribution(t.TempDir(), user, password)
	if errors.Is(err, ocitest.ErrNoDistribution) {
		testenv.MissingTool(t, "docker-registry", err)
	}
	g.Expect(err).NotTo(HaveOccurred())
	defer reg.Stop()
	image := reg.Host + "/team/app"
	auth := remote.WithAuth(authn.FromConfig(authn.AuthConfig{Username: user, Password: password}))
	digests := pushTagsWith(t, image, []remote.Option{auth}, "1.0.0", "1.1.0", "1.1.0.sig")

	ns := newNamespace(t, nil)
	config := fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, reg.Host, base64.StdEncoding.EncodeToString([]byte(user+":"+password)))
	g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "pull", Namespace: ns}, Type: corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(config)}})).To(Succeed())
	g.Expect(k8s.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "puller", Namespace: ns},
		ImagePullSecrets: []corev1.LocalObjectReference{{Name: "pull"}}})).To(Succeed())

	anonymous := imageRepository(ns, "anonymous", image)
	withSecret := imageRepository(ns, "with-secret", image)
	withSecret.Spec.SecretRef = &meta.LocalObjectReference{Name: "pull"}
	withSA := imageRepository(ns, "with-sa", image)
	withSA.Spec.ServiceAccountName = "puller"
	for _, o := range []client.Object{anonymous, withSecret, withSA} {
		g.Expect(k8s.Create(ctx, o)).To(Succeed())
	}
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(anonymous), anonymous)).To(Succeed())
		g.Expect(conditions.GetReason(anonymous, meta.ReadyCondition)).To(Equal(imagev1.AuthenticationFailedReason))
		g.Expect(conditions.GetMessage(anonymous, meta.ReadyCondition)).To(ContainSubstring("registry refused the credentials for repository " + image + " (401)"))
		for _, o := range []*imagev1.ImageRepository{withSecret, withSA} {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(o), o)).To(Succeed())
			g.Expect(conditions.IsReady(o)).To(BeTrue(), conditions.GetMessage(o, meta.ReadyCondition))
			g.Expect(o.Status.LastScanResult.TagCount).To(Equal(2))
		}
	}, timeout, 100*time.Millisecond).Should(Succeed())

	pol := semverPolicy(ns, "app", "", "with-sa", "1.x")
	pol.Spec.DigestReflectionPolicy = imagev1.ReflectAlways
	pol.Spec.Interval = &metav1.Duration{Duration: time.Hour}
	g.Expect(k8s.Create(ctx, pol)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(pol), pol)).To(Succeed())
		g.Expect(conditions.IsReady(pol)).To(BeTrue(), conditions.GetMessage(pol, meta.ReadyCondition))
		g.Expect(pol.Status.LatestRef).To(Equal(&imagev1.ImageRef{Name: image, Tag: "1.1.0", Digest: digests["1.1.0"]}))
	}, timeout, 100*time.Millisecond).Should(Succeed())
	for _, o := range []*imagev1.ImageRepository{anonymous, withSecret} {
		g.Expect(conditions.GetMessage(o, meta.ReadyCondition)).NotTo(ContainSubstring(password))
	}
}
