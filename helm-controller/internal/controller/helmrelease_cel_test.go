package controller

import (
	"context"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	"helm.sh/helm/v3/pkg/chart"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	helmv1 "github.com/plumb-dev/plumb/helm-controller/api/v1beta1"
)

const certGroup = "certs.cel.plumb.dev"

// certificateCRD installs a Certificate-like CRD whose status has neither a Ready condition
// kstatus reads nor an observedGeneration: kstatus calls such an object Current at once.
func certificateCRD(t *testing.T) {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	open := &apiextensionsv1.JSONSchemaProps{Type: "object", XPreserveUnknownFields: ptr(true)}
	crd := &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "certificates." + certGroup},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: certGroup,
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "certificates", Singular: "certificate", Kind: "Certificate", ListKind: "CertificateList"},
			Scope: apiextensionsv1.NamespaceScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: "v1", Served: true, Storage: true,
				Subresources: &apiextensionsv1.CustomResourceSubresources{Status: &apiextensionsv1.CustomResourceSubresourceStatus{}},
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type:       "object",
					Properties: map[string]apiextensionsv1.JSONSchemaProps{"spec": *open, "status": *open},
				}},
			}},
		},
	}
	// The suite's scheme has no CRDs: a client of its own.
	scheme := runtime.NewScheme()
	g.Expect(apiextensionsv1.AddToScheme(scheme)).To(Succeed())
	c, err := client.New(env.Config, client.Options{Scheme: scheme})
	g.Expect(err).NotTo(HaveOccurred())
	if err := c.Create(ctx, crd); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	g.Eventually(func(g Gomega) {
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(crd), crd)).To(Succeed())
		established := false
		for _, c := range crd.Status.Conditions {
			established = established || c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue
		}
		g.Expect(established).To(BeTrue())
	}, timeout, 100*time.Millisecond).Should(Succeed())
}

// certChart renders one Certificate named after the release.
func certChart(version string) *chart.Chart {
	return &chart.Chart{
		Metadata: &chart.Metadata{APIVersion: chart.APIVersionV2, Name: "cert", Version: version},
		Templates: []*chart.File{{Name: "templates/certificate.yaml", Data: []byte(`apiVersion: ` + certGroup + `/v1
kind: Certificate
metadata:
  name: {{ .Release.Name }}
spec:
  secretName: {{ .Release.Name }}-tls
`)}},
	}
}

// certHealth is the cert-manager entry of Flux's healthCheckExprs cheatsheet.
var certHealth = helmv1.CustomHealthCheck{
	APIVersion: certGroup + "/v1",
	Kind:       "Certificate",
	Current:    "status.conditions.filter(e, e.type == 'Ready').all(e, e.status == 'True') && status.conditions.exists(e, e.type == 'Ready')",
	Failed:     "status.conditions.filter(e, e.type == 'Ready').all(e, e.status == 'False') && status.conditions.exists(e, e.type == 'Ready')",
}

// setCertReady waits for the release's Certificate and sets its Ready condition.
func setCertReady(g *WithT, ns, name, ready string) {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion(certGroup + "/v1")
	u.SetKind("Certificate")
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, u)).To(Succeed())
		u.Object["status"] = map[string]any{"conditions": []any{map[string]any{"type": "Ready", "status": ready, "reason": "Test"}}}
		g.Expect(k8s.Status().Update(context.Background(), u)).To(Succeed())
	}, timeout, 100*time.Millisecond).Should(Succeed())
}

