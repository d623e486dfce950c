package controller

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	"helm.sh/helm/v3/pkg/chart"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	helmv1 "github.com/plumb-dev/plumb/helm-controller/api/v1beta1"
)

// A valuesFrom Secret value that the API server refuses comes back in its error quoted, with
// its quote and newline escaped: no form of it may reach status or events.
func TestHelmRelease_QuotedSecretValuesStayOutOfMessages(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	const value = "Quo\"ted-s3cret\nsecond-line-of-it"
	labeled := testChart("1.0.0", false)
	labeled.Templates = append(labeled.Templates, &chart.File{Name: "templates/labeled.yaml",
		Data: []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: labeled\n  labels:\n    tier: {{ .Values.tier | quote }}\n")})
	chartSource(t, ns, "labeled", labeled)
	g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "creds", Namespace: ns},
		StringData: map[string]string{"values.yaml": "tier: " + strconv.Quote(value) + "\n"}})).To(Succeed())
	hr := newRelease(ns, "labeled", func(hr *helmv1.HelmRelease) {
		hr.Spec.ValuesFrom = []helmv1.ValuesReference{{Kind: "Secret", Name: "creds"}}
	})
	g.Expect(k8s.Create(ctx, hr)).To(Succeed())
	msg := waitReason(g, hr, helmv1.RetriesExhaustedReason)

	quoted := strconv.Quote(value)
	forms := []string{value, quoted[1 : len(quoted)-1], "Quo\\\"ted-s3cret", "second-line-of-it", "s3cret"}
	texts := []string{msg, conditions.GetMessage(hr, helmv1.ReleasedCondition), conditions.GetMessage(hr, meta.ReadyCondition)}
	var events corev1.EventList
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.List(ctx, &events, client.InNamespace(ns))).To(Succeed())
		g.Expect(events.Items).To(ContainElement(HaveField("Type", corev1.EventTypeWarning)))
	}, timeout, 100*time.Millisecond).Should(Succeed())
	for _, e := range events.Items {
		texts = append(texts, e.Message)
	}
	for _, text := range texts {
		for _, f := range forms {
			g.Expect(text).NotTo(ContainSubstring(f))
		}
	}
}

// A dependsOn or chartRef naming a kind that did not opt in (a Secret, a ConfigMap) stalls the
// release before anything is read or watched.
func TestHelmRelease_SecretReferencesAreRefused(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "x", Namespace: ns}})).To(Succeed())
	dep := newRelease(ns, "app", func(hr *helmv1.HelmRelease) {
		hr.Spec.DependsOn = []helmv1.DependencyReference{{APIVersion: "v1", Kind: "Secret", Name: "x"}}
	})
	g.Expect(k8s.Create(ctx, dep)).To(Succeed())
	g.Expect(waitReason(g, dep, helmv1.InvalidSpecReason)).To(ContainSubstring("spec.dependsOn Secret " + ns + "/x"))
	g.Expect(conditions.IsStalled(dep)).To(BeTrue())

	src := newRelease(ns, "x", func(hr *helmv1.HelmRelease) {
		hr.Name = "from-configmap"
		hr.Spec.ChartRef.APIVersion, hr.Spec.ChartRef.Kind = "v1", "ConfigMap"
	})
	g.Expect(k8s.Create(ctx, src)).To(Succeed())
	g.Expect(waitReason(g, src, helmv1.InvalidSpecReason)).To(ContainSubstring("spec.chartRef"))
	for _, gk := range reconciler.watches.Kinds() {
		g.Expect(gk.Group).To(HaveSuffix("plumb.dev"), "watched %s", gk)
	}
}
