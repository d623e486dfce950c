package controller

import (
	"context"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	imagev1 "github.com/plumb-dev/plumb/image-automation/api/v1beta1"
	plumbreconcile "github.com/plumb-dev/plumb/shared/reconcile"
)

func semverPolicy(ns, name, repoNS, repo, rng string) *imagev1.ImagePolicy {
	return &imagev1.ImagePolicy{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: imagev1.ImagePolicySpec{ImageRepositoryRef: meta.NamespacedObjectReference{Name: repo, Namespace: repoNS},
			Policy: imagev1.ImagePolicyChoice{SemVer: &imagev1.SemVerPolicy{Range: rng}}}}
}

func TestImagePolicy_ChoosesAndFollows(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, nil)
	image := newImage()
	digests := pushTags(t, image, "v1.0.0", "1.1.0", "1.2.0-rc.1", "2.0.0", "latest")
	repo := imageRepository(ns, "app", image)
	g.Expect(k8s.Create(ctx, repo)).To(Succeed())

	pol := semverPolicy(ns, "app", "", "app", ">=1.0.0 <2.0.0")
	pol.Spec.DigestReflectionPolicy = imagev1.ReflectIfNotPresent
	g.Expect(k8s.Create(ctx, pol)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(pol), pol)).To(Succeed())
		g.Expect(conditions.IsReady(pol)).To(BeTrue(), conditions.GetMessage(pol, meta.ReadyCondition))
		g.Expect(pol.Status.LatestRef).To(Equal(&imagev1.ImageRef{Name: image, Tag: "1.1.0", Digest: digests["1.1.0"]}))
	}, timeout, 100*time.Millisecond).Should(Succeed())

	// A new tag in range: the repository's next scan moves the policy (no interval of its own).
	more := pushTags(t, image, "1.3.0")
	requestReconcile(g, repo)
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(pol), pol)).To(Succeed())
		g.Expect(pol.Status.LatestRef).To(Equal(&imagev1.ImageRef{Name: image, Tag: "1.3.0", Digest: more["1.3.0"]}))
		g.Expect(pol.Status.ObservedPreviousRef).To(Equal(&imagev1.ImageRef{Name: image, Tag: "1.1.0", Digest: digests["1.1.0"]}))
	}, timeout, 100*time.Millisecond).Should(Succeed())
}

func TestImagePolicy_BadInput(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, nil)
	other := newNamespace(t, map[string]string{"team": "apps"})
	image := newImage()
	pushTags(t, image, "1.0.0", "1.1.0", "3.0.0-rc.1")
	g.Expect(k8s.Create(ctx, imageRepository(ns, "app", image))).To(Succeed())
	shared := imageRepository(ns, "shared", image)
	shared.Spec.AccessFrom = &imagev1.AccessFrom{NamespaceSelectors: []imagev1.NamespaceSelector{{MatchLabels: map[string]string{"team": "apps"}}}}
	g.Expect(k8s.Create(ctx, shared)).To(Succeed())

	badRange := semverPolicy(ns, "bad-range", "", "app", ">= one")
	noMatch := semverPolicy(ns, "no-match", "", "app", ">=2.0.0")
	noRepo := semverPolicy(ns, "no-repo", "", "absent", "*")
	denied := semverPolicy(other, "denied", ns, "app", "*")
	granted := semverPolicy(other, "granted", ns, "shared", "*")
	badFilter := semverPolicy(ns, "bad-filter", "", "app", "*")
	badFilter.Spec.FilterTags = &imagev1.TagFilter{Pattern: "^(?P<v>.*)$", Extract: "$nope"}
	for _, o := range []client.Object{badRange, noMatch, noRepo, denied, granted, badFilter} {
		g.Expect(k8s.Create(ctx, o)).To(Succeed())
	}
	expect := func(obj *imagev1.ImagePolicy, stalled bool, reason, msg string) {
		t.Helper()
		g.Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(obj), obj)).To(Succeed())
			g.Expect(conditions.IsFalse(obj, meta.ReadyCondition)).To(BeTrue())
			g.Expect(conditions.GetReason(obj, meta.ReadyCondition)).To(Equal(reason))
			g.Expect(conditions.GetMessage(obj, meta.ReadyCondition)).To(ContainSubstring(msg))
			g.Expect(conditions.IsStalled(obj)).To(Equal(stalled))
		}, timeout, 100*time.Millisecond).Should(Succeed(), obj.Name)
	}
	expect(badRange, true, imagev1.InvalidSpecReason, ">= one")
	expect(badFilter, true, imagev1.InvalidSpecReason, "nope")
	expect(noMatch, false, imagev1.NoMatchingTagReason, "1.1.0")
	expect(noRepo, false, imagev1.DependencyNotReadyReason, "ImageRepository "+ns+"/absent not found")
	expect(denied, false, imagev1.AccessDeniedReason, "does not grant namespace "+other)
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(granted), granted)).To(Succeed())
		g.Expect(conditions.IsReady(granted)).To(BeTrue(), conditions.GetMessage(granted, meta.ReadyCondition))
		g.Expect(granted.Status.LatestRef.Tag).To(Equal("1.1.0"))
	}, timeout, 100*time.Millisecond).Should(Succeed())
}

// A suspended policy keeps its latestRef while the repository's tags move, and follows them
// again once resumed.
func TestImagePolicy_Suspend(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, nil)
	image := newImage()
	pushTags(t, image, "1.0.0", "1.1.0")
	repo := imageRepository(ns, "app", image)
	g.Expect(k8s.Create(ctx, repo)).To(Succeed())
	pol := semverPolicy(ns, "app", "", "app", "1.x")
	g.Expect(k8s.Create(ctx, pol)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(pol), pol)).To(Succeed())
		g.Expect(pol.Status.LatestRef).NotTo(BeNil())
		g.Expect(pol.Status.LatestRef.Tag).To(Equal("1.1.0"))
	}, timeout, 100*time.Millisecond).Should(Succeed())

	// handled waits until the policy's reconcile has seen a request made after the change.
	handled := func() {
		t.Helper()
		v := time.Now().Format(time.RFC3339Nano)
		g.Expect(k8s.Patch(ctx, pol, plumbreconcile.RequestPatch(v))).To(Succeed())
		g.Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(pol), pol)).To(Succeed())
			g.Expect(pol.Status.LastHandledReconcileAt).To(Equal(v))
		}, timeout, 100*time.Millisecond).Should(Succeed())
	}
	g.Expect(k8s.Patch(ctx, pol, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"suspend":true}}`)))).To(Succeed())
	handled()
	pushTags(t, image, "1.2.0")
	requestReconcile(g, repo)
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(repo), repo)).To(Succeed())
		g.Expect(repo.Status.LastScanResult.TagCount).To(Equal(3))
	}, timeout, 100*time.Millisecond).Should(Succeed())
	handled()
	g.Expect(pol.Status.LatestRef.Tag).To(Equal("1.1.0"), "a suspended policy was evaluated")
	g.Expect(conditions.IsReady(pol)).To(BeTrue(), "a suspended policy lost its status")

	g.Expect(k8s.Patch(ctx, pol, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"suspend":false}}`)))).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(pol), pol)).To(Succeed())
		g.Expect(pol.Status.LatestRef.Tag).To(Equal("1.2.0"))
	}, timeout, 100*time.Millisecond).Should(Succeed())
}