// healthCheckExprs judge a custom resource of the release: the install waits until `current`
// is true, and fails at once when `failed` is.
func TestHelmRelease_HealthCheckExprs(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	certificateCRD(t)
	chartSource(t, ns, "cert", certChart("1.0.0"))

	hr := newRelease(ns, "cert", func(hr *helmv1.HelmRelease) {
		hr.Spec.Timeout = &metav1.Duration{Duration: 2 * time.Minute}
		hr.Spec.HealthCheckExprs = []helmv1.CustomHealthCheck{certHealth}
	})
	g.Expect(k8s.Create(ctx, hr)).To(Succeed())
	// The Certificate is made, and the release waits for it: Ready is Unknown while Helm acts.
	g.Eventually(func(g Gomega) {
		getHR(g, hr)
		g.Expect(conditions.GetReason(hr, meta.ReadyCondition)).To(Equal(helmv1.ProgressingReason))
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web"}, &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": certGroup + "/v1", "kind": "Certificate"}})).To(Succeed())
	}, timeout, 100*time.Millisecond).Should(Succeed())
	g.Consistently(func(g Gomega) {
		g.Expect(conditions.IsReady(getHR(g, hr))).To(BeFalse(), "Ready before the Certificate is")
	}, 2*time.Second, 200*time.Millisecond).Should(Succeed())
	setCertReady(g, ns, "web", "True")
	waitReleased(g, hr, "1.0.0")
	// Released, not Ready: the chart source's status update, when its watch delivers it after
	// the HelmRelease was created, queues one more reconcile, which says Succeeded.
	g.Expect(conditions.GetReason(hr, helmv1.ReleasedCondition)).To(Equal(helmv1.InstallSucceededReason))

	// `failed` ends the wait at once, far within the action's timeout of 2m.
	failing := newRelease(ns, "cert", func(hr *helmv1.HelmRelease) {
		hr.Name = "failing"
		hr.Spec.Timeout = &metav1.Duration{Duration: 2 * time.Minute}
		hr.Spec.HealthCheckExprs = []helmv1.CustomHealthCheck{certHealth}
	})
	g.Expect(k8s.Create(ctx, failing)).To(Succeed())
	setCertReady(g, ns, "failing", "False")
	start := time.Now()
	g.Eventually(func(g Gomega) {
		getHR(g, failing)
		g.Expect(conditions.IsFalse(failing, meta.ReadyCondition)).To(BeTrue(), conditions.GetMessage(failing, meta.ReadyCondition))
		g.Expect(conditions.GetMessage(failing, meta.ReadyCondition)).To(ContainSubstring("Certificate"))
	}, 30*time.Second, 100*time.Millisecond).Should(Succeed())
	t.Logf("failed Certificate to Ready=False in %s", time.Since(start).Round(time.Millisecond))
}

// An expression that does not compile stalls the HelmRelease before anything is installed,
// naming the field and the expression.
func TestHelmRelease_InvalidCELExpression(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	chartSource(t, ns, "app", testChart("1.0.0", false))
	cases := []struct {
		name   string
		mutate func(*helmv1.HelmRelease)
		msg    []string
	}{
		{"healthCheckExprs", func(hr *helmv1.HelmRelease) {
			bad := certHealth
			bad.Current = "status.conditions.exists(e, e.type == 'Ready'"
			hr.Spec.HealthCheckExprs = []helmv1.CustomHealthCheck{bad}
		}, []string{"spec.healthCheckExprs[0].current", "Certificate." + certGroup, "status.conditions.exists(e, e.type == 'Ready'"}},
		{"readyExpr", func(hr *helmv1.HelmRelease) {
			hr.Spec.DependsOn = []helmv1.DependencyReference{{Name: "other", ReadyExpr: "dep.status.nope +"}}
		}, []string{"spec.dependsOn[0].readyExpr", "dep.status.nope +"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := NewWithT(t)
			hr := newRelease(ns, "app", c.mutate)
			hr.Name = "bad-" + c.name[:5]
			hr.Spec.ReleaseName = "bad-" + c.name[:5]
			g.Expect(k8s.Create(ctx, hr)).To(Succeed())
			msg := waitReason(g, hr, helmv1.InvalidCELExpressionReason)
			for _, m := range c.msg {
				g.Expect(msg).To(ContainSubstring(m))
			}
			g.Expect(conditions.IsStalled(hr)).To(BeTrue())
			g.Expect(hr.Status.History).To(BeEmpty(), "nothing installed")
		})
	}
}

