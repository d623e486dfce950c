package controller

import (
	"errors"
	"os"
	"testing"

	"github.com/fluxcd/pkg/apis/meta"
	. "github.com/onsi/gomega"
	"helm.sh/helm/v3/pkg/registry"

	"github.com/plumb-dev/plumb/shared/testing/cloudtest"
	"github.com/plumb-dev/plumb/shared/testing/ocitest"
	"github.com/plumb-dev/plumb/shared/testing/testenv"
	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
)

// gkeEnv gives the process the environment of a GKE pod with workload identity: the metadata
// server is the loopback one; no gcloud configuration or key file of the machine's is read.
func gkeEnv(t *testing.T, gcp *cloudtest.GCP) {
	dir := t.TempDir()
	for k, v := range map[string]string{
		"HOME": dir, "CLOUDSDK_CONFIG": dir, "GOOGLE_APPLICATION_CREDENTIALS": "", "GCE_METADATA_HOST": gcp.Host,
	} {
		t.Setenv(k, v)
		if v == "" {
			_ = os.Unsetenv(k)
		}
	}
}

// A HelmChart of an OCI HelmRepository with provider gcp pulls its chart from a docker-registry
// (reached by its Artifact Registry name) with the metadata server's access token as the
// password of oauth2accesstoken; a second HelmChart of the repository costs no second token.
func TestHelmChart_FromOCIHelmRepositoryProviderGCP(t *testing.T) {
	g := NewWithT(t)
	const gar = "europe-docker.pkg.dev"
	gcp := cloudtest.NewGCP(t, "ya29.metadata-token")
	gkeEnv(t, gcp)
	reg, err := ocitest.StartDistribution(t.TempDir(), "oauth2accesstoken", gcp.Token)
	if errors.Is(err, ocitest.ErrNoDistribution) {
		testenv.MissingTool(t, "docker-registry", err)
	}
	g.Expect(err).NotTo(HaveOccurred())
	defer reg.Stop()
	pushChartWith(t, []registry.ClientOption{registry.ClientOptBasicAuth("oauth2accesstoken", gcp.Token)},
		reg.Host+"/team/charts/web", "1.0.0", "1.1.0")
	p := cloudtest.NewProxy(t)
	p.Route(gar+":80", reg.Host)
	ns := newNamespace(t)

	repo := newHelmRepository(ns, "oci://"+gar+"/team/charts", "")
	repo.Spec.Type = sourcev1.HelmRepositoryTypeOCI
	repo.Spec.Provider = "gcp"
	repo.Spec.Insecure = true // the docker-registry speaks plain HTTP
	repo.Spec.ProxySecretRef = &meta.LocalObjectReference{Name: credentialsSecret(t, ns, map[string]string{"address": p.URL.String()})}
	create(g, repo)

	anyMinor := newHelmChart(ns, "web", sourcev1.HelmRepositoryKind, repo.Name, func(c *sourcev1.HelmChart) { c.Spec.Version = "1.x" })
	create(g, anyMinor)
	waitReady(g, anyMinor, "1.1.0")
	g.Expect(loadChart(g, anyMinor.Status.Artifact).Metadata.Version).To(Equal("1.1.0"))
	exact := newHelmChart(ns, "web", sourcev1.HelmRepositoryKind, repo.Name, func(c *sourcev1.HelmChart) { c.Spec.Version = "1.0.0" })
	create(g, exact)
	waitReady(g, exact, "1.0.0")
	g.Expect(gcp.Issued()).To(Equal(1), "one access token for both charts")
	g.Expect(gcp.Other()).To(BeEmpty())
	g.Expect(p.Served(gar+":80")).To(BeNumerically(">", 0), "the registry was reached by its Artifact Registry name")

	// Without the provider the registry refuses the anonymous pull.
	anonymous := newHelmRepository(ns, "oci://"+gar+"/team/charts", "")
	anonymous.Spec.Type = sourcev1.HelmRepositoryTypeOCI
	anonymous.Spec.Insecure = true
	anonymous.Spec.ProxySecretRef = repo.Spec.ProxySecretRef
	create(g, anonymous)
	refused := newHelmChart(ns, "web", sourcev1.HelmRepositoryKind, anonymous.Name, func(c *sourcev1.HelmChart) { c.Spec.Version = "1.0.0" })
	create(g, refused)
	g.Expect(waitFailed(g, refused, sourcev1.AuthenticationFailedReason)).NotTo(ContainSubstring(gcp.Token))
}
