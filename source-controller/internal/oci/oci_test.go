package oci

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/Masterminds/semver/v3"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	. "github.com/onsi/gomega"

	"github.com/plumb-dev/plumb/shared/artifact"
	"github.com/plumb-dev/plumb/shared/testing/ocitest"
)

const contentType = ocitest.ContentType

func tarball(t *testing.T, files map[string]string) []byte { return ocitest.Tarball(files) }

type layer = ocitest.Layer

// push writes an OCI artifact with the layers to host/repo:tag and returns its digest.
func push(t *testing.T, host, repo, tag string, layers ...layer) string {
	t.Helper()
	d, err := ocitest.Push(host, repo, tag, layers)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// newRegistry serves an in-process registry on loopback; wrap may put a handler in front.
func newRegistry(t *testing.T, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	r := ocitest.NewRegistry(wrap)
	t.Cleanup(r.Close)
	return r.Host
}

// files reads back an extracted artifact.
func files(t *testing.T, data []byte) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := artifact.Walk(bytes.NewReader(data), artifact.DefaultLimits, func(e artifact.Entry, body io.Reader) error {
		b, err := io.ReadAll(body)
		out[e.Name] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestResolveAndWrite(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	host := newRegistry(t, nil)
	app := tarball(t, map[string]string{"deploy/cm.yaml": "kind: ConfigMap\n", "README.md": "hi\n", ".ci/x.yaml": "x\n"})
	digest := push(t, host, "org/app", "v1.0.0", layer{MediaType: "application/vnd.example.readme", Data: []byte("readme")}, layer{MediaType: contentType, Data: app})
	for _, tag := range []string{"v0.9.0", "v1.2.0-rc.1", "not-a-version", "v2.0.0"} {
		push(t, host, "org/app", tag, layer{MediaType: contentType, Data: tarball(t, map[string]string{"tag": tag})})
	}
	r, err := NewRemote("oci://"+host+"/org/app", Credentials{Insecure: true})
	g.Expect(err).NotTo(HaveOccurred())

	res, err := r.Resolve(ctx, Ref{Tag: "v1.0.0"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res).To(Equal(Resolved{Tag: "v1.0.0", Digest: digest, Revision: "v1.0.0@" + digest}))

	var out bytes.Buffer
	g.Expect(r.Write(ctx, res, Layer{MediaType: contentType, Ignore: ".ci/\n*.md\n"}, artifact.DefaultLimits, &out)).To(Succeed())
	g.Expect(files(t, out.Bytes())).To(Equal(map[string]string{"deploy/cm.yaml": "kind: ConfigMap\n"}))

	out.Reset()
	g.Expect(r.Write(ctx, res, Layer{Copy: true}, artifact.DefaultLimits, &out)).To(Succeed())
	g.Expect(out.String()).To(Equal("readme"), "the first layer, copied as it is")

	err = r.Write(ctx, res, Layer{MediaType: "application/vnd.missing"}, artifact.DefaultLimits, &out)
	g.Expect(errors.Is(err, ErrContent)).To(BeTrue(), "%v", err)
	g.Expect(err.Error()).To(ContainSubstring("has no layer of media type application/vnd.missing (it has application/vnd.example.readme, " + contentType + ")"))

	err = r.Write(ctx, res, Layer{}, artifact.DefaultLimits, &out)
	g.Expect(errors.Is(err, ErrContent)).To(BeTrue(), "the readme layer is no tarball: %v", err)

	err = r.Write(ctx, res, Layer{MediaType: contentType}, artifact.Limits{MaxFiles: 10, MaxBytes: 10}, &out)
	g.Expect(errors.Is(err, ErrContent)).To(BeTrue(), "%v", err)
	g.Expect(err.Error()).To(ContainSubstring("over the limit"))

	// semver: the highest in range; a filter narrows the tags considered.
	res, err = r.Resolve(ctx, Ref{SemVer: ">=1.0.0 <2.0.0"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.Tag).To(Equal("v1.0.0"))
	res, err = r.Resolve(ctx, Ref{SemVer: ">=1.0.0-0 <2.0.0", Filter: `-rc\.`})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.Tag).To(Equal("v1.2.0-rc.1"))
	_, err = r.Resolve(ctx, Ref{SemVer: ">=3.0.0"})
	g.Expect(errors.Is(err, ErrNotFound)).To(BeTrue(), "%v", err)
	g.Expect(err.Error()).To(ContainSubstring("no tag of " + host + "/org/app matches semver \">=3.0.0\"; highest versions found: v2.0.0, v1.2.0-rc.1, v1.0.0, v0.9.0"))

	_, err = r.Resolve(ctx, Ref{Tag: "v9"})
	g.Expect(errors.Is(err, ErrNotFound)).To(BeTrue(), "%v", err)
	_, err = r.Resolve(ctx, Ref{SemVer: "not a range"})
	g.Expect(errors.Is(err, ErrInvalid)).To(BeTrue(), "%v", err)
}

// A digest is checked with the object's own credentials, like a tag: content pulled for one
// tenant is not handed to another that only knows its digest.
func TestDigestIsCheckedWithOwnCredentials(t *testing.T) {
	g := NewWithT(t)
	host := newRegistry(t, basicAuth("plumb", "s3cret"))
	auth := remote.WithAuth(authn.FromConfig(authn.AuthConfig{Username: "plumb", Password: "s3cret"}))
	d, err := ocitest.Push(host, "org/private", "v1", []layer{{MediaType: contentType, Data: tarball(t, map[string]string{"a": "b"})}}, auth)
	g.Expect(err).NotTo(HaveOccurred())
	ctx := context.Background()

	r, err := NewRemote("oci://"+host+"/org/private", Credentials{Insecure: true, Username: "plumb", Password: "s3cret"})
	g.Expect(err).NotTo(HaveOccurred())
	res, err := r.Resolve(ctx, Ref{Digest: d, Tag: "ignored"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res).To(Equal(Resolved{Digest: d, Revision: d}))
	_, err = r.Resolve(ctx, Ref{Digest: "sha256:" + strings.Repeat("ab", 32)})
	g.Expect(errors.Is(err, ErrNotFound)).To(BeTrue(), "%v", err)

	anonymous, err := NewRemote("oci://"+host+"/org/private", Credentials{Insecure: true})
	g.Expect(err).NotTo(HaveOccurred())
	_, err = anonymous.Resolve(ctx, Ref{Digest: d})
	g.Expect(errors.Is(err, ErrAuth)).To(BeTrue(), "%v", err)
}

// A URL with credentials is no repository name; the error does not show the password.
func TestURLWithCredentialsIsInvalid(t *testing.T) {
	g := NewWithT(t)
	_, err := NewRemote("oci://user:hunter2@"+newRegistry(t, nil)+"/org/app", Credentials{})
	g.Expect(errors.Is(err, ErrInvalid)).To(BeTrue(), "%v", err)
	g.Expect(err.Error()).NotTo(ContainSubstring("hunter2"))
}

func TestImageIndexIsRefused(t *testing.T) {
	g := NewWithT(t)
	host := newRegistry(t, nil)
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), static.NewLayer(tarball(t, map[string]string{"a": "b"}), contentType))
	g.Expect(err).NotTo(HaveOccurred())
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), mutate.IndexAddendum{Add: img})
	ref, err := name.ParseReference(host+"/org/multi:v1", name.Insecure)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(remote.WriteIndex(ref, idx)).To(Succeed())
	r, err := NewRemote("oci://"+host+"/org/multi", Credentials{Insecure: true})
	g.Expect(err).NotTo(HaveOccurred())
	res, err := r.Resolve(context.Background(), Ref{Tag: "v1"})
	g.Expect(err).NotTo(HaveOccurred())
	err = r.Write(context.Background(), res, Layer{}, artifact.DefaultLimits, io.Discard)
	g.Expect(errors.Is(err, ErrContent)).To(BeTrue(), "%v", err)
	g.Expect(err.Error()).To(ContainSubstring("is an image index"))
}

func TestUnsafeLayerRefused(t *testing.T) {
	g := NewWithT(t)
	host := newRegistry(t, nil)
	push(t, host, "org/evil", "v1", layer{MediaType: contentType, Data: tarball(t, map[string]string{"../../etc/passwd": "x"})})
	r, err := NewRemote("oci://"+host+"/org/evil", Credentials{Insecure: true})
	g.Expect(err).NotTo(HaveOccurred())
	res, err := r.Resolve(context.Background(), Ref{Tag: "v1"})
	g.Expect(err).NotTo(HaveOccurred())
	err = r.Write(context.Background(), res, Layer{}, artifact.DefaultLimits, io.Discard)
	g.Expect(errors.Is(err, ErrContent)).To(BeTrue(), "%v", err)
	g.Expect(errors.Is(err, artifact.ErrUnsafe) || strings.Contains(err.Error(), "unsafe")).To(BeTrue(), "%v", err)
}

// basicAuth answers 401 with a Basic challenge unless the request carries user:pass.
func basicAuth(user, pass string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u, p, ok := r.BasicAuth()
			if !ok || u != user || p != pass {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

func dockerConfig(host, user, pass string) []byte {
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
	return fmt.Appendf(nil, `{"auths":{"https://%s/v1/":{"auth":%q}}}`, host, auth)
}

// The transport and credentials are shared/registry's (where their own tests are): here, that
// NewRemote uses them, that a refusal is ErrAuth without the password, and that shared/registry's
// errors about unreadable credentials are this package's ErrAuth too.
func TestCredentials(t *testing.T) {
	g := NewWithT(t)
	host := newRegistry(t, basicAuth("plumb", "s3cret"))
	auth := remote.WithAuth(authn.FromConfig(authn.AuthConfig{Username: "plumb", Password: "s3cret"}))
	digest, err := ocitest.Push(host, "org/app", "v1", []layer{{MediaType: contentType, Data: tarball(t, map[string]string{"a": "b"})}}, auth)
	g.Expect(err).NotTo(HaveOccurred())

	cases := []struct {
		name string
		c    Credentials
		err  error
	}{
		{"dockerconfig", Credentials{Insecure: true, DockerConfigs: [][]byte{dockerConfig("other.example", "x", "y"), dockerConfig(host, "plumb", "s3cret")}}, nil},
		{"username and password", Credentials{Insecure: true, Username: "plumb", Password: "s3cret"}, nil},
		{"no credentials", Credentials{Insecure: true}, ErrAuth},
		{"wrong password", Credentials{Insecure: true, DockerConfigs: [][]byte{dockerConfig(host, "plumb", "wrong")}}, ErrAuth},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := NewWithT(t)
			r, err := NewRemote("oci://"+host+"/org/app", c.c)
			g.Expect(err).NotTo(HaveOccurred())
			res, err := r.Resolve(context.Background(), Ref{Tag: "v1"})
			if c.err != nil {
				g.Expect(errors.Is(err, c.err)).To(BeTrue(), "%v", err)
				g.Expect(err.Error()).To(Equal("authentication failed: " + host + " refused the credentials (HTTP 401)"))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(res.Digest).To(Equal(digest))
			g.Expect(r.Write(context.Background(), res, Layer{}, artifact.DefaultLimits, io.Discard)).To(Succeed())
		})
	}

	r, err := NewRemote("oci://"+host+"/org/app", Credentials{Username: "plumb", Password: "s3cret"})
	g.Expect(err).NotTo(HaveOccurred())
	_, err = r.Resolve(context.Background(), Ref{Tag: "v1"})
	g.Expect(err).To(MatchError(ContainSubstring("would be reached over plain HTTP; set insecure: true")))

	_, err = NewRemote("oci://"+host+"/org/app", Credentials{DockerConfigs: [][]byte{[]byte("{not json")}})
	g.Expect(errors.Is(err, ErrAuth)).To(BeTrue(), "%v", err)
	_, err = NewRemote("oci://"+host+"/org/app", Credentials{CA: []byte("not pem")})
	g.Expect(errors.Is(err, ErrAuth)).To(BeTrue(), "a Secret's bad CA is retried, not a stall: %v", err)
}

func TestHighest(t *testing.T) {
	tags := []string{"latest", "v1.0.0", "1.0.0", "v1.10.0", "v1.9.3", "v2.0.0-rc.1", "main", "v0.1", "1.9.4_build.7"}
	cases := []struct {
		rng, filter, want string
		nearest           []string
	}{
		{"*", "", "v1.10.0", nil},
		{"~1.9", "", "1.9.4_build.7", nil}, // helm push writes 1.9.4+build.7 so
		{"1.0.0", "", "1.0.0", nil},        // equal versions: the tag that sorts first
		{">=2.0.0-0", "", "v2.0.0-rc.1", nil},
		{">=1.0.0", "^v1\\.9", "v1.9.3", nil},
		{">=3", "", "", []string{"v2.0.0-rc.1", "v1.10.0", "1.9.4_build.7", "v1.9.3", "1.0.0"}},
	}
	for _, c := range cases {
		cons, err := semver.NewConstraint(c.rng)
		if err != nil {
			t.Fatal(err)
		}
		var re *regexp.Regexp
		if c.filter != "" {
			re = regexp.MustCompile(c.filter)
		}
		got, nearest := Highest(tags, cons, re)
		if got != c.want || strings.Join(nearest, ",") != strings.Join(c.nearest, ",") {
			t.Errorf("Highest(%q, %q) = %q %v, want %q %v", c.rng, c.filter, got, nearest, c.want, c.nearest)
		}
	}
}

// Any list of tags: the pick is in range, and no tag in range is higher.
func FuzzHighest(f *testing.F) {
	f.Add("v1.0.0,1.2.3,latest,v2.0.0-rc.1", ">=1.0.0 <2.0.0")
	f.Add("0.0.1,0.0.01,v00.1.0,1.0.0+meta", "*")
	f.Fuzz(func(t *testing.T, list, rng string) {
		c, err := semver.NewConstraint(rng)
		if err != nil {
			return
		}
		tags := strings.Split(list, ",")
		got, _ := Highest(tags, c, nil)
		if got == "" {
			return
		}
		v, err := semver.NewVersion(got)
		if err != nil || !c.Check(v) {
			t.Fatalf("picked %q, not a version in %q", got, rng)
		}
		for _, tag := range tags {
			if o, err := semver.NewVersion(tag); err == nil && c.Check(o) && o.GreaterThan(v) {
				t.Fatalf("picked %q but %q is higher and in range", got, tag)
			}
		}
	})
}