// A dependsOn readyExpr decides instead of the Ready condition: the dependent goes ahead
// while its dependency is not Ready.
func TestHelmRelease_DependsOnReadyExpr(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	chartSource(t, ns, "app", testChart("1.0.0", false))

	// The dependency never becomes Ready: its chart source does not exist.
	dep := newRelease(ns, "nowhere", func(hr *helmv1.HelmRelease) {
		hr.Name = "database"
		hr.Labels = map[string]string{"tier": "backend"}
	})
	g.Expect(k8s.Create(ctx, dep)).To(Succeed())
	waitReason(g, dep, helmv1.SourceNotReadyReason)

	blocked := newRelease(ns, "app", func(hr *helmv1.HelmRelease) {
		hr.Name = "blocked"
		hr.Labels = map[string]string{"tier": "frontend"}
		hr.Spec.DependsOn = []helmv1.DependencyReference{{Name: "database", ReadyExpr: "dep.metadata.labels['tier'] == self.metadata.labels['tier']"}}
	})
	g.Expect(k8s.Create(ctx, blocked)).To(Succeed())
	g.Expect(waitReason(g, blocked, helmv1.DependencyNotReadyReason)).To(ContainSubstring("database"))

	web := newRelease(ns, "app", func(hr *helmv1.HelmRelease) {
		hr.Labels = map[string]string{"tier": "backend"}
		hr.Spec.DependsOn = []helmv1.DependencyReference{{Name: "database", ReadyExpr: "dep.metadata.labels['tier'] == self.metadata.labels['tier']"}}
	})
	g.Expect(k8s.Create(ctx, web)).To(Succeed())
	waitReleased(g, web, "1.0.0")
	g.Expect(conditions.IsReady(getHR(g, dep))).To(BeFalse(), "the dependency is still not Ready")
}

// upgrade.chartNameChangeStrategy: a chart of another name reinstalls the release (the
// default) or upgrades it in place; persistentClient is accepted either way.
func TestHelmRelease_ChartNameChange(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	src := chartSource(t, ns, "app", testChart("1.0.0", false))
	reinstalled := newRelease(ns, "app", func(hr *helmv1.HelmRelease) { hr.Spec.PersistentClient = ptr(true) })
	inPlace := newRelease(ns, "app", func(hr *helmv1.HelmRelease) {
		hr.Name = "inplace"
		hr.Spec.PersistentClient = ptr(false)
		hr.Spec.Upgrade = &helmv1.Upgrade{ChartNameChangeStrategy: helmv1.ChartNameChangeInPlaceUpdate}
	})
	for _, hr := range []*helmv1.HelmRelease{reinstalled, inPlace} {
		g.Expect(k8s.Create(ctx, hr)).To(Succeed())
		waitReleased(g, hr, "1.0.0")
	}

	renamed := testChart("2.0.0", false)
	renamed.Metadata.Name = "app-renamed"
	publishTo(t, src, renamed)
	for _, c := range []struct {
		hr      *helmv1.HelmRelease
		version int
		reason  string
	}{{reinstalled, 1, helmv1.InstallSucceededReason}, {inPlace, 2, helmv1.UpgradeSucceededReason}} {
		waitReleased(g, c.hr, "2.0.0")
		g.Expect(c.hr.Status.History[0].ChartName).To(Equal("app-renamed"))
		g.Expect(c.hr.Status.History[0].Version).To(Equal(c.version), "%s", c.hr.Name)
		g.Expect(conditions.GetReason(c.hr, meta.ReadyCondition)).To(Equal(c.reason), "%s", c.hr.Name)
	}

	// The schema refuses a strategy Flux does not have.
	bad := newRelease(ns, "app", func(hr *helmv1.HelmRelease) {
		hr.Name = "bad-strategy"
		hr.Spec.Upgrade = &helmv1.Upgrade{ChartNameChangeStrategy: "Replace"}
	})
	err := k8s.Create(ctx, bad)
	g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
	g.Expect(err.Error()).To(ContainSubstring("chartNameChangeStrategy"))
}
