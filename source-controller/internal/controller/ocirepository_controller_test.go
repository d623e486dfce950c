package controller

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/plumb-dev/plumb/shared/testing/ocitest"
	"github.com/plumb-dev/plumb/shared/testing/testenv"
	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
)

const (
	ociUser     = "puller"
	ociPassword = "0ci-pa55word"
)

// registryCounts counts the requests a registry answered, by kind.
type registryCounts struct{ manifestGets, blobGets, heads atomic.Int64 }

func (c *registryCounts) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodHead && strings.Contains(r.URL.Path, "/manifests/"):
			c.heads.Add(1)
		case r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/manifests/"):
			c.manifestGets.Add(1)
		case r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/"):
			c.blobGets.Add(1)
		}
		next.ServeHTTP(w, r)
	})
}

// requireAuth answers 401 with a Basic challenge unless the request carries the test
// credentials.
func requireAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != ociUser || p != ociPassword {
			w.Header().Set("WWW-Authenticate", `Basic realm="plumb-test"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func newRegistry(t *testing.T, wrap func(http.Handler) http.Handler) *ocitest.Registry {
	t.Helper()
	r := ocitest.NewRegistry(wrap)
	t.Cleanup(r.Close)
	return r
}

func pushFiles(t *testing.T, host, repo, tag string, files map[string]string, opts ...remote.Option) string {
	t.Helper()
	d, err := ocitest.Push(host, repo, tag, []ocitest.Layer{{MediaType: ocitest.ContentType, Data: ocitest.Tarball(files)}}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func newOCIRepository(ns, url string, mutate ...func(*sourcev1.OCIRepository)) *sourcev1.OCIRepository {
	obj := &sourcev1.OCIRepository{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "oci-", Namespace: ns},
		Spec:       sourcev1.OCIRepositorySpec{URL: url, Insecure: true, Interval: metav1.Duration{Duration: time.Hour}},
	}
	for _, m := range mutate {
		m(obj)
	}
	return obj
}

func dockerConfigSecret(t *testing.T, ns, host, user, password string) string {
	t.Helper()
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "regcred-", Namespace: ns},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: fmt.Appendf(nil, `{"auths":{%q:{"auth":%q}}}`, host, auth)},
	}
	if err := k8s.Create(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	return s.Name
}

func TestOCIRepository_SemverFollowsNewTagsWithoutPullingTwice(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	counts := &registryCounts{}
	reg := newRegistry(t, counts.wrap)
	d1 := pushFiles(t, reg.Host, "org/app", "v1.0.0", map[string]string{"deploy/cm.yaml": "kind: ConfigMap\n", "notes.md": "x"})
	pushFiles(t, reg.Host, "org/app", "v2.0.0", map[string]string{"deploy/cm.yaml": "kind: Secret\n"})

	obj := newOCIRepository(ns, "oci://"+reg.Host+"/org/app", func(o *sourcev1.OCIRepository) {
		o.Spec.Ref = &sourcev1.OCIRepositoryRef{SemVer: "1.x"}
		o.Spec.Ignore = ptr("*.md\n")
	})
	create(g, obj)
	waitReady(g, obj, "v1.0.0@"+d1)
	g.Expect(files(g, obj.Status.Artifact)).To(Equal(map[string]string{"deploy/cm.yaml": "kind: ConfigMap\n"}))
	g.Expect(obj.Status.ObservedLayerSelector).To(Equal(&sourcev1.OCILayerSelector{Operation: sourcev1.OCILayerExtract}))
	g.Expect(conditions.GetMessage(obj, meta.ReadyCondition)).To(Equal("stored artifact for revision v1.0.0@" + d1))

	// Nothing new: the tag is listed and HEADed, nothing pulled, nothing written.
	blobs, manifests, heads := counts.blobGets.Load(), counts.manifestGets.Load(), counts.heads.Load()
	first := *obj.Status.Artifact
	v := requestReconcile(g, obj)
	g.Eventually(func(g Gomega) {
		g.Expect(get(g, obj).Status.LastHandledReconcileAt).To(Equal(v))
	}, timeout, 50*time.Millisecond).Should(Succeed())
	g.Expect(counts.heads.Load()).To(BeNumerically(">", heads))
	g.Expect(counts.blobGets.Load()).To(Equal(blobs))
	g.Expect(counts.manifestGets.Load()).To(Equal(manifests))
	g.Expect(obj.Status.Artifact.Digest).To(Equal(first.Digest))

	d11 := pushFiles(t, reg.Host, "org/app", "v1.1.0", map[string]string{"deploy/cm.yaml": "kind: ConfigMap\ndata: {}\n"})
	requestReconcile(g, obj)
	waitReady(g, obj, "v1.1.0@"+d11)
	g.Expect(files(g, obj.Status.Artifact)).To(HaveKeyWithValue("deploy/cm.yaml", "kind: ConfigMap\ndata: {}\n"))

	// Two more OCIRepositories on the same manifest: one pull in all.
	blobs = counts.blobGets.Load()
	pinned := newOCIRepository(ns, "oci://"+reg.Host+"/org/app", func(o *sourcev1.OCIRepository) {
		o.Spec.Ref = &sourcev1.OCIRepositoryRef{Digest: d11}
		o.Spec.Ignore = ptr("*.md\n")
	})
	create(g, pinned)
	waitReady(g, pinned, d11)
	g.Expect(pinned.Status.Artifact.Digest).To(Equal(get(g, obj).Status.Artifact.Digest))
	g.Expect(counts.blobGets.Load()).To(Equal(blobs), "the pinned digest reuses the stored content")
}

func TestOCIRepository_Credentials(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	reg := newRegistry(t, requireAuth)
	auth := remote.WithAuth(authn.FromConfig(authn.AuthConfig{Username: ociUser, Password: ociPassword}))
	digest := pushFiles(t, reg.Host, "org/private", "latest", map[string]string{"a.yaml": "kind: ConfigMap\n"}, auth)

	good := dockerConfigSecret(t, ns, reg.Host, ociUser, ociPassword)
	obj := newOCIRepository(ns, "oci://"+reg.Host+"/org/private", func(o *sourcev1.OCIRepository) {
		o.Spec.SecretRef = &meta.LocalObjectReference{Name: good}
	})
	create(g, obj)
	waitReady(g, obj, "latest@"+digest)

	// Through a ServiceAccount's image pull secrets.
	sa := &corev1.ServiceAccount{
		ObjectMeta:       metav1.ObjectMeta{Name: "puller", Namespace: ns},
		ImagePullSecrets: []corev1.LocalObjectReference{{Name: good}},
	}
	create(g, sa)
	bySA := newOCIRepository(ns, "oci://"+reg.Host+"/org/private", func(o *sourcev1.OCIRepository) {
		o.Spec.ServiceAccountName = "puller"
	})
	create(g, bySA)
	waitReady(g, bySA, "latest@"+digest)

	wrong := dockerConfigSecret(t, ns, reg.Host, ociUser, "not-"+ociPassword)
	cases := []struct {
		name   string
		secret string
		msg    string
	}{
		{"no credentials", "", "refused the credentials"},
		{"wrong password", wrong, "refused the credentials"},
		{"missing Secret", "absent", "credentials Secret " + ns + "/absent not found"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := NewWithT(t)
			o := newOCIRepository(ns, "oci://"+reg.Host+"/org/private", func(o *sourcev1.OCIRepository) {
				if c.secret != "" {
					o.Spec.SecretRef = &meta.LocalObjectReference{Name: c.secret}
				}
			})
			create(g, o)
			msg := waitFailed(g, o, sourcev1.AuthenticationFailedReason)
			g.Expect(msg).To(ContainSubstring(c.msg))
			g.Expect(conditions.IsReconciling(o)).To(BeTrue(), "retried")
		})
	}
	var events eventsv1.EventList
	g.Expect(k8s.List(context.Background(), &events, client.InNamespace(ns))).To(Succeed())
	for _, e := range events.Items {
		g.Expect(e.Note).NotTo(ContainSubstring(ociPassword))
	}
}

func TestOCIRepository_BadInputKeepsLastArtifact(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	reg := newRegistry(t, nil)
	good := pushFiles(t, reg.Host, "org/app", "stable", map[string]string{"a.yaml": "kind: ConfigMap\n"})
	obj := newOCIRepository(ns, "oci://"+reg.Host+"/org/app", func(o *sourcev1.OCIRepository) {
		o.Spec.Ref = &sourcev1.OCIRepositoryRef{Tag: "stable"}
	})
	create(g, obj)
	waitReady(g, obj, "stable@"+good)
	last := *obj.Status.Artifact

	// The tag moves to an archive with a path that leaves the root: refused, nothing written,
	// the last artifact stays.
	pushFiles(t, reg.Host, "org/app", "stable", map[string]string{"../escape.yaml": "x"})
	requestReconcile(g, obj)
	msg := waitFailed(g, obj, sourcev1.BuildFailedReason)
	g.Expect(msg).To(ContainSubstring("unsafe"))
	g.Expect(obj.Status.Artifact).To(Equal(&last))
	g.Expect(files(g, &last)).To(HaveKey("a.yaml"), "the last artifact is still served")

	// Unpacking to more than the size limit (1 MiB in this suite).
	pushFiles(t, reg.Host, "org/app", "stable", map[string]string{"big.yaml": strings.Repeat("x", 2<<20)})
	requestReconcile(g, obj)
	g.Eventually(func(g Gomega) {
		g.Expect(conditions.GetMessage(get(g, obj), meta.ReadyCondition)).To(ContainSubstring("larger than 1048576 bytes"))
	}, timeout, 100*time.Millisecond).Should(Succeed())

	// A fix is picked up.
	fixed := pushFiles(t, reg.Host, "org/app", "stable", map[string]string{"b.yaml": "kind: ConfigMap\n"})
	requestReconcile(g, obj)
	waitReady(g, obj, "stable@"+fixed)

	cases := []struct {
		name   string
		mutate func(*sourcev1.OCIRepository)
		reason string
		msg    string
	}{
		{"no version in range", func(o *sourcev1.OCIRepository) { o.Spec.Ref = &sourcev1.OCIRepositoryRef{SemVer: ">=9"} },
			sourcev1.NoMatchingVersionReason, "matches semver \">=9\"; no tag is a version"},
		{"missing tag", func(o *sourcev1.OCIRepository) { o.Spec.Ref = &sourcev1.OCIRepositoryRef{Tag: "v404"} },
			sourcev1.NoMatchingVersionReason, "tag v404 of " + reg.Host + "/org/app"},
		{"missing layer", func(o *sourcev1.OCIRepository) {
			o.Spec.Ref = &sourcev1.OCIRepositoryRef{Tag: "stable"}
			o.Spec.LayerSelector = &sourcev1.OCILayerSelector{MediaType: "application/vnd.example.chart"}
		}, sourcev1.BuildFailedReason, "has no layer of media type application/vnd.example.chart (it has " + ocitest.ContentType + ")"},
		{"unreachable registry", func(o *sourcev1.OCIRepository) { o.Spec.URL = "oci://127.0.0.1:1/org/app" },
			sourcev1.OCIOperationFailedReason, "127.0.0.1:1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := NewWithT(t)
			o := newOCIRepository(ns, "oci://"+reg.Host+"/org/app", c.mutate)
			create(g, o)
			g.Expect(waitFailed(g, o, c.reason)).To(ContainSubstring(c.msg))
		})
	}
}

func TestOCIRepository_CopyLayerAndDeletion(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	reg := newRegistry(t, nil)
	chart := ocitest.Tarball(map[string]string{"chart/Chart.yaml": "name: chart\n"})
	digest, err := ocitest.Push(reg.Host, "charts/chart", "1.0.0", []ocitest.Layer{
		{MediaType: "application/vnd.cncf.helm.config.v1+json", Data: []byte("{}")},
		{MediaType: "application/vnd.cncf.helm.chart.content.v1.tar+gzip", Data: chart},
	})
	g.Expect(err).NotTo(HaveOccurred())
	obj := newOCIRepository(ns, "oci://"+reg.Host+"/charts/chart", func(o *sourcev1.OCIRepository) {
		o.Spec.Ref = &sourcev1.OCIRepositoryRef{Tag: "1.0.0"}
		o.Spec.LayerSelector = &sourcev1.OCILayerSelector{MediaType: "application/vnd.cncf.helm.chart.content.v1.tar+gzip", Operation: sourcev1.OCILayerCopy}
	})
	create(g, obj)
	waitReady(g, obj, "1.0.0@"+digest)
	g.Expect(files(g, obj.Status.Artifact)).To(Equal(map[string]string{"chart/Chart.yaml": "name: chart\n"}))
	g.Expect(*obj.Status.Artifact.Size).To(Equal(int64(len(chart))), "the blob as it is")

	path := obj.Status.Artifact.Path
	g.Expect(store.Has(obj.Status.Artifact)).To(BeTrue())
	g.Expect(k8s.Delete(context.Background(), obj)).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8s.Get(context.Background(), client.ObjectKeyFromObject(obj), obj))
	}, timeout, 100*time.Millisecond).Should(BeTrue())
	g.Expect(store.Has(&meta.Artifact{Path: path})).To(BeFalse(), "artifacts deleted with the object")
}

func ptr[T any](v T) *T { return &v }

// The CNCF distribution registry with htpasswd, as most private registries run.
func TestOCIRepository_DistributionWithHtpasswd(t *testing.T) {
	g := NewWithT(t)
	reg, err := ocitest.StartDistribution(t.TempDir(), ociUser, ociPassword)
	if errors.Is(err, ocitest.ErrNoDistribution) {
		testenv.MissingTool(t, "docker-registry", err)
	}
	g.Expect(err).NotTo(HaveOccurred())
	defer reg.Stop()
	ns := newNamespace(t)
	auth := remote.WithAuth(authn.FromConfig(authn.AuthConfig{Username: ociUser, Password: ociPassword}))
	digest := pushFiles(t, reg.Host, "team/app", "v1.0.0", map[string]string{"deploy/cm.yaml": "kind: ConfigMap\n"}, auth)

	obj := newOCIRepository(ns, "oci://"+reg.Host+"/team/app", func(o *sourcev1.OCIRepository) {
		o.Spec.Ref = &sourcev1.OCIRepositoryRef{SemVer: ">=1.0.0"}
		o.Spec.SecretRef = &meta.LocalObjectReference{Name: dockerConfigSecret(t, ns, reg.Host, ociUser, ociPassword)}
	})
	create(g, obj)
	waitReady(g, obj, "v1.0.0@"+digest)
	g.Expect(files(g, obj.Status.Artifact)).To(Equal(map[string]string{"deploy/cm.yaml": "kind: ConfigMap\n"}))

	wrong := newOCIRepository(ns, "oci://"+reg.Host+"/team/app", func(o *sourcev1.OCIRepository) {
		o.Spec.SecretRef = &meta.LocalObjectReference{Name: dockerConfigSecret(t, ns, reg.Host, ociUser, "nope")}
	})
	create(g, wrong)
	g.Expect(waitFailed(g, wrong, sourcev1.AuthenticationFailedReason)).NotTo(ContainSubstring("nope"))
}
