package cmd

import (
	"bytes"
	"context"
	"crypto"
	"encoding/base64"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/plumb-dev/plumb/cli/internal/ociartifact"
	"github.com/plumb-dev/plumb/shared/artifact"
	"github.com/plumb-dev/plumb/shared/cosign"
	"github.com/plumb-dev/plumb/shared/testing/ocitest"
)

// TestPushArtifact pushes a folder, signed with an encrypted cosign.key, to a loopback registry
// that wants credentials, then reads it back as an OCIRepository does (one layer of Flux's
// content type, a tarball the artifact contract's Walk accepts) and checks the signature as
// cosign's keyed verification does, with sigstore's verifier and the public key.
func TestPushArtifact(t *testing.T) {
	ctx := context.Background()
	reg := ocitest.NewRegistry(basicAuth("ci", "pw"))
	defer reg.Close()
	auth := remote.WithAuth(&authn.Basic{Username: "ci", Password: "pw"})

	dir := t.TempDir()
	write(t, dir, "deploy/app.yaml", "kind: ConfigMap\n")
	write(t, dir, "kustomization.yaml", "resources: [deploy/app.yaml]\n")
	write(t, dir, ".git/HEAD", "ref: refs/heads/main\n")
	key, err := cosign.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := key.EncryptedPEM([]byte("pw123"))
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "cosign.key")
	if err := os.WriteFile(keyFile, sealed, 0o600); err != nil {
		t.Fatal(err)
	}
	url := "oci://" + reg.Host + "/acme/app:v1"

	t.Run("an encrypted key without its password pushes nothing", func(t *testing.T) {
		t.Setenv(passwordEnv, "")
		code, _, errOut := plumb(ctx, "push", "artifact", dir, url, "--creds", "ci:pw", "--sign-key", keyFile)
		if code != ExitFailure || !strings.Contains(errOut, "is encrypted: set COSIGN_PASSWORD to its password") {
			t.Fatalf("exit %d, %q", code, errOut)
		}
		ref, _ := name.ParseReference(reg.Host + "/acme/app:v1")
		if _, err := remote.Head(ref, auth); err == nil {
			t.Fatal("the artifact was pushed unsigned")
		}
	})

	t.Setenv(passwordEnv, "pw123")
	code, out, errOut := plumb(ctx, "push", "artifact", dir, url, "--creds", "ci:pw", "--sign-key", keyFile,
		"--source", "https://git.example/acme/app", "--revision", "main@sha1:0123")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	digest := strings.TrimSpace(out)
	if !strings.HasPrefix(digest, "sha256:") || !strings.Contains(errOut, "signed "+reg.Host+"/acme/app@"+digest) {
		t.Fatalf("out %q, err %q", out, errOut)
	}

	// The artifact, as an OCIRepository reads it.
	ref, _ := name.ParseReference(reg.Host + "/acme/app@" + digest)
	img, err := remote.Image(ref, auth)
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.Config.MediaType != ociartifact.ConfigMediaType || len(m.Layers) != 1 || m.Layers[0].MediaType != ociartifact.ContentMediaType {
		t.Fatalf("manifest: config %s, layers %+v", m.Config.MediaType, m.Layers)
	}
	if m.Annotations[ociartifact.SourceAnnotation] != "https://git.example/acme/app" || m.Annotations[ociartifact.RevisionAnnotation] != "main@sha1:0123" {
		t.Fatalf("annotations %v", m.Annotations)
	}
	var names []string
	if err := artifact.Walk(bytes.NewReader(layerBytes(t, img, m.Layers[0].Digest)), artifact.DefaultLimits, func(e artifact.Entry, _ io.Reader) error {
		names = append(names, e.Name)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(names, ",") != "deploy/app.yaml,kustomization.yaml" {
		t.Fatalf("entries %v, want the files without .git", names)
	}

	// The signature, as cosign's keyed verification checks it.
	h, _ := v1.NewHash(digest)
	sigRef, _ := name.ParseReference(reg.Host + "/acme/app:" + cosign.SignatureTag(h))
	sigImg, err := remote.Image(sigRef, auth)
	if err != nil {
		t.Fatal(err)
	}
	sm, err := sigImg.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(sm.Layers) != 1 {
		t.Fatalf("%d signatures, want 1", len(sm.Layers))
	}
	payload := layerBytes(t, sigImg, sm.Layers[0].Digest)
	if !strings.Contains(string(payload), `"docker-manifest-digest":"`+digest+`"`) {
		t.Fatalf("payload %s does not name %s", payload, digest)
	}
	sig, err := base64.StdEncoding.DecodeString(sm.Layers[0].Annotations[cosign.SignatureAnnotation])
	if err != nil {
		t.Fatal(err)
	}
	if err := verifier(t, key.PublicPEM()).VerifySignature(bytes.NewReader(sig), bytes.NewReader(payload)); err != nil {
		t.Fatalf("signature does not verify with the public key: %v", err)
	}
	other, _ := cosign.NewKey()
	if err := verifier(t, other.PublicPEM()).VerifySignature(bytes.NewReader(sig), bytes.NewReader(payload)); err == nil {
		t.Fatal("signature verifies with another key")
	}

	t.Run("equal content, equal digest, with a PEM key", func(t *testing.T) {
		pemKey, err := key.PrivatePEM()
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(t.TempDir(), "key.pem")
		if err := os.WriteFile(f, pemKey, 0o600); err != nil {
			t.Fatal(err)
		}
		code, out, errOut := plumb(ctx, "push", "artifact", dir, url, "--creds", "ci:pw", "--sign-key", f,
			"--source", "https://git.example/acme/app", "--revision", "main@sha1:0123")
		if code != ExitOK || strings.TrimSpace(out) != digest {
			t.Fatalf("exit %d, digest %q (want %s): %s", code, out, digest, errOut)
		}
	})
	t.Run("wrong credentials", func(t *testing.T) {
		code, _, errOut := plumb(ctx, "push", "artifact", dir, url, "--creds", "ci:nope")
		if code != ExitFailure || !strings.Contains(errOut, "push "+reg.Host+"/acme/app:v1") || strings.Contains(errOut, "nope") {
			t.Fatalf("exit %d, %q", code, errOut)
		}
	})
	t.Run("not an oci URL", func(t *testing.T) {
		code, _, errOut := plumb(ctx, "push", "artifact", dir, "https://"+reg.Host+"/acme/app:v1")
		if code != ExitUsage || !strings.Contains(errOut, "want oci://host/repository:tag") {
			t.Fatalf("exit %d, %q", code, errOut)
		}
	})
}

func verifier(t *testing.T, pub []byte) signature.Verifier {
	t.Helper()
	k, err := cryptoutils.UnmarshalPEMToPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	v, err := signature.LoadVerifier(k, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func layerBytes(t *testing.T, img v1.Image, d v1.Hash) []byte {
	t.Helper()
	l, err := img.LayerByDigest(d)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := l.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// basicAuth lets only user:pass in.
func basicAuth(user, pass string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != user || p != pass {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}
