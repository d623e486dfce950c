//go:build e2e

package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	helmv1 "github.com/plumb-dev/plumb/helm-controller/api/v1beta1"
	"github.com/plumb-dev/plumb/shared/cosign"
	"github.com/plumb-dev/plumb/shared/reconcile"
	"github.com/plumb-dev/plumb/shared/testing/ocitest"
	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
)

// A signed chart through the built controllers: a HelmRelease's chart.spec.verify reaches the
// HelmChart it creates, whose cosign signature is verified before the chart is packaged and
// released. A new, unsigned chart version in the range is refused and the release is not
// upgraded; once signed, it is.
func TestVerifiedOCIChartToCluster(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	c := bed.Env.Client
	defer dumpLogs(t)
	reg := ocitest.NewRegistry(nil)
	defer reg.Close()
	key, err := cosign.NewKey()
	g.Expect(err).NotTo(HaveOccurred())
	repo := reg.Host + "/charts/web"
	signed := pushOCIChart(g, t, reg.Host, "1.0.0")
	g.Expect(cosign.Sign(repo, signed, []cosign.Signature{{Key: key.Private}})).To(Succeed())

	const ns = "verify-helm"
	newVerifyNamespace(g, ns, map[string][]byte{"cosign.pub": key.PublicPEM()})
	g.Expect(c.Create(ctx, &sourcev1.HelmRepository{ObjectMeta: metav1.ObjectMeta{Name: "charts", Namespace: ns},
		Spec: sourcev1.HelmRepositorySpec{Type: sourcev1.HelmRepositoryTypeOCI, URL: "oci://" + reg.Host + "/charts", Insecure: true,
			Interval: metav1.Duration{Duration: time.Hour}}})).To(Succeed())
	hr := &helmv1.HelmRelease{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: helmv1.HelmReleaseSpec{
			Chart: &helmv1.HelmChartTemplate{Spec: helmv1.HelmChartTemplateSpec{Chart: "web", Version: "1.x",
				SourceRef: helmv1.LocalChartSourceReference{Kind: sourcev1.HelmRepositoryKind, Name: "charts"},
				Verify:    &helmv1.HelmChartTemplateVerification{Provider: "cosign", SecretRef: trust}}},
			Interval: metav1.Duration{Duration: time.Hour},
		}}
	g.Expect(c.Create(ctx, hr)).To(Succeed())
	released := func(g Gomega, version string) {
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(hr), hr)).To(Succeed())
		g.Expect(hr.Status.History).NotTo(BeEmpty())
		g.Expect(hr.Status.History[0].ChartVersion).To(Equal(version))
		cm := &corev1.ConfigMap{}
		g.Expect(c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web"}, cm)).To(Succeed())
		g.Expect(cm.Data).To(HaveKeyWithValue("version", version))
	}
	g.Eventually(func(g Gomega) {
		released(g, "1.0.0")
		g.Expect(conditions.IsReady(hr)).To(BeTrue(), "Ready: %s", conditions.GetMessage(hr, meta.ReadyCondition))
	}, timeout, 200*time.Millisecond).Should(Succeed())
	chart := &sourcev1.HelmChart{}
	namespace, name, _ := strings.Cut(hr.Status.HelmChart, "/")
	g.Expect(c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, chart)).To(Succeed())
	g.Expect(waitVerified(g, chart)).To(HavePrefix("verified signature of revision 1.0.0@" + signed + " by cosign key cosign.pub"))

	// 1.1.0, unsigned, is in the range: the HelmChart refuses it and keeps serving 1.0.0.
	unsigned := pushOCIChart(g, t, reg.Host, "1.1.0")
	request(g, chart)
	waitRefused(g, chart, sourcev1.VerificationErrorReason, "no cosign signature of "+unsigned)
	g.Expect(chart.Status.Artifact.Revision).To(Equal("1.0.0"), "the last verified chart stays served")

	// The HelmRelease, asked to reconcile, waits for its chart and does not upgrade; its
	// unchanged template does not rewrite the HelmChart.
	request(g, hr)
	g.Eventually(func(g Gomega) {
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(hr), hr)).To(Succeed())
		g.Expect(hr.Status.LastHandledReconcileAt).NotTo(BeEmpty())
		g.Expect(hr.Annotations).To(HaveKeyWithValue(reconcile.RequestedAtAnnotation, hr.Status.LastHandledReconcileAt))
	}, timeout, 200*time.Millisecond).Should(Succeed())
	g.Expect(conditions.GetReason(hr, meta.ReadyCondition)).To(Equal(helmv1.SourceNotReadyReason), "Ready: %s", conditions.GetMessage(hr, meta.ReadyCondition))
	released(g, "1.0.0")
	g.Expect(c.Get(ctx, client.ObjectKeyFromObject(chart), chart)).To(Succeed())
	g.Expect(chart.Generation).To(Equal(int64(1)), "spec.verify passed through compares equal")

	// Signed afterwards (as a release pipeline would): released.
	g.Expect(cosign.Sign(repo, unsigned, []cosign.Signature{{Key: key.Private}})).To(Succeed())
	request(g, chart)
	g.Eventually(func(g Gomega) { released(g, "1.1.0") }, timeout, 200*time.Millisecond).Should(Succeed())
}
